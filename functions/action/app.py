"""POST|GET /voice/action: the TwiML that follows a `<Connect>` session, and the requests our own
voicemail `<Record>` and hand-off `<Dial>` make when they end (see docs/action-routing.md)."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.calls.action_answer import ActionStores, answer_action
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import twiml_response
from voice_webhooks.flows.loader import load_flow_config
from voice_webhooks.runtime.settings import ActionSettings

edge = WebhookFunction(ActionSettings, callback_session=True)


@edge.route(routes.ACTION)
def action() -> Response[str]:
    settings = edge.settings
    twiml = answer_action(
        edge.request,
        settings,
        ActionStores.for_table(settings.events_table_name),
        lambda: load_flow_config(settings.flow_config, settings.cache_max_age_seconds),
    )
    return twiml_response(twiml)


lambda_handler = edge.lambda_handler
