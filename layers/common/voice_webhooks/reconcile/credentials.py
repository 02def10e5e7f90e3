"""The Basic credentials for Twilio's REST API: the session's AccountSid and the auth token(s) of
the existing secret (edge/auth_tokens.py: plain token, or JSON with a secondary during a rotation)."""

from __future__ import annotations

from collections.abc import Callable

from voice_webhooks.archiver.download import BasicCredentials
from voice_webhooks.edge.auth_tokens import AuthTokens, parse_secret, secrets_provider
from voice_webhooks.errors import DependencyUnavailable
from voice_webhooks.runtime.observability import logger

CredentialsFor = Callable[[str], list[BasicCredentials]]


def load_tokens(secret_id: str, *, max_age_seconds: int) -> AuthTokens:
    """Cached like the webhooks' read (Powertools Parameters). DependencyUnavailable when the secret
    cannot be read or holds no token; the error never quotes the secret."""
    try:
        raw = secrets_provider().get(secret_id, max_age=max_age_seconds)
        if not isinstance(raw, (str, bytes)):
            raise TypeError("the secret is not text")
        return parse_secret(raw)
    except Exception as exc:
        logger.error("Twilio auth token unavailable", extra={"error_type": type(exc).__name__})
        raise DependencyUnavailable("auth token unavailable") from exc


def credentials_for(tokens: AuthTokens) -> CredentialsFor:
    def for_account(account_sid: str) -> list[BasicCredentials]:
        return [BasicCredentials(account_sid, token) for token in tokens.all()]

    return for_account
