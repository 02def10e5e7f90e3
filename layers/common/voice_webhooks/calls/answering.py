"""The connect webhook: pick the flow for the called number, open a session, answer TwiML."""

from __future__ import annotations

from dataclasses import replace

from voice_webhooks.callbacks.models import ConnectRequest
from voice_webhooks.calls.sessions import mint_session_id
from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import callback_url
from voice_webhooks.errors import StorageError
from voice_webhooks.flows.model import FlowConfig, RelayFlow
from voice_webhooks.runtime.observability import MetricName, count, logger, mask_phone
from voice_webhooks.runtime.settings import CallSettings
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
    base_url: str,
    config: FlowConfig,
    settings: CallSettings,
    store: SessionStore,
) -> str:
    """`base_url`: where Twilio reaches this API (`WebhookRequest.base_url`)."""
    flow_name = config.flow_name_for(call.to)
    flow = config.flows[flow_name]
    session_id = mint_session_id(call.call_sid)
    logger.append_keys(session_id=session_id)
    urls = callback_urls(base_url, session_id, settings.connection_overrides)
    if isinstance(flow, RelayFlow) and flow.url is None:
        # Imported here: a conversation flow's cold start never builds the relay settings model.
        from voice_webhooks.relay.settings import stack_relay_url

        urls = replace(urls, relay=stack_relay_url(session_id, attempt=1))
    twiml = render_connect(flow, urls)

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
