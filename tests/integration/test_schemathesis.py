"""Generated requests against every operation in /openapi.json: no input makes the server 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import ADMIN_TOKEN, FakeClock
from tocsin.api.app import create_app
from tocsin.core.actors import SYSTEM
from tocsin.services import incidents
from tocsin.storage.db import Database


@pytest.fixture
def api_schema(
    core_config: Database, make_settings: Callable[..., object], clock: FakeClock
) -> schemathesis.BaseSchema:
    # A few real incidents so generated ids sometimes hit existing rows, not only 404s.
    with core_config.write() as session:
        for n in range(3):
            incidents.declare(
                session,
                SYSTEM,
                clock(),
                incidents.Declaration(title=f"seed {n}", severity="P0", services=["api"]),
            )
        session.commit()
    app = create_app(make_settings(core_config.url), core_config, clock)  # type: ignore[arg-type]
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_500(api_schema: schemathesis.BaseSchema) -> None:
    # schemathesis.pytest.from_fixture does not work with pytest 9, so each operation's
    # hypothesis strategy is driven here directly; failures name the operation.
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=[not_a_server_error]
            )

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then fail once
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
