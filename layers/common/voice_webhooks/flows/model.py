"""The call-flow document: which TwiML each called number gets.

Keys are Twilio's own TwiML attribute names (camelCase), so values can be copied from Twilio's docs.
The document is validated once, when a function first needs it; every rule of the reference pages
is enforced here with a message naming the field (`flows.assistant.languages.0.ttsProvider: ...`),
so a bad document fails at deploy/start time and never per call. docs/configuration.md is the
user-facing description; schema/flow-config.schema.json is generated from these models.

```json
{"default": "support",
 "numbers": {"+15550100001": "assistant"},
 "flows": {"support": {"kind": "conversation", "serviceInstanceSid": "IS..."},
           "assistant": {"kind": "relay", "url": "wss://agent.example.com/ws"}}}
```
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from voice_webhooks.flows.agent import AgentConfig, ReconnectConfig, agent_problems
from voice_webhooks.flows.outcomes import ConversationOutcomes, RelayOutcomes

E164 = r"^\+[1-9]\d{1,14}$"
FLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
HttpMethod = Literal["GET", "POST"]
InterruptMode = Literal["none", "dtmf", "speech", "any"]

RECORD_VALUES = (
    "do-not-record",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
)
CONVERSATION_STATUS_EVENTS = ("call-initiated", "call-ringing", "call-answered", "call-completed")
RECORDING_STATUS_EVENTS = ("in-progress", "completed", "absent")
DEBUG_OPTIONS = ("debugging", "speaker-events", "tokens-played")
TTS_PROVIDERS = ("Google", "Amazon", "ElevenLabs")
STT_PROVIDERS = ("Google", "Deepgram")
MULTI = "multi"
MULTI_SPEECH_MODELS = ("nova-2-general", "nova-3-general")

Loc = tuple[str | int, ...]


# ---------------------------------------------------------------------------------------------------
# Rule violations with their location. Raising a ValidationError from inside a validator makes
# pydantic prefix each location with the path of the model being validated, so a rule found in a
# <Language> comes out as `flows.<name>.<kind>.languages.<i>.<field>`.


class _Problems:
    def __init__(self, title: str) -> None:
        self.title = title
        self.details: list[InitErrorDetails] = []

    def add(self, loc: Loc, message: str, value: object = None) -> None:
        # The message goes through the context: a `{` in a user's value must not be a template field.
        error = PydanticCustomError("flow_rule", "{message}", {"message": message})
        self.details.append(InitErrorDetails(type=error, loc=loc, input=value))

    def raise_if_any(self) -> None:
        if self.details:
            raise ValidationError.from_exception_data(self.title, self.details)


# ---------------------------------------------------------------------------------------------------
# Value types. Each keeps the JSON Schema in step with what the validator accepts; the factories
# return validators and schemas (not types) so that mypy sees every field's real type.


def _full_match(pattern: str, message: str) -> AfterValidator:
    """A string matching `pattern`, with a message a person can act on (not the regex)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _pattern(pattern: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern})


SID_PATTERN = r"^IS[0-9a-fA-F]{32}$"
WSS_PATTERN = r"^wss://[^\s/?#]+\S*$"

NonEmpty = Annotated[str, Field(min_length=1)]
StrictBool = Annotated[bool, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
ServiceInstanceSid = Annotated[
    str,
    _full_match(SID_PATTERN, "must be a Frontline Conversation Service SID: IS followed by 32 hex digits"),
    _pattern(SID_PATTERN),
]
WebSocketUrl = Annotated[
    str,
    _full_match(WSS_PATTERN, "must be your WebSocket server's URL, starting with wss://"),
    _pattern(WSS_PATTERN),
]
PhoneNumber = Annotated[
    str, _full_match(E164, "must be a phone number in E.164 format, like +15550100001"), _pattern(E164)
]
FlowName = Annotated[
    str,
    _full_match(
        FLOW_NAME, "flow names are 1-64 letters, digits, '-' or '_' (they appear in paths, logs and sessions)"
    ),
    _pattern(FLOW_NAME),
]


def _relative_or_absolute_url(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("must be a URL without spaces")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError("must be an absolute http(s) URL or a relative URL")
    return value


def _absolute_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+\S*", value):
        raise ValueError("must be an absolute http(s) URL")
    return value


Url = Annotated[
    str,
    Field(min_length=1),
    AfterValidator(_relative_or_absolute_url),
    WithJsonSchema({"type": "string", "minLength": 1, "format": "uri-reference"}),
]
AbsoluteUrl = Annotated[
    str,
    AfterValidator(_absolute_url),
    WithJsonSchema({"type": "string", "pattern": r"^https?://[^\s/?#]+\S*$", "format": "uri"}),
]


def _words(allowed: tuple[str, ...]) -> BeforeValidator:
    """Twilio takes these lists as one space-separated string. Accept that string or a JSON list and
    check every word; the serializer renders it back space-joined (twilio-python would render a
    list's repr)."""
    choices = ", ".join(allowed)

    def parse(value: object) -> object:
        words = value.split() if isinstance(value, str) else value
        if not isinstance(words, list) or not words:
            raise ValueError(f"must be a space-separated list of: {choices}")
        for item in words:
            if item not in allowed:
                raise ValueError(f"{item!r} is not one of: {choices} (separate words with spaces)")
        repeated = sorted({item for item in words if words.count(item) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return words

    return BeforeValidator(parse)


def _words_schema(allowed: tuple[str, ...]) -> WithJsonSchema:
    word = "(?:" + "|".join(allowed) + ")"  # the words are [a-z-]: nothing to escape
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": rf"^\s*{word}(?:\s+{word})*\s*$"},
                {"type": "array", "items": {"enum": list(allowed)}, "minItems": 1, "uniqueItems": True},
            ]
        }
    )


SPACE_JOINED = PlainSerializer(" ".join, return_type=str)
StatusEvents = Annotated[
    list[str], _words(CONVERSATION_STATUS_EVENTS), SPACE_JOINED, _words_schema(CONVERSATION_STATUS_EVENTS)
]
RecordingEvents = Annotated[
    list[str], _words(RECORDING_STATUS_EVENTS), SPACE_JOINED, _words_schema(RECORDING_STATUS_EVENTS)
]
DebugOptions = Annotated[list[str], _words(DEBUG_OPTIONS), SPACE_JOINED, _words_schema(DEBUG_OPTIONS)]


def _hints(value: object) -> object:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("must be a comma-separated string or a list of words and phrases")
    hints = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError("must not contain empty hints")
        if "," in item:
            raise ValueError(f"{item!r}: a hint in a list cannot contain a comma (commas separate hints)")
        hints.append(item.strip())
    return hints


Hints = Annotated[
    list[str],
    BeforeValidator(_hints),
    PlainSerializer(",".join, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "pattern": "^[^,]+$"}, "minItems": 1},
            ]
        }
    ),
]


def _any_case(choices: tuple[str, ...]) -> BeforeValidator:
    """A provider name in any capitalisation (Twilio's own examples write `amazon` and `Amazon`),
    stored and rendered as Twilio spells it."""
    by_lower = {choice.lower(): choice for choice in choices}

    def parse(value: object) -> object:
        if isinstance(value, str) and value.lower() in by_lower:
            return by_lower[value.lower()]
        return value

    return BeforeValidator(parse)


def _any_case_schema(choices: tuple[str, ...]) -> WithJsonSchema:
    any_case = "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in choice) for choice in choices)
    return WithJsonSchema(
        {"anyOf": [{"enum": list(choices)}, {"type": "string", "pattern": f"^(?:{any_case})$"}]}
    )


TtsProvider = Annotated[
    Literal["Google", "Amazon", "ElevenLabs"], _any_case(TTS_PROVIDERS), _any_case_schema(TTS_PROVIDERS)
]
SttProvider = Annotated[
    Literal["Google", "Deepgram"], _any_case(STT_PROVIDERS), _any_case_schema(STT_PROVIDERS)
]


def _alias(allowed: tuple[str, ...], true_value: str, false_value: str) -> BeforeValidator:
    """One of `allowed`, or the documented aliases `true`/`false` (string or JSON boolean), stored
    as the value they stand for so later rules only see one spelling."""
    choices = ", ".join(allowed)

    def parse(value: object) -> object:
        if value is True or value == "true":
            return true_value
        if value is False or value == "false":
            return false_value
        if value not in allowed:
            raise ValueError(f"must be one of {choices}, or true ({true_value}) / false ({false_value})")
        return value

    return BeforeValidator(parse)


def _alias_schema(allowed: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"enum": [*allowed, "true", "false"]}, {"type": "boolean"}]})


INTERRUPT_MODES = ("none", "dtmf", "speech", "any")
Record = Annotated[
    Literal[
        "do-not-record",
        "record-from-answer",
        "record-from-ringing",
        "record-from-answer-dual",
        "record-from-ringing-dual",
    ],
    _alias(RECORD_VALUES, "record-from-answer", "do-not-record"),
    _alias_schema(RECORD_VALUES),
]
Interruptible = Annotated[
    InterruptMode, _alias(INTERRUPT_MODES, "any", "none"), _alias_schema(INTERRUPT_MODES)
]


# ---------------------------------------------------------------------------------------------------
# Models


# Marks a flow key that is ours, not a TwiML attribute: never rendered as one.
NOT_TWIML: dict[str, Any] = {"x-not-twiml-attribute": True}


def not_twiml(description: str) -> Any:
    """Field(...) keyword arguments for a flow key that is not a TwiML attribute of the noun."""
    return {"description": description, "json_schema_extra": NOT_TWIML}


def _key_problems(data: object, allowed: Iterable[str], what: str, title: str) -> object:
    """Unknown keys (typos must not pass silently) and nulls, each reported on its own key."""
    if not isinstance(data, dict):
        return data
    known = sorted(allowed)
    problems = _Problems(title)
    for key, value in data.items():
        if key not in known:
            problems.add((key,), _unknown_key_message(str(key), known, what), value)
        elif value is None:
            problems.add((key,), "must not be null: leave the key out to use the default", value)
    problems.raise_if_any()
    return data


def _unknown_key_message(key: str, known: list[str], what: str) -> str:
    if key == "$schema":
        return (
            'unknown key: "$schema" is not part of the document; associate '
            "schema/flow-config.schema.json in your editor instead (docs/configuration.md)"
        )
    by_lower = {name.lower(): name for name in known}
    guess = by_lower.get(key.lower()) or by_lower.get(to_camel(key).lower())
    if guess is None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        guess = close[0] if close else None
    if guess is not None:
        return f"unknown key for {what}; did you mean {guess!r}?"
    return f"unknown key for {what}; allowed keys: {', '.join(known)}"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )

    # How error messages call this object ("a relay flow", "<Language>").
    what: ClassVar[str] = "this object"

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        keys = [info.alias or name for name, info in cls.model_fields.items()]
        return _key_problems(data, keys, cls.what, cls.__name__)

    def twiml_attributes(self) -> dict[str, Any]:
        """The TwiML attributes set in this model, camelCase, ready for twilio-python. Keys marked
        `not_twiml` (kind, <Connect> attributes, nested elements, our own settings) are left out."""
        ours = {name for name, info in type(self).model_fields.items() if info.json_schema_extra == NOT_TWIML}
        return self.model_dump(by_alias=True, exclude_none=True, exclude=ours)

    def flow_warnings(self) -> list[tuple[Loc, str]]:
        """Valid, but probably not what the author meant: (location, message) pairs."""
        return []


class ConnectAttributes(_Model):
    """`<Connect>` attributes a flow may set. Unset, `action` points at this API's /voice/action."""

    action: Url | None = Field(
        None,
        **not_twiml(
            "<Connect action>: URL Twilio requests when the session ends. Default: this API's "
            "/voice/action (with the session id). Set it only to send the call elsewhere."
        ),
    )
    method: HttpMethod | None = Field(
        None, **not_twiml("<Connect method>: GET or POST for the action request. Default POST.")
    )


class ConversationFlow(ConnectAttributes):
    """`<Connect><Conversation>`: Twilio Frontline voice."""

    what: ClassVar[str] = "a conversation flow (<Conversation> attributes)"

    kind: Literal["conversation"] = Field(**not_twiml("conversation: <Connect><Conversation> (Frontline)."))
    service_instance_sid: ServiceInstanceSid = Field(
        description="Required. Your Frontline Conversation Service SID: IS followed by 32 hex digits."
    )
    inbound_autocreation: StrictBool | None = Field(
        None,
        description="Create a Conversation for an inbound caller who has none. Twilio default true.",
    )
    routing_assignment_timeout: PositiveInt | None = Field(
        None,
        description="Seconds to wait for a worker to be assigned to a new Conversation. Twilio default 5.",
    )
    inbound_timeout: PositiveInt | None = Field(
        None, description="Seconds to wait for the worker to answer an inbound call. Twilio default 60."
    )
    record: Record | None = Field(
        None,
        description="do-not-record, record-from-answer, record-from-ringing, record-from-answer-dual, "
        "record-from-ringing-dual; true means record-from-answer, false do-not-record. Twilio default "
        "do-not-record.",
    )
    trim: Literal["trim-silence", "do-not-trim"] | None = Field(
        None, description="trim-silence or do-not-trim; only valid when record enables recording."
    )
    recording_status_callback: AbsoluteUrl | None = Field(
        None,
        description="Absolute URL for recording status. Default when recording: this API's /voice/recording.",
    )
    recording_status_callback_method: HttpMethod | None = Field(
        None, description="GET or POST for recordingStatusCallback. Default POST."
    )
    recording_status_callback_event: RecordingEvents | None = Field(
        None,
        description="Space-separated (or a list): in-progress, completed, absent. Default (when recording): "
        "in-progress completed absent.",
    )
    status_callback: Url | None = Field(
        None,
        description="Relative or absolute URL for session status events. Default: this API's /voice/status.",
    )
    status_callback_method: HttpMethod | None = Field(
        None, description="GET or POST for statusCallback. Default POST."
    )
    status_callback_event: StatusEvents | None = Field(
        None,
        description="Space-separated (or a list): call-initiated, call-ringing, call-answered, "
        "call-completed. Default: all four.",
    )
    url: Url | None = Field(
        None,
        description="Relative or absolute URL of TwiML for the worker after answering, before connecting.",
    )
    outcomes: ConversationOutcomes = Field(
        default_factory=ConversationOutcomes,
        **not_twiml("What /voice/action answers when the session ends (docs/action-routing.md)."),
    )

    @model_validator(mode="after")
    def _trim_needs_recording(self) -> ConversationFlow:
        problems = _Problems(type(self).__name__)
        if self.trim is not None and not self.records:
            record = "not set" if self.record is None else f"{self.record!r}"
            problems.add(
                ("trim",),
                f"only valid when record enables recording (record is {record})",
                self.trim,
            )
        problems.raise_if_any()
        return self

    @property
    def records(self) -> bool:
        return self.record not in (None, "do-not-record")

    def flow_warnings(self) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        if not self.records:
            for name in (
                "recording_status_callback",
                "recording_status_callback_method",
                "recording_status_callback_event",
            ):
                if getattr(self, name) is not None:
                    found.append(((to_camel(name),), "has no effect: record does not enable recording"))
        return found


class RelayLanguage(_Model):
    """A nested `<Language>` element: settings for one language the session may use."""

    what: ClassVar[str] = "<Language> (code, ttsProvider, voice, transcriptionProvider, speechModel)"

    code: NonEmpty = Field(description="Required. Language code (for example en-US), or multi.")
    tts_provider: TtsProvider | None = Field(
        None,
        description="Google, Amazon or ElevenLabs (ElevenLabs when code is multi). Inherited from the flow.",
    )
    voice: NonEmpty | None = Field(None, description="TTS voice for this language. Inherited from the flow.")
    transcription_provider: SttProvider | None = Field(
        None, description="Google or Deepgram; must be Deepgram when code is multi. Inherited from the flow."
    )
    speech_model: NonEmpty | None = Field(
        None,
        description="STT speech model (nova-2/3-general when code is multi). Inherited from the flow.",
    )


class RelayFlow(ConnectAttributes):
    """`<Connect><ConversationRelay>`: an AI voice agent over WebSocket."""

    what: ClassVar[str] = "a relay flow (<ConversationRelay> attributes)"

    kind: Literal["relay"] = Field(**not_twiml("relay: <Connect><ConversationRelay> (AI voice agent)."))
    url: WebSocketUrl | None = Field(
        None, description="Your WebSocket server (wss://). Unset: this stack's relay agent (`agent`)."
    )
    welcome_greeting: NonEmpty | None = Field(None, description="Played to the caller once connected.")
    welcome_greeting_interruptible: InterruptMode | None = Field(
        None, description="none, dtmf, speech or any. Twilio default any."
    )
    language: NonEmpty | None = Field(
        None, description="STT and TTS language (for example en-US, or multi). Twilio default en-US."
    )
    tts_language: NonEmpty | None = Field(None, description="TTS language; overrides language.")
    tts_provider: TtsProvider | None = Field(
        None, description="Google, Amazon or ElevenLabs. Twilio default ElevenLabs."
    )
    voice: NonEmpty | None = Field(None, description="TTS voice; choices depend on ttsProvider.")
    transcription_language: NonEmpty | None = Field(None, description="STT language; overrides language.")
    transcription_provider: SttProvider | None = Field(
        None,
        description="Google or Deepgram. Twilio default Deepgram (Google for accounts that used "
        "ConversationRelay before 2025-09-12).",
    )
    speech_model: NonEmpty | None = Field(
        None, description="STT speech model; choices depend on the provider."
    )
    deepgram_smart_format: StrictBool | None = Field(
        None, description="Deepgram Smart Format (true/false). Twilio default true."
    )
    interruptible: Interruptible | None = Field(
        None,
        description="none, dtmf, speech or any (true means any, false none). Twilio default any.",
    )
    interrupt_sensitivity: Literal["low", "medium", "high"] | None = Field(
        None, description="low, medium or high. Twilio default high."
    )
    dtmf_detection: StrictBool | None = Field(None, description="Send DTMF key presses over the WebSocket.")
    report_input_during_agent_speech: InterruptMode | None = Field(
        None, description="none, dtmf, speech or any. Twilio default none."
    )
    preemptible: StrictBool | None = Field(
        None, description="Let the next talk cycle's tokens interrupt this one's TTS. Twilio default false."
    )
    hints: Hints | None = Field(
        None, description="Words or phrases likely in the speech: a comma-separated string or a list."
    )
    debug: DebugOptions | None = Field(
        None, description="Space-separated (or a list): debugging, speaker-events, tokens-played."
    )
    elevenlabs_text_normalization: Literal["on", "auto", "off"] | None = Field(
        None, description="on, auto or off (ElevenLabs only). Twilio default off."
    )
    intelligence_service: NonEmpty | None = Field(
        None, description="Conversational Intelligence Service SID or unique name."
    )
    conversation_configuration: NonEmpty | None = Field(
        None, description="Conversation Orchestrator configuration id: find or create a conversation."
    )
    conversation_id: NonEmpty | None = Field(
        None,
        description="Conversation Orchestrator conversation id; wins over conversationConfiguration.",
    )
    languages: list[RelayLanguage] = Field(default_factory=list, **not_twiml("Nested <Language> elements."))
    parameters: dict[NonEmpty, str] = Field(
        default_factory=dict,
        **not_twiml(
            "Nested <Parameter name value> elements: customParameters in the WebSocket setup message."
        ),
    )
    outcomes: RelayOutcomes = Field(
        default_factory=RelayOutcomes,
        **not_twiml(
            "What /voice/action answers when the session ends: hand-off targets, failure fallback "
            "(docs/action-routing.md)."
        ),
    )
    agent: AgentConfig | None = Field(
        None, **not_twiml("This stack's relay agent (no `url`): docs/relay-agent.md.")
    )
    reconnect: ReconnectConfig | None = Field(None, **not_twiml("Reconnects after a dropped WebSocket."))

    @model_validator(mode="after")
    def _language_rules(self) -> RelayFlow:
        problems = _Problems(type(self).__name__)
        for loc, message in agent_problems(self.agent, self.outcomes.targets):
            problems.add(loc, message)
        self._multi_rules(problems)
        seen: dict[str, int] = {}
        for index, lang in enumerate(self.languages):
            first = seen.setdefault(lang.code.lower(), index)
            if first != index:
                problems.add(
                    ("languages", index, "code"), f"{lang.code!r} is already configured by languages.{first}"
                )
        problems.raise_if_any()
        return self

    def _multi_rules(self, problems: _Problems) -> None:
        multi = next((i for i, lang in enumerate(self.languages) if lang.code == MULTI), None)
        stt_source = "transcriptionLanguage" if self.transcription_language else "language"
        tts_source = "ttsLanguage" if self.tts_language else "language"
        # A <Language code="multi"> overrides the flow's settings for that language: it is checked
        # below with the values it inherits, so the flow-level values need no separate check.
        if multi is None and (self.transcription_language or self.language) == MULTI:
            _check_multi_stt(problems, (), f"the speech-to-text language is multi ({stt_source})", self, None)
        if multi is None and (self.tts_language or self.language) == MULTI:
            _check_multi_tts(problems, (), f"the text-to-speech language is multi ({tts_source})", self, None)
        for index, lang in enumerate(self.languages):
            if lang.code == MULTI:
                where: Loc = ("languages", index)
                _check_multi_stt(problems, where, "code is multi", self, lang)
                _check_multi_tts(problems, where, "code is multi", self, lang)

    def flow_warnings(self) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        if self.url and self.agent:
            found.append((("agent",), "has no effect: url points at your own WebSocket server"))
        if self.conversation_id and self.conversation_configuration:
            found.append(
                (
                    ("conversationConfiguration",),
                    "ignored for routing: conversationId is also set and takes precedence "
                    "(the configuration's grouping rules are bypassed)",
                )
            )
        if self.welcome_greeting_interruptible is not None and self.welcome_greeting is None:
            found.append((("welcomeGreetingInterruptible",), "has no effect without welcomeGreeting"))
        tts = {self.tts_provider or "ElevenLabs"} | {
            lang.tts_provider for lang in self.languages if lang.tts_provider
        }
        if self.elevenlabs_text_normalization is not None and "ElevenLabs" not in tts:
            found.append(
                (("elevenlabsTextNormalization",), "has no effect: no TTS provider here is ElevenLabs")
            )
        stt = {self.transcription_provider} | {
            lang.transcription_provider for lang in self.languages if lang.transcription_provider
        }
        if self.deepgram_smart_format is not None and stt == {"Google"}:
            found.append((("deepgramSmartFormat",), "has no effect: the transcription provider is Google"))
        return found


def _check_multi_stt(
    problems: _Problems, where: Loc, reason: str, flow: RelayFlow, lang: RelayLanguage | None
) -> None:
    provider, provider_from = _setting(flow, lang, "transcription_provider")
    if provider != "Deepgram":
        got = (
            f"it is {provider!r}{provider_from}"
            if provider
            # Deepgram is not every account's default (older accounts default to Google): say it.
            else "it is not set, and the account default may be Google"
        )
        problems.add((*where, "transcriptionProvider"), f"must be Deepgram when {reason}; {got}", provider)
    model, model_from = _setting(flow, lang, "speech_model")
    if model is not None and model not in MULTI_SPEECH_MODELS:
        problems.add(
            (*where, "speechModel"),
            f"must be {' or '.join(MULTI_SPEECH_MODELS)} when {reason}; it is {model!r}{model_from}",
            model,
        )


def _check_multi_tts(
    problems: _Problems, where: Loc, reason: str, flow: RelayFlow, lang: RelayLanguage | None
) -> None:
    provider, provider_from = _setting(flow, lang, "tts_provider")
    if provider not in (None, "ElevenLabs"):  # ElevenLabs is the default TTS provider
        problems.add(
            (*where, "ttsProvider"),
            f"must be ElevenLabs when {reason}; it is {provider!r}{provider_from}",
            provider,
        )


def _setting(flow: RelayFlow, lang: RelayLanguage | None, name: str) -> tuple[str | None, str]:
    """A setting as it applies to `lang` (its own value, else the flow's), and where it came from."""
    if lang is None:
        return getattr(flow, name), ""
    own: str | None = getattr(lang, name)
    if own is not None:
        return own, ""
    inherited: str | None = getattr(flow, name)
    return inherited, f" (inherited from the flow's {to_camel(name)})" if inherited else ""


Flow = Annotated[ConversationFlow | RelayFlow, Field(discriminator="kind")]
FLOW_KINDS = ("conversation", "relay")


class FlowConfig(BaseModel):
    """The whole document. Top-level keys: `default`, `numbers`, `flows`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: NonEmpty = Field(description="Flow used when the called number is not listed in `numbers`.")
    numbers: dict[PhoneNumber, NonEmpty] = Field(
        default_factory=dict, description="Called number (E.164, the call's To) -> flow name."
    )
    flows: dict[FlowName, Flow] = Field(description="Flow name -> flow.")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        return _key_problems(data, cls.model_fields, "the document (default, numbers, flows)", cls.__name__)

    @model_validator(mode="after")
    def _names_resolve(self) -> FlowConfig:
        problems = _Problems(type(self).__name__)
        defined = ", ".join(sorted(self.flows)) or "none"
        if self.default not in self.flows:
            problems.add(("default",), f"flow {self.default!r} is not defined in flows (defined: {defined})")
        for number, name in self.numbers.items():
            if name not in self.flows:
                problems.add(
                    ("numbers", number), f"flow {name!r} is not defined in flows (defined: {defined})"
                )
        problems.raise_if_any()
        return self

    def flow_name_for(self, called_number: str | None) -> str:
        return self.numbers.get(called_number or "", self.default)

    def warnings(self) -> list[str]:
        """Valid but suspicious settings, one line each, naming the field."""
        return [
            f"{_path(('flows', name, *loc))}: {message}"
            for name, flow in self.flows.items()
            for loc, message in flow.flow_warnings()
        ]


# ---------------------------------------------------------------------------------------------------
# Error messages

_PHONE_IN_TEXT = re.compile(r"\+\d{6,15}")


def describe_errors(error: ValidationError, mask: Callable[[str], str | None] | None = None) -> list[str]:
    """One line per problem, `path.to.field: what is wrong`. `mask` hides phone numbers (logs)."""
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        # pydantic puts the discriminator value after the flow name: flows.<name>.<kind>.<field>
        if len(loc) >= 3 and loc[0] == "flows" and loc[2] in FLOW_KINDS:
            del loc[2]
        loc = [part for part in loc if part != "[key]"]
        if item["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc.append("kind")
        message = _message(item["type"], item["msg"], item.get("ctx") or {}, item.get("input"), loc)
        line = f"{_path(loc)}: {message}" if loc else message
        if mask is not None:
            line = _PHONE_IN_TEXT.sub(lambda m: mask(m.group()) or "***", line)
        lines.append(line)
    return lines


def _path(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) if part != "" else '""' for part in loc)


# Errors about a value's type or choice: the message says what was given.
_SHOW_INPUT = {"literal_error", "int_type", "bool_type", "string_type", "greater_than_equal", "enum"}


def _message(kind: str, message: str, ctx: dict[str, Any], value: object, loc: list[Any]) -> str:
    kinds = " or ".join(FLOW_KINDS)
    if kind == "union_tag_not_found":
        return f"is required: {kinds}"
    if kind == "union_tag_invalid":
        return f"must be {kinds} (got {json.dumps(ctx.get('tag'))})"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object" if loc else "the document must be a JSON object"
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    if kind in _SHOW_INPUT and isinstance(value, str | int | float | bool) and len(str(value)) <= 80:
        message += f" (got {json.dumps(value)})"
    return message
