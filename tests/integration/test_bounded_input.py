"""Signed but hostile input that DynamoDB or SQS would refuse, under moto (which checks neither):
oversized values, characters outside SQS's set, many recordings in one session. Each ends as
docs/data-model.md ("Bounded items") and docs/queue-messages.md say: nothing lost, no 5xx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from voice_webhooks.runtime import aws_clients
from voicedev.twilio_signing import random_sid

from tests.integration.callback_helpers import deliver, fixture, open_session

COMPLETED: dict[str, str] = fixture("recording_callbacks.json")["conversation"]["completed"]
CALL = COMPLETED["CallSid"]
STATUS_EVENTS: list[dict[str, str]] = fixture("status_callbacks.json")["events"]
# What SQS accepts in a message body and attribute values (its documented character set).
SQS_CHARACTERS = re.compile("^[\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


@pytest.fixture
def sent_to_sqs(aws: Any) -> Iterator[list[dict[str, Any]]]:
    """Every SendMessage request as the route made it (moto itself does not check characters)."""
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    events = aws_clients.sqs().meta.events
    events.register("provide-client-params.sqs.SendMessage", capture, unique_id="capture-send")
    yield sent
    events.unregister("provide-client-params.sqs.SendMessage", unique_id="capture-send")


def recording(sid: str | None = None, **changes: str) -> dict[str, str]:
    sid = sid or random_sid("RE")
    return {
        **COMPLETED,
        "RecordingSid": sid,
        "RecordingUrl": COMPLETED["RecordingUrl"][:-34] + sid,
        **changes,
    }


def test_values_outside_sqs_characters_are_replaced_in_the_message_and_kept_in_the_table(
    aws, invoke, sent_to_sqs
) -> None:
    # Given a session whose status callback carried a ConversationSid with U+FFFE
    session = open_session(invoke, CALL)
    hostile_conversation = "CH\ufffe" + "a" * 31
    assert (
        deliver(
            invoke,
            "status",
            session.status_url,
            {**STATUS_EVENTS[0], "ConversationSid": hostile_conversation},
        )
        == 204
    )

    # When a recording completes whose RecordingSource has control characters and U+FFFF
    params = recording(RecordingSource="Dial\x01Verb\x1f\uffff")
    assert deliver(invoke, "recording", session.recording_url, params) == 204

    # Then exactly one message was sent, and neither its body nor any attribute holds a
    # character outside SQS's set: each such character became U+FFFD
    [request] = sent_to_sqs
    assert SQS_CHARACTERS.match(request["MessageBody"])
    for attribute in request["MessageAttributes"].values():
        assert SQS_CHARACTERS.match(attribute["StringValue"])
    body = json.loads(request["MessageBody"])
    assert body["conversationSid"] == "CH\ufffd" + "a" * 31
    assert body["source"] == "Dial\ufffdVerb\ufffd\ufffd"
    assert request["MessageAttributes"]["RecordingSource"]["StringValue"] == "Dial\ufffdVerb\ufffd\ufffd"
    # And the table keeps what Twilio sent
    stored = aws.item(session.session_id, f"recording#{params['RecordingSid']}")
    assert stored["Source"] == "Dial\x01Verb\x1f\uffff"
    assert aws.item(session.session_id)["ConversationSid"] == hostile_conversation


def test_oversized_recording_callbacks_are_refused_and_an_ordinary_one_is_still_queued(aws, invoke) -> None:
    # Given a session, and four signed recording callbacks with a 60 KB RecordingUrl
    session = open_session(invoke, CALL)
    oversized = [recording(RecordingUrl="https://api.twilio.com/" + "x" * 60_000) for _ in range(4)]

    # When they arrive, then each is refused (400: over the RecordingUrl cap) and nothing is stored
    answers = [deliver(invoke, "recording", session.recording_url, params) for params in oversized]
    assert answers == [400] * 4
    assert not [item for item in aws.items(session.session_id) if item["ItemKey"].startswith("recording#")]

    # And an ordinary completed recording of the same session is stored and queued
    assert deliver(invoke, "recording", session.recording_url, recording()) == 204
    assert len(aws.messages()) == 1


def test_recordings_at_the_url_cap_are_each_their_own_item_and_all_get_queued(aws, invoke) -> None:
    # Given a session with 30 recordings whose RecordingUrl is at its 2048-character cap
    session = open_session(invoke, CALL)
    long_url = "https://api.twilio.com/" + "x" * (2048 - len("https://api.twilio.com/"))
    for _ in range(30):
        assert deliver(invoke, "recording", session.recording_url, recording(RecordingUrl=long_url)) == 204

    # Then one more ordinary recording is still stored and queued, and no item holds more than one
    last = recording()
    assert deliver(invoke, "recording", session.recording_url, last) == 204
    items = [item for item in aws.items(session.session_id) if item["ItemKey"].startswith("recording#")]
    assert len(items) == 31
    assert aws.item(session.session_id, f"recording#{last['RecordingSid']}")["QueueMessageId"]
    assert "Recordings" not in aws.item(session.session_id)
