"""Recording items (`recording#<RecordingSid>`): one per recording, holding its state, the queue
claim (claim, send, mark; callbacks/recordings.py) and the archiver's record. Each recording is its
own bounded item, so no number of recordings can make another one fail."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from voice_webhooks.storage.dynamo import Table, recording_key

# Entry attributes a new state replaces: one the new state lacks is removed, as when the whole
# entry was replaced. Queue and archive attributes are never touched by a state change.
STATE_ATTRIBUTES = (
    "Status",
    "Duration",
    "Channels",
    "Source",
    "Url",
    "StartTime",
    "ErrorCode",
    "CallSid",
    "AccountSid",
    "UpdatedAt",
    "CompletedAt",
)


class RecordingStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def get_recording(self, session_id: str, recording_sid: str) -> dict[str, Any] | None:
        return self.table.get(session_id, recording_key(recording_sid), action="get recording")

    def advance_recording(
        self,
        session_id: str,
        recording_sid: str,
        entry: Mapping[str, Any],
        *,
        expires_at: int,
        terminal_statuses: Collection[str],
    ) -> tuple[bool, dict[str, Any]]:
        """Set the recording's state to `entry` unless its state is terminal or already
        `entry["Status"]`. Returns (applied, the recording item after the attempt)."""
        present = {name: value for name, value in entry.items() if value is not None}
        absent = [name for name in STATE_ATTRIBUTES if name not in present]
        names = {f"#a{i}": name for i, name in enumerate(present)}
        sets = [f"#a{i} = :a{i}" for i in range(len(present))]
        plain: dict[str, Any] = {f":a{i}": value for i, value in enumerate(present.values())}
        sets += ["RecordingSid = :sid", "ExpiresAt = if_not_exists(ExpiresAt, :expires)"]
        plain.update({":sid": recording_sid, ":expires": expires_at})
        removes = [f"#r{i}" for i in range(len(absent))]
        names.update({f"#r{i}": name for i, name in enumerate(absent)})
        terminal = sorted(terminal_statuses)
        placeholders = {f":t{i}": status for i, status in enumerate(terminal)}
        plain.update(placeholders)
        plain[":status"] = present["Status"]
        names["#status"] = "Status"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return self.table.update(
            session_id,
            recording_key(recording_sid),
            action="advance recording",
            expression=expression,
            names=names,
            plain_values=plain,
            condition=(
                "attribute_not_exists(#status) OR "
                f"(NOT (#status IN ({', '.join(placeholders)})) AND #status <> :status)"
            ),
            return_values="ALL_NEW",
            old_on_conflict=True,
        )

    def claim_recording_delivery(
        self, session_id: str, recording_sid: str, *, claim_id: str, now_ms: int, lease_until_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Take the exclusive right to queue a completed, not yet queued recording until
        `lease_until_ms`. Returns (claimed, the recording item after the attempt)."""
        return self.table.update(
            session_id,
            recording_key(recording_sid),
            action="claim recording delivery",
            expression=(
                "SET QueueClaimId = :claim, QueueLeaseUntil = :until, "
                "QueueAttempts = if_not_exists(QueueAttempts, :zero) + :one"
            ),
            names={"#status": "Status"},
            plain_values={
                ":claim": claim_id,
                ":until": lease_until_ms,
                ":now": now_ms,
                ":zero": 0,
                ":one": 1,
                ":completed": "completed",
            },
            condition=(
                "#status = :completed AND attribute_not_exists(QueuedAt) "
                "AND (attribute_not_exists(QueueLeaseUntil) OR QueueLeaseUntil < :now)"
            ),
            return_values="ALL_NEW",
            old_on_conflict=True,
        )

    def release_recording_claim(self, session_id: str, recording_sid: str, *, claim_id: str) -> None:
        """Give the claim back after a failed send so that the retry need not wait for the lease."""
        self._update_if(
            session_id,
            recording_sid,
            action="release recording claim",
            expression="REMOVE QueueLeaseUntil",
            plain_values={":claim": claim_id},
            condition="QueueClaimId = :claim",
        )

    def mark_recording_queued(
        self, session_id: str, recording_sid: str, *, claim_id: str, queued_at: str, message_id: str
    ) -> bool:
        """Record the sent message under our claim. False if the claim was lost meanwhile."""
        return self._update_if(
            session_id,
            recording_sid,
            action="mark recording queued",
            expression="SET QueuedAt = :at, QueueMessageId = :message REMOVE QueueLeaseUntil",
            plain_values={":claim": claim_id, ":at": queued_at, ":message": message_id},
            condition="QueueClaimId = :claim AND attribute_not_exists(QueuedAt)",
        )

    def mark_recovered_by(self, session_id: str, recording_sid: str, *, by: str) -> bool:
        """Who queued the recording when it was not its callback (the reconciler)."""
        return self._update_existing(
            session_id,
            recording_sid,
            action="mark recording recovered",
            expression="SET RecoveredBy = if_not_exists(RecoveredBy, :by)",
            plain_values={":by": by},
        )

    # The recording archiver (the reference RecordingsQueue consumer).

    def record_recording_archive(
        self, session_id: str, recording_sid: str, *, bucket: str, key: str, size: int, archived_at: str
    ) -> bool:
        """Record where the recording was archived; a redelivery keeps the first `ArchivedAt`.
        False (nothing written) when the session has no item for this recording."""
        return self._update_existing(
            session_id,
            recording_sid,
            action="record recording archive",
            expression=(
                "SET ArchiveBucket = :bucket, ArchiveKey = :key, ArchiveBytes = :size, "
                "ArchivedAt = if_not_exists(ArchivedAt, :at)"
            ),
            plain_values={":bucket": bucket, ":key": key, ":size": size, ":at": archived_at},
        )

    def record_recording_deleted_from_twilio(self, session_id: str, recording_sid: str, *, at: str) -> bool:
        """Record that Twilio's copy was deleted after the archive (first time kept)."""
        return self._update_existing(
            session_id,
            recording_sid,
            action="record recording deletion",
            expression="SET DeletedFromTwilioAt = if_not_exists(DeletedFromTwilioAt, :at)",
            plain_values={":at": at},
        )

    def _update_existing(
        self,
        session_id: str,
        recording_sid: str,
        *,
        action: str,
        expression: str,
        plain_values: dict[str, Any],
    ) -> bool:
        """An UpdateItem of a recording item that must exist already. False when it does not."""
        return self._update_if(
            session_id,
            recording_sid,
            action=action,
            expression=expression,
            plain_values=plain_values,
            condition="attribute_exists(RecordingSid)",
        )

    def _update_if(
        self,
        session_id: str,
        recording_sid: str,
        *,
        action: str,
        expression: str,
        plain_values: dict[str, Any],
        condition: str,
    ) -> bool:
        """One conditional UpdateItem of the recording's item: True if applied, False if its
        condition failed (any other failure is a StorageError)."""
        applied, _ = self.table.update(
            session_id,
            recording_key(recording_sid),
            action=action,
            expression=expression,
            plain_values=plain_values,
            condition=condition,
        )
        return applied
