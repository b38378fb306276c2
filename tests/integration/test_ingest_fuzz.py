"""Generated payloads at every ingest format over HTTP: a clear 4xx or a 2xx, never a 500,
and a good event right after bad ones still goes through."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_ingest import AM_URL, PD_KEY, am_alert, am_payload, pd_event

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


def _near_pd(action: str, summary: Any, severity: Any, dedup: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": PD_KEY, "event_action": action, "dedup_key": dedup}
    body["payload"] = {"summary": summary, "source": "s", "severity": severity}
    return body


near_pd = st.builds(
    _near_pd,
    st.sampled_from(["trigger", "acknowledge", "resolve", "bogus", ""]),
    json_values,
    st.sampled_from(["critical", "error", "warning", "info", "CRITICAL", 3]),
    json_values,
)
near_am = st.builds(
    lambda alerts, status: {"version": "4", "status": status, "alerts": alerts},
    st.lists(
        st.fixed_dictionaries(
            {"status": st.sampled_from(["firing", "resolved", 1]), "labels": json_values},
            optional={"startsAt": json_values, "fingerprint": json_values,
                      "annotations": json_values},
        ),
        max_size=4,
    )
    | json_values,
    json_values,
)  # fmt: skip
ENDPOINTS = {
    "/v2/enqueue": st.one_of(json_values, near_pd),
    "/v2/change/enqueue": st.one_of(
        json_values, st.builds(lambda p: {"routing_key": PD_KEY, "payload": p}, json_values)
    ),
    AM_URL: st.one_of(json_values, near_am),
    "/api/v1/ingest/grafana-main-0001": st.one_of(json_values, near_am),
    "/api/v1/ingest/uptime-generic-0001": json_values,
}
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(api: TestClient, url: str, body: Any, raw: bytes | None = None) -> None:
    content = raw if raw is not None else json.dumps(body).encode()
    res = api.post(url, content=content, headers={"Content-Type": "application/json"})
    assert res.status_code < 500, (url, body, res.text)
    assert res.headers["content-type"].startswith("application/json")
    if res.status_code >= 400:
        detail = res.json()
        assert detail.get("detail") or detail.get("message"), detail


@FUZZ
@given(data=st.data())
def test_every_ingest_format_answers_generated_payloads_clearly(
    alerting_api: TestClient, data: st.DataObject
) -> None:
    for url, strategy in ENDPOINTS.items():
        _check(alerting_api, url, data.draw(strategy, label=url))
    raw = data.draw(st.binary(max_size=64), label="raw bytes")
    _check(alerting_api, AM_URL, None, raw)
    # Good input right after: accepted and stored.
    good = alerting_api.post("/v2/enqueue", json=pd_event(dedup_key="good-one"))
    assert good.status_code == 202
    fired = alerting_api.post(AM_URL, json=am_payload(am_alert("Good", cluster="z")))
    assert fired.status_code == 202
