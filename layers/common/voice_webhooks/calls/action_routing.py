"""/voice/action: the TwiML that follows when a session, our voicemail or our hand-off ends.

Four request shapes reach this URL, told apart by the request itself (never by a guess):

| shape | what sent it | step |
| --- | --- | --- |
| `SessionStatus` present | `<Connect action>` after `<ConversationRelay>` | connect (relay) |
| `Result` present | `<Connect action>` after `<Conversation>` | connect (conversation) |
| `DialCallStatus`, no `Result` | the `<Dial action>` of a hand-off we emitted | dial |
| `RecordingSid`/`RecordingUrl`, no `Result` | the `<Record action>` of our voicemail | record |

Anything else is answered with `<Hangup/>`, logged and counted. The flow is the one the connect
handler stored on the session item; without a session item, the flow of the called number.

`decide()` is pure (request + flow + what the session item says happened before -> `Decision`);
`answer_action()` does the I/O around it: read the session item, record the request on it, log,
count, render. A storage or configuration failure never costs the caller the TwiML.

Loop guard: the steps only move forward (connect -> dial -> record) and each is stored on the session
item once (first delivery wins, with a fingerprint of its parameters). A repeated delivery of the
same request gets the same answer; a request for a step that already happened with other
parameters, or for an earlier step than one already recorded, gets `<Hangup/>`. A step never
answers with itself (`dial-incomplete` cannot dial, the record step always hangs up), so no
sequence of requests can loop."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from voice_webhooks.callbacks.models import (
    ConversationActionRequest,
    ConversationResult,
    DialCallStatus,
    RelayActionRequest,
    SessionStatus,
    parse_params,
)
from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import callback_url
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.errors import ConfigurationError, StorageError
from voice_webhooks.flows.model import ConversationFlow, FlowConfig, RelayFlow
from voice_webhooks.flows.outcomes import (
    DIAL_INCOMPLETE,
    ConversationOutcomes,
    OutcomeAction,
    RelayOutcomes,
    SayOptions,
)
from voice_webhooks.relay.reconnect import reconnect_twiml
from voice_webhooks.runtime.observability import MetricName, count, log_safe, logger, mask_phone, reduced
from voice_webhooks.runtime.settings import CallSettings
from voice_webhooks.storage.session_store import SessionStore, expires_at, utc_now
from voice_webhooks.twiml.action import (
    ActionUrls,
    DialTarget,
    EmptyResponse,
    HangUp,
    NextStep,
    TakeVoicemail,
    Transcription,
    render_action,
)

Flow = ConversationFlow | RelayFlow
Outcomes = ConversationOutcomes | RelayOutcomes
Kind = Literal["conversation", "relay"]

# HandoffData is written by an AI application: untrusted, and possibly large. Bigger than this is
# refused unread (no hand-off), like invalid JSON.
MAX_HANDOFF_BYTES = 8 * 1024
HANDOFF_TARGET_KEY = "target"
MAX_LOGGED_KEYS = 20
# The <Dial> DialCallStatus values that mean the human was reached ("answered" is <Dial>'s own value).
DIAL_REACHED = frozenset({DialCallStatus.COMPLETED.value, "answered"})
VOICEMAIL_DIAL_STATUSES = frozenset(
    {DialCallStatus.NO_ANSWER, DialCallStatus.BUSY, DialCallStatus.FAILED, DialCallStatus.CANCELED}
)
FAILED_RESULTS = frozenset({ConversationResult.FAILED_CREATE_CONVERSATION, ConversationResult.INTERNAL_ERROR})


class Step(StrEnum):
    CONNECT = "connect"
    DIAL = "dial"
    RECORD = "record"
    OTHER = "other"


# Session item attribute holding each step's request (a map, written once).
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


@dataclass(frozen=True)
class ActionRequest:
    """A parsed action request: its step, its model, and a fingerprint of what Twilio sent."""

    step: Step
    model: ConversationActionRequest | RelayActionRequest
    fingerprint: str

    @property
    def kind(self) -> Kind | None:
        if self.step is not Step.CONNECT:
            return None
        return "relay" if isinstance(self.model, RelayActionRequest) else "conversation"


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
# Reading the request


def fingerprint(pairs: tuple[tuple[str, str], ...]) -> str:
    """Same parameters, same fingerprint: tells a repeated delivery from a different request."""
    canonical = "\n".join(f"{name}={value}" for name, value in sorted(pairs))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def classify(params: Mapping[str, str]) -> Step:
    if params.get("SessionStatus") or params.get("Result"):
        return Step.CONNECT
    if params.get("DialCallStatus"):
        return Step.DIAL
    if params.get("RecordingSid") or params.get("RecordingUrl"):
        return Step.RECORD
    return Step.OTHER


def read_action_request(webhook: WebhookRequest) -> ActionRequest:
    """Parse the request (a missing or invalid field is a 400, like on every route)."""
    params = webhook.params
    step = classify(params)
    model: ConversationActionRequest | RelayActionRequest
    if params.get("SessionStatus"):
        model = parse_params(RelayActionRequest, params)
    else:
        model = parse_params(ConversationActionRequest, params)
    return ActionRequest(step=step, model=model, fingerprint=fingerprint(params.pairs))


# ---------------------------------------------------------------------------------------------------
# HandoffData


@dataclass(frozen=True)
class Handoff:
    """What HandoffData asked for. Its content is never logged nor stored: only its size, its
    top-level keys and the target key it named (when that key is one of ours)."""

    size: int
    valid: bool
    keys: tuple[str, ...] = ()
    target: str | None = None
    has_target: bool = False
    problem: str | None = None


def parse_handoff(raw: str) -> Handoff:
    size = len(raw.encode("utf-8"))
    if size > MAX_HANDOFF_BYTES:
        return Handoff(size=size, valid=False, problem=f"over {MAX_HANDOFF_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return Handoff(size=size, valid=False, problem="not valid JSON")
    if not isinstance(data, dict):
        return Handoff(size=size, valid=False, problem=f"a JSON {type(data).__name__}, not an object")
    # Key names are written by the AI application: reduced unless they are plain words.
    keys = tuple(sorted(log_safe(str(key)[:64]) for key in data)[:MAX_LOGGED_KEYS])
    if HANDOFF_TARGET_KEY not in data:
        return Handoff(size=size, valid=True, keys=keys)
    target = data[HANDOFF_TARGET_KEY]
    return Handoff(
        size=size, valid=True, keys=keys, target=target if isinstance(target, str) else None, has_target=True
    )


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


def unknown_values(request: ActionRequest) -> dict[str, str]:
    """Enumerated fields holding a value this version does not know ("answered" is a <Dial>
    value, known on the dial step)."""
    unknown = request.model.unknown_values()
    if request.step is Step.DIAL and unknown.get("DialCallStatus") in DIAL_REACHED:
        unknown.pop("DialCallStatus")
    return unknown


def _unknown_notice(request: ActionRequest) -> Notice | None:
    unknown = unknown_values(request)
    if not unknown:
        return None
    return Notice(
        "warning",
        "Action request with a value this version does not know: answering the safe default",
        MetricName.ACTION_UNKNOWN_VALUE,
        {"unknown_values": {name: log_safe(value) for name, value in unknown.items()}},
    )


def _conversation(request: ConversationActionRequest, flow: Flow | None) -> Decision:
    notices: list[Notice] = []
    if isinstance(flow, ConversationFlow):
        outcomes = flow.outcomes
    else:
        outcomes = ConversationOutcomes()
        if flow is not None:
            notices.append(Notice("warning", "Conversation action request for a relay flow: using defaults"))
    result = request.result
    extra = {"result": _logged(result), "dial_call_status": _logged(request.dial_call_status)}
    if result == ConversationResult.SESSION_SUCCESS:
        key = "session-success"
    elif request.worker_initiated and result != ConversationResult.INVALID_CONVERSATION:
        # The caller is our worker: nothing to leave a message for.
        key = "worker-initiated"
        notices.append(Notice("info", "Worker's outbound call did not connect", extra=extra))
    elif isinstance(result, ConversationResult):
        key = result.value
    else:
        key = "unknown"

    if key == "dialed-call-incomplete" and request.dial_call_status not in VOICEMAIL_DIAL_STATUSES:
        notices.append(
            Notice("warning", "dialed-call-incomplete with an unexpected DialCallStatus", extra=extra)
        )
    if key == "no-other-participants":
        notices.append(
            Notice(
                "warning",
                "Frontline routing assigned no worker before routingAssignmentTimeout: check routing",
                MetricName.NO_WORKER_ASSIGNED,
                extra,
            )
        )
    elif key == "invalid-conversation":
        notices.append(Notice("warning", "Frontline sent an invalid Conversation SID", extra=extra))
    elif key == "unknown" or result in FAILED_RESULTS:
        notices.append(
            Notice("warning", "Conversation session failed", MetricName.CONVERSATION_FAILED, extra)
        )

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
    notices: list[Notice] = []
    if isinstance(flow, RelayFlow):
        outcomes = flow.outcomes
    else:
        outcomes = RelayOutcomes()
        if flow is not None:
            notices.append(Notice("warning", "Relay action request for a conversation flow: using defaults"))
    status = request.session_status
    fields: dict[str, Any] = {
        "SessionId": request.relay_session_id,
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
                    Notice(
                        "warning",
                        "HandoffData ignored: no hand-off",
                        MetricName.HANDOFF_DATA_INVALID,
                        {"problem": handoff.problem, "handoff_bytes": handoff.size},
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
            Notice(
                "warning",
                "ConversationRelay session failed",
                MetricName.RELAY_SESSION_FAILED,
                {"error_code": request.error_code, "error_message": request.error_message},
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
                Notice(
                    "warning",
                    "HandoffData named a target that is not on the flow's list: using the default target",
                    MetricName.HANDOFF_TARGET_REFUSED,
                    {"refused_target": shown, "allowed_targets": sorted(outcomes.targets)},
                )
            )
    step = _next_step(action, outcomes, flow, target=chosen)
    if isinstance(step, DialTarget):
        notices.append(
            Notice(
                "info",
                "Handing the call off to a human",
                MetricName.HANDOFF_DIALED,
                {
                    "target": step.target,
                    "address": mask_phone(step.address),
                    "handoff_keys": list(handoff.keys),
                },
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
    notice = Notice(
        "info",
        "Dialled target did not answer",
        MetricName.DIAL_INCOMPLETE,
        {"dial_call_status": _logged(status)},
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
    notice = Notice(
        "info",
        "Voicemail recorded",
        MetricName.VOICEMAIL_LEFT,
        {"recording_sid": request.recording_sid, "recording_duration": request.recording_duration},
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
    notice = Notice(
        "warning",
        "Action request out of sequence: hanging up instead of repeating a step",
        MetricName.ACTION_LOOP_GUARD,
        {"step": step.value, "reason": reason},
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
        notice = Notice(
            "warning",
            "Unrecognised action request (no Result, SessionStatus, DialCallStatus or RecordingSid): "
            "hanging up",
            MetricName.ACTION_UNRECOGNISED,
            {"parameter_names": sorted(model.model_dump(by_alias=True, exclude_none=True))[:40]},
        )
        decision = Decision(Step.OTHER, "unrecognised", HangUp(), say, {}, (notice,))
    unknown = _unknown_notice(request)
    return decision.with_notice(unknown) if unknown else decision


# ---------------------------------------------------------------------------------------------------
# Answering (I/O around decide)


def resolve_flow(
    config: FlowConfig | None, session: Mapping[str, Any] | None, called: str | None
) -> tuple[str | None, Flow | None]:
    """The session's own flow (stored by the connect handler) if the configuration still has it;
    otherwise the flow of the called number, as the connect handler would pick it."""
    if config is None:
        return None, None
    stored = session.get("Flow") if session else None
    if isinstance(stored, str) and stored in config.flows:
        return stored, config.flows[stored]
    if stored:
        logger.warning(
            "Session's flow is no longer configured: using the called number's", extra={"flow": stored}
        )
    name = config.flow_name_for(called)
    return name, config.flows[name]


def _entry(request: ActionRequest, decision: Decision, flow_name: str | None, method: str) -> dict[str, Any]:
    step = decision.next
    return {
        **decision.fields,
        "Kind": request.kind,
        "Outcome": decision.outcome,
        "Next": step.kind,
        "Target": step.target if isinstance(step, DialTarget) else None,
        "Flow": flow_name,
        "UnknownValues": unknown_values(request) or None,
        "Method": method,
        "Fingerprint": request.fingerprint,
        "ReceivedAt": utc_now().isoformat(),
    }


def _record(
    store: SessionStore,
    session_id: str,
    request: ActionRequest,
    decision: Decision,
    entry: dict[str, Any],
    ttl_days: int,
) -> Decision:
    """Store the request on the session item. A repeated delivery keeps its answer; a different
    request for a step already answered (a race the history read could not see) hangs up."""
    try:
        existing = store.record_action(
            session_id,
            ACTION_ATTRIBUTES[request.step],
            entry,
            call_sid=request.model.call_sid,
            account_sid=request.model.account_sid,
            expires_at=expires_at(utc_now(), ttl_days),
            identity={
                "From": request.model.from_,
                "To": request.model.to,
                "Direction": request.model.direction,
                "Flow": entry.get("Flow"),
            },
        )
    except StorageError as exc:
        # The caller must never hear an application error because of our bookkeeping.
        count(MetricName.ACTION_WRITE_FAILED)
        logger.error("Action request not recorded; answering anyway", extra={"reason": str(exc)})
        return decision
    if existing is None:
        return decision
    if existing.get("Fingerprint") == request.fingerprint:
        notice = Notice(
            "info", "Repeated delivery of an action request: same answer", MetricName.ACTION_REPLAYED
        )
        return replace(decision, notices=(notice,), replayed=True)
    if request.step is Step.OTHER:
        return decision
    return loop_guard_decision(request.step, "a different request was recorded first", decision.say)


def _emit(notices: tuple[Notice, ...]) -> None:
    for notice in notices:
        if notice.metric:
            count(notice.metric)
        log = {"info": logger.info, "warning": logger.warning, "error": logger.error}[notice.level]
        log(notice.message, extra=notice.extra)


def answer_action(
    webhook: WebhookRequest,
    settings: CallSettings,
    store: SessionStore,
    load_config: Callable[[], FlowConfig],
) -> str:
    """`webhook` is the verified request; its session id was resolved (and logged) by the edge."""
    request = read_action_request(webhook)
    count(MetricName.ACTION_REQUEST)
    session_id = webhook.callback_session_id()

    session: dict[str, Any] | None = None
    try:
        session = store.get_session(session_id)
    except StorageError as exc:
        count(MetricName.ACTION_SESSION_READ_FAILED)
        logger.warning("Session item not read: deciding without it", extra={"reason": str(exc)})
    config: FlowConfig | None = None
    try:
        config = load_config()
    except ConfigurationError as exc:
        # Built-in defaults still give the caller a sensible ending.
        count(MetricName.CONFIG_UNAVAILABLE)
        logger.error("Flow configuration unavailable: using default outcomes", extra={"reason": str(exc)})
    flow_name, flow = resolve_flow(config, session, request.model.to)
    # Relay WebSocket dropped mid-call: reconnect the caller (relay/reconnect.py; issue 11).
    reconnect = reconnect_twiml(webhook, request.model, request.fingerprint, flow, session_id, settings)
    if reconnect is not None:
        return reconnect

    decision = decide(request, flow, session)
    # An out-of-sequence request is refused, not stored: it must not rewrite the session's history.
    if decision.outcome != LOOP_GUARD:
        entry = _entry(request, decision, flow_name, webhook.method)
        decision = _record(store, session_id, request, decision, entry, settings.event_ttl_days)
    _emit(decision.notices)
    if decision.next.kind == "voicemail" and not decision.replayed:
        count(MetricName.VOICEMAIL_OFFERED)
    logger.info(
        "Action answered",
        extra={
            "step": decision.step.value,
            "kind": request.kind,
            "outcome": decision.outcome,
            "next": decision.next.kind,
            "flow": flow_name,
            "from": mask_phone(request.model.from_),
            "to": mask_phone(request.model.to),
        },
    )
    base_url = webhook.base_url
    overrides = settings.connection_overrides
    urls = ActionUrls(
        action=callback_url(base_url, routes.ACTION, session_id, overrides),
        recording=callback_url(base_url, routes.RECORDING, session_id, overrides),
    )
    return render_action(decision.next, urls, decision.say)
