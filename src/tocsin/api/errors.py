"""Map domain and validation errors to clear 4xx JSON; never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tocsin.core.errors import (
    DomainError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    VersionConflict,
)
from tocsin.services.ingest_process import WriterGone

log = logging.getLogger("tocsin.api")


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def error_body(detail: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, **extra}


def install(app: FastAPI) -> None:
    """Register the exception handlers on `app`."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_of(e.get("loc", ())),
                "message": e.get("msg", "invalid"),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse(
            status_code=422, content=error_body(f"invalid request: {summary}", errors=errors)
        )

    @app.exception_handler(InvalidInput)
    async def _invalid(_request: Request, exc: InvalidInput) -> JSONResponse:
        body = error_body(exc.message, errors=[{"field": exc.field, "message": exc.message}])
        if exc.valid is not None:
            body["valid"] = exc.valid
        return JSONResponse(status_code=422, content=body)

    @app.exception_handler(IllegalTransition)
    async def _transition(_request: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content=error_body(
                exc.message, current=exc.current, requested=exc.requested, allowed_next=exc.allowed
            ),
        )

    @app.exception_handler(VersionConflict)
    async def _version(_request: Request, exc: VersionConflict) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content=error_body(exc.message, expected_version=exc.expected, version=exc.actual),
        )

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content=error_body(exc.message))

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content=error_body(exc.message))

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=400, content=error_body(exc.message))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot store (out of range, bad encoding) is the caller's input;
        # validation should have caught it, so log it to find the gap.
        log.warning(
            "database rejected a value on %s %s: %s", request.method, request.url.path, exc.orig
        )
        return JSONResponse(
            status_code=422,
            content=error_body("a value is out of range or holds characters that cannot be stored"),
        )

    @app.exception_handler(WriterGone)
    async def _writer_gone(_request: Request, exc: WriterGone) -> JSONResponse:
        # Not stored, or stored without the answer getting back: a retry is safe (it dedups).
        log.warning("ingest writer unavailable: %s", exc)
        return JSONResponse(
            status_code=503,
            content=error_body("storage is restarting; retry shortly"),
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, _exc: OverflowError) -> JSONResponse:
        return JSONResponse(status_code=422, content=error_body("a number is out of range"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content=error_body("internal error; see server log"))
