"""POST|GET /voice/connect: answer a call with the `<Connect>` TwiML of the called number's flow."""

from aws_lambda_powertools.event_handler import Response
from voice_webhooks.callbacks.models import ConnectRequest, parse_params
from voice_webhooks.calls.answering import answer_call
from voice_webhooks.edge import routes
from voice_webhooks.edge.handler import WebhookFunction
from voice_webhooks.edge.resolver import twiml_response
from voice_webhooks.flows.loader import load_flow_config
from voice_webhooks.runtime.settings import ConnectSettings
from voice_webhooks.storage.sessions import SessionStore

edge = WebhookFunction(ConnectSettings)


@edge.route(routes.CONNECT)
def connect() -> Response[str]:
    request, settings = edge.request, edge.settings
    call = parse_params(ConnectRequest, request.params)
    config = load_flow_config(settings.flow_config, settings.cache_max_age_seconds)
    store = SessionStore(settings.events_table_name)
    return twiml_response(answer_call(call, request.base_url, config, settings, store))


lambda_handler = edge.lambda_handler
