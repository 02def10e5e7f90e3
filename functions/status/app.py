"""POST|GET /voice/status: `<Conversation statusCallback>` events, stored once each, in true order."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.callbacks.models import StatusCallback, parse_params
from voice_webhooks.callbacks.status import record_status_callback
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import empty_response
from voice_webhooks.runtime.settings import StatusSettings
from voice_webhooks.storage.session_store import SessionStore

edge = WebhookFunction(StatusSettings, callback_session=True)


@edge.route(routes.STATUS)
def status() -> Response[str]:
    request, settings = edge.request, edge.settings
    callback = parse_params(StatusCallback, request.params)
    record_status_callback(
        callback,
        request.twilio_params,
        request.callback_session_id(),
        SessionStore(settings.events_table_name),
        ttl_days=settings.event_ttl_days,
    )
    return empty_response()


lambda_handler = edge.lambda_handler
