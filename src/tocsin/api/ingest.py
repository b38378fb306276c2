"""Alerts in: the ingest URL, PagerDuty Events API v2 drop-in, heartbeats, dry runs.

These handlers read the raw body themselves instead of declaring a pydantic body: each source
has its own format and error style (PagerDuty clients expect PagerDuty's answers), and the
raw text is what gets stored. The answer is sent only after the batch holding the event has
been committed (group commit on SQLite, batched transactions on PostgreSQL).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from tocsin.api.context import AppContext
from tocsin.api.deps import Ctx, Responder
from tocsin.core.alerts import Action, Signal
from tocsin.core.errors import NotFound
from tocsin.core.ratelimit import TokenBucket
from tocsin.ingest import alertmanager, grafana, pagerduty
from tocsin.ingest.errors import PayloadError
from tocsin.ingest.generic import GenericMapping, compile_mapping
from tocsin.services import heartbeats
from tocsin.services.alerting_config import (
    IntegrationConfig,
    RateLimit,
    alerting_config,
    cached_config,
    parse_rate_limit,
)
from tocsin.services.ingest import Delivery, Ingested, ingest_many
from tocsin.services.ingest_prepare import prepare
from tocsin.services.ingest_process import retryable
from tocsin.storage.tables import AlertPayloadRow

router = APIRouter(tags=["ingest"])

PD_MAX_BODY = 512 * 1024
# Deliveries of at least this many signals are prepared here rather than in the writer.
PREPARE_AHEAD_FROM = 2
# A refused payload is kept for diagnosis, cut to this size.
_REJECTED_KEEP = 64 * 1024
Key = Annotated[str, Path(max_length=128, description="The integration key (a secret).")]


class _Limiter:
    """Per-key token buckets, in this process (each instance allows the configured rate)."""

    def __init__(self, default: RateLimit) -> None:
        self.default = default
        self.buckets: dict[str, tuple[RateLimit, TokenBucket]] = {}

    def wait(self, key: str, limit: RateLimit | None) -> float:
        """Return 0 if a request on `key` may go ahead now, else seconds to wait."""
        limit = limit or self.default
        now = time.monotonic()
        entry = self.buckets.get(key)
        if entry is None or entry[0] != limit:
            entry = (limit, TokenBucket.full(limit.per_second, limit.burst, now))
            self.buckets[key] = entry
        return entry[1].take(now)


def _limiter(ctx: AppContext) -> _Limiter:
    limiter = ctx.extras.get("limiter")
    if limiter is None:
        limiter = _Limiter(parse_rate_limit(ctx.settings.ingest_rate_limit))
        ctx.extras["limiter"] = limiter
    assert isinstance(limiter, _Limiter)
    return limiter


_mappings: dict[tuple[str, str], GenericMapping] = {}


def _generic(integration: IntegrationConfig) -> GenericMapping:
    cache_key = (integration.key, json.dumps(integration.mapping, sort_keys=True))
    mapping = _mappings.get(cache_key)
    if mapping is None:
        mapping = compile_mapping(integration.mapping)
        _mappings[cache_key] = mapping
    return mapping


def _integration(ctx: AppContext, key: str) -> IntegrationConfig | None:
    config = cached_config(ctx.db.engine)
    if config is None:
        # Only on a cache miss (every SNAPSHOT_SECONDS): opening a session per request
        # costs more than the lookup.
        with ctx.db.read() as session:
            config = alerting_config(session)
    return config.integrations.get(key)


def _parser(integration: IntegrationConfig) -> Callable[[object], list[Signal]]:
    if integration.type == "alertmanager":
        return alertmanager.parse
    if integration.type == "grafana":
        return grafana.parse
    if integration.type == "generic":
        return _generic(integration).parse
    return lambda body: [pagerduty.parse_event(body, new_key=_new_key)]


def _new_key() -> str:
    return uuid.uuid4().hex


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not valid JSON")


# orjson reads integers beyond 64 bits as floats: a body with such a long run of digits goes
# to the standard library, which keeps them exact. The run is found by mapping every digit to
# "0" and anything else to " " and looking for the 19 zeros: ten times faster than a regex.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def _long_number(raw: bytes) -> bool:
    return _LONG_RUN in raw.translate(_DIGITS_ONLY)


def _decode(raw: bytes) -> Any:
    if not _long_number(raw):
        try:
            # Several times faster than json on a 100-alert notification.
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library's verdict and wording (and UTF-16, lone surrogates)
    try:
        # NaN and Infinity are Python's extension, not JSON: no database column takes them.
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise PayloadError("Malformed JSON", [f"body: {exc}"]) from None


async def _deliver(ctx: AppContext, delivery: Delivery) -> Ingested:
    """Queue one delivery for the writer; retry once if a concurrent writer opened its key."""
    if ctx.ingest is not None:
        # A payload of many alerts keeps the writer process the busier one: what needs no
        # database is worked out here. A single event is the opposite (this process's
        # per-request work is the limit): the writer prepares it.
        config = cached_config(ctx.db.engine)
        if config is not None and len(delivery.signals) >= PREPARE_AHEAD_FROM:
            delivery = prepare(delivery, config, wire=True)
        # The child retries conflicts itself. It wakes the engine if it runs it; else the
        # engine is here (or apart, woken by the child's NOTIFY).
        result: Ingested = await ctx.ingest.submit(delivery)
        if not ctx.ingest.runs_engine:
            ctx.waker.notify()
        return result
    for attempt in range(3):
        try:
            result = await ctx.db.run_write_batched("ingest", delivery, ingest_many)
            break
        except DBAPIError as exc:
            # Another process created the same open alert or group between our read and our
            # insert, or two batches deadlocked (PostgreSQL, several instances): the retry
            # sees the other's commit and joins it.
            if attempt == 2 or not retryable(exc):
                raise
    ctx.wake()
    return result


async def _reject(ctx: AppContext, key: str, fmt: str, raw: bytes, error: PayloadError) -> None:
    """Keep a refused payload and why: "my alert never showed up" must be answerable."""
    row = {
        "integration_key": key,
        "format": fmt,
        "received_at": ctx.clock(),
        "body": raw[:_REJECTED_KEEP].decode("utf-8", "replace"),
        "error": json.dumps({"message": error.message, "errors": error.errors[:50]}),
    }
    await ctx.db.run_write(lambda s: s.execute(insert(AlertPayloadRow), [row]))


def _too_many(wait: float, body: Mapping[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(max(1, round(wait)))})


def _ingested_body(result: Ingested) -> dict[str, Any]:
    return {
        "status": "accepted",
        "payload_id": result.payload_id,
        "alerts": [
            {"dedup_key": o.dedup_key, "action": o.action, "alert_id": o.alert_id,
             "group_id": o.group_id, "status": o.status}
            for o in result.outcomes
        ],
    }  # fmt: skip


@router.post(
    "/api/v1/ingest/{key}",
    status_code=202,
    summary="Receive alerts from Alertmanager, Grafana or a generic JSON webhook",
    responses={400: {"description": "Invalid payload"}, 404: {}, 413: {}, 429: {}},
)
async def ingest(key: Key, request: Request, ctx: Ctx) -> Response:
    integration = _integration(ctx, key)
    if integration is None:
        return JSONResponse({"detail": f"no integration with key {key!r}"}, status_code=404)
    wait = _limiter(ctx).wait(key, integration.rate_limit)
    if wait:
        return _too_many(wait, {"detail": "rate limit exceeded; retry later"})
    raw = await request.body()
    received = ctx.clock()
    try:
        signals = _parser(integration)(_decode(raw))
    except PayloadError as exc:
        await _reject(ctx, key, integration.type, raw, exc)
        return JSONResponse({"detail": exc.message, "errors": exc.errors}, status_code=400)
    delivery = Delivery(
        integration, integration.type, raw.decode("utf-8", "replace"), received, tuple(signals)
    )
    result = await _deliver(ctx, delivery)
    # orjson: a hundred outcomes encode several times faster than with json.
    return Response(orjson.dumps(_ingested_body(result)), 202, media_type="application/json")


def _pd_error(status: int, message: str, errors: list[str]) -> JSONResponse:
    return JSONResponse(
        {"status": "invalid event", "message": message, "errors": errors}, status_code=status
    )


async def _pd_body(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    if len(raw) > PD_MAX_BODY:
        raise PayloadError("Request body too large", [f"body is over {PD_MAX_BODY} bytes"])
    return raw, _decode(raw)


def _routing_key(body: Any) -> str | None:
    key = body.get("routing_key") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


async def _pd_request(
    request: Request, ctx: AppContext
) -> tuple[bytes, Any, IntegrationConfig] | Response:
    """Read a PagerDuty request: body, routing key, integration and rate limit, or the answer."""
    try:
        raw, body = await _pd_body(request)
    except PayloadError as exc:
        status = 413 if exc.message.startswith("Request body too large") else 400
        return _pd_error(status, exc.message, exc.errors)
    key = _routing_key(body)
    if key is None:
        return _pd_error(400, "Event object is invalid", ["'routing_key' is missing or blank"])
    integration = _integration(ctx, key)
    if integration is None:
        return _pd_error(404, "Unknown routing key", ["'routing_key' matches no integration"])
    wait = _limiter(ctx).wait(key, integration.rate_limit)
    if wait:
        return _too_many(
            wait,
            {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. "
                "Please retry later.",
            },
        )
    return raw, body, integration


@router.post(
    "/v2/enqueue",
    status_code=202,
    summary="PagerDuty Events API v2: trigger, acknowledge or resolve an alert",
)
async def pd_enqueue(request: Request, ctx: Ctx) -> Response:
    checked = await _pd_request(request, ctx)
    if isinstance(checked, Response):
        return checked
    raw, body, integration = checked
    key = integration.key
    received = ctx.clock()
    try:
        signal = pagerduty.parse_event(body, new_key=_new_key)
    except PayloadError as exc:
        await _reject(ctx, key, "pagerduty", raw, exc)
        return _pd_error(400, exc.message, exc.errors)
    delivery = Delivery(
        integration, "pagerduty", raw.decode("utf-8", "replace"), received, (signal,)
    )
    await _deliver(ctx, delivery)
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": signal.dedup_key},
        status_code=202,
    )


@router.post(
    "/v2/change/enqueue",
    status_code=202,
    summary="PagerDuty Events API v2: record a change event on the service (never pages)",
)
async def pd_change(request: Request, ctx: Ctx) -> Response:
    checked = await _pd_request(request, ctx)
    if isinstance(checked, Response):
        return checked
    raw, body, integration = checked
    key = integration.key
    try:
        change = pagerduty.parse_change(body)
    except PayloadError as exc:
        await _reject(ctx, key, "pagerduty-change", raw, exc)
        return _pd_error(400, exc.message, exc.errors)
    delivery = Delivery(
        integration,
        "pagerduty-change",
        raw.decode("utf-8", "replace"),
        ctx.clock(),
        changes=(change,),
    )
    await _deliver(ctx, delivery)
    return JSONResponse({"status": "success", "message": "Change event processed"}, 202)


async def _heartbeat(ctx: AppContext, key: str) -> Response:
    with ctx.db.read() as session:
        config = alerting_config(session)
    beat = config.heartbeats.get(key)
    if beat is None:
        return JSONResponse({"detail": f"no heartbeat with key {key!r}"}, status_code=404)
    now = ctx.clock()
    await ctx.db.run_write(lambda s: heartbeats.record_ping(s, key, now))
    # The ping resolves the heartbeat's alert if one is open (dropped quietly otherwise).
    result = await _deliver(ctx, heartbeats.delivery(beat, Action.RESOLVE, now))
    recovered = any(o.action == "resolved" for o in result.outcomes)
    return JSONResponse({"status": "ok", "key": key, "at": now.isoformat(), "recovered": recovered})


@router.post("/api/v1/heartbeats/{key}", summary="Ping a heartbeat (GET works too)")
async def heartbeat_post(key: Key, ctx: Ctx) -> Response:
    return await _heartbeat(ctx, key)


@router.get("/api/v1/heartbeats/{key}", summary="Ping a heartbeat")
async def heartbeat_get(key: Key, ctx: Ctx) -> Response:
    return await _heartbeat(ctx, key)


@router.post(
    "/api/v1/integrations/{key}/dry-run",
    summary="Show what a sample payload would become, storing nothing",
)
async def dry_run(key: Key, request: Request, ctx: Ctx, _actor: Responder) -> Response:
    integration = _integration(ctx, key)
    if integration is None:
        raise NotFound(f"no integration with key {key!r}")
    raw = await request.body()
    try:
        signals = _parser(integration)(_decode(raw))
    except PayloadError as exc:
        return JSONResponse({"detail": exc.message, "errors": exc.errors}, status_code=400)
    return JSONResponse(
        {"integration": key, "type": integration.type, "alerts": [_signal_out(s) for s in signals]}
    )


def _signal_out(signal: Signal) -> dict[str, Any]:
    out = asdict(signal)
    out["class"] = out.pop("class_")
    for name in ("starts_at", "ends_at"):
        if out[name] is not None:
            out[name] = out[name].isoformat()
    return json.loads(json.dumps(out, default=str))  # type: ignore[no-any-return]


@router.post("/bench/null/enqueue", include_in_schema=False)
async def null_enqueue(request: Request, ctx: Ctx) -> Response:
    """Parse and validate like /v2/enqueue, store nothing: the ceiling for benchmarks."""
    if not ctx.settings.enable_null_ingest:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    try:
        _raw, body = await _pd_body(request)
        key = _routing_key(body)
        if key is None or _integration(ctx, key) is None:
            return _pd_error(404, "Unknown routing key", [])
        signal = pagerduty.parse_event(body, new_key=_new_key)
    except PayloadError as exc:
        return _pd_error(400, exc.message, exc.errors)
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": signal.dedup_key},
        status_code=202,
    )
