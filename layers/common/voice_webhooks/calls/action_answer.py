"""/voice/action, the I/O around `action_decisions.decide()`: read the session item and the
session's action items (one consistent BatchGetItem), decide, record the request as its own
`action#<step>` item (first delivery wins), fill the session's identity when it lacks it, log,
count, render. A storage or configuration failure never costs the caller the TwiML."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from voice_webhooks.callbacks.models import RelayActionRequest
from voice_webhooks.calls.action_decisions import (
    ACTION_ATTRIBUTES,
    LOOP_GUARD,
    Decision,
    Flow,
    Notice,
    decide,
    loop_guard_decision,
)
from voice_webhooks.calls.action_requests import ActionRequest, Step, read_action_request, unknown_values
from voice_webhooks.calls.sessions import owned_session_id
from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import callback_url
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.errors import ConfigurationError, StorageError
from voice_webhooks.flows.model import FlowConfig, RelayFlow
from voice_webhooks.runtime.observability import MetricName, count, logger, mask_phone
from voice_webhooks.runtime.settings import CallSettings
from voice_webhooks.storage.actions import ActionStore
from voice_webhooks.storage.dynamo import expires_at, utc_now
from voice_webhooks.storage.sessions import SessionStore
from voice_webhooks.twiml.action import ActionUrls, DialTarget, render_action

# Identity attributes the action request can restore on a session whose connect write failed.
IDENTITY = ("SessionCallSid", "AccountSid", "From", "To", "Direction", "Flow")


@dataclass(frozen=True)
class ActionStores:
    actions: ActionStore
    sessions: SessionStore

    @classmethod
    def for_table(cls, table_name: str) -> ActionStores:
        return cls(ActionStore(table_name), SessionStore(table_name))


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


def history_of(actions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The loop guard's history (`ConnectAction`, ...) from the session's action items."""
    return {ACTION_ATTRIBUTES[Step(step)]: dict(item) for step, item in actions.items()}


def _record(
    stores: ActionStores,
    session_id: str,
    request: ActionRequest,
    decision: Decision,
    entry: dict[str, Any],
    ttl_days: int,
) -> Decision:
    """Store the request as the step's item. A repeated delivery keeps its answer; a different
    request for a step already answered (a race the history read could not see) hangs up."""
    try:
        existing = stores.actions.record_action(
            session_id, request.step.value, entry, expires_at=expires_at(utc_now(), ttl_days)
        )
    except StorageError as exc:
        # The caller must never hear an application error because of our bookkeeping.
        count(MetricName.ACTION_WRITE_FAILED)
        logger.error("Action request not recorded; answering anyway", extra={"reason": str(exc)})
        return decision
    if existing is None:
        return decision
    if existing.get("Fingerprint") == request.fingerprint:
        notice = Notice.info(
            "Repeated delivery of an action request: same answer", MetricName.ACTION_REPLAYED
        )
        return replace(decision, notices=(notice,), replayed=True)
    if request.step is Step.OTHER:
        return decision
    return loop_guard_decision(request.step, "a different request was recorded first", decision.say)


def _fill_identity(
    stores: ActionStores,
    session_id: str,
    session: Mapping[str, Any] | None,
    request: ActionRequest,
    flow_name: str | None,
    ttl_days: int,
) -> None:
    """The connect handler answers TwiML even when its session write fails, so the action request
    (which carries the same call identity) fills in what is missing; nothing is written when the
    session item already has it all."""
    identity = {
        "AccountSid": request.model.account_sid,
        "From": request.model.from_,
        "To": request.model.to,
        "Direction": request.model.direction,
        "Flow": flow_name,
    }
    if session is not None and all(
        session.get(name) for name in IDENTITY if name == "SessionCallSid" or identity.get(name)
    ):
        return
    now = utc_now()
    try:
        stores.sessions.fill_identity(
            session_id, {**identity, "ExpiresAt": expires_at(now, ttl_days)}, now=now.isoformat()
        )
    except StorageError as exc:
        count(MetricName.ACTION_WRITE_FAILED)
        logger.error("Session identity not restored; answering anyway", extra={"reason": str(exc)})


def _emit(notices: tuple[Notice, ...]) -> None:
    for notice in notices:
        if notice.metric:
            count(notice.metric)
        log = {"info": logger.info, "warning": logger.warning, "error": logger.error}[notice.level]
        log(notice.message, extra=notice.extra)


def answer_action(
    webhook: WebhookRequest,
    settings: CallSettings,
    stores: ActionStores,
    load_config: Callable[[], FlowConfig],
) -> str:
    request = read_action_request(webhook)
    count(MetricName.ACTION_REQUEST)
    call_sid = request.model.call_sid
    # Before anything is read or written: a session of another call is refused (403). The edge's
    # middleware already scoped this id into the log keys.
    session_id = owned_session_id(webhook, call_sid)

    session: dict[str, Any] | None = None
    actions: dict[str, dict[str, Any]] = {}
    try:
        session, actions = stores.actions.read_session_and_actions(
            session_id, [step.value for step in ACTION_ATTRIBUTES]
        )
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
    if isinstance(request.model, RelayActionRequest) and isinstance(flow, RelayFlow):
        # Imported here: only a relay session's action needs the relay package (and its models).
        from voice_webhooks.relay.reconnect import reconnect_twiml

        reconnect = reconnect_twiml(webhook, request.model, request.fingerprint, flow, session_id, settings)
        if reconnect is not None:
            return reconnect

    decision = decide(request, flow, history_of(actions))
    # An out-of-sequence request is refused, not stored: it must not rewrite the session's history.
    if decision.outcome != LOOP_GUARD:
        entry = _entry(request, decision, flow_name, webhook.method)
        decision = _record(stores, session_id, request, decision, entry, settings.event_ttl_days)
        _fill_identity(stores, session_id, session, request, flow_name, settings.event_ttl_days)
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
        status=callback_url(base_url, routes.STATUS, session_id, overrides),
    )
    return render_action(decision.next, urls, decision.say)
