"""POST|GET /voice/status: `<Conversation statusCallback>` events and call-progress events, each
stored once in its stream, in true order (docs/data-model.md)."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.callbacks.status import (
    Stores,
    parse_status_callback,
    record_status_callback,
    resolve_session,
    twilio_params,
)
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, empty_response, webhook_app
from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import get_settings

app = webhook_app()


@app.route(routes.STATUS, method=ANY_METHOD)
def status() -> Response[str]:
    request = current_webhook(app)
    callback = parse_status_callback(request.params)
    settings = get_settings()
    stores = Stores.for_table(settings.require("events_table_name"))
    session_id = resolve_session(request, callback, stores.sessions)
    record_status_callback(
        callback, twilio_params(request), session_id, stores, ttl_days=settings.event_ttl_days
    )
    return empty_response()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
