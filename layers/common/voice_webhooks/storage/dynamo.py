"""The DynamoDB client calls every EventsTable module uses: items in and out of the wire format
(TypeSerializer / TypeDeserializer), conditional writes that report "condition failed" as a
result rather than an error, and every other failure as a StorageError (a 5xx on event routes, so
Twilio retries). The keys of the table (docs/data-model.md) are built here too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.errors import StorageError
from voice_webhooks.runtime.aws_clients import dynamodb_client

PARTITION = "SessionId"
SORT = "ItemKey"
SESSION_KEY = "session"
# The ByCallSid index (session items only) and the sparse ByReconcileDue index.
BY_CALL_SID = "ByCallSid"
BY_RECONCILE_DUE = "ByReconcileDue"
RECONCILE_OPEN = "open"
RECONCILED_STREAM = "reconciled"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def utc_now() -> datetime:
    return datetime.now(UTC)


def expires_at(now: datetime, ttl_days: int) -> int:
    return int((now + timedelta(days=ttl_days)).timestamp())


# --- keys (DATA-MODEL.md) -----------------------------------------------------------------------


def conversation_event_key(sequence_number: int) -> str:
    return f"event#conversation#{sequence_number:010d}"


def call_event_key(call_sid: str, sequence_number: int) -> str:
    return f"event#call#{call_sid}#{sequence_number:010d}"


def reconciled_event_key(call_sid: str) -> str:
    """The call's final state as the reconciler read it from Twilio's REST API (one per call)."""
    return f"event#reconciled#{call_sid}"


def leg_key(call_sid: str) -> str:
    return f"leg#{call_sid}"


def recording_key(recording_sid: str) -> str:
    return f"recording#{recording_sid}"


def action_key(step: str, attempt: int = 1) -> str:
    return f"action#{step}" if attempt < 2 else f"action#{step}#{attempt:02d}"


def key(session_id: str, item_key: str) -> dict[str, Any]:
    return {PARTITION: session_id, SORT: item_key}


# --- wire format ----------------------------------------------------------------------------------


def _wire_value(value: Any) -> Any:
    if isinstance(value, float):  # TypeSerializer refuses floats; none of ours is one but be safe
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {name: _wire_value(inner) for name, inner in value.items() if inner is not None}
    if isinstance(value, list | tuple):
        return [_wire_value(inner) for inner in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain item -> DynamoDB's wire format. None values are left out (never stored)."""
    return {
        name: _SERIALIZER.serialize(_wire_value(value)) for name, value in item.items() if value is not None
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    if isinstance(value, set):
        return {_plain(inner) for inner in value}
    return value


def deserialize(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """DynamoDB's wire format -> a plain item (integral numbers as int)."""
    if not raw:
        return None
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in raw.items()}


def values(plain: Mapping[str, Any]) -> dict[str, Any]:
    """ExpressionAttributeValues from plain values (None values are an error of the caller)."""
    return {name: _SERIALIZER.serialize(_wire_value(value)) for name, value in plain.items()}


# --- calls ------------------------------------------------------------------------------------------


def condition_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        return StorageError(f"DynamoDB {action} failed: {exc.response.get('Error', {}).get('Code')}")
    return StorageError(f"DynamoDB unreachable ({action}): {type(exc).__name__}")


class Table:
    """EventsTable through the client API: the webhooks' shared client, or `client` (the
    reconciler's, with a scheduled run's patience)."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        self.name = name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else dynamodb_client()

    def get(self, session_id: str, item_key: str, *, action: str = "get item") -> dict[str, Any] | None:
        try:
            response = self.client.get_item(
                TableName=self.name, Key=serialize(key(session_id, item_key)), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(action, exc) from exc
        return deserialize(response.get("Item"))

    def batch_get(
        self, session_id: str, item_keys: Iterable[str], *, action: str
    ) -> dict[str, dict[str, Any]]:
        """Consistent reads of up to 100 items of one session in one call (unprocessed keys are
        asked again): ItemKey -> item, for the items that exist."""
        pending = [serialize(key(session_id, item_key)) for item_key in dict.fromkeys(item_keys)]
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            if not pending:
                return found
            try:
                response = self.client.batch_get_item(
                    RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
                )
            except (ClientError, BotoCoreError) as exc:
                raise storage_error(action, exc) from exc
            for raw in response.get("Responses", {}).get(self.name, []):
                item = deserialize(raw) or {}
                found[str(item[SORT])] = item
            pending = list(response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", []))
        if pending:
            raise StorageError(f"DynamoDB {action}: keys left unprocessed")
        return found

    def query(
        self, *, action: str, limit_pages: int = 10, max_items: int | None = None, **request: Any
    ) -> list[dict[str, Any]]:
        """Every page (at most `limit_pages`); with `max_items`, each page asks for what is left
        (`Limit`) and the query stops there."""
        items: list[dict[str, Any]] = []
        request = {"TableName": self.name, **request}
        for _ in range(limit_pages):
            if max_items is not None:
                if len(items) >= max_items:
                    break
                request["Limit"] = max_items - len(items)
            try:
                response = self.client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise storage_error(action, exc) from exc
            items.extend(deserialize(raw) or {} for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        return items if max_items is None else items[:max_items]

    def put_new(self, item: Mapping[str, Any], *, action: str) -> dict[str, Any] | None:
        """Write an item that must not exist yet. None when this call wrote it; otherwise the item
        already stored under its key (from the failed condition, no second read)."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#sk)",
                ExpressionAttributeNames={"#sk": SORT},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error(action, exc) from exc
            existing = deserialize(exc.response.get("Item"))
            if existing is None:  # pragma: no cover - DynamoDB returns it when asked
                existing = self.get(str(item[PARTITION]), str(item[SORT]), action=action)
            return existing or {}
        except BotoCoreError as exc:
            raise storage_error(action, exc) from exc
        return None

    def update(
        self,
        session_id: str,
        item_key: str,
        *,
        action: str,
        expression: str,
        names: Mapping[str, str] | None = None,
        plain_values: Mapping[str, Any] | None = None,
        condition: str | None = None,
        return_values: str | None = None,
        old_on_conflict: bool = False,
    ) -> tuple[bool, dict[str, Any]]:
        """One UpdateItem. (True, the attributes asked for with `return_values`) when applied;
        (False, the item as it stood when `old_on_conflict`, else {}) when its condition failed.
        Any other failure is a StorageError."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize(key(session_id, item_key)),
            "UpdateExpression": expression,
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if plain_values:
            request["ExpressionAttributeValues"] = values(plain_values)
        if condition:
            request["ConditionExpression"] = condition
            if old_on_conflict:
                request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if return_values:
            request["ReturnValues"] = return_values
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if not condition_failed(exc):
                raise storage_error(action, exc) from exc
            if not old_on_conflict:
                return False, {}
            old = deserialize(exc.response.get("Item"))
            if old is None:
                old = self.get(session_id, item_key, action=action)
            return False, old or {}
        except BotoCoreError as exc:
            raise storage_error(action, exc) from exc
        return True, deserialize(response.get("Attributes")) or {}


def fill_clauses(fields: Mapping[str, Any], prefix: str) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """`#p0 = if_not_exists(#p0, :p0)` for each field with a value: set once, never overwritten."""
    known = {name: value for name, value in fields.items() if value is not None and value != ""}
    clauses = [f"#{prefix}{i} = if_not_exists(#{prefix}{i}, :{prefix}{i})" for i in range(len(known))]
    names = {f"#{prefix}{i}": name for i, name in enumerate(known)}
    plain = {f":{prefix}{i}": value for i, value in enumerate(known.values())}
    return clauses, names, plain
