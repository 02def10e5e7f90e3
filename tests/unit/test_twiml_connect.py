"""The `<Connect>` TwiML for each flow kind, checked attribute by attribute on the parsed XML.

Every attribute of the reference pages (`<Connect>`, `<Conversation>`, `<ConversationRelay>`,
`<Language>`, `<Parameter>`) is set in a fixture and must come out with Twilio's camelCase name and
the value Twilio expects: lists space- or comma-joined, booleans `true`/`false`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from twilio.twiml import lower_camel
from twilio.twiml.voice_response import Connect, ConversationRelay, VoiceResponse
from voice_webhooks.calls.answering import callback_urls
from voice_webhooks.flows.model import ConversationFlow, FlowConfig, RelayFlow
from voice_webhooks.twiml.connect import CallbackUrls, render_connect

FIXTURES = Path(__file__).parent / "fixtures" / "flow_config"
SID = "IS00000000000000000000000000000000"
URLS = CallbackUrls(
    action="https://api.example.com/voice/action?session=s-1#rc=3&rp=all",
    status="https://api.example.com/voice/status?session=s-1#rc=3&rp=all",
    recording="https://api.example.com/voice/recording?session=s-1#rc=3&rp=all",
)
ALL_STATUS_EVENTS = "call-initiated call-ringing call-answered call-completed"


def fixture_flow(name: str) -> Any:
    config = FlowConfig.model_validate(json.loads((FIXTURES / name).read_text()))
    return config.flows[config.default]


def conversation(**attributes: Any) -> ConversationFlow:
    return ConversationFlow.model_validate({"kind": "conversation", "serviceInstanceSid": SID, **attributes})


def relay(**attributes: Any) -> RelayFlow:
    return RelayFlow.model_validate({"kind": "relay", "url": "wss://agent.example.com/ws", **attributes})


def render(flow: ConversationFlow | RelayFlow, urls: CallbackUrls = URLS) -> ElementTree.Element:
    root = ElementTree.fromstring(render_connect(flow, urls))
    assert root.tag == "Response"
    return root


def only(root: ElementTree.Element, path: str) -> ElementTree.Element:
    found = root.findall(path)
    assert len(found) == 1, f"expected one {path}, found {len(found)}"
    return found[0]


# --- <Connect><Conversation> -------------------------------------------------------------------------


def test_every_conversation_attribute_is_rendered_with_twilio_names_and_values() -> None:
    # Given a flow that sets every <Connect> and <Conversation> attribute of the reference page
    flow = fixture_flow("conversation_all_attributes.json")

    # When it is rendered
    root = render(flow)

    # Then <Connect> and <Conversation> carry exactly those attributes, the user's values winning
    assert only(root, "./Connect").attrib == {
        "action": "https://hooks.example.com/after-conversation",
        "method": "GET",
    }
    assert only(root, "./Connect/Conversation").attrib == {
        "serviceInstanceSid": "IS0123456789abcdef0123456789ABCDEF",
        "inboundAutocreation": "false",
        "routingAssignmentTimeout": "12",
        "inboundTimeout": "25",
        "record": "record-from-ringing-dual",
        "trim": "do-not-trim",
        "recordingStatusCallback": "https://hooks.example.com/recordings",
        "recordingStatusCallbackMethod": "GET",
        "recordingStatusCallbackEvent": "completed absent",
        "statusCallback": "/hooks/status",
        "statusCallbackMethod": "GET",
        "statusCallbackEvent": "call-answered call-completed",
        "url": "https://hooks.example.com/whisper.xml",
    }
    assert list(only(root, "./Connect/Conversation")) == []


def test_conversation_without_callbacks_gets_ours_with_all_four_status_events() -> None:
    # Given a flow that sets only the service SID (no recording)
    flow = conversation()

    # When it is rendered
    root = render(flow)

    # Then the session's action and status callbacks point back at this API, and nothing about
    # recordings is written
    assert only(root, "./Connect").attrib == {"action": URLS.action, "method": "POST"}
    assert only(root, "./Connect/Conversation").attrib == {
        "serviceInstanceSid": SID,
        "statusCallback": URLS.status,
        "statusCallbackMethod": "POST",
        "statusCallbackEvent": ALL_STATUS_EVENTS,
    }


@pytest.mark.parametrize(
    "record",
    ["record-from-answer", "record-from-ringing", "record-from-answer-dual", "record-from-ringing-dual"],
)
def test_recording_flow_gets_our_recording_callback_with_all_three_events(record: str) -> None:
    # Given a flow that records
    flow = conversation(record=record)

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then the recording status callback comes back here for in-progress, completed and absent
    assert attributes["record"] == record
    assert attributes["recordingStatusCallback"] == URLS.recording
    assert attributes["recordingStatusCallbackMethod"] == "POST"
    assert attributes["recordingStatusCallbackEvent"] == "in-progress completed absent"


@pytest.mark.parametrize(("alias", "meaning"), [(True, "record-from-answer"), ("true", "record-from-answer")])
def test_record_true_alias_renders_what_it_stands_for_and_gets_recording_callbacks(
    alias: object, meaning: str
) -> None:
    # Given record written as the documented alias true
    flow = conversation(record=alias)

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then the canonical value is written and the recording callback is ours
    assert attributes["record"] == meaning
    assert attributes["recordingStatusCallback"] == URLS.recording


@pytest.mark.parametrize("off", [False, "false", "do-not-record"])
def test_flow_that_does_not_record_gets_no_recording_callback(off: object) -> None:
    # Given record switched off (alias or value)
    flow = conversation(record=off)

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then record says so and no recording callback attribute is written
    assert attributes["record"] == "do-not-record"
    assert not {name for name in attributes if name.startswith("recording")}


def test_user_values_win_one_by_one_and_ours_fill_the_rest() -> None:
    # Given a recording flow that sets only some callback attributes itself
    flow = conversation(
        record="record-from-answer",
        statusCallbackMethod="GET",
        recordingStatusCallbackEvent="completed",
    )

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then each explicit value is kept and each missing one is ours
    assert attributes["statusCallback"] == URLS.status
    assert attributes["statusCallbackMethod"] == "GET"
    assert attributes["statusCallbackEvent"] == ALL_STATUS_EVENTS
    assert attributes["recordingStatusCallback"] == URLS.recording
    assert attributes["recordingStatusCallbackMethod"] == "POST"
    assert attributes["recordingStatusCallbackEvent"] == "completed"


def test_event_lists_given_as_json_lists_are_space_joined_never_python_reprs() -> None:
    # Given event lists written as JSON lists
    flow = conversation(
        record=True,
        statusCallbackEvent=["call-initiated", "call-completed"],
        recordingStatusCallbackEvent=["in-progress", "absent"],
    )

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then Twilio gets space-separated words
    assert attributes["statusCallbackEvent"] == "call-initiated call-completed"
    assert attributes["recordingStatusCallbackEvent"] == "in-progress absent"
    assert not any(ch in value for value in attributes.values() for ch in "[]'")


def test_our_callback_urls_survive_xml_escaping_with_session_and_connection_overrides() -> None:
    # Given the callback URLs the connect handler builds (session id in the query, overrides in
    # the fragment, so `&` must be escaped in the XML)
    urls = callback_urls("https://api.example.com", "sess-123", "rc=3&rp=all&ct=2000")

    # When a recording conversation flow is rendered
    root = render(conversation(record=True), urls)

    # Then parsing the XML gives the exact URLs back
    assert only(root, "./Connect").get("action") == urls.action
    attributes = only(root, "./Connect/Conversation").attrib
    assert attributes["statusCallback"] == urls.status
    assert attributes["recordingStatusCallback"] == urls.recording
    assert "session=sess-123" in urls.status
    assert urls.status.endswith("#rc=3&rp=all&ct=2000")


# --- <Connect><ConversationRelay> --------------------------------------------------------------------


def test_every_conversation_relay_attribute_is_rendered_with_twilio_names_and_values() -> None:
    # Given a flow that sets every <ConversationRelay> attribute of the reference pages
    flow = fixture_flow("relay_all_attributes.json")

    # When it is rendered
    root = render(flow)

    # Then each attribute has Twilio's name; lists are joined as Twilio documents them; booleans
    # are true/false; provider names are spelled as Twilio spells them
    assert only(root, "./Connect").attrib == {"action": "/after-relay", "method": "GET"}
    assert only(root, "./Connect/ConversationRelay").attrib == {
        "url": "wss://agent.example.com/relay?tenant=acme&region=eu",
        "welcomeGreeting": 'Hi! "Ask" me anything & everything <now>.',
        "welcomeGreetingInterruptible": "dtmf",
        "language": "en-US",
        "ttsLanguage": "en-GB",
        "ttsProvider": "Amazon",
        "voice": "Amy-Generative",
        "transcriptionLanguage": "en-AU",
        "transcriptionProvider": "Deepgram",
        "speechModel": "nova-3-general",
        "deepgramSmartFormat": "false",
        "interruptible": "any",
        "interruptSensitivity": "low",
        "dtmfDetection": "true",
        "reportInputDuringAgentSpeech": "speech",
        "preemptible": "true",
        "hints": "TwiML,ConversationRelay,Code Exchange",
        "debug": "debugging speaker-events tokens-played",
        "elevenlabsTextNormalization": "auto",
        "intelligenceService": "GA0123456789abcdef0123456789abcdef",
        "conversationConfiguration": "conv_configuration_01",
        "conversationId": "conv_conversation_01",
    }


def test_languages_render_as_language_elements_in_order_with_only_their_own_attributes() -> None:
    # Given a relay flow with three <Language> settings
    flow = fixture_flow("relay_all_attributes.json")

    # When it is rendered
    languages = render(flow).findall("./Connect/ConversationRelay/Language")

    # Then each is one <Language> with its own attributes, inherited ones left to Twilio
    assert [language.attrib for language in languages] == [
        {
            "code": "sv-SE",
            "ttsProvider": "Amazon",
            "voice": "Elin-Neural",
            "transcriptionProvider": "Google",
            "speechModel": "long",
        },
        {"code": "en-US"},
        {
            "code": "multi",
            "ttsProvider": "ElevenLabs",
            "transcriptionProvider": "Deepgram",
            "speechModel": "nova-2-general",
        },
    ]


def test_parameters_render_as_parameter_elements_after_the_languages() -> None:
    # Given a relay flow with <Language> settings and custom parameters
    flow = fixture_flow("relay_all_attributes.json")

    # When it is rendered
    children = list(only(render(flow), "./Connect/ConversationRelay"))

    # Then the parameters are <Parameter name value> elements, in the configured order
    assert [child.tag for child in children] == ["Language", "Language", "Language", "Parameter", "Parameter"]
    assert [child.attrib for child in children if child.tag == "Parameter"] == [
        {"name": "foo", "value": "bar"},
        {"name": "hint", "value": "Annoyed customer"},
    ]


def test_minimal_relay_gets_our_action_and_no_conversation_callbacks() -> None:
    # Given a relay flow with only its WebSocket URL
    flow = relay()

    # When it is rendered
    root = render(flow)

    # Then <Connect> comes back to our action URL and <ConversationRelay> has only the url
    assert only(root, "./Connect").attrib == {"action": URLS.action, "method": "POST"}
    relay_element = only(root, "./Connect/ConversationRelay")
    assert relay_element.attrib == {"url": "wss://agent.example.com/ws"}
    assert list(relay_element) == []


@pytest.mark.parametrize(
    ("given", "rendered"), [(False, "none"), ("false", "none"), ("true", "any"), ("speech", "speech")]
)
def test_interruptible_boolean_aliases_render_as_the_mode_they_stand_for(
    given: object, rendered: str
) -> None:
    # Given interruptible written as a documented boolean alias or a mode
    flow = relay(interruptible=given)

    # When it is rendered
    attributes = only(render(flow), "./Connect/ConversationRelay").attrib

    # Then Twilio gets the mode
    assert attributes["interruptible"] == rendered


def test_hints_and_debug_given_as_strings_are_normalised() -> None:
    # Given hints with spaces after commas and debug words with extra spaces
    flow = relay(hints="Twilio, ConversationRelay ,order number", debug="  debugging   tokens-played ")

    # When it is rendered
    attributes = only(render(flow), "./Connect/ConversationRelay").attrib

    # Then hints are comma-joined without padding and debug words single-spaced
    assert attributes["hints"] == "Twilio,ConversationRelay,order number"
    assert attributes["debug"] == "debugging tokens-played"


# --- the names we write are the ones Twilio's own library knows ---------------------------------------


def _twilio_names(method: Any) -> set[str]:
    return {
        lower_camel(name) for name in inspect.signature(method).parameters if name not in ("self", "kwargs")
    }


def test_every_rendered_attribute_name_is_known_to_twilio_python() -> None:
    # Given the rendered TwiML of flows that set every attribute
    conversation_root = render(fixture_flow("conversation_all_attributes.json"))
    relay_root = render(fixture_flow("relay_all_attributes.json"))

    # When their attribute names are compared with twilio-python's own keyword arguments
    relay_names = _twilio_names(Connect.conversation_relay)
    # Conversation Orchestrator attributes have no typed keyword yet (twilio-facts.md).
    relay_names |= {"conversationConfiguration", "conversationId"}

    # Then every name is one twilio-python would write itself (no misspelt camelCase)
    assert set(only(conversation_root, "./Connect").attrib) <= _twilio_names(VoiceResponse.connect)
    assert set(only(conversation_root, "./Connect/Conversation").attrib) <= _twilio_names(
        Connect.conversation
    )
    assert set(only(relay_root, "./Connect/ConversationRelay").attrib) <= relay_names
    for language in relay_root.findall("./Connect/ConversationRelay/Language"):
        assert set(language.attrib) <= _twilio_names(ConversationRelay.language)


def test_a_flow_with_its_own_status_callback_gets_twilios_default_events_not_ours() -> None:
    # Given a flow that sends status callbacks to the user's own URL, as in Twilio's examples
    flow = conversation(
        statusCallback="https://hooks.example.com/status",
        record="record-from-answer",
        recordingStatusCallback="https://hooks.example.com/recordings",
    )

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then the user's endpoints get Twilio's defaults: no status event list (Twilio's default
    # call-completed) and, written out because the reference page is ambiguous, `completed`
    assert attributes["statusCallback"] == "https://hooks.example.com/status"
    assert "statusCallbackEvent" not in attributes
    assert attributes["recordingStatusCallback"] == "https://hooks.example.com/recordings"
    assert attributes["recordingStatusCallbackEvent"] == "completed"
    assert attributes["statusCallbackMethod"] == attributes["recordingStatusCallbackMethod"] == "POST"


def test_a_flow_with_its_own_callbacks_and_event_lists_gets_exactly_its_lists() -> None:
    # Given a flow with its own URLs and its own event lists
    flow = conversation(
        statusCallback="https://hooks.example.com/status",
        statusCallbackEvent="call-answered",
        record="record-from-answer",
        recordingStatusCallback="https://hooks.example.com/recordings",
        recordingStatusCallbackEvent="in-progress",
    )

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then its lists are written as they are
    assert attributes["statusCallbackEvent"] == "call-answered"
    assert attributes["recordingStatusCallbackEvent"] == "in-progress"


def test_a_flow_with_only_its_own_event_lists_keeps_them_on_our_urls() -> None:
    # Given a flow that narrows the events but keeps our callback URLs
    flow = conversation(
        statusCallbackEvent="call-completed",
        record="record-from-answer",
        recordingStatusCallbackEvent="completed",
    )

    # When it is rendered
    attributes = only(render(flow), "./Connect/Conversation").attrib

    # Then our URLs receive the events it chose
    assert (attributes["statusCallback"], attributes["statusCallbackEvent"]) == (
        URLS.status,
        "call-completed",
    )
    assert (attributes["recordingStatusCallback"], attributes["recordingStatusCallbackEvent"]) == (
        URLS.recording,
        "completed",
    )
