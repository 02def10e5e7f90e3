"""Play Twilio's part in one call: request the connect TwiML, run it verb by verb, and send every
request Twilio would send, to the URLs and with the methods the TwiML names.

Time is virtual: the call does not last a minute, but every event gets the moment it would have
happened (seconds since the call started), Twilio's `Timestamp`s are derived from it, and requests
go out in that order. Status and recording callbacks are asynchronous in Twilio (separate requests
that may arrive late, out of order, or twice); the emulator queues them and delivers the ones due
before each TwiML request, in order or, with `shuffle`, in a seeded random order, and with
`duplicates`, some of them twice (same idempotency token, as a Twilio retry)."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from voice_webhooks.edge import routes

from voicedev.emulator import params as p
from voicedev.emulator.client import SentRequest, TwilioClient
from voicedev.emulator.relay import (
    UNREACHABLE_ERROR_CODE,
    UNREACHABLE_ERROR_MESSAGE,
    RelaySession,
    SessionOutcome,
    Turn,
    handshake_problem,
    open_socket,
    setup_frame,
)
from voicedev.emulator.scenarios import AGENT_LINE, CONVERSATION_LINE, RELAY_LINE, Expect, Line, Scenario
from voicedev.emulator.twiml import (
    Connect,
    Conversation,
    ConversationRelay,
    Dial,
    Document,
    Hangup,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
    Start,
    Target,
    TwimlError,
    Unknown,
    Verb,
    parse_document,
)
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

DEFAULT_BASE_URL = "http://127.0.0.1:3000"
# The connection overrides docs/deploy.md puts on the number's status URL (`#rc=3&rp=all`).
OVERRIDES = (("rc", "3"), ("rp", "all"))
ALL_CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# Twilio stops a call whose TwiML keeps asking for more TwiML; the emulator reports it as a loop.
MAX_DOCUMENTS = 10
TWIML_KINDS = ("connect", "action", "record-action", "dial-action", "redirect")


@dataclass(frozen=True)
class EmulatorConfig:
    base_url: str = DEFAULT_BASE_URL
    auth_token: str = field(default=DEV_AUTH_TOKEN, repr=False)
    account_sid: str = DEV_ACCOUNT_SID
    connect_path: str = routes.CONNECT
    connect_method: str = "POST"
    conversation_number: str = CONVERSATION_LINE
    relay_number: str = RELAY_LINE
    agent_number: str = AGENT_LINE
    customer_number: str = p.TEST_CUSTOMER_NUMBER
    shuffle: bool = False
    duplicates: float = 0.0
    """Probability that each status / recording callback is delivered a second time."""
    drop: float = 0.0
    """Probability that each status / recording callback is lost for good (as when Twilio gives up
    after its retries): it is never sent. What Twilio knows of the call is still recorded
    (`CallResult.final_call_status`, `recordings`), for the fake REST API the reconciler asks."""
    seed: int | None = None
    handoff_data: dict[str, object] | None = None
    """Overrides every relay scenario's HandoffData (e.g. another allowed target)."""
    max_documents: int = MAX_DOCUMENTS
    timeout: float = 15.0
    strict: bool = False
    """Fail when an answer differs from what config/flows.example.json gives (else: a difference)."""
    media_api_base: str | None = None
    """Base of RecordingUrls instead of `https://api.twilio.com/2010-04-01` (the local mode's fake
    media host: `LocalMode.media_api_base`)."""
    call_status: bool = True
    """Send the call's own call-progress events to the number's "Call status changes" URL (this
    API's /voice/status, typed by hand in the Console: no `session` parameter), as docs/deploy.md
    tells users to configure it."""
    call_status_events: tuple[str, ...] | None = None
    """StatusCallbackEvent of the call. None: Twilio's defaults, `completed` only for an inbound
    call (a number's status URL takes no event list) and every event for an outbound call (created
    through the API with a StatusCallbackEvent list)."""

    @property
    def connect_url(self) -> str:
        return self.base_url.rstrip("/") + self.connect_path

    @property
    def call_status_target(self) -> Target:
        """The number's status URL as docs/deploy.md gives it (`CallStatusCallbackUrl`)."""
        return Target(url=self.base_url.rstrip("/") + routes.STATUS, method="POST", overrides=dict(OVERRIDES))


@dataclass
class Exchange:
    """One request on the wire (one attempt), and what came back."""

    t: float
    kind: str
    label: str
    sent: SentRequest
    duplicate: bool = False
    document: Document | None = None
    final: bool = True
    """False for an attempt Twilio retried (the retry follows in the log)."""

    def came_back(self) -> str:
        response = self.sent.response
        if response.error:
            return response.error
        if self.document is not None:
            return self.document.describe()
        body = " ".join(response.body.split())
        return body[:80]


@dataclass(frozen=True)
class StatusEventSent:
    session_id: str | None
    sequence_number: int
    status: str
    params: tuple[tuple[str, str], ...]
    stream: str = "conversation"
    """`conversation` (<Conversation statusCallback>) or `call:<CallSid>` (call-progress events of
    the call, or of a dialled leg)."""


@dataclass(frozen=True)
class RecordingMade:
    session_id: str | None
    recording_sid: str
    source: str
    final_status: str
    duration: int
    channels: str
    callback_events: tuple[str, ...]
    """The events sent to recordingStatusCallback (empty without a callback)."""


@dataclass
class CallResult:
    scenario: Scenario
    call_sid: str
    from_: str
    to: str
    started_at: datetime
    seed: int
    log: list[Exchange | Turn | str] = field(default_factory=list)
    documents: list[tuple[str, Document]] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    status_events: list[StatusEventSent] = field(default_factory=list)
    """`<Conversation statusCallback>` events."""
    call_events: list[StatusEventSent] = field(default_factory=list)
    """Call-progress events: the call's own (no `session`) and each dialled leg's."""
    recordings: list[RecordingMade] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    """Answers that differ from the example configuration's (configurable outcomes)."""
    relay_sessions: list[SessionOutcome] = field(default_factory=list)
    """Each ConversationRelay WebSocket session of a relay scenario, in order."""
    relay_urls: list[str] = field(default_factory=list)
    """The WebSocket URL of each of those sessions (as opened and signed)."""

    @property
    def turns(self) -> list[Turn]:
        """The conversation over the relay WebSocket (caller, agent)."""
        return [item for item in self.log if isinstance(item, Turn)]

    dropped: list[str] = field(default_factory=list)
    """Labels of the callbacks `drop` lost for good."""
    final_call_status: str = "completed"
    """The call's final state, as Twilio's REST API would report it."""
    duration: int = 0

    @property
    def exchanges(self) -> list[Exchange]:
        return [item for item in self.log if isinstance(item, Exchange)]

    @property
    def ok(self) -> bool:
        return not self.problems

    def document(self, kind: str, index: int = 0) -> Document | None:
        found = [document for label, document in self.documents if label == kind]
        return found[index] if index < len(found) else None


@dataclass
class _Delivery:
    due: float
    order: int
    kind: str
    label: str
    target: Target
    params: list[tuple[str, str]]
    token: str


class _End:
    """The call is over."""


END: Final = _End()
Outcome = Document | _End | None


class CallEmulator:
    """One call. Not shared between threads; many run at once with a shared `TwilioClient`."""

    def __init__(
        self,
        config: EmulatorConfig,
        scenario: Scenario,
        client: TwilioClient | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.scenario = scenario
        self.client = client or TwilioClient(config.auth_token, read_timeout=config.timeout)
        self.seed = seed if seed is not None else secrets.randbits(32)
        self.rng = random.Random(self.seed)
        self._drop_rng = random.Random(self.seed ^ 0x5EED)
        self.t = 0.0
        self._pending: list[_Delivery] = []
        self._order = 0
        self._caller_gone = False
        self._call_sequence = 0
        line = {
            Line.CONVERSATION: config.conversation_number,
            Line.RELAY: config.relay_number,
            Line.AGENT: config.agent_number,
        }[scenario.line]
        if scenario.direction == "inbound":
            from_, to = config.customer_number, line
        else:  # a worker calls the customer out of the product's number
            from_, to = line, config.customer_number
        self.call = p.CallIdentity(
            account_sid=config.account_sid,
            call_sid=p.emulated_call_sid(),
            from_=from_,
            to=to,
            direction=scenario.direction,
        )
        self.result = CallResult(
            scenario=scenario,
            call_sid=self.call.call_sid,
            from_=from_,
            to=to,
            # Whole seconds: Twilio's Timestamps have no fraction, and offsets stay exact.
            started_at=datetime.now(UTC).replace(microsecond=0),
            seed=self.seed,
        )

    # ---------------------------------------------------------------------------------------------

    def run(self) -> CallResult:
        target = Target(url=self.config.connect_url, method=self.config.connect_method)
        self._call_progress_before_answer()
        document = self._fetch(
            "connect", target, self.call.standard("ringing"), "CallStatus=ringing " + self._who()
        )
        if isinstance(document, Document):
            self._run(document)
        else:
            self.result.final_call_status = "failed"  # no TwiML: Twilio's application error
        self._call_progress_end()
        self._flush(None)
        self.result.duration = round(self.t)
        self._check()
        return self.result

    # --- the call's own call-progress events ---------------------------------------------------

    def _call_events(self) -> tuple[str, ...]:
        if not self.config.call_status:
            return ()
        if self.config.call_status_events is not None:
            return self.config.call_status_events
        return ("completed",) if self.call.direction == "inbound" else ALL_CALL_EVENTS

    def _call_progress_before_answer(self) -> None:
        """An outbound call is initiated and rings before Twilio fetches its TwiML (on answer),
        so those events are sent before any session exists; an inbound call rings as it arrives."""
        events = self._call_events()
        self._call_sequence = 0
        outbound = self.call.direction != "inbound"
        moments = {
            "initiated": -4.0,
            "ringing": -3.0 if outbound else 0.0,
            "answered": 0.0 if outbound else 0.5,
        }
        for event in ("initiated", "ringing", "answered"):
            if event in events and (outbound or event != "initiated"):
                self._schedule_call_event(self.call, p.CALL_PROGRESS_STATUS[event], moments[event])

    def _call_progress_end(self) -> None:
        if "completed" in self._call_events():
            end = self.t + 0.5
            self._schedule_call_event(self.call, "completed", end, duration=round(end))

    def _schedule_call_event(
        self,
        call: p.CallIdentity,
        call_status: str,
        moment: float,
        *,
        duration: int | None = None,
        parent: str | None = None,
        target: Target | None = None,
        sequence: int | None = None,
    ) -> None:
        if sequence is None:
            sequence = self._call_sequence
            self._call_sequence += 1
        params = call.call_progress(
            call_status, sequence, p.rfc2822(self._at(moment)), duration=duration, parent_call_sid=parent
        )
        stream = f"call:{call.call_sid}"
        self.result.call_events.append(StatusEventSent(None, sequence, call_status, tuple(params), stream))
        where = "leg" if parent else "call"
        self._schedule(
            moment,
            "call-status",
            f"{where} #{sequence} {call_status}",
            target or self.config.call_status_target,
            params,
        )

    def _who(self) -> str:
        return f"From={self.call.from_} To={self.call.to} Direction={self.call.direction}"

    def _note(self, text: str) -> None:
        self.result.log.append(text)

    def _problem(self, text: str) -> None:
        self.result.problems.append(text)

    def _run(self, document: Document) -> None:
        current: Document | None = document
        while current is not None:
            following: Document | None = None
            for verb in current.verbs:
                outcome = self._execute(verb)
                if isinstance(outcome, _End):
                    return
                if isinstance(outcome, Document):
                    following = outcome
                    break
            else:
                self._note("end of the TwiML: Twilio ends the call")
                return
            current = following

    def _execute(self, verb: Verb) -> Outcome:
        # Callbacks due by now go out first, so that the printed story stays in time order.
        self._flush(self.t)
        if isinstance(verb, Say):
            self._note(f"caller hears: {verb.text!r}")
            self.t += max(1.0, round(len(verb.text.split()) * 0.4, 1))
            return None
        if isinstance(verb, Play):
            self._note("caller hears a recording (<Play>)")
            self.t += 5
            return None
        if isinstance(verb, Pause):
            self.t += verb.length
            return None
        if isinstance(verb, Hangup):
            self._note("<Hangup>: Twilio ends the call")
            return END
        if isinstance(verb, Reject):
            self._note(f"<Reject reason={verb.reason}>: Twilio ends the call")
            self.result.final_call_status = "busy" if verb.reason == "busy" else "no-answer"
            return END
        if isinstance(verb, Redirect):
            return (
                self._fetch("redirect", verb.target, self.call.standard("in-progress"), "<Redirect>") or END
            )
        if isinstance(verb, Record):
            return self._record(verb)
        if isinstance(verb, Connect):
            return self._connect(verb)
        if isinstance(verb, Start):
            for tag, attrs in verb.children:
                shown = " ".join(f"{name}={value}" for name, value in attrs.items())
                self._note(f"<Start><{tag}> {shown}".rstrip() + " (no request to us)")
            return None
        if isinstance(verb, Dial):
            return self._dial(verb)
        assert isinstance(verb, Unknown)
        self._note(f"<{verb.tag}> is not emulated: skipped")
        return None

    # --- <Connect> --------------------------------------------------------------------------------

    def _connect(self, connect: Connect) -> Outcome:
        session_id = connect.action.query.get("session")
        noun = connect.noun
        if isinstance(noun, Conversation):
            if self.scenario.conversation is None:
                self._problem("the server answered <Conversation>; this scenario expects <ConversationRelay>")
                return END
            session_id = session_id or (
                noun.status_callback.query.get("session") if noun.status_callback else None
            )
            self._remember_session(session_id)
            return self._conversation(connect, noun, session_id)
        if isinstance(noun, ConversationRelay):
            if self.scenario.relay_script is not None:
                self._remember_session(session_id)
                return self._relay_socket(connect, noun)
            if self.scenario.relay is None:
                self._problem("the server answered <ConversationRelay>; this scenario expects <Conversation>")
                return END
            self._remember_session(session_id)
            return self._relay(connect)
        self._problem(f"<Connect><{noun.tag}> is not emulated")
        return END

    def _remember_session(self, session_id: str | None) -> None:
        if session_id and session_id not in self.result.session_ids:
            self.result.session_ids.append(session_id)

    def _conversation(self, connect: Connect, conversation: Conversation, session_id: str | None) -> Outcome:
        plan = self.scenario.conversation
        assert plan is not None
        start = self.t
        conversation_sid = p.sid("CH")
        dial_call_sid = p.sid("CA") if plan.dial_call_status else None
        events: list[tuple[str, float]] = []
        answered_at: float | None = None
        ringing_at: float | None = None
        if plan.dial_call_status is None:
            # No leg to a worker: routing gave up (routingAssignmentTimeout) or the lookup failed.
            waited = conversation.routing_assignment_timeout if plan.result == "no-other-participants" else 1
            end = start + waited
        elif plan.dial_call_status in ("busy", "failed"):
            events.append(("call-initiated", start + 1))
            end = start + 2
        else:
            events.append(("call-initiated", start + 1))
            ringing_at = start + 2
            events.append(("call-ringing", ringing_at))
            if plan.dial_call_status == "completed":
                answered_at = ringing_at + plan.ring_seconds
                events.append(("call-answered", answered_at))
                end = answered_at + plan.talk_seconds
            elif plan.dial_call_status == "no-answer":
                end = start + 1 + conversation.inbound_timeout
            else:  # canceled
                end = ringing_at + plan.ring_seconds
        if plan.dial_call_status is not None:
            events.append(("call-completed", end))

        if conversation.status_callback is not None:
            sequence = 0
            for status, moment in events:
                if status not in conversation.status_events:
                    continue
                sequence += 1
                event_params = [
                    ("AccountSid", self.call.account_sid),
                    ("ConversationSid", conversation_sid),
                    ("DialCallSid", dial_call_sid or ""),
                    ("WorkerInitiated", _bool(plan.worker_initiated)),
                    ("Status", status),
                    ("SequenceNumber", str(sequence)),
                    ("Timestamp", p.rfc2822(self._at(moment))),
                    ("CallbackSource", p.CALLBACK_SOURCE),
                ]
                self.result.status_events.append(
                    StatusEventSent(session_id, sequence, status, tuple(event_params))
                )
                self._schedule(
                    moment, "status", f"#{sequence} {status}", conversation.status_callback, event_params
                )

        recording: list[tuple[str, str]] = []
        recording_start = ringing_at if conversation.records_from_ringing else answered_at
        if conversation.records and recording_start is not None:
            recording = self._recording(
                session_id=session_id,
                started=recording_start,
                ended=end,
                final=plan.recording_final,
                source="DialVerb",
                channels=conversation.recording_channels,
                callback=conversation.recording_callback,
                events=conversation.recording_events,
            )

        self.t = end
        hung_up = plan.caller_hangs_up and plan.dial_call_status == "completed"
        action_params = self.call.standard("completed" if hung_up else "in-progress")
        action_params += [("Result", plan.result), ("WorkerInitiated", _bool(plan.worker_initiated))]
        if plan.dial_call_status is not None:
            duration = round(end - answered_at) if answered_at is not None else 0
            action_params += [
                ("DialCallStatus", plan.dial_call_status),
                ("DialCallSid", dial_call_sid or ""),
                ("DialCallDuration", str(duration)),
            ]
        action_params += recording
        label = f"Result={plan.result}" + (
            f" DialCallStatus={plan.dial_call_status}" if plan.dial_call_status else ""
        )
        return self._after_session(connect, action_params, label, hung_up)

    def _relay(self, connect: Connect) -> Outcome:
        plan = self.scenario.relay
        assert plan is not None
        self.t += plan.duration
        action_params = self.call.standard("completed" if plan.caller_hung_up else "in-progress")
        action_params += [
            ("SessionId", p.sid("VX")),
            ("SessionStatus", plan.session_status),
            ("SessionDuration", str(plan.duration)),
        ]
        label = f"SessionStatus={plan.session_status}"
        handoff = self.config.handoff_data if self.config.handoff_data is not None else plan.handoff_data
        if plan.session_status == "ended" and handoff is not None:
            data = json.dumps(handoff, separators=(",", ":"))
            action_params.append(("HandoffData", data))
            label += f" HandoffData={data}"
        if plan.error_code:
            action_params += [("ErrorCode", plan.error_code), ("ErrorMessage", plan.error_message or "")]
            label += f" ErrorCode={plan.error_code}"
        return self._after_session(connect, action_params, label, plan.caller_hung_up)

    def _relay_socket(self, connect: Connect, relay: ConversationRelay) -> Outcome:
        """A relay session over the WebSocket of `<ConversationRelay url>`, then the action request
        that reports how it ended."""
        script = self.scenario.relay_script
        assert script is not None
        attempt = len(self.result.relay_sessions) + 1
        if attempt > len(script.sessions):
            self._problem(
                f"<ConversationRelay> #{attempt}: the scenario plans {len(script.sessions)} session(s)"
            )
            return END
        url = relay.attrs.get("url", "")
        if _is_loopback(self.config.base_url) and not _is_loopback(url):
            # Against the local mode nothing leaves the machine: the flow must use the local agent.
            self._problem(
                f"<ConversationRelay url={url!r}> is not the local WebSocket API: call a number whose "
                "relay flow has no url (the stack's own agent; config/flows.example.json: --agent-number)"
            )
            return END
        self._check_relay_url(url, attempt)
        self.result.relay_urls.append(url)
        self._note(f"opens the WebSocket {url}" + (" (reconnect)" if attempt > 1 else ""))
        try:
            ws = open_socket(url, self.config.auth_token, self.config.timeout)
        except Exception as exc:  # refused, unreachable: Twilio reports the session failed
            self._problem(handshake_problem(exc))
            outcome = SessionOutcome(
                "failed", 0, error_code=UNREACHABLE_ERROR_CODE, error_message=UNREACHABLE_ERROR_MESSAGE
            )
        else:
            greeting = relay.attrs.get("welcomeGreeting")
            if greeting and attempt == 1:
                self.result.log.append(Turn("agent", greeting, "welcomeGreeting, spoken by Twilio"))
            session = RelaySession(
                ws,
                self.call,
                timeout=self.config.timeout,
                on_turn=self.result.log.append,
                on_problem=self._problem,
            )
            with ws:
                outcome = session.run(
                    script.sessions[attempt - 1], setup_frame(self.call, p.sid("VX"), dict(relay.parameters))
                )
        self.result.relay_sessions.append(outcome)
        self.t += outcome.duration
        action_params = self.call.standard("completed" if outcome.caller_hung_up else "in-progress")
        action_params += [
            ("SessionId", outcome.session_sid),
            ("SessionStatus", outcome.status),
            ("SessionDuration", str(round(outcome.duration))),
        ]
        label = f"SessionStatus={outcome.status}"
        if outcome.handoff_data is not None:
            action_params.append(("HandoffData", outcome.handoff_data))
            label += f" HandoffData={outcome.handoff_data}"
        if outcome.error_code:
            action_params += [
                ("ErrorCode", outcome.error_code),
                ("ErrorMessage", outcome.error_message or ""),
            ]
            label += f" ErrorCode={outcome.error_code}"
        return self._after_session(connect, action_params, label, outcome.caller_hung_up)

    def _check_relay_url(self, url: str, attempt: int) -> None:
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            self._problem(f"<ConversationRelay url={url!r}> is not a WebSocket URL")
            return
        query = dict(parse_qsl(parts.query))
        if query.get("attempt", "1") != str(attempt):
            self._problem(
                f"WebSocket #{attempt}: attempt={query.get('attempt')!r} in {url}, expected {attempt}"
            )
        if self.result.relay_urls:
            first = dict(parse_qsl(urlsplit(self.result.relay_urls[0]).query)).get("session")
            if query.get("session") != first:
                self._problem(
                    f"the reconnect's session {query.get('session')!r} is not the call's ({first!r})"
                )

    def _after_session(
        self, connect: Connect, action_params: list[tuple[str, str]], label: str, hung_up: bool
    ) -> Outcome:
        document = self._fetch("action", connect.action, action_params, label)
        if document is None:
            return END
        if hung_up:
            self._caller_gone = True
            self._note("the caller has hung up: Twilio does not run this answer")
            return END
        return document

    # --- recordings -------------------------------------------------------------------------------

    def _recording(
        self,
        *,
        session_id: str | None,
        started: float,
        ended: float,
        final: str,
        source: str,
        channels: str,
        callback: Target | None,
        events: tuple[str, ...],
    ) -> list[tuple[str, str]]:
        """Schedule a recording's callbacks; returns the recording fields of the action request."""
        recording_sid = p.sid("RE")
        url = p.recording_url(self.call.account_sid, recording_sid, self.config.media_api_base)
        duration = round(ended - started) if final == "completed" else 0
        sent: list[str] = []
        if callback is not None:
            base = [
                ("AccountSid", self.call.account_sid),
                ("CallSid", self.call.call_sid),
                ("RecordingSid", recording_sid),
                ("RecordingUrl", url),
            ]
            tail = [
                ("RecordingChannels", channels),
                ("RecordingSource", source),
                ("RecordingStartTime", p.rfc2822(self._at(started))),
            ]
            if "in-progress" in events:
                sent.append("in-progress")
                self._schedule(
                    started,
                    "recording",
                    f"{_short_sid(recording_sid)} in-progress",
                    callback,
                    [*base, ("RecordingStatus", "in-progress"), *tail],
                )
            if final in events:
                sent.append(final)
                # Processing takes a moment after the recording stops.
                self._schedule(
                    ended + 2,
                    "recording",
                    f"{_short_sid(recording_sid)} {final} {duration}s",
                    callback,
                    [*base, ("RecordingStatus", final), ("RecordingDuration", str(duration)), *tail],
                )
        self.result.recordings.append(
            RecordingMade(session_id, recording_sid, source, final, duration, channels, tuple(sent))
        )
        return [("RecordingSid", recording_sid), ("RecordingUrl", url), ("RecordingDuration", str(duration))]

    def _record(self, record: Record) -> Outcome:
        caller = self.scenario.caller
        seconds = min(caller.voicemail_seconds, record.max_length)
        started = self.t + 1  # the beep
        session_id = record.action.query.get("session") or (
            record.recording_callback.query.get("session") if record.recording_callback else None
        )
        if seconds <= 0:
            silence = int(record.attrs.get("timeout", "5") or 5)
            fields = self._recording(
                session_id=session_id,
                started=started,
                ended=started + silence,
                final="absent",
                source="RecordVerb",
                channels="1",
                callback=record.recording_callback,
                events=record.recording_events,
            )
            del fields
            self._flush(started)
            self.t = started + silence
            self._note(
                "the caller stays silent: empty recording, so no action request; Twilio runs the next verb"
            )
            return None
        fields = self._recording(
            session_id=session_id,
            started=started,
            ended=started + seconds,
            final="completed",
            source="RecordVerb",
            channels="1",
            callback=record.recording_callback,
            events=record.recording_events,
        )
        self._flush(started)
        self._note(f"the caller leaves a {seconds}s message and presses {caller.finish_key}")
        self.t = started + seconds
        action_params = self.call.standard("in-progress")
        action_params += [*_reorder_record_fields(fields), ("Digits", caller.finish_key)]
        label = (
            f"RecordingSid={_short_sid(fields[0][1])} RecordingDuration={seconds} Digits={caller.finish_key}"
        )
        return self._fetch("record-action", record.action, action_params, label) or END

    # --- <Dial> -----------------------------------------------------------------------------------

    def _dial(self, dial: Dial) -> Outcome:
        if not dial.targets:
            self._problem("<Dial> without a number")
            return END
        caller = self.scenario.caller
        dial_sid = p.sid("CA")
        shown = ", ".join(value for _, value in dial.targets)
        started = self.t
        if caller.dial_answered:
            self.t += 5 + caller.dial_talk_seconds
            status, duration = "completed", caller.dial_talk_seconds
            self._note(f"<Dial> {shown}: answered, {duration}s conversation")
        else:
            self.t += int(dial.attrs.get("timeout", "30") or 30)
            status, duration = "no-answer", 0
            self._note(f"<Dial> {shown}: no answer")
        self._leg_events(dial, dial_sid, started, status, duration)
        if dial.action is None:
            return None
        action_params = self.call.standard("in-progress")
        action_params += [
            ("DialCallStatus", status),
            ("DialCallSid", dial_sid),
            ("DialCallDuration", str(duration)),
        ]
        return self._fetch("dial-action", dial.action, action_params, f"DialCallStatus={status}") or END

    def _leg_events(self, dial: Dial, leg_sid: str, started: float, status: str, duration: int) -> None:
        """The dialled leg's call-progress events, to the noun's statusCallback (the first noun is
        the one that rings here)."""
        noun = dial.nouns[0] if dial.nouns else None
        if noun is None or noun.status_callback is None:
            return
        leg = p.CallIdentity(
            account_sid=self.call.account_sid,
            call_sid=leg_sid,
            from_=dial.attrs.get("callerId") or self.call.to,
            to=noun.value,
            direction="outbound-dial",
        )
        answered = status == "completed"
        plan = [("initiated", "initiated", started), ("ringing", "ringing", started + 1)]
        if answered:
            plan.append(("answered", "in-progress", started + 5))
        plan.append(("completed", status, self.t))
        sequence = 0
        for event, call_status, moment in plan:
            if event not in noun.status_events:
                continue
            self._schedule_call_event(
                leg,
                call_status,
                moment,
                duration=duration if event == "completed" else None,
                parent=self.call.call_sid,
                target=noun.status_callback,
                sequence=sequence,
            )
            sequence += 1

    # --- requests ---------------------------------------------------------------------------------

    def _at(self, moment: float) -> datetime:
        return self.result.started_at + timedelta(seconds=moment)

    def _schedule(
        self, due: float, kind: str, label: str, target: Target, params: list[tuple[str, str]]
    ) -> None:
        self._order += 1
        self._pending.append(_Delivery(due, self._order, kind, label, target, params, secrets.token_hex(16)))

    def _flush(self, until: float | None) -> None:
        """Deliver the callbacks due by `until` (all when None), as Twilio's network would."""
        due = sorted(
            (item for item in self._pending if until is None or item.due <= until),
            key=lambda item: (item.due, item.order),
        )
        if not due:
            return
        self._pending = [item for item in self._pending if not (until is None or item.due <= until)]
        if self.config.drop > 0:
            # Its own generator: the same seed shuffles and duplicates the same way with or without
            # drops.
            lost = [item for item in due if self._drop_rng.random() < self.config.drop]
            self.result.dropped.extend(f"{item.kind} {item.label}" for item in lost)
            due = [item for item in due if item not in lost]
        if self.config.shuffle:
            self.rng.shuffle(due)
        batch: list[tuple[_Delivery, bool]] = [(item, False) for item in due]
        if self.config.duplicates > 0:
            for item in due:
                if self.rng.random() < self.config.duplicates:
                    position = next(index for index, (entry, _) in enumerate(batch) if entry is item)
                    batch.insert(self.rng.randint(position + 1, len(batch)), (item, True))
        for item, duplicate in batch:
            attempts = self.client.send_with_retries(item.target, item.params, idempotency_token=item.token)
            for index, attempt in enumerate(attempts, start=1):
                final = index == len(attempts)
                self.result.log.append(
                    Exchange(item.due, item.kind, item.label, attempt, duplicate, final=final)
                )

    def _fetch(self, kind: str, target: Target, params: list[tuple[str, str]], label: str) -> Document | None:
        """A TwiML request: Twilio waits for the answer and runs it."""
        self._flush(self.t)
        if len(self.result.documents) >= self.config.max_documents:
            self._problem(f"more than {self.config.max_documents} TwiML documents in one call: a loop?")
            return None
        attempts = self.client.send_with_retries(target, params)
        exchanges = [
            Exchange(self.t, kind, label, attempt, final=index == len(attempts))
            for index, attempt in enumerate(attempts, start=1)
        ]
        self.result.log.extend(exchanges)
        last = exchanges[-1]
        response = last.sent.response
        where = f"{kind} {target.method} {_path(target.url)}"
        if response.status != 200:
            self._problem(
                f"{where}: {response.error or response.status}; the caller would hear Twilio's error message"
            )
            return None
        content_type = response.headers.get("content-type", "")
        if "xml" not in content_type:
            self._problem(f"{where}: content type {content_type!r} is not TwiML (text/xml)")
        try:
            document = parse_document(response.body, target.url)
        except TwimlError as exc:
            self._problem(f"{where}: {exc}")
            return None
        last.document = document
        self.result.documents.append((kind, document))
        return document

    # --- checks -----------------------------------------------------------------------------------

    def _check(self) -> None:
        for exchange in self.result.exchanges:
            response = exchange.sent.response
            if exchange.kind in TWIML_KINDS or not exchange.final:
                continue  # TwiML answers are checked in _fetch; a retried attempt by its retry
            if not response.ok:
                self._problem(
                    f"{exchange.kind} {exchange.label}: {response.error or response.status}"
                    + (" (duplicate)" if exchange.duplicate else "")
                )
        connect = self.result.document("connect")
        if connect is None:
            return
        if not connect.find(Connect):
            self._problem("the connect TwiML has no <Connect>")
            return
        action = self.result.document("action")
        if action is None:
            self._problem("no answer to the session's <Connect action> request")
            return
        scenario = self.scenario
        if scenario.must is not None:
            self.result.problems.extend(shape_problems(scenario.must, action))
        differences = shape_problems(scenario.expect, action)
        if self.config.strict:
            self.result.problems.extend(differences)
        else:
            self.result.differences.extend(differences)
        voicemail_end = self.result.document("record-action")
        if voicemail_end is not None and (
            voicemail_end.find(Record) or voicemail_end.find(Connect) or voicemail_end.find(Dial)
        ):
            shown = voicemail_end.describe()
            self._problem(f"the voicemail's action answer must end the call (never loop), got: {shown}")


def shape_problems(expect: Expect, action: Document) -> list[str]:
    """How the answer to the session's action request differs from `expect` (empty: it matches)."""
    has = {kind: bool(action.find(kind)) for kind in (Say, Record, Dial, Connect, Redirect)}
    shown = action.describe()
    continues = has[Record] or has[Dial] or has[Connect] or has[Redirect]
    if expect is Expect.HANGUP and continues:
        return [f"expected the call to end, got: {shown}"]
    if expect is Expect.MESSAGE and (not has[Say] or continues):
        return [f"expected a message then hang up, got: {shown}"]
    if expect is Expect.EMPTY and action.verbs:
        return [f"expected an empty <Response/>, got: {shown}"]
    if expect is Expect.HANDOFF and not has[Dial]:
        return [f"expected <Dial> to a human, got: {shown}"]
    if expect is Expect.FALLBACK and (not has[Say] or not (has[Dial] or has[Record])):
        return [f"expected an apology then <Dial> or <Record>, got: {shown}"]
    if expect is Expect.VOICEMAIL and not has[Record]:
        return [f"expected voicemail (<Record>), got: {shown}"]
    if expect is Expect.RECONNECT and not any(
        isinstance(verb, Connect) and isinstance(verb.noun, ConversationRelay) for verb in action.verbs
    ):
        return [f"expected a fresh <Connect><ConversationRelay>, got: {shown}"]
    return []


def _reorder_record_fields(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # <Record>'s action request names them RecordingUrl, RecordingDuration, RecordingSid.
    by_name = dict(fields)
    return [(name, by_name[name]) for name in ("RecordingUrl", "RecordingDuration", "RecordingSid")]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _short_sid(value: str) -> str:
    return value[:8] + "\u2026" + value[-4:]


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def run_call(
    config: EmulatorConfig, scenario: Scenario, client: TwilioClient | None = None, *, seed: int | None = None
) -> CallResult:
    return CallEmulator(config, scenario, client, seed=seed).run()
