"""Posting frames to Twilio through API Gateway's `@connections` management API.

Endpoint: RELAY_MANAGEMENT_ENDPOINT (local mode, loopback only), else the stage's own
`https://<domainName>/<stage>`; behind a custom domain, the API's execute-api endpoint (the
management API is not served on custom domains)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.relay.settings import relay_settings
from voice_webhooks.runtime import aws_clients

# One token must not wait on a slow post: a post that takes more than 2 s is a broken connection.
_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})
EXECUTE_API_SUFFIX = ".amazonaws.com"


class ConnectionGone(Exception):
    """The caller's WebSocket is closed (GoneException, 410): stop sending, end cleanly."""


class PostFailed(Exception):
    """The management API failed otherwise (throttled, unavailable)."""


class Poster(Protocol):
    def post(self, connection_id: str, data: str) -> None: ...

    def close(self, connection_id: str) -> None: ...


def management_endpoint(request_context: dict[str, Any]) -> str:
    configured = relay_settings().management_endpoint
    if configured:
        return configured
    domain = str(request_context.get("domainName") or "")
    stage = str(request_context.get("stage") or "")
    if domain.endswith(EXECUTE_API_SUFFIX):
        return f"https://{domain}/{stage}"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"https://{request_context.get('apiId')}.execute-api.{region}{EXECUTE_API_SUFFIX}/{stage}"


@cache
def _client(endpoint: str) -> Any:
    return aws_clients.session().client("apigatewaymanagementapi", endpoint_url=endpoint, config=_CONFIG)


def endpoint_before_events() -> str | None:
    """The endpoint `management_endpoint` will give this function's events, where it is known
    before any event (for the SnapStart snapshot): the configured one, or the stage's own when
    Twilio opens the API's execute-api URL (RELAY_PUBLIC_URL). None behind a custom domain: the
    API id only comes with an event."""
    settings = relay_settings()
    if settings.management_endpoint:
        return settings.management_endpoint
    parts = urlsplit(settings.public_url or "")
    if parts.scheme != "wss" or not parts.hostname or not parts.hostname.endswith(EXECUTE_API_SUFFIX):
        return None
    return f"https://{parts.netloc}{parts.path}"


def warm_client() -> Any:
    """Before the snapshot: the `@connections` client the first event will use (or None)."""
    endpoint = endpoint_before_events()
    return _client(endpoint) if endpoint else None


def _error_code(exc: ClientError) -> str:
    return str(
        exc.response.get("Error", {}).get("Code")
        or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    )


class ManagementApi:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def post(self, connection_id: str, data: str) -> None:
        try:
            _client(self.endpoint).post_to_connection(ConnectionId=connection_id, Data=data.encode("utf-8"))
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("GoneException", "410"):
                raise ConnectionGone(connection_id) from exc
            raise PostFailed(code) from exc
        except BotoCoreError as exc:
            raise PostFailed(type(exc).__name__) from exc

    def close(self, connection_id: str) -> None:
        try:
            _client(self.endpoint).delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            if _error_code(exc) not in ("GoneException", "410"):
                raise PostFailed(_error_code(exc)) from exc
        except BotoCoreError as exc:
            raise PostFailed(type(exc).__name__) from exc


def management_api(request_context: dict[str, Any]) -> Poster:
    """The poster for an event's connection (tests replace this function with a recorder)."""
    return ManagementApi(management_endpoint(request_context))


def reset_clients() -> None:
    _client.cache_clear()
