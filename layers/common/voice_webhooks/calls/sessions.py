"""Session ids: one per `<Connect>` we emit, carried in every callback URL of that TwiML."""

from __future__ import annotations

import secrets

from voice_webhooks.edge.public_urls import SESSION_PARAM
from voice_webhooks.edge.request import MAX_SESSION_ID_BYTES
from voice_webhooks.errors import MalformedRequest

__all__ = ["SESSION_PARAM", "mint_session_id", "session_id_for_callback"]


def mint_session_id(call_sid: str) -> str:
    """`<CallSid>-<16 hex>`: traceable to the call at a glance, unique per `<Connect>` (a retried
    connect webhook opens a new session), and not guessable from the call."""
    return f"{call_sid}-{secrets.token_hex(8)}"


def session_id_for_callback(session_param: str | None, call_sid: str | None) -> str | None:
    """(The routes read `WebhookRequest.callback_session_id()`, resolved once by the edge; this
    stays for callbacks/status.py until the data-model work replaces it.) The session a callback
    belongs to: our `session` query parameter; for URLs configured by
    hand without it, the CallSid (documented fallback). A `session` no id of ours can be is a 400:
    as a DynamoDB key it would fail every write (a 5xx, retried by Twilio to no end)."""
    if session_param and len(session_param.encode("utf-8")) > MAX_SESSION_ID_BYTES:
        raise MalformedRequest(f"{SESSION_PARAM}: longer than {MAX_SESSION_ID_BYTES} bytes")
    return session_param or call_sid
