"""Property-based tests of the API from its own OpenAPI schema (schemathesis): whatever a client sends that the
schema allows, or almost allows, the server answers without a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from http_server import TOKEN, Server
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, index_cache):
    running = Server(
        tmp_path_factory.mktemp("schema"),
        index_cache,
        VESALIUS_API_TOKEN=TOKEN,
        VESALIUS_RATE_LIMIT_PER_MINUTE="100000",
        VESALIUS_MAX_UPLOAD_MB="4",
    )
    yield running
    running.stop()


def test_no_request_gets_a_server_error(api_server):
    # Each operation's strategy driven by hypothesis directly: schemathesis's pytest plugin does not load under
    # this pytest, and one test over every operation is enough here.
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            calls.append(1)
            try:
                case.call_and_validate(headers=AUTH, checks=[not_a_server_error], timeout=120)
            except AssertionError as exc:  # schemathesis reports its failures as assertion errors
                failures.append(f"{case.operation.label}: {str(exc)[:300]}")
                raise

        try:
            check()
        except AssertionError:
            pass  # recorded; every operation is still tried
    assert failures == []
    assert len(calls) >= 5 * len(operations)
