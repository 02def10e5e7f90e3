"""POST|GET /voice/fallback: Twilio's fallback URL. A static apology that touches no dependency
(beyond the cached auth token, and it answers even without that: docs/decisions/0002), so callers
hear something sensible when everything else is down."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import twiml_response
from voice_webhooks.runtime.observability import MetricName, count, logger
from voice_webhooks.runtime.settings import FallbackSettings
from voice_webhooks.twiml.fallback import apology_twiml


def apology() -> Response[str]:
    count(MetricName.FALLBACK_ANSWERED)
    return twiml_response(apology_twiml())


edge = WebhookFunction(FallbackSettings, token_outage_answer=apology)


@edge.route(routes.FALLBACK)
def fallback() -> Response[str]:
    params = edge.request.params
    # Twilio tells the fallback URL why the primary failed; that is what an operator needs. The
    # failed URL's query is dropped: for a GET it could carry the caller's number.
    error_url = (params.get("ErrorUrl") or "").partition("?")[0] or None
    logger.warning(
        "Fallback URL answered", extra={"error_code": params.get("ErrorCode"), "error_url": error_url}
    )
    return apology()


lambda_handler = edge.lambda_handler
