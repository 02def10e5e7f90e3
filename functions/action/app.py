"""POST|GET /voice/action: the TwiML that follows a `<Connect>` session, and the requests our own
voicemail `<Record>` and hand-off `<Dial>` make when they end (see docs/action-routing.md)."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.calls.action_answer import ActionStores, answer_action
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, twiml_response, webhook_app
from voice_webhooks.flows.loader import load_flow_config
from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import get_settings

app = webhook_app()


@app.route(routes.ACTION, method=ANY_METHOD)
def action() -> Response[str]:
    settings = get_settings()
    stores = ActionStores.for_table(settings.require("events_table_name"))
    twiml = answer_action(
        current_webhook(app), app.current_event, settings, stores, lambda: load_flow_config(settings)
    )
    return twiml_response(twiml)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
