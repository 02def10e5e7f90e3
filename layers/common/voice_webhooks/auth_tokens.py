"""The Twilio auth token(s), from Secrets Manager through Powertools Parameters (cached).

The secret holds either the token itself, or JSON with a primary and an optional secondary token:
`{"authToken": "...", "secondaryAuthToken": "..."}`. During a rotation both are accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities import parameters

from voice_webhooks.errors import DependencyUnavailable
from voice_webhooks.observability import MetricName, count, logger
from voice_webhooks.settings import Settings


@dataclass(frozen=True)
class AuthTokens:
    primary: str = field(repr=False)
    secondary: str | None = field(default=None, repr=False)

    def all(self) -> tuple[str, ...]:
        return (self.primary, self.secondary) if self.secondary else (self.primary,)


def parse_secret(raw: str) -> AuthTokens:
    text = raw.strip()
    if text.startswith("{"):
        document = json.loads(text)
        primary = str(document.get("authToken") or "").strip()
        secondary = str(document.get("secondaryAuthToken") or "").strip() or None
    else:
        primary, secondary = text, None
    if not primary:
        raise ValueError("the secret has no auth token")
    return AuthTokens(primary=primary, secondary=secondary)


def load_auth_tokens(settings: Settings) -> AuthTokens:
    secret_id = settings.require("auth_token_secret")
    try:
        raw = parameters.get_secret(secret_id, max_age=settings.cache_max_age_seconds)
        return parse_secret(str(raw))
    except Exception as exc:
        # Never log the exception text: a parse error could echo part of the secret.
        logger.error("Twilio auth token unavailable", extra={"error_type": type(exc).__name__})
        count(MetricName.AUTH_TOKEN_UNAVAILABLE)
        raise DependencyUnavailable("auth token unavailable") from exc
