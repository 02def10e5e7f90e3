"""DynamoDB access for EventsTable: one partition per session.

`SequenceNumber = 0` is the session item (call identity, latest status, outcome, recordings);
`SequenceNumber >= 1` are the status-callback events. Every write is conditional, so duplicates
and reordering change nothing (see docs/data-model.md)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from voice_webhooks.errors import StorageError
from voice_webhooks.runtime.aws_clients import table

SESSION_SEQUENCE = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def expires_at(now: datetime, ttl_days: int) -> int:
    return int((now + timedelta(days=ttl_days)).timestamp())


class SessionItem(BaseModel):
    """The session item as written when the call is answered."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    session_id: str = Field(alias="SessionId")
    sequence_number: int = Field(SESSION_SEQUENCE, alias="SequenceNumber")
    call_sid: str = Field(alias="CallSid")
    account_sid: str = Field(alias="AccountSid")
    from_: str | None = Field(None, alias="From")
    to: str | None = Field(None, alias="To")
    direction: str | None = Field(None, alias="Direction")
    flow: str = Field(alias="Flow")
    flow_kind: str = Field(alias="FlowKind")
    created_at: str = Field(alias="CreatedAt")
    expires_at: int = Field(alias="ExpiresAt")

    def to_item(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class SessionStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self.table_name)

    def create_session(self, item: SessionItem) -> None:
        """Write the session item once; a second write for the same session is a no-op."""
        try:
            self._table.put_item(
                Item=item.to_item(),
                ConditionExpression="attribute_not_exists(SessionId)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise StorageError(f"DynamoDB put failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB unreachable: {type(exc).__name__}") from exc

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        try:
            response = self._table.get_item(
                Key={"SessionId": session_id, "SequenceNumber": SESSION_SEQUENCE}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"DynamoDB get failed: {type(exc).__name__}") from exc
        item = response.get("Item")
        return dict(item) if item else None

    # Status callbacks and recordings. Every write below is conditional or idempotent, so a
    # duplicate or reordered delivery changes nothing it should not (docs/data-model.md).

    def put_event(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write a status-event item once. Returns None when this call wrote it; otherwise the item
        already stored under that key (returned by the failed condition, no second read)."""
        try:
            self._table.put_item(
                Item=dict(item),
                ConditionExpression="attribute_not_exists(SessionId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise _storage_error("put event", exc) from exc
            existing = _old_item(exc)
            if existing is None:  # pragma: no cover - DynamoDB returns it when asked
                existing = self._get(item["SessionId"], int(item["SequenceNumber"]))
            return existing or {}
        except BotoCoreError as exc:
            raise _storage_error("put event", exc) from exc
        return None

    def advance_session_status(
        self,
        session_id: str,
        *,
        sequence_number: int,
        status: str,
        timestamp: str | None,
        first_seen: Mapping[str, Any],
        expires_at: int,
    ) -> bool:
        """Move the session's latest status to this event if it is newer than the latest one seen,
        and record `first_seen` attributes (ConversationSid, ...) only where still unset. Works
        when the session item does not exist yet (it is created, partial). True if moved."""
        known = {name: value for name, value in first_seen.items() if value is not None}
        names = {f"#f{index}": name for index, name in enumerate(known)}
        values: dict[str, Any] = {f":f{index}": value for index, value in enumerate(known.values())}
        keep_first = [f"#f{index} = if_not_exists(#f{index}, :f{index})" for index in range(len(known))]
        keep_first.append("ExpiresAt = if_not_exists(ExpiresAt, :expires)")
        values[":expires"] = expires_at
        sets = ["LatestStatus = :status", "LatestSequenceNumber = :seq", *keep_first]
        forward_values = {**values, ":status": status, ":seq": sequence_number}
        if timestamp:
            sets.append("LatestStatusTimestamp = :ts")
            forward_values[":ts"] = timestamp
            expression = "SET " + ", ".join(sets)
        else:
            expression = "SET " + ", ".join(sets) + " REMOVE LatestStatusTimestamp"
        try:
            self._table.update_item(
                Key=self._session_key(session_id),
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_not_exists(LatestSequenceNumber) OR LatestSequenceNumber < :seq"
                ),
                ExpressionAttributeValues=forward_values,
                **({"ExpressionAttributeNames": names} if names else {}),
            )
            return True
        except ClientError as exc:
            if not _condition_failed(exc):
                raise _storage_error("advance session status", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("advance session status", exc) from exc
        # An older event: the latest status stays, but what only this event carried is kept.
        try:
            self._table.update_item(
                Key=self._session_key(session_id),
                UpdateExpression="SET " + ", ".join(keep_first),
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("record session attributes", exc) from exc
        return False

    def ensure_recordings_map(self, session_id: str, expires_at: int) -> None:
        """Create the session's `Recordings` map if missing (and the session item with it):
        DynamoDB cannot SET `Recordings.<sid>` under a map that does not exist."""
        try:
            self._table.update_item(
                Key=self._session_key(session_id),
                UpdateExpression=(
                    "SET Recordings = if_not_exists(Recordings, :empty), "
                    "ExpiresAt = if_not_exists(ExpiresAt, :expires)"
                ),
                ExpressionAttributeValues={":empty": {}, ":expires": expires_at},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("create recordings map", exc) from exc

    def advance_recording(
        self,
        session_id: str,
        recording_sid: str,
        entry: Mapping[str, Any],
        *,
        terminal_statuses: Collection[str],
    ) -> tuple[bool, dict[str, Any]]:
        """Replace the recording's entry with `entry` unless its state is terminal or already
        `entry["Status"]`. Returns (applied, the session item after the attempt)."""
        terminal = sorted(terminal_statuses)
        placeholders = {f":t{index}": status for index, status in enumerate(terminal)}
        condition = (
            "attribute_not_exists(Recordings.#sid) OR "
            f"(NOT (Recordings.#sid.#status IN ({', '.join(placeholders)})) "
            "AND Recordings.#sid.#status <> :status)"
        )
        return self._update_session_item(
            "advance recording",
            session_id,
            UpdateExpression="SET Recordings.#sid = :entry",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#sid": recording_sid, "#status": "Status"},
            ExpressionAttributeValues={":entry": dict(entry), ":status": entry["Status"], **placeholders},
        )

    def claim_recording_delivery(
        self, session_id: str, recording_sid: str, *, claim_id: str, now_ms: int, lease_until_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Take the exclusive right to queue a completed, not yet queued recording until
        `lease_until_ms`. Returns (claimed, the session item after the attempt)."""
        return self._update_session_item(
            "claim recording delivery",
            session_id,
            UpdateExpression=(
                "SET Recordings.#sid.QueueClaimId = :claim, "
                "Recordings.#sid.QueueLeaseUntil = :until, "
                "Recordings.#sid.QueueAttempts = "
                "if_not_exists(Recordings.#sid.QueueAttempts, :zero) + :one"
            ),
            ConditionExpression=(
                "Recordings.#sid.#status = :completed AND attribute_not_exists(Recordings.#sid.QueuedAt) "
                "AND (attribute_not_exists(Recordings.#sid.QueueLeaseUntil) "
                "OR Recordings.#sid.QueueLeaseUntil < :now)"
            ),
            ExpressionAttributeNames={"#sid": recording_sid, "#status": "Status"},
            ExpressionAttributeValues={
                ":claim": claim_id,
                ":until": lease_until_ms,
                ":now": now_ms,
                ":zero": 0,
                ":one": 1,
                ":completed": "completed",
            },
        )

    def release_recording_claim(self, session_id: str, recording_sid: str, *, claim_id: str) -> None:
        """Give the claim back after a failed send so that the retry need not wait for the lease."""
        try:
            self._table.update_item(
                Key=self._session_key(session_id),
                UpdateExpression="REMOVE Recordings.#sid.QueueLeaseUntil",
                ConditionExpression="Recordings.#sid.QueueClaimId = :claim",
                ExpressionAttributeNames={"#sid": recording_sid},
                ExpressionAttributeValues={":claim": claim_id},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise _storage_error("release recording claim", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("release recording claim", exc) from exc

    def mark_recording_queued(
        self, session_id: str, recording_sid: str, *, claim_id: str, queued_at: str, message_id: str
    ) -> bool:
        """Record the sent message under our claim. False if the claim was lost meanwhile."""
        applied, _ = self._update_session_item(
            "mark recording queued",
            session_id,
            UpdateExpression=(
                "SET Recordings.#sid.QueuedAt = :at, Recordings.#sid.QueueMessageId = :message "
                "REMOVE Recordings.#sid.QueueLeaseUntil"
            ),
            ConditionExpression=(
                "Recordings.#sid.QueueClaimId = :claim AND attribute_not_exists(Recordings.#sid.QueuedAt)"
            ),
            ExpressionAttributeNames={"#sid": recording_sid},
            ExpressionAttributeValues={":claim": claim_id, ":at": queued_at, ":message": message_id},
            read_on_conflict=False,
        )
        return applied

    # The recording archiver (the reference RecordingsQueue consumer).

    def record_recording_archive(
        self, session_id: str, recording_sid: str, *, bucket: str, key: str, size: int, archived_at: str
    ) -> bool:
        """Record where the recording was archived; a redelivery keeps the first `ArchivedAt`.
        False (nothing written) when the session has no entry for this recording."""
        return self._update_recording(
            session_id,
            recording_sid,
            "SET Recordings.#sid.ArchiveBucket = :bucket, Recordings.#sid.ArchiveKey = :key, "
            "Recordings.#sid.ArchiveBytes = :size, "
            "Recordings.#sid.ArchivedAt = if_not_exists(Recordings.#sid.ArchivedAt, :at)",
            {":bucket": bucket, ":key": key, ":size": size, ":at": archived_at},
            action="record recording archive",
        )

    def record_recording_deleted_from_twilio(self, session_id: str, recording_sid: str, *, at: str) -> bool:
        """Record that Twilio's copy was deleted after the archive (first time kept)."""
        return self._update_recording(
            session_id,
            recording_sid,
            "SET Recordings.#sid.DeletedFromTwilioAt = "
            "if_not_exists(Recordings.#sid.DeletedFromTwilioAt, :at)",
            {":at": at},
            action="record recording deletion",
        )

    def _update_recording(
        self, session_id: str, recording_sid: str, expression: str, values: dict[str, Any], *, action: str
    ) -> bool:
        applied, _ = self._update_session_item(
            action,
            session_id,
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(Recordings.#sid)",
            ExpressionAttributeNames={"#sid": recording_sid},
            ExpressionAttributeValues=values,
            read_on_conflict=False,
        )
        return applied

    def _update_session_item(
        self, action: str, session_id: str, *, read_on_conflict: bool = True, **update: Any
    ) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem on the session item. Returns (True, the item after it) when
        applied; (False, the item as it stood) when its condition failed, from DynamoDB's ALL_OLD
        answer or else a consistent read (both skipped with `read_on_conflict=False`). Any other
        failure is a StorageError, so the route answers 5xx and Twilio retries."""
        if read_on_conflict:
            update = {"ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD", **update}
        try:
            response = self._table.update_item(Key=self._session_key(session_id), **update)
        except ClientError as exc:
            if not _condition_failed(exc):
                raise _storage_error(action, exc) from exc
            if not read_on_conflict:
                return False, {}
            return False, _old_item(exc) or self._get(session_id, SESSION_SEQUENCE) or {}
        except BotoCoreError as exc:
            raise _storage_error(action, exc) from exc
        return True, dict(response.get("Attributes") or {})

    @staticmethod
    def _session_key(session_id: str) -> dict[str, Any]:
        return {"SessionId": session_id, "SequenceNumber": SESSION_SEQUENCE}

    def _get(self, session_id: str, sequence_number: int) -> dict[str, Any] | None:
        try:
            response = self._table.get_item(
                Key={"SessionId": session_id, "SequenceNumber": sequence_number}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("get item", exc) from exc
        item = response.get("Item")
        return dict(item) if item else None

    # Action requests (/voice/action): one map per verb whose action request it was.

    def record_action(
        self,
        session_id: str,
        attribute: str,
        entry: Mapping[str, Any],
        *,
        call_sid: str,
        account_sid: str,
        expires_at: int,
        identity: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Store an action request's entry under `attribute` (ConnectAction, DialAction,
        RecordAction, OtherAction) once: the first delivery wins. Returns None when this call
        wrote it; otherwise the entry already stored (the caller compares fingerprints).

        The connect handler answers TwiML even when its session write fails, so the action request
        (which carries the same call identity) fills in what is missing: CallSid, AccountSid and
        `identity` (From, To, Direction, Flow) are set only where the item has none."""
        known = {name: value for name, value in (identity or {}).items() if value}
        fill = "".join(f", #id{i} = if_not_exists(#id{i}, :id{i})" for i in range(len(known)))
        try:
            self._table.update_item(
                Key=self._session_key(session_id),
                UpdateExpression=(
                    "SET #action = :entry, CallSid = if_not_exists(CallSid, :call), "
                    "AccountSid = if_not_exists(AccountSid, :account), "
                    "ExpiresAt = if_not_exists(ExpiresAt, :expires)" + fill
                ),
                ConditionExpression="attribute_not_exists(#action)",
                ExpressionAttributeNames={
                    "#action": attribute,
                    **{f"#id{i}": name for i, name in enumerate(known)},
                },
                ExpressionAttributeValues={
                    ":entry": {name: value for name, value in entry.items() if value is not None},
                    ":call": call_sid,
                    ":account": account_sid,
                    ":expires": expires_at,
                    **{f":id{i}": value for i, value in enumerate(known.values())},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise _storage_error("record action", exc) from exc
            existing = _old_item(exc) or self._get(session_id, SESSION_SEQUENCE) or {}
            return dict(existing.get(attribute) or {})
        except BotoCoreError as exc:
            raise _storage_error("record action", exc) from exc
        return None


_DESERIALIZER = TypeDeserializer()


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item DynamoDB returns with a failed condition (ReturnValuesOnConditionCheckFailure).
    The resource API leaves error responses in DynamoDB's wire format: deserialize it here."""
    raw = exc.response.get("Item")
    if not raw:
        return None
    return dict(_DESERIALIZER.deserialize({"M": raw}))


def _storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        return StorageError(f"DynamoDB {action} failed: {exc.response.get('Error', {}).get('Code')}")
    return StorageError(f"DynamoDB unreachable ({action}): {type(exc).__name__}")
