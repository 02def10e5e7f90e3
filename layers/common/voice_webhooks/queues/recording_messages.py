"""The message sent to RecordingsQueue once per completed recording, and its publisher.

The schema is versioned (`schema`); consumers must dedupe on `recordingSid` (delivery is
at-least-once, see docs/queue-messages.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from voice_webhooks.callbacks.models import AccountSid, CallSid, RecordingSid
from voice_webhooks.errors import StorageError
from voice_webhooks.runtime.aws_clients import sqs

SCHEMA: Final = "twilio-voice-webhooks.recording.v1"
# RecordingSource of the `<Record>` verb: the voicemail this service records after a session.
VOICEMAIL_SOURCE = "RecordVerb"
TWILIO_API = "https://api.twilio.com/2010-04-01"

RecordingKind = Literal["voicemail", "conversation"]

# SQS accepts only these characters in a message body and in attribute values (#x9 | #xA | #xD |
# #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF). Every other character (control characters,
# U+FFFE, U+FFFF) is replaced with U+FFFD in what is sent; the table keeps the value as received.
_NOT_SQS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"


def sqs_text(value: str) -> str:
    """`value` with every character SQS refuses replaced by U+FFFD."""
    return _NOT_SQS.sub(REPLACEMENT, value)


def recording_kind(source: str | None) -> RecordingKind:
    return "voicemail" if source == VOICEMAIL_SOURCE else "conversation"


class RecordingMessage(BaseModel):
    """Body of a RecordingsQueue message (JSON, camelCase keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    schema_: Literal["twilio-voice-webhooks.recording.v1"] = Field(SCHEMA, alias="schema")
    deduplication_id: str = Field(description="Stable per recording: the RecordingSid.")
    session_id: str
    # The SID types of Twilio's callbacks: a consumer builds S3 keys and URLs from these.
    account_sid: AccountSid
    call_sid: CallSid | None = None
    recording_sid: RecordingSid
    recording_url: str = Field(description="Media at this URL + `.wav` / `.mp3`, with HTTP Basic auth.")
    duration_seconds: int | None = None
    channels: int | None = None
    source: str | None = Field(None, description="Twilio's RecordingSource, e.g. RecordVerb")
    kind: RecordingKind
    conversation_sid: str | None = Field(None, description="From the session, when known at completion")
    flow: str | None = None
    started_at: datetime | None = None
    completed_at: datetime = Field(description="When this service first received the completed callback.")

    def body(self) -> str:
        """The JSON body, every string field through `sqs_text` (as the attributes are), so that a
        consumer sees the same value in both; JSON would escape control characters, not U+FFFE."""
        safe = {name: sqs_text(value) for name, value in self if isinstance(value, str)}
        return self.model_copy(update=safe).model_dump_json(by_alias=True)

    def attributes(self) -> dict[str, dict[str, str]]:
        """SQS message attributes, for filtering (EventBridge Pipes, subscription filters)."""
        values = {
            "schema": self.schema_,
            "AccountSid": self.account_sid,
            "RecordingKind": self.kind,
            "RecordingSource": self.source,
        }
        return {
            name: {"DataType": "String", "StringValue": sqs_text(value)}
            for name, value in values.items()
            if value
        }


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def message_for(
    session_id: str, session_item: Mapping[str, Any] | None, entry: Mapping[str, Any]
) -> RecordingMessage:
    """Built from the stored recording item (and the session item's ConversationSid and Flow),
    so every retry sends the same message. The recording's CallSid belongs to the session (the
    route checked the ownership rule before writing it)."""
    session_item = session_item or {}
    recording_sid = str(entry["RecordingSid"])
    account_sid = str(entry.get("AccountSid") or session_item["AccountSid"])
    # The completed callback always carries RecordingUrl; the canonical resource URL is the
    # same one, should a callback ever omit it.
    url = entry.get("Url") or f"{TWILIO_API}/Accounts/{account_sid}/Recordings/{recording_sid}"
    return RecordingMessage(
        deduplication_id=recording_sid,
        session_id=session_id,
        account_sid=account_sid,
        call_sid=entry.get("CallSid") or session_item.get("SessionCallSid"),
        recording_sid=recording_sid,
        recording_url=str(url),
        duration_seconds=_int_or_none(entry.get("Duration")),
        channels=_int_or_none(entry.get("Channels")),
        source=entry.get("Source"),
        kind=recording_kind(entry.get("Source")),
        conversation_sid=session_item.get("ConversationSid"),
        flow=session_item.get("Flow"),
        started_at=entry.get("StartTime"),
        completed_at=entry["CompletedAt"],
    )


class RecordingPublisher:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def publish(self, message: RecordingMessage) -> str:
        """Send the message; returns SQS's MessageId. FIFO queues get the RecordingSid as
        deduplication id (SQS then drops a second send within five minutes)."""
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MessageBody": message.body(),
            "MessageAttributes": message.attributes(),
        }
        if self.queue_url.endswith(".fifo"):
            request["MessageGroupId"] = message.session_id
            request["MessageDeduplicationId"] = message.deduplication_id
        try:
            response = sqs().send_message(**request)
        except ClientError as exc:
            raise StorageError(f"SQS send failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"SQS unreachable: {type(exc).__name__}") from exc
        return str(response["MessageId"])
