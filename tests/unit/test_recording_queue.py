"""The RecordingsQueue message: built from the stored session item only, versioned, with filter
attributes; and the publisher against SQS (moto), standard and FIFO."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError
from voice_webhooks.errors import StorageError
from voice_webhooks.queues.recording_messages import SCHEMA, RecordingMessage, RecordingPublisher, message_for

ACCOUNT = "AC" + "0" * 32
CALL = "CA" + "1" * 32
SID = "RE" + "a" * 32
URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}"


def session_item(**entry_changes: Any) -> dict[str, Any]:
    entry = {
        "Status": "completed",
        "Duration": 14,
        "Channels": 1,
        "Source": "RecordVerb",
        "Url": URL,
        "StartTime": "2022-05-07T01:04:05+00:00",
        "CallSid": CALL,
        "AccountSid": ACCOUNT,
        "UpdatedAt": "2022-05-07T01:04:30+00:00",
        "CompletedAt": "2022-05-07T01:04:30+00:00",
        "QueueClaimId": "claim",
        "QueueLeaseUntil": 123,
        **entry_changes,
    }
    return {
        "SessionId": "session-1",
        "ItemKey": "session",
        "SessionCallSid": CALL,
        "AccountSid": ACCOUNT,
        "Flow": "frontline",
        "ConversationSid": "CH" + "2" * 32,
        "Recordings": {SID: {name: value for name, value in entry.items() if value is not None}},
    }


def message_of(item: dict[str, Any]) -> RecordingMessage:
    """The message for the recording `item` holds (its `recording#` item, beside the session)."""
    return message_for("session-1", item, {**item["Recordings"][SID], "RecordingSid": SID})


def test_the_message_is_built_from_the_stored_entry_and_session() -> None:
    # Given a session item holding a completed voicemail recording
    item = session_item()

    # When its message is built
    message = message_of(item)

    # Then the body is the versioned schema, camelCase, with the session's conversation and flow
    assert json.loads(message.body()) == {
        "schema": SCHEMA,
        "deduplicationId": SID,
        "sessionId": "session-1",
        "accountSid": ACCOUNT,
        "callSid": CALL,
        "recordingSid": SID,
        "recordingUrl": URL,
        "durationSeconds": 14,
        "channels": 1,
        "source": "RecordVerb",
        "kind": "voicemail",
        "conversationSid": "CH" + "2" * 32,
        "flow": "frontline",
        "startedAt": "2022-05-07T01:04:05Z",
        "completedAt": "2022-05-07T01:04:30Z",
    }
    assert message.attributes() == {
        "schema": {"DataType": "String", "StringValue": SCHEMA},
        "AccountSid": {"DataType": "String", "StringValue": ACCOUNT},
        "RecordingKind": {"DataType": "String", "StringValue": "voicemail"},
        "RecordingSource": {"DataType": "String", "StringValue": "RecordVerb"},
    }


def test_the_same_stored_entry_always_gives_the_same_message() -> None:
    # A retry rebuilds the message from the item: nothing of the retrying request goes in.
    assert message_of(session_item()).body() == message_of(session_item()).body()


def test_a_recording_not_from_record_is_a_conversation_recording_and_unknown_fields_are_left_out() -> None:
    item = session_item(Source="DialVerb", Duration=None, Channels=None, StartTime=None)
    item.pop("ConversationSid")

    message = message_of(item)

    assert message.kind == "conversation"
    body = json.loads(message.body())
    assert (body["durationSeconds"], body["channels"], body["startedAt"], body["conversationSid"]) == (
        None,
        None,
        None,
        None,
    )


def test_a_missing_url_falls_back_to_the_recording_resource_url() -> None:
    message = message_of(session_item(Url=None))

    assert message.recording_url == URL


def test_a_message_without_source_has_no_source_attribute() -> None:
    message = message_of(session_item(Source=None))

    assert "RecordingSource" not in message.attributes()
    assert message.kind == "conversation"


def test_the_schema_is_fixed_and_unknown_fields_are_refused() -> None:
    fields = json.loads(message_of(session_item()).body())

    with pytest.raises(ValidationError):
        RecordingMessage.model_validate({**fields, "schema": "twilio-voice-webhooks.recording.v2"})
    with pytest.raises(ValidationError):
        RecordingMessage.model_validate({**fields, "extra": 1})
    assert RecordingMessage.model_validate(fields).body() == json.dumps(fields, separators=(",", ":"))


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_the_publisher_sends_the_body_and_attributes(sqs) -> None:
    url = sqs.create_queue(QueueName="RecordingsQueue")["QueueUrl"]
    message = message_of(session_item())

    message_id = RecordingPublisher(url).publish(message)

    [received] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert received["MessageId"] == message_id
    assert received["Body"] == message.body()
    assert received["MessageAttributes"] == {
        name: {"DataType": "String", "StringValue": value["StringValue"]}
        for name, value in message.attributes().items()
    }


def test_a_fifo_queue_drops_a_second_send_of_the_same_recording(sqs) -> None:
    url = sqs.create_queue(QueueName="RecordingsQueue.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    publisher = RecordingPublisher(url)
    message = message_of(session_item())

    publisher.publish(message)
    publisher.publish(message)

    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["recordingSid"] for m in messages] == [SID]


def test_a_queue_that_does_not_exist_is_a_storage_error(sqs) -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"

    with pytest.raises(StorageError):
        RecordingPublisher(url).publish(message_of(session_item()))
