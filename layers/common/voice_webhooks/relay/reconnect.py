"""Reconnect a caller whose relay WebSocket failed or dropped while the call goes on.

Twilio reports it with the `<Connect action>` request: `SessionStatus=failed`,
`CallStatus=in-progress` and an ErrorCode of the flow's `reconnect.errorCodes` (default 39001,
64105; twilio-facts.md). API Gateway's 2-hour connection limit and its 10-minute idle timeout
end the same way. The answer is a fresh `<Connect><ConversationRelay>` for the same session with
`attempt` + 1: its turns are stored beside the earlier attempts' (`turn#<attempt>#...`), so the
agent resumes with the whole history. At most `reconnect.maxAttempts` times per session; then
the flow's `failed` outcome, as without reconnects.

The attempt that ended is the `attempt` query parameter of the action URL (signed by Twilio, set
here on every reconnect's `<Connect action>`; absent on the first connect: 1). The request is
stored as `action#connect#<attempt:02d>`, first delivery wins (`action#connect` stays the action
routing's: the request that ended the session); a repeated delivery gets the same TwiML, since the
answer depends only on the session and the attempt."""

from __future__ import annotations

from urllib.parse import quote

from voice_webhooks.callbacks.models import ConversationActionRequest, RelayActionRequest, SessionStatus
from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import SESSION_PARAM, callback_url
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.errors import ConfigurationError, StorageError
from voice_webhooks.flows.agent import effective_reconnect
from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voice_webhooks.relay.handshake import ATTEMPT_PATTERN
from voice_webhooks.relay.metrics import RelayMetric
from voice_webhooks.relay.settings import ATTEMPT_PARAM, stack_relay_url
from voice_webhooks.runtime.observability import count, logger
from voice_webhooks.runtime.settings import CallSettings
from voice_webhooks.storage.dynamo import expires_at, utc_now
from voice_webhooks.storage.relay_store import RelayStore
from voice_webhooks.twiml.connect import CallbackUrls, render_relay

IN_PROGRESS = "in-progress"


def ended_attempt(webhook: WebhookRequest) -> int:
    value = webhook.query.get(ATTEMPT_PARAM, "")
    return int(value) if ATTEMPT_PATTERN.fullmatch(value) else 1


def action_url(base_url: str, session_id: str, attempt: int, overrides: str) -> str:
    url = f"{base_url}{routes.ACTION}?{SESSION_PARAM}={quote(session_id, safe='')}&{ATTEMPT_PARAM}={attempt}"
    return f"{url}#{overrides}" if overrides else url


def wants_reconnect(model: RelayActionRequest, flow: RelayFlow, attempt: int) -> bool | None:
    """True: reconnect; False: the WebSocket dropped but the reconnects are used up; None: not a
    dropped WebSocket (the usual outcomes apply)."""
    if model.session_status != SessionStatus.FAILED or (model.call_status or "").lower() != IN_PROGRESS:
        return None
    policy = effective_reconnect(flow.reconnect, has_url=flow.url is not None)
    if str(model.error_code or "") not in policy.error_codes:
        return None
    # Attempt n ended: n - 1 reconnects happened already.
    return attempt <= policy.max_attempts


def render_reconnect(flow: RelayFlow, session_id: str, attempt: int, base_url: str, overrides: str) -> str:
    """The connect TwiML again for `attempt`, without the welcome greeting (mid-conversation)."""
    again = flow.model_copy(update={"welcome_greeting": None, "welcome_greeting_interruptible": None})
    urls = CallbackUrls(
        action=action_url(base_url, session_id, attempt, overrides),
        status=callback_url(base_url, routes.STATUS, session_id, overrides),
        recording=callback_url(base_url, routes.RECORDING, session_id, overrides),
        relay=stack_relay_url(session_id, attempt) if flow.url is None else None,
    )
    return render_relay(again, urls)


def reconnect_twiml(
    webhook: WebhookRequest,
    model: ConversationActionRequest | RelayActionRequest,
    fingerprint: str,
    flow: ConversationFlow | RelayFlow | None,
    session_id: str,
    settings: CallSettings,
) -> str | None:
    """The reconnect TwiML when this action request reports a dropped relay WebSocket that may
    be reconnected; None to let the action routing answer as usual."""
    if not isinstance(model, RelayActionRequest) or not isinstance(flow, RelayFlow):
        return None
    attempt = ended_attempt(webhook)
    decision = wants_reconnect(model, flow, attempt)
    if decision is None:
        return None
    extra = {"attempt": attempt, "error_code": model.error_code}
    if not decision:
        count(RelayMetric.RECONNECTS_EXHAUSTED)
        logger.warning("Relay WebSocket dropped again: no reconnect left, failure outcome", extra=extra)
        return None
    try:
        twiml = render_reconnect(
            flow,
            session_id,
            attempt + 1,
            webhook.base_url,
            settings.connection_overrides,
        )
    except ConfigurationError as exc:
        logger.error("Cannot reconnect the relay: failure outcome", extra={"reason": str(exc)})
        return None
    _record(settings, session_id, attempt, model, fingerprint, webhook.method)
    count(RelayMetric.RECONNECT_ANSWERED)
    logger.warning(
        "Relay WebSocket dropped mid-call: reconnecting", extra={**extra, "next_attempt": attempt + 1}
    )
    return twiml


def _record(
    settings: CallSettings,
    session_id: str,
    attempt: int,
    model: RelayActionRequest,
    fingerprint: str,
    method: str,
) -> None:
    if not settings.events_table_name:
        return
    now = utc_now()
    entry = {
        "Kind": "relay",
        "Outcome": "reconnect",
        "Next": "reconnect",
        "Attempt": attempt,
        "NextAttempt": attempt + 1,
        "SessionStatus": str(model.session_status),
        "ErrorCode": model.error_code,
        "ErrorMessage": (model.error_message or "")[:200] or None,
        "SessionDuration": model.session_duration,
        "Method": method,
        "Fingerprint": fingerprint,
        "ReceivedAt": now.isoformat(),
        "ExpiresAt": expires_at(now, settings.event_ttl_days),
    }
    try:
        RelayStore(settings.events_table_name).record_connect_action(session_id, attempt, entry)
    except StorageError as exc:
        # The caller must never lose the reconnect because of our bookkeeping.
        logger.error("Reconnect not recorded; answering anyway", extra={"reason": str(exc)})
