"""POST|GET /voice/recording: recording status callbacks. The recording's state moves forward
only; a completed recording is queued to RecordingsQueue exactly once."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.callbacks.models import RecordingStatusCallback, parse_params
from voice_webhooks.callbacks.recordings import RecordingStores, handle_recording_callback
from voice_webhooks.callbacks.status import callback_session_id
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, empty_response, webhook_app
from voice_webhooks.queues.recording_messages import RecordingPublisher
from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import get_settings

app = webhook_app()


@app.route(routes.RECORDING, method=ANY_METHOD)
def recording() -> Response[str]:
    request = current_webhook(app)
    callback = parse_params(RecordingStatusCallback, request.params)
    session_id = callback_session_id(request, callback.call_sid)
    settings = get_settings()
    handle_recording_callback(
        callback,
        session_id,
        RecordingStores.for_table(settings.require("events_table_name")),
        RecordingPublisher(settings.require("recordings_queue_url")),
        ttl_days=settings.event_ttl_days,
        # A queueing claim lasts as long as this invocation can (see recordings.py).
        remaining_ms=app.lambda_context.get_remaining_time_in_millis(),
    )
    return empty_response()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
