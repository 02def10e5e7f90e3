"""Action-request items (`action#<step>`): one per step of a session, first delivery wins (the
caller compares fingerprints). Read together with the session item in one BatchGetItem, so the
loop guard and the identity fill cost one read (calls/action_answer.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from voice_webhooks.storage.dynamo import PARTITION, SESSION_KEY, SORT, Table, action_key


class ActionStore:
    def __init__(self, table_name: str) -> None:
        self.table = Table(table_name)

    def read_session_and_actions(
        self, session_id: str, steps: Iterable[str]
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """(the session item or None, step -> its stored action item), consistently, in one call."""
        keys = {action_key(step): step for step in steps}
        found = self.table.batch_get(session_id, [SESSION_KEY, *keys], action="read session and actions")
        actions = {keys[item_key]: item for item_key, item in found.items() if item_key in keys}
        return found.get(SESSION_KEY), actions

    def record_action(
        self, session_id: str, step: str, entry: Mapping[str, Any], *, expires_at: int
    ) -> dict[str, Any] | None:
        """Store the step's action request once. None when this call wrote it; otherwise the item
        already stored (a repeated delivery, or a different request that came first)."""
        item = {
            **{name: value for name, value in entry.items() if value is not None},
            PARTITION: session_id,
            SORT: action_key(step),
            "Step": step,
            "ExpiresAt": expires_at,
        }
        return self.table.put_new(item, action="record action")
