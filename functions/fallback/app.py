"""POST|GET /voice/fallback: Twilio's fallback URL. A static apology that touches no dependency
(beyond the cached auth token, and it answers even without that: docs/decisions/0002), so callers
hear something sensible when everything else is down."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from voice_webhooks.edge import routes
from voice_webhooks.edge.resolver import ANY_METHOD, current_webhook, twiml_response, webhook_app
from voice_webhooks.runtime.observability import MetricName, count, logger, metrics, tracer
from voice_webhooks.twiml.fallback import apology_twiml


def apology() -> Response[str]:
    count(MetricName.FALLBACK_ANSWERED)
    return twiml_response(apology_twiml())


app = webhook_app(token_outage_answer=apology)


@app.route(routes.FALLBACK, method=ANY_METHOD)
def fallback() -> Response[str]:
    params = current_webhook(app).params
    # Twilio tells the fallback URL why the primary failed; that is what an operator needs. The
    # failed URL's query is dropped: for a GET it could carry the caller's number.
    error_url = (params.get("ErrorUrl") or "").partition("?")[0] or None
    logger.warning(
        "Fallback URL answered", extra={"error_code": params.get("ErrorCode"), "error_url": error_url}
    )
    return apology()


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: events carry phone numbers.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True, log_event=False
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
