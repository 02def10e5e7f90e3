"""The one handler stack every function gets its `lambda_handler` from.

Declared once so that the copies cannot drift: Powertools' logger context with `log_event=False`
and `clear_state=True` (events carry phone numbers, signatures and HandoffData, whatever
POWERTOOLS_LOGGER_LOG_EVENT says), the correlation id, the tracer, the metrics flush, and for the
webhook functions the resolver with the Twilio checks and the error mapping (edge/resolver.py).

Creating a `WebhookFunction` (or `queue_handler`) validates the function's settings: it runs when
Lambda imports `app.py`, so a missing or invalid variable fails the cold start with one message
naming it, never a request.

    edge = WebhookFunction(StatusSettings, callback_session=True)

    @edge.route(routes.STATUS)
    def status() -> Response[str]:
        request, settings = edge.request, edge.settings
        ...

    lambda_handler = edge.lambda_handler
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext

from voice_webhooks.runtime.observability import logger, metrics, tracer
from voice_webhooks.runtime.settings import FunctionSettings, WebhookSettings, load_settings

if TYPE_CHECKING:
    # The resolver is imported by the webhook functions only: the archiver's cold start does not
    # pay for Powertools' event handler.
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

    from voice_webhooks.edge.request import WebhookRequest

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
S = TypeVar("S", bound=FunctionSettings)
W = TypeVar("W", bound=WebhookSettings)
Route = Callable[[], "Response[str]"]

# Set on every handler made here: tests prove each function's handler comes from this module.
EDGE_MARK = "__voice_webhooks_edge__"


def _field(value: Any, name: str) -> Any:
    # JMESPath's field lookup: `.get`, None where there is nothing to look it up in.
    try:
        return value.get(name)
    except AttributeError:
        return None


def request_id(event: Any) -> Any:
    """`requestContext.requestId` (Powertools' `correlation_paths.API_GATEWAY_HTTP` and
    `API_GATEWAY_REST`), read as JMESPath reads it: the same value, None where either key is
    missing or not a mapping. Read directly because Powertools' `correlation_id_path` runs a
    JMESPath search on every invocation, for two dictionary lookups."""
    return _field(_field(event, "requestContext"), "requestId")


def _with_correlation_id(traced: Handler, read: Callable[[Any], Any]) -> Handler:
    @functools.wraps(traced)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Where `inject_lambda_context(correlation_id_path=...)` sets it: once the logger's state
        # is cleared and the Lambda context keys are added, before the tracer and the handler.
        logger.set_correlation_id(read(event))
        return traced(event, context)

    return lambda_handler


def instrumented(
    handler: Handler,
    settings_model: type[FunctionSettings],
    *,
    correlation_id: Callable[[Any], Any] | None = None,
) -> Handler:
    """`handler` inside the logger context (with the correlation id `correlation_id` reads from
    the event, if any), tracer and metrics, in that order (outermost first). The handler names the
    settings model its function checks (`settings_model`)."""

    @tracer.capture_lambda_handler  # its subsegment is named after this function: `## lambda_handler`
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return handler(event, context)

    inner = lambda_handler if correlation_id is None else _with_correlation_id(lambda_handler, correlation_id)
    entry: Handler = logger.inject_lambda_context(clear_state=True, log_event=False)(inner)
    setattr(entry, EDGE_MARK, True)
    setattr(entry, "settings_model", settings_model)  # noqa: B010 - a function attribute
    return entry


def is_edge_handler(handler: object) -> bool:
    return getattr(handler, EDGE_MARK, False) is True


class WebhookFunction(Generic[W]):
    """A Twilio webhook function: its settings (checked now), resolver and `lambda_handler`."""

    def __init__(
        self,
        settings_model: type[W],
        *,
        callback_session: bool = False,
        token_outage_answer: Route | None = None,
    ) -> None:
        from voice_webhooks.edge.resolver import webhook_app

        load_settings(settings_model)  # the cold-start check: raises ConfigurationError
        self.settings_model = settings_model
        self.app: APIGatewayHttpResolver = webhook_app(
            settings_model, token_outage_answer=token_outage_answer, callback_session=callback_session
        )
        self.lambda_handler: Handler = instrumented(
            self.app.resolve, settings_model, correlation_id=request_id
        )

    def route(self, path: str) -> Callable[[Route], Route]:
        """Register the function's route for every method (the edge answers 405 for the others)."""
        from voice_webhooks.edge.resolver import ANY_METHOD

        return self.app.route(path, method=ANY_METHOD)

    @property
    def settings(self) -> W:
        settings: W = load_settings(self.settings_model)
        return settings

    @property
    def request(self) -> WebhookRequest:
        """The verified request of the current invocation."""
        from voice_webhooks.edge.resolver import current_webhook

        return current_webhook(self.app)

    def remaining_ms(self) -> int:
        return int(self.app.lambda_context.get_remaining_time_in_millis())


def queue_handler(
    settings_model: type[S], handle: Callable[[dict[str, Any], LambdaContext, S], Any]
) -> Handler:
    """`lambda_handler` for an SQS consumer: the same stack (no HTTP correlation id), with the
    function's settings checked now and handed to `handle` on every invocation."""
    load_settings(settings_model)

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return dict(handle(event, context, load_settings(settings_model)))

    return instrumented(handler, settings_model)


def websocket_handler(
    settings_model: type[S],
    handle: Callable[[dict[str, Any], S], Any],
    *,
    verifies_signatures: bool = False,
    posts: bool = False,
    preload: Callable[[], None] | None = None,
) -> Handler:
    """`lambda_handler` for an API Gateway WebSocket route (the relay agent): the same stack, the
    request id as correlation id, the function's settings checked now and handed to `handle`.

    SnapStart's hooks and the init-phase reads as for the webhooks (runtime/snapstart.py), with the
    relay's own clients: its storage client, and where the route `posts` the `@connections` one.
    Only the route that `verifies_signatures` ($connect) reads the auth token. `preload` imports
    what the route imports on its first request: before a snapshot only, so that a restored
    function does not pay it (an on-demand cold start of another route never does)."""
    from voice_webhooks.relay import connections
    from voice_webhooks.runtime import snapstart
    from voice_webhooks.storage import relay_store

    load_settings(settings_model)
    warm: list[snapstart.WarmStep] = [("relay storage", relay_store.warm_client)]
    if posts:
        warm.append(("relay @connections", connections.warm_client))
    if preload is not None:
        warm.append(("route modules", preload))
    snapstart.register(auth_token=verifies_signatures, warm=warm)
    snapstart.prefetch(auth_token=verifies_signatures)

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
        snapstart.settle()  # the init-phase reads, if still running
        return dict(handle(event, load_settings(settings_model)))

    return instrumented(handler, settings_model, correlation_id=request_id)


def scheduled_handler(
    settings_model: type[S], handle: Callable[[dict[str, Any], LambdaContext, S], Any]
) -> Handler:
    """`lambda_handler` for a scheduled function (the reconciler): as `queue_handler`."""
    return queue_handler(settings_model, handle)
