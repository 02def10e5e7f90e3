"""The relay API under moto: EventsTable with DATA-MODEL.md's keys, a session item, the relay
flow config, and a recorder in place of the `@connections` management API (what would reach
Twilio, frame by frame; a connection can be made gone)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from voice_webhooks.relay import connections
from voicedev import template_resources
from voicedev.relay_events import (
    SAMPLE_CALL_SID,
    SAMPLE_SESSION_ID,
    connect_event,
    message_event,
    setup_frame,
)
from voicedev.twilio_signing import DEV_ACCOUNT_SID

from tests.conftest import REGION, AwsResources

RELAY_FLOWS = Path(__file__).parent / "fixtures" / "relay-flows.json"
_DESERIALIZER = TypeDeserializer()


def unpaced_flows(directory: Path) -> Path:
    """RELAY_FLOWS with the scripted agent posting its words as fast as it can (tokenIntervalMs 0):
    for the tests that replay a conversation many times and are not about its pace."""
    document = json.loads(RELAY_FLOWS.read_text(encoding="utf-8"))
    for flow in document["flows"].values():
        agent = flow.get("agent") or {}
        if agent.get("kind") == "scripted":
            agent["tokenIntervalMs"] = 0
    path = directory / "relay-flows-unpaced.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def create_events_table(client: Any) -> str:
    """EventsTable exactly as template.yaml declares it."""
    return str(template_resources.create_table(client))


@dataclass
class Recorder:
    """Stands in for apigatewaymanagementapi: every post and close, in order."""

    posted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    gone_after: int | None = None
    on_post: Callable[[int, dict[str, Any]], None] | None = None

    def post(self, connection_id: str, data: str) -> None:
        if connection_id in self.closed or (
            self.gone_after is not None and len(self.posted) >= self.gone_after
        ):
            raise connections.ConnectionGone(connection_id)
        frame = json.loads(data)
        self.posted.append((connection_id, frame))
        if self.on_post is not None:
            self.on_post(len(self.posted), frame)

    def close(self, connection_id: str) -> None:
        self.closed.append(connection_id)

    def frames(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [frame for _, frame in self.posted if kind is None or frame["type"] == kind]

    def spoken(self) -> str:
        return "".join(frame["token"] for frame in self.frames("text"))


@dataclass
class Relay:
    aws: AwsResources
    table_name: str
    recorder: Recorder
    invoke: Callable[[str, dict[str, Any]], dict[str, Any]]
    session_id: str = SAMPLE_SESSION_ID

    @property
    def client(self) -> Any:
        return boto3.client("dynamodb", region_name=REGION)

    def put_session(self, session_id: str = SAMPLE_SESSION_ID, flow: str = "assistant") -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "SessionId": {"S": session_id},
                "ItemKey": {"S": "session"},
                "SessionCallSid": {"S": session_id.split("-", 1)[0]},
                "AccountSid": {"S": DEV_ACCOUNT_SID},
                "Flow": {"S": flow},
                "FlowKind": {"S": "relay"},
            },
        )

    def items(self, session_id: str | None = None) -> list[dict[str, Any]]:
        raw = self.client.scan(TableName=self.table_name, ConsistentRead=True)["Items"]
        items = [{k: _DESERIALIZER.deserialize(v) for k, v in item.items()} for item in raw]
        if session_id is not None:
            items = [item for item in items if item["SessionId"] == session_id]
        return sorted(items, key=lambda item: (item["SessionId"], item["ItemKey"]))

    def turns(self, session_id: str = SAMPLE_SESSION_ID) -> list[dict[str, Any]]:
        return [item for item in self.items(session_id) if item["ItemKey"].startswith("turn#")]

    def item(self, key: str, session_id: str = SAMPLE_SESSION_ID) -> dict[str, Any] | None:
        return next((item for item in self.items(session_id) if item["ItemKey"] == key), None)

    def connect(self, connection_id: str = "conn-0001", attempt: int = 1, **kwargs: Any) -> dict[str, Any]:
        event = connect_event(self.session_id, attempt, connection_id=connection_id, **kwargs)
        return self.invoke("relay_connect", event)

    def send(
        self, frame: dict[str, Any] | str, connection_id: str = "conn-0001", message_id: str | None = None
    ) -> dict[str, Any]:
        return self.invoke(
            "relay_message", message_event(frame, connection_id=connection_id, message_id=message_id)
        )

    def open(self, connection_id: str = "conn-0001", attempt: int = 1) -> None:
        """A connected, set-up session (the usual start of every conversation test)."""
        assert self.connect(connection_id, attempt)["statusCode"] == 200
        assert self.send(setup_frame(), connection_id)["statusCode"] == 200


@pytest.fixture
def relay(aws: AwsResources, invoke: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relay]:
    table_name = aws.table_name
    aws.env(EVENTS_TABLE_NAME=table_name, FLOW_CONFIG=str(RELAY_FLOWS))
    recorder = Recorder()
    monkeypatch.setattr(connections, "management_api", lambda context: recorder)
    harness = Relay(aws=aws, table_name=table_name, recorder=recorder, invoke=invoke)
    harness.put_session()
    return harness


__all__ = [
    "SAMPLE_CALL_SID",
    "SAMPLE_SESSION_ID",
    "Recorder",
    "Relay",
    "create_events_table",
    "relay",
    "unpaced_flows",
]
