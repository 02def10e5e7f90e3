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
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


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
        except (TypeError, ValueError) as exc:
            raise ValueError("must be an RFC 2822 date") from exc
        if parsed.tzinfo is None:
            raise ValueError("must be an RFC 2822 date with a time zone")
        return parsed.astimezone(UTC)
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


class RecordingChannels(StrEnum):
    MONO = "1"
    DUAL = "2"


# An enumerated Twilio field that keeps values Twilio adds later as plain strings. left_to_right:
# a known value becomes the enum member; anything else stays a plain string.
_LEFT_TO_RIGHT = Field(union_mode="left_to_right")
_BLANK = BeforeValidator(_blank_none)
OpenResult = Annotated[ConversationResult | str | None, _LEFT_TO_RIGHT, _BLANK]
OpenDialCallStatus = Annotated[DialCallStatus | str | None, _LEFT_TO_RIGHT, _BLANK]
OpenSessionStatus = Annotated[SessionStatus | str | None, _LEFT_TO_RIGHT, _BLANK]
OpenRecordingChannels = Annotated[RecordingChannels | str | None, _LEFT_TO_RIGHT, _BLANK]
OpenConversationStatus = Annotated[ConversationStatus | NonEmptyStr, _LEFT_TO_RIGHT]
OpenRecordingStatus = Annotated[RecordingStatus | NonEmptyStr, _LEFT_TO_RIGHT]


class TwilioCallback(BaseModel):
    """Fields common to every Twilio voice request. Extra fields are kept."""

    # defer_build: each function validates one or two of these models; building the validators
    # of all of them at import would cost every cold start (docs/benchmarks.md).
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    account_sid: AccountSid = Field(alias="AccountSid")
    call_sid: CallSid | None = Field(None, alias="CallSid")
    from_: str | None = Field(None, alias="From")
    to: str | None = Field(None, alias="To")
    direction: str | None = Field(None, alias="Direction")
    call_status: str | None = Field(None, alias="CallStatus")
    application_sid: str | None = Field(None, alias="ApplicationSid")
    api_version: str | None = Field(None, alias="ApiVersion")

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

    caller: str | None = Field(None, alias="Caller")
    called: str | None = Field(None, alias="Called")


class ConversationActionRequest(TwilioRequest):
    """`<Connect action>` after a `<Conversation>` session, and the request a voicemail `<Record>`
    makes when it ends (that one has `RecordingSid` and no `Result`)."""

    result: OpenResult = Field(None, alias="Result")
    worker_initiated: TwilioBool = Field(None, alias="WorkerInitiated")
    dial_call_status: OpenDialCallStatus = Field(None, alias="DialCallStatus")
    dial_call_sid: str | None = Field(None, alias="DialCallSid")
    dial_call_duration: Seconds = Field(None, alias="DialCallDuration")
    recording_sid: str | None = Field(None, alias="RecordingSid")
    recording_duration: Seconds = Field(None, alias="RecordingDuration")
    recording_url: str | None = Field(None, alias="RecordingUrl")
    digits: str | None = Field(None, alias="Digits")


class RelayActionRequest(TwilioRequest):
    """`<Connect action>` after a `<ConversationRelay>` session."""

    relay_session_id: str | None = Field(None, alias="SessionId", description="Twilio's VX... session id")
    session_status: OpenSessionStatus = Field(None, alias="SessionStatus")
    session_duration: Seconds = Field(None, alias="SessionDuration")
    handoff_data: str | None = Field(None, alias="HandoffData")
    error_code: str | None = Field(None, alias="ErrorCode")
    error_message: str | None = Field(None, alias="ErrorMessage")


class StatusCallback(TwilioCallback):
    """`<Conversation statusCallback>`: one event of the session's call leg."""

    sequence_number: Annotated[int, BeforeValidator(_digits), Field(ge=1, le=2**31 - 1)] = Field(
        alias="SequenceNumber"
    )
    status: OpenConversationStatus = Field(alias="Status")
    timestamp: TwilioTimestamp = Field(None, alias="Timestamp")
    conversation_sid: str | None = Field(None, alias="ConversationSid")
    dial_call_sid: str | None = Field(None, alias="DialCallSid")
    worker_initiated: TwilioBool = Field(None, alias="WorkerInitiated")
    callback_source: str | None = Field(None, alias="CallbackSource")


class RecordingStatusCallback(TwilioCallback):
    """`recordingStatusCallback` of `<Conversation record>` and of the voicemail `<Record>`."""

    recording_sid: RecordingSid = Field(alias="RecordingSid")
    recording_status: OpenRecordingStatus = Field(alias="RecordingStatus")
    recording_url: str | None = Field(None, alias="RecordingUrl")
    recording_duration: RecordingSeconds = Field(None, alias="RecordingDuration")
    recording_channels: OpenRecordingChannels = Field(None, alias="RecordingChannels")
    recording_source: str | None = Field(None, alias="RecordingSource")
    recording_start_time: TwilioTimestamp = Field(None, alias="RecordingStartTime")
    error_code: str | None = Field(None, alias="ErrorCode")


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_params(model: type[ModelT], params: Mapping[str, str]) -> ModelT:
    """Validate Twilio's parameters; a missing or invalid field is a 400 naming it."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("function-", "str")))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise MalformedRequest(f"{field or 'request'}: {message}") from exc
