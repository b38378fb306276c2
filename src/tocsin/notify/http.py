"""POSTing to an HTTP peer the way every webhook-style channel does (Teams, Mattermost, ntfy,
Slack's incoming webhooks, the generic webhook): one pooled, thread-safe client and one reading of
answers: 2xx delivered; 408, 425, 429, 5xx, timeouts and unreachable peers
tried again (honouring Retry-After); anything else permanent, with the peer's own words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from tocsin import __version__
from tocsin.notify.base import DeliveryError

USER_AGENT = f"Tocsin/{__version__}"
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# How much of the peer's answer to keep in the error (it lands in the log and the UI).
ERROR_BODY_CHARS = 200


class HttpPoster:
    """Send requests to one kind of peer; `what` names it in errors ("Teams webhook")."""

    def __init__(
        self,
        what: str,
        *,
        timeout: float,
        max_connections: int = 32,
        client: httpx.Client | None = None,
    ) -> None:
        self.what = what
        # A client handed in (tests) belongs to the caller, who closes it.
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def post(
        self,
        url: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST and return the 2xx response; raise DeliveryError for anything else."""
        try:
            response = self.client.post(url, json=json, content=content, headers=headers)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DeliveryError(f"bad {self.what} URL {url!r}: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"{self.what} timed out ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"{self.what} unreachable: {detail}", retryable=True) from exc
        if 200 <= response.status_code < 300:
            return response
        raise status_error(self.what, response)

    def close(self) -> None:
        """Close the connection pool (unless the caller handed it in)."""
        if self._own_client:
            self.client.close()


def status_error(what: str, response: httpx.Response) -> DeliveryError:
    """Return the DeliveryError for a non-2xx answer (retryable or not, with Retry-After)."""
    status = response.status_code
    retryable = status in RETRYABLE_STATUSES or 500 <= status < 600
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    said = " ".join(response.text[:ERROR_BODY_CHARS].split())
    return DeliveryError(
        f"{what} answered HTTP {status}{': ' + said if said else ''}",
        retryable=retryable,
        retry_after=retry_after,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return Retry-After in seconds (delay-seconds or an HTTP date), or None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, math.ceil(seconds))
