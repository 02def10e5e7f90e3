"""The connect webhook: pick the flow for the called number, open a session, answer TwiML."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from voice_webhooks.callbacks.models import ConnectRequest
from voice_webhooks.calls.sessions import mint_session_id
from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import api_base_url, callback_url
from voice_webhooks.errors import StorageError
from voice_webhooks.flows.model import FlowConfig
from voice_webhooks.runtime.observability import MetricName, count, logger, mask_phone
from voice_webhooks.runtime.settings import Settings
from voice_webhooks.storage.dynamo import expires_at, utc_now
from voice_webhooks.storage.sessions import SessionItem, SessionStore
from voice_webhooks.twiml.connect import CallbackUrls, render_connect


def callback_urls(base_url: str, session_id: str, connection_overrides: str) -> CallbackUrls:
    return CallbackUrls(
        action=callback_url(base_url, routes.ACTION, session_id, connection_overrides),
        status=callback_url(base_url, routes.STATUS, session_id, connection_overrides),
        recording=callback_url(base_url, routes.RECORDING, session_id, connection_overrides),
    )


def answer_call(
    call: ConnectRequest,
    event: APIGatewayProxyEventV2,
    config: FlowConfig,
    settings: Settings,
    store: SessionStore,
) -> str:
    flow_name = config.flow_name_for(call.to)
    flow = config.flows[flow_name]
    session_id = mint_session_id(call.call_sid)
    logger.append_keys(session_id=session_id)
    base_url = api_base_url(event, settings.public_base_url)
    twiml = render_connect(flow, callback_urls(base_url, session_id, settings.connection_overrides))

    now = utc_now()
    item = SessionItem(
        session_id=session_id,
        call_sid=call.call_sid,
        account_sid=call.account_sid,
        from_=call.from_,
        to=call.to,
        direction=call.direction,
        flow=flow_name,
        flow_kind=flow.kind,
        created_at=now.isoformat(),
        expires_at=expires_at(now, settings.event_ttl_days),
    )
    try:
        store.create_session(item)
    except StorageError as exc:
        # The caller must never hear an application error because of our bookkeeping.
        count(MetricName.SESSION_WRITE_FAILED)
        logger.error("Session item not written; answering anyway", extra={"reason": str(exc)})
    count(MetricName.CALL_ANSWERED)
    logger.info(
        "Answered call",
        extra={
            "flow": flow_name,
            "kind": flow.kind,
            "to": mask_phone(call.to),
            "from": mask_phone(call.from_),
        },
    )
    return twiml
