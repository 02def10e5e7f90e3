"""Pydantic models of what Twilio sends us, under Twilio's parameter names. Parsed once at the
edge. Unknown fields are accepted and kept (Twilio adds parameters without notice); unknown values
of an enumerated field are kept as plain strings, and reported by `unknown_values()` so the caller
can log and count them instead of failing the request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from voice_webhooks.errors import MalformedRequest

CallSid = Annotated[str, StringConstraints(pattern=r"^CA[0-9a-fA-F]{32}$")]
AccountSid = Annotated[str, StringConstraints(pattern=r"^AC[0-9a-fA-F]{32}$")]
RecordingSid = Annotated[str, StringConstraints(pattern=r"^RE[0-9a-fA-F]{32}$")]
# Length caps on every string we store (docs/data-model.md, "Bounded items"): far above anything
# Twilio sends, so that a signed but hostile value is a 400 and no item can approach DynamoDB's
# 400 KB limit. Parameters we do not model are kept only in an event's `Raw`, under its byte budget.
MAX_WORD = 64  # statuses, directions, SIDs we do not check the shape of, error codes
MAX_ADDRESS = 256  # From / To / Caller / Called: E.164 numbers, client:..., SIP URIs
MAX_URL = 2048  # RecordingUrl
MAX_TEXT = 1024  # ErrorMessage, Digits
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WORD)]
Word = Annotated[str, StringConstraints(max_length=MAX_WORD)]
Address = Annotated[str, StringConstraints(max_length=MAX_ADDRESS)]
Url = Annotated[str, StringConstraints(max_length=MAX_URL)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


def _twilio_bool(value: object) -> object:
    """Twilio sends booleans as `true` / `false`; nothing else is a boolean."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "":
            return None
        raise ValueError("must be true or false")
    return value


def _rfc2822(value: object) -> object:
    """`Sat, 7 May 2022 00:58:19 +0000` -> an aware UTC datetime."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError) as exc:
            raise ValueError("must be an RFC 2822 date") from exc
        if parsed.tzinfo is None:
            raise ValueError("must be an RFC 2822 date with a time zone")
        try:
            # `Fri, 31 Dec 9999 23:59:59 -2359` parses, but is past year 9999 in UTC.
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise ValueError("must be an RFC 2822 date between the years 1 and 9999 (UTC)") from exc
    return value


def _digits(value: object) -> object:
    # Durations and counters are decimal digits only: `1e3`, `-1`, ` 5` are not Twilio's.
    if isinstance(value, str):
        if value == "":
            return None
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be a non-negative integer")
        return int(value)
    return value


def _blank_none(value: object) -> object:
    return None if value == "" else value


TwilioBool = Annotated[bool | None, BeforeValidator(_twilio_bool)]
TwilioTimestamp = Annotated[datetime | None, BeforeValidator(_rfc2822)]
# The bounds apply to the number only: a blank field becomes None, which they must not see (pydantic
# raises TypeError, not a validation error, when a bound meets None).
_SecondsValue = Annotated[int, Field(ge=0, le=10**9)]
Seconds = Annotated[_SecondsValue | None, BeforeValidator(_digits)]


def _recording_seconds(value: object) -> object:
    # Twilio's Recording resource reports -1 while a recording has no length yet; a recording
    # callback carrying it must not be refused (a 4xx is never retried: a completed recording
    # would never be queued). It means "unknown".
    if value == "-1":
        return None
    return _digits(value)


RecordingSeconds = Annotated[_SecondsValue | None, BeforeValidator(_recording_seconds)]


class ConversationResult(StrEnum):
    SESSION_SUCCESS = "session-success"
    DIALED_CALL_INCOMPLETE = "dialed-call-incomplete"
    FAILED_CREATE_CONVERSATION = "failed-create-conversation"
    NO_OTHER_PARTICIPANTS = "no-other-participants"
    INVALID_CONVERSATION = "invalid-conversation"
    NO_EXISTING_CONVERSATION = "no-existing-conversation"
    INTERNAL_ERROR = "internal-error"


class DialCallStatus(StrEnum):
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"


class ConversationStatus(StrEnum):
    """`Status` of a `<Conversation>` status callback, in the order the events happen."""

    CALL_INITIATED = "call-initiated"
    CALL_RINGING = "call-ringing"
    CALL_ANSWERED = "call-answered"
    CALL_COMPLETED = "call-completed"


class SessionStatus(StrEnum):
    """`SessionStatus` of a ConversationRelay action request."""

    COMPLETED = "completed"
    ENDED = "ended"
    FAILED = "failed"


class RecordingStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"
    FAILED = "failed"


class CallStatus(StrEnum):
    """`CallStatus` of a call-progress status callback."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    FAILED = "failed"


class RecordingChannels(StrEnum):
    MONO = "1"
    DUAL = "2"


# An enumerated Twilio field that keeps values Twilio adds later as plain strings. left_to_right:
# a known value becomes the enum member; anything else stays a plain string.
_LEFT_TO_RIGHT = Field(union_mode="left_to_right")
_BLANK = BeforeValidator(_blank_none)
OpenResult = Annotated[ConversationResult | Word | None, _LEFT_TO_RIGHT, _BLANK]
OpenDialCallStatus = Annotated[DialCallStatus | Word | None, _LEFT_TO_RIGHT, _BLANK]
OpenSessionStatus = Annotated[SessionStatus | Word | None, _LEFT_TO_RIGHT, _BLANK]
OpenRecordingChannels = Annotated[RecordingChannels | Word | None, _LEFT_TO_RIGHT, _BLANK]
OpenCallStatus = Annotated[CallStatus | NonEmptyStr, _LEFT_TO_RIGHT]
OptionalCallSid = Annotated[CallSid | None, _BLANK]
OpenConversationStatus = Annotated[ConversationStatus | NonEmptyStr, _LEFT_TO_RIGHT]
OpenRecordingStatus = Annotated[RecordingStatus | NonEmptyStr, _LEFT_TO_RIGHT]


class TwilioCallback(BaseModel):
    """Fields common to every Twilio voice request. Extra fields are kept."""

    # defer_build: each function validates one or two of these models; building the validators
    # of all of them at import would cost every cold start (docs/benchmarks.md).
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    account_sid: AccountSid = Field(alias="AccountSid")
    call_sid: CallSid | None = Field(None, alias="CallSid")
    from_: Address | None = Field(None, alias="From")
    to: Address | None = Field(None, alias="To")
    direction: Word | None = Field(None, alias="Direction")
    call_status: Word | None = Field(None, alias="CallStatus")
    application_sid: Word | None = Field(None, alias="ApplicationSid")
    api_version: Word | None = Field(None, alias="ApiVersion")

    def unknown_values(self) -> dict[str, str]:
        """Enumerated fields holding a value we do not know yet: Twilio name -> value."""
        unknown = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, Enum) and _is_open_enum(info.annotation):
                unknown[info.alias or name] = value
        return unknown

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _is_open_enum(annotation: Any) -> bool:
    args = getattr(annotation, "__args__", ())
    return any(isinstance(arg, type) and issubclass(arg, Enum) for arg in args)


class TwilioRequest(TwilioCallback):
    """A request that always belongs to a call (CallSid required)."""

    call_sid: CallSid = Field(alias="CallSid")


class ConnectRequest(TwilioRequest):
    """The request for the connect TwiML (the number's voice URL)."""

    caller: Address | None = Field(None, alias="Caller")
    called: Address | None = Field(None, alias="Called")


class ConversationActionRequest(TwilioRequest):
    """`<Connect action>` after a `<Conversation>` session, and the request a voicemail `<Record>`
    makes when it ends (that one has `RecordingSid` and no `Result`)."""

    result: OpenResult = Field(None, alias="Result")
    worker_initiated: TwilioBool = Field(None, alias="WorkerInitiated")
    dial_call_status: OpenDialCallStatus = Field(None, alias="DialCallStatus")
    dial_call_sid: Word | None = Field(None, alias="DialCallSid")
    dial_call_duration: Seconds = Field(None, alias="DialCallDuration")
    recording_sid: Word | None = Field(None, alias="RecordingSid")
    recording_duration: Seconds = Field(None, alias="RecordingDuration")
    recording_url: Url | None = Field(None, alias="RecordingUrl")
    digits: Text | None = Field(None, alias="Digits")


class RelayActionRequest(TwilioRequest):
    """`<Connect action>` after a `<ConversationRelay>` session."""

    relay_session_id: Word | None = Field(None, alias="SessionId", description="Twilio's VX... session id")
    session_status: OpenSessionStatus = Field(None, alias="SessionStatus")
    session_duration: Seconds = Field(None, alias="SessionDuration")
    # Never stored (only its size and top-level keys): bounded by the body size and MAX_HANDOFF_BYTES.
    handoff_data: str | None = Field(None, alias="HandoffData")
    error_code: Word | None = Field(None, alias="ErrorCode")
    error_message: Text | None = Field(None, alias="ErrorMessage")


class StatusCallback(TwilioCallback):
    """`<Conversation statusCallback>`: one event of the session's call leg."""

    sequence_number: Annotated[int, BeforeValidator(_digits), Field(ge=1, le=2**31 - 1)] = Field(
        alias="SequenceNumber"
    )
    status: OpenConversationStatus = Field(alias="Status")
    timestamp: TwilioTimestamp = Field(None, alias="Timestamp")
    conversation_sid: Word | None = Field(None, alias="ConversationSid")
    dial_call_sid: Word | None = Field(None, alias="DialCallSid")
    worker_initiated: TwilioBool = Field(None, alias="WorkerInitiated")
    callback_source: Word | None = Field(None, alias="CallbackSource")


CALL_PROGRESS_SOURCE = "call-progress-events"


class CallProgressCallback(TwilioRequest):
    """A call-progress status callback (the number's "Call status changes" URL, a `<Dial>` noun's
    `statusCallback`, an outbound call's `StatusCallback`): one event of one call's own stream.
    `SequenceNumber` starts at 0; a dialled leg carries its parent's `ParentCallSid`."""

    sequence_number: Annotated[int, BeforeValidator(_digits), Field(ge=0, le=2**31 - 1)] = Field(
        alias="SequenceNumber"
    )
    call_status: OpenCallStatus = Field(alias="CallStatus")
    timestamp: TwilioTimestamp = Field(None, alias="Timestamp")
    callback_source: Word | None = Field(None, alias="CallbackSource")
    parent_call_sid: OptionalCallSid = Field(None, alias="ParentCallSid")
    call_duration: Seconds = Field(None, alias="CallDuration")
    duration: Seconds = Field(None, alias="Duration")
    forwarded_from: Address | None = Field(None, alias="ForwardedFrom")
    caller_name: Address | None = Field(None, alias="CallerName")


class RecordingStatusCallback(TwilioCallback):
    """`recordingStatusCallback` of `<Conversation record>` and of the voicemail `<Record>`."""

    recording_sid: RecordingSid = Field(alias="RecordingSid")
    recording_status: OpenRecordingStatus = Field(alias="RecordingStatus")
    recording_url: Url | None = Field(None, alias="RecordingUrl")
    recording_duration: RecordingSeconds = Field(None, alias="RecordingDuration")
    recording_channels: OpenRecordingChannels = Field(None, alias="RecordingChannels")
    recording_source: Word | None = Field(None, alias="RecordingSource")
    recording_start_time: TwilioTimestamp = Field(None, alias="RecordingStartTime")
    error_code: Word | None = Field(None, alias="ErrorCode")


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_params(model: type[ModelT], params: Mapping[str, str]) -> ModelT:
    """Validate Twilio's parameters; a missing or invalid field is a 400 naming it. A parameter
    with an empty name is a 400 too: DynamoDB refuses an empty attribute or map-key name (a 5xx on
    every retry), and Twilio never sends one."""
    if "" in params:
        raise MalformedRequest("request: a parameter has an empty name")
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("function-", "str")))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise MalformedRequest(f"{field or 'request'}: {message}") from exc
