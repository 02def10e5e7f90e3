"""The call-flow document: which TwiML each called number gets.

Keys are Twilio's own TwiML attribute names (camelCase), so values can be copied from Twilio's docs.
The document is validated once, when a function first needs it; every rule of the reference pages
is enforced here with a message naming the field, so a bad document fails at deploy/start time
and never per call.

```json
{"default": "support",
 "numbers": {"+15550100001": "assistant"},
 "flows": {"support": {"kind": "conversation", "serviceInstanceSid": "IS..."},
           "assistant": {"kind": "relay", "url": "wss://agent.example.com/ws"}}}
```
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

E164 = r"^\+[1-9]\d{1,14}$"
HttpMethod = Literal["GET", "POST"]
InterruptMode = Literal["none", "dtmf", "speech", "any"]

CONVERSATION_STATUS_EVENTS = ("call-initiated", "call-ringing", "call-answered", "call-completed")
RECORDING_STATUS_EVENTS = ("in-progress", "completed", "absent")
DEBUG_OPTIONS = ("debugging", "speaker-events", "tokens-played")
MULTI = "multi"
MULTI_SPEECH_MODELS = ("nova-2-general", "nova-3-general")


class FlowConfigWarning(UserWarning):
    """Valid, but probably not what the author meant (reported by validate-config and at start)."""


def _word_list(allowed: tuple[str, ...], separator: str) -> Any:
    """Twilio takes lists as one space-separated string; accept a string or a JSON list, check each
    word, and render it back joined (twilio-python would render a Python list's repr)."""

    def parse(value: object) -> object:
        words = value.split() if isinstance(value, str) else value
        if not isinstance(words, list) or not words:
            raise ValueError(f"must be a non-empty list of {', '.join(allowed)}")
        for word in words:
            if word not in allowed:
                raise ValueError(f"{word!r} is not one of {', '.join(allowed)}")
        return list(dict.fromkeys(words))

    return Annotated[
        list[Literal[allowed]],  # type: ignore[valid-type]
        BeforeValidator(parse),
        PlainSerializer(lambda words: separator.join(words), return_type=str),
    ]


def _canonical(*choices: str) -> Any:
    """Case-insensitive choice (Twilio's own examples write `amazon` and `Amazon`), stored canonical."""
    by_lower = {choice.lower(): choice for choice in choices}

    def parse(value: object) -> object:
        if isinstance(value, str) and value.lower() in by_lower:
            return by_lower[value.lower()]
        return value

    return Annotated[Literal[choices], BeforeValidator(parse)]


def _record_alias(value: object) -> object:
    # `true` / `false` are documented aliases; store the canonical value so later rules are simple.
    if value is True or value == "true":
        return "record-from-answer"
    if value is False or value == "false":
        return "do-not-record"
    return value


def _interruptible_alias(value: object) -> object:
    if value is True or value == "true":
        return "any"
    if value is False or value == "false":
        return "none"
    return value


def _absolute_or_relative_url(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("must be a URL without spaces")
    if "://" in value and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL or a relative path")
    return value


def _absolute_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an absolute http(s) URL")
    return value


TtsProvider = _canonical("Google", "Amazon", "ElevenLabs")
SttProvider = _canonical("Google", "Deepgram")
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


# Marks a flow key that is ours, not a TwiML attribute: never rendered as one.
NOT_TWIML: dict[str, Any] = {"x-not-twiml-attribute": True}


def not_twiml(description: str) -> Any:
    """Field(...) keyword arguments for a flow key that is not a TwiML attribute of the noun."""
    return {"description": description, "json_schema_extra": NOT_TWIML}


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )

    def twiml_attributes(self) -> dict[str, Any]:
        """The TwiML attributes set in this model, camelCase, ready for twilio-python. Keys marked
        `not_twiml` (kind, <Connect> attributes, nested elements, our own settings) are left out."""
        ours = {name for name, info in type(self).model_fields.items() if info.json_schema_extra == NOT_TWIML}
        return self.model_dump(by_alias=True, exclude_none=True, exclude=ours)


class ConnectAttributes(_Model):
    """`<Connect>` attributes a flow may set. Unset, `action` points at this API's /voice/action."""

    action: str | None = Field(
        None,
        **not_twiml(
            "<Connect action>: URL requested when the session ends (default: this API's /voice/action)."
        ),
    )
    method: HttpMethod | None = Field(
        None, **not_twiml("<Connect method> for the action request (default POST).")
    )

    @field_validator("action")
    @classmethod
    def _action_url(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_or_relative_url(value)


class ConversationFlow(ConnectAttributes):
    """`<Connect><Conversation>`: Twilio Frontline voice."""

    kind: Literal["conversation"] = Field(**not_twiml("conversation: <Connect><Conversation> (Frontline)."))
    service_instance_sid: Annotated[str, StringConstraints(pattern=r"^IS[0-9a-fA-F]{32}$")] = Field(
        description="Frontline Conversation Service SID: IS followed by 32 hex digits."
    )
    inbound_autocreation: bool | None = None
    routing_assignment_timeout: Annotated[int, Field(ge=1)] | None = None
    inbound_timeout: Annotated[int, Field(ge=1)] | None = None
    record: (
        Annotated[
            Literal[
                "do-not-record",
                "record-from-answer",
                "record-from-ringing",
                "record-from-answer-dual",
                "record-from-ringing-dual",
            ],
            BeforeValidator(_record_alias),
        ]
        | None
    ) = None
    trim: Literal["trim-silence", "do-not-trim"] | None = None
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod | None = None
    recording_status_callback_event: _word_list(RECORDING_STATUS_EVENTS, " ") | None = None  # type: ignore[valid-type]
    status_callback: str | None = None
    status_callback_method: HttpMethod | None = None
    status_callback_event: _word_list(CONVERSATION_STATUS_EVENTS, " ") | None = None  # type: ignore[valid-type]
    url: str | None = None

    @field_validator("status_callback", "url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_or_relative_url(value)

    @field_validator("recording_status_callback")
    @classmethod
    def _recording_callback(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_url(value)

    @model_validator(mode="after")
    def _trim_needs_recording(self) -> ConversationFlow:
        if self.trim is not None and self.record in (None, "do-not-record"):
            raise ValueError("trim is only valid when record enables recording")
        return self

    @property
    def records(self) -> bool:
        return self.record not in (None, "do-not-record")


class RelayLanguage(_Model):
    """A nested `<Language>` element."""

    code: NonEmpty = Field(description="Language code (for example en-US), or multi.")
    tts_provider: TtsProvider | None = None  # type: ignore[valid-type]
    voice: str | None = None
    transcription_provider: SttProvider | None = None  # type: ignore[valid-type]
    speech_model: str | None = None


class RelayFlow(ConnectAttributes):
    """`<Connect><ConversationRelay>`: an AI voice agent over WebSocket."""

    kind: Literal["relay"] = Field(**not_twiml("relay: <Connect><ConversationRelay> (AI voice agent)."))
    url: Annotated[str, StringConstraints(pattern=r"^wss://\S+$")] = Field(
        description="Your WebSocket server. Must start with wss://."
    )
    welcome_greeting: str | None = None
    welcome_greeting_interruptible: InterruptMode | None = None
    language: NonEmpty | None = None
    tts_language: NonEmpty | None = None
    tts_provider: TtsProvider | None = None  # type: ignore[valid-type]
    voice: str | None = None
    transcription_language: NonEmpty | None = None
    transcription_provider: SttProvider | None = None  # type: ignore[valid-type]
    speech_model: str | None = None
    deepgram_smart_format: bool | None = None
    interruptible: Annotated[InterruptMode, BeforeValidator(_interruptible_alias)] | None = None
    interrupt_sensitivity: Literal["low", "medium", "high"] | None = None
    dtmf_detection: bool | None = None
    report_input_during_agent_speech: InterruptMode | None = None
    preemptible: bool | None = None
    hints: (
        Annotated[
            list[NonEmpty],
            BeforeValidator(lambda v: v.split(",") if isinstance(v, str) else v),
            PlainSerializer(lambda words: ",".join(words), return_type=str),
        ]
        | None
    ) = None
    debug: _word_list(DEBUG_OPTIONS, " ") | None = None  # type: ignore[valid-type]
    elevenlabs_text_normalization: Literal["on", "auto", "off"] | None = None
    intelligence_service: str | None = None
    conversation_configuration: NonEmpty | None = None
    conversation_id: NonEmpty | None = None
    languages: list[RelayLanguage] = Field(default_factory=list, **not_twiml("Nested <Language> elements."))
    parameters: dict[NonEmpty, str] = Field(
        default_factory=dict,
        **not_twiml(
            "Nested <Parameter name value> elements: customParameters in the WebSocket setup message."
        ),
    )

    @model_validator(mode="after")
    def _language_rules(self) -> RelayFlow:
        stt_language = self.transcription_language or self.language
        tts_language = self.tts_language or self.language
        if stt_language == MULTI:
            _check_multi_stt("", self.transcription_provider, self.speech_model)
        if tts_language == MULTI:
            _check_multi_tts("", self.tts_provider)
        for index, lang in enumerate(self.languages):
            if lang.code == MULTI:
                where = f"languages.{index}."
                _check_multi_stt(
                    where,
                    lang.transcription_provider or self.transcription_provider,
                    lang.speech_model or self.speech_model,
                )
                _check_multi_tts(where, lang.tts_provider or self.tts_provider)
        if self.conversation_id and self.conversation_configuration:
            warnings.warn(
                "conversationId and conversationConfiguration are both set: conversationId takes "
                "precedence and the configuration's grouping rules are ignored",
                FlowConfigWarning,
                stacklevel=2,
            )
        return self


def _check_multi_stt(where: str, provider: str | None, model: str | None) -> None:
    # Deepgram is not every account's default STT provider, so multi needs it written explicitly.
    if provider != "Deepgram":
        raise ValueError(
            f"{where}transcriptionProvider must be Deepgram when the speech-to-text language is multi"
        )
    if model not in MULTI_SPEECH_MODELS:
        raise ValueError(
            f"{where}speechModel must be one of {', '.join(MULTI_SPEECH_MODELS)} when the speech-to-text "
            "language is multi"
        )


def _check_multi_tts(where: str, provider: str | None) -> None:
    if provider not in (None, "ElevenLabs"):  # ElevenLabs is the default TTS provider
        raise ValueError(f"{where}ttsProvider must be ElevenLabs when the text-to-speech language is multi")


Flow = Annotated[ConversationFlow | RelayFlow, Field(discriminator="kind")]


class FlowConfig(BaseModel):
    """The whole document. Top-level keys: `default`, `numbers`, `flows`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str = Field(description="Flow used when the called number is not listed in `numbers`.")
    numbers: dict[Annotated[str, StringConstraints(pattern=E164)], str] = Field(
        default_factory=dict, description="Called number (E.164) -> flow name."
    )
    flows: dict[NonEmpty, Flow] = Field(description="Flow name -> flow.")

    @model_validator(mode="after")
    def _names_resolve(self) -> FlowConfig:
        if self.default not in self.flows:
            raise ValueError(f"default: flow {self.default!r} is not defined in flows")
        for number, name in self.numbers.items():
            if name not in self.flows:
                raise ValueError(f"numbers.{number}: flow {name!r} is not defined in flows")
        return self

    def flow_name_for(self, called_number: str | None) -> str:
        return self.numbers.get(called_number or "", self.default)
