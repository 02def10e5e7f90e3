"""Fixtures shared by every test layer. Tests never reach real AWS: credentials are fake and every
AWS call goes to moto (in-process `mock_aws`, or the moto server in e2e)."""

from __future__ import annotations

import os

# Powertools reads these when the shared Logger/Metrics are created, at import: set them first.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "twilio-voice-webhooks-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TwilioVoiceWebhooksTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from voice_webhooks.relay import reset_relay_caches
from voicedev import template_resources
from voicedev.handler_caches import reset_handler_caches
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

from tests.support import Calls

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"
EXAMPLE_FLOWS = ROOT / "config" / "flows.example.json"
REGION = "us-east-1"


def reset_caches() -> None:
    """Forget everything cached per process: settings, clients, secrets, parsed flow config."""
    reset_handler_caches()
    reset_relay_caches()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "twilio-voice-webhooks-test")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TwilioVoiceWebhooksTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    for name in (
        "PUBLIC_BASE_URL",
        "TWILIO_AUTH_TOKEN_SECRET",
        "ALLOWED_ACCOUNT_SIDS",
        "FLOW_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    yield
    reset_caches()


class AwsResources:
    """The deployed resources, created in moto from template.yaml's own definitions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        self.table_name = template_resources.create_table(self.dynamodb)
        self.queue_urls = template_resources.create_queues(self.sqs)
        self.secret_arn = self.set_auth_tokens(DEV_AUTH_TOKEN)
        self.env(
            TWILIO_AUTH_TOKEN_SECRET=self.secret_arn,
            ALLOWED_ACCOUNT_SIDS=DEV_ACCOUNT_SID,
            EVENTS_TABLE_NAME=self.table_name,
            RECORDINGS_QUEUE_URL=self.queue_urls["RecordingsQueue"],
            FLOW_CONFIG=str(EXAMPLE_FLOWS),
        )

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)
        reset_caches()

    def set_auth_tokens(self, primary: str, secondary: str | None = None) -> str:
        import json

        value = json.dumps({"authToken": primary, "secondaryAuthToken": secondary}) if secondary else primary
        try:
            arn = self.secrets.create_secret(Name="twilio/auth-token", SecretString=value)["ARN"]
        except self.secrets.exceptions.ResourceExistsException:
            arn = self.secrets.put_secret_value(SecretId="twilio/auth-token", SecretString=value)["ARN"]
        reset_caches()
        return str(arn)

    @property
    def table(self) -> Any:
        return boto3.resource("dynamodb", region_name=REGION).Table(self.table_name)

    def items(self, session_id: str | None = None) -> list[dict[str, Any]]:
        items = self.table.scan(ConsistentRead=True)["Items"]
        if session_id is not None:
            items = [item for item in items if item["SessionId"] == session_id]
        return sorted(items, key=lambda item: (item["SessionId"], item["ItemKey"]))

    def item(self, session_id: str, item_key: str = "session") -> dict[str, Any] | None:
        """One item, read consistently (`session`, `recording#RE...`, `action#connect`, ...)."""
        response = self.table.get_item(
            Key={"SessionId": session_id, "ItemKey": item_key}, ConsistentRead=True
        )
        return response.get("Item")

    def messages(self, queue: str = "RecordingsQueue") -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_urls[queue], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(response.get("Messages", []))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsResources]:
    from moto import mock_aws

    with mock_aws():
        yield AwsResources(monkeypatch)


class FakeLambdaContext:
    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "stream"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name, exactly as Lambda would load it."""
    path = ROOT / "functions" / name / "app.py"
    module_name = f"function_{name}_app"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def invoke(lambda_context: FakeLambdaContext) -> Any:
    """invoke("connect", event) -> the handler's API Gateway response dict."""
    loaded: dict[str, ModuleType] = {}

    def _invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        if function not in loaded:
            loaded[function] = load_function(function)
        return dict(loaded[function].lambda_handler(event, lambda_context))

    return _invoke


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS API call made from now on, as (service, operation)."""
    from botocore.client import BaseClient

    calls: Calls = []
    original = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the Powertools logger writes (the JSON lines CloudWatch would get)."""
    from voice_webhooks.runtime.observability import logger

    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return buffer
