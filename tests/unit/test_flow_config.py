"""What the call-flow document accepts: the committed examples, Twilio's documented aliases and
spellings, warnings for settings that are valid but ignored, and picking the flow of a call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import parse_flow_config
from voice_webhooks.flows.model import ConversationFlow, FlowConfig, RelayFlow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("flows*.example.json"))
SID = "IS00000000000000000000000000000000"


def relay_flow(**attributes: Any) -> RelayFlow:
    return RelayFlow.model_validate({"kind": "relay", "url": "wss://agent.example.com/ws", **attributes})


def conversation_flow(**attributes: Any) -> ConversationFlow:
    return ConversationFlow.model_validate({"kind": "conversation", "serviceInstanceSid": SID, **attributes})


def document(*flows: tuple[str, dict[str, Any]], **top: Any) -> str:
    body = {"default": flows[0][0], "flows": dict(flows), **top}
    return json.dumps(body)


# --- the committed examples --------------------------------------------------------------------------


def test_the_examples_are_committed() -> None:
    assert [path.name for path in EXAMPLES] == [
        "flows.conversation.example.json",
        "flows.example.json",
        "flows.relay.example.json",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_valid_without_warnings(path: Path) -> None:
    # Given a committed example / When it is validated
    config, warnings_found = parse_flow_config(path.read_text(), str(path))

    # Then it passes cleanly and its default and numbers name its flows
    assert warnings_found == []
    assert config.default in config.flows
    assert set(config.numbers.values()) <= set(config.flows)


def test_single_kind_examples_hold_one_kind_each() -> None:
    # Given the per-kind examples / When they are loaded / Then each has only its own kind
    for kind in ("conversation", "relay"):
        config, _ = parse_flow_config((ROOT / "config" / f"flows.{kind}.example.json").read_text())
        assert {flow.kind for flow in config.flows.values()} == {kind}
        assert len(config.flows) >= 2


def test_local_mode_example_routes_the_documented_numbers() -> None:
    # Given the example local mode and the tests use
    config, _ = parse_flow_config((ROOT / "config" / "flows.example.json").read_text())

    # When flows are picked by called number / Then the documented routing holds
    assert config.flow_name_for("+15550100001") == "frontline"
    assert config.flow_name_for("+15550100002") == "assistant"
    assert config.flow_name_for("+15550100003") == "concierge"
    assert config.flow_name_for("+15550109999") == "frontline"
    assert config.flows["frontline"].kind == "conversation"
    assert config.flows["assistant"].kind == "relay"
    # and the agent line's relay flow has no url: the stack's own scripted agent answers it
    concierge = config.flows["concierge"]
    assert isinstance(concierge, RelayFlow) and concierge.url is None
    assert concierge.agent is not None and concierge.agent.kind == "scripted"


def test_a_call_without_a_called_number_gets_the_default_flow() -> None:
    config, _ = parse_flow_config((ROOT / "config" / "flows.example.json").read_text())
    assert config.flow_name_for(None) == config.default == "frontline"


# --- Twilio's documented aliases and spellings --------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (True, "record-from-answer"),
        ("true", "record-from-answer"),
        (False, "do-not-record"),
        ("false", "do-not-record"),
    ],
)
def test_record_aliases_are_stored_as_what_they_stand_for(given: object, stored: str) -> None:
    flow = conversation_flow(record=given)
    assert flow.record == stored
    assert flow.records is (stored != "do-not-record")


def test_trim_is_accepted_with_any_recording_value() -> None:
    for record in (
        "record-from-answer",
        "record-from-ringing",
        "record-from-answer-dual",
        "record-from-ringing-dual",
        True,
    ):
        assert conversation_flow(record=record, trim="trim-silence").trim == "trim-silence"


@pytest.mark.parametrize(
    ("given", "stored"), [(True, "any"), ("true", "any"), (False, "none"), ("false", "none")]
)
def test_interruptible_boolean_aliases_are_stored_as_modes(given: object, stored: str) -> None:
    assert relay_flow(interruptible=given).interruptible == stored


@pytest.mark.parametrize(
    ("given", "stored"), [("amazon", "Amazon"), ("GOOGLE", "Google"), ("elevenlabs", "ElevenLabs")]
)
def test_provider_names_are_accepted_in_any_case_and_stored_as_twilio_spells_them(
    given: str, stored: str
) -> None:
    # Twilio's own <Language> example writes ttsProvider: 'amazon'.
    flow = relay_flow(ttsProvider=given, languages=[{"code": "sv-SE", "ttsProvider": given}])
    assert flow.tts_provider == stored
    assert flow.languages[0].tts_provider == stored


def test_event_lists_accept_a_space_separated_string_or_a_json_list() -> None:
    from_string = conversation_flow(statusCallbackEvent=" call-ringing  call-completed ")
    from_list = conversation_flow(statusCallbackEvent=["call-ringing", "call-completed"])
    assert (
        from_string.status_callback_event
        == from_list.status_callback_event
        == ["call-ringing", "call-completed"]
    )


def test_relative_urls_are_accepted_where_twilio_accepts_them() -> None:
    flow = conversation_flow(action="/next", statusCallback="status", url="../whisper.xml")
    assert (flow.action, flow.status_callback, flow.url) == ("/next", "status", "../whisper.xml")


def test_string_values_are_trimmed() -> None:
    flow = relay_flow(welcomeGreeting="  Hello!  ", voice=" en-US-Journey-O ")
    assert (flow.welcome_greeting, flow.voice) == ("Hello!", "en-US-Journey-O")


# --- multi (automatic language detection): the valid combinations ------------------------------------


def test_multi_with_deepgram_and_a_nova_general_model_is_valid() -> None:
    for model in ("nova-2-general", "nova-3-general"):
        flow = relay_flow(language="multi", transcriptionProvider="Deepgram", speechModel=model)
        assert flow.speech_model == model


def test_multi_with_deepgram_and_its_default_model_is_valid() -> None:
    # Deepgram's default model is nova-3-general or nova-2-general: both allowed for multi.
    assert relay_flow(language="multi", transcriptionProvider="Deepgram").speech_model is None


def test_multi_tts_with_the_default_provider_is_valid() -> None:
    # ElevenLabs is the default TTS provider.
    assert relay_flow(ttsLanguage="multi").tts_provider is None


def test_a_multi_language_element_overrides_the_flow_settings_for_multi() -> None:
    # Given a flow whose own providers are Google, with a <Language code="multi"> that sets what
    # multi needs (the <Language> overrides the flow for that language)
    flow = relay_flow(
        language="multi",
        ttsProvider="Google",
        transcriptionProvider="Google",
        speechModel="telephony",
        languages=[
            {
                "code": "multi",
                "ttsProvider": "ElevenLabs",
                "transcriptionProvider": "Deepgram",
                "speechModel": "nova-3-general",
            }
        ],
    )

    # Then it is valid
    assert flow.languages[0].code == "multi"


def test_multi_language_inherits_valid_settings_from_the_flow() -> None:
    flow = relay_flow(
        transcriptionProvider="Deepgram", speechModel="nova-2-general", languages=[{"code": "multi"}]
    )
    assert flow.languages[0].transcription_provider is None


# --- warnings: valid, but ignored by Twilio ----------------------------------------------------------


def test_conversation_id_with_conversation_configuration_warns_naming_the_ignored_field() -> None:
    # Given both Conversation Orchestrator attributes on one flow
    text = document(
        (
            "assistant",
            {
                "kind": "relay",
                "url": "wss://a.example.com",
                "conversationId": "c1",
                "conversationConfiguration": "k1",
            },
        )
    )

    # When it is validated
    config, warnings_found = parse_flow_config(text)

    # Then it is valid, both are kept (Twilio applies the precedence), and one warning says which wins
    flow = config.flows["assistant"]
    assert isinstance(flow, RelayFlow)
    assert (flow.conversation_id, flow.conversation_configuration) == ("c1", "k1")
    assert warnings_found == [
        "flows.assistant.conversationConfiguration: ignored for routing: conversationId is also set and "
        "takes precedence (the configuration's grouping rules are bypassed)"
    ]


@pytest.mark.parametrize(
    ("flow", "warning"),
    [
        (
            {"kind": "conversation", "serviceInstanceSid": SID, "recordingStatusCallbackEvent": "completed"},
            "flows.f.recordingStatusCallbackEvent: has no effect: record does not enable recording",
        ),
        (
            {
                "kind": "conversation",
                "serviceInstanceSid": SID,
                "record": False,
                "recordingStatusCallback": "https://x.example.com",
            },
            "flows.f.recordingStatusCallback: has no effect: record does not enable recording",
        ),
        (
            {"kind": "relay", "url": "wss://a.example.com", "welcomeGreetingInterruptible": "none"},
            "flows.f.welcomeGreetingInterruptible: has no effect without welcomeGreeting",
        ),
        (
            {
                "kind": "relay",
                "url": "wss://a.example.com",
                "ttsProvider": "Google",
                "elevenlabsTextNormalization": "on",
            },
            "flows.f.elevenlabsTextNormalization: has no effect: no TTS provider here is ElevenLabs",
        ),
        (
            {
                "kind": "relay",
                "url": "wss://a.example.com",
                "transcriptionProvider": "Google",
                "deepgramSmartFormat": True,
            },
            "flows.f.deepgramSmartFormat: has no effect: the transcription provider is Google",
        ),
    ],
)
def test_settings_twilio_would_ignore_are_warned_about(flow: dict[str, Any], warning: str) -> None:
    _, warnings_found = parse_flow_config(document(("f", flow)))
    assert warnings_found == [warning]


def test_elevenlabs_normalization_is_not_warned_about_when_a_language_uses_elevenlabs() -> None:
    flow = {
        "kind": "relay",
        "url": "wss://a.example.com",
        "ttsProvider": "Google",
        "elevenlabsTextNormalization": "on",
        "languages": [{"code": "fr-FR", "ttsProvider": "ElevenLabs"}],
    }
    assert parse_flow_config(document(("f", flow)))[1] == []


# --- phone numbers stay out of logs ------------------------------------------------------------------


def test_masked_problems_hide_phone_numbers_for_logs() -> None:
    # Given a document whose number maps to a missing flow
    text = document(("f", {"kind": "relay", "url": "wss://a.example.com"}), numbers={"+15550100001": "nope"})

    # When it is validated for the Lambda log (masked) and for the command line (not masked)
    with pytest.raises(ConfigurationError) as for_logs:
        parse_flow_config(text, mask_numbers=True)
    with pytest.raises(ConfigurationError) as for_people:
        parse_flow_config(text)

    # Then only the command line shows the number
    assert "+15550100001" not in str(for_logs.value)
    assert for_logs.value.problems[0].startswith("numbers.+155")
    assert for_people.value.problems[0].startswith("numbers.+15550100001: flow 'nope' is not defined")


def test_the_model_is_frozen() -> None:
    config = FlowConfig.model_validate(json.loads((ROOT / "config" / "flows.example.json").read_text()))
    with pytest.raises(ValueError, match="frozen"):
        config.flows["frontline"].kind = "relay"  # type: ignore[misc]
