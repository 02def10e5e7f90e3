"""The relay's building blocks: frames, the handshake URL, the scripted and Bedrock agents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from voice_webhooks.edge.auth_tokens import AuthTokens
from voice_webhooks.errors import ConfigurationError, MalformedRequest, SignatureRejected
from voice_webhooks.flows.agent import BedrockAgent, ScriptedAgent, effective_reconnect
from voice_webhooks.relay import bedrock
from voice_webhooks.relay.agent import (
    CallerTurn,
    End,
    Play,
    ScriptedResponder,
    SendDigits,
    SessionContext,
    SwitchLanguage,
    TextToken,
    Turn,
    fixed_history,
    to_frame,
    words,
)
from voice_webhooks.relay.frames import FrameRejected, InterruptFrame, PromptFrame, SetupFrame, parse_frame
from voice_webhooks.relay.handshake import check_signature, read_handshake, signed_url
from voice_webhooks.relay.settings import check_management_endpoint, check_public_url, relay_url
from voicedev.twilio_signing import DEV_AUTH_TOKEN, sign

from tests.support import ConverseStream

SESSION = "CA" + "ab" * 16 + "-0011223344556677"
CONTEXT = {"domainName": "abc.execute-api.us-east-1.amazonaws.com", "stage": "relay"}


# --- frames -------------------------------------------------------------------------------------


def test_twilio_frames_parse_and_keep_unknown_fields() -> None:
    setup = parse_frame(json.dumps({"type": "setup", "callSid": "CA1", "accountSid": "AC1", "newField": 1}))
    prompt = parse_frame(json.dumps({"type": "prompt", "voicePrompt": "hi", "lang": "en-US", "last": False}))
    interrupt = parse_frame(
        json.dumps({"type": "interrupt", "utteranceUntilInterrupt": "We", "durationUntilInterruptMs": 500})
    )

    assert isinstance(setup, SetupFrame) and setup.model_extra == {"newField": 1}
    assert isinstance(prompt, PromptFrame) and prompt.last is False
    assert isinstance(interrupt, InterruptFrame) and interrupt.duration_until_interrupt_ms == 500


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({"type": "nope"}), "unknown frame type"),
        (json.dumps({"voicePrompt": "x"}), "unknown frame type"),
        (json.dumps({"type": "prompt"}), "prompt frame invalid: voicePrompt"),
        (json.dumps({"type": "text", "token": "x"}), "unknown frame type"),
        ("x" * 40_000, "over 32768 bytes"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason_that_never_quotes_them(body: str, reason: str) -> None:
    with pytest.raises(FrameRejected) as rejected:
        parse_frame(body)
    assert reason in rejected.value.reason
    assert "x" * 10 not in rejected.value.reason


def test_actions_become_twilio_frames_without_unset_fields() -> None:
    assert json.loads(to_frame(TextToken("Hi ", last=False)).to_json()) == {
        "type": "text",
        "token": "Hi ",
        "last": False,
    }
    assert json.loads(to_frame(Play("https://x.example/a.mp3", loop=2)).to_json()) == {
        "type": "play",
        "source": "https://x.example/a.mp3",
        "loop": 2,
    }
    assert json.loads(to_frame(SendDigits("12#")).to_json()) == {"type": "sendDigits", "digits": "12#"}
    assert json.loads(to_frame(SwitchLanguage("es-ES", "es-ES")).to_json()) == {
        "type": "language",
        "ttsLanguage": "es-ES",
        "transcriptionLanguage": "es-ES",
    }
    end = json.loads(to_frame(End({"target": "support"})).to_json())
    assert end["type"] == "end" and json.loads(end["handoffData"]) == {"target": "support"}


# --- handshake ----------------------------------------------------------------------------------


def test_the_signed_url_is_rebuilt_with_the_query_in_received_order() -> None:
    query = {"session": SESSION, "attempt": "2"}
    assert (
        signed_url(CONTEXT, query, None) == f"wss://{CONTEXT['domainName']}/relay?session={SESSION}&attempt=2"
    )
    assert signed_url(CONTEXT, {"attempt": "2", "session": SESSION}, None).endswith(
        f"?attempt=2&session={SESSION}"
    )
    assert signed_url(CONTEXT, query, "wss://voice.example.com/agent/") == (
        f"wss://voice.example.com/agent?session={SESSION}&attempt=2"
    )
    assert signed_url(CONTEXT, None, None) == f"wss://{CONTEXT['domainName']}/relay"


def test_the_url_we_emit_is_the_url_we_rebuild() -> None:
    # Given the URL the connect TwiML names, When Twilio opens it, Then we rebuild it byte for byte
    emitted = relay_url("wss://voice.example.com/agent", SESSION, 1)
    assert (
        signed_url(CONTEXT, {"session": SESSION, "attempt": "1"}, "wss://voice.example.com/agent") == emitted
    )


def test_signature_check_accepts_either_rotation_token() -> None:
    url = relay_url(f"wss://{CONTEXT['domainName']}/relay", SESSION, 1)
    check_signature(url, sign(url, (), "old-token"), AuthTokens(DEV_AUTH_TOKEN, "old-token"))
    with pytest.raises(SignatureRejected):
        check_signature(url, sign(url, (), "other"), AuthTokens(DEV_AUTH_TOKEN))
    with pytest.raises(SignatureRejected):
        check_signature(url, "", AuthTokens(DEV_AUTH_TOKEN))


@pytest.mark.parametrize(
    "query",
    [{}, {"session": "CA1"}, {"session": SESSION, "attempt": "0"}, {"session": SESSION, "attempt": "x"}],
)
def test_handshake_parameters_must_be_ours(query: dict[str, str]) -> None:
    with pytest.raises(MalformedRequest):
        read_handshake(query)


def test_relay_urls_are_wss_or_loopback_ws() -> None:
    assert check_public_url("ws://127.0.0.1:3000/relay") == "ws://127.0.0.1:3000/relay"
    for refused in ("ws://voice.example.com/relay", "https://x.example.com", "wss://x.example.com/?a=1"):
        with pytest.raises(ConfigurationError):
            check_public_url(refused)
    assert check_management_endpoint("http://127.0.0.1:3000/relay") == "http://127.0.0.1:3000/relay"
    with pytest.raises(ConfigurationError):
        check_management_endpoint("https://abc.execute-api.us-east-1.amazonaws.com/relay")


# --- scripted agent -----------------------------------------------------------------------------

SCRIPT = ScriptedAgent.model_validate(
    {
        "kind": "scripted",
        "intents": [
            {"name": "hours", "keywords": ["hours", "open"], "dtmf": "1", "answer": "Nine to five."},
            {
                "name": "human",
                "keywords": ["agent"],
                "dtmf": "0",
                "handoff": "support",
                "answer": "One moment.",
            },
        ],
        "fallback": "Say hours or agent.",
    }
)
CTX = SessionContext(session_id=SESSION, attempt=1, flow_name="assistant")


def reply(turn: CallerTurn) -> list[Any]:
    return list(ScriptedResponder(SCRIPT).respond(CTX, turn))


def test_scripted_agent_streams_its_answer_word_by_word() -> None:
    assert reply(CallerTurn("prompt", "When are you OPEN?")) == [
        TextToken("Nine ", last=False),
        TextToken("to ", last=False),
        TextToken("five.", last=True),
    ]


def test_keywords_match_whole_words_only() -> None:
    # "agentic" is not "agent"; "reopen" is not "open"
    assert "".join(t.token for t in reply(CallerTurn("prompt", "agentic reopen"))) == "Say hours or agent."


def test_handoff_intent_ends_with_its_target_and_reason() -> None:
    actions = reply(CallerTurn("dtmf", "0"))
    assert actions[-1] == End({"target": "support", "reason": "human"})
    assert "".join(a.token for a in actions[:-1]) == "One moment."


def test_words_of_an_empty_text_are_nothing() -> None:
    assert list(words("  ")) == []


def test_reconnects_default_to_two_for_the_stack_agent_and_none_for_an_own_server() -> None:
    assert effective_reconnect(None, has_url=False).max_attempts == 2
    assert effective_reconnect(None, has_url=True).max_attempts == 0


# --- Bedrock agent ------------------------------------------------------------------------------


CONFIG = BedrockAgent.model_validate(
    {
        "kind": "bedrock",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "systemPrompt": "Be brief.",
        "maxTokens": 50,
    }
)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    monkeypatch.setattr(bedrock, "bedrock_client", lambda: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_bedrock_agent_streams_deltas_with_history_from_stored_turns(stubbed: Stubber) -> None:
    # Given a conversation with an interrupted reply, and the model's answer as a stream
    history = [
        Turn("system", "setup", ""),
        Turn("caller", "prompt", "Hi"),
        Turn("agent", "reply", "Hello! How can I help you today?", heard="Hello!", interrupted=True),
        Turn("caller", "dtmf", "1"),
    ]
    stream = ConverseStream(
        [
            {"messageStart": {"role": "assistant"}},
            {"contentBlockDelta": {"delta": {"text": "We open "}, "contentBlockIndex": 0}},
            {"contentBlockDelta": {"delta": {"text": "at nine."}, "contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
        ]
    )
    expected = {
        "modelId": CONFIG.model_id,
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            # what the caller heard, not what was sent
            {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "(the caller pressed 1)\nWhen do you open?"}]},
        ],
        "inferenceConfig": {"maxTokens": 50},
    }
    stubbed.add_response("converse_stream", {"stream": stream}, expected)
    stream.armed = True
    context = SessionContext(
        session_id=SESSION, attempt=1, flow_name="bedrock", read_history=fixed_history(history)
    )

    # When the caller asks
    actions = list(
        bedrock.BedrockResponder(CONFIG).respond(context, CallerTurn("prompt", "When do you open?"))
    )

    # Then each delta is a token as it came, and the reply ends with last=true
    assert actions == [TextToken("We open "), TextToken("at nine."), TextToken("", last=True)]


def test_bedrock_failure_is_an_apology_not_silence(stubbed: Stubber) -> None:
    stubbed.add_client_error(
        "converse_stream", service_error_code="ThrottlingException", http_status_code=429
    )
    actions = list(bedrock.BedrockResponder(CONFIG).respond(CTX, CallerTurn("prompt", "Hello")))
    assert "".join(a.token for a in actions) == bedrock.SORRY
    assert actions[-1].last is True
