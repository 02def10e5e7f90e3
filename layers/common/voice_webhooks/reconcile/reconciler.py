"""One reconciliation run (docs/reconciliation.md).

1. The ByReconcileDue index lists open sessions (no final call status) whose `ReconcileAt` is at
   least the grace period old, oldest first, at most `max_sessions`.
2. Worker threads (bounded) read each session consistently (the index lags) and fetch the call and
   its recordings from Twilio's REST API, through one rate gate (request budget, 429 pause).
3. The main thread writes, per session, in an order that makes a failure anywhere harmless: the
   recordings first (through the recording route's claim: queued exactly once), then the
   `event#reconciled#<CallSid>` item, then the session (its CallStatus only if it has no final
   status: what Twilio delivered wins; the shard removed). A write that fails leaves the session
   open and due: the next run redoes it, and every write is conditional.
4. A session that cannot be settled (call still in progress, API error, not found, a recording still
   processing) is deferred with exponential backoff, and given up after `max_attempts`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from voice_webhooks.archiver.download import BasicCredentials
from voice_webhooks.callbacks.models import RecordingStatusCallback, parse_params
from voice_webhooks.callbacks.recordings import RecordingQueueBusy, handle_recording_callback
from voice_webhooks.errors import MalformedRequest, StorageError
from voice_webhooks.queues.recording_messages import RecordingPublisher
from voice_webhooks.reconcile.twilio_api import (
    ApiCall,
    ApiError,
    ApiNotFound,
    ApiRecording,
    RunStopped,
    TwilioRestClient,
)
from voice_webhooks.runtime.observability import count, logger
from voice_webhooks.storage.dynamo import PARTITION, RECONCILED_STREAM, SORT, reconciled_event_key
from voice_webhooks.storage.events import EventStore
from voice_webhooks.storage.recordings import RecordingStore
from voice_webhooks.storage.sessions import SessionStore, has_final_status

CALL_SID_LENGTH = 34
# Recording states the recording route knows as terminal; `deleted` means Twilio's copy is gone
# (nothing left to queue). Anything else (processing, in-progress, paused, stopped) is pending.
FED_RECORDING_STATES = frozenset({"completed", "absent", "failed"})
GONE_RECORDING_STATES = frozenset({"deleted"})


class ReconcileMetric:
    DUE = "ReconcileDue"
    SESSIONS_RECONCILED = "SessionsReconciled"
    """Sessions whose final status came from the API (Twilio's final callback never reached us)."""
    RECORDINGS_RECOVERED = "RecordingsRecovered"
    API_FAILURES = "ReconcileApiFailures"
    GAVE_UP = "ReconcileGaveUp"
    DEFERRED = "ReconcileDeferred"
    STORAGE_FAILED = "ReconcileStorageFailed"
    THROTTLED = "ReconcileThrottled"
    NOT_REACHED = "ReconcileNotReached"


class Outcome(StrEnum):
    RECONCILED = "reconciled"
    """Final status written from the API, session closed."""
    CLOSED = "closed"
    """The session had its final status (from Twilio) already: recordings checked, session closed."""
    DEFERRED = "deferred"
    GAVE_UP = "gave-up"
    SKIPPED = "skipped"
    """Settled meanwhile (the index lags), or gone."""
    NOT_REACHED = "not-reached"
    """The run stopped making requests first (budget, deadline, 429): untouched, still due."""
    STORAGE_FAILED = "storage-failed"
    """A write failed: left open and due; the next run redoes it."""


@dataclass(frozen=True)
class Policy:
    grace: timedelta = timedelta(minutes=15)
    max_sessions: int = 200
    concurrency: int = 4
    max_attempts: int = 12
    backoff_base: timedelta = timedelta(minutes=5)
    backoff_cap: timedelta = timedelta(hours=2)
    ttl_days: int = 90

    def backoff(self, attempts_before: int) -> timedelta:
        """Delay after the (attempts_before + 1)th failed attempt: base, 2x base, 4x base ... cap."""
        delay: timedelta = self.backoff_base * (2 ** min(attempts_before, 30))
        return delay if delay < self.backoff_cap else self.backoff_cap


@dataclass
class Fetched:
    session_id: str
    session: dict[str, Any] | None = None
    call: ApiCall | None = None
    recordings: list[ApiRecording] = field(default_factory=list)
    problem: str | None = None
    """`not-found` or `api-error` when the API gave no usable answer."""
    stopped: bool = False


@dataclass
class RunReport:
    due: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    api_failures: int = 0
    requests: int = 0
    throttled: int = 0

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1

    def get(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome.value, 0)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _rfc2822_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return iso(parsed) if parsed.tzinfo else None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


@dataclass
class Reconciler:
    sessions: SessionStore
    events: EventStore
    recordings: RecordingStore
    api: TwilioRestClient
    credentials: Callable[[str], Sequence[BasicCredentials]]
    """AccountSid -> the Basic credentials to try, in order (the secondary token during a rotation)."""
    claim_store: Any
    """The recording route's store (claim_store.recording_route_store)."""
    publisher: RecordingPublisher
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = _utc_now

    def run(self) -> RunReport:
        report = RunReport()
        now = self.clock()
        due = self.sessions.due_for_reconciliation(
            cutoff=iso(now - self.policy.grace), limit=self.policy.max_sessions
        )
        report.due = len(due)
        session_ids = list(dict.fromkeys(str(item[PARTITION]) for item in due))
        with ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="reconcile") as pool:
            fetched = list(pool.map(self._fetch, session_ids))
        for one in fetched:
            outcome = self._settle(one, report)
            report.add(outcome)
        report.requests = self.api.gate.requests
        report.throttled = self.api.gate.throttled
        self._emit(report)
        return report

    # --- phase 1: reads (worker threads; no writes, no metrics) ----------------------------------

    def _fetch(self, session_id: str) -> Fetched:
        result = Fetched(session_id)
        try:
            result.session = self.sessions.get_session(session_id)
        except StorageError:
            result.problem = "storage"
            return result
        session = result.session
        if not session or not session.get("ReconcileShard"):
            return result
        account_sid = str(session.get("AccountSid") or "")
        call_sid = str(session.get("SessionCallSid") or session_id[:CALL_SID_LENGTH])
        try:
            credentials = self.credentials(account_sid)
            # Twilio's final status arrived: only its recordings are left to check (one request).
            if not has_final_status(session):
                result.call = self.api.fetch_call(account_sid, call_sid, credentials)
            if result.call is None or result.call.final:
                result.recordings = self.api.list_recordings(account_sid, call_sid, credentials)
        except RunStopped:
            result.stopped = True
        except ApiNotFound as exc:
            result.problem = "not-found"
            logger.info("Call not found on Twilio", extra={"session_id": session_id, "reason": exc.reason})
        except ApiError as exc:
            result.problem = "api-error"
            logger.warning("Twilio API failed", extra={"session_id": session_id, "reason": exc.reason})
        except StorageError:  # the secret (credentials) could not be read
            result.problem = "api-error"
            logger.warning("Twilio credentials unavailable", extra={"session_id": session_id})
        return result

    # --- phase 2: writes (main thread) --------------------------------------------------------

    def _settle(self, fetched: Fetched, report: RunReport) -> Outcome:
        session_id = fetched.session_id
        session = fetched.session
        fields = {"session_id": session_id}
        if fetched.problem == "storage":
            return Outcome.STORAGE_FAILED
        if not session or not session.get("ReconcileShard"):
            return Outcome.SKIPPED
        if fetched.stopped:
            return Outcome.NOT_REACHED
        try:
            if fetched.problem is not None:
                if fetched.problem == "api-error":
                    report.api_failures += 1
                return self._defer(session, fetched.problem)
            call = fetched.call
            if call is not None and not call.final:
                return self._defer(session, f"call-{call.status}")
            pending, recovered = self._recordings(session_id, fetched.recordings)
            report.recovered += recovered
            return self._record_final(session, call, pending=pending)
        except StorageError as exc:
            logger.error(
                "Reconciler write failed: the session stays due", extra={**fields, "reason": str(exc)}
            )
            return Outcome.STORAGE_FAILED

    def _recordings(self, session_id: str, recordings: Iterable[ApiRecording]) -> tuple[bool, int]:
        """Feed each recording to the recording route, as its callback would. (pending, queued now)"""
        pending = False
        recovered = 0
        for recording in recordings:
            if recording.status in GONE_RECORDING_STATES:
                continue
            if recording.status not in FED_RECORDING_STATES:
                pending = True
                continue
            try:
                callback = parse_params(RecordingStatusCallback, self._callback_params(recording))
            except MalformedRequest as exc:
                # Not Twilio's usual answer: counted, and the session waits for a readable one.
                logger.warning(
                    "Recording resource unreadable", extra={"session_id": session_id, "reason": exc.reason}
                )
                pending = True
                continue
            try:
                result = handle_recording_callback(
                    callback,
                    session_id,
                    self.claim_store,
                    self.publisher,
                    ttl_days=self.policy.ttl_days,
                    remaining_ms=None,
                    now=self.clock(),
                )
            except RecordingQueueBusy:
                # A Twilio delivery holds the claim right now: it queues; we look again later.
                pending = True
                continue
            if result.queued_now:
                recovered += 1
                self._mark_recovered(session_id, recording.sid)
                logger.warning(
                    "Recording recovered: its callback never reached us",
                    extra={"session_id": session_id, "recording_sid": recording.sid},
                )
        return pending, recovered

    def _mark_recovered(self, session_id: str, recording_sid: str) -> None:
        """Best effort: the message is out; a failure here must not hold the session (the next
        run would see the recording queued and could not know who queued it anyway)."""
        try:
            self.recordings.mark_recovered_by(session_id, recording_sid, by="reconciler")
        except StorageError as exc:
            logger.warning(
                "RecoveredBy not recorded",
                extra={"session_id": session_id, "recording_sid": recording_sid, "reason": str(exc)},
            )

    def _callback_params(self, recording: ApiRecording) -> dict[str, str]:
        params = {
            "AccountSid": recording.account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": recording.sid,
            "RecordingStatus": recording.status,
            "RecordingUrl": self.api.recording_url(recording),
            "RecordingDuration": recording.duration,
            "RecordingChannels": None if recording.channels is None else str(recording.channels),
            "RecordingSource": recording.source,
            "RecordingStartTime": recording.start_time,
            "ErrorCode": None if recording.error_code in (None, 0, "0") else str(recording.error_code),
        }
        return {name: value for name, value in params.items() if value is not None}

    def _record_final(self, session: dict[str, Any], call: ApiCall | None, *, pending: bool) -> Outcome:
        """`call` is None when Twilio's final status was there already (it was not asked for)."""
        session_id = str(session[PARTITION])
        now = self.clock()
        if call is None:
            if pending:
                return self._defer(session, "recording-pending")
            self.sessions.close_reconciliation(session_id, reconciled_at=iso(now))
            return Outcome.CLOSED
        self.events.put_reconciled_event(self._event_item(session_id, call, now))

        def settle(*, close: bool) -> bool:
            return self.sessions.settle_reconciled(
                session_id,
                call_status=call.status,
                timestamp=_rfc2822_iso(call.end_time),
                duration=_int(call.duration),
                reconciled_at=iso(now),
                close=close,
            )

        if pending:
            # The call is final, a recording is not yet: record the status, keep the session open
            # for the recording.
            settle(close=False)
            return self._defer(session, "recording-pending")
        if settle(close=True):
            logger.warning(
                "Session reconciled: its final status callback never reached us",
                extra={"session_id": session_id, "call_status": call.status},
            )
            return Outcome.RECONCILED
        # Twilio's final status is there (before the run, or it arrived meanwhile): it stays.
        self.sessions.close_reconciliation(session_id, reconciled_at=iso(now))
        return Outcome.CLOSED

    def _event_item(self, session_id: str, call: ApiCall, now: datetime) -> dict[str, Any]:
        ended = _rfc2822_iso(call.end_time)
        # The resource as read, minus what identifies people (from, to, caller name): bounded.
        raw = call.model_dump(exclude_none=True)
        return {
            PARTITION: session_id,
            SORT: reconciled_event_key(call.sid),
            "Stream": RECONCILED_STREAM,
            "Reconciled": True,
            "CallbackSource": "reconciler",
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "ParentCallSid": call.parent_call_sid,
            "CallStatus": call.status,
            "Timestamp": ended,
            "CallDuration": _int(call.duration),
            "Raw": json.dumps(raw, sort_keys=True),
            "ReceivedAt": iso(now),
            "EventTime": ended or iso(now),
            "ExpiresAt": int((now + timedelta(days=self.policy.ttl_days)).timestamp()),
        }

    def _defer(self, session: dict[str, Any], reason: str) -> Outcome:
        session_id = str(session[PARTITION])
        attempts = _int(session.get("ReconcileAttempts")) or 0
        now = self.clock()
        fields = {"session_id": session_id, "reason": reason, "attempts": attempts + 1}
        if attempts + 1 >= self.policy.max_attempts:
            if self.sessions.give_up_reconciliation(
                session_id, attempts_before=attempts, reason=reason, at=iso(now)
            ):
                logger.error("Reconciliation given up for this session", extra=fields)
                return Outcome.GAVE_UP
            return Outcome.SKIPPED
        next_at = now + self.policy.backoff(attempts)
        if self.sessions.defer_reconciliation(session_id, attempts_before=attempts, next_at=iso(next_at)):
            logger.info("Session not settled yet: deferred", extra={**fields, "next_at": iso(next_at)})
            return Outcome.DEFERRED
        return Outcome.SKIPPED

    @staticmethod
    def _emit(report: RunReport) -> None:
        count(ReconcileMetric.DUE, report.due)
        count(ReconcileMetric.SESSIONS_RECONCILED, report.get(Outcome.RECONCILED))
        count(ReconcileMetric.RECORDINGS_RECOVERED, report.recovered)
        count(ReconcileMetric.API_FAILURES, report.api_failures)
        count(ReconcileMetric.GAVE_UP, report.get(Outcome.GAVE_UP))
        count(ReconcileMetric.DEFERRED, report.get(Outcome.DEFERRED))
        count(ReconcileMetric.STORAGE_FAILED, report.get(Outcome.STORAGE_FAILED))
        count(ReconcileMetric.THROTTLED, report.throttled)
        count(ReconcileMetric.NOT_REACHED, report.get(Outcome.NOT_REACHED))
        logger.info(
            "Reconciliation run",
            extra={
                "report": {
                    **report.outcomes,
                    "due": report.due,
                    "recovered": report.recovered,
                    "api_failures": report.api_failures,
                    "requests": report.requests,
                    "throttled": report.throttled,
                }
            },
        )
