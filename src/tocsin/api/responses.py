"""Serialise response models once.

FastAPI validates a returned model against response_model again before serialising it; for a
page of 50 incidents that doubles the work. Handlers keep response_model for the OpenAPI
document and return this Response, which FastAPI passes through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel


def model_response(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return `model` as a JSON response."""
    return Response(
        content=model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
