"""Send a request the way Twilio sends a webhook: POST parameters in a form body, GET parameters
appended to the URL's own query string, `X-Twilio-Signature` computed for the exact URL requested,
the `#` fragment (Twilio's connection overrides) read and never sent. Standard library HTTP only."""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from voicedev.twilio_signing import DEV_AUTH_TOKEN, Params, sign

TWILIO_USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True)
class HttpAnswer:
    method: str
    url: str
    """The URL requested (and signed): fragment removed, GET parameters appended."""
    status: int
    headers: dict[str, str] = field(repr=False)
    """Names lowercased."""
    body: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def twilio_url(url: str, method: str, params: Params) -> tuple[str, list[tuple[str, str]]]:
    """The URL Twilio requests (and signs) and the form it posts."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    url = url.split("#", 1)[0]
    if method.upper() == "GET" and pairs:
        url += ("&" if urlsplit(url).query else "?") + urlencode(pairs)
        pairs = []
    return url, pairs


def twilio_request(
    method: str,
    url: str,
    params: Params = (),
    *,
    token: str | None = DEV_AUTH_TOKEN,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> HttpAnswer:
    """`token=None` sends no signature (an unsigned request); `signature` overrides the computed one."""
    method = method.upper()
    url, pairs = twilio_url(url, method, params)
    body = urlencode(pairs).encode() if method == "POST" else b""
    sent = {
        "User-Agent": TWILIO_USER_AGENT,
        "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        "Accept": "*/*",
    }
    if method == "POST":
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    if signature is None and token is not None:
        signature = sign(url, pairs, token)
    if signature is not None:
        sent["X-Twilio-Signature"] = signature
    sent.update(headers or {})
    return http_request(method, url, body, sent, timeout)


def http_request(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 15.0
) -> HttpAnswer:
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.netloc, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(method, target, body=body or None, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        received = {name.lower(): value for name, value in response.getheaders()}
        return HttpAnswer(method=method, url=url, status=response.status, headers=received, body=text)
    finally:
        connection.close()
