"""The session item (`ItemKey = "session"`): the call's identity and the latest status of each of
its status streams, forward only (docs/data-model.md).

Connect writes it whole (PutItem). Every other route fills what is missing with `if_not_exists`,
so a session whose connect write failed, or that a callback started (Origin `callback`), still
ends up with its identity. `ReconcileShard`/`ReconcileAt` (the sparse ByReconcileDue index) are
set when the session is created; the write that records the call's final status moves `ReconcileAt`
to that moment (and reopens a session the reconciler had closed), so that one reconciler pass checks
the call's recordings after it ended: a recording callback lost after a delivered final status is
recovered too (docs/reconciliation.md). Only the reconciler removes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voice_webhooks.storage.dynamo import (
    BY_CALL_SID,
    BY_RECONCILE_DUE,
    RECONCILE_OPEN,
    SESSION_KEY,
    SORT,
    Table,
    fill_clauses,
    serialize,
)

# Final call-progress statuses of a call, and the `<Conversation>` status that ends its session.
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
CONVERSATION_FINAL_STATUS = "call-completed"
CALL_SID_LENGTH = 34

_FINALS = {f":f{i}": status for i, status in enumerate(sorted(FINAL_CALL_STATUSES))}
# The session has no final status yet (neither stream's), as a condition; its values: NOT_FINAL_VALUES.
NOT_FINAL_CONDITION = (
    f"(attribute_not_exists(CallStatus) OR NOT (CallStatus IN ({', '.join(_FINALS)}))) "
    "AND (attribute_not_exists(LatestStatus) OR LatestStatus <> :done)"
)
NOT_FINAL_VALUES: dict[str, Any] = {":done": CONVERSATION_FINAL_STATUS, **_FINALS}

Origin = Literal["connect", "callback"]


def has_final_status(session: Mapping[str, Any]) -> bool:
    """A final status Twilio (or the reconciler) recorded, in either of the session's streams."""
    return (
        session.get("CallStatus") in FINAL_CALL_STATUSES
        or session.get("LatestStatus") == CONVERSATION_FINAL_STATUS
    )


def session_call_sid(session_id: str) -> str:
    """The CallSid a session id starts with (`<CallSid>` or `<CallSid>-<16 hex>`)."""
    return session_id[:CALL_SID_LENGTH]


class SessionItem(BaseModel):
    """The session item as written when the call is answered."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    session_id: str = Field(alias="SessionId")
    call_sid: str = Field(alias="SessionCallSid")
    account_sid: str = Field(alias="AccountSid")
    from_: str | None = Field(None, alias="From")
    to: str | None = Field(None, alias="To")
    direction: str | None = Field(None, alias="Direction")
    flow: str = Field(alias="Flow")
    flow_kind: str = Field(alias="FlowKind")
    created_at: str = Field(alias="CreatedAt")
    expires_at: int = Field(alias="ExpiresAt")
    origin: Origin = Field("connect", alias="Origin")

    def to_item(self) -> dict[str, Any]:
        return {
            **self.model_dump(by_alias=True, exclude_none=True),
            SORT: SESSION_KEY,
            "ReconcileShard": RECONCILE_OPEN,
            "ReconcileAt": self.created_at,
        }


class SessionStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self.table = Table(table_name, client)

    def create_session(self, item: SessionItem) -> None:
        """Write the session item once; a second write for the same session is a no-op."""
        self.table.put_new(item.to_item(), action="put session")

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self.table.get(session_id, SESSION_KEY, action="get session")

    def sessions_of_call(self, call_sid: str) -> list[dict[str, Any]]:
        """The call's sessions as the ByCallSid index has them (eventually consistent: a session
        written a moment ago may be missing), newest first."""
        items = self.table.query(
            action="query sessions of call",
            IndexName=BY_CALL_SID,
            KeyConditionExpression="SessionCallSid = :call",
            ExpressionAttributeValues=serialize({":call": call_sid}),
        )
        return sorted(items, key=lambda item: str(item.get("CreatedAt") or ""), reverse=True)

    def newest_connect_session(self, call_sid: str) -> str | None:
        """The newest session connect opened for the call (`<CallSid>-<hex>`), from the index."""
        for item in self.sessions_of_call(call_sid):
            session_id = str(item["SessionId"])
            if session_id != call_sid:
                return session_id
        return None

    # --- forward-only status streams ----------------------------------------------------------

    def advance_conversation_status(
        self,
        session_id: str,
        *,
        sequence_number: int,
        status: str,
        timestamp: str | None,
        identity: Mapping[str, Any],
        now: str,
    ) -> bool:
        """Move the `<Conversation>` stream's latest status to this event if newer. True if moved."""
        return self._advance(
            session_id,
            sequence_attribute="LatestSequenceNumber",
            moves={"LatestStatus": status, "LatestSequenceNumber": sequence_number},
            timestamp=("LatestStatusTimestamp", timestamp),
            sequence_number=sequence_number,
            final=status == CONVERSATION_FINAL_STATUS,
            identity=identity,
            now=now,
        )

    def advance_call_status(
        self,
        session_id: str,
        *,
        sequence_number: int,
        call_status: str,
        timestamp: str | None,
        duration: int | None,
        identity: Mapping[str, Any],
        now: str,
    ) -> bool:
        """Move the session's own call-progress stream (`CallStatus`) forward. True if moved."""
        moves: dict[str, Any] = {"CallStatus": call_status, "CallSequenceNumber": sequence_number}
        if duration is not None:
            moves["CallDuration"] = duration
        return self._advance(
            session_id,
            sequence_attribute="CallSequenceNumber",
            moves=moves,
            timestamp=("CallStatusTimestamp", timestamp),
            sequence_number=sequence_number,
            final=call_status in FINAL_CALL_STATUSES,
            identity=identity,
            now=now,
        )

    def fill_identity(self, session_id: str, identity: Mapping[str, Any], *, now: str) -> dict[str, Any]:
        """Set what the session item lacks (creating it when missing). Returns the item before."""
        clauses, names, plain = self._identity_clauses(session_id, identity, now)
        _, old = self.table.update(
            session_id,
            SESSION_KEY,
            action="fill session identity",
            expression="SET " + ", ".join(clauses),
            names=names,
            plain_values=plain,
            return_values="ALL_OLD",
        )
        self._opened(session_id, old, now)
        return old

    def _identity_clauses(
        self, session_id: str, identity: Mapping[str, Any], now: str
    ) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        fields = {
            "SessionCallSid": session_call_sid(session_id),
            "CreatedAt": now,
            "Origin": "callback",
            **identity,
        }
        return fill_clauses(fields, "id")

    def _advance(
        self,
        session_id: str,
        *,
        sequence_attribute: str,
        moves: Mapping[str, Any],
        timestamp: tuple[str, str | None],
        sequence_number: int,
        final: bool,
        identity: Mapping[str, Any],
        now: str,
    ) -> bool:
        fills, names, plain = self._identity_clauses(session_id, identity, now)
        sets = [f"#m{i} = :m{i}" for i in range(len(moves))]
        move_names = {f"#m{i}": name for i, name in enumerate(moves)}
        move_values: dict[str, Any] = {f":m{i}": value for i, value in enumerate(moves.values())}
        if final:
            # Due one grace period after the end: the reconciler then lists the call's recordings
            # once (a recording callback can be lost after the final status arrived) and closes it.
            sets += ["ReconcileShard = :open", "ReconcileAt = :ended"]
            move_values.update({":open": RECONCILE_OPEN, ":ended": now})
        ts_name, ts_value = timestamp
        move_names["#ts"] = ts_name
        if ts_value:
            sets.append("#ts = :ts")
            move_values[":ts"] = ts_value
            forward_removes = []
        else:
            forward_removes = ["#ts"]
        move_names["#seqattr"] = sequence_attribute
        move_values[":seq"] = sequence_number
        expression = "SET " + ", ".join([*sets, *fills])
        if forward_removes:
            expression += " REMOVE " + ", ".join(forward_removes)
        moved, old = self.table.update(
            session_id,
            SESSION_KEY,
            action="advance session status",
            expression=expression,
            names={**names, **move_names},
            plain_values={**plain, **move_values},
            condition="attribute_not_exists(#seqattr) OR #seqattr < :seq",
            return_values="ALL_OLD",
        )
        if not moved:
            # An older event or a duplicate: the latest status stays, but what only this event
            # carried is kept. (A final status is last in its stream: when it does not move, the
            # first delivery of it already set ReconcileAt.)
            expression = "SET " + ", ".join(fills)
            _, old = self.table.update(
                session_id,
                SESSION_KEY,
                action="record session attributes",
                expression=expression,
                names=names,
                plain_values=plain,
                return_values="ALL_OLD",
            )
        if not final:
            self._opened(session_id, old, now)
        return moved

    def _opened(self, session_id: str, old: Mapping[str, Any], now: str) -> None:
        """The write before created the session item (there was no CreatedAt): open it for the
        reconciler, unless a final status was recorded meanwhile (checked atomically)."""
        if old.get("CreatedAt"):
            return
        self.table.update(
            session_id,
            SESSION_KEY,
            action="open session for reconciliation",
            expression="SET ReconcileShard = :open, ReconcileAt = if_not_exists(ReconcileAt, :now)",
            plain_values={":open": RECONCILE_OPEN, ":now": now, **NOT_FINAL_VALUES},
            condition=NOT_FINAL_CONDITION,
        )

    # --- the reconciler (docs/reconciliation.md): every write conditional, so a run that fails
    # halfway, or two runs at once, change nothing twice ---------------------------------------------

    def due_for_reconciliation(self, *, cutoff: str, limit: int) -> list[dict[str, Any]]:
        """Open sessions whose ReconcileAt is at or before `cutoff`, oldest first, at most `limit`
        (the ByReconcileDue projection: SessionId, ItemKey, SessionCallSid, AccountSid, ...)."""
        return self.table.query(
            action="query due sessions",
            limit_pages=max(limit, 1),
            max_items=limit,
            IndexName=BY_RECONCILE_DUE,
            KeyConditionExpression="ReconcileShard = :open AND ReconcileAt <= :cutoff",
            ExpressionAttributeValues=serialize({":open": RECONCILE_OPEN, ":cutoff": cutoff}),
            ScanIndexForward=True,
        )

    def settle_reconciled(
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
        plain = {f":{name}": value for name, value in known.items()}
        applied, _ = self.table.update(
            session_id,
            SESSION_KEY,
            action="settle session",
            expression="SET " + ", ".join(clauses) + (" REMOVE ReconcileShard, ReconcileAt" if close else ""),
            names={"#sk": SORT},
            plain_values={**plain, ":now": reconciled_at, **NOT_FINAL_VALUES},
            condition=f"attribute_exists(#sk) AND {NOT_FINAL_CONDITION}",
        )
        return applied

    def close_reconciliation(self, session_id: str, *, reconciled_at: str) -> bool:
        """Close a session that has its final status for the reconciler: it leaves the index."""
        applied, _ = self.table.update(
            session_id,
            SESSION_KEY,
            action="close session",
            expression="SET ReconciledAt = :now REMOVE ReconcileShard, ReconcileAt",
            plain_values={":now": reconciled_at},
            condition="attribute_exists(ReconcileShard)",
        )
        return applied

    def defer_reconciliation(self, session_id: str, *, attempts_before: int, next_at: str) -> bool:
        """Try again at `next_at`. Conditional on the attempt count read, so two overlapping runs
        count one attempt, and on the session still being open."""
        applied, _ = self.table.update(
            session_id,
            SESSION_KEY,
            action="defer session",
            expression="SET ReconcileAt = :next, ReconcileAttempts = :attempts",
            plain_values={":next": next_at, ":attempts": attempts_before + 1, ":before": attempts_before},
            condition=_OPEN_AT_ATTEMPT,
        )
        return applied

    def give_up_reconciliation(self, session_id: str, *, attempts_before: int, reason: str, at: str) -> bool:
        """Stop trying: the session leaves the index; `ReconcileGaveUp` says why."""
        applied, _ = self.table.update(
            session_id,
            SESSION_KEY,
            action="give up session",
            expression=(
                "SET ReconcileAttempts = :attempts, ReconcileGaveUp = :reason, ReconciledAt = :at "
                "REMOVE ReconcileShard, ReconcileAt"
            ),
            plain_values={
                ":attempts": attempts_before + 1,
                ":before": attempts_before,
                ":reason": reason,
                ":at": at,
            },
            condition=_OPEN_AT_ATTEMPT,
        )
        return applied


_OPEN_AT_ATTEMPT = (
    "attribute_exists(ReconcileShard) AND "
    "(attribute_not_exists(ReconcileAttempts) OR ReconcileAttempts = :before)"
)
