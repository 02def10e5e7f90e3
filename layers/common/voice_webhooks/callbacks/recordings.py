"""`recordingStatusCallback` deliveries (the `<Conversation record>` recordings and the voicemail
`<Record>`): each recording's state on its own item (`recording#<RecordingSid>`) moves forward
only, and the first time one reaches `completed` exactly one message goes to RecordingsQueue
(docs/queue-messages.md).

Queueing is claim, send, mark: a delivery first claims the recording with a conditional update
(a lease that ends with its own Lambda invocation), sends, then marks it queued. A concurrent
duplicate that finds the claim held answers 503, so Twilio retries it and that retry finds the
recording queued. A failed send releases the claim and answers 5xx, so Twilio's retry sends."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voice_webhooks.callbacks.models import RecordingStatus, RecordingStatusCallback
from voice_webhooks.errors import DependencyUnavailable, StorageError
from voice_webhooks.queues.recording_messages import RecordingPublisher, message_for
from voice_webhooks.runtime.observability import MetricName, count, log_safe, logger, report_unknown_values
from voice_webhooks.storage.dynamo import expires_at, utc_now
from voice_webhooks.storage.recordings import RecordingStore
from voice_webhooks.storage.sessions import SessionStore

TERMINAL_STATES = frozenset(
    status.value for status in (RecordingStatus.COMPLETED, RecordingStatus.ABSENT, RecordingStatus.FAILED)
)
# A claim lasts as long as the invocation holding it can live, plus this much for clock skew
# between Lambda hosts. Bounds for runs outside Lambda (local mode) or a misreported context.
LEASE_SKEW_MS = 250
MIN_LEASE_MS = 1_000
MAX_LEASE_MS = 30_000


class RecordingQueueBusy(DependencyUnavailable):
    """Another delivery of this recording is queueing it right now: 503, so Twilio retries and
    the retry sees the outcome."""


@dataclass(frozen=True)
class RecordingStores:
    recordings: RecordingStore
    sessions: SessionStore

    @classmethod
    def for_table(cls, table_name: str) -> RecordingStores:
        return cls(RecordingStore(table_name), SessionStore(table_name))


def recording_entry(callback: RecordingStatusCallback, received_at: datetime) -> dict[str, Any]:
    """The recording's state attributes on its item."""
    status = str(callback.recording_status)
    channels = None if callback.recording_channels is None else str(callback.recording_channels)
    entry: dict[str, Any] = {
        "Status": status,
        "Duration": callback.recording_duration,
        # 1 or 2 as a number; a value Twilio adds later is kept as received.
        "Channels": int(channels) if channels and channels.isdigit() else channels,
        "Source": callback.recording_source,
        "Url": callback.recording_url,
        "StartTime": callback.recording_start_time.isoformat() if callback.recording_start_time else None,
        "ErrorCode": callback.error_code,
        "CallSid": callback.call_sid,
        "AccountSid": callback.account_sid,
        "UpdatedAt": received_at.isoformat(),
    }
    if status == RecordingStatus.COMPLETED:
        entry["CompletedAt"] = received_at.isoformat()
    return {name: value for name, value in entry.items() if value is not None}


def needs_queueing(entry: Mapping[str, Any] | None) -> bool:
    if not entry:
        return False
    return entry.get("Status") == RecordingStatus.COMPLETED and not entry.get("QueuedAt")


@dataclass(frozen=True)
class RecordingResult:
    applied: bool
    """This delivery changed the recording's state."""
    status: str
    """The recording's state after this delivery."""
    queued_now: bool


def lease_until(now_ms: int, remaining_ms: int | None) -> int:
    remaining = remaining_ms if remaining_ms and remaining_ms > 0 else MAX_LEASE_MS
    return now_ms + min(max(remaining, MIN_LEASE_MS), MAX_LEASE_MS) + LEASE_SKEW_MS


def handle_recording_callback(
    callback: RecordingStatusCallback,
    session_id: str,
    store: RecordingStores,
    publisher: RecordingPublisher,
    *,
    ttl_days: int,
    remaining_ms: int | None = None,
    now: datetime | None = None,
) -> RecordingResult:
    count(MetricName.RECORDING_CALLBACK)
    received_at = now or utc_now()
    sid = callback.recording_sid
    status = str(callback.recording_status)
    fields = {"recording_sid": sid, "recording_status": log_safe(status)}
    report_unknown_values(
        callback.unknown_values(), "Unknown value in recording callback: stored as received"
    )

    try:
        applied, entry = store.recordings.advance_recording(
            session_id,
            sid,
            recording_entry(callback, received_at),
            expires_at=expires_at(received_at, ttl_days),
            terminal_statuses=TERMINAL_STATES,
        )
    except StorageError as exc:
        count(MetricName.CALLBACK_STORAGE_FAILED)
        logger.error(
            "Recording state not written: answering 5xx so Twilio retries",
            extra={**fields, "reason": str(exc)},
        )
        raise
    current = str(entry.get("Status", status))
    if applied:
        _report_transition(status, callback, fields)
    elif current == status:
        count(MetricName.DUPLICATE_CALLBACK)
        logger.info("Duplicate recording callback: state unchanged", extra=fields)
    else:
        count(MetricName.OUT_OF_ORDER_CALLBACK)
        logger.info(
            "Recording callback behind the stored state: ignored", extra={**fields, "stored_status": current}
        )

    queued_now = False
    if needs_queueing(entry):
        # Whichever delivery finds it completed and unqueued sends it: the first completed one,
        # or a retry after a failed send, or any later duplicate.
        queued_now = _queue_once(session_id, sid, store, publisher, received_at, remaining_ms, fields)
    return RecordingResult(applied=applied, status=current, queued_now=queued_now)


def _report_transition(status: str, callback: RecordingStatusCallback, fields: dict[str, str]) -> None:
    if status == RecordingStatus.ABSENT:
        count(MetricName.RECORDING_ABSENT)
        logger.warning(
            "Recording absent (too short or silent): not queued",
            extra={**fields, "error_code": callback.error_code},
        )
    elif status == RecordingStatus.FAILED:
        count(MetricName.RECORDING_FAILED)
        logger.error("Recording failed: not queued", extra={**fields, "error_code": callback.error_code})
    else:
        logger.info("Recording state recorded", extra={**fields, "duration": callback.recording_duration})


def _queue_once(
    session_id: str,
    sid: str,
    store: RecordingStores,
    publisher: RecordingPublisher,
    now: datetime,
    remaining_ms: int | None,
    fields: dict[str, str],
) -> bool:
    claim_id = uuid.uuid4().hex
    now_ms = int(now.timestamp() * 1000)
    try:
        claimed, entry = store.recordings.claim_recording_delivery(
            session_id,
            sid,
            claim_id=claim_id,
            now_ms=now_ms,
            lease_until_ms=lease_until(now_ms, remaining_ms),
        )
    except StorageError as exc:
        count(MetricName.CALLBACK_STORAGE_FAILED)
        logger.error(
            "Recording not claimed for queueing: answering 5xx", extra={**fields, "reason": str(exc)}
        )
        # The claim may have been applied with only its answer lost: left leased, it would turn
        # Twilio's retries away (503) until the lease ends.
        _release_quietly(store, session_id, sid, claim_id, fields)
        raise
    if not claimed:
        if entry.get("QueuedAt"):
            return False
        # Our own claim id means our claim: the SDK's first attempt was applied, its answer lost,
        # and the retry failed the condition on it.
        if entry.get("QueueClaimId") != claim_id:
            count(MetricName.RECORDING_QUEUE_BUSY)
            logger.info("Recording being queued by another delivery: answering 503", extra=fields)
            raise RecordingQueueBusy("recording is being queued by a concurrent delivery; retry")

    try:
        # ConversationSid and Flow of the session go into the message; the recording's own
        # item holds everything else.
        session = store.sessions.get_session(session_id)
        message = message_for(session_id, session, entry)
        message_id = publisher.publish(message)
    except StorageError as exc:
        count(MetricName.RECORDING_QUEUE_FAILED)
        logger.error(
            "Recording not queued: answering 5xx so Twilio retries", extra={**fields, "reason": str(exc)}
        )
        _release_quietly(store, session_id, sid, claim_id, fields)
        raise

    count(MetricName.RECORDING_QUEUED)
    logger.info("Recording queued", extra={**fields, "message_id": message_id, "kind": message.kind})
    try:
        marked = store.recordings.mark_recording_queued(
            session_id, sid, claim_id=claim_id, queued_at=utc_now().isoformat(), message_id=message_id
        )
    except StorageError as exc:
        # The message is out: answering 5xx would make Twilio's retry send it again. The entry
        # stays claimed-not-marked; a later delivery after the lease may resend (consumers dedupe).
        count(MetricName.RECORDING_MARK_FAILED)
        logger.error("Recording queued but not marked queued", extra={**fields, "reason": str(exc)})
        return True
    if not marked:
        count(MetricName.RECORDING_MARK_FAILED)
        logger.error("Recording queued but the claim was lost before marking", extra=fields)
    return True


def _release_quietly(
    store: RecordingStores, session_id: str, sid: str, claim_id: str, fields: dict[str, str]
) -> None:
    """Give our claim back (a no-op when it was never taken), so that the retry need not wait."""
    try:
        store.recordings.release_recording_claim(session_id, sid, claim_id=claim_id)
    except StorageError as exc:
        # The lease still ends with this invocation; the retry waits for it at worst.
        logger.warning("Claim not released", extra={**fields, "reason": str(exc)})
