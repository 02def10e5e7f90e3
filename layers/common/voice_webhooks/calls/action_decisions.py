"""/voice/action routing, pure: request + flow + what the session's action items say happened
before -> `Decision` (docs/action-routing.md). No I/O here: action_answer.py reads and writes.

Four request shapes reach /voice/action (action_requests.classify): `SessionStatus` (relay
`<Connect action>`), `Result` (conversation `<Connect action>`), `DialCallStatus` without `Result`
(our hand-off `<Dial action>`), `RecordingSid`/`RecordingUrl` without `Result` (our voicemail
`<Record action>`). Anything else is answered with `<Hangup/>`.

Loop guard: the steps only move forward (connect -> dial -> record) and each is stored once, as
its own `action#<step>` item (first delivery wins, with a fingerprint of its parameters). A
repeated delivery of the same request gets the same answer; a request for a step that already
happened with other parameters, or for an earlier step than one already recorded, gets
`<Hangup/>`. A step never answers with itself (`dial-incomplete` cannot dial, the record step
always hangs up), so no sequence of requests can loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from voice_webhooks.callbacks.models import (
    ConversationActionRequest,
    ConversationResult,
    DialCallStatus,
    RelayActionRequest,
    SessionStatus,
)
from voice_webhooks.calls.action_requests import (
    DIAL_REACHED,
    ActionRequest,
    Handoff,
    Step,
    parse_handoff,
    unknown_values,
)
from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voice_webhooks.flows.outcomes import (
    DIAL_INCOMPLETE,
    ConversationOutcomes,
    OutcomeAction,
    RelayOutcomes,
    SayOptions,
)
from voice_webhooks.runtime.observability import MetricName, log_safe, mask_phone, reduced
from voice_webhooks.twiml.action import (
    DialTarget,
    EmptyResponse,
    HangUp,
    NextStep,
    TakeVoicemail,
    Transcription,
)

Flow = ConversationFlow | RelayFlow
Outcomes = ConversationOutcomes | RelayOutcomes

VOICEMAIL_DIAL_STATUSES = frozenset(
    {DialCallStatus.NO_ANSWER, DialCallStatus.BUSY, DialCallStatus.FAILED, DialCallStatus.CANCELED}
)
FAILED_RESULTS = frozenset({ConversationResult.FAILED_CREATE_CONVERSATION, ConversationResult.INTERNAL_ERROR})


# The loop guard's view of the session's history: step -> the name its stored request goes by
# in `history` (action_answer.py builds it from the `action#<step>` items).
ACTION_ATTRIBUTES: dict[Step, str] = {
    Step.CONNECT: "ConnectAction",
    Step.DIAL: "DialAction",
    Step.RECORD: "RecordAction",
    Step.OTHER: "OtherAction",
}
STEP_ORDER = (Step.CONNECT, Step.DIAL, Step.RECORD)
LOOP_GUARD = "loop-guard"


@dataclass(frozen=True)
class Notice:
    """Something worth a log line (and maybe a metric), found while deciding."""

    level: Literal["info", "warning", "error"]
    message: str
    metric: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def info(cls, message: str, metric: str | None = None, **extra: Any) -> Notice:
        return cls("info", message, metric, extra)

    @classmethod
    def warning(cls, message: str, metric: str | None = None, **extra: Any) -> Notice:
        return cls("warning", message, metric, extra)


@dataclass(frozen=True)
class Decision:
    step: Step
    outcome: str
    next: NextStep
    say: SayOptions
    fields: dict[str, Any] = field(default_factory=dict)
    notices: tuple[Notice, ...] = ()
    replayed: bool = False
    """A repeated delivery: the same answer, but its outcome was already logged and counted."""

    def with_notice(self, notice: Notice) -> Decision:
        return replace(self, notices=(*self.notices, notice))


# ---------------------------------------------------------------------------------------------------
# Deciding


def _transcription(flow: Flow | None, outcomes: Outcomes) -> Transcription | None:
    """The AI part of the call went to the flow's Orchestrator conversation; the human part joins
    the same one. conversationId comes from the flow (the value the connect TwiML used), never
    from HandoffData: an AI application must not be able to file a call under another
    conversation. With only conversationConfiguration, its grouping rules find it again."""
    if not isinstance(flow, RelayFlow) or not isinstance(outcomes, RelayOutcomes):
        return None
    if not outcomes.transcribe_handoff:
        return None
    if flow.conversation_id or flow.conversation_configuration:
        return Transcription(flow.conversation_id, flow.conversation_configuration)
    return None


def _next_step(
    action: OutcomeAction, outcomes: Outcomes, flow: Flow | None, target: str | None = None
) -> NextStep:
    if action.then == "voicemail":
        return TakeVoicemail(options=outcomes.voicemail, message=action.message)
    if action.then == "dial":
        key = target or action.target or outcomes.fallback_target
        if key is not None and key in outcomes.targets:
            return DialTarget(
                target=key,
                address=outcomes.targets[key],
                options=outcomes.dial,
                message=action.message,
                transcription=_transcription(flow, outcomes),
            )
        # Unreachable with a validated flow (then=dial requires a target); a message is safer than none.
        return TakeVoicemail(options=outcomes.voicemail, message=action.message)
    return HangUp(message=action.message)


def _value(value: object) -> str | None:
    return None if value is None else str(value)


def _logged(value: object) -> str | None:
    """An enumerated value as it may be logged: an unknown one may carry caller data."""
    text = _value(value)
    return None if text is None else log_safe(text)


def _unknown_notice(request: ActionRequest) -> Notice | None:
    unknown = unknown_values(request)
    if not unknown:
        return None
    return Notice.warning(
        "Action request with a value this version does not know: answering the safe default",
        MetricName.ACTION_UNKNOWN_VALUE,
        unknown_values={name: log_safe(value) for name, value in unknown.items()},
    )


def _other_kind(flow: Flow | None, request_kind: str, flow_kind: str) -> list[Notice]:
    """The notices a decider starts with: a flow of the other kind (its defaults apply) is said."""
    if flow is None:
        return []
    return [Notice.warning(f"{request_kind} action request for a {flow_kind} flow: using defaults")]


def _conversation(request: ConversationActionRequest, flow: Flow | None) -> Decision:
    if isinstance(flow, ConversationFlow):
        outcomes, notices = flow.outcomes, []
    else:
        outcomes, notices = ConversationOutcomes(), _other_kind(flow, "Conversation", "relay")
    result = request.result
    extra = {"result": _logged(result), "dial_call_status": _logged(request.dial_call_status)}
    if result == ConversationResult.SESSION_SUCCESS:
        key = "session-success"
    elif request.worker_initiated and result != ConversationResult.INVALID_CONVERSATION:
        # The caller is our worker: nothing to leave a message for.
        key = "worker-initiated"
        notices.append(Notice.info("Worker's outbound call did not connect", **extra))
    elif isinstance(result, ConversationResult):
        key = result.value
    else:
        key = "unknown"

    if key == "dialed-call-incomplete" and request.dial_call_status not in VOICEMAIL_DIAL_STATUSES:
        notices.append(Notice.warning("dialed-call-incomplete with an unexpected DialCallStatus", **extra))
    if key == "no-other-participants":
        notices.append(
            Notice.warning(
                "Frontline routing assigned no worker before routingAssignmentTimeout: check routing",
                MetricName.NO_WORKER_ASSIGNED,
                **extra,
            )
        )
    elif key == "invalid-conversation":
        notices.append(Notice.warning("Frontline sent an invalid Conversation SID", **extra))
    elif key == "unknown" or result in FAILED_RESULTS:
        notices.append(Notice.warning("Conversation session failed", MetricName.CONVERSATION_FAILED, **extra))

    step = _next_step(outcomes.on.get(key), outcomes, flow)
    fields = {
        "Result": _value(result),
        "WorkerInitiated": request.worker_initiated,
        "DialCallStatus": _value(request.dial_call_status),
        "DialCallSid": request.dial_call_sid,
        "DialCallDuration": request.dial_call_duration,
        "RecordingSid": request.recording_sid,
        "RecordingDuration": request.recording_duration,
        "RecordingUrl": request.recording_url,
    }
    return Decision(Step.CONNECT, key, step, outcomes.say, fields, tuple(notices))


def _relay(request: RelayActionRequest, flow: Flow | None) -> Decision:
    if isinstance(flow, RelayFlow):
        outcomes, notices = flow.outcomes, []
    else:
        outcomes, notices = RelayOutcomes(), _other_kind(flow, "Relay", "conversation")
    status = request.session_status
    fields: dict[str, Any] = {
        # Twilio's VX... id, renamed: `SessionId` is the table's partition key (our session).
        "RelaySessionId": request.relay_session_id,
        "SessionStatus": _value(status),
        "SessionDuration": request.session_duration,
        "ErrorCode": request.error_code,
        "ErrorMessage": request.error_message,
    }
    step: NextStep
    if status == SessionStatus.COMPLETED:
        return Decision(Step.CONNECT, "completed", EmptyResponse(), outcomes.say, fields, tuple(notices))
    if status == SessionStatus.ENDED:
        key, step = "ended", _next_step(outcomes.on.ended, outcomes, flow)
        if request.handoff_data:
            handoff = parse_handoff(request.handoff_data)
            fields.update(HandoffDataBytes=handoff.size, HandoffDataKeys=list(handoff.keys) or None)
            if not handoff.valid:
                notices.append(
                    Notice.warning(
                        "HandoffData ignored: no hand-off",
                        MetricName.HANDOFF_DATA_INVALID,
                        problem=handoff.problem,
                        handoff_bytes=handoff.size,
                    )
                )
            else:
                key = "handoff"
                step, handoff_fields, handoff_notices = _handoff(handoff, outcomes, flow)
                fields.update(handoff_fields)
                notices.extend(handoff_notices)
    elif status == SessionStatus.FAILED:
        key, step = "failed", _next_step(outcomes.on.failed, outcomes, flow)
        notices.append(
            Notice.warning(
                "ConversationRelay session failed",
                MetricName.RELAY_SESSION_FAILED,
                error_code=request.error_code,
                error_message=request.error_message,
            )
        )
    else:
        key, step = "unknown", _next_step(outcomes.on.unknown, outcomes, flow)
    return Decision(Step.CONNECT, key, step, outcomes.say, fields, tuple(notices))


def _handoff(
    handoff: Handoff, outcomes: RelayOutcomes, flow: Flow | None
) -> tuple[NextStep, dict[str, Any], list[Notice]]:
    """Dial the target HandoffData names when it is one of the flow's keys; anything else (an
    address, an unknown key, a non-string) is refused and the default target is dialled."""
    action = outcomes.on.handoff
    notices: list[Notice] = []
    chosen: str | None = None
    refused = False
    if handoff.has_target:
        if handoff.target is not None and handoff.target in outcomes.targets:
            chosen = handoff.target
        else:
            refused = True
            shown = reduced(handoff.target[:64]) if handoff.target is not None else None
            notices.append(
                Notice.warning(
                    "HandoffData named a target that is not on the flow's list: using the default target",
                    MetricName.HANDOFF_TARGET_REFUSED,
                    refused_target=shown,
                    allowed_targets=sorted(outcomes.targets),
                )
            )
    step = _next_step(action, outcomes, flow, target=chosen)
    if isinstance(step, DialTarget):
        notices.append(
            Notice.info(
                "Handing the call off to a human",
                MetricName.HANDOFF_DIALED,
                target=step.target,
                address=mask_phone(step.address),
                handoff_keys=list(handoff.keys),
            )
        )
    return step, {"HandoffTargetRefused": refused or None}, notices


def _dial_ended(request: ConversationActionRequest, flow: Flow | None) -> Decision:
    outcomes = flow.outcomes if flow is not None else ConversationOutcomes()
    status = _value(request.dial_call_status)
    fields = {
        "DialCallStatus": status,
        "DialCallSid": request.dial_call_sid,
        "DialCallDuration": request.dial_call_duration,
    }
    if status in DIAL_REACHED:
        return Decision(Step.DIAL, "dial-completed", HangUp(), outcomes.say, fields)
    notice = Notice.info(
        "Dialled target did not answer", MetricName.DIAL_INCOMPLETE, dial_call_status=_logged(status)
    )
    step = _next_step(outcomes.on.dial_incomplete, outcomes, flow)
    return Decision(Step.DIAL, DIAL_INCOMPLETE, step, outcomes.say, fields, (notice,))


def _voicemail_left(request: ConversationActionRequest, flow: Flow | None) -> Decision:
    outcomes = flow.outcomes if flow is not None else ConversationOutcomes()
    fields = {
        "RecordingSid": request.recording_sid,
        "RecordingUrl": request.recording_url,
        "RecordingDuration": request.recording_duration,
        "Digits": request.digits,
    }
    notice = Notice.info(
        "Voicemail recorded",
        MetricName.VOICEMAIL_LEFT,
        recording_sid=request.recording_sid,
        recording_duration=request.recording_duration,
    )
    step = HangUp(message=outcomes.voicemail.thanks)
    return Decision(Step.RECORD, "voicemail-left", step, outcomes.say, fields, (notice,))


def _loop_guard(request: ActionRequest, history: Mapping[str, Any], say: SayOptions) -> Decision | None:
    if request.step is Step.OTHER:
        return None
    later = [
        step.value
        for step in STEP_ORDER[STEP_ORDER.index(request.step) + 1 :]
        if ACTION_ATTRIBUTES[step] in history
    ]
    entry = history.get(ACTION_ATTRIBUTES[request.step])
    if later:
        reason = f"the session already reached {', '.join(later)}"
    elif isinstance(entry, Mapping) and entry.get("Fingerprint") not in (None, request.fingerprint):
        reason = f"a different {request.step.value} request was already answered"
    else:
        return None
    return loop_guard_decision(request.step, reason, say)


def loop_guard_decision(step: Step, reason: str, say: SayOptions) -> Decision:
    notice = Notice.warning(
        "Action request out of sequence: hanging up instead of repeating a step",
        MetricName.ACTION_LOOP_GUARD,
        step=step.value,
        reason=reason,
    )
    return Decision(step, LOOP_GUARD, HangUp(), say, {}, (notice,))


def decide(request: ActionRequest, flow: Flow | None, history: Mapping[str, Any] | None = None) -> Decision:
    """The next TwiML step for a request, given the session's flow and the steps already stored
    on its session item (`history`: the session item, or {})."""
    say = flow.outcomes.say if flow is not None else SayOptions()
    guarded = _loop_guard(request, history or {}, say)
    if guarded is not None:
        return guarded
    model = request.model
    if isinstance(model, RelayActionRequest):
        decision = _relay(model, flow)
    elif request.step is Step.CONNECT:
        decision = _conversation(model, flow)
    elif request.step is Step.DIAL:
        decision = _dial_ended(model, flow)
    elif request.step is Step.RECORD:
        decision = _voicemail_left(model, flow)
    else:
        notice = Notice.warning(
            "Unrecognised action request (no Result, SessionStatus, DialCallStatus or RecordingSid): "
            "hanging up",
            MetricName.ACTION_UNRECOGNISED,
            parameter_names=sorted(model.model_dump(by_alias=True, exclude_none=True))[:40],
        )
        decision = Decision(Step.OTHER, "unrecognised", HangUp(), say, {}, (notice,))
    unknown = _unknown_notice(request)
    return decision.with_notice(unknown) if unknown else decision
