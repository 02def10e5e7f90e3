"""POST|GET /voice/connect: answer a call with the `<Connect>` TwiML of the called number's flow."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.callbacks.models import ConnectRequest, parse_params
from voice_webhooks.calls.answering import answer_call
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, twiml_response, webhook_app
from voice_webhooks.flows.loader import load_flow_config
from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import get_settings
from voice_webhooks.storage.sessions import SessionStore

app = webhook_app()


@app.route(routes.CONNECT, method=ANY_METHOD)
def connect() -> Response[str]:
    call = parse_params(ConnectRequest, current_webhook(app).params)
    settings = get_settings()
    store = SessionStore(settings.require("events_table_name"))
    twiml = answer_call(call, app.current_event, load_flow_config(settings), settings, store)
    return twiml_response(twiml)


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: events carry phone numbers.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True, log_event=False
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
