"""EventsTable items of the relay agent (DATA-MODEL.md, RELAY.md "Storage"):

- `relay#<attempt:02d>` in the session's partition: one WebSocket connection (its id, the turn
  counter, the message ids already stored, the reply being spoken, the interrupt marker);
- `turn#<attempt:02d>#<seq:06d>`: one turn;
- `connection` in partition `relay-connection#<connectionId>`: which session and attempt a
  connection serves (the only thing a `$default` or `$disconnect` event carries is the connection id);
- `action#connect#<attempt:02d>`: the `<Connect action>` request that ended that attempt and was
  answered with a reconnect (`action#connect` is the one the action routing answered).

Turn numbers come from an atomic counter on the relay item, allocated together with the frame's
message id: a frame delivered twice gets the number it got the first time, so every turn is
stored once whatever the retries (frames of one connection are handled concurrently, in no order).
Client API with TypeSerializer, as DATA-MODEL.md asks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.errors import StorageError
from voice_webhooks.runtime import aws_clients

CONNECTION_PARTITION_PREFIX = "relay-connection#"
CONNECTION_ITEM_KEY = "connection"
SESSION_ITEM_KEY = "session"
TURN_PREFIX = "turn#"
# Bounded text per turn: a prompt is a sentence or two; a model reply a few hundred tokens.
MAX_TEXT_CHARS = 8000
MAX_MESSAGE_ID_CHARS = 128
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
# The relay functions run inside API Gateway's 29 s; a hanging DynamoDB must not eat it.
_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})


@cache
def _client() -> Any:
    return aws_clients.session().client("dynamodb", config=_CONFIG)


def warm_client() -> Any:
    """Before a SnapStart snapshot: the client every relay item goes through."""
    return _client()


def reset_client() -> None:
    _client.cache_clear()


def relay_key(attempt: int) -> str:
    return f"relay#{attempt:02d}"


def frame_key(attempt: int, message_id: str) -> str:
    """The claim of one Twilio frame (its turn number), by API Gateway's messageId (hashed when
    longer than any API Gateway gives, so that no id can exceed DynamoDB's 1,024-byte sort key)."""
    if len(message_id) > MAX_MESSAGE_ID_CHARS:
        message_id = "sha256:" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()
    return f"{relay_key(attempt)}#frame#{message_id}"


def turn_key(attempt: int, seq: int) -> str:
    return f"{TURN_PREFIX}{attempt:02d}#{seq:06d}"


def connect_action_key(attempt: int) -> str:
    """The `<Connect action>` request that ended `attempt` and was answered with a reconnect.
    `action#connect` stays the action routing's own: the request it answered (the last attempt's),
    so the two never compete for one key (first delivery wins on each)."""
    return f"action#connect#{attempt:02d}"


def _key(partition: str, item_key: str) -> dict[str, Any]:
    return {"SessionId": {"S": partition}, "ItemKey": {"S": item_key}}


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def _item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in (raw or {}).items()}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


@dataclass(frozen=True)
class Connection:
    connection_id: str
    session_id: str
    attempt: int
    flow: str | None


@dataclass(frozen=True)
class Allocation:
    seq: int
    duplicate: bool


class AlreadyConnected(Exception):
    """This session's attempt already has a connection (a replayed handshake)."""


class UnknownConnection(Exception):
    """No relay item for this connection's attempt (it was never accepted)."""


class RelayStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _call(self, operation: str, **kwargs: Any) -> Any:
        if operation != "transact_write_items":
            kwargs["TableName"] = self.table_name
        try:
            return getattr(_client(), operation)(**kwargs)
        except ClientError as exc:
            if _conditional_failed(exc):
                raise
            raise StorageError(
                f"EventsTable {operation} failed: {exc.response['Error'].get('Code')}"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"EventsTable {operation} failed: {type(exc).__name__}") from exc

    # --- session and connection -----------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any] | None:
        answer = self._call(
            "get_item",
            Key=_key(session_id, SESSION_ITEM_KEY),
            ProjectionExpression="Flow, SessionCallSid, AccountSid",
        )
        return _item(answer["Item"]) if "Item" in answer else None

    def open_connection(
        self,
        connection: Connection,
        *,
        connected_at: str,
        expires_at: int,
        connection_expires_at: int,
    ) -> None:
        """Both items or neither; AlreadyConnected when the attempt has a connection already."""
        relay = {
            **_key(connection.session_id, relay_key(connection.attempt)),
            **_values(
                {
                    "ConnectionId": connection.connection_id,
                    "Attempt": connection.attempt,
                    "ConnectedAt": connected_at,
                    "TurnCount": 0,
                    "ExpiresAt": expires_at,
                }
            ),
        }
        mapping = {
            **_key(CONNECTION_PARTITION_PREFIX + connection.connection_id, CONNECTION_ITEM_KEY),
            **_values(
                {
                    "RelaySessionId": connection.session_id,
                    "Attempt": connection.attempt,
                    "ConnectedAt": connected_at,
                    "ExpiresAt": connection_expires_at,
                }
            ),
        }
        if connection.flow:
            relay["Flow"] = {"S": connection.flow}
            mapping["Flow"] = {"S": connection.flow}
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(SessionId)",
                        }
                    }
                    for item in (relay, mapping)
                ],
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise AlreadyConnected(connection.session_id) from exc
            raise StorageError("EventsTable transact_write_items cancelled") from exc

    def connection(self, connection_id: str) -> Connection | None:
        answer = self._call(
            "get_item", Key=_key(CONNECTION_PARTITION_PREFIX + connection_id, CONNECTION_ITEM_KEY)
        )
        if "Item" not in answer:
            return None
        item = _item(answer["Item"])
        return Connection(connection_id, str(item["RelaySessionId"]), int(item["Attempt"]), item.get("Flow"))

    def set_flow(self, connection: Connection, flow: str) -> None:
        for partition, item_key in (
            (connection.session_id, relay_key(connection.attempt)),
            (CONNECTION_PARTITION_PREFIX + connection.connection_id, CONNECTION_ITEM_KEY),
        ):
            self._call(
                "update_item",
                Key=_key(partition, item_key),
                UpdateExpression="SET Flow = if_not_exists(Flow, :flow)",
                ExpressionAttributeValues=_values({":flow": flow}),
            )

    def update_connection(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Plain attributes of the relay item (setup, disconnect); never the counters."""
        values = {name: value for name, value in values.items() if value is not None}
        names = {f"#a{index}": name for index, name in enumerate(values)}
        self._call(
            "update_item",
            Key=_key(connection.session_id, relay_key(connection.attempt)),
            UpdateExpression="SET " + ", ".join(f"{alias} = :v{index}" for index, alias in enumerate(names)),
            ConditionExpression="attribute_exists(SessionId)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values(
                {f":v{index}": value for index, value in enumerate(values.values())}
            ),
        )

    # --- turns ----------------------------------------------------------------------------------

    def allocate(
        self, connection: Connection, message_id: str | None, expires_at: int, *, reply: bool = False
    ) -> Allocation:
        """A turn number. For a frame (`message_id`, API Gateway's id of it), the number is claimed
        once in the frame's own item: a frame handled twice gets the number it got the first time
        (duplicate=True); the number the second handling drew stays unused (a gap, harmless: turns
        are ordered, not counted). None: a turn of our own (a reply, an end), which only the
        first handling of its frame makes. A reply also becomes the relay item's CurrentReply,
        which an interrupt marks.

        The claims live in items of their own so that `relay#<attempt>` stays small: it is read
        before every token of every reply, and DynamoDB charges a read by the whole item's size."""
        set_reply = ", CurrentReply = TurnCount + :one" if reply else ""
        try:
            answer = self._call(
                "update_item",
                Key=_key(connection.session_id, relay_key(connection.attempt)),
                UpdateExpression=f"SET TurnCount = TurnCount + :one{set_reply}",
                ConditionExpression="attribute_exists(TurnCount)",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            raise UnknownConnection(connection.connection_id) from exc
        seq = int(_item(answer["Attributes"])["TurnCount"])
        if message_id is None:
            return Allocation(seq, duplicate=False)
        try:
            self._call(
                "put_item",
                Item={
                    **_key(connection.session_id, frame_key(connection.attempt, message_id)),
                    **_values({"Seq": seq, "ExpiresAt": expires_at}),
                },
                ConditionExpression="attribute_not_exists(SessionId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            return Allocation(int(_item(exc.response.get("Item"))["Seq"]), duplicate=True)
        return Allocation(seq, duplicate=False)

    def put_turn(self, connection: Connection, seq: int, values: Mapping[str, Any]) -> None:
        """Write a turn's attributes (the same values again on a retry: stored once). Heard and
        Interrupted are the interrupt's to write, so a late reply write never erases them."""
        present = {name: value for name, value in values.items() if value is not None}
        if isinstance(present.get("Text"), str):
            present["Text"] = present["Text"][:MAX_TEXT_CHARS]
        names = {f"#a{index}": name for index, name in enumerate(present)}
        self._call(
            "update_item",
            Key=_key(connection.session_id, turn_key(connection.attempt, seq)),
            UpdateExpression="SET " + ", ".join(f"{alias} = :v{index}" for index, alias in enumerate(names)),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values(
                {f":v{index}": value for index, value in enumerate(present.values())}
            ),
        )

    def mark_interrupt(self, connection: Connection, heard: str, expires_at: int) -> int | None:
        """Record on the relay item that the reply being spoken was interrupted, and on that
        reply's turn what the caller heard. The reply's seq, or None when nothing was replying."""
        try:
            answer = self._call(
                "update_item",
                Key=_key(connection.session_id, relay_key(connection.attempt)),
                UpdateExpression="SET InterruptedReply = CurrentReply",
                ConditionExpression="attribute_exists(CurrentReply)",
                # Only the marker back, not the whole relay item (its message ids): the reply
                # streaming meanwhile reads the marker before each token, so this write is on its clock.
                ReturnValues="UPDATED_NEW",
            )
        except ClientError:
            return None
        seq = int(_item(answer["Attributes"])["InterruptedReply"])
        self._call(
            "update_item",
            Key=_key(connection.session_id, turn_key(connection.attempt, seq)),
            # The reply's own write may come later (it is still streaming) or never (it failed):
            # either way the turn is an agent reply.
            UpdateExpression=(
                "SET Heard = :heard, Interrupted = :yes, ExpiresAt = if_not_exists(ExpiresAt, :ttl), "
                "#role = if_not_exists(#role, :agent), Kind = if_not_exists(Kind, :reply)"
            ),
            ExpressionAttributeNames={"#role": "Role"},
            ExpressionAttributeValues=_values(
                {
                    ":heard": heard[:MAX_TEXT_CHARS],
                    ":yes": True,
                    ":ttl": expires_at,
                    ":agent": "agent",
                    ":reply": "reply",
                }
            ),
        )
        return seq

    def interrupted(self, connection: Connection, reply_seq: int) -> bool:
        answer = self._call(
            "get_item",
            Key=_key(connection.session_id, relay_key(connection.attempt)),
            ProjectionExpression="InterruptedReply",
            ConsistentRead=True,
        )
        value = _item(answer.get("Item")).get("InterruptedReply")
        return value is not None and int(value) == reply_seq

    def turns_before(self, session_id: str, before: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's turns (every attempt) whose key sorts before `before`, in order: the
        last `limit` of them, read newest first so that only those are read (None: all)."""
        if limit == 0:
            return []
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            # BETWEEN is inclusive: `before` itself (the current turn) is dropped below.
            "KeyConditionExpression": "SessionId = :s AND ItemKey BETWEEN :first AND :before",
            "ExpressionAttributeValues": _values(
                {":s": session_id, ":first": TURN_PREFIX, ":before": before}
            ),
            "ConsistentRead": True,
            "ScanIndexForward": limit is None,
        }
        while True:
            if limit is not None:
                kwargs["Limit"] = limit + 1 - len(items)
            answer = self._call("query", **kwargs)
            items.extend(item for raw in answer.get("Items", []) if (item := _item(raw))["ItemKey"] != before)
            if "LastEvaluatedKey" not in answer or (limit is not None and len(items) >= limit):
                break
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return items if limit is None else list(reversed(items[:limit]))

    # --- action requests of reconnects ----------------------------------------------------------

    def record_connect_action(
        self, session_id: str, attempt: int, entry: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """First delivery wins; returns the entry stored before, if any."""
        present = {name: value for name, value in entry.items() if value is not None}
        names = {f"#a{index}": name for index, name in enumerate(present)}
        try:
            self._call(
                "update_item",
                Key=_key(session_id, connect_action_key(attempt)),
                UpdateExpression="SET "
                + ", ".join(f"{alias} = :v{index}" for index, alias in enumerate(names)),
                ConditionExpression="attribute_not_exists(SessionId)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values(
                    {f":v{i}": value for i, value in enumerate(present.values())}
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            return _item(exc.response.get("Item"))
        return None
