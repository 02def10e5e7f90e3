"""The typical call the cold-start and warm benchmarks replay: every request signed as Twilio
signs it, and each callback sent to the URL (with the session) the connect TwiML named."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator
from voicedev.bench.calls import CallFlowError, TypicalCall, answer_body
from voicedev.twilio_signing import DEV_AUTH_TOKEN

CONNECT_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Connect action="https://abc123example.execute-api.us-east-1.amazonaws.com/voice/action?session=S1#rc=3">'
    '<Conversation serviceInstanceSid="IS00000000000000000000000000000000" record="record-from-answer-dual"'
    ' statusCallback="https://abc123example.execute-api.us-east-1.amazonaws.com/voice/status?session=S1#rc=3"'
    ' statusCallbackEvent="call-initiated call-completed"'
    ' recordingStatusCallback="https://abc123example.execute-api.us-east-1.amazonaws.com/voice/recording?session=S1"'
    "/></Connect></Response>"
)


def signed_ok(event: dict[str, Any]) -> bool:
    body = base64.b64decode(event["body"]).decode() if event.get("isBase64Encoded") else event.get("body", "")
    query = f"?{event['rawQueryString']}" if event["rawQueryString"] else ""
    url = f"https://{event['headers']['host']}{event['rawPath']}{query}"
    params = dict(parse_qsl(body, keep_blank_values=True))
    return bool(
        RequestValidator(DEV_AUTH_TOKEN).validate(url, params, event["headers"]["x-twilio-signature"])
    )


def fields(event: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(base64.b64decode(event["body"]).decode(), keep_blank_values=True))


def test_the_connect_request_is_signed_and_calls_the_conversation_number() -> None:
    call = TypicalCall()

    event = call.connect_event()

    assert signed_ok(event)
    assert event["rawPath"] == "/voice/connect"
    assert fields(event)["To"] == "+15550100001"
    assert fields(event)["CallSid"] == call.identity.call_sid


def test_callbacks_need_the_connect_answer_first() -> None:
    with pytest.raises(CallFlowError, match="answered"):
        TypicalCall().status_event()


def test_callbacks_go_to_the_urls_the_connect_twiml_named_with_its_session() -> None:
    # Given a call whose connect request was answered
    call = TypicalCall(media_api_base="http://127.0.0.1:9/2010-04-01")
    call.answered(CONNECT_TWIML)

    # When its callbacks are built
    status = call.status_event(1, "call-initiated")
    recording = call.recording_event("completed")
    action = call.action_event()
    fallback = call.fallback_event()

    # Then each is signed, for the route and session the TwiML named
    assert call.session_id == "S1"
    for event, path in (
        (status, "/voice/status"),
        (recording, "/voice/recording"),
        (action, "/voice/action"),
    ):
        assert signed_ok(event)
        assert event["rawPath"] == path
        assert event["rawQueryString"] == "session=S1"
    assert signed_ok(fallback)
    assert fallback["rawPath"] == "/voice/fallback"
    assert fields(status)["SequenceNumber"] == "1"
    assert fields(status)["Status"] == "call-initiated"
    assert fields(recording)["RecordingStatus"] == "completed"
    assert fields(recording)["RecordingChannels"] == "2"
    assert fields(recording)["RecordingUrl"].startswith("http://127.0.0.1:9/2010-04-01/Accounts/AC")
    assert fields(action)["Result"] == "session-success"
    assert fields(action)["RecordingSid"] == call.recording_sid


def test_an_answer_without_a_conversation_is_not_the_typical_call() -> None:
    with pytest.raises(CallFlowError, match="no <Connect><Conversation>"):
        TypicalCall().answered("<Response><Say>Closed</Say></Response>")


def test_a_handler_answer_body_is_read_whether_base64_or_not() -> None:
    assert answer_body({"body": "<Response/>"}) == "<Response/>"
    assert answer_body({"body": base64.b64encode(b"<Response/>").decode(), "isBase64Encoded": True}) == (
        "<Response/>"
    )
    assert answer_body({"statusCode": 204}) == ""
