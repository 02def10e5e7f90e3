"""The requests of one typical call, as Twilio sends them (signed HTTP API v2 events), built the
way the emulator builds them: the connect request; then, from the TwiML it answered, a status
callback, a completed recording, the `<Connect action>` request; the fallback URL's request; and
the SQS event the archiver gets for the queued recording. The cold-start and warm-request
benchmarks both use these, so each route is measured on its usual path."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from voice_webhooks.edge import routes

from voicedev.emulator import params as p
from voicedev.emulator.scenarios import CONVERSATION_LINE
from voicedev.emulator.twiml import Connect, Conversation, Target, parse_document
from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event

API_BASE = f"https://{SAMPLE_API_DOMAIN}"
TALK_SECONDS = 60


class CallFlowError(RuntimeError):
    """An answer was not what a typical call gets (the benchmark would measure another path)."""


@dataclass
class TypicalCall:
    """An inbound call to the `<Conversation>` number: a worker answers, they talk a minute, the
    dual-channel recording completes. `media_api_base` points RecordingUrls at a local media host."""

    media_api_base: str | None = None
    identity: p.CallIdentity = field(
        default_factory=lambda: p.CallIdentity(
            account_sid=DEV_ACCOUNT_SID,
            call_sid=p.emulated_call_sid(),
            from_=p.TEST_CUSTOMER_NUMBER,
            to=CONVERSATION_LINE,
        )
    )
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    conversation_sid: str = field(default_factory=lambda: p.sid("CH"))
    dial_call_sid: str = field(default_factory=lambda: p.sid("CA"))
    recording_sid: str = field(default_factory=lambda: p.sid("RE"))
    connect: Connect | None = None
    """The `<Connect>` of the connect answer, once `answered()` has read it."""

    @property
    def connect_url(self) -> str:
        return API_BASE + routes.CONNECT

    def connect_event(self) -> dict[str, Any]:
        return http_api_event("POST", self.connect_url, self.identity.standard("ringing"))

    def answered(self, twiml: str) -> None:
        """Read the callback URLs (with their `session`) from the connect answer."""
        document = parse_document(twiml, self.connect_url)
        found = document.find(Connect)
        if not found or not isinstance(found[0], Connect) or not isinstance(found[0].noun, Conversation):
            raise CallFlowError(f"the connect answer has no <Connect><Conversation>: {twiml[:200]}")
        self.connect = found[0]

    @property
    def conversation(self) -> Conversation:
        if self.connect is None or not isinstance(self.connect.noun, Conversation):
            raise CallFlowError("answered() must read the connect TwiML first")
        return self.connect.noun

    def _target(self, target: Target | None, what: str) -> Target:
        if target is None:
            raise CallFlowError(f"the connect TwiML has no {what}")
        return target

    @property
    def session_id(self) -> str:
        session = self._target(self.conversation.status_callback, "statusCallback").query.get("session")
        if not session:
            raise CallFlowError("the statusCallback URL carries no session")
        return session

    def _at(self, seconds: float) -> str:
        return p.rfc2822(self.started_at + timedelta(seconds=seconds))

    def status_event(self, sequence: int = 1, status: str = "call-initiated") -> dict[str, Any]:
        target = self._target(self.conversation.status_callback, "statusCallback")
        fields = [
            ("AccountSid", self.identity.account_sid),
            ("ConversationSid", self.conversation_sid),
            ("DialCallSid", self.dial_call_sid),
            ("WorkerInitiated", "false"),
            ("Status", status),
            ("SequenceNumber", str(sequence)),
            ("Timestamp", self._at(sequence)),
            ("CallbackSource", p.CALLBACK_SOURCE),
        ]
        return http_api_event(target.method, target.url, fields)

    def recording_fields(self) -> list[tuple[str, str]]:
        url = p.recording_url(self.identity.account_sid, self.recording_sid, self.media_api_base)
        return [("RecordingSid", self.recording_sid), ("RecordingUrl", url), ("RecordingDuration", "1")]

    def recording_event(self, status: str = "completed") -> dict[str, Any]:
        target = self._target(self.conversation.recording_callback, "recordingStatusCallback")
        url = p.recording_url(self.identity.account_sid, self.recording_sid, self.media_api_base)
        fields = [
            ("AccountSid", self.identity.account_sid),
            ("CallSid", self.identity.call_sid),
            ("RecordingSid", self.recording_sid),
            ("RecordingUrl", url),
            ("RecordingStatus", status),
            *([("RecordingDuration", "1")] if status == "completed" else []),
            ("RecordingChannels", self.conversation.recording_channels),
            ("RecordingSource", "DialVerb"),
            ("RecordingStartTime", self._at(8)),
        ]
        return http_api_event(target.method, target.url, fields)

    def action_event(self) -> dict[str, Any]:
        if self.connect is None:
            raise CallFlowError("answered() must read the connect TwiML first")
        target = self.connect.action
        fields = [
            *self.identity.standard("in-progress"),
            ("Result", "session-success"),
            ("WorkerInitiated", "false"),
            ("DialCallStatus", "completed"),
            ("DialCallSid", self.dial_call_sid),
            ("DialCallDuration", str(TALK_SECONDS)),
            *self.recording_fields(),
        ]
        return http_api_event(target.method, target.url, fields)

    def fallback_event(self) -> dict[str, Any]:
        fields = [*self.identity.standard("ringing"), ("ErrorCode", "11200"), ("ErrorUrl", self.connect_url)]
        return http_api_event("POST", API_BASE + routes.FALLBACK, fields)


def answer_body(response: Mapping[str, Any]) -> str:
    """The text of a handler's HTTP API answer."""
    body = str(response.get("body") or "")
    if response.get("isBase64Encoded"):
        return base64.b64decode(body).decode("utf-8")
    return body


def archiver_event(messages: list[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The SQS event Lambda's event source mapping builds from received messages."""
    from voicedev.local_archiver import sqs_event

    event = sqs_event(messages, queue_arn, region)
    json.dumps(event)  # the child process gets it as JSON: fail here, not there
    return event
