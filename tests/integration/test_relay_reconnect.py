"""The action route reconnects a caller whose relay WebSocket dropped mid-call, and the connect
route points a relay flow without `url` at this stack's WebSocket API."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from voicedev.relay_events import SAMPLE_SESSION_ID, prompt_frame
from voicedev.sample_events import call_params, relay_action_params
from voicedev.twilio_signing import SAMPLE_API_DOMAIN, http_api_event

from tests.integration import relay_helpers
from tests.integration.relay_helpers import Relay
from tests.support import body_text

relay = relay_helpers.relay  # the fixture
RELAY_BASE = "wss://ws123example.execute-api.us-east-1.amazonaws.com/relay"
ASSISTANT_NUMBER = "+15550100002"  # not in relay-flows.json's numbers: the default flow, `assistant`


@pytest.fixture(autouse=True)
def _relay_url(relay: Relay) -> None:
    relay.aws.env(RELAY_PUBLIC_URL=RELAY_BASE)


def action(relay: Relay, attempt: int | None, **fields: str) -> str:
    query = f"session={SAMPLE_SESSION_ID}" + (f"&attempt={attempt}" if attempt else "")
    params = relay_action_params(
        fields.pop("SessionStatus", "failed"),
        CallSid=SAMPLE_SESSION_ID.split("-")[0],
        To=ASSISTANT_NUMBER,
        **fields,
    )
    event = http_api_event("POST", f"https://{SAMPLE_API_DOMAIN}/voice/action?{query}", params)
    answer: dict[str, Any] = relay.invoke("action", event)
    assert answer["statusCode"] == 200
    return unescape(body_text(answer))


def relay_url_in(twiml: str) -> str | None:
    found = re.search(r'<ConversationRelay[^>]* url="([^"]+)"', twiml)
    return found.group(1) if found else None


DROPPED = {"CallStatus": "in-progress", "ErrorCode": "39001", "ErrorMessage": "Network connection failed"}


def test_dropped_websocket_is_answered_with_a_reconnect_to_the_same_session(relay: Relay) -> None:
    # Given the first attempt's WebSocket failed while the call goes on
    # When Twilio sends the action request
    twiml = action(relay, None, **DROPPED)

    # Then the caller is reconnected to the same session, attempt 2, without the greeting again
    assert relay_url_in(twiml) == f"{RELAY_BASE}?session={SAMPLE_SESSION_ID}&attempt=2"
    assert f"/voice/action?session={SAMPLE_SESSION_ID}&attempt=2" in twiml
    assert "welcomeGreeting" not in twiml
    # And the request that ended attempt 1 is stored once
    stored = relay.item("action#connect#01")
    assert stored is not None and stored["Outcome"] == "reconnect" and stored["NextAttempt"] == 2


def test_repeated_delivery_gets_the_same_reconnect(relay: Relay) -> None:
    first = action(relay, 2, **DROPPED)
    second = action(relay, 2, **DROPPED)
    assert (
        relay_url_in(first) == relay_url_in(second) == f"{RELAY_BASE}?session={SAMPLE_SESSION_ID}&attempt=3"
    )
    assert relay.item("action#connect#02") is not None


def test_reconnects_stop_after_max_attempts_with_the_failure_outcome(relay: Relay) -> None:
    # Given the flow allows 2 reconnects, and attempt 3 (the second reconnect) dropped too
    # When Twilio sends its action request
    twiml = action(relay, 3, **DROPPED)

    # Then the flow's failure outcome answers: apology, then the support target is dialled
    assert relay_url_in(twiml) is None
    assert "<Dial" in twiml and "+15550100100" in twiml


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"CallStatus": "completed", "ErrorCode": "39001"}, id="caller hung up"),
        pytest.param({"CallStatus": "in-progress", "ErrorCode": "12345"}, id="not a WebSocket error"),
    ],
)
def test_other_failures_are_not_reconnected(relay: Relay, fields: dict[str, str]) -> None:
    assert relay_url_in(action(relay, None, **fields)) is None


def test_a_flow_with_its_own_url_is_not_reconnected_by_default(relay: Relay) -> None:
    # Given the default example config, whose relay flow points at its own server
    from tests.conftest import EXAMPLE_FLOWS

    relay.aws.env(FLOW_CONFIG=str(EXAMPLE_FLOWS))
    assert relay_url_in(action(relay, None, **DROPPED)) is None


def test_reconnected_attempt_resumes_the_conversation(relay: Relay) -> None:
    # Given attempt 1 had a turn, and the caller was reconnected
    relay.open("conn-1", attempt=1)
    relay.send(prompt_frame("hours"), "conn-1")
    action(relay, None, **DROPPED)

    # When attempt 2 connects and the caller speaks
    relay.open("conn-2", attempt=2)
    relay.send(prompt_frame("agent please"), "conn-2")

    # Then attempt 2's turns follow attempt 1's in the session
    keys = [turn["ItemKey"] for turn in relay.turns()]
    assert keys[:3] == ["turn#01#000000", "turn#01#000001", "turn#01#000002"]
    assert keys[3:] and all(key.startswith("turn#02#") for key in keys[3:])
    assert relay.recorder.frames("end")


def test_an_agent_reads_the_history_of_every_attempt_as_far_back_as_it_asks(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections.abc import Iterator

    from voice_webhooks.relay import conversation
    from voice_webhooks.relay.agent import CallerTurn, SessionContext, TextToken

    # Given an agent that reads its last 3 turns and its whole history, after a reconnect
    seen: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]] = []

    class Reader:
        def respond(self, context: SessionContext, turn: CallerTurn) -> Iterator[TextToken]:
            recent = [(past.kind, past.text) for past in context.recent_history(3)]
            every = [(past.kind, past.text) for past in context.history]
            seen.append((recent, every))
            yield TextToken("Noted.", last=True)

    monkeypatch.setattr(conversation, "agent_for", lambda config: Reader())
    relay.open("conn-1", attempt=1)
    relay.send(prompt_frame("hours"), "conn-1")
    action(relay, None, **DROPPED)
    relay.open("conn-2", attempt=2)

    # When the caller speaks on attempt 2
    relay.send(prompt_frame("and on Sunday?"), "conn-2")

    # Then the agent saw attempt 1's turns before attempt 2's, oldest first, and not the current one
    recent, every = seen[-1]
    assert recent == [("prompt", "hours"), ("reply", "Noted."), ("setup", "")]
    assert every == [("setup", ""), ("prompt", "hours"), ("reply", "Noted."), ("setup", "")]


def test_connect_points_a_relay_flow_without_url_at_the_stack(relay: Relay) -> None:
    # Given the called number's flow is a relay flow without url
    event = http_api_event(
        "POST", f"https://{SAMPLE_API_DOMAIN}/voice/connect", call_params(ASSISTANT_NUMBER)
    )

    # When the call is answered
    twiml = unescape(body_text(relay.invoke("connect", event)))

    # Then <ConversationRelay url> is the stack's relay with the new session, attempt 1
    url = relay_url_in(twiml)
    assert url is not None
    assert re.fullmatch(re.escape(RELAY_BASE) + r"\?session=CA[0-9a-f]{32}-[0-9a-f]{16}&attempt=1", url)
