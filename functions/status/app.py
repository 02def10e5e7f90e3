"""POST|GET /voice/status: `<Conversation statusCallback>` events and call-progress events, each
stored once in its stream, in true order (docs/data-model.md)."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.callbacks.status import (
    Stores,
    parse_status_callback,
    record_status_callback,
    resolve_session,
)
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import empty_response
from voice_webhooks.runtime.settings import StatusSettings

edge = WebhookFunction(StatusSettings, callback_session=True)


@edge.route(routes.STATUS)
def status() -> Response[str]:
    request, settings = edge.request, edge.settings
    callback = parse_status_callback(request.params)
    stores = Stores.for_table(settings.events_table_name)
    session_id = resolve_session(request, callback, stores.sessions)
    record_status_callback(
        callback, request.twilio_params, session_id, stores, ttl_days=settings.event_ttl_days
    )
    return empty_response()


lambda_handler = edge.lambda_handler
