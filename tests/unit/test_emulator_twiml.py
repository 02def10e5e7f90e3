"""How the emulator reads TwiML: the URL and method of every request Twilio would make."""

from __future__ import annotations

import pytest
from voicedev.emulator.twiml import (
    Connect,
    Conversation,
    ConversationRelay,
    Dial,
    Hangup,
    Record,
    Redirect,
    Say,
    Start,
    TwimlError,
    Unknown,
    parse_document,
    resolve,
)

DOC = "https://api.example.com/voice/connect?x=1"


def test_relative_urls_resolve_against_the_document_and_the_fragment_becomes_overrides() -> None:
    # Given a relative URL with Twilio connection overrides in its fragment
    target = resolve(DOC, "status?session=abc#rc=3&rp=all", "get")

    # Then it is absolute, without fragment, with the method normalised and the overrides read
    assert target is not None
    assert target.url == "https://api.example.com/voice/status?session=abc"
    assert target.method == "GET"
    assert target.overrides == {"rc": "3", "rp": "all"}
    assert target.retries == 3
    assert target.retry_policy == {"all"}
    assert target.query == {"session": "abc"}


def test_absolute_and_root_relative_urls() -> None:
    assert resolve(DOC, "/voice/action", None).url == "https://api.example.com/voice/action"  # type: ignore[union-attr]
    assert resolve(DOC, "http://other.example/x", "POST").url == "http://other.example/x"  # type: ignore[union-attr]


def test_action_defaults_to_the_current_document_and_post() -> None:
    target = resolve(DOC, None, None)
    assert target is not None
    assert (target.url, target.method) == (DOC, "POST")
    assert target.retries == 1  # Twilio's default: one retry, of connection failures only
    assert target.retry_policy == {"ct"}


def test_callbacks_without_url_are_not_requested() -> None:
    assert resolve(DOC, None, "POST", default_url=False) is None
    assert resolve(DOC, "  ", "POST", default_url=False) is None


@pytest.mark.parametrize(
    ("value", "method", "message"),
    [("/x", "PUT", "not GET or POST"), ("mailto:a@b.c", "POST", r"not an http\(s\) URL")],
)
def test_invalid_urls_and_methods_are_refused(value: str, method: str, message: str) -> None:
    with pytest.raises(TwimlError, match=message):
        resolve(DOC, value, method)


def test_conversation_attributes_and_defaults() -> None:
    # Given a <Conversation> with only a statusCallback (events and recording left to Twilio's defaults)
    document = parse_document(
        '<Response><Connect><Conversation serviceInstanceSid="IS1" statusCallback="/voice/status"/>'
        "</Connect></Response>",
        DOC,
    )

    (connect,) = document.verbs
    assert isinstance(connect, Connect)
    noun = connect.noun
    assert isinstance(noun, Conversation)
    # Then the action is the document itself (POST), and Twilio's documented defaults apply
    assert (connect.action.url, connect.action.method, connect.action_given) == (DOC, "POST", False)
    assert noun.status_callback is not None
    assert noun.status_callback.url == "https://api.example.com/voice/status"
    assert noun.status_events == ("call-completed",)
    assert noun.recording_events == ("completed",)
    assert noun.recording_callback is None
    assert not noun.records
    assert (noun.inbound_timeout, noun.routing_assignment_timeout) == (60, 5)


@pytest.mark.parametrize(
    ("record", "records", "channels", "from_ringing"),
    [
        ("true", True, "1", False),
        ("false", False, "1", False),
        ("record-from-answer-dual", True, "2", False),
        ("record-from-ringing", True, "1", True),
        ("record-from-ringing-dual", True, "2", True),
        ("do-not-record", False, "1", False),
    ],
)
def test_record_values(record: str, records: bool, channels: str, from_ringing: bool) -> None:
    document = parse_document(
        f'<Response><Connect><Conversation record="{record}"/></Connect></Response>', DOC
    )
    noun = document.verbs[0].noun  # type: ignore[union-attr]
    assert isinstance(noun, Conversation)
    assert (noun.records, noun.recording_channels, noun.records_from_ringing) == (
        records,
        channels,
        from_ringing,
    )


def test_relay_languages_and_parameters() -> None:
    document = parse_document(
        '<Response><Connect action="/voice/action?session=s" method="GET">'
        '<ConversationRelay url="wss://a.example/ws"><Language code="sv-SE"/>'
        '<Parameter name="team" value="support"/></ConversationRelay></Connect></Response>',
        DOC,
    )
    connect = document.verbs[0]
    assert isinstance(connect, Connect)
    assert connect.action.method == "GET"
    assert connect.action.query == {"session": "s"}
    assert isinstance(connect.noun, ConversationRelay)
    assert connect.noun.languages == ({"code": "sv-SE"},)
    assert connect.noun.parameters == {"team": "support"}


def test_voicemail_and_handoff_verbs() -> None:
    document = parse_document(
        "<Response><Say>Leave a message</Say>"
        '<Record action="/voice/action?session=s" maxLength="120"'
        ' recordingStatusCallback="/voice/recording?session=s"'
        ' recordingStatusCallbackEvent="in-progress completed absent"/>'
        '<Start><Transcription conversationId="conv"/></Start>'
        '<Dial action="/voice/action?session=s" timeout="25"><Number>+15550100100</Number></Dial>'
        '<Dial>+15550100101</Dial><Redirect method="GET">/next</Redirect><Gather/><Hangup/></Response>',
        DOC,
    )
    say, record, start, dial, bare_dial, redirect, gather, hangup = document.verbs
    assert isinstance(say, Say) and say.text == "Leave a message"
    assert isinstance(record, Record)
    assert record.action.url == "https://api.example.com/voice/action?session=s"
    assert record.recording_callback is not None
    assert record.recording_events == ("in-progress", "completed", "absent")
    assert record.max_length == 120
    assert isinstance(start, Start) and start.children == (("Transcription", {"conversationId": "conv"}),)
    assert isinstance(dial, Dial) and dial.targets == (("Number", "+15550100100"),)
    assert dial.action is not None and dial.attrs["timeout"] == "25"
    assert (
        isinstance(bare_dial, Dial)
        and bare_dial.targets == (("", "+15550100101"),)
        and bare_dial.action is None
    )
    assert isinstance(redirect, Redirect) and redirect.target.method == "GET"
    assert redirect.target.url == "https://api.example.com/next"
    assert isinstance(gather, Unknown)
    assert isinstance(hangup, Hangup)
    # Phone numbers never reach the printed summary unmasked
    assert "+15550100100" not in document.describe()


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("not xml", "not XML"),
        ("<Other/>", "not <Response>"),
        ("<Response><Connect/></Response>", "exactly one noun"),
        ('<Response><Record maxLength="long"/></Response>', "maxLength"),
        ('<Response><Connect method="PATCH"><Conversation/></Connect></Response>', "not GET or POST"),
    ],
)
def test_answers_twilio_could_not_run_are_reported(xml: str, message: str) -> None:
    with pytest.raises(TwimlError, match=message):
        parse_document(xml, DOC)


def test_an_empty_response_has_no_verbs() -> None:
    document = parse_document('<?xml version="1.0" encoding="UTF-8"?><Response />', DOC)
    assert document.verbs == ()
    assert document.describe() == "(empty)"
