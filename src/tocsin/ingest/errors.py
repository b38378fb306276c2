"""The one error every ingest parser raises for a body it cannot accept."""

from __future__ import annotations

from collections.abc import Sequence


class PayloadError(Exception):
    """A request body was not a valid payload; `errors` names each bad field by its path."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message if not errors else f"{message}: {'; '.join(errors)}")
        self.message = message
        self.errors = list(errors)
