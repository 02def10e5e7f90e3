"""The public URLs of this API: the one Twilio signed for a request, and the callback URLs we
hand Twilio in TwiML.

Twilio signs the exact URL it requested. For the default HTTP API endpoint that URL is
`https://` + domain + rawPath (+ `?` + rawQueryString), all present in the payload v2 event.
Custom domains (base-path mappings) and tunnels change what Twilio saw in ways the event does not
show, so the operator sets PUBLIC_BASE_URL instead."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from voice_webhooks.errors import ConfigurationError

SESSION_PARAM = "session"


def public_base(public_base_url: str) -> str:
    """PUBLIC_BASE_URL without its trailing slash, refused (500, service misconfigured) unless it is
    an absolute http(s) URL without query or fragment: anything else would make every signature
    fail with a 403 that points nowhere near the real mistake."""
    parts = urlsplit(public_base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            "setting PUBLIC_BASE_URL must be an absolute http(s) URL without query or fragment"
        )
    return public_base_url.strip().rstrip("/")


def route_path(event: APIGatewayProxyEventV2) -> str:
    """The matched route (`/voice/status`), without any stage prefix."""
    route_key = event.route_key or ""
    _, _, path = route_key.partition(" ")
    return path if path.startswith("/") else event.raw_path


def api_base_url(event: APIGatewayProxyEventV2, public_base_url: str | None) -> str:
    """Where this API is reached from Twilio: PUBLIC_BASE_URL, or scheme + domain + stage prefix."""
    if public_base_url:
        return public_base(public_base_url)
    raw_path = event.raw_path
    route = route_path(event)
    prefix = raw_path[: -len(route)] if route and raw_path.endswith(route) else ""
    return f"https://{event.request_context.domain_name}{prefix}"


def signed_url(event: APIGatewayProxyEventV2, public_base_url: str | None) -> str:
    """The URL Twilio signed, byte for byte: the raw query string is never rebuilt."""
    if public_base_url:
        url = public_base(public_base_url) + route_path(event)
    else:
        url = f"https://{event.request_context.domain_name}{event.raw_path}"
    query = event.raw_query_string
    return f"{url}?{query}" if query else url


def callback_url(base_url: str, path: str, session_id: str, connection_overrides: str = "") -> str:
    """A callback URL that names its session; connection overrides ride in the fragment, which
    Twilio reads and never sends (so it is not part of the signed URL)."""
    url = f"{base_url}{path}?{SESSION_PARAM}={quote(session_id, safe='')}"
    return f"{url}#{connection_overrides}" if connection_overrides else url
