"""`<Conversation statusCallback>` deliveries: each event stored once under its session and
Twilio's `SequenceNumber`, and the session's latest status moved forward only, whatever order and
however many times Twilio delivers them (docs/data-model.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from voice_webhooks.callbacks.models import StatusCallback
from voice_webhooks.calls.sessions import session_id_for_callback
from voice_webhooks.edge.public_urls import SESSION_PARAM
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.errors import MalformedRequest, StorageError
from voice_webhooks.runtime.observability import MetricName, count, log_safe, logger
from voice_webhooks.storage.session_store import SessionStore, expires_at, utc_now

# Parsed fields kept on each event item, under Twilio's parameter names.
EVENT_FIELDS = ("Status", "Timestamp", "DialCallSid", "ConversationSid", "WorkerInitiated", "CallbackSource")
# Copied to the session item the first time an event carries them; never overwritten.
SESSION_FIRST_SEEN = ("ConversationSid", "DialCallSid", "WorkerInitiated")


class EventOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class StatusResult:
    outcome: EventOutcome
    session_advanced: bool
    item: Mapping[str, Any]
    """The event item kept for this SequenceNumber (on a conflict: the first one, not this delivery)."""


def twilio_params(request: WebhookRequest) -> dict[str, str]:
    """Twilio's parameters as received. For GET callbacks Twilio appends its parameters to the
    query string of our URL, so our own `session` parameter is dropped from them."""
    params = dict(request.params)
    if request.method == "GET":
        params.pop(SESSION_PARAM, None)
    return params


def callback_session_id(request: WebhookRequest, call_sid: str | None) -> str:
    session_id = session_id_for_callback(request.session_id, call_sid)
    if not session_id:
        raise MalformedRequest(
            f"no session: the URL has no `{SESSION_PARAM}` parameter and there is no CallSid"
        )
    # The middleware only knows the query parameter; the CallSid fallback is added here.
    logger.append_keys(session_id=session_id)
    return session_id


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def event_item(
    callback: StatusCallback, raw: Mapping[str, str], session_id: str, received_at: datetime, ttl_days: int
) -> dict[str, Any]:
    """The DynamoDB item for one status event. No top-level CallSid: the ByCallSid index lists
    sessions, not events (the CallSid, when Twilio sends one, stays in `Raw`)."""
    parsed = callback.model_dump(
        by_alias=True,
        include={
            "status",
            "timestamp",
            "dial_call_sid",
            "conversation_sid",
            "worker_initiated",
            "callback_source",
        },
    )
    item: dict[str, Any] = {
        "SessionId": session_id,
        "SequenceNumber": callback.sequence_number,
        **{name: _plain(parsed[name]) for name in EVENT_FIELDS if parsed.get(name) is not None},
        "Raw": dict(raw),
        "ReceivedAt": received_at.isoformat(),
        "ExpiresAt": expires_at(received_at, ttl_days),
    }
    return item


def same_delivery(stored: Mapping[str, Any], raw: Mapping[str, str]) -> bool:
    """A retry of a delivery carries exactly the parameters of the first one."""
    return dict(stored.get("Raw") or {}) == dict(raw)


def differing_fields(stored: Mapping[str, Any], raw: Mapping[str, str]) -> list[str]:
    """Parameter names whose values differ (names only: values are not logged)."""
    first = dict(stored.get("Raw") or {})
    return sorted(name for name in set(first) | set(raw) if first.get(name) != raw.get(name))


def record_status_callback(
    callback: StatusCallback,
    raw: Mapping[str, str],
    session_id: str,
    store: SessionStore,
    *,
    ttl_days: int,
    now: datetime | None = None,
) -> StatusResult:
    """Store the event once, then move the session forward from the event as stored.

    The session update runs for duplicates and conflicts too: if it failed on the first delivery
    (answered 5xx), Twilio's retry is a duplicate and must finish the work."""
    count(MetricName.STATUS_CALLBACK)
    received_at = now or utc_now()
    sequence = callback.sequence_number
    fields = {"sequence_number": sequence, "status": log_safe(_plain(callback.status))}
    for name, value in callback.unknown_values().items():
        count(MetricName.UNKNOWN_VALUE)
        logger.warning(
            "Unknown value in status callback: stored as received",
            extra={"field": name, "value": log_safe(value)},
        )

    item = event_item(callback, raw, session_id, received_at, ttl_days)
    try:
        existing = store.put_event(item)
        if existing is None:
            outcome, kept = EventOutcome.STORED, item
            count(MetricName.STATUS_EVENT_STORED)
            logger.info("Status event stored", extra=fields)
        elif same_delivery(existing, raw):
            outcome, kept = EventOutcome.DUPLICATE, existing
            count(MetricName.DUPLICATE_CALLBACK)
            logger.info("Duplicate status event: nothing written", extra=fields)
        else:
            outcome, kept = EventOutcome.CONFLICT, existing
            count(MetricName.CONFLICTING_CALLBACK)
            logger.warning(
                "Status event reuses a SequenceNumber with different content: the first one is kept",
                extra={
                    **fields,
                    "kept_status": existing.get("Status"),
                    "differing": differing_fields(existing, raw),
                },
            )
        advanced = store.advance_session_status(
            session_id,
            sequence_number=int(kept["SequenceNumber"]),
            status=str(kept["Status"]),
            timestamp=kept.get("Timestamp"),
            first_seen={
                **{name: kept.get(name) for name in SESSION_FIRST_SEEN},
                "AccountSid": callback.account_sid,
                "CallSid": callback.call_sid,
            },
            expires_at=expires_at(received_at, ttl_days),
        )
    except StorageError as exc:
        count(MetricName.CALLBACK_STORAGE_FAILED)
        logger.error(
            "Status event not fully written: answering 5xx so Twilio retries",
            extra={**fields, "reason": str(exc)},
        )
        raise
    if not advanced and outcome is EventOutcome.STORED:
        count(MetricName.OUT_OF_ORDER_CALLBACK)
        logger.info("Status event older than the session's latest: latest status unchanged", extra=fields)
    return StatusResult(outcome=outcome, session_advanced=advanced, item=kept)
