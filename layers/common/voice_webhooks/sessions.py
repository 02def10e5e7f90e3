"""Session ids: one per `<Connect>` we emit, carried in every callback URL of that TwiML."""

from __future__ import annotations

import secrets

from voice_webhooks.public_urls import SESSION_PARAM

__all__ = ["SESSION_PARAM", "mint_session_id", "session_id_for_callback"]


def mint_session_id(call_sid: str) -> str:
    """`<CallSid>-<16 hex>`: traceable to the call at a glance, unique per `<Connect>` (a retried
    connect webhook opens a new session), and not guessable from the call."""
    return f"{call_sid}-{secrets.token_hex(8)}"


def session_id_for_callback(session_param: str | None, call_sid: str | None) -> str | None:
    """The session a callback belongs to: our `session` query parameter; for URLs configured by
    hand without it, the CallSid (documented fallback)."""
    return session_param or call_sid
