"""Domain exceptions. Raised where the problem is found; mapped to HTTP answers in one place
(`http_app.register_error_mapping`)."""

from __future__ import annotations

from http import HTTPStatus


class WebhookError(Exception):
    """A request we refuse. `reason` is short, safe to return to the caller and to log."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedRequest(WebhookError):
    status = HTTPStatus.BAD_REQUEST


class SignatureRejected(WebhookError):
    status = HTTPStatus.FORBIDDEN


class AccountRejected(WebhookError):
    status = HTTPStatus.FORBIDDEN


class SessionMismatch(WebhookError):
    """A callback names a session of another call (docs/data-model.md, ownership rule)."""

    status = HTTPStatus.FORBIDDEN


class MethodNotAllowed(WebhookError):
    status = HTTPStatus.METHOD_NOT_ALLOWED


class PayloadTooLarge(WebhookError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(WebhookError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class DependencyUnavailable(WebhookError):
    """A dependency failed before we did anything: answer 503 so that Twilio retries (or, for a
    TwiML webhook, moves on to the fallback URL) and the retry does the work."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class StorageError(DependencyUnavailable):
    """DynamoDB or SQS failed. Event routes answer 5xx so Twilio retries; TwiML routes catch it
    and still answer TwiML."""


class ConfigurationError(Exception):
    """The deployment is misconfigured (settings or call-flow document). Never the caller's fault."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]
