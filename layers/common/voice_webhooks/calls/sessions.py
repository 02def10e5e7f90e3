"""Session ids: one per `<Connect>` we emit, carried in every callback URL of that TwiML; and the
ownership rule every callback route applies before it writes (docs/data-model.md)."""

from __future__ import annotations

import re
import secrets

from voice_webhooks.edge.public_urls import SESSION_PARAM
from voice_webhooks.errors import MalformedRequest, SessionMismatch
from voice_webhooks.runtime.observability import MetricName, count, logger

# `<CallSid>` (a session a callback started) or `<CallSid>-<16 hex>` (minted by connect).
SESSION_ID = re.compile(r"^CA[0-9a-fA-F]{32}(-[0-9a-f]{16})?$")
CALL_SID_LENGTH = 34

__all__ = ["SESSION_PARAM", "check_ownership", "mint_session_id", "session_id_for_callback"]


def mint_session_id(call_sid: str) -> str:
    """`<CallSid>-<16 hex>`: traceable to the call at a glance, unique per `<Connect>` (a retried
    connect webhook opens a new session), and not guessable from the call."""
    return f"{call_sid}-{secrets.token_hex(8)}"


def valid_session_param(session_param: str | None) -> str | None:
    """Our `session` query parameter, checked: anything no id of ours can be is a 400 (as a
    DynamoDB key it could fail every write, a 5xx retried by Twilio to no end)."""
    if not session_param:
        return None
    if not SESSION_ID.fullmatch(session_param):
        raise MalformedRequest(f"{SESSION_PARAM}: not a session id of this service")
    return session_param


def session_id_for_callback(session_param: str | None, call_sid: str | None) -> str | None:
    """The session a callback belongs to: our `session` query parameter; for URLs configured by
    hand without it, the CallSid (documented fallback)."""
    return valid_session_param(session_param) or call_sid


def check_ownership(session_id: str, call_sid: str | None, parent_call_sid: str | None = None) -> None:
    """A callback that carries a CallSid may only write to a session of that call, or of its
    parent call (a dialled leg). No read needed: the session id starts with its call's CallSid.
    Otherwise 403, counted, and nothing is written."""
    if not call_sid:
        return
    owner = session_id[:CALL_SID_LENGTH]
    if owner == call_sid or (parent_call_sid and owner == parent_call_sid):
        return
    count(MetricName.SESSION_MISMATCH)
    logger.warning(
        "Callback names a session of another call: refused, nothing written",
        extra={"session_id": session_id},
    )
    raise SessionMismatch("session belongs to another call")
