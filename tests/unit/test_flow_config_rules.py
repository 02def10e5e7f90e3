"""One failing document per rule of the call-flow configuration. Each case starts from a valid
document with both kinds of flow, changes one thing, and expects validation to fail with a message
that names the field by its path in the document (what `validate-config` prints)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import parse_flow_config

FIXTURES = Path(__file__).parent / "fixtures" / "flow_config"
BASE = json.loads((FIXTURES / "minimal_both_kinds.json").read_text())
CONV = ("flows", "frontline")
RELAY = ("flows", "assistant")
DELETE = object()


def changed(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """The base document with each (path, value) applied; DELETE removes the key."""
    document: dict[str, Any] = copy.deepcopy(BASE)
    for path, value in edits:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return document


def relay_with(**attributes: Any) -> dict[str, Any]:
    return changed(*(((*RELAY, name), value) for name, value in attributes.items()))


def conversation_with(**attributes: Any) -> dict[str, Any]:
    return changed(*(((*CONV, name), value) for name, value in attributes.items()))


MULTI_OK = {"transcriptionProvider": "Deepgram", "speechModel": "nova-3-general"}

# (case id, document, expected line start (the field's path), a fragment of the message)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # --- document shape
    ("default required", changed((("default",), DELETE)), "default:", "is required"),
    ("flows required", changed((("flows",), DELETE)), "flows:", "is required"),
    ("default names a defined flow", changed((("default",), "nope")), "default:", "'nope' is not defined"),
    (
        "numbers values name defined flows",
        changed((("numbers", "+15550100002"), "nope")),
        "numbers.+15550100002:",
        "'nope' is not defined",
    ),
    ("numbers keys are E.164", changed((("numbers", "555-0100"), "frontline")), "numbers.555-0100:", "E.164"),
    (
        "numbers keys start with +",
        changed((("numbers", "15550100003"), "frontline")),
        "numbers.15550100003:",
        "E.164",
    ),
    (
        "numbers values are names",
        changed((("numbers", "+15550100003"), ["frontline"])),
        "numbers.+15550100003:",
        "string",
    ),
    (
        "flow names are simple",
        changed((("flows", "front.line"), BASE["flows"]["frontline"])),
        "flows.front.line:",
        "flow names",
    ),
    ("unknown top-level key", changed((("flow",), {})), "flow:", "unknown key for the document"),
    ("$schema is not a document key", changed((("$schema",), "x.json")), "$schema:", "associate"),
    ("a flow is an object", changed(((*CONV,), "conversation")), "flows.frontline:", "JSON object"),
    (
        "kind required",
        changed(((*CONV, "kind"), DELETE)),
        "flows.frontline.kind:",
        "is required: conversation or relay",
    ),
    (
        "kind is conversation or relay",
        changed(((*CONV, "kind"), "dial")),
        "flows.frontline.kind:",
        'got "dial"',
    ),
    ("null is not a value", conversation_with(record=None), "flows.frontline.record:", "must not be null"),
    # --- unknown keys (typos must not pass silently)
    (
        "typo in a conversation key",
        conversation_with(serviceInstanceSID="IS00000000000000000000000000000000"),
        "flows.frontline.serviceInstanceSID:",
        "did you mean 'serviceInstanceSid'",
    ),
    (
        "typo in a relay key",
        relay_with(welcomeGreting="Hi"),
        "flows.assistant.welcomeGreting:",
        "did you mean 'welcomeGreeting'",
    ),
    (
        "snake_case key",
        relay_with(tts_provider="Google"),
        "flows.assistant.tts_provider:",
        "did you mean 'ttsProvider'",
    ),
    (
        "relay key on a conversation flow",
        conversation_with(welcomeGreeting="Hi"),
        "flows.frontline.welcomeGreeting:",
        "unknown key for a conversation flow",
    ),
    (
        "conversation key on a relay flow",
        relay_with(record="true"),
        "flows.assistant.record:",
        "unknown key for a relay flow",
    ),
    (
        "attribute twilio-python knows but the reference pages do not",
        relay_with(profanityFilter=True),
        "flows.assistant.profanityFilter:",
        "unknown key for a relay flow",
    ),
    (
        "unknown <Language> key",
        relay_with(languages=[{"code": "en-US", "lang": "en"}]),
        "flows.assistant.languages.0.lang:",
        "unknown key for <Language>",
    ),
    # --- <Connect>
    ("connect method", relay_with(method="PUT"), "flows.assistant.method:", "'GET' or 'POST'"),
    (
        "connect action is a URL",
        conversation_with(action="javascript:alert(1)"),
        "flows.frontline.action:",
        "http(s) URL",
    ),
    # --- <Conversation>
    (
        "serviceInstanceSid required",
        changed(((*CONV, "serviceInstanceSid"), DELETE)),
        "flows.frontline.serviceInstanceSid:",
        "is required",
    ),
    (
        "serviceInstanceSid is IS + 32 hex",
        conversation_with(serviceInstanceSid="IS123"),
        "flows.frontline.serviceInstanceSid:",
        "IS followed by 32 hex",
    ),
    (
        "serviceInstanceSid hex digits",
        conversation_with(serviceInstanceSid="IS" + "g" * 32),
        "flows.frontline.serviceInstanceSid:",
        "32 hex",
    ),
    (
        "serviceInstanceSid prefix",
        conversation_with(serviceInstanceSid="CH" + "0" * 32),
        "flows.frontline.serviceInstanceSid:",
        "IS followed",
    ),
    (
        "inboundAutocreation boolean",
        conversation_with(inboundAutocreation="yes"),
        "flows.frontline.inboundAutocreation:",
        "boolean",
    ),
    (
        "routingAssignmentTimeout integer",
        conversation_with(routingAssignmentTimeout="10"),
        "flows.frontline.routingAssignmentTimeout:",
        "integer",
    ),
    (
        "routingAssignmentTimeout whole",
        conversation_with(routingAssignmentTimeout=2.5),
        "flows.frontline.routingAssignmentTimeout:",
        "integer",
    ),
    (
        "inboundTimeout integer",
        conversation_with(inboundTimeout=True),
        "flows.frontline.inboundTimeout:",
        "integer",
    ),
    (
        "inboundTimeout positive",
        conversation_with(inboundTimeout=0),
        "flows.frontline.inboundTimeout:",
        "greater than or equal to 1",
    ),
    (
        "record value",
        conversation_with(record="always"),
        "flows.frontline.record:",
        "record-from-answer-dual",
    ),
    (
        "record aliases are only true/false",
        conversation_with(record="yes"),
        "flows.frontline.record:",
        "true (record-from-answer)",
    ),
    (
        "trim value",
        conversation_with(record=True, trim="trim"),
        "flows.frontline.trim:",
        "'trim-silence' or 'do-not-trim'",
    ),
    (
        "trim needs record",
        conversation_with(trim="trim-silence"),
        "flows.frontline.trim:",
        "only valid when record enables recording",
    ),
    (
        "trim with record off",
        conversation_with(record=False, trim="do-not-trim"),
        "flows.frontline.trim:",
        "'do-not-record'",
    ),
    (
        "recordingStatusCallback absolute",
        conversation_with(record=True, recordingStatusCallback="/recordings"),
        "flows.frontline.recordingStatusCallback:",
        "absolute http(s) URL",
    ),
    (
        "recordingStatusCallbackMethod",
        conversation_with(recordingStatusCallbackMethod="post"),
        "flows.frontline.recordingStatusCallbackMethod:",
        "'GET' or 'POST'",
    ),
    (
        "recordingStatusCallbackEvent words",
        conversation_with(recordingStatusCallbackEvent="completed failed"),
        "flows.frontline.recordingStatusCallbackEvent:",
        "'failed' is not one of",
    ),
    (
        "recordingStatusCallbackEvent not empty",
        conversation_with(recordingStatusCallbackEvent=[]),
        "flows.frontline.recordingStatusCallbackEvent:",
        "space-separated list",
    ),
    (
        "statusCallback URL",
        conversation_with(statusCallback="ftp://example.com/x"),
        "flows.frontline.statusCallback:",
        "http(s) URL",
    ),
    (
        "statusCallback without spaces",
        conversation_with(statusCallback="https://example.com/a b"),
        "flows.frontline.statusCallback:",
        "without spaces",
    ),
    (
        "statusCallbackMethod",
        conversation_with(statusCallbackMethod="PATCH"),
        "flows.frontline.statusCallbackMethod:",
        "'GET' or 'POST'",
    ),
    (
        "statusCallbackEvent words",
        conversation_with(statusCallbackEvent="call-answered call-ended"),
        "flows.frontline.statusCallbackEvent:",
        "'call-ended' is not one of",
    ),
    (
        "statusCallbackEvent spaces not commas",
        conversation_with(statusCallbackEvent="call-answered,call-completed"),
        "flows.frontline.statusCallbackEvent:",
        "separate words with spaces",
    ),
    (
        "statusCallbackEvent repeated",
        conversation_with(statusCallbackEvent=["call-answered", "call-answered"]),
        "flows.frontline.statusCallbackEvent:",
        "more than once",
    ),
    (
        "conversation url",
        conversation_with(url="mailto:x@example.com"),
        "flows.frontline.url:",
        "http(s) URL",
    ),
    # --- <ConversationRelay>
    (
        "relay hand-off intent names an allowed target",
        relay_with(
            agent={
                "kind": "scripted",
                "intents": [
                    {"name": "human", "keywords": ["agent"], "answer": "One moment.", "handoff": "nowhere"}
                ],
            }
        ),
        "flows.assistant.agent.intents.0.handoff:",
        "not a key of outcomes.targets",
    ),
    (
        "relay intent needs keywords or dtmf",
        relay_with(agent={"kind": "scripted", "intents": [{"name": "x", "answer": "Hello."}]}),
        "flows.assistant.agent.intents.0:",
        "needs keywords, dtmf or both",
    ),
    ("relay url is wss", relay_with(url="https://agent.example.com/ws"), "flows.assistant.url:", "wss://"),
    ("relay url not ws", relay_with(url="ws://agent.example.com/ws"), "flows.assistant.url:", "wss://"),
    (
        "welcomeGreeting not empty",
        relay_with(welcomeGreeting="  "),
        "flows.assistant.welcomeGreeting:",
        "must not be empty",
    ),
    (
        "welcomeGreetingInterruptible",
        relay_with(welcomeGreetingInterruptible="true"),
        "flows.assistant.welcomeGreetingInterruptible:",
        "'none', 'dtmf', 'speech' or 'any'",
    ),
    (
        "ttsProvider",
        relay_with(ttsProvider="Polly"),
        "flows.assistant.ttsProvider:",
        "'Google', 'Amazon' or 'ElevenLabs'",
    ),
    (
        "transcriptionProvider",
        relay_with(transcriptionProvider="Whisper"),
        "flows.assistant.transcriptionProvider:",
        "'Google' or 'Deepgram'",
    ),
    (
        "deepgramSmartFormat boolean",
        relay_with(deepgramSmartFormat="true"),
        "flows.assistant.deepgramSmartFormat:",
        "boolean",
    ),
    (
        "interruptible",
        relay_with(interruptible="sometimes"),
        "flows.assistant.interruptible:",
        "true (any) / false (none)",
    ),
    (
        "interruptSensitivity",
        relay_with(interruptSensitivity="loud"),
        "flows.assistant.interruptSensitivity:",
        "'low', 'medium' or 'high'",
    ),
    ("dtmfDetection boolean", relay_with(dtmfDetection=1), "flows.assistant.dtmfDetection:", "boolean"),
    (
        "reportInputDuringAgentSpeech",
        relay_with(reportInputDuringAgentSpeech="all"),
        "flows.assistant.reportInputDuringAgentSpeech:",
        "'none', 'dtmf', 'speech' or 'any'",
    ),
    ("preemptible boolean", relay_with(preemptible="no"), "flows.assistant.preemptible:", "boolean"),
    ("hints not empty", relay_with(hints="Twilio,,Relay"), "flows.assistant.hints:", "empty hints"),
    (
        "hints in a list have no commas",
        relay_with(hints=["Twilio, Inc."]),
        "flows.assistant.hints:",
        "cannot contain a comma",
    ),
    (
        "debug words",
        relay_with(debug="debugging verbose"),
        "flows.assistant.debug:",
        "'verbose' is not one of",
    ),
    (
        "debug spaces not commas",
        relay_with(debug="debugging,tokens-played"),
        "flows.assistant.debug:",
        "separate words with spaces",
    ),
    (
        "elevenlabsTextNormalization",
        relay_with(elevenlabsTextNormalization="yes"),
        "flows.assistant.elevenlabsTextNormalization:",
        "'on', 'auto' or 'off'",
    ),
    ("language not empty", relay_with(language=""), "flows.assistant.language:", "must not be empty"),
    (
        "conversationId not empty",
        relay_with(conversationId=""),
        "flows.assistant.conversationId:",
        "must not be empty",
    ),
    (
        "parameters are strings",
        relay_with(parameters={"priority": 1}),
        "flows.assistant.parameters.priority:",
        "string",
    ),
    (
        "parameter names not empty",
        relay_with(parameters={"": "x"}),
        'flows.assistant.parameters."":',
        "must not be empty",
    ),
    # --- multi (automatic language detection)
    (
        "multi STT needs Deepgram",
        relay_with(language="multi", transcriptionProvider="Google"),
        "flows.assistant.transcriptionProvider:",
        "must be Deepgram when the speech-to-text language is multi (language); it is 'Google'",
    ),
    (
        "multi STT provider must be explicit",
        relay_with(language="multi"),
        "flows.assistant.transcriptionProvider:",
        "it is not set",
    ),
    (
        "multi STT speech model",
        relay_with(language="multi", transcriptionProvider="Deepgram", speechModel="nova-2-phonecall"),
        "flows.assistant.speechModel:",
        "nova-2-general or nova-3-general",
    ),
    (
        "multi via transcriptionLanguage",
        relay_with(language="en-US", transcriptionLanguage="multi", transcriptionProvider="Google"),
        "flows.assistant.transcriptionProvider:",
        "(transcriptionLanguage)",
    ),
    (
        "multi TTS needs ElevenLabs",
        relay_with(language="multi", ttsProvider="Google", **MULTI_OK),
        "flows.assistant.ttsProvider:",
        "must be ElevenLabs when the text-to-speech language is multi (language)",
    ),
    (
        "multi via ttsLanguage",
        relay_with(ttsLanguage="multi", ttsProvider="Amazon"),
        "flows.assistant.ttsProvider:",
        "(ttsLanguage)",
    ),
    # --- <Language>
    (
        "Language code required",
        relay_with(languages=[{"voice": "Elin-Neural"}]),
        "flows.assistant.languages.0.code:",
        "is required",
    ),
    (
        "Language code not empty",
        relay_with(languages=[{"code": " "}]),
        "flows.assistant.languages.0.code:",
        "must not be empty",
    ),
    (
        "Language codes unique",
        relay_with(languages=[{"code": "en-US"}, {"code": "sv-SE"}, {"code": "en-us"}]),
        "flows.assistant.languages.2.code:",
        "already configured by languages.0",
    ),
    (
        "Language ttsProvider",
        relay_with(languages=[{"code": "en-US", "ttsProvider": "Polly"}]),
        "flows.assistant.languages.0.ttsProvider:",
        "'Google', 'Amazon' or 'ElevenLabs'",
    ),
    (
        "Language transcriptionProvider",
        relay_with(languages=[{"code": "en-US", "transcriptionProvider": "Whisper"}]),
        "flows.assistant.languages.0.transcriptionProvider:",
        "'Google' or 'Deepgram'",
    ),
    (
        "Language multi needs ElevenLabs",
        relay_with(languages=[{"code": "en-US"}, {"code": "multi", "ttsProvider": "Amazon", **MULTI_OK}]),
        "flows.assistant.languages.1.ttsProvider:",
        "must be ElevenLabs when code is multi; it is 'Amazon'",
    ),
    (
        "Language multi inherits the TTS provider",
        relay_with(ttsProvider="Google", languages=[{"code": "multi", **MULTI_OK}]),
        "flows.assistant.languages.0.ttsProvider:",
        "inherited from the flow's ttsProvider",
    ),
    (
        "Language multi needs Deepgram",
        relay_with(languages=[{"code": "multi", "transcriptionProvider": "Google"}]),
        "flows.assistant.languages.0.transcriptionProvider:",
        "must be Deepgram when code is multi; it is 'Google'",
    ),
    (
        "Language multi inherits the STT provider",
        relay_with(transcriptionProvider="Google", languages=[{"code": "multi"}]),
        "flows.assistant.languages.0.transcriptionProvider:",
        "inherited from the flow's transcriptionProvider",
    ),
    (
        "Language multi STT provider must be explicit",
        relay_with(languages=[{"code": "multi"}]),
        "flows.assistant.languages.0.transcriptionProvider:",
        "it is not set",
    ),
    (
        "Language multi speech model",
        relay_with(languages=[{"code": "multi", "transcriptionProvider": "Deepgram", "speechModel": "long"}]),
        "flows.assistant.languages.0.speechModel:",
        "nova-2-general or nova-3-general when code is multi",
    ),
    (
        "Language multi inherits the speech model",
        relay_with(
            speechModel="telephony", languages=[{"code": "multi", "transcriptionProvider": "Deepgram"}]
        ),
        "flows.assistant.languages.0.speechModel:",
        "inherited from the flow's speechModel",
    ),
]


@pytest.mark.parametrize(
    ("document", "field", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_rule_fails_with_a_message_naming_the_field(
    document: dict[str, Any], field: str, fragment: str
) -> None:
    # Given a document breaking one rule (the rest is valid)
    text = json.dumps(document)

    # When it is validated
    with pytest.raises(ConfigurationError) as raised:
        parse_flow_config(text, "flows.json")

    # Then exactly one problem is reported, on that field, saying what is wrong
    problems = raised.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(field + " "), problems
    assert fragment in problems[0], problems


def test_base_document_of_the_rule_cases_is_valid() -> None:
    # Given the document every case starts from
    # When it is validated / Then it passes without warnings (so each failure is the case's own)
    config, warnings_found = parse_flow_config(json.dumps(BASE))
    assert set(config.flows) == {"frontline", "assistant"}
    assert warnings_found == []


def test_every_problem_in_a_document_is_reported_at_once() -> None:
    # Given a document with problems in both flows and in the numbers
    document = changed(
        (("numbers", "5550100"), "frontline"),
        ((*CONV, "serviceInstanceSid"), "IS1"),
        ((*RELAY, "url"), "https://agent.example.com"),
        ((*RELAY, "debug"), "loud"),
    )

    # When it is validated
    with pytest.raises(ConfigurationError) as raised:
        parse_flow_config(json.dumps(document), "flows.json")

    # Then one line per problem, each naming its field, and the message leads with the source
    assert [line.split(":")[0] for line in raised.value.problems] == [
        "numbers.5550100",
        "flows.frontline.serviceInstanceSid",
        "flows.assistant.url",
        "flows.assistant.debug",
    ]
    assert str(raised.value).startswith("flows.json: numbers.5550100: ")


def test_a_flow_named_like_a_kind_keeps_its_name_in_the_path() -> None:
    # Given flows named after the kinds themselves, each with a problem
    document = {
        "default": "relay",
        "flows": {
            "relay": {"kind": "relay", "url": "https://x.example.com"},
            "conversation": {"kind": "conversation", "serviceInstanceSid": "IS1"},
        },
    }

    # When it is validated
    with pytest.raises(ConfigurationError) as raised:
        parse_flow_config(json.dumps(document))

    # Then the flow names are in the paths (only the discriminator pydantic inserts is dropped)
    assert [line.split(":")[0] for line in raised.value.problems] == [
        "flows.relay.url",
        "flows.conversation.serviceInstanceSid",
    ]


def test_invalid_json_names_the_position() -> None:
    # Given a document that is not JSON
    # When it is validated / Then the error says so with the position
    with pytest.raises(ConfigurationError, match=r"flows\.json: not valid JSON \(.*line 1 column 2"):
        parse_flow_config("{,}", "flows.json")


def test_a_document_that_is_not_an_object_is_refused() -> None:
    # Given a JSON list / When it is validated / Then the problem says the document must be an object
    with pytest.raises(ConfigurationError) as raised:
        parse_flow_config("[]")
    assert raised.value.problems == ["the document must be a JSON object"]
