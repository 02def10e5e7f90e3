"""`$connect`: accept only the WebSocket Twilio opened for one of our sessions.

Twilio signs the upgrade request like a webhook: HMAC over the exact `wss://` URL, query string
included, with no body parameters (twilio-facts.md). API Gateway does not give a WebSocket handler
the raw query string, so the URL is rebuilt: RELAY_PUBLIC_URL (or `wss://<domainName>/<stage>`)
+ `?` + the query parameters in the order received, encoded with urllib.parse.urlencode. The URLs
we emit (`?session=<id>&attempt=<n>`, relay/settings.py) encode to themselves, so the rebuilt URL
is the one Twilio signed.

Order: signature header present (403), settings (500), auth token (503), signature over the URL
(403), session and attempt parameters (400). Nothing is read or written before the signature
passed. The account is not in the handshake: the signature proves one of our tokens signed it, and
the `setup` frame's accountSid is checked against ALLOWED_ACCOUNT_SIDS (conversation.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from voice_webhooks.edge.auth_tokens import AuthTokens
from voice_webhooks.edge.request import SIGNATURE_HEADER, FormParams
from voice_webhooks.edge.signature import signature_is_valid
from voice_webhooks.errors import MalformedRequest, SignatureRejected
from voice_webhooks.relay.settings import ATTEMPT_PARAM, check_public_url
from voice_webhooks.runtime.observability import logger

SESSION_PATTERN = re.compile(r"^CA[0-9a-fA-F]{32}(-[0-9a-f]{16})?$")
ATTEMPT_PATTERN = re.compile(r"^[1-9][0-9]?$")
MAX_QUERY_BYTES = 4096


@dataclass(frozen=True)
class Handshake:
    session_id: str
    attempt: int


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """Header names are case-insensitive (API Gateway keeps the client's spelling)."""
    wanted = name.lower()
    return next((value for key, value in (headers or {}).items() if key.lower() == wanted), "")


def signed_url(
    request_context: Mapping[str, object], query: Mapping[str, str] | None, public_url: str | None
) -> str:
    base = (
        check_public_url(public_url)
        if public_url
        else f"wss://{request_context.get('domainName')}/{request_context.get('stage')}"
    )
    return f"{base}?{urlencode(dict(query))}" if query else base


def check_signature(url: str, signature: str, tokens: AuthTokens) -> None:
    if not signature:
        raise SignatureRejected("missing X-Twilio-Signature header")
    if len(url) > MAX_QUERY_BYTES or not signature_is_valid(url, FormParams(()), signature, tokens):
        logger.warning("Rejected relay handshake: bad signature", extra={"checked_url": url.split("?", 1)[0]})
        raise SignatureRejected("invalid X-Twilio-Signature")


def read_handshake(query: Mapping[str, str] | None) -> Handshake:
    """The signed session and attempt (checked after the signature: an unsigned request learns nothing)."""
    session_id = (query or {}).get("session", "")
    attempt = (query or {}).get(ATTEMPT_PARAM, "1")
    if not SESSION_PATTERN.fullmatch(session_id):
        raise MalformedRequest("session: missing or not a session id")
    if not ATTEMPT_PATTERN.fullmatch(attempt):
        raise MalformedRequest("attempt: must be a number from 1 to 99")
    return Handshake(session_id=session_id, attempt=int(attempt))


__all__ = ["SIGNATURE_HEADER", "Handshake", "check_signature", "header", "read_handshake", "signed_url"]
