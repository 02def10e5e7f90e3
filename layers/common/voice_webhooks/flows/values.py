"""Value types of the call-flow document, each with its JSON-Schema twin.

Each type keeps schema/flow-config.schema.json in step with what its validator accepts; the
factories return validators and schemas (not types) so that mypy sees every field's real type.
Twilio's own vocabularies (record modes, status events, providers) are listed here once."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

E164 = r"^\+[1-9]\d{1,14}$"
FLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
HttpMethod = Literal["GET", "POST"]
InterruptMode = Literal["none", "dtmf", "speech", "any"]


class DocumentModel(BaseModel):
    """Base of every object of the call-flow document (flows, outcomes, agent): camelCase keys as
    Twilio's docs write them, no unknown key (a typo fails the document), frozen, strings stripped."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, str_strip_whitespace=True
    )


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
