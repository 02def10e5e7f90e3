"""POST|GET /voice/status: `<Conversation statusCallback>` events, stored once each, in true order."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.callbacks.models import StatusCallback, parse_params
from voice_webhooks.callbacks.status import callback_session_id, record_status_callback, twilio_params
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, empty_response, webhook_app
from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import get_settings
from voice_webhooks.storage.session_store import SessionStore

app = webhook_app()


@app.route(routes.STATUS, method=ANY_METHOD)
def status() -> Response[str]:
    request = current_webhook(app)
    callback = parse_params(StatusCallback, request.params)
    session_id = callback_session_id(request, callback.call_sid)
    settings = get_settings()
    store = SessionStore(settings.require("events_table_name"))
    record_status_callback(
        callback, twilio_params(request), session_id, store, ttl_days=settings.event_ttl_days
    )
    return empty_response()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
