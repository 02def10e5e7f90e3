"""Every relay scenario against the real, plain `make local` (config/flows.example.json: the agent
line's `concierge` flow, a relay flow without `url` whose scripted agent runs behind the local
WebSocket API), then what the agent stored: each turn once, in order.

These run once template.yaml has the WebSocket API and its handlers (issue 11's AWS side); until
then they are skipped, and the local WebSocket API itself is covered by test_local_websocket.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
from boto3.dynamodb.conditions import Key
from voicedev.emulator.engine import CallResult, EmulatorConfig, run_call
from voicedev.emulator.output import call_report
from voicedev.emulator.relay import Interrupt, Press, Speak, open_socket
from voicedev.emulator.scenarios import AGENT_LINE, RELAY_SCENARIOS, Scenario, get
from voicedev.local_ws import template_has_websocket_api
from voicedev.twilio_signing import DEV_AUTH_TOKEN
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import LocalModeProcess, connect_params, running_local_mode

pytestmark = pytest.mark.skipif(
    not template_has_websocket_api(),
    reason="template.yaml has no WebSocket API yet (the relay agent's handlers, issue 11, are not merged)",
)

SUPPORT = "+15550100100"  # flows.example.json: the `concierge` flow's `support` target


@pytest.fixture(scope="module")
def relay_local(venv_ready: None) -> Iterator[LocalModeProcess]:
    with running_local_mode() as local:
        yield local


def play(local: LocalModeProcess, scenario: Scenario) -> CallResult:
    config = EmulatorConfig(base_url=local.api_url, agent_number=AGENT_LINE, timeout=15.0)
    result = run_call(config, scenario)
    assert result.ok, call_report(result) + "\n" + local.output()[-3000:]
    return result


def turns(local: LocalModeProcess, session_id: str) -> list[dict[str, Any]]:
    response = local.table().query(
        KeyConditionExpression=Key("SessionId").eq(session_id), ConsistentRead=True
    )
    items = [item for item in response["Items"] if str(item.get("ItemKey", "")).startswith("turn#")]
    return sorted(items, key=lambda item: str(item["ItemKey"]))


@pytest.mark.parametrize("scenario", RELAY_SCENARIOS, ids=lambda scenario: scenario.name)
def test_each_relay_scenario_runs_over_the_local_websocket_and_stores_each_turn_once(
    relay_local: LocalModeProcess, scenario: Scenario
) -> None:
    # When the emulator plays the scenario against the local mode's relay agent
    result = play(relay_local, scenario)

    # Then it talked to the local WebSocket API, one attempt after another
    assert result.relay_urls
    for attempt, url in enumerate(result.relay_urls, start=1):
        assert url.startswith(f"ws://127.0.0.1:{relay_local.ws_port}/relay?"), url
        assert dict(parse_qsl(urlsplit(url).query))["attempt"] == str(attempt)

    # and every caller turn is stored once, in the order said, beside the agent's replies
    assert scenario.relay_script is not None
    steps = [step for session in scenario.relay_script.sessions for step in session]
    stored = turns(relay_local, result.session_ids[0])
    prompts = [item["Text"] for item in stored if item["Kind"] == "prompt"]
    assert prompts == [step.text for step in steps if isinstance(step, Speak | Interrupt)]
    digits = [item["Text"] for item in stored if item["Kind"] == "dtmf"]
    assert digits == [step.digit for step in steps if isinstance(step, Press)]
    assert [item["Role"] for item in stored if item["Kind"] == "reply"] == ["agent"] * len(
        [item for item in stored if item["Kind"] == "reply"]
    )
    assert len([item for item in stored if item["Kind"] == "reply"]) >= len(prompts) + len(digits)
    assert len({item["ItemKey"] for item in stored}) == len(stored)


def test_an_interrupted_reply_is_stored_as_heard(relay_local: LocalModeProcess) -> None:
    result = play(relay_local, get("relay-interrupt"))
    stored = turns(relay_local, result.session_ids[0])
    interrupted = [item for item in stored if item.get("Interrupted") is True]
    assert len(interrupted) == 1, stored
    heard = str(interrupted[0]["Heard"])
    spoken = next(turn for turn in result.turns if "[interrupted]" in turn.text)
    assert heard == spoken.text.removesuffix(" [interrupted]")


def test_the_handoff_dials_the_allowed_target(relay_local: LocalModeProcess) -> None:
    result = play(relay_local, get("relay-handoff"))
    action = result.document("action")
    assert action is not None
    dial = ElementTree.fromstring(action.xml).find("Dial")
    assert dial is not None, action.xml
    numbers = [number.text for number in dial.iter("Number")] or [(dial.text or "").strip()]
    assert numbers == [SUPPORT]
    assert result.relay_sessions[0].status == "ended"


def test_the_reconnect_resumes_the_same_session(relay_local: LocalModeProcess) -> None:
    result = play(relay_local, get("relay-reconnect"))
    sessions = {dict(parse_qsl(urlsplit(url).query))["session"] for url in result.relay_urls}
    assert sessions == {result.session_ids[0]}
    attempts = {str(item["ItemKey"]).split("#")[1] for item in turns(relay_local, result.session_ids[0])}
    assert {"01", "02"} <= attempts


def test_an_unsigned_or_wrongly_signed_handshake_is_refused(relay_local: LocalModeProcess) -> None:
    # Given the relay URL a real connect TwiML hands out
    answer = relay_local.post("/voice/connect", connect_params(AGENT_LINE))
    assert answer.status == 200, answer.body
    relay = ElementTree.fromstring(answer.body).find("Connect/ConversationRelay")
    assert relay is not None
    url = str(relay.get("url"))

    # When it is opened unsigned, or signed with another token / Then 403, no socket
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as unsigned:
        connect(url, proxy=None, open_timeout=10, legacy=True)
    assert unsigned.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as wrong:
        open_socket(url, "not-the-" + DEV_AUTH_TOKEN, 10)
    assert wrong.value.response.status_code == 403
    # and the rightly signed one opens
    open_socket(url, DEV_AUTH_TOKEN, 10).close()
