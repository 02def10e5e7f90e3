"""Queueing a recovered recording through the recording route's own claim.

`handle_recording_callback` (callbacks/recordings.py) is called as the route calls it, with the
store it expects. `recording_route_store` is the ONE place that builds that store: until the
storage layer of the status-streams work is merged, the route's store keeps recordings in a map on
the old session item, so this module supplies `RecordingItemsStore`, the same interface over the
data model's `recording#<RecordingSid>` items (the attributes of that work's RecordingStore).
At the merge, `recording_route_store` returns the merged store and this class is deleted."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.reconcile.table import (
    PARTITION,
    SESSION_KEY,
    SORT,
    condition_failed,
    deserialize,
    dynamodb_client,
    recording_key,
    serialize,
    storage_error,
)

STATE_ATTRIBUTES: Final = (
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


def recording_route_store(table_name: str, client: Any | None = None) -> Any:
    """The `store` argument of handle_recording_callback. Merge: return the storage layer's
    recording store here (one line)."""
    return RecordingItemsStore(table_name, client)


class RecordingItemsStore:
    """The recording route's store interface (ensure_recordings_map, advance_recording,
    claim_recording_delivery, release_recording_claim, mark_recording_queued) on
    `recording#<sid>` items. Answers "session views": the session item's attributes with
    `Recordings = {sid: the recording item}`, which is what the route reads."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.name = table_name
        self.client = client if client is not None else dynamodb_client()
        self._expires: dict[str, int] = {}

    def ensure_recordings_map(self, session_id: str, expires_at: int) -> None:
        # Recording items need no map: remember the TTL for the item the next call writes.
        self._expires[session_id] = expires_at

    def advance_recording(
        self,
        session_id: str,
        recording_sid: str,
        entry: Mapping[str, Any],
        *,
        terminal_statuses: Collection[str],
    ) -> tuple[bool, dict[str, Any]]:
        present = {name: value for name, value in entry.items() if value is not None}
        absent = [name for name in STATE_ATTRIBUTES if name not in present]
        names = {f"#a{i}": name for i, name in enumerate(present)}
        sets = [f"#a{i} = :a{i}" for i in range(len(present))]
        values: dict[str, Any] = {f":a{i}": value for i, value in enumerate(present.values())}
        sets += ["RecordingSid = :sid", "ExpiresAt = if_not_exists(ExpiresAt, :expires)"]
        values.update({":sid": recording_sid, ":expires": self._expires.get(session_id, 0)})
        removes = [f"#r{i}" for i in range(len(absent))]
        names.update({f"#r{i}": name for i, name in enumerate(absent)})
        placeholders = {f":t{i}": status for i, status in enumerate(sorted(terminal_statuses))}
        values.update(placeholders)
        values[":status"] = present["Status"]
        names["#status"] = "Status"
        applied, item = self._update(
            "advance recording",
            session_id,
            recording_sid,
            expression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            names=names,
            values=values,
            condition=(
                "attribute_not_exists(#status) OR "
                f"(NOT (#status IN ({', '.join(placeholders)})) AND #status <> :status)"
            ),
        )
        return applied, {"Recordings": {recording_sid: item}}

    def claim_recording_delivery(
        self, session_id: str, recording_sid: str, *, claim_id: str, now_ms: int, lease_until_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        claimed, item = self._update(
            "claim recording delivery",
            session_id,
            recording_sid,
            expression=(
                "SET QueueClaimId = :claim, QueueLeaseUntil = :until, "
                "QueueAttempts = if_not_exists(QueueAttempts, :zero) + :one"
            ),
            names={"#status": "Status"},
            values={
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
        )
        # The message is built from the session too (Flow, ConversationSid, AccountSid).
        session = (self._get(session_id, SESSION_KEY) or {}) if claimed else {}
        return claimed, {**session, "Recordings": {recording_sid: item}}

    def release_recording_claim(self, session_id: str, recording_sid: str, *, claim_id: str) -> None:
        self._update(
            "release recording claim",
            session_id,
            recording_sid,
            expression="REMOVE QueueLeaseUntil",
            values={":claim": claim_id},
            condition="QueueClaimId = :claim",
            read=False,
        )

    def mark_recording_queued(
        self, session_id: str, recording_sid: str, *, claim_id: str, queued_at: str, message_id: str
    ) -> bool:
        applied, _ = self._update(
            "mark recording queued",
            session_id,
            recording_sid,
            expression="SET QueuedAt = :at, QueueMessageId = :message REMOVE QueueLeaseUntil",
            values={":claim": claim_id, ":at": queued_at, ":message": message_id},
            condition="QueueClaimId = :claim AND attribute_not_exists(QueuedAt)",
            read=False,
        )
        return applied

    def _update(
        self,
        action: str,
        session_id: str,
        recording_sid: str,
        *,
        expression: str,
        values: Mapping[str, Any],
        condition: str,
        names: Mapping[str, str] | None = None,
        read: bool = True,
    ) -> tuple[bool, dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize({PARTITION: session_id, SORT: recording_key(recording_sid)}),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": serialize(values),
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if read:
            request["ReturnValues"] = "ALL_NEW"
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error(action, exc) from exc
            if not read:
                return False, {}
            old = deserialize(exc.response.get("Item"))
            if old is None:
                old = self._get(session_id, recording_key(recording_sid))
            return False, old or {}
        except BotoCoreError as exc:
            raise storage_error(action, exc) from exc
        return True, deserialize(response.get("Attributes")) or {}

    def _get(self, session_id: str, item_key: str) -> dict[str, Any] | None:
        try:
            response = self.client.get_item(
                TableName=self.name,
                Key=serialize({PARTITION: session_id, SORT: item_key}),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error("get item", exc) from exc
        return deserialize(response.get("Item"))
