"""DynamoDB access for EventsTable: one partition per session.

`SequenceNumber = 0` is the session item (call identity, latest status, outcome, recordings);
`SequenceNumber >= 1` are the status-callback events. Every write is conditional, so duplicates
and reordering change nothing (see docs/data-model.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from voice_webhooks.aws_clients import dynamodb
from voice_webhooks.errors import StorageError

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
        return dynamodb().Table(self.table_name)

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
