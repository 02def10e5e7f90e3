"""What Twilio sends for one session, built from the integration tests' Twilio-shaped fixtures
(tests/integration/fixtures): the status callbacks, the recording callbacks and the chain of action
requests of a `<Connect><Conversation>` call, with the call's own sids put in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import cache
from typing import Any

from voice_webhooks.edge import routes

from tests.conftest import ROOT
from tests.reliability.harness import Callback

FIXTURES = ROOT / "tests" / "integration" / "fixtures"
STATUSES = ("call-initiated", "call-ringing", "call-answered", "call-completed")
# Fields a status callback may carry or leave out; the rest are always there.
OPTIONAL_STATUS_FIELDS = ("ConversationSid", "DialCallSid", "WorkerInitiated", "Timestamp", "CallbackSource")
ACTION_CHAINS: dict[str, tuple[str, ...]] = {
    # <Connect action> request, then (for a voicemail) the request the voicemail <Record> makes.
    "session-success": ("conversation-session-success",),
    "no-answer-voicemail": ("conversation-dialed-call-incomplete", "voicemail-recorded"),
    "no-worker-voicemail": ("conversation-no-other-participants", "voicemail-recorded"),
    "invalid-conversation": ("conversation-invalid-conversation",),
}


@cache
def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def status_template() -> dict[str, str]:
    return dict(_fixture("status_callbacks.json")["events"][0])


def recording_template(kind: str, state: str) -> dict[str, str]:
    return dict(_fixture("recording_callbacks.json")[kind][state])


def action_params(name: str) -> dict[str, str]:
    return dict(_fixture(f"action/{name}.json")["params"])


def callback(route: str, params: Mapping[str, str], label: str) -> Callback:
    return Callback(route=route, params=tuple(params.items()), label=label)


def status_event(
    sequence: int,
    status: str,
    *,
    conversation_sid: str,
    dial_call_sid: str,
    worker_initiated: str = "false",
    timestamp: datetime | None = None,
    omit: frozenset[str] = frozenset(),
) -> Callback:
    params = status_template()
    params.update(
        ConversationSid=conversation_sid,
        DialCallSid=dial_call_sid,
        WorkerInitiated=worker_initiated,
        Status=status,
        SequenceNumber=str(sequence),
    )
    if timestamp is not None:
        params["Timestamp"] = format_datetime(timestamp)
    for name in omit | ({"Timestamp"} if timestamp is None else set()):
        params.pop(name, None)
    return callback(routes.STATUS, params, f"status #{sequence} {status}")


CALL_STATUSES = ("initiated", "ringing", "in-progress", "completed")


def call_progress_event(
    sequence: int,
    call_status: str,
    *,
    call_sid: str,
    parent_call_sid: str | None = None,
    timestamp: datetime | None = None,
) -> Callback:
    """A call-progress status callback (SequenceNumber from 0): of the session's own call, or of a
    leg it dialled (`parent_call_sid`)."""
    params = {
        "AccountSid": status_template()["AccountSid"],
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": call_status,
        "Direction": "outbound-dial" if parent_call_sid else "inbound",
        "From": "+15550109999",
        "To": "+15550100100" if parent_call_sid else "+15550100001",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence),
    }
    if parent_call_sid:
        params["ParentCallSid"] = parent_call_sid
    if timestamp is not None:
        params["Timestamp"] = format_datetime(timestamp)
    if call_status == "completed":
        params.update(CallDuration="61", Duration="2")
    who = "leg" if parent_call_sid else "call"
    return callback(routes.STATUS, params, f"{who} #{sequence} {call_status}")


@dataclass(frozen=True)
class RecordingPlan:
    sid: str
    source: str
    """DialVerb: the `<Conversation record>` recording; RecordVerb: the voicemail `<Record>`."""
    final: str
    """completed, absent or failed."""
    in_progress: bool
    """Whether its `in-progress` callback is sent too (recordingStatusCallbackEvent)."""
    duration: int = 42

    def callbacks(self, call_sid: str) -> tuple[Callback, ...]:
        kind = "voicemail" if self.source == "RecordVerb" else "conversation"
        sent: list[Callback] = []
        states = (("in-progress",) if self.in_progress else ()) + (self.final,)
        for state in states:
            template = recording_template("conversation", "completed")
            if kind == "voicemail" and state in ("absent", "failed"):
                template = recording_template("voicemail", state)
            params = {
                **template,
                "CallSid": call_sid,
                "RecordingSid": self.sid,
                "RecordingUrl": template["RecordingUrl"].rsplit("/", 1)[0] + "/" + self.sid,
                "RecordingStatus": state,
                "RecordingSource": self.source,
                "RecordingChannels": "1" if kind == "voicemail" else "2",
            }
            if state == "completed":
                params["RecordingDuration"] = str(self.duration)
            elif state == "in-progress":
                params.pop("RecordingDuration", None)
            if state != "absent":
                params.pop("ErrorCode", None)
            sent.append(callback(routes.RECORDING, params, f"recording {self.sid[-4:]} {state}"))
        return tuple(sent)


def action_chain(name: str, call_sid: str, voicemail: RecordingPlan | None) -> tuple[Callback, ...]:
    chain: list[Callback] = []
    for step in ACTION_CHAINS[name]:
        params = {**action_params(step), "CallSid": call_sid}
        if step == "voicemail-recorded" and voicemail is not None:
            params["RecordingSid"] = voicemail.sid
            params["RecordingUrl"] = params["RecordingUrl"].rsplit("/", 1)[0] + "/" + voicemail.sid
        chain.append(callback(routes.ACTION, params, f"action {step}"))
    return tuple(chain)


@dataclass(frozen=True)
class SessionPlan:
    """Everything Twilio sends to one session's callback URLs (the connect request aside)."""

    call_sid: str
    conversation_sid: str
    status_events: tuple[Callback, ...]
    recordings: tuple[RecordingPlan, ...]
    actions: tuple[Callback, ...]

    @property
    def recording_callbacks(self) -> tuple[Callback, ...]:
        return tuple(sent for recording in self.recordings for sent in recording.callbacks(self.call_sid))

    @property
    def asynchronous(self) -> tuple[Callback, ...]:
        """Status and recording callbacks: separate requests Twilio may send in any order, and twice."""
        return self.status_events + self.recording_callbacks

    def in_order(self) -> list[Callback]:
        """Each callback once, in the order things happened."""
        return [*self.status_events, *self.recording_callbacks, *self.actions]


def full_session(call_sid: str) -> list[Callback]:
    """A whole voicemail call as the fault tests replay it: four status events with one arriving
    late and one twice, the `<Conversation>` recording (twice completed), the `<Connect action>`
    answered with a voicemail, the voicemail's recording, and the `<Record action>` request twice.
    Every write path of the callback routes is on it (new, older, duplicate event; new, completed,
    duplicate recording; first and repeated action request)."""
    events = _fixture("status_callbacks.json")["events"]
    status = [callback(routes.STATUS, {**event}, f"status #{event['SequenceNumber']}") for event in events]
    conversation = RecordingPlan(sid="RE" + "c" * 32, source="DialVerb", final="completed", in_progress=True)
    voicemail = RecordingPlan(sid="RE" + "d" * 32, source="RecordVerb", final="completed", in_progress=False)
    recording_in_progress, recording_completed = conversation.callbacks(call_sid)
    (voicemail_completed,) = voicemail.callbacks(call_sid)
    connect_action, record_action = action_chain("no-answer-voicemail", call_sid, voicemail)
    return [
        status[0],
        status[2],
        status[1],  # late: older than the latest
        status[2],  # twice
        recording_in_progress,
        status[3],
        connect_action,
        recording_completed,
        recording_completed,  # twice
        voicemail_completed,
        record_action,
        record_action,  # twice
    ]
