"""Build HTTP API (payload v2) events and HTTP requests the way Twilio and API Gateway would,
signed with twilio-python's RequestValidator. Shared by tests, the local mode and sample events."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

# Documented development credentials (README): never valid anywhere but the local mode and tests.
DEV_AUTH_TOKEN = "dev_auth_token_do_not_use_in_prod"
DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
SAMPLE_API_DOMAIN = "abc123example.execute-api.us-east-1.amazonaws.com"

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def sign(url: str, params: Params = (), token: str = DEV_AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for `url` (POST params, or none for GET)."""
    pairs = _pairs(params)
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)

    class _Multi(dict[str, str]):
        def getlist(self, name: str) -> list[str]:
            return grouped[name]

    return str(RequestValidator(token).compute_signature(url, _Multi((k, v[0]) for k, v in grouped.items())))


def random_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def http_api_event(
    method: str,
    url: str,
    params: Params = (),
    *,
    token: str | None = DEV_AUTH_TOKEN,
    signature: str | None = None,
    base64_body: bool = True,
    route: str | None = None,
    content_type: str | None = "application/x-www-form-urlencoded",
    extra_headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event for a Twilio request to `url`.

    POST: params go in the form body (base64-encoded, as API Gateway delivers form bodies).
    GET: params are appended to the URL's query string, as Twilio does, and signed with the URL.
    `route` is the matched route path (defaults to the URL path); `signature` overrides signing."""
    pairs = _pairs(params)
    method = method.upper()
    if method == "GET" and pairs:
        url = url + ("&" if urlsplit(url).query else "?") + urlencode(pairs)
        pairs = []
    parts = urlsplit(url)
    form = urlencode(pairs) if body is None else body
    headers = {"host": parts.netloc, "user-agent": "TwilioProxy/1.1", "i-twilio-idempotency-token": "x"}
    if method == "POST" and content_type:
        headers["content-type"] = content_type
    if signature is None and token is not None:
        signature = sign(url, pairs if method == "POST" else (), token)
    if signature is not None:
        headers["x-twilio-signature"] = signature
    headers.update({k.lower(): v for k, v in (extra_headers or {}).items()})
    route_path = route or parts.path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"ANY {route_path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": parts.netloc.split(".")[0],
            "domainName": parts.netloc,
            "domainPrefix": parts.netloc.split(".")[0],
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "TwilioProxy/1.1",
            },
            "requestId": secrets.token_hex(8),
            "routeKey": f"ANY {route_path}",
            "stage": "$default",
            "time": "21/Nov/2026:03:00:00 +0000",
            "timeEpoch": 1795143600000,
        },
        "isBase64Encoded": False,
    }
    if parts.query:
        from urllib.parse import parse_qsl

        event["queryStringParameters"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if method == "POST" or body is not None:
        if base64_body:
            event["body"] = base64.b64encode(form.encode()).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = form
    return event


def dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, indent=2, sort_keys=True) + "\n"
