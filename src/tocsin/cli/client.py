"""A small HTTP client of the Tocsin API for CLI commands, and how its failures are shown."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from tocsin import __version__

DEFAULT_SERVER = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 10.0
# Behind a reverse proxy these mean "Tocsin is not answering", not "Tocsin said no".
_GATEWAY_STATUSES = frozenset({502, 503, 504})


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(
        self, status: int, detail: str, body: dict[str, Any], *, sent_token: bool = True
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = body
        self.sent_token = sent_token


class UnreachableError(Exception):
    """No usable answer from the server: refused, timed out, bad URL or a gateway error."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot reach Tocsin at {server}: {reason}")
        self.server = server
        self.reason = reason


class TocsinClient:
    """Call the Tocsin REST API with a token; raise ApiError or UnreachableError on failure."""

    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.has_token = bool(token)
        headers = {"X-Tocsin-Source": "cli", "User-Agent": f"tocsin-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            self._http = httpx.Client(
                base_url=self.server, headers=headers, timeout=timeout, transport=transport
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise UnreachableError(server, f"invalid server URL ({exc})") from exc

    def __enter__(self) -> TocsinClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` and return the decoded JSON answer."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST `body` as JSON to `path` and return the decoded JSON answer."""
        return self.request("POST", path, body=body)

    def put(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """PUT `body` as JSON to `path` and return the decoded JSON answer."""
        return self.request("PUT", path, body=body)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer."""
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            response = self._http.request(method, path, params=clean, json=body)
        except httpx.TimeoutException as exc:
            raise UnreachableError(self.server, f"timed out ({type(exc).__name__})") from exc
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise UnreachableError(self.server, str(exc) or type(exc).__name__) from exc
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Any:
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if response.status_code in _GATEWAY_STATUSES:
            detail = _detail(data) or response.reason_phrase
            raise UnreachableError(self.server, f"HTTP {response.status_code} {detail}")
        if response.is_error:
            body = data if isinstance(data, dict) else {}
            detail = _detail(data) or response.text.strip()[:200] or response.reason_phrase
            raise ApiError(response.status_code, detail, body, sent_token=self.has_token)
        if data is None and response.content:
            raise ApiError(
                response.status_code,
                f"the answer from {response.url} is not JSON; is this a Tocsin server?",
                {},
            )
        return data


def _detail(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])
    return ""


def explain(exc: ApiError) -> list[str]:
    """Return the lines that tell a person what went wrong and what to do."""
    if exc.status == 401:
        if not exc.sent_token:
            return [
                f"not authenticated: {exc.detail}",
                "pass --token or set TOCSIN_TOKEN (create one with `tocsin token create`)",
            ]
        return [
            f"the server rejected the token: {exc.detail}",
            "check --token / TOCSIN_TOKEN; the token may be mistyped or revoked",
        ]
    if exc.status == 403:
        return [
            f"not allowed: {exc.detail}",
            "this token lacks the scope for it; changes need a token with the 'respond' scope",
        ]
    lines = [exc.detail]
    for key, label in (("allowed_next", "allowed next states"), ("valid", "valid values")):
        values = exc.body.get(key)
        listed = ", ".join(map(str, values)) if isinstance(values, list) else None
        # The server's detail often names them already; say it once.
        if listed is not None and (not listed or listed not in exc.detail):
            lines.append(f"{label}: {listed or 'none'}")
    return lines


@contextmanager
def reported(err: Console) -> Iterator[None]:
    """Show client failures in red on stderr and exit 1 (refused) or 2 (unreachable)."""
    try:
        yield
    except UnreachableError as exc:
        err.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from exc
    except ApiError as exc:
        for line in explain(exc):
            err.print(Text(line, style="red"))
        raise typer.Exit(1) from exc
