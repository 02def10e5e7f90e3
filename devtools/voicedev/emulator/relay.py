"""Twilio's side of a ConversationRelay WebSocket: the signed handshake to the `<ConversationRelay
url>` of the TwiML, the `setup` frame, the caller's turns (prompts with partial transcripts, DTMF,
an interrupt while the agent is still talking), and how the session ends (the caller hangs up, the
agent sends `end`, or the socket drops), which decides the `<Connect action>` request's fields.

Partial prompts are cumulative transcripts (`last: false`, each the utterance so far), then the
whole utterance with `last: true`: what the agent must answer. The agent's `text` tokens are joined
as spoken (tokens that carry their own spaces are concatenated, bare words joined with spaces)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from voicedev.emulator import params as p
from voicedev.emulator.client import signature

USER_AGENT = "Twilio.TmeWs/1.0"
# After a reply's last token, how long to wait for a frame that follows it (`end`, `play`).
FOLLOW_UP_SECONDS = 0.3
# After an interrupt, how long to watch for tokens the agent should no longer send.
AFTER_INTERRUPT_SECONDS = 1.0
# The agent must stop an interrupted reply within one token (issue 11).
TOKENS_ALLOWED_AFTER_INTERRUPT = 1
DROP_ERROR_CODE = "64105"
DROP_ERROR_MESSAGE = "WebSocket connection closed unexpectedly"
UNREACHABLE_ERROR_CODE = "39001"
UNREACHABLE_ERROR_MESSAGE = "Network connection to WebSocket server failed."


# ---------------------------------------------------------------------------------------------
# What the caller does


@dataclass(frozen=True)
class Speak:
    """The caller says `text` (partial transcripts first) and listens to the whole answer."""

    text: str
    partials: bool = True


@dataclass(frozen=True)
class Interrupt:
    """The caller asks `text`, then talks over the answer after hearing `after_tokens` tokens."""

    text: str
    after_tokens: int = 2


@dataclass(frozen=True)
class Press:
    """The caller presses a key (a `dtmf` frame) and listens to the answer."""

    digit: str


@dataclass(frozen=True)
class Drop:
    """The network drops the socket (no close frame): Twilio reports SessionStatus=failed."""


Step: TypeAlias = Speak | Interrupt | Press | Drop


@dataclass(frozen=True)
class RelayScript:
    """The caller's steps on each WebSocket connection of the call: `sessions[0]` on the first,
    `sessions[1]` after a reconnect, ... After the last step of a session the caller hangs up,
    unless the step was a Drop or the agent ended the session (`end`)."""

    sessions: tuple[tuple[Step, ...], ...]


# ---------------------------------------------------------------------------------------------
# What happened (printed as the conversation)


@dataclass(frozen=True)
class Turn:
    role: str
    """caller | agent | twilio"""
    text: str
    detail: str = ""

    def render(self) -> str:
        return f"{self.role:<6} {self.text}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Reply:
    tokens: list[str] = field(default_factory=list)
    last: bool = False
    end: dict[str, Any] | None = None
    others: list[dict[str, Any]] = field(default_factory=list)
    first_token_ms: float | None = None
    closed: bool = False

    @property
    def text(self) -> str:
        return join_tokens(self.tokens)


def join_tokens(tokens: list[str]) -> str:
    if any(token != token.strip() for token in tokens):
        return "".join(tokens).strip()
    return " ".join(token for token in tokens if token)


@dataclass
class SessionOutcome:
    """How one WebSocket session ended, as the `<Connect action>` request reports it."""

    status: str
    """completed (the caller hung up), ended (the agent sent `end`), failed (the socket)"""
    duration: float
    handoff_data: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    session_sid: str = field(default_factory=lambda: p.sid("VX"))
    first_token_ms: list[float] = field(default_factory=list)

    @property
    def caller_hung_up(self) -> bool:
        return self.status == "completed"


def open_socket(url: str, auth_token: str, timeout: float) -> ClientConnection:
    """Open the WebSocket as Twilio does: X-Twilio-Signature over the exact URL (query string
    included) with no parameters, computed by twilio's RequestValidator like a webhook's."""
    headers = {"X-Twilio-Signature": signature(auth_token, url), "User-Agent": USER_AGENT}
    return connect(
        url,
        additional_headers=headers,
        proxy=None,
        compression=None,
        open_timeout=timeout,
        ping_interval=None,
        legacy=True,
    )


def setup_frame(call: p.CallIdentity, session_sid: str, custom: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "setup",
        "sessionId": session_sid,
        "accountSid": call.account_sid,
        "parentCallSid": "",
        "callSid": call.call_sid,
        "from": call.from_,
        "to": call.to,
        "forwardedFrom": "",
        "callType": "PSTN",
        "callerName": "",
        "direction": call.direction,
        "callStatus": "RINGING",
        "customParameters": custom,
    }


class RelaySession:
    """One WebSocket session: plays `steps` and reports turns, problems and the outcome."""

    def __init__(
        self,
        ws: ClientConnection,
        call: p.CallIdentity,
        *,
        timeout: float,
        on_turn: Callable[[Turn], None],
        on_problem: Callable[[str], None],
    ) -> None:
        self.ws = ws
        self.call = call
        self.timeout = timeout
        self.on_turn = on_turn
        self.on_problem = on_problem
        self.seconds = 0.0
        """Virtual duration of the session (speech at a normal pace)."""
        self.outcome: SessionOutcome | None = None

    # -- frames ----------------------------------------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> float:
        """Send a frame; returns the perf_counter when it left."""
        self.ws.send(json.dumps(frame))
        return time.perf_counter()

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """The next frame, None when nothing came in `timeout`. Raises ConnectionClosed."""
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        try:
            frame = json.loads(raw)
        except ValueError:
            self.on_problem(f"the agent sent a frame that is not JSON: {str(raw)[:60]!r}")
            return {}
        if not isinstance(frame, dict):
            self.on_problem(f"the agent sent a frame that is not a JSON object: {str(raw)[:60]!r}")
            return {}
        return frame

    def _take(self, frame: dict[str, Any], reply: Reply, sent_at: float) -> None:
        kind = frame.get("type")
        if kind == "text":
            token = frame.get("token")
            if not isinstance(token, str):
                self.on_problem(f"a text frame without a string token: {json.dumps(frame)[:80]}")
                return
            if reply.first_token_ms is None:
                reply.first_token_ms = (time.perf_counter() - sent_at) * 1000
            reply.tokens.append(token)
            reply.last = frame.get("last") is True
        elif kind == "end":
            reply.end = frame
        elif kind in ("play", "sendDigits", "language"):
            reply.others.append(frame)
        elif frame:
            self.on_problem(f"the agent sent an unknown frame type {kind!r}")

    def _reply(self, sent_at: float) -> Reply:
        """Frames until the answer's last token (then a short wait for `end`), or `end`."""
        reply = Reply()
        wait = self.timeout
        try:
            while reply.end is None:
                frame = self._recv(wait)
                if frame is None:
                    if not reply.last and not reply.others:
                        self.on_problem(f"no answer from the agent within {self.timeout:.0f} s")
                    break
                self._take(frame, reply, sent_at)
                # After the last token, or a play/digits/language frame, more may follow (end).
                wait = FOLLOW_UP_SECONDS if (reply.last or reply.others) else self.timeout
        except ConnectionClosed:
            reply.closed = True
        return reply

    def _report(self, reply: Reply) -> None:
        for frame in reply.others:
            kind = frame.get("type")
            shown = {key: value for key, value in frame.items() if key != "type"}
            self.on_turn(Turn("agent", f"[{kind}] {json.dumps(shown, separators=(',', ':'))}"))
            self.seconds += 2
        if reply.tokens:
            detail = f"{len(reply.tokens)} tokens"
            if reply.first_token_ms is not None:
                detail += f", first after {reply.first_token_ms:.0f} ms"
            if not reply.last:
                detail += ", no last token"
            self.on_turn(Turn("agent", reply.text, detail))
            self.seconds += max(1.0, 0.3 * len(reply.tokens))
        if reply.end is not None:
            data = reply.end.get("handoffData")
            self.on_turn(Turn("agent", "[end] ends the session", f"handoffData {data}" if data else ""))

    # -- steps -----------------------------------------------------------------------------------

    def _say(self, text: str, partials: bool) -> float:
        words = text.split()
        if partials and len(words) > 2:
            for cut in range(2, len(words), 2):
                self._send(
                    {"type": "prompt", "voicePrompt": " ".join(words[:cut]), "lang": "en-US", "last": False}
                )
        self.seconds += max(1.0, 0.4 * len(words))
        count = (len(words) - 1) // 2 if partials and len(words) > 2 else 0
        partial_note = f"{count} partial prompt{'s' if count > 1 else ''} first" if count else ""
        self.on_turn(Turn("caller", text, partial_note))
        return self._send({"type": "prompt", "voicePrompt": text, "lang": "en-US", "last": True})

    def _answered(self, reply: Reply, first_token_ms: list[float]) -> bool:
        """Report the reply; False when the session is over (end, or the socket closed)."""
        self._report(reply)
        if reply.first_token_ms is not None:
            first_token_ms.append(reply.first_token_ms)
        if reply.end is not None:
            data = reply.end.get("handoffData")
            self.outcome = SessionOutcome(
                status="ended",
                duration=self.seconds,
                handoff_data=data if isinstance(data, str) else (json.dumps(data) if data else None),
            )
            if data is not None and not isinstance(data, str):
                self.on_problem("end.handoffData must be a JSON string (Twilio passes it on as HandoffData)")
            return False
        if reply.closed:
            self.on_problem("the agent closed the WebSocket: Twilio reports the session failed")
            self.outcome = SessionOutcome(
                "failed", self.seconds, error_code=DROP_ERROR_CODE, error_message=DROP_ERROR_MESSAGE
            )
            return False
        return True

    def _interrupt(self, step: Interrupt, first_token_ms: list[float]) -> bool:
        sent_at = self._say(step.text, partials=False)
        reply = Reply()
        try:
            while len(reply.tokens) < step.after_tokens and not reply.last and reply.end is None:
                frame = self._recv(self.timeout)
                if frame is None:
                    self.on_problem(f"no answer from the agent within {self.timeout:.0f} s")
                    return True
                self._take(frame, reply, sent_at)
        except ConnectionClosed:
            reply.closed = True
            return self._answered(reply, first_token_ms)
        if reply.first_token_ms is not None:
            first_token_ms.append(reply.first_token_ms)
        heard = join_tokens(reply.tokens)
        # What had already arrived when the caller spoke up was sent before the interrupt: not
        # heard (the caller stopped listening), and not tokens the agent sent after being told.
        arrived: list[str] = []
        try:
            while not reply.last and reply.end is None and (frame := self._recv(0)) is not None:
                before = len(reply.tokens)
                self._take(frame, reply, sent_at)
                arrived += reply.tokens[before:]
        except ConnectionClosed:
            reply.closed = True
            return self._answered(reply, first_token_ms)
        if reply.last or reply.end is not None:
            self.on_problem(
                f"the answer ended after {len(reply.tokens)} tokens, before the caller could interrupt it "
                "(stream tokens as they are produced)"
            )
            self._report(reply)
            return reply.end is None
        self._send(
            {
                "type": "interrupt",
                "utteranceUntilInterrupt": heard,
                "durationUntilInterruptMs": int(300 * (len(reply.tokens) - len(arrived))),
            }
        )
        late: list[str] = []
        deadline = time.perf_counter() + AFTER_INTERRUPT_SECONDS
        try:
            while (left := deadline - time.perf_counter()) > 0:
                frame = self._recv(left)
                if frame is None:
                    break
                if frame.get("type") == "text" and isinstance(frame.get("token"), str):
                    late.append(str(frame["token"]))
                elif frame.get("type") == "end":
                    self.on_problem("the agent ended the session after an interrupt")
        except ConnectionClosed:
            reply.closed = True
        heard_count = len(reply.tokens) - len(arrived)
        self.seconds += 0.3 * heard_count
        self.on_turn(
            Turn(
                "agent",
                f"{heard} [interrupted]",
                f"heard {heard_count} tokens"
                + (f"; {len(arrived)} more had arrived before the interrupt" if arrived else "")
                + f"; {len(late)} more after the interrupt",
            )
        )
        if len(late) > TOKENS_ALLOWED_AFTER_INTERRUPT:
            self.on_problem(
                f"the agent sent {len(late)} tokens after the interrupt "
                f"(must stop within {TOKENS_ALLOWED_AFTER_INTERRUPT})"
            )
        return not reply.closed or self._answered(reply, first_token_ms)

    def run(self, steps: tuple[Step, ...], setup: dict[str, Any]) -> SessionOutcome:
        first_token_ms: list[float] = []
        try:
            self._send(setup)
            for step in steps:
                if isinstance(step, Drop):
                    self.on_turn(Turn("twilio", "the WebSocket drops (no close frame)"))
                    _drop(self.ws)
                    self.outcome = SessionOutcome(
                        "failed", self.seconds, error_code=DROP_ERROR_CODE, error_message=DROP_ERROR_MESSAGE
                    )
                    break
                if isinstance(step, Interrupt):
                    if not self._interrupt(step, first_token_ms):
                        break
                    continue
                if isinstance(step, Press):
                    self.on_turn(Turn("caller", f"presses {step.digit}"))
                    self.seconds += 1
                    sent_at = self._send({"type": "dtmf", "digit": step.digit})
                else:
                    sent_at = self._say(step.text, step.partials)
                if not self._answered(self._reply(sent_at), first_token_ms):
                    break
            else:
                self.on_turn(Turn("caller", "hangs up"))
                self.ws.close(1000, "")
                self.outcome = SessionOutcome("completed", self.seconds)
        except ConnectionClosed:
            self.on_problem("the agent closed the WebSocket: Twilio reports the session failed")
            self.outcome = SessionOutcome(
                "failed", self.seconds, error_code=DROP_ERROR_CODE, error_message=DROP_ERROR_MESSAGE
            )
        finally:
            if self.outcome is not None and self.outcome.status == "ended":
                self.ws.close(1000, "")  # Twilio closes once the agent ended the session
        assert self.outcome is not None
        self.outcome.duration = self.seconds
        self.outcome.first_token_ms = first_token_ms
        return self.outcome


def _drop(ws: ClientConnection) -> None:
    """Close the TCP connection without a close frame, as a network failure does."""
    with contextlib.suppress(OSError):
        ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


def handshake_problem(exc: Exception) -> str:
    if isinstance(exc, InvalidStatus):
        body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()
        return f"the WebSocket handshake was refused: HTTP {exc.response.status_code}" + (
            f" {body[:80]}" if body else ""
        )
    if isinstance(exc, InvalidHandshake):
        return f"the WebSocket handshake failed: {exc}"
    return f"cannot open the WebSocket: {type(exc).__name__}: {exc}"
