"""Settings of the relay functions (and of the connect/action functions that point Twilio at the
relay), read from the environment once, at first use.

- `RELAY_PUBLIC_URL`: the relay's public base URL, `wss://<host>/<path>` (template: the custom
  domain, else the API's own endpoint). Local mode may use `ws://` on a loopback host.
- `RELAY_MANAGEMENT_ENDPOINT`: the `@connections` endpoint; only loopback `http://` (local mode).
  Unset: the stage's own endpoint (relay/connections.py).
- `RELAY_CONNECTION_TTL_HOURS`: lifetime of a connection item (API Gateway closes a connection
  after 2 h).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from voice_webhooks.errors import ConfigurationError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ATTEMPT_PARAM = "attempt"


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


OptionalStr = Annotated[str | None, BeforeValidator(_blank_to_none)]


class RelaySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    public_url: OptionalStr = Field(None, alias="RELAY_PUBLIC_URL")
    management_endpoint: OptionalStr = Field(None, alias="RELAY_MANAGEMENT_ENDPOINT")
    connection_ttl_hours: int = Field(3, alias="RELAY_CONNECTION_TTL_HOURS", ge=1, le=48)


def check_public_url(url: str) -> str:
    """`wss://host/path` (any host), or `ws://` on a loopback host (local mode); no query or
    fragment, since `?session=...&attempt=...` is appended."""
    parts = urlsplit(url.strip())
    secure = parts.scheme == "wss" and parts.netloc
    local = parts.scheme == "ws" and parts.hostname in LOOPBACK_HOSTS
    if not (secure or local) or parts.query or parts.fragment:
        raise ConfigurationError(
            "setting RELAY_PUBLIC_URL must be a wss:// URL (ws:// only on loopback) without query or fragment"
        )
    return url.strip().rstrip("/")


def check_management_endpoint(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigurationError(
            "setting RELAY_MANAGEMENT_ENDPOINT must be a loopback http:// URL (local mode)"
        )
    return url.strip().rstrip("/")


@cache
def relay_settings() -> RelaySettings:
    try:
        settings = RelaySettings.model_validate(dict(os.environ))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid relay settings: {exc}") from exc
    if settings.public_url:
        check_public_url(settings.public_url)
    if settings.management_endpoint:
        check_management_endpoint(settings.management_endpoint)
    return settings


def relay_url(base_url: str, session_id: str, attempt: int) -> str:
    """The URL the `<ConversationRelay url>` names: the session and the attempt are signed by
    Twilio with it, so the handshake ties the connection to its session."""
    return f"{check_public_url(base_url)}?session={quote(session_id, safe='')}&{ATTEMPT_PARAM}={attempt}"


def stack_relay_url(session_id: str, attempt: int) -> str:
    """This stack's relay URL for a session; a ConfigurationError when RELAY_PUBLIC_URL is unset."""
    base = relay_settings().public_url
    if not base:
        raise ConfigurationError(
            "a relay flow without url needs setting RELAY_PUBLIC_URL (the stack's WebSocket API)"
        )
    return relay_url(base, session_id, attempt)
