"""The API Gateway HTTP API resolver every function uses: Twilio checks first, errors mapped to
HTTP answers in one place, TwiML responses."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from voice_webhooks.edge.auth_tokens import load_auth_tokens
from voice_webhooks.edge.request import WebhookRequest, read_webhook
from voice_webhooks.edge.signature import verify_request
from voice_webhooks.errors import (
    AccountRejected,
    ConfigurationError,
    DependencyUnavailable,
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    SignatureRejected,
    UnsupportedMediaType,
    WebhookError,
)
from voice_webhooks.runtime import snapstart
from voice_webhooks.runtime.observability import MetricName, count, logger
from voice_webhooks.runtime.settings import WebhookSettings, load_settings

# Routes accept every method (the template routes ANY) so that we, not API Gateway's 404, answer
# the unsupported ones with 405.
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
TWIML_CONTENT_TYPE = "text/xml"
_WEBHOOK_KEY = "webhook"
# BadRequest counts every refusal for the request's shape (400, 405, 413, 415): a spike means a
# broken client or someone probing, either way worth an alarm.
_REFUSAL_METRICS: dict[type[WebhookError], str] = {
    SignatureRejected: MetricName.REJECTED_SIGNATURE,
    AccountRejected: MetricName.REJECTED_ACCOUNT,
    MalformedRequest: MetricName.BAD_REQUEST,
    MethodNotAllowed: MetricName.BAD_REQUEST,
    PayloadTooLarge: MetricName.BAD_REQUEST,
    UnsupportedMediaType: MetricName.BAD_REQUEST,
}


def _twilio_checks(
    settings_model: type[WebhookSettings],
    outage_answer: Callable[[], Response[str]] | None,
    callback_session: bool,
) -> Callable[..., Response[str]]:
    def twilio_webhook(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[str]:
        """Refuse anything Twilio did not sign for one of our accounts, before any other work.

        Order (docs/security.md): request shape (405/415/413/403 missing header/400), auth token
        (503), signature (403), repeated names (400), account (403), session (400). No table, queue
        or flow configuration is read before the last check passed. The settings were validated at
        cold start (`edge.handler`); here they come from the cache."""
        settings = load_settings(settings_model)
        request = read_webhook(app.current_event, settings.public_base_url)
        snapstart.settle()  # the init-phase reads of the token and flow config, if still running
        try:
            tokens = load_auth_tokens(settings.auth_token_secret, settings.cache_max_age_seconds)
        except DependencyUnavailable as problem:
            if outage_answer is None:
                raise
            # Only for a route whose answer is static and touches nothing (the fallback URL): when
            # our side cannot verify, the apology is still better than Twilio's application error.
            logger.warning(
                "Cannot verify the signature: answering the static response unverified",
                extra={"reason": str(problem)},
            )
            return outage_answer()
        verify_request(request, request.url, tokens, settings.allowed_account_sids)
        session_id = request.callback_session_id() if callback_session else None
        app.append_context(**{_WEBHOOK_KEY: request})
        # Scoped to this request's route, error answers included (mapped here, inside the scope).
        keys = {"call_sid": request.params.get("CallSid"), "session_id": session_id}
        with logger.append_context_keys(**{name: value for name, value in keys.items() if value}):
            try:
                return next_middleware(app)
            except (WebhookError, ConfigurationError) as error:
                return error_response(error)

    return twilio_webhook


def current_webhook(app: APIGatewayHttpResolver) -> WebhookRequest:
    request = app.context.get(_WEBHOOK_KEY)
    if not isinstance(request, WebhookRequest):  # pragma: no cover - wiring error, not input
        raise RuntimeError("twilio_webhook middleware did not run for this route")
    return request


def error_response(error: WebhookError | ConfigurationError) -> Response[str]:
    """The one mapping of our exceptions to HTTP answers (short reason, never internals)."""
    if isinstance(error, ConfigurationError):
        count(MetricName.CONFIG_UNAVAILABLE)
        logger.error("Configuration error", extra={"reason": str(error)})
        return text_response(500, "service misconfigured")
    metric = _REFUSAL_METRICS.get(type(error))
    if metric:
        count(metric)
    logger.info("Refused request", extra={"status": int(error.status), "reason": error.reason})
    headers = {"Allow": "GET, POST"} if isinstance(error, MethodNotAllowed) else None
    return text_response(int(error.status), error.reason, headers)


def text_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type="text/plain", body=reason, headers=headers)


def twiml_response(twiml: str) -> Response[str]:
    return Response(status_code=200, content_type=TWIML_CONTENT_TYPE, body=twiml)


def empty_response() -> Response[str]:
    """Event routes: Twilio only needs a 2xx."""
    return Response(status_code=204, content_type="text/plain", body="")


def webhook_app(
    settings_model: type[WebhookSettings],
    *,
    token_outage_answer: Callable[[], Response[str]] | None = None,
    callback_session: bool = False,
) -> APIGatewayHttpResolver:
    """A resolver with the Twilio checks as middleware and the error mapping registered.

    `callback_session`: the route files what it receives under a session (status, recording,
    action), resolved and checked once here (`WebhookRequest.callback_session_id`).
    `token_outage_answer` is for the fallback route only: when the auth token cannot be loaded, it
    answers that static response instead of a 503 (there is nowhere left for Twilio to fall back;
    docs/decisions/0002-fallback-answers-without-token.md). A signature that was checked and failed
    is still a 403."""
    snapstart.register()  # SnapStart's hooks, where the runtime has them (docs/deploy.md#snapstart)
    snapstart.prefetch()  # on-demand cold start: token and flow config read during init, side by side
    # debug=False whatever POWERTOOLS_DEV says: debug mode prints whole events (phone numbers).
    app = APIGatewayHttpResolver(debug=False)
    app.use(middlewares=[_twilio_checks(settings_model, token_outage_answer, callback_session)])

    @app.exception_handler(WebhookError)
    def refuse(error: WebhookError) -> Response[str]:
        return error_response(error)

    @app.exception_handler(ConfigurationError)
    def misconfigured(error: ConfigurationError) -> Response[str]:
        return error_response(error)

    return app
