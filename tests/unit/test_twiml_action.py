"""Rendering the action answers with twilio-python: verbs, attributes and callback URLs."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from voice_webhooks.flows.outcomes import DialOptions, SayOptions, VoicemailOptions
from voice_webhooks.twiml.action import (
    ActionUrls,
    DialTarget,
    EmptyResponse,
    HangUp,
    TakeVoicemail,
    Transcription,
    render_action,
)

URLS = ActionUrls(
    action="https://api.example.com/voice/action?session=CA1-ab#rc=3&rp=all",
    recording="https://api.example.com/voice/recording?session=CA1-ab#rc=3&rp=all",
    status="https://api.example.com/voice/status?session=CA1-ab#rc=3&rp=all",
)
PLAIN = SayOptions()


def parse(twiml: str) -> ElementTree.Element:
    return ElementTree.fromstring(twiml)


def test_empty_response_has_no_verbs() -> None:
    root = parse(render_action(EmptyResponse(), URLS, PLAIN))

    assert root.tag == "Response"
    assert list(root) == []


def test_hang_up_with_and_without_a_message() -> None:
    assert [e.tag for e in parse(render_action(HangUp(), URLS, PLAIN))] == ["Hangup"]

    root = parse(render_action(HangUp("Goodbye."), URLS, SayOptions(voice="Polly.Joanna", language="en-US")))

    assert [e.tag for e in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None
    assert say.text == "Goodbye."
    assert say.attrib == {"voice": "Polly.Joanna", "language": "en-US"}


def test_voicemail_records_with_callbacks_to_this_api_and_ends_if_nothing_was_said() -> None:
    options = VoicemailOptions.model_validate(
        {"prompt": "Leave a message.", "maxLength": 60, "finishOnKey": "#", "playBeep": True}
    )

    root = parse(render_action(TakeVoicemail(options, message="Sorry."), URLS, PLAIN))

    assert [e.tag for e in root] == ["Say", "Say", "Record", "Say", "Hangup"]
    assert [e.text for e in root.iter("Say")] == ["Sorry.", "Leave a message.", options.no_message]
    record = root.find("Record")
    assert record is not None
    assert record.attrib == {
        "action": URLS.action,
        "method": "POST",
        "maxLength": "60",
        "playBeep": "true",
        "finishOnKey": "#",
        "recordingStatusCallback": URLS.recording,
        "recordingStatusCallbackMethod": "POST",
        "recordingStatusCallbackEvent": "in-progress completed absent",
    }


def test_voicemail_leaves_unset_record_attributes_to_twilio() -> None:
    root = parse(render_action(TakeVoicemail(VoicemailOptions()), URLS, PLAIN))

    record = root.find("Record")
    assert record is not None
    assert {"timeout", "playBeep", "finishOnKey", "trim"}.isdisjoint(record.attrib)


@pytest.mark.parametrize(
    ("address", "noun", "text"),
    [
        ("+15550100100", "Number", "+15550100100"),
        ("client:sales-desk", "Client", "sales-desk"),
        ("sip:desk@pbx.example.com", "Sip", "sip:desk@pbx.example.com"),
    ],
)
def test_dial_uses_the_noun_of_the_address(address: str, noun: str, text: str) -> None:
    step = DialTarget(
        target="t",
        address=address,
        options=DialOptions.model_validate({"timeout": 20, "answerOnBridge": True}),
    )

    root = parse(render_action(step, URLS, PLAIN))

    assert [e.tag for e in root] == ["Dial"]
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib == {"action": URLS.action, "method": "POST", "timeout": "20", "answerOnBridge": "true"}
    assert [(child.tag, child.text) for child in dial] == [(noun, text)]
    # And the dialled leg reports its call-progress events into the session's status URL
    assert dial[0].attrib == {
        "statusCallback": URLS.status,
        "statusCallbackEvent": "initiated ringing answered completed",
        "statusCallbackMethod": "POST",
    }


@pytest.mark.parametrize(
    ("transcription", "attributes"),
    [
        (Transcription(conversation_id="conv_1"), {"conversationId": "conv_1"}),
        (Transcription(conversation_configuration="cfg_1"), {"conversationConfiguration": "cfg_1"}),
        # conversationId takes precedence: the configuration would be ignored, so it is not sent
        (Transcription("conv_1", "cfg_1"), {"conversationId": "conv_1"}),
    ],
)
def test_handoff_starts_transcription_before_the_message_and_the_dial(
    transcription: Transcription, attributes: dict[str, str]
) -> None:
    step = DialTarget(
        target="t",
        address="+15550100100",
        options=DialOptions(),
        message="Connecting you.",
        transcription=transcription,
    )

    root = parse(render_action(step, URLS, PLAIN))

    assert [e.tag for e in root] == ["Start", "Say", "Dial"]
    element = root.find("./Start/Transcription")
    assert element is not None
    assert element.attrib == attributes


def test_a_transcription_needs_a_conversation() -> None:
    with pytest.raises(ValueError, match="conversationId or conversationConfiguration"):
        Transcription()


def test_dial_and_voicemail_answers_are_well_formed_xml_with_escaped_messages() -> None:
    twiml = render_action(HangUp('Tom & Jerry say "<bye>"'), URLS, PLAIN)

    say = parse(twiml).find("Say")
    assert say is not None
    assert say.text == 'Tom & Jerry say "<bye>"'
