"""/voice/status deliveries: `<Conversation statusCallback>` events and call-progress events (a
number's "Call status changes" URL, a dialled leg's `statusCallback`, an outbound call's
`StatusCallback`). Each event is stored once under its session and stream, and each stream's
latest status moves forward only, whatever order and however many times Twilio delivers them
(docs/data-model.md).

Streams: `event#conversation#<seq>` (the `<Conversation>` events; latest on the session item),
`event#call#<CallSid>#<seq>` (one per call: the session's own call, latest on the session item as
`CallStatus`; a dialled leg, latest on its `leg#<CallSid>` item)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from voice_webhooks.callbacks.models import (
    CALL_PROGRESS_SOURCE,
    CallProgressCallback,
    StatusCallback,
    parse_params,
)
from voice_webhooks.calls.sessions import owned_session_id
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.errors import StorageError
from voice_webhooks.runtime.observability import MetricName, count, log_safe, logger, report_unknown_values
from voice_webhooks.storage.dynamo import (
    PARTITION,
    SORT,
    call_event_key,
    conversation_event_key,
    expires_at,
    utc_now,
)
from voice_webhooks.storage.events import EventStore
from voice_webhooks.storage.sessions import SessionStore, session_call_sid

# Parsed fields kept on each event item, under Twilio's parameter names.
CONVERSATION_FIELDS = (
    "Status",
    "Timestamp",
    "DialCallSid",
    "ConversationSid",
    "WorkerInitiated",
    "CallbackSource",
)
CALL_FIELDS = (
    "CallSid",
    "ParentCallSid",
    "CallStatus",
    "Timestamp",
    "CallDuration",
    "Duration",
    "Direction",
    "CallbackSource",
)
# Copied to the session item the first time an event carries them; never overwritten.
SESSION_FIRST_SEEN = ("ConversationSid", "DialCallSid", "WorkerInitiated")
# `Raw` (the parameters as received) per event item is kept within this many bytes (names and
# values, UTF-8, plus DynamoDB's per-element overhead). A parameter that does not fit is left out
# and the item says so (`RawTruncated`, `RawOmitted`, `RawBytes`); `RawDigest` still identifies
# the whole delivery, so a retry is recognised as one. Twilio's callbacks are about 1 KB.
RAW_BUDGET_BYTES = 16 * 1024
_RAW_ELEMENT_OVERHEAD = 2

Callback = StatusCallback | CallProgressCallback


class EventOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class StatusResult:
    outcome: EventOutcome
    session_advanced: bool
    item: Mapping[str, Any]
    """The event item kept for this key (on a conflict: the first one, not this delivery)."""
    session_id: str = ""
    stream: str = "conversation"


@dataclass(frozen=True)
class Stores:
    sessions: SessionStore
    events: EventStore

    @classmethod
    def for_table(cls, table_name: str) -> Stores:
        return cls(SessionStore(table_name), EventStore(table_name))


def is_call_progress(params: Mapping[str, str]) -> bool:
    """A `<Conversation>` event has `Status`; a call-progress event has `CallStatus` (and
    `CallbackSource=call-progress-events`) and no `Status`."""
    if params.get("Status"):
        return False
    return bool(params.get("CallStatus")) or params.get("CallbackSource") == CALL_PROGRESS_SOURCE


def parse_status_callback(params: Mapping[str, str]) -> Callback:
    if is_call_progress(params):
        return parse_params(CallProgressCallback, params)
    return parse_params(StatusCallback, params)


def resolve_session(request: WebhookRequest, callback: Callback, sessions: SessionStore) -> str:
    """The session of a status callback (docs/data-model.md, "Which session a callback joins"):
    `?session=` when given (owned by the call or its parent); otherwise the session `<CallSid>`
    if it exists (consistent read: a stream that started there stays there), else the newest
    connect session of the CallSid (ByCallSid index, eventually consistent), else the same two
    for ParentCallSid, else a new session `<CallSid>` (Origin `callback`)."""
    call_sid = callback.call_sid
    parent = callback.parent_call_sid if isinstance(callback, CallProgressCallback) else None
    if request.session_param or not call_sid:
        # The edge's middleware already scoped this same id into the log keys.
        return owned_session_id(request, call_sid, parent)
    for candidate in (call_sid, parent):
        if not candidate:
            continue
        if sessions.get_session(candidate) is not None:
            session_id = candidate
            break
        found = sessions.newest_connect_session(candidate)
        if found:
            session_id = found
            break
    else:
        session_id = call_sid
        count(MetricName.CALLBACK_SESSION_STARTED)
        logger.info("No session for this call: the callback starts one of its own")
    logger.append_keys(session_id=session_id)
    return session_id


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def raw_digest(raw: Mapping[str, str]) -> str:
    """Same parameters, same digest: tells a repeated delivery from a different one."""
    canonical = "\n".join(f"{name}={value}" for name, value in sorted(raw.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def raw_size(name: str, value: str) -> int:
    return len(name.encode("utf-8")) + len(value.encode("utf-8")) + _RAW_ELEMENT_OVERHEAD


def budgeted_raw(
    raw: Mapping[str, str], budget: int = RAW_BUDGET_BYTES
) -> tuple[dict[str, str], dict[str, Any]]:
    """The parameters kept in `Raw` (in the order received, each whole, skipping those that no
    longer fit), and the attributes that mark a truncation (empty when nothing was left out)."""
    kept: dict[str, str] = {}
    used = total = omitted = 0
    for name, value in raw.items():
        size = raw_size(name, value)
        total += size
        if used + size <= budget:
            kept[name] = value
            used += size
        else:
            omitted += 1
    if not omitted:
        return kept, {}
    return kept, {"RawTruncated": True, "RawOmitted": omitted, "RawBytes": total}


def event_item(
    callback: Callback, raw: Mapping[str, str], session_id: str, received_at: datetime, ttl_days: int
) -> dict[str, Any]:
    """The DynamoDB item for one status event. `<Conversation>` events carry no CallSid (Twilio
    sends none); call-progress events carry theirs."""
    parsed = callback.model_dump(by_alias=True)
    names: tuple[str, ...]
    if isinstance(callback, CallProgressCallback):
        names, stream = CALL_FIELDS, "call"
        item_key = call_event_key(callback.call_sid, callback.sequence_number)
    else:
        names, stream = CONVERSATION_FIELDS, "conversation"
        item_key = conversation_event_key(callback.sequence_number)
    kept_raw, truncation = budgeted_raw(raw)
    event_time = callback.timestamp or received_at
    return {
        PARTITION: session_id,
        SORT: item_key,
        "Stream": stream,
        "SequenceNumber": callback.sequence_number,
        **{name: _plain(parsed[name]) for name in names if parsed.get(name) is not None},
        "Raw": kept_raw,
        **truncation,
        "RawDigest": raw_digest(raw),
        "ReceivedAt": received_at.isoformat(),
        "EventTime": event_time.isoformat(),
        "ExpiresAt": expires_at(received_at, ttl_days),
    }


def same_delivery(stored: Mapping[str, Any], raw: Mapping[str, str]) -> bool:
    """A retry of a delivery carries exactly the parameters of the first one."""
    if stored.get("RawDigest"):
        return bool(stored["RawDigest"] == raw_digest(raw))
    return dict(stored.get("Raw") or {}) == dict(raw)


def differing_fields(stored: Mapping[str, Any], raw: Mapping[str, str]) -> list[str]:
    """Parameter names whose values differ (names only: values are not logged)."""
    first = dict(stored.get("Raw") or {})
    kept, _ = budgeted_raw(raw)
    return sorted(name[:64] for name in set(first) | set(kept) if first.get(name) != kept.get(name))[:40]


def record_status_callback(
    callback: Callback,
    raw: Mapping[str, str],
    session_id: str,
    stores: Stores,
    *,
    ttl_days: int,
    now: datetime | None = None,
) -> StatusResult:
    """Store the event once, then move its stream forward from the event as stored.

    The stream update runs for duplicates and conflicts too: if it failed on the first delivery
    (answered 5xx), Twilio's retry is a duplicate and must finish the work."""
    count(MetricName.STATUS_CALLBACK)
    received_at = now or utc_now()
    call_progress = isinstance(callback, CallProgressCallback)
    status = _plain(callback.call_status if call_progress else callback.status)  # type: ignore[union-attr]
    stream = "call" if call_progress else "conversation"
    fields = {"sequence_number": callback.sequence_number, "status": log_safe(str(status)), "stream": stream}
    report_unknown_values(callback.unknown_values(), "Unknown value in status callback: stored as received")

    item = event_item(callback, raw, session_id, received_at, ttl_days)
    if item.get("RawTruncated"):
        count(MetricName.RAW_TRUNCATED)
        logger.warning(
            "Status event parameters over their byte budget: stored truncated",
            extra={**fields, "raw_bytes": item["RawBytes"], "omitted": item["RawOmitted"]},
        )
    try:
        existing = stores.events.put_event(item)
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
                    "kept_status": existing.get("CallStatus" if call_progress else "Status"),
                    "differing": differing_fields(existing, raw),
                },
            )
        advanced = _advance_stream(callback, kept, session_id, stores, received_at, ttl_days)
    except StorageError as exc:
        count(MetricName.CALLBACK_STORAGE_FAILED)
        logger.error(
            "Status event not fully written: answering 5xx so Twilio retries",
            extra={**fields, "reason": str(exc)},
        )
        raise
    if not advanced and outcome is EventOutcome.STORED:
        count(MetricName.OUT_OF_ORDER_CALLBACK)
        logger.info("Status event older than the stream's latest: latest status unchanged", extra=fields)
    return StatusResult(outcome, advanced, kept, session_id, stream)


def _advance_stream(
    callback: Callback,
    kept: Mapping[str, Any],
    session_id: str,
    stores: Stores,
    received_at: datetime,
    ttl_days: int,
) -> bool:
    expiry = expires_at(received_at, ttl_days)
    now = received_at.isoformat()
    sequence = int(kept["SequenceNumber"])
    if not isinstance(callback, CallProgressCallback):
        return stores.sessions.advance_conversation_status(
            session_id,
            sequence_number=sequence,
            status=str(kept["Status"]),
            timestamp=kept.get("Timestamp"),
            identity={
                **{name: kept.get(name) for name in SESSION_FIRST_SEEN},
                "AccountSid": callback.account_sid,
                "ExpiresAt": expiry,
            },
            now=now,
        )
    if session_call_sid(session_id) == callback.call_sid:
        return stores.sessions.advance_call_status(
            session_id,
            sequence_number=sequence,
            call_status=str(kept["CallStatus"]),
            timestamp=kept.get("Timestamp"),
            duration=kept.get("CallDuration", kept.get("Duration")),
            identity={
                "AccountSid": callback.account_sid,
                "From": callback.from_,
                "To": callback.to,
                "Direction": callback.direction,
                "ParentCallSid": callback.parent_call_sid,
                "ExpiresAt": expiry,
            },
            now=now,
        )
    # A dialled leg of the session's call (the ownership rule allows nothing else here).
    return stores.events.advance_leg(
        session_id,
        callback.call_sid,
        sequence_number=sequence,
        call_status=str(kept["CallStatus"]),
        timestamp=kept.get("Timestamp"),
        first_seen={
            "ParentCallSid": callback.parent_call_sid,
            "To": callback.to,
            "AccountSid": callback.account_sid,
            "CallDuration": kept.get("CallDuration", kept.get("Duration")),
            "ExpiresAt": expiry,
        },
    )
