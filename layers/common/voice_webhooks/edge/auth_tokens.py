"""The Twilio auth token(s), from Secrets Manager through Powertools Parameters (cached).

The secret holds either the token itself, or JSON with a primary and an optional secondary token:
`{"authToken": "...", "secondaryAuthToken": "..."}`. During a rotation both are accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from botocore.config import Config

from voice_webhooks.errors import DependencyUnavailable
from voice_webhooks.runtime import aws_clients
from voice_webhooks.runtime.observability import MetricName, count, logger
from voice_webhooks.runtime.settings import Settings

# Twilio gives up after 15 s and Lambda after 10: a Secrets Manager that hangs must cost about 3 s
# and end in a 503 we answer, not in a timeout (botocore's defaults are 60 s and 5 attempts).
_SECRETS_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
)


@dataclass(frozen=True)
class AuthTokens:
    primary: str = field(repr=False)
    secondary: str | None = field(default=None, repr=False)

    def all(self) -> tuple[str, ...]:
        return (self.primary, self.secondary) if self.secondary else (self.primary,)


def parse_secret(raw: str | bytes) -> AuthTokens:
    """Plain text token, or JSON `{"authToken": ..., "secondaryAuthToken": ...}`.

    Errors never quote the secret."""
    text = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("the secret is neither a token nor valid JSON") from None
        primary = str(document.get("authToken") or "").strip()
        secondary = str(document.get("secondaryAuthToken") or "").strip() or None
    else:
        primary, secondary = text, None
    if not primary:
        raise ValueError("the secret has no auth token")
    return AuthTokens(primary=primary, secondary=None if secondary == primary else secondary)


def _secrets_provider() -> parameters.SecretsProvider:
    """Powertools' default Secrets Manager provider, created on first use with short timeouts.

    Registered as the default provider so `parameters.clear_caches()` forgets it like any other
    (tests and rotations rely on that)."""
    provider = DEFAULT_PROVIDERS.get("secrets")
    if provider is None:
        provider = DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
            boto_config=_SECRETS_CONFIG, boto3_session=aws_clients.session()
        )
    return provider


def load_auth_tokens(settings: Settings) -> AuthTokens:
    """The token(s), cached for PARAMETERS_MAX_AGE seconds. 503 (DependencyUnavailable) when the
    secret cannot be read or holds no token: nothing has been done yet, so a retry is safe."""
    secret_id = settings.require("auth_token_secret")
    try:
        raw = _secrets_provider().get(secret_id, max_age=settings.cache_max_age_seconds)
        if not isinstance(raw, (str, bytes)):
            raise TypeError("the secret is not text")
        return parse_secret(raw)
    except Exception as exc:
        # Never log the exception text: a parse error could echo part of the secret.
        logger.error("Twilio auth token unavailable", extra={"error_type": type(exc).__name__})
        count(MetricName.AUTH_TOKEN_UNAVAILABLE)
        raise DependencyUnavailable("auth token unavailable") from exc
