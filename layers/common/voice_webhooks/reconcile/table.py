"""The reconciler's EventsTable access (docs/data-model.md; DynamoDB client API).

Self-contained until the storage layer of the status-streams work is merged: keys and attribute
names follow the data model exactly (`session`, `event#reconciled#<CallSid>`, the sparse
`ByReconcileDue` index on `ReconcileShard`/`ReconcileAt`). Every write is conditional, so a run
that fails halfway, or two runs at once, change nothing twice."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.errors import StorageError
from voice_webhooks.runtime import aws_clients

PARTITION: Final = "SessionId"
SORT: Final = "ItemKey"
SESSION_KEY: Final = "session"
BY_RECONCILE_DUE: Final = "ByReconcileDue"
RECONCILE_OPEN: Final = "open"
RECONCILED_STREAM: Final = "reconciled"
FINAL_CALL_STATUSES: Final = ("busy", "canceled", "completed", "failed", "no-answer")
CONVERSATION_FINAL_STATUS: Final = "call-completed"

# Not inside Twilio's 15 s like the webhooks: a scheduled run can afford patience per call.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def reconciled_event_key(call_sid: str) -> str:
    return f"event#reconciled#{call_sid}"


def recording_key(recording_sid: str) -> str:
    return f"recording#{recording_sid}"


def dynamodb_client() -> Any:
    """A client of boto3's default session (the one every other client uses)."""
    if boto3.DEFAULT_SESSION is None:
        aws_clients.session()
    return boto3.DEFAULT_SESSION.client("dynamodb", config=_CONFIG)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values -> wire format; None is never stored."""
    return {name: _SERIALIZER.serialize(value) for name, value in item.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value


def deserialize(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in raw.items()}


def condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        return StorageError(f"DynamoDB {action} failed: {exc.response.get('Error', {}).get('Code')}")
    return StorageError(f"DynamoDB unreachable ({action}): {type(exc).__name__}")


def _finals() -> dict[str, str]:
    return {f":f{i}": status for i, status in enumerate(FINAL_CALL_STATUSES)}


# A final status Twilio (or an earlier run) already recorded: the call-progress stream's final
# CallStatus, or the <Conversation> stream's call-completed.
NOT_FINAL_CONDITION: Final = (
    f"(attribute_not_exists(CallStatus) OR NOT (CallStatus IN ({', '.join(_finals())}))) "
    "AND (attribute_not_exists(LatestStatus) OR LatestStatus <> :done)"
)


def has_final_status(session: Mapping[str, Any]) -> bool:
    return session.get("CallStatus") in FINAL_CALL_STATUSES or session.get("LatestStatus") == (
        CONVERSATION_FINAL_STATUS
    )


class ReconcileTable:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.name = table_name
        self.client = client if client is not None else dynamodb_client()

    # --- reads ------------------------------------------------------------------------------

    def due_sessions(self, *, cutoff: str, limit: int) -> list[dict[str, Any]]:
        """Open sessions whose ReconcileAt is at or before `cutoff`, oldest first, at most `limit`
        (the index projection: SessionId, ItemKey, SessionCallSid, AccountSid, ...)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": BY_RECONCILE_DUE,
            "KeyConditionExpression": "ReconcileShard = :open AND ReconcileAt <= :cutoff",
            "ExpressionAttributeValues": serialize({":open": RECONCILE_OPEN, ":cutoff": cutoff}),
            "ScanIndexForward": True,
        }
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            request["Limit"] = limit - len(found)
            try:
                response = self.client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise storage_error("query due sessions", exc) from exc
            found.extend(deserialize(raw) or {} for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        return found[:limit]

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        """Consistent read: the index is eventually consistent and may still list a session that a
        callback settled a moment ago."""
        try:
            response = self.client.get_item(
                TableName=self.name,
                Key=serialize({PARTITION: session_id, SORT: SESSION_KEY}),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error("get session", exc) from exc
        return deserialize(response.get("Item"))

    # --- writes -----------------------------------------------------------------------------

    def put_reconciled_event(self, item: Mapping[str, Any]) -> bool:
        """Write `event#reconciled#<CallSid>` once. False when it exists already (an earlier run)."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#sk)",
                ExpressionAttributeNames={"#sk": SORT},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error("put reconciled event", exc) from exc
        except BotoCoreError as exc:
            raise storage_error("put reconciled event", exc) from exc
        return True

    def settle_with_status(
        self,
        session_id: str,
        *,
        call_status: str,
        timestamp: str | None,
        duration: int | None,
        reconciled_at: str,
        close: bool = True,
    ) -> bool:
        """Record the API's final status on a session that has none yet, and close it for the
        reconciler (`close`), in one UpdateItem. False (nothing written) when a final status is
        there already: what Twilio delivered is never overwritten."""
        sets = {"CallStatus": call_status, "CallStatusTimestamp": timestamp, "CallDuration": duration}
        known = {name: value for name, value in sets.items() if value is not None}
        clauses = [f"{name} = :{name}" for name in known]
        clauses.append("ReconciledAt = :now")
        values = {f":{name}": value for name, value in known.items()}
        return self._update(
            "settle session",
            session_id,
            expression="SET " + ", ".join(clauses) + (" REMOVE ReconcileShard, ReconcileAt" if close else ""),
            condition=f"attribute_exists(#sk) AND {NOT_FINAL_CONDITION}",
            values={**values, ":now": reconciled_at, ":done": CONVERSATION_FINAL_STATUS, **_finals()},
        )

    def close(self, session_id: str, *, reconciled_at: str) -> bool:
        """Close a session that already has its final status (from Twilio) for the reconciler."""
        return self._update(
            "close session",
            session_id,
            expression="SET ReconciledAt = :now REMOVE ReconcileShard, ReconcileAt",
            condition="attribute_exists(ReconcileShard)",
            values={":now": reconciled_at},
        )

    def defer(self, session_id: str, *, attempts_before: int, next_at: str) -> bool:
        """Try again at `next_at`. Conditional on the attempt count read, so two overlapping runs
        count one attempt, and on the session still being open."""
        return self._update(
            "defer session",
            session_id,
            expression="SET ReconcileAt = :next, ReconcileAttempts = :attempts",
            condition=(
                "attribute_exists(ReconcileShard) AND "
                "(attribute_not_exists(ReconcileAttempts) OR ReconcileAttempts = :before)"
            ),
            values={":next": next_at, ":attempts": attempts_before + 1, ":before": attempts_before},
        )

    def give_up(self, session_id: str, *, attempts_before: int, reason: str, at: str) -> bool:
        """Stop trying: the session leaves the index; `ReconcileGaveUp` says why."""
        return self._update(
            "give up session",
            session_id,
            expression=(
                "SET ReconcileAttempts = :attempts, ReconcileGaveUp = :reason, ReconciledAt = :at "
                "REMOVE ReconcileShard, ReconcileAt"
            ),
            condition=(
                "attribute_exists(ReconcileShard) AND "
                "(attribute_not_exists(ReconcileAttempts) OR ReconcileAttempts = :before)"
            ),
            values={
                ":attempts": attempts_before + 1,
                ":before": attempts_before,
                ":reason": reason,
                ":at": at,
            },
        )

    def mark_recovered(self, session_id: str, recording_sid: str) -> bool:
        """`RecoveredBy = reconciler` on a recording the reconciler queued."""
        return self._update(
            "mark recording recovered",
            session_id,
            item_key=recording_key(recording_sid),
            expression="SET RecoveredBy = if_not_exists(RecoveredBy, :by)",
            condition="attribute_exists(#sk)",
            values={":by": "reconciler"},
        )

    def _update(
        self,
        action: str,
        session_id: str,
        *,
        expression: str,
        condition: str,
        values: Mapping[str, Any],
        item_key: str = SESSION_KEY,
    ) -> bool:
        names = {"#sk": SORT} if "#sk" in condition else {}
        try:
            self.client.update_item(
                TableName=self.name,
                Key=serialize({PARTITION: session_id, SORT: item_key}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=serialize(values),
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise storage_error(action, exc) from exc
        except BotoCoreError as exc:
            raise storage_error(action, exc) from exc
        return True
