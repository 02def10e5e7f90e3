"""Values a caller or an AI application can influence never reach the logs as sent: unknown values
of Twilio's enumerated fields and HandoffData's key names are logged reduced (length and a short
hash) unless they are plain words, and a refused hand-off target is always reduced."""

from __future__ import annotations

import io
import json
import re
from typing import Any
from xml.etree import ElementTree

import pytest
from voice_webhooks.edge import routes
from voice_webhooks.runtime.observability import log_safe
from voicedev.twilio_signing import DEV_ACCOUNT_SID, http_api_event, random_sid

from tests.integration.callback_helpers import BASE_URL, deliver, fixture, open_session, session_url
from tests.support import body_text

# A number and card numbers, inside a Twilio-like value and bare.
DANGEROUS = (
    "call-forwarded-to-+15557654321",
    "+15557654321",
    "4111111111111111",
    "card-4111-1111-1111-1111",
    "4111 1111 1111 1111",
)
LEAK = re.compile(r"5557654321|4111.?1111.?1111.?1111")
RELAY_NUMBER = "+15550100002"  # config/flows.example.json: `assistant`, a relay flow


def leaks(logs: str) -> list[str]:
    return LEAK.findall(logs)


@pytest.mark.parametrize("value", DANGEROUS)
def test_unknown_enum_values_are_logged_reduced_on_every_route(
    aws: Any, invoke: Any, log_output: io.StringIO, value: str
) -> None:
    # Given an open session
    session = open_session(invoke, random_sid("CA"))
    status = fixture("status_callbacks.json")["events"][0]
    recording = fixture("recording_callbacks.json")["conversation"]["completed"]
    action = fixture("action/conversation-dialed-call-incomplete.json")["params"]

    # When Twilio sends the value in every enumerated field of every callback
    deliver(invoke, "status", session.status_url, {**status, "CallSid": session.call_sid, "Status": value})
    deliver(
        invoke,
        "recording",
        session.recording_url,
        {**recording, "CallSid": session.call_sid, "RecordingStatus": value, "RecordingChannels": value},
    )
    deliver(
        invoke,
        "action",
        session_url(routes.ACTION, session.session_id),
        {**action, "CallSid": session.call_sid, "Result": value, "DialCallStatus": value},
    )

    # Then the unknown values were logged, each reduced: never the number or the card
    logs = log_output.getvalue()
    assert logs.count(log_safe(value)) >= 3
    assert leaks(logs) == []


def relay_session(invoke: Any) -> tuple[str, str]:
    call_sid = random_sid("CA")
    params = {"AccountSid": DEV_ACCOUNT_SID, "CallSid": call_sid, "From": "+15550109999", "To": RELAY_NUMBER}
    response = invoke("connect", http_api_event("POST", f"{BASE_URL}{routes.CONNECT}", params))
    connect = ElementTree.fromstring(body_text(response)).find("./Connect")
    assert connect is not None
    return call_sid, connect.attrib["action"].split("#", 1)[0]


@pytest.mark.parametrize("value", DANGEROUS)
def test_handoff_key_names_and_targets_are_logged_reduced(
    aws: Any, invoke: Any, log_output: io.StringIO, value: str
) -> None:
    # Given a ConversationRelay session whose application ends it with HandoffData that puts the
    # value in a key name and in the target
    call_sid, action_url = relay_session(invoke)
    params = {
        **fixture("action/relay-ended-handoff.json")["params"],
        "CallSid": call_sid,
        "HandoffData": json.dumps({value: "x", "reason": "caller asked", "target": value}),
    }

    # When the action request arrives
    assert deliver(invoke, "action", action_url, params) == 200

    # Then the hand-off is logged with the key names and the refused target reduced
    logs = log_output.getvalue()
    assert log_safe(value) in logs and '"reason"' in logs
    assert leaks(logs) == []
    stored = json.dumps([item for item in aws.items() if "ConnectAction" in item], default=str)
    assert leaks(stored) == []


def test_plain_words_stay_readable() -> None:
    assert log_safe("routing-overflow") == "routing-overflow"
    assert log_safe("reason") == "reason"
    assert log_safe("step2") == "step2"
    assert log_safe("+15557654321").startswith("<12 chars #")
