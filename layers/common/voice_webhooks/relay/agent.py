"""The agent interface: given the session and the caller's turn, a stream of output actions.

An agent is any object with `respond(context, turn) -> Iterator[Action]`. The relay posts each
action to Twilio as soon as the iterator yields it (a `TextToken` is one `text` frame), checks for
an interruption before each post, and stops iterating when the caller interrupted or hung up:
so an agent yields as it produces, and must not buffer a whole reply. An agent with no generation
time of its own (the scripted one) sets `token_interval` (seconds) and the relay paces its posts,
so that an interrupt can reach the reply between two of them (decision 0017). docs/relay-agent.md
has a worked example of writing one."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from voice_webhooks.flows.agent import BedrockAgent, Intent, ScriptedAgent
from voice_webhooks.relay.frames import EndOut, LanguageOut, PlayOut, SendDigitsOut, TextOut

# --- what an agent produces ---------------------------------------------------------------------


@dataclass(frozen=True)
class TextToken:
    """A piece of the reply, spoken as it arrives; `last=True` ends the reply."""

    token: str
    last: bool = False
    lang: str | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None


@dataclass(frozen=True)
class Play:
    source: str
    loop: int | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None


@dataclass(frozen=True)
class SendDigits:
    digits: str


@dataclass(frozen=True)
class SwitchLanguage:
    tts_language: str | None = None
    transcription_language: str | None = None


@dataclass(frozen=True)
class End:
    """End the session. `handoff` (a JSON object) reaches the `<Connect action>` request as
    HandoffData; with a `target` key naming one of the flow's targets, the caller is dialled to it."""

    handoff: dict[str, Any] | None = None


Action = TextToken | Play | SendDigits | SwitchLanguage | End


def to_frame(action: Action) -> TextOut | PlayOut | SendDigitsOut | LanguageOut | EndOut:
    if isinstance(action, TextToken):
        return TextOut(
            token=action.token,
            last=action.last,
            lang=action.lang,
            interruptible=action.interruptible,
            preemptible=action.preemptible,
        )
    if isinstance(action, Play):
        return PlayOut(
            source=action.source,
            loop=action.loop,
            interruptible=action.interruptible,
            preemptible=action.preemptible,
        )
    if isinstance(action, SendDigits):
        return SendDigitsOut(digits=action.digits)
    if isinstance(action, SwitchLanguage):
        return LanguageOut(
            tts_language=action.tts_language, transcription_language=action.transcription_language
        )
    handoff = json.dumps(action.handoff, separators=(",", ":")) if action.handoff is not None else None
    return EndOut(handoff_data=handoff)


# --- what an agent is given ---------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """A stored turn, as history (RELAY.md "Turn items")."""

    role: Literal["caller", "agent", "system"]
    kind: str
    text: str
    heard: str | None = None
    interrupted: bool = False

    @property
    def spoken(self) -> str:
        """What the caller actually heard of an agent reply."""
        return self.heard if self.interrupted and self.heard is not None else self.text


@dataclass(frozen=True)
class CallerTurn:
    """What the agent answers: a whole prompt (`last: true`; partials are not turns), or a key press."""

    kind: Literal["prompt", "dtmf"]
    text: str
    lang: str | None = None


HistoryReader = Callable[[int | None], Sequence[Turn]]
"""Given a number of turns (None: all), the session's most recent earlier turns, oldest first."""


def fixed_history(turns: Sequence[Turn]) -> HistoryReader:
    """A history reader over turns already at hand (an agent's own tests, a composed agent)."""
    every = list(turns)
    return lambda limit: every if limit is None else every[max(len(every) - limit, 0) :]


@dataclass(frozen=True)
class SessionContext:
    session_id: str
    attempt: int
    flow_name: str | None
    call_sid: str | None = None
    read_history: HistoryReader = field(default=fixed_history(()), repr=False, compare=False)
    """Where `recent_history` reads from (the relay: the session's stored turns)."""
    custom_parameters: dict[str, Any] = field(default_factory=dict)

    def recent_history(self, limit: int | None = None) -> Sequence[Turn]:
        """The session's earlier turns (all attempts), oldest first, excluding the current one:
        the last `limit` of them (None: every one). Read when asked, so an agent that needs none
        (the scripted one) costs no read, and one that needs a few reads only those: a long
        conversation's every turn must not re-read all of it."""
        return self.read_history(limit)

    @property
    def history(self) -> Sequence[Turn]:
        """Every earlier turn of the session (`recent_history()`)."""
        return self.recent_history(None)


class Agent(Protocol):
    def respond(self, context: SessionContext, turn: CallerTurn) -> Iterator[Action]: ...


# --- the scripted agent -------------------------------------------------------------------------


def words(text: str) -> Iterator[TextToken]:
    """A text as word tokens (each with its trailing space), the last one `last=True`."""
    pieces = re.findall(r"\S+\s*", text.strip())
    for index, piece in enumerate(pieces):
        yield TextToken(piece, last=index == len(pieces) - 1)


class ScriptedResponder:
    """Keyword or DTMF intents with fixed answers (flows/agent.py ScriptedAgent)."""

    def __init__(self, config: ScriptedAgent) -> None:
        self.config = config
        # Read by the reply loop (relay/conversation.py), which paces the posts rather than this
        # iterator sleeping: the words it skips after an interrupt must not wait.
        self.token_interval = config.token_interval_ms / 1000
        self._patterns = [
            [re.compile(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)") for keyword in intent.keywords]
            for intent in config.intents
        ]

    def match(self, turn: CallerTurn) -> Intent | None:
        if turn.kind == "dtmf":
            return next((intent for intent in self.config.intents if intent.dtmf == turn.text), None)
        text = turn.text.lower()
        for intent, patterns in zip(self.config.intents, self._patterns, strict=True):
            if any(pattern.search(text) for pattern in patterns):
                return intent
        return None

    def respond(self, context: SessionContext, turn: CallerTurn) -> Iterator[Action]:  # noqa: ARG002
        intent = self.match(turn)
        yield from words(intent.answer if intent else self.config.fallback)
        if intent is not None and intent.handoff is not None:
            yield End(handoff={"target": intent.handoff, "reason": intent.name})


def agent_for(config: ScriptedAgent | BedrockAgent) -> Agent:
    if isinstance(config, BedrockAgent):
        from voice_webhooks.relay.bedrock import BedrockResponder  # only the Bedrock flows load boto's model

        return BedrockResponder(config)
    return ScriptedResponder(config)
