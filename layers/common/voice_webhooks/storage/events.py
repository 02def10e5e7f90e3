"""Status-event items (`event#conversation#<seq>`, `event#call#<CallSid>#<seq>`, the reconciler's
`event#reconciled#<CallSid>`) and dialled-leg items (`leg#<CallSid>`). Events are written once
(first delivery wins); a leg's latest status moves forward only (docs/data-model.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voice_webhooks.storage.dynamo import SORT, Table, fill_clauses, leg_key, serialize


class EventStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def put_event(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write a status-event item once. None when this call wrote it; otherwise the item
        already stored under that key."""
        return self.table.put_new(item, action="put event")

    def put_reconciled_event(self, item: Mapping[str, Any]) -> bool:
        """Write `event#reconciled#<CallSid>` once. False when it exists already (an earlier run)."""
        return self.table.put_new(item, action="put reconciled event") is None

    def events(self, session_id: str, prefix: str = "event#") -> list[dict[str, Any]]:
        """Every event of the session (or of one stream, by prefix), in key order."""
        return self.table.query(
            action="query events",
            KeyConditionExpression="SessionId = :session AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#sk": SORT},
            ExpressionAttributeValues=serialize({":session": session_id, ":prefix": prefix}),
            ConsistentRead=True,
        )

    def advance_leg(
        self,
        session_id: str,
        call_sid: str,
        *,
        sequence_number: int,
        call_status: str,
        timestamp: str | None,
        first_seen: Mapping[str, Any],
    ) -> bool:
        """Move the dialled leg's latest status forward; record `first_seen` (ParentCallSid, To,
        ExpiresAt, ...) where unset. True if the status moved."""
        fills, names, plain = fill_clauses({"CallSid": call_sid, **first_seen}, "f")
        sets = ["CallStatus = :status", "CallSequenceNumber = :seq"]
        moves: dict[str, Any] = {":status": call_status, ":seq": sequence_number}
        expression_tail = ""
        if timestamp:
            sets.append("CallStatusTimestamp = :ts")
            moves[":ts"] = timestamp
        else:
            expression_tail = " REMOVE CallStatusTimestamp"
        moved, _ = self.table.update(
            session_id,
            leg_key(call_sid),
            action="advance leg status",
            expression="SET " + ", ".join([*sets, *fills]) + expression_tail,
            names=names,
            plain_values={**plain, **moves},
            condition="attribute_not_exists(CallSequenceNumber) OR CallSequenceNumber < :seq",
        )
        if not moved:
            self.table.update(
                session_id,
                leg_key(call_sid),
                action="record leg attributes",
                expression="SET " + ", ".join(fills),
                names=names,
                plain_values=plain,
            )
        return moved
