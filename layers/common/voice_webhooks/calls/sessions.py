"""Session ids: one per `<Connect>` we emit, carried in every callback URL of that TwiML; and the
ownership rule every callback route applies before it writes (docs/data-model.md)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from voice_webhooks.edge.public_urls import SESSION_PARAM
from voice_webhooks.errors import SessionMismatch
from voice_webhooks.runtime.observability import MetricName, count, logger

if TYPE_CHECKING:
    from voice_webhooks.edge.request import WebhookRequest

CALL_SID_LENGTH = 34

__all__ = ["SESSION_PARAM", "check_ownership", "mint_session_id", "owned_session_id"]


def mint_session_id(call_sid: str) -> str:
    """`<CallSid>-<16 hex>`: traceable to the call at a glance, unique per `<Connect>` (a retried
    connect webhook opens a new session), and not guessable from the call."""
    return f"{call_sid}-{secrets.token_hex(8)}"


def owned_session_id(
    request: WebhookRequest, call_sid: str | None, parent_call_sid: str | None = None
) -> str:
    """The session the callback names (`WebhookRequest.callback_session_id`: our `session` query
    parameter, checked, else the CallSid), once the ownership rule let it through."""
    session_id = request.callback_session_id()
    check_ownership(session_id, call_sid, parent_call_sid)
    return session_id


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
