"""The named scenarios: what Twilio, the worker and the caller do in each case the product handles.

A scenario says what happens on Twilio's side (the `<Conversation>` leg's fate, the AI session's
end, what the caller does at a `<Record>`); the emulator follows whatever TwiML the server answers,
and checks the answers against `expect` (what the product promises for that case)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

from voicedev.emulator.relay import Drop, Interrupt, Press, RelayScript, Speak

CONVERSATION_LINE = "+15550100001"
RELAY_LINE = "+15550100002"
AGENT_LINE = "+15550100003"


class Line(StrEnum):
    """Which of the product's numbers a scenario calls (config/flows.example.json): `frontline`
    (conversation), `assistant` (relay to an agent elsewhere, `url`), `concierge` (relay to the
    stack's own scripted agent, no `url`)."""

    CONVERSATION = "conversation"
    RELAY = "relay"
    AGENT = "agent"


class Expect(StrEnum):
    """The shape of the answer to the session's `<Connect action>` request."""

    HANGUP = "hang up"
    VOICEMAIL = "voicemail, then hang up"
    MESSAGE = "a message, then hang up"
    EMPTY = "an empty <Response/>"
    HANDOFF = "hand-off: <Dial> a human"
    FALLBACK = "an apology, then a human or voicemail"
    RECONNECT = "reconnect: a fresh <ConversationRelay>"


@dataclass(frozen=True)
class ConversationPlan:
    """What happens to the `<Conversation>` session. `dial_call_status` None: no call leg to a
    worker is ever created (routing or lookup failed), so there are no status callbacks."""

    result: str
    dial_call_status: str | None = None
    ring_seconds: int = 6
    """How long the worker's phone rings before answering (answered legs)."""
    talk_seconds: int = 60
    worker_initiated: bool = False
    recording_final: str = "completed"
    """How the `<Conversation record>` recording ends: `completed` or `absent`."""
    caller_hangs_up: bool = False
    """Who ended a connected call. The caller: Twilio still requests the action URL but the call is
    over (CallStatus=completed) and the answer is not run. The worker: the caller stays on the line."""


@dataclass(frozen=True)
class RelayPlan:
    """How the ConversationRelay session ends (the `<Connect action>` request's fields)."""

    session_status: str
    duration: int
    handoff_data: dict[str, object] | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def caller_hung_up(self) -> bool:
        return self.session_status == "completed"


@dataclass(frozen=True)
class CallerPlan:
    """What the caller (and a human reached by `<Dial>`) does later in the call."""

    voicemail_seconds: int = 12
    """Message length at a `<Record>`; 0 is silence (Twilio: recording `absent`, no action request)."""
    finish_key: str = "#"
    dial_answered: bool = True
    dial_talk_seconds: int = 45


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    line: Line
    expect: Expect
    """What the product answers with config/flows.example.json. Flows can configure most outcomes
    (voicemail, message, dial), so against another configuration a different answer is reported
    as a difference, not a failure (unless `strict`)."""
    conversation: ConversationPlan | None = None
    relay: RelayPlan | None = None
    caller: CallerPlan = field(default_factory=CallerPlan)
    must: Expect | None = None
    """What the product answers whatever the configuration (a failure otherwise)."""
    direction: str = "inbound"
    queued_recordings: int = 0
    """Completed recordings the product must queue (one message each)."""
    relay_script: RelayScript | None = None
    """Relay scenarios that talk to the agent over the WebSocket of `<ConversationRelay url>`
    (the stack's own relay agent: the `concierge` flow of the agent line)."""

    @property
    def worker_initiated(self) -> bool:
        return bool(self.conversation and self.conversation.worker_initiated)


DEFAULT_HANDOFF: dict[str, object] = {"reason": "The caller asked to talk to a person", "target": "support"}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="worker-answers",
        title="A worker answers; they talk; the worker hangs up; the call recording completes",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="session-success", dial_call_status="completed"),
        expect=Expect.HANGUP,
        queued_recordings=1,
    ),
    Scenario(
        name="no-answer-voicemail",
        title="Nobody answers before inboundTimeout; the caller leaves a voicemail",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="dialed-call-incomplete", dial_call_status="no-answer"),
        expect=Expect.VOICEMAIL,
        queued_recordings=1,
    ),
    Scenario(
        name="busy",
        title="The worker's line is busy; the caller leaves a voicemail",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="dialed-call-incomplete", dial_call_status="busy"),
        expect=Expect.VOICEMAIL,
        queued_recordings=1,
    ),
    Scenario(
        name="no-worker-assigned",
        title="Routing assigns no worker before routingAssignmentTimeout (no-other-participants)",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="no-other-participants"),
        expect=Expect.VOICEMAIL,
        queued_recordings=1,
    ),
    Scenario(
        name="no-existing-conversation",
        title="The caller is in no Conversation and autocreation is off (no-existing-conversation)",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="no-existing-conversation"),
        # The product's default is a message then hang up; the example flow adds a voicemail.
        expect=Expect.VOICEMAIL,
        queued_recordings=1,
    ),
    Scenario(
        name="worker-invalid-conversation",
        title="A worker calls a customer out of an invalid Conversation (invalid-conversation)",
        line=Line.CONVERSATION,
        direction="outbound-api",
        conversation=ConversationPlan(result="invalid-conversation", worker_initiated=True),
        expect=Expect.MESSAGE,
        must=Expect.HANGUP,  # the caller is our own worker: never a voicemail or a dial
    ),
    Scenario(
        name="ai-completed",
        title="The caller talks to the AI agent and hangs up (SessionStatus=completed)",
        line=Line.RELAY,
        relay=RelayPlan(session_status="completed", duration=35),
        expect=Expect.EMPTY,
        must=Expect.EMPTY,
    ),
    Scenario(
        name="ai-handoff",
        title="The AI agent hands the caller to a human (SessionStatus=ended, HandoffData)",
        line=Line.RELAY,
        relay=RelayPlan(session_status="ended", duration=25, handoff_data=DEFAULT_HANDOFF),
        expect=Expect.HANDOFF,
    ),
    Scenario(
        name="ai-failed",
        title="The AI session fails (WebSocket unreachable, SessionStatus=failed)",
        line=Line.RELAY,
        relay=RelayPlan(
            session_status="failed",
            duration=10,
            error_code="39001",
            error_message="Network connection to WebSocket server failed.",
        ),
        expect=Expect.FALLBACK,
    ),
    Scenario(
        name="recording-absent",
        title="A worker answers but the call lasts a second: the recording ends absent (nothing queued)",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(
            result="session-success", dial_call_status="completed", talk_seconds=1, recording_final="absent"
        ),
        expect=Expect.HANGUP,
    ),
    Scenario(
        name="voicemail-silence",
        title="Nobody answers; the caller stays silent at the tone: the voicemail ends absent",
        line=Line.CONVERSATION,
        conversation=ConversationPlan(result="dialed-call-incomplete", dial_call_status="no-answer"),
        caller=CallerPlan(voicemail_seconds=0),
        expect=Expect.VOICEMAIL,
    ),
)

HOURS = "What are your opening hours?"

# Conversations with the relay agent over its WebSocket (the scripted agent of config/flows.example.json's
# `concierge` flow, on the agent line). Not part of `all`: `relay` runs them.
RELAY_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="relay-conversation",
        title="Two questions to the AI agent (partial prompts, streamed answers); hang up",
        line=Line.AGENT,
        relay_script=RelayScript(sessions=((Speak(HOURS), Speak("And can I speak in Swedish please?")),)),
        expect=Expect.EMPTY,
        must=Expect.EMPTY,
    ),
    Scenario(
        name="relay-interrupt",
        title="The caller talks over the answer: it stops; the caller asks again",
        line=Line.AGENT,
        relay_script=RelayScript(
            sessions=((Interrupt(HOURS, after_tokens=2), Speak("Sorry, the opening hours?")),)
        ),
        expect=Expect.EMPTY,
        must=Expect.EMPTY,
    ),
    Scenario(
        name="relay-dtmf",
        title="The caller presses 1 for the opening hours, then hangs up",
        line=Line.AGENT,
        relay_script=RelayScript(sessions=((Press("1"),),)),
        expect=Expect.EMPTY,
        must=Expect.EMPTY,
    ),
    Scenario(
        name="relay-handoff",
        title="The caller asks for a person: the agent sends end + handoffData; <Dial>",
        line=Line.AGENT,
        relay_script=RelayScript(sessions=((Speak(HOURS), Speak("I would like to talk to a person")),)),
        expect=Expect.HANDOFF,
    ),
    Scenario(
        name="relay-reconnect",
        title="The WebSocket drops (64105): a fresh <ConversationRelay> reconnects, attempt 2",
        line=Line.AGENT,
        relay_script=RelayScript(sessions=((Speak(HOURS), Drop()), (Press("1"),))),
        expect=Expect.RECONNECT,
        must=Expect.RECONNECT,
    ),
)

BY_NAME = {scenario.name: scenario for scenario in (*SCENARIOS, *RELAY_SCENARIOS)}


def get(name: str) -> Scenario:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(BY_NAME)}") from None


def handoff_json(data: dict[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"))
