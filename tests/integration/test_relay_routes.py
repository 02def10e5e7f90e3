"""The relay WebSocket routes end to end under moto: `$connect` (signed handshakes only),
`$default` (frames, streamed replies, interrupts, hand-offs), `$disconnect`."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from voicedev.relay_events import (
    disconnect_event,
    dtmf_frame,
    interrupt_frame,
    message_event,
    prompt_frame,
    setup_frame,
)
from voicedev.twilio_signing import sign

from tests.integration import relay_helpers
from tests.integration.relay_helpers import SAMPLE_SESSION_ID, Relay
from tests.support import ConverseStream, emitted_metrics

relay = relay_helpers.relay  # the fixture
EVENTS = Path(__file__).resolve().parents[2] / "events" / "relay"
HOURS = "We are open from nine to five, Monday to Friday. Anything else?"
HANDOFF = "Let me connect you to a member of our team."
FALLBACK = "Sorry, I did not catch that. You can ask about our opening hours, or say agent."


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text(encoding="utf-8")))


def kinds(relay: Relay) -> list[tuple[str, str]]:
    return [(turn["Role"], turn["Kind"]) for turn in relay.turns()]


# --- $connect -----------------------------------------------------------------------------------


def test_signed_handshake_is_accepted_and_ties_the_connection_to_its_session(relay: Relay) -> None:
    # Given Twilio's signed upgrade request for the session's relay URL (sample event)
    event = sample("connect-signed.json")

    # When $connect runs
    answer = relay.invoke("relay_connect", event)

    # Then it is accepted, and the connection is recorded for the session's first attempt
    assert answer["statusCode"] == 200
    state = relay.item("relay#01")
    assert state is not None and state["ConnectionId"] == "conn-0001" and state["Flow"] == "assistant"
    mapping = relay.item("connection", "relay-connection#conn-0001")
    assert mapping is not None and mapping["RelaySessionId"] == SAMPLE_SESSION_ID and mapping["Attempt"] == 1


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda: sample("connect-unsigned.json"), id="unsigned"),
        pytest.param(
            lambda: {
                **sample("connect-signed.json"),
                "queryStringParameters": {"session": SAMPLE_SESSION_ID, "attempt": "2"},
            },
            id="query changed after signing",
        ),
        pytest.param(
            lambda: {**sample("connect-signed.json"), "headers": {"X-Twilio-Signature": "AAAA"}},
            id="bad signature",
        ),
    ],
)
def test_unsigned_or_tampered_handshake_is_refused_and_nothing_is_written(
    relay: Relay, event: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a handshake Twilio did not sign as received
    before = relay.items()

    # When $connect runs
    answer = relay.invoke("relay_connect", event())

    # Then it is refused with 403 and the table is unchanged
    assert answer["statusCode"] == 403
    assert relay.items() == before
    assert emitted_metrics(capsys.readouterr().out).get("RejectedSignature") == 1


def test_handshake_is_checked_against_the_public_url_when_set(relay: Relay) -> None:
    # Given RELAY_PUBLIC_URL names a custom domain
    relay.aws.env(RELAY_PUBLIC_URL="wss://voice.example.com/agent")
    public = f"wss://voice.example.com/agent?session={SAMPLE_SESSION_ID}&attempt=1"

    # When Twilio signed the execute-api URL, Then it is refused (Twilio opened the public URL)
    assert relay.connect("conn-a")["statusCode"] == 403
    # When Twilio signed the public URL, Then the URL rebuilt from RELAY_PUBLIC_URL matches
    assert relay.connect("conn-b", signature=sign(public))["statusCode"] == 200


def test_replayed_handshake_is_refused(relay: Relay, capsys: pytest.CaptureFixture[str]) -> None:
    # Given an accepted connection
    assert relay.connect("conn-0001")["statusCode"] == 200

    # When the same signed URL is opened again (the signature covers the URL only)
    answer = relay.connect("conn-0002")

    # Then the second one is refused and nothing of it is written
    assert answer["statusCode"] == 403
    assert relay.item("connection", "relay-connection#conn-0002") is None
    assert emitted_metrics(capsys.readouterr().out).get("RelayHandshakeReplayed") == 1


def test_signed_handshake_without_a_session_id_is_a_400(relay: Relay) -> None:
    answer = relay.connect(query={"session": "not-a-session"})
    assert answer["statusCode"] == 400
    assert relay.item("relay#01") is None


# --- setup --------------------------------------------------------------------------------------


def test_setup_for_another_call_closes_the_connection_and_stores_nothing(
    relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an accepted connection for the session of call CA7b7b...
    relay.connect()

    # When its setup frame names another call
    answer = relay.send(setup_frame(call_sid="CA" + "99" * 16))

    # Then the connection is closed and no turn is stored
    assert answer["statusCode"] == 200
    assert relay.recorder.closed == ["conn-0001"]
    assert relay.turns() == []
    assert emitted_metrics(capsys.readouterr().out).get("RelaySetupMismatch") == 1


def test_setup_from_another_account_closes_the_connection(relay: Relay) -> None:
    relay.connect()
    relay.send(setup_frame(account_sid="AC" + "11" * 16))
    assert relay.recorder.closed == ["conn-0001"]


def test_setup_is_stored_as_the_first_turn(relay: Relay) -> None:
    relay.open()
    assert kinds(relay) == [("system", "setup")]
    assert relay.item("relay#01")["CallSid"] == SAMPLE_SESSION_ID.split("-")[0]  # type: ignore[index]


# --- prompts and replies ------------------------------------------------------------------------


def test_prompt_is_answered_with_tokens_posted_one_by_one(relay: Relay) -> None:
    # Given a set-up session
    relay.open()

    # When the caller asks for the opening hours
    assert relay.send(prompt_frame("What are your opening hours?"))["statusCode"] == 200

    # Then the answer reached Twilio as one text frame per word, the last one marked last
    tokens = relay.recorder.frames("text")
    assert len(tokens) == len(HOURS.split())
    assert relay.recorder.spoken().strip() == HOURS
    assert [token["last"] for token in tokens] == [False] * (len(tokens) - 1) + [True]
    # And the prompt and the reply are stored, in order
    assert kinds(relay) == [("system", "setup"), ("caller", "prompt"), ("agent", "reply")]
    reply = relay.turns()[-1]
    assert reply["Text"].strip() == HOURS and reply["Tokens"] == len(tokens)
    assert relay.turns()[1]["Text"] == "What are your opening hours?"


def test_unmatched_prompt_gets_the_fallback(relay: Relay) -> None:
    relay.open()
    relay.send(prompt_frame("Tell me a joke"))
    assert relay.recorder.spoken().strip() == FALLBACK


def test_partial_prompts_are_not_turns_and_the_last_one_is_answered_once(relay: Relay) -> None:
    # Given the caller still speaking: Twilio's partial transcripts (`last: false`, the utterance so far)
    relay.open()
    relay.send(prompt_frame("When are", last=False))
    relay.send(prompt_frame("When are you", last=False))
    assert relay.recorder.frames() == []

    # When the whole utterance arrives (`last: true`)
    relay.send(prompt_frame("When are you open?", last=True))

    # Then the agent answered it once, and it is the one caller prompt stored
    assert relay.recorder.spoken().strip() == HOURS
    assert [turn["Text"] for turn in relay.turns() if turn["Kind"] == "prompt"] == ["When are you open?"]
    assert kinds(relay)[1:] == [("caller", "prompt"), ("agent", "reply")]


def test_dtmf_selects_its_intent(relay: Relay) -> None:
    relay.open()
    relay.send(dtmf_frame("1"))
    assert relay.recorder.spoken().strip() == HOURS
    assert kinds(relay)[1:] == [("caller", "dtmf"), ("agent", "reply")]
    assert relay.turns()[1]["Text"] == "1"


def test_handoff_intent_speaks_then_ends_with_handoff_data(relay: Relay) -> None:
    # Given a set-up session
    relay.open()

    # When the caller asks for a person
    relay.send(prompt_frame("Can I talk to an agent please"))

    # Then the answer is spoken and the session ends with the intent's hand-off
    assert relay.recorder.spoken().strip() == HANDOFF
    end = relay.recorder.frames()[-1]
    assert end["type"] == "end"
    assert json.loads(end["handoffData"]) == {"target": "support", "reason": "human"}
    assert kinds(relay)[-2:] == [("agent", "reply"), ("agent", "end")]


# --- interruptions ------------------------------------------------------------------------------


def test_interrupt_from_another_invocation_stops_the_reply_within_one_token(relay: Relay) -> None:
    # Given a reply streaming, and Twilio's interrupt handled by another invocation after token 3
    relay.open()
    heard = "We are open "
    interrupted_at: list[int] = []

    def interrupt_after_third(count: int, frame: dict[str, Any]) -> None:
        if count == 3 and not interrupted_at:
            interrupted_at.append(count)
            relay.recorder.on_post = None
            assert relay.send(interrupt_frame(heard))["statusCode"] == 200

    relay.recorder.on_post = interrupt_after_third

    # When the caller asks
    relay.send(prompt_frame("What are your hours?"))

    # Then at most one token followed the interrupt
    tokens = relay.recorder.frames("text")
    assert interrupted_at == [3]
    assert len(tokens) <= 4
    assert len(tokens) < len(HOURS.split())
    # And the stored reply says what was sent, what the caller heard, and that it was interrupted
    reply = next(turn for turn in relay.turns() if turn["Kind"] == "reply")
    assert reply["Interrupted"] is True and reply["Heard"] == heard
    assert reply["StoppedByInterrupt"] is True
    assert reply["Text"] == relay.recorder.spoken()
    assert ("caller", "interrupt") in kinds(relay)


def test_an_interrupt_handled_while_the_reply_streams_stops_it_within_one_token(relay: Relay) -> None:
    # Given a reply streaming in one invocation at the scripted agent's default pace
    relay.open()
    two_posted = threading.Event()
    relay.recorder.on_post = lambda count, frame: two_posted.set() if count >= 2 else None
    replying = threading.Thread(target=relay.send, args=(prompt_frame("What are your hours?"),))
    replying.start()
    assert two_posted.wait(10)

    # When Twilio's interrupt arrives meanwhile, in another invocation (API Gateway runs them at once)
    posted_before = len(relay.recorder.frames("text"))
    assert relay.send(interrupt_frame("We are "))["statusCode"] == 200
    replying.join(10)

    # Then at most one token left after the interrupt did, and the rest of the answer never did
    assert not replying.is_alive()
    tokens = relay.recorder.frames("text")
    assert len(tokens) - posted_before <= 1, [frame["token"] for frame in tokens]
    assert len(tokens) < len(HOURS.split())
    reply = next(turn for turn in relay.turns() if turn["Kind"] == "reply")
    assert reply["StoppedByInterrupt"] is True and reply["Heard"] == "We are "
    assert reply["Text"] == relay.recorder.spoken()


def test_a_scripted_agent_without_a_pace_sends_the_whole_answer_at_once(relay: Relay, tmp_path: Path) -> None:
    # Given the agent configured with tokenIntervalMs 0
    relay.aws.env(FLOW_CONFIG=str(relay_helpers.unpaced_flows(tmp_path)))
    relay.open()

    # When the caller asks
    relay.send(prompt_frame("What are your hours?"))

    # Then every word was posted, the last one marked last
    tokens = relay.recorder.frames("text")
    assert "".join(frame["token"] for frame in tokens).strip() == HOURS
    assert [frame.get("last", False) for frame in tokens] == [False] * (len(tokens) - 1) + [True]


def test_interrupt_after_the_reply_was_sent_marks_what_was_heard(relay: Relay) -> None:
    # Given a reply fully sent (Twilio is still speaking it)
    relay.open()
    relay.send(prompt_frame("hours"))

    # When the caller interrupts
    relay.send(interrupt_frame("We are open from nine"))

    # Then the reply's turn records what the caller heard
    reply = next(turn for turn in relay.turns() if turn["Kind"] == "reply")
    assert reply["Interrupted"] is True and reply["Heard"] == "We are open from nine"
    assert reply["Text"].strip() == HOURS


def test_interrupt_with_nothing_playing_is_stored_only(relay: Relay) -> None:
    relay.open()
    assert relay.send(interrupt_frame(""))["statusCode"] == 200
    assert kinds(relay) == [("system", "setup"), ("caller", "interrupt")]


# --- idempotency, errors, hostile frames --------------------------------------------------------


def test_duplicate_frame_is_stored_once_and_answered_once(relay: Relay) -> None:
    # Given a set-up session
    relay.open()

    # When the same frame is delivered twice (same messageId)
    relay.send(prompt_frame("hours"), message_id="m-1")
    relay.send(prompt_frame("hours"), message_id="m-1")

    # Then one prompt, one reply, one answer
    assert kinds(relay) == [("system", "setup"), ("caller", "prompt"), ("agent", "reply")]
    assert len(relay.recorder.frames("text")) == len(HOURS.split())


def test_a_frame_handled_twice_at_once_is_answered_once(relay: Relay) -> None:
    # Given a set-up session
    relay.open()

    # When two invocations handle the same frame at the same time (same messageId)
    answers: list[int] = []
    both = [
        threading.Thread(
            target=lambda: answers.append(relay.send(prompt_frame("hours"), message_id="m-1")["statusCode"])
        )
        for _ in range(2)
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(30)

    # Then both answered 200, and the prompt was stored once and answered once
    assert answers == [200, 200]
    assert kinds(relay) == [("system", "setup"), ("caller", "prompt"), ("agent", "reply")]
    assert len(relay.recorder.frames("text")) == len(HOURS.split())


def test_a_message_id_longer_than_a_sort_key_allows_is_still_claimed_once(relay: Relay) -> None:
    # Given a set-up session and a frame whose messageId is longer than DynamoDB's 1,024-byte key
    relay.open()
    long_id = "m" * 2000

    # When it is delivered twice
    assert relay.send(prompt_frame("hours"), message_id=long_id)["statusCode"] == 200
    assert relay.send(prompt_frame("hours"), message_id=long_id)["statusCode"] == 200

    # Then it was stored once and answered once, under a key DynamoDB accepts
    assert kinds(relay) == [("system", "setup"), ("caller", "prompt"), ("agent", "reply")]
    assert all(len(item["ItemKey"].encode("utf-8")) <= 1024 for item in relay.items(SAMPLE_SESSION_ID))


def test_setup_is_the_first_turn_even_when_a_prompt_reaches_the_table_first(relay: Relay) -> None:
    # Given a connection whose first prompt is handled before its setup (two invocations at once)
    assert relay.connect()["statusCode"] == 200
    assert relay.send(prompt_frame("hours"))["statusCode"] == 200

    # When the setup is handled
    assert relay.send(setup_frame())["statusCode"] == 200

    # Then the conversation still reads setup, prompt, reply
    assert kinds(relay) == [("system", "setup"), ("caller", "prompt"), ("agent", "reply")]


def test_turns_keep_arrival_order(relay: Relay) -> None:
    relay.open()
    relay.send(dtmf_frame("1"))
    relay.send(prompt_frame("agent"))
    keys = [turn["ItemKey"] for turn in relay.turns()]
    assert keys == [f"turn#01#{n:06d}" for n in range(6)]
    assert kinds(relay) == [
        ("system", "setup"),
        ("caller", "dtmf"),
        ("agent", "reply"),
        ("caller", "prompt"),
        ("agent", "reply"),
        ("agent", "end"),
    ]


def test_gone_connection_ends_the_reply_cleanly(relay: Relay, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the caller's socket closes after two tokens
    relay.open()
    relay.recorder.gone_after = 2

    # When a reply is streaming
    answer = relay.send(prompt_frame("hours"))

    # Then the invocation ends normally and the reply stored is what was sent
    assert answer["statusCode"] == 200
    reply = relay.turns()[-1]
    assert reply["Kind"] == "reply" and reply["ConnectionGone"] is True and reply["Tokens"] == 2
    assert emitted_metrics(capsys.readouterr().out).get("RelayConnectionGone") == 1


def test_twilio_error_frame_is_stored(relay: Relay) -> None:
    relay.open()
    relay.send({"type": "error", "description": "Invalid message received: unknown type"})
    assert relay.turns()[-1]["Kind"] == "error"
    assert relay.recorder.frames() == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("not json at all", id="not JSON"),
        pytest.param(json.dumps({"type": "prompt", "voicePrompt": "x" * 40_000}), id="over 32 KB"),
        pytest.param(json.dumps({"type": "mystery"}), id="unknown type"),
        pytest.param(json.dumps(["prompt"]), id="not an object"),
        pytest.param(json.dumps({"type": "setup", "accountSid": "AC"}), id="setup without callSid"),
        pytest.param(json.dumps({"type": "dtmf", "digit": "12"}), id="dtmf of two digits"),
        pytest.param("", id="empty"),
    ],
)
def test_hostile_frames_are_ignored_and_counted(
    relay: Relay, body: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a set-up session
    relay.open()
    capsys.readouterr()
    before = relay.items()

    # When a frame that is not a valid Twilio frame arrives
    answer = relay.send(body)

    # Then it is ignored (200, nothing stored, nothing sent) and counted
    assert answer["statusCode"] == 200
    assert relay.items() == before
    assert relay.recorder.frames() == []
    assert emitted_metrics(capsys.readouterr().out).get("RelayFrameRejected") == 1
    # And the session goes on
    relay.send(prompt_frame("hours"))
    assert relay.recorder.spoken().strip() == HOURS


def test_frame_on_an_unknown_connection_is_ignored(relay: Relay) -> None:
    answer = relay.invoke(
        "relay_message", message_event(prompt_frame("hours"), connection_id="never-connected")
    )
    assert answer["statusCode"] == 200
    assert relay.recorder.frames() == []


def test_storage_failure_answers_500_without_crashing(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a session whose table disappears (every DynamoDB call fails)
    relay.open()
    relay.aws.env(EVENTS_TABLE_NAME="MissingTable")

    # When a frame arrives, Then the invocation reports 500 (IntegrationError alarm), no exception
    assert relay.send(prompt_frame("hours"))["statusCode"] == 500


# --- $disconnect --------------------------------------------------------------------------------


def test_disconnect_is_recorded_on_the_connection(relay: Relay) -> None:
    relay.open()
    assert (
        relay.invoke("relay_disconnect", json.loads((EVENTS / "disconnect.json").read_text()))["statusCode"]
        == 200
    )
    state = relay.item("relay#01")
    assert state is not None and state["DisconnectStatusCode"] == 1000 and "DisconnectedAt" in state


def test_disconnect_of_an_unknown_connection_is_fine(relay: Relay) -> None:
    assert relay.invoke("relay_disconnect", disconnect_event(connection_id="nope"))["statusCode"] == 200


# --- the Bedrock agent through the route --------------------------------------------------------


def test_bedrock_flow_streams_the_models_deltas_as_tokens(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from botocore.stub import ANY, Stubber
    from voice_webhooks.relay import bedrock

    # Given a session whose flow's agent is Bedrock, and the model's streamed answer
    relay.put_session(flow="bedrock")
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    monkeypatch.setattr(bedrock, "bedrock_client", lambda: client)
    stream = ConverseStream(
        [
            {"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}},
            {"contentBlockDelta": {"delta": {"text": " there."}, "contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
        ]
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "converse_stream",
            {"stream": stream},
            {
                "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
                "system": [{"text": "You are a concise phone assistant."}],
                "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                "inferenceConfig": ANY,
            },
        )
        stream.armed = True
        relay.open()

        # When the caller speaks
        relay.send(prompt_frame("Hi"))

    # Then each delta reached Twilio as it came, and the reply is stored
    assert [frame["token"] for frame in relay.recorder.frames("text")] == ["Hello", " there.", ""]
    assert relay.turns()[-1]["Text"] == "Hello there."


def test_bedrock_gets_only_its_most_recent_history_turns(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3
    from botocore.stub import ANY, Stubber
    from voice_webhooks.relay import bedrock

    # Given a Bedrock flow that sends the model its last 2 stored turns, and two exchanges stored
    document = json.loads(relay_helpers.RELAY_FLOWS.read_text(encoding="utf-8"))
    document["flows"]["bedrock"]["agent"]["maxHistoryTurns"] = 2
    config = tmp_path / "flows.json"
    config.write_text(json.dumps(document), encoding="utf-8")
    relay.aws.env(FLOW_CONFIG=str(config))
    relay.put_session(flow="bedrock")
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    monkeypatch.setattr(bedrock, "bedrock_client", lambda: client)
    asked = ["Hi", "When do you open?", "And on Sunday?"]
    answers = ["Hello.", "At nine.", "Closed."]
    with Stubber(client) as stubber:
        streams = []
        for index, answer in enumerate(answers):
            stream = ConverseStream(
                [{"contentBlockDelta": {"delta": {"text": answer}, "contentBlockIndex": 0}}]
            )
            streams.append(stream)
            history = (
                [
                    {"role": "user", "content": [{"text": asked[index - 1]}]},
                    {"role": "assistant", "content": [{"text": answers[index - 1]}]},
                ]
                if index
                else []
            )
            stubber.add_response(
                "converse_stream",
                {"stream": stream},
                {
                    "modelId": ANY,
                    "system": ANY,
                    "messages": [*history, {"role": "user", "content": [{"text": asked[index]}]}],
                    "inferenceConfig": ANY,
                },
            )
        for stream in streams:
            stream.armed = True
        relay.open()

        # When the caller asks three times
        for question in asked:
            assert relay.send(prompt_frame(question))["statusCode"] == 200

        # Then each request carried only the exchange before it (the Stubber checked each one)
        stubber.assert_no_pending_responses()
    assert [turn["Text"] for turn in relay.turns() if turn["Kind"] == "reply"] == answers


def test_a_long_conversations_turn_reads_no_more_than_its_first(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from botocore.client import BaseClient

    # Given the scripted agent (which needs no history) and the DynamoDB requests counted
    relay.aws.env(FLOW_CONFIG=str(relay_helpers.unpaced_flows(tmp_path)))
    relay.open()
    calls: list[str] = []
    original = BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)

    def one_turn() -> list[str]:
        calls.clear()
        assert relay.send(prompt_frame("What are your hours?"))["statusCode"] == 200
        return list(calls)

    def relay_item() -> dict[str, Any]:
        item = relay.item("relay#01")
        assert item is not None
        return {name: value for name, value in item.items() if name not in ("TurnCount", "CurrentReply")}

    # When the caller has asked 30 times
    first = one_turn()
    after_first = relay_item()
    for _ in range(28):
        one_turn()
    thirtieth = one_turn()

    # Then the thirtieth turn made the same requests as the first, none a query of the whole session
    assert thirtieth == first
    assert "Query" not in first
    # And the relay item, read before every token, did not grow (DynamoDB bills a read by item size)
    assert relay_item() == after_first


def test_interrupting_a_handoff_answer_still_hands_off(relay: Relay) -> None:
    # Given the caller talks over the hand-off answer after its second word
    relay.open()

    def interrupt_after_second(count: int, frame: dict[str, Any]) -> None:
        if count == 2:
            relay.recorder.on_post = None
            relay.send(interrupt_frame("Let me "))

    relay.recorder.on_post = interrupt_after_second

    # When the caller asks for a person
    relay.send(prompt_frame("agent"))

    # Then the answer stopped, but the hand-off was still sent
    assert len(relay.recorder.frames("text")) == 2
    assert relay.recorder.frames()[-1]["type"] == "end"
