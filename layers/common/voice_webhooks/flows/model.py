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

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, model_validator
from pydantic.alias_generators import to_camel

from voice_webhooks.flows.agent import AgentConfig, ReconnectConfig, agent_problems
from voice_webhooks.flows.messages import (
    FLOW_KINDS,
    Loc,
    Problems,
    describe_errors,
    path_of,
    validate_reporting_all,
)
from voice_webhooks.flows.outcomes import ConversationOutcomes, RelayOutcomes
from voice_webhooks.flows.values import (
    CONVERSATION_STATUS_EVENTS,
    MULTI,
    MULTI_SPEECH_MODELS,
    RECORDING_STATUS_EVENTS,
    AbsoluteUrl,
    DebugOptions,
    DocumentModel,
    FlowName,
    Hints,
    HttpMethod,
    Interruptible,
    InterruptMode,
    NonEmpty,
    PhoneNumber,
    PositiveInt,
    Record,
    RecordingEvents,
    ServiceInstanceSid,
    StatusEvents,
    StrictBool,
    SttProvider,
    TtsProvider,
    Url,
    WebSocketUrl,
)

# Re-exported: the TwiML renderer reads the event lists, the loader the error wording.
__all__ = [
    "CONVERSATION_STATUS_EVENTS",
    "FLOW_KINDS",
    "RECORDING_STATUS_EVENTS",
    "ConversationFlow",
    "FlowConfig",
    "RelayFlow",
    "describe_errors",
]


# ---------------------------------------------------------------------------------------------------
# Models


# Marks a flow key that is ours, not a TwiML attribute: never rendered as one.
NOT_TWIML: dict[str, Any] = {"x-not-twiml-attribute": True}


def not_twiml(description: str) -> Any:
    """Field(...) keyword arguments for a flow key that is not a TwiML attribute of the noun."""
    return {"description": description, "json_schema_extra": NOT_TWIML}


class _Model(DocumentModel):
    # How error messages call this object ("a relay flow", "<Language>").
    what: ClassVar[str] = "this object"

    @model_validator(mode="wrap")
    @classmethod
    def _report_all(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        keys = [info.alias or name for name, info in cls.model_fields.items()]
        return validate_reporting_all(data, keys, cls.what, cls.__name__, handler)

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
        problems = Problems(type(self).__name__)
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
        problems = Problems(type(self).__name__)
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

    def _multi_rules(self, problems: Problems) -> None:
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
    problems: Problems, where: Loc, reason: str, flow: RelayFlow, lang: RelayLanguage | None
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
    problems: Problems, where: Loc, reason: str, flow: RelayFlow, lang: RelayLanguage | None
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


class FlowConfig(BaseModel):
    """The whole document. Top-level keys: `default`, `numbers`, `flows`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: NonEmpty = Field(description="Flow used when the called number is not listed in `numbers`.")
    numbers: dict[PhoneNumber, NonEmpty] = Field(
        default_factory=dict, description="Called number (E.164, the call's To) -> flow name."
    )
    flows: dict[FlowName, Flow] = Field(description="Flow name -> flow.")

    @model_validator(mode="wrap")
    @classmethod
    def _report_all(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        what = "the document (default, numbers, flows)"
        return validate_reporting_all(data, cls.model_fields, what, cls.__name__, handler, _names_resolve)

    def flow_name_for(self, called_number: str | None) -> str:
        return self.numbers.get(called_number or "", self.default)

    def warnings(self) -> list[str]:
        """Valid but suspicious settings, one line each, naming the field."""
        return [
            f"{path_of(('flows', name, *loc))}: {message}"
            for name, flow in self.flows.items()
            for loc, message in flow.flow_warnings()
        ]


def _names_resolve(document: dict[Any, Any]) -> Problems:
    """`default` and every number name a defined flow. Checked on the raw document, so that a
    dangling name is reported together with every other problem, not after they are fixed."""
    problems = Problems(FlowConfig.__name__)
    flows = document.get("flows")
    numbers = document.get("numbers")
    if not isinstance(flows, dict):
        return problems
    defined = ", ".join(sorted(str(name) for name in flows)) or "none"
    default = document.get("default")
    if isinstance(default, str) and default and default not in flows:
        problems.add(("default",), f"flow {default!r} is not defined in flows (defined: {defined})")
    for number, name in numbers.items() if isinstance(numbers, dict) else ():
        if isinstance(name, str) and name and name not in flows:
            problems.add(("numbers", number), f"flow {name!r} is not defined in flows (defined: {defined})")
    return problems
