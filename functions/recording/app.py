"""POST|GET /voice/recording: recording status callbacks. The recording's state moves forward
only; a completed recording is queued to RecordingsQueue exactly once."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.callbacks.models import RecordingStatusCallback, parse_params
from voice_webhooks.callbacks.recordings import RecordingStores, handle_recording_callback
from voice_webhooks.calls.sessions import owned_session_id
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import empty_response
from voice_webhooks.queues.recording_messages import RecordingPublisher
from voice_webhooks.runtime.settings import RecordingSettings

edge = WebhookFunction(RecordingSettings, callback_session=True)


@edge.route(routes.RECORDING)
def recording() -> Response[str]:
    request, settings = edge.request, edge.settings
    callback = parse_params(RecordingStatusCallback, request.params)
    handle_recording_callback(
        callback,
        # Checked: a session of another call is refused (403) before anything is written.
        owned_session_id(request, callback.call_sid),
        RecordingStores.for_table(settings.events_table_name),
        RecordingPublisher(settings.recordings_queue_url),
        ttl_days=settings.event_ttl_days,
        # A queueing claim lasts as long as this invocation can (see recordings.py).
        remaining_ms=edge.remaining_ms(),
    )
    return empty_response()


lambda_handler = edge.lambda_handler
