"""The emulator plays Twilio's side of ConversationRelay: against a loopback server answering canned
TwiML and a tiny fake agent behind the `<ConversationRelay url>` WebSocket (it checks the handshake
signature, streams each answer word by word, stops on `interrupt`, and hands off on "person"),
every relay scenario runs, and the emulator reports what Twilio would: the frames, the action
request's fields, the reconnect, and the conversation as printed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator
from voicedev.emulator.engine import run_call
from voicedev.emulator.output import WIDTH, call_report
from voicedev.emulator.relay import join_tokens
from voicedev.emulator.scenarios import RELAY_SCENARIOS, get
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from tests.unit.test_emulator_signing import ACCOUNT, TOKEN, FakeTwilioApp, Received, config_for, fake_app

__all__ = ["fake_app"]

HOURS = "We are open from nine to five, Monday to Friday. Anything else?"
HANDOFF = "Let me connect you to a member of our team."
FALLBACK = "Sorry, I did not catch that."


@dataclass
class FakeAgent:
    """Records every frame per connection; answers like the scripted agent, 30 ms per token."""

    frames: list[list[dict[str, Any]]] = field(default_factory=list)
    refused: int = 0
    url: str = ""
    token_delay: float = 0.03
    ignores_interrupt: bool = False
    single_token: bool = False

    def answer_for(self, frame: dict[str, Any]) -> tuple[str, bool]:
        text = str(frame.get("voicePrompt", "")).lower()
        if frame.get("type") == "dtmf":
            return (HOURS, False) if frame.get("digit") == "1" else (FALLBACK, False)
        if "person" in text:
            return HANDOFF, True
        return (HOURS, False) if "hours" in text else (FALLBACK, False)


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not RequestValidator(TOKEN).validate(fake.url + request.path, {}, signature):
            fake.refused += 1
            return connection.respond(403, "invalid signature")
        return None

    def handler(ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        fake.frames.append(frames)
        stop = threading.Event()

        def stream(text: str, handoff: bool) -> None:
            words = [text] if fake.single_token else text.split()
            for index, word in enumerate(words):
                if stop.is_set():
                    return
                time.sleep(fake.token_delay)
                last = index == len(words) - 1
                ws.send(json.dumps({"type": "text", "token": word if last else word + " ", "last": last}))
            if handoff:
                data = json.dumps({"target": "support", "reason": "human"})
                ws.send(json.dumps({"type": "end", "handoffData": data}))

        try:
            for raw in ws:
                frame = json.loads(raw)
                frames.append(frame)
                if frame["type"] == "interrupt" and not fake.ignores_interrupt:
                    stop.set()
                elif (frame["type"] == "prompt" and frame["last"]) or frame["type"] == "dtmf":
                    stop.clear()
                    threading.Thread(target=stream, args=fake.answer_for(frame), daemon=True).start()
        except ConnectionClosed:
            pass

    with serve(handler, "127.0.0.1", 0, process_request=process_request, compression=None) as server:
        fake.url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield fake
        server.shutdown()


def relay_twiml(agent: FakeAgent, attempt: int = 1) -> str:
    url = f"{agent.url}/relay?session=s1&amp;attempt={attempt}"
    return (
        '<Response><Connect action="/voice/action?session=s1">'
        f'<ConversationRelay url="{url}" welcomeGreeting="Hi! Ask about opening hours.">'
        '<Parameter name="team" value="support"/></ConversationRelay></Connect></Response>'
    )


def serve_relay(app: FakeTwilioApp, agent: FakeAgent) -> None:
    def action(request: Received) -> tuple[int, str, str]:
        params = request.params
        if params["SessionStatus"] == "failed" and params["CallStatus"] == "in-progress":
            attempt = 1 + sum(1 for r in app.on("/voice/action") if r.params["SessionStatus"] == "failed")
            return 200, "text/xml", relay_twiml(agent, attempt)
        if params["SessionStatus"] == "ended":
            return 200, "text/xml", "<Response><Dial>+15550100100</Dial></Response>"
        return 200, "text/xml", "<Response/>"

    app.routes.update({"/voice/connect": relay_twiml(agent), "/voice/action": action})


def actions(app: FakeTwilioApp) -> list[dict[str, str]]:
    return [request.params for request in app.on("/voice/action")]


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [str(frame["type"]) for frame in frames]


# ---------------------------------------------------------------------------------------------


def test_the_handshake_is_signed_and_setup_comes_first(fake_app: FakeTwilioApp, agent: FakeAgent) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), get("relay-dtmf"))

    assert result.ok, result.problems
    assert agent.refused == 0
    (frames,) = agent.frames
    setup = frames[0]
    assert setup["type"] == "setup"
    assert setup["sessionId"].startswith("VX")
    assert setup["callSid"] == result.call_sid
    assert setup["accountSid"] == ACCOUNT
    assert (setup["from"], setup["to"], setup["direction"]) == (result.from_, result.to, "inbound")
    assert setup["customParameters"] == {"team": "support"}
    assert kinds(frames) == ["setup", "dtmf"]
    assert frames[1]["digit"] == "1"
    assert result.turns[-2].text == HOURS


def test_a_wrong_token_is_refused_and_reported(fake_app: FakeTwilioApp, agent: FakeAgent) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app, auth_token="another_token"), get("relay-dtmf"))
    assert agent.refused == 1
    assert "the WebSocket handshake was refused: HTTP 403 invalid signature" in result.problems
    assert actions(fake_app)[0]["SessionStatus"] == "failed"
    assert actions(fake_app)[0]["ErrorCode"] == "39001"


def test_a_conversation_sends_partial_prompts_then_the_last_and_joins_streamed_tokens(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), get("relay-conversation"))

    assert result.ok, result.problems
    (frames,) = agent.frames
    prompts = [frame for frame in frames if frame["type"] == "prompt"]
    first_question = [frame for frame in prompts if "hours" in frame["voicePrompt"] or not frame["last"]][:3]
    assert [(frame["voicePrompt"], frame["last"]) for frame in first_question] == [
        ("What are", False),
        ("What are your opening", False),
        ("What are your opening hours?", True),
    ]
    assert sum(frame["last"] for frame in prompts) == 2
    replies = [turn for turn in result.turns if turn.role == "agent" and "tokens" in turn.detail]
    assert [turn.text for turn in replies] == [HOURS, FALLBACK]
    assert replies[0].detail.startswith("12 tokens, first after ")
    # The caller hung up: the action request says so, and its answer is not run
    (action,) = actions(fake_app)
    assert (action["SessionStatus"], action["CallStatus"]) == ("completed", "completed")
    assert action["SessionId"].startswith("VX")
    assert "HandoffData" not in action
    assert result.relay_sessions[0].first_token_ms and len(result.relay_sessions[0].first_token_ms) == 2


def test_an_interrupt_stops_the_answer_and_says_what_the_caller_heard(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), get("relay-interrupt"))

    assert result.ok, result.problems
    (frames,) = agent.frames
    interrupt = next(frame for frame in frames if frame["type"] == "interrupt")
    assert interrupt["utteranceUntilInterrupt"] == "We are"
    assert interrupt["durationUntilInterruptMs"] == 600
    interrupted = next(turn for turn in result.turns if "[interrupted]" in turn.text)
    assert interrupted.text == "We are [interrupted]"
    assert interrupted.detail.startswith("heard 2 tokens; ")
    # and the caller's next question is answered in full
    assert result.turns[-2].text == HOURS


def test_an_agent_that_keeps_talking_after_an_interrupt_is_reported(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    # Given an agent that ignores `interrupt`
    serve_relay(fake_app, agent)
    agent.ignores_interrupt = True

    # When the caller talks over its answer
    result = run_call(config_for(fake_app), get("relay-interrupt"))

    # Then the call fails, saying how many tokens came after the interrupt
    assert any(
        problem.startswith("the agent sent ") and "tokens after the interrupt (must stop within 1)" in problem
        for problem in result.problems
    ), result.problems


def test_an_answer_sent_all_at_once_cannot_be_interrupted_and_is_reported(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    agent.token_delay = 0
    agent.single_token = True
    result = run_call(config_for(fake_app), get("relay-interrupt"))
    assert any("before the caller could interrupt it" in problem for problem in result.problems)


def test_a_handoff_sends_ended_with_handoff_data_and_follows_the_dial(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), get("relay-handoff"))

    assert result.ok, result.problems
    (action,) = actions(fake_app)
    assert (action["SessionStatus"], action["CallStatus"]) == ("ended", "in-progress")
    assert json.loads(action["HandoffData"]) == {"target": "support", "reason": "human"}
    assert any("<Dial>" in item for item in result.log if isinstance(item, str))
    assert result.turns[-1].text == "[end] ends the session"


def test_a_dropped_socket_is_failed_64105_and_the_fresh_relay_reconnects_with_attempt_2(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), get("relay-reconnect"))

    assert result.ok, result.problems
    first, second = actions(fake_app)
    assert (first["SessionStatus"], first["CallStatus"], first["ErrorCode"]) == (
        "failed",
        "in-progress",
        "64105",
    )
    assert (second["SessionStatus"], second["CallStatus"]) == ("completed", "completed")
    assert [dict(parse_qsl(urlsplit(url).query))["attempt"] for url in result.relay_urls] == ["1", "2"]
    assert [kinds(frames) for frames in agent.frames] == [
        ["setup", "prompt", "prompt", "prompt"],
        ["setup", "dtmf"],
    ]
    assert agent.frames[0][0]["sessionId"] != agent.frames[1][0]["sessionId"]


def test_a_reconnect_without_the_next_attempt_number_is_a_problem(
    fake_app: FakeTwilioApp, agent: FakeAgent
) -> None:
    serve_relay(fake_app, agent)
    fake_app.routes["/voice/action"] = lambda request: (200, "text/xml", relay_twiml(agent, 1))
    result = run_call(config_for(fake_app), get("relay-reconnect"))
    assert any("attempt='1'" in problem and "expected 2" in problem for problem in result.problems)


@pytest.mark.parametrize("scenario", RELAY_SCENARIOS, ids=lambda scenario: scenario.name)
def test_every_relay_scenario_prints_its_conversation_within_100_columns(
    fake_app: FakeTwilioApp, agent: FakeAgent, scenario: Any
) -> None:
    serve_relay(fake_app, agent)
    result = run_call(config_for(fake_app), scenario)
    assert result.ok, result.problems
    report = call_report(result)
    conversation = [line for line in report.splitlines() if line.lstrip().startswith(("caller ", "agent "))]
    assert conversation, report
    assert all(len(line) <= WIDTH for line in conversation), report
    assert "agent  Hi! Ask about opening hours.  (welcomeGreeting, spoken by Twilio)" in report


@pytest.mark.parametrize(
    ("tokens", "spoken"),
    [(["We ", "are ", "open."], "We are open."), (["We", "are", "open."], "We are open."), ([], "")],
)
def test_tokens_are_joined_as_spoken(tokens: list[str], spoken: str) -> None:
    assert join_tokens(tokens) == spoken


def test_against_the_local_mode_a_relay_url_elsewhere_is_never_opened(fake_app: FakeTwilioApp) -> None:
    # Given the local mode's default flows, whose relay flow points at an agent on the internet
    fake_app.routes["/voice/connect"] = (
        '<Response><Connect action="/voice/action?session=s1">'
        '<ConversationRelay url="wss://agent.example.com/relay"/></Connect></Response>'
    )

    # When a relay scenario runs / Then it stops there, saying which number reaches the local agent
    result = run_call(config_for(fake_app), get("relay-dtmf"))
    assert result.relay_urls == []
    problems = [problem for problem in result.problems if "is not the local WebSocket API" in problem]
    assert problems and "--agent-number" in problems[0]
    assert fake_app.on("/voice/action") == []
