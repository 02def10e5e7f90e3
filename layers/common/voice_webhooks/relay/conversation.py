"""One Twilio frame on a connection: store its turn, and answer it through the agent.

API Gateway runs one invocation per frame, concurrently and in no order, so every piece of shared
state lives in the relay item (storage/relay_store.py): the turn counter, the message ids already
stored (a duplicate is stored once and answered once), the reply being spoken and the interrupt
marker. A reply checks the marker before each post, so an `interrupt` handled by another
invocation stops it within one token; the interrupt also writes what the caller heard
(`utteranceUntilInterrupt`) on the reply's turn."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from voice_webhooks.errors import ConfigurationError, StorageError
from voice_webhooks.flows.agent import DEFAULT_AGENT
from voice_webhooks.flows.model import FlowConfig, RelayFlow
from voice_webhooks.relay.agent import (
    Agent,
    CallerTurn,
    End,
    SessionContext,
    TextToken,
    Turn,
    agent_for,
    to_frame,
)
from voice_webhooks.relay.connections import ConnectionGone, Poster, PostFailed
from voice_webhooks.relay.frames import DtmfFrame, ErrorFrame, InterruptFrame, PromptFrame, SetupFrame
from voice_webhooks.relay.metrics import RelayMetric
from voice_webhooks.runtime.observability import count, logger
from voice_webhooks.storage.relay_store import Allocation, Connection, RelayStore, turn_key

Frame = SetupFrame | PromptFrame | InterruptFrame | DtmfFrame | ErrorFrame
MAX_ACTIONS_AFTER_INTERRUPT = 32
SETUP_SEQ = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def owns_session(call_sid: str, session_id: str) -> bool:
    """DATA-MODEL.md's ownership rule: a session id starts with its call's CallSid."""
    return bool(call_sid) and (session_id == call_sid or session_id.startswith(call_sid + "-"))


def _turn(item: dict[str, Any]) -> Turn:
    return Turn(
        role=item.get("Role", "system"),
        kind=str(item.get("Kind", "")),
        text=str(item.get("Text", "")),
        heard=item.get("Heard"),
        interrupted=bool(item.get("Interrupted", False)),
    )


@dataclass
class Conversation:
    store: RelayStore
    poster: Poster
    connection: Connection
    load_config: Callable[[], FlowConfig]
    allowed_accounts: frozenset[str]
    ttl_days: int

    def _expires_at(self, now: datetime | None = None) -> int:
        return int(((now or utc_now()) + timedelta(days=self.ttl_days)).timestamp())

    def _common(self) -> dict[str, Any]:
        now = utc_now()
        return {
            "EventTime": now.isoformat(),
            "ExpiresAt": self._expires_at(now),
            "Attempt": self.connection.attempt,
        }

    def _store(self, allocation: Allocation, role: str, kind: str, text: str, **extra: Any) -> None:
        self.store.put_turn(
            self.connection,
            allocation.seq,
            {"Role": role, "Kind": kind, "Text": text, **extra, **self._common()},
        )
        count(RelayMetric.TURN_STORED)

    def handle(self, frame: Frame, message_id: str) -> None:
        if isinstance(frame, SetupFrame):
            self._setup(frame)
            return
        if isinstance(frame, PromptFrame) and not frame.last:
            # A partial transcript (`last: false`, the utterance so far) is not a caller turn: the
            # `last: true` prompt that follows carries the whole utterance, and is the one answered.
            return
        if isinstance(frame, InterruptFrame):
            # The marker first: the reply streaming in another invocation reads it before each
            # token, so every write before it would be tokens the caller did not want.
            reply_seq = self.store.mark_interrupt(
                self.connection, frame.utterance_until_interrupt, self._expires_at()
            )
        allocation = self.store.allocate(self.connection, message_id, self._expires_at())
        if allocation.duplicate:
            count(RelayMetric.DUPLICATE_FRAME)
            logger.info(
                "Duplicate frame: stored once, answered once",
                extra={"frame": frame.type, "turn": allocation.seq},
            )
        if isinstance(frame, PromptFrame):
            self._store(allocation, "caller", "prompt", frame.voice_prompt, Lang=frame.lang)
            if not allocation.duplicate:
                self.reply(CallerTurn("prompt", frame.voice_prompt, frame.lang), before=allocation.seq)
        elif isinstance(frame, DtmfFrame):
            self._store(allocation, "caller", "dtmf", frame.digit)
            if not allocation.duplicate:
                self.reply(CallerTurn("dtmf", frame.digit), before=allocation.seq)
        elif isinstance(frame, InterruptFrame):
            self._store(
                allocation,
                "caller",
                "interrupt",
                frame.utterance_until_interrupt,
                DurationUntilInterruptMs=frame.duration_until_interrupt_ms,
            )
            count(RelayMetric.REPLY_INTERRUPTED)
            logger.info("Caller interrupted the agent", extra={"reply_turn": reply_seq})
        else:
            self._store(allocation, "system", "error", frame.description)
            count(RelayMetric.TWILIO_ERROR)
            logger.warning(
                "Twilio reported an error on the relay session",
                extra={"description": frame.description[:200]},
            )

    # --- setup ----------------------------------------------------------------------------------

    def _setup(self, frame: SetupFrame) -> None:
        session_id = self.connection.session_id
        if not owns_session(frame.call_sid, session_id) or frame.account_sid not in self.allowed_accounts:
            # Another call's socket, or another account's: nothing of it is stored.
            count(RelayMetric.SETUP_MISMATCH)
            logger.warning(
                "Relay setup does not belong to this session: closing the connection",
                extra={
                    "call_sid": frame.call_sid[:40],
                    "account_allowed": frame.account_sid in self.allowed_accounts,
                },
            )
            self.poster.close(self.connection.connection_id)
            return
        # Turn 0 of the attempt, whatever order the invocations run in: Twilio sends `setup` first,
        # but a prompt right behind it may reach the table first. The fixed number is its own claim.
        allocation = Allocation(SETUP_SEQ, duplicate=False)
        self._store(
            allocation, "system", "setup", "", CallSid=frame.call_sid, TwilioSessionId=frame.session_id
        )
        self.store.update_connection(
            self.connection,
            {
                "CallSid": frame.call_sid,
                "TwilioSessionId": frame.session_id or "",
                "SetupAt": utc_now().isoformat(),
            },
        )
        if self.connection.flow is None:
            # The session item was not readable at $connect: the called number's flow, as connect picked it.
            try:
                name = self.load_config().flow_name_for(frame.to)
            except ConfigurationError:
                return
            self.store.set_flow(self.connection, name)
            self.connection = Connection(
                self.connection.connection_id, session_id, self.connection.attempt, name
            )

    # --- replies --------------------------------------------------------------------------------

    def _history_before(self, seq: int) -> Callable[[int | None], list[Turn]]:
        """The agent's history reader: the turns stored before this frame's turn `seq`."""

        def read(limit: int | None) -> list[Turn]:
            try:
                items = self.store.turns_before(
                    self.connection.session_id, turn_key(self.connection.attempt, seq), limit
                )
            except StorageError as exc:
                count(RelayMetric.STORAGE_FAILED)
                logger.warning("History not read: answering without it", extra={"reason": str(exc)})
                return []
            return [_turn(item) for item in items]

        return read

    def _agent(self) -> Agent:
        flow = None
        try:
            config = self.load_config()
            flow = config.flows.get(self.connection.flow or config.default)
        except ConfigurationError as exc:
            logger.error(
                "Flow configuration unavailable: using the default agent", extra={"reason": str(exc)}
            )
        agent = flow.agent if isinstance(flow, RelayFlow) and flow.agent else DEFAULT_AGENT
        return agent_for(agent)

    def reply(self, turn: CallerTurn, *, before: int) -> None:
        # Only the first handling of the caller's frame replies: the reply needs no claim of its own.
        allocation = self.store.allocate(self.connection, None, self._expires_at(), reply=True)
        context = SessionContext(
            session_id=self.connection.session_id,
            attempt=self.connection.attempt,
            flow_name=self.connection.flow,
            call_sid=self.connection.session_id.split("-", 1)[0],
            read_history=self._history_before(before),
        )
        spoken: list[str] = []
        end: End | None = None
        interrupted = gone = False
        agent = self._agent()
        actions = agent.respond(context, turn)
        # An agent may ask for a least time between its words (the scripted one does: it has no
        # generation time). The wait comes before the marker read, so the read is fresh.
        pace = float(getattr(agent, "token_interval", 0.0) or 0.0)
        posted_at: float | None = None
        skipped = 0
        try:
            for action in actions:
                if isinstance(action, End):
                    # A hand-off is a decision, not speech: it is sent even after an interruption.
                    end = action
                    break
                if interrupted:
                    # Look a little further for a hand-off, then stop the agent (a model's stream
                    # must not run to maxTokens for nobody).
                    skipped += 1
                    if skipped > MAX_ACTIONS_AFTER_INTERRUPT:
                        break
                    continue
                if pace and posted_at is not None and isinstance(action, TextToken):
                    wait = pace - (time.monotonic() - posted_at)
                    if wait > 0:
                        time.sleep(wait)
                if self._interrupted(allocation.seq):
                    interrupted = True
                    continue
                self.poster.post(self.connection.connection_id, to_frame(action).to_json())
                if isinstance(action, TextToken):
                    posted_at = time.monotonic()
                    spoken.append(action.token)
                    count(RelayMetric.TOKENS_SENT)
            if end is not None:
                self.poster.post(self.connection.connection_id, to_frame(end).to_json())
                count(RelayMetric.HANDOFF_SENT)
        except ConnectionGone:
            gone = True
            count(RelayMetric.CONNECTION_GONE)
            logger.info("Caller's WebSocket is gone: reply ended", extra={"tokens_sent": len(spoken)})
        except PostFailed as exc:
            count(RelayMetric.POST_FAILED)
            logger.error("Posting to the connection failed: reply ended", extra={"reason": str(exc)})
        except (ConfigurationError, StorageError):
            raise
        except Exception as exc:  # an agent's bug must not cost the rest of the session
            count(RelayMetric.AGENT_FAILED)
            logger.exception("Agent failed mid-reply", extra={"error_type": type(exc).__name__})
        finally:
            close = getattr(actions, "close", None)
            if callable(close):
                close()
        extra: dict[str, Any] = {"Tokens": len(spoken)}
        if gone:
            extra["ConnectionGone"] = True
        if interrupted:
            extra["StoppedByInterrupt"] = True
        self._store(allocation, "agent", "reply", "".join(spoken), **extra)
        if end is not None and not gone:
            end_allocation = self.store.allocate(self.connection, None, self._expires_at())
            handoff = to_frame(end).to_json()
            self._store(end_allocation, "agent", "end", handoff)

    def _interrupted(self, reply_seq: int) -> bool:
        try:
            return self.store.interrupted(self.connection, reply_seq)
        except StorageError as exc:
            # Better a reply the caller can still interrupt on Twilio's side than silence.
            count(RelayMetric.STORAGE_FAILED)
            logger.warning("Interrupt marker not read: going on", extra={"reason": str(exc)})
            return False
