"""The Twilio signing secrets, from Secrets Manager through Powertools Parameters (cached).

The secret holds either the auth token itself, or JSON:
`{"authToken": "...", "secondaryAuthToken": "...", "sharedKeys": {"<key id>": "<key>"}}`.
- `secondaryAuthToken`: during an auth-token rotation both tokens are accepted.
- `sharedKeys`: the SharedKey of each Webhooks Rule that signs our URLs (HMAC-SHA256, requests with
  `X-Twilio-Webhooks-Signature-Settings`). A key id maps to one key, or to a list of up to two
  during a rotation (docs/security.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from voice_webhooks.errors import DependencyUnavailable
from voice_webhooks.runtime import aws_clients
from voice_webhooks.runtime.observability import MetricName, count, logger

# Twilio gives up after 15 s and Lambda after 10: a Secrets Manager that hangs must cost about 3 s
# and end in a 503 we answer, not in a timeout (botocore's defaults are 60 s and 5 attempts).
_SECRETS_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
)
# Two keys per id: the current one and the next, while a rotation is under way.
MAX_KEYS_PER_ID = 2
_NO_KEYS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class AuthTokens:
    primary: str = field(repr=False)
    secondary: str | None = field(default=None, repr=False)
    shared_keys: MappingProxyType[str, tuple[str, ...]] = field(default_factory=lambda: _NO_KEYS, repr=False)
    """Webhooks Rules SharedKeys by key id."""

    def all(self) -> tuple[str, ...]:
        return (self.primary, self.secondary) if self.secondary else (self.primary,)

    def shared_keys_for(self, key_id: str) -> tuple[str, ...]:
        return self.shared_keys.get(key_id, ())


def _shared_keys(document: Any) -> MappingProxyType[str, tuple[str, ...]]:
    """`{"<id>": "<key>" | ["<key>", "<key>"]}`. Errors name the key id, never a key."""
    if document is None:
        return _NO_KEYS
    if not isinstance(document, dict):
        raise ValueError("sharedKeys must be an object of key id to key(s)")
    keys: dict[str, tuple[str, ...]] = {}
    for key_id, value in document.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) and item.strip() for item in values):
            raise ValueError(f"sharedKeys[{str(key_id)[:40]!r}] must be a key or a list of keys")
        if not 1 <= len(values) <= MAX_KEYS_PER_ID:
            raise ValueError(f"sharedKeys[{str(key_id)[:40]!r}] holds 1 to {MAX_KEYS_PER_ID} keys")
        keys[str(key_id)] = tuple(dict.fromkeys(item.strip() for item in values))
    return MappingProxyType(keys)


def parse_secret(raw: str | bytes) -> AuthTokens:
    """Plain text token, or the JSON document described above. Errors never quote the secret."""
    text = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).strip()
    shared_keys = _NO_KEYS
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("the secret is neither a token nor valid JSON") from None
        primary = str(document.get("authToken") or "").strip()
        secondary = str(document.get("secondaryAuthToken") or "").strip() or None
        shared_keys = _shared_keys(document.get("sharedKeys"))
    else:
        primary, secondary = text, None
    if not primary:
        raise ValueError("the secret has no auth token")
    return AuthTokens(
        primary=primary, secondary=None if secondary == primary else secondary, shared_keys=shared_keys
    )


@cache
def secrets_provider() -> parameters.SecretsProvider:
    """One Secrets Manager provider per process, from the shared boto3 session with short timeouts.

    Made on first use, not at import: the provider builds its boto3 client when constructed, and a
    cold start must make no AWS client it may not need (the fallback route often needs none)."""
    return parameters.SecretsProvider(boto_config=_SECRETS_CONFIG, boto3_session=aws_clients.session())


def read_secret_text(secret_id: str, max_age: int) -> str | bytes:
    raw = secrets_provider().get(secret_id, max_age=max_age)
    if not isinstance(raw, (str, bytes)):
        raise TypeError("the secret is not text")
    return raw


# Every request asks for the tokens and gets the same cached text back from Parameters: parsed
# once per value, not per request (a parse that fails is not cached, so it is retried and logged
# each time). One entry: after a rotation the old value is not kept.
_parse_cached = lru_cache(maxsize=1)(parse_secret)


def load_auth_tokens(secret_id: str, max_age: int) -> AuthTokens:
    """The token(s) and shared keys, cached for `max_age` seconds. 503 (DependencyUnavailable) when
    the secret cannot be read or is malformed: nothing has been done yet, so a retry is safe."""
    try:
        return _parse_cached(read_secret_text(secret_id, max_age))
    except Exception as exc:
        # Never log the exception text: a parse error could echo part of the secret.
        logger.error("Twilio auth token unavailable", extra={"error_type": type(exc).__name__})
        count(MetricName.AUTH_TOKEN_UNAVAILABLE)
        raise DependencyUnavailable("auth token unavailable") from exc
