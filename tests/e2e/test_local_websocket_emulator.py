"""The emulator's relay scenarios over the local WebSocket API: canned TwiML points
`<ConversationRelay url>` at the local server, whose routes run a stand-in agent
(tests/e2e/fixtures/relay_agent_probe) that streams answers through @connections. An interrupt is
handled by its own invocation while the answer's invocation still streams, as in AWS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from voicedev.emulator.engine import run_call
from voicedev.emulator.output import call_report
from voicedev.emulator.scenarios import RELAY_SCENARIOS, Scenario, get
from voicedev.local_api import FunctionSpec
from voicedev.local_ws import LocalWebSocketApi, WebSocketApiSpec
from voicedev.scoped_environment import scoped_environment

from tests.e2e.test_local_websocket import Records
from tests.unit.test_emulator_signing import FakeTwilioApp, Received, config_for, fake_app

__all__ = ["fake_app"]

PROBE = FunctionSpec(
    name="RelayAgentProbe",
    code_uri=Path(__file__).resolve().parent / "fixtures" / "relay_agent_probe",
    handler="app.lambda_handler",
    timeout_seconds=29,
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LocalWebSocketApi, Records]]:
    records = Records()
    routes = {"$connect": PROBE, "$default": PROBE, "$disconnect": PROBE}
    api = LocalWebSocketApi(
        WebSocketApiSpec("ProbeApi", "relay", "$request.body.action", routes), 0, 0, on_event=records.append
    )
    api.bind()
    values = {
        **api.environment(),
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e",
        "AWS_REGION": "us-east-1",
    }
    with scoped_environment(values):
        api.start()
        try:
            yield api, records
        finally:
            api.stop()


def serve(app: FakeTwilioApp, api: LocalWebSocketApi) -> None:
    def relay(attempt: int) -> str:
        url = f"{api.url}?session=CA1-0123456789abcdef&amp;attempt={attempt}"
        return (
            '<Response><Connect action="/voice/action?session=CA1-0123456789abcdef">'
            f'<ConversationRelay url="{url}"/></Connect></Response>'
        )

    def action(request: Received) -> tuple[int, str, str]:
        params = request.params
        if params["SessionStatus"] == "failed" and params["CallStatus"] == "in-progress":
            return 200, "text/xml", relay(len(app.on("/voice/action")) + 1)
        if params["SessionStatus"] == "ended":
            return 200, "text/xml", "<Response><Dial>+15550100100</Dial></Response>"
        return 200, "text/xml", "<Response/>"

    app.routes.update({"/voice/connect": relay(1), "/voice/action": action})


@pytest.mark.parametrize("scenario", RELAY_SCENARIOS, ids=lambda scenario: scenario.name)
def test_every_relay_scenario_runs_over_the_local_websocket_api(
    fake_app: FakeTwilioApp, server: tuple[LocalWebSocketApi, Records], scenario: Scenario
) -> None:
    api, records = server
    serve(fake_app, api)
    before = len(records.items)
    result = run_call(config_for(fake_app), scenario)
    assert result.ok, call_report(result)
    assert all(url.startswith(api.url + "?session=") for url in result.relay_urls)
    # every session's close reached $disconnect, and every frame its own $default invocation
    assert scenario.relay_script is not None
    sessions = len(scenario.relay_script.sessions)
    deadline = time.monotonic() + 10
    while sum(r.route_key == "$disconnect" for r in records.items[before:]) < sessions:
        assert time.monotonic() < deadline, [r.line() for r in records.items[before:]]
        time.sleep(0.05)
    assert all(r.status == 200 for r in records.items[before:])


def test_an_interrupt_stops_the_streaming_invocation_within_one_token(
    fake_app: FakeTwilioApp, server: tuple[LocalWebSocketApi, Records]
) -> None:
    api, _ = server
    serve(fake_app, api)
    result = run_call(config_for(fake_app), get("relay-interrupt"))
    assert result.ok, call_report(result)
    interrupted = next(turn for turn in result.turns if "[interrupted]" in turn.text)
    late = int(interrupted.detail.split("; ")[1].split()[0])
    assert late <= 1, interrupted


def test_a_dropped_socket_is_1006_and_the_reconnect_a_new_connection(
    fake_app: FakeTwilioApp, server: tuple[LocalWebSocketApi, Records]
) -> None:
    api, records = server
    serve(fake_app, api)
    before = len(records.items)
    result = run_call(config_for(fake_app), get("relay-reconnect"))
    assert result.ok, call_report(result)
    records.wait_for(
        lambda record: record.route_key == "$disconnect"
        and record in records.items[before:]
        and record.event["requestContext"]["disconnectStatusCode"] == 1006
    )
    connects = [record for record in records.items[before:] if record.route_key == "$connect"]
    assert [record.event["queryStringParameters"]["attempt"] for record in connects] == ["1", "2"]
    assert len({record.connection_id for record in connects}) == 2
