"""ConversationRelay's WebSocket frames (twilio-facts.md "ConversationRelay WebSocket side").

Twilio -> app frames are parsed strictly enough to act on them, and leniently otherwise: fields
Twilio adds later are kept (extra="allow"). A frame that is not JSON, too big, of an unknown type
or missing what its type needs is a `FrameRejected`: logged (never its content), counted, ignored;
the session goes on. App -> Twilio frames are built from the agent's actions and serialised
without the fields left unset."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# API Gateway's WebSocket frame limit (32 KB; messages of several frames up to 128 KB): Twilio's
# frames are far smaller, so a bigger one is not Twilio's.
MAX_FRAME_BYTES = 32 * 1024
MAX_TEXT_CHARS = 8000


class FrameRejected(Exception):
    """A frame we ignore. `reason` is short and safe to log (it never quotes the frame)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Incoming(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class SetupFrame(_Incoming):
    type: Literal["setup"]
    session_id: str | None = Field(None, alias="sessionId")
    call_sid: str = Field(alias="callSid")
    parent_call_sid: str | None = Field(None, alias="parentCallSid")
    account_sid: str = Field(alias="accountSid")
    from_: str | None = Field(None, alias="from")
    to: str | None = Field(None, alias="to")
    direction: str | None = Field(None, alias="direction")
    call_status: str | None = Field(None, alias="callStatus")
    custom_parameters: dict[str, Any] = Field(default_factory=dict, alias="customParameters")


class PromptFrame(_Incoming):
    type: Literal["prompt"]
    voice_prompt: Text = Field(alias="voicePrompt")
    lang: str | None = None
    last: bool = True


class InterruptFrame(_Incoming):
    type: Literal["interrupt"]
    utterance_until_interrupt: Text = Field("", alias="utteranceUntilInterrupt")
    duration_until_interrupt_ms: int | None = Field(None, alias="durationUntilInterruptMs")


class DtmfFrame(_Incoming):
    type: Literal["dtmf"]
    digit: Annotated[str, Field(pattern=r"^[0-9A-Da-d*#w]$")]


class ErrorFrame(_Incoming):
    type: Literal["error"]
    description: Text = ""


IncomingFrame = Annotated[
    SetupFrame | PromptFrame | InterruptFrame | DtmfFrame | ErrorFrame, Field(discriminator="type")
]
_INCOMING: TypeAdapter[IncomingFrame] = TypeAdapter(IncomingFrame)
INCOMING_TYPES = ("setup", "prompt", "interrupt", "dtmf", "error")


def parse_frame(body: str | None) -> SetupFrame | PromptFrame | InterruptFrame | DtmfFrame | ErrorFrame:
    if body is None or not body.strip():
        raise FrameRejected("empty frame")
    if len(body.encode("utf-8")) > MAX_FRAME_BYTES:
        raise FrameRejected(f"frame over {MAX_FRAME_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FrameRejected("frame is not JSON") from None
    if not isinstance(document, dict):
        raise FrameRejected("frame is not a JSON object")
    kind = document.get("type")
    if kind not in INCOMING_TYPES:
        shown = kind[:32] if isinstance(kind, str) else type(kind).__name__
        raise FrameRejected(f"unknown frame type {shown!r}")
    try:
        return _INCOMING.validate_python(document)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"][1:]) for error in exc.errors()})
        raise FrameRejected(f"{kind} frame invalid: {', '.join(fields)[:200]}") from None


# --- app -> Twilio ------------------------------------------------------------------------------


class _Outgoing(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class TextOut(_Outgoing):
    type: Literal["text"] = "text"
    token: str
    last: bool
    lang: str | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None


class PlayOut(_Outgoing):
    type: Literal["play"] = "play"
    source: str
    loop: int | None = None
    preemptible: bool | None = None
    interruptible: bool | None = None


class SendDigitsOut(_Outgoing):
    type: Literal["sendDigits"] = "sendDigits"
    digits: str


class LanguageOut(_Outgoing):
    type: Literal["language"] = "language"
    tts_language: str | None = Field(None, alias="ttsLanguage")
    transcription_language: str | None = Field(None, alias="transcriptionLanguage")


class EndOut(_Outgoing):
    type: Literal["end"] = "end"
    handoff_data: str | None = Field(None, alias="handoffData")
