"""A world for the reconciler's tests: EventsTable as template.yaml deploys it (key schema, the
ByReconcileDue index the reconciler queries, TTL), RecordingsQueue, the auth token secret, and the
fake Twilio REST API on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from voice_webhooks.reconcile.settings import ReconcileSettings, load_settings
from voice_webhooks.storage.dynamo import deserialize, serialize
from voicedev import template_resources
from voicedev.fake_twilio_api import FakeTwilioApi
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

REGION = "us-east-1"
TABLE = "EventsTable"


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def new_recording_sid() -> str:
    return "RE" + secrets.token_hex(16)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def create_data_model_table(client: Any, name: str = TABLE) -> str:
    """The template's EventsTable (voicedev.template_resources), under `name`."""
    return template_resources.create_table(client, "EventsTable", table_name=name)


@dataclass
class World:
    dynamodb: Any
    sqs: Any
    api: FakeTwilioApi
    queue_url: str
    secret_arn: str
    table: str = TABLE
    account_sid: str = DEV_ACCOUNT_SID

    def fresh(self, name: str) -> World:
        """Another table and queue in the same moto (and the same fake API): a clean slate without
        restarting moto."""
        create_data_model_table(self.dynamodb, name)
        queue_url = self.sqs.create_queue(QueueName=f"{name}-recordings")["QueueUrl"]
        return World(self.dynamodb, self.sqs, self.api, str(queue_url), self.secret_arn, table=name)

    def settings(self, **overrides: str) -> ReconcileSettings:
        env = {
            "EVENTS_TABLE_NAME": self.table,
            "RECORDINGS_QUEUE_URL": self.queue_url,
            "TWILIO_AUTH_TOKEN_SECRET": self.secret_arn,
            "TWILIO_API_BASE_URL": self.api.origin,
            "TWILIO_API_ORIGINS": self.api.origin,
            "PARAMETERS_MAX_AGE": "0",
        }
        env.update(overrides)
        return load_settings(env)

    def open_session(self, *, age: timedelta = timedelta(minutes=20), **attributes: Any) -> str:
        """A session as connect writes it (open for the reconciler), created `age` ago."""
        call_sid = attributes.pop("call_sid", None) or new_call_sid()
        session_id = attributes.pop("session_id", None) or f"{call_sid}-{secrets.token_hex(8)}"
        created = iso(datetime.now(UTC) - age)
        item = {
            "SessionId": session_id,
            "ItemKey": "session",
            "SessionCallSid": call_sid,
            "AccountSid": self.account_sid,
            "Flow": "support",
            "FlowKind": "conversation",
            "CreatedAt": created,
            "Origin": "connect",
            "ExpiresAt": int((datetime.now(UTC) + timedelta(days=90)).timestamp()),
            "ReconcileShard": "open",
            "ReconcileAt": created,
            **attributes,
        }
        self.dynamodb.put_item(TableName=self.table, Item=serialize(item))
        return session_id

    def twilio_call(self, call_sid: str, status: str, *, duration: int, recordings: int) -> list[str]:
        """Twilio's record of a call, as its REST API answers: `status`, and `recordings` completed
        recordings with their api.twilio.com URLs. Returns the recordings' (new) sids."""
        self.api.add_call(self.account_sid, call_sid, status, duration=duration)
        sids = [new_recording_sid() for _ in range(recordings)]
        for sid in sids:
            self.api.add_recording(
                self.account_sid,
                call_sid,
                sid,
                url=f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}",
            )
        return sids

    def item(self, session_id: str, item_key: str = "session") -> dict[str, Any] | None:
        raw = self.dynamodb.get_item(
            TableName=self.table,
            Key=serialize({"SessionId": session_id, "ItemKey": item_key}),
            ConsistentRead=True,
        ).get("Item")
        return deserialize(raw)

    def items(self, session_id: str) -> list[dict[str, Any]]:
        response = self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="SessionId = :s",
            ExpressionAttributeValues=serialize({":s": session_id}),
            ConsistentRead=True,
        )
        return [deserialize(raw) or {} for raw in response["Items"]]

    def messages(self) -> list[dict[str, Any]]:
        """Every message in RecordingsQueue (received and left in flight: each is seen once)."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(json.loads(message["Body"]) for message in batch)

    def session_ids_due(self) -> list[str]:
        response = self.dynamodb.query(
            TableName=self.table,
            IndexName="ByReconcileDue",
            KeyConditionExpression="ReconcileShard = :o",
            ExpressionAttributeValues=serialize({":o": "open"}),
        )
        return [str((deserialize(raw) or {})["SessionId"]) for raw in response["Items"]]


@contextmanager
def reconcile_world(api_overrides: Mapping[str, Any] | None = None) -> Iterator[World]:
    """Inside moto's mock_aws: the table, queue and secret, and the fake API, started."""
    from moto import mock_aws

    with mock_aws(), FakeTwilioApi(auth_token=DEV_AUTH_TOKEN, **dict(api_overrides or {})) as api:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        secrets_client = boto3.client("secretsmanager", region_name=REGION)
        create_data_model_table(dynamodb)
        queue_urls = template_resources.create_queues(sqs)
        arn = secrets_client.create_secret(Name="twilio/auth-token", SecretString=DEV_AUTH_TOKEN)["ARN"]
        yield World(dynamodb, sqs, api, queue_urls["RecordingsQueue"], str(arn))
