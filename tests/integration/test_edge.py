"""The one edge: every function's handler comes from `voice_webhooks.edge.handler`, and whatever
POWERTOOLS_LOGGER_LOG_EVENT says, no function logs an event, a signature or a phone number."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
from voice_webhooks.edge.handler import is_edge_handler
from voicedev.local_archiver import sqs_event
from voicedev.sample_events import ENV_FILE

from tests.conftest import EVENTS_DIR, REGION, ROOT, FakeLambdaContext, load_function

FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))
# The sample events of the HTTP API (not their `.expected.json` answers), and of the relay's WebSocket API.
EVENT_FILES = sorted(
    path
    for path in EVENTS_DIR.glob("*.json")
    if path.name != ENV_FILE and not path.name.endswith(".expected.json")
)
RELAY_EVENT_FILES = sorted((EVENTS_DIR / "relay").glob("*.json"))
# What EventBridge Scheduler hands the reconciler.
SCHEDULE_EVENT = {
    "version": "0",
    "id": "e",
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "detail": {},
}
# E.164 numbers, with or without the +, as Twilio sends them (From, To, Caller, Called, ...).
PHONE = re.compile(r"\+?1555\d{7}")


def test_every_function_gets_its_handler_from_the_edge(aws: Any) -> None:
    aws.env(RECORDINGS_BUCKET_NAME="recordings")
    assert FUNCTIONS == [
        "action",
        "archiver",
        "connect",
        "fallback",
        "reconciler",
        "recording",
        "relay_connect",
        "relay_disconnect",
        "relay_message",
        "status",
    ]
    for name in FUNCTIONS:
        module = load_function(name)
        # Given the module Lambda loads, Then its handler was made by the edge
        assert is_edge_handler(module.lambda_handler), name
        # And the module declares no handler stack of its own (it would drift from the edge's)
        source = (ROOT / "functions" / name / "app.py").read_text(encoding="utf-8")
        for own_stack in (
            "inject_lambda_context",
            "capture_lambda_handler",
            "log_metrics",
            "def lambda_handler",
        ):
            assert own_stack not in source, (name, own_stack)


def secrets_of(event: dict[str, Any]) -> set[str]:
    """What must never reach a log: the signature, the numbers, the body and query as sent."""
    headers = event.get("headers") or {}
    found = {value for name, value in headers.items() if "signature" in name.lower() and value}
    body = event.get("body") or ""
    if body:
        found.add(body)  # as sent (base64 for HTTP API form posts)
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    for text in (body, event.get("rawQueryString") or ""):
        if text:
            found.add(text)
        for _, value in parse_qsl(text, keep_blank_values=True):
            found.update(match.group() for match in PHONE.finditer(unquote_plus(value)))
    return found


@pytest.fixture
def logging_every_event(aws: Any, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO) -> io.StringIO:
    # Given the setting that makes Powertools log every event it is asked to
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    aws.env(RECORDINGS_BUCKET_NAME="recordings")
    return log_output


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_logs_an_event_a_signature_or_a_number(
    logging_every_event: io.StringIO, function: str
) -> None:
    module = load_function(function)
    leaks: list[str] = []
    seen = 0
    files = RELAY_EVENT_FILES if function.startswith("relay_") else EVENT_FILES
    for path in files:
        event = json.loads(path.read_text(encoding="utf-8"))
        # When every sample event reaches the function (the archiver gets it as a queue message,
        # the reconciler runs on its schedule once per event)
        if function == "reconciler":
            module.lambda_handler(SCHEDULE_EVENT, FakeLambdaContext())
        elif function == "archiver":
            message = {
                "MessageId": path.stem,
                "ReceiptHandle": "rh",
                "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "Body": json.dumps(event),
                "MD5OfBody": "",
            }
            module.lambda_handler(
                sqs_event([message], f"arn:aws:sqs:{REGION}:123456789012:q", REGION), FakeLambdaContext()
            )
        else:
            module.lambda_handler(event, FakeLambdaContext())
        logs = logging_every_event.getvalue()
        logging_every_event.seek(0)
        logging_every_event.truncate()
        # Then nothing of what Twilio sent is in the logs: no signature, no number, no body
        leaks += [f"{path.stem}: {secret[:12]}..." for secret in secrets_of(event) if secret in logs]
        seen += len(logs)
        assert '"rawPath"' not in logs and '"requestContext"' not in logs, path.stem
    assert leaks == []
    assert seen, "the capture saw the function's logs"


def test_the_leak_check_catches_a_handler_that_logs_its_event(logging_every_event: io.StringIO) -> None:
    # Given a handler stack with Powertools' own default (it follows POWERTOOLS_LOGGER_LOG_EVENT)
    from voice_webhooks.runtime.observability import logger

    @logger.inject_lambda_context
    def leaky(event: dict[str, Any], context: Any) -> None:
        return None

    event = json.loads((EVENTS_DIR / "connect-conversation.json").read_text(encoding="utf-8"))
    leaky(event, FakeLambdaContext())

    # Then the checks above would see the event: the signature and the caller's number
    logs = logging_every_event.getvalue()
    assert event["headers"]["x-twilio-signature"] in logs
    assert event["body"] in logs


def test_the_webhook_functions_never_import_the_archiver_code() -> None:
    # Given a fresh interpreter per function, as a Lambda cold start is
    import subprocess
    import sys

    code = (
        "import importlib.util, os, sys\n"
        "os.environ.update(TWILIO_AUTH_TOKEN_SECRET='s', ALLOWED_ACCOUNT_SIDS='AC1', EVENTS_TABLE_NAME='t',"
        " RECORDINGS_QUEUE_URL='q', FLOW_CONFIG='f', AWS_DEFAULT_REGION='us-east-1')\n"
        "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(sorted(name for name in sys.modules if name.startswith('voice_webhooks.archiver')))\n"
    )
    for name in FUNCTIONS:
        # The reconciler downloads from Twilio's API under the archiver's host rules (download.py).
        if name in ("archiver", "reconciler"):
            continue
        # When its app.py is imported, Then no module of the archiver's subpackage is loaded
        app = str(ROOT / "functions" / name / "app.py")
        result = subprocess.run(  # noqa: S603 - our interpreter, our own files
            [sys.executable, "-c", code, app], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "[]", (name, result.stdout, result.stderr[-500:])


def test_every_log_line_carries_the_invocations_request_id(aws: Any, log_output: io.StringIO) -> None:
    # Given the fallback function (it logs on every request) and a queue consumer (no request id)
    aws.env(RECORDINGS_BUCKET_NAME="recordings")
    webhook = load_function("fallback")
    archiver = load_function("archiver")
    event = json.loads((EVENTS_DIR / "fallback.json").read_text(encoding="utf-8"))
    unsigned = json.loads((EVENTS_DIR / "fallback-unsigned.json").read_text(encoding="utf-8"))

    seen: dict[str, set[object]] = {}
    for request_id, sample, status in (
        ("first-request", event, 200),
        ("second-request", unsigned, 403),
        ("third", event, 200),
    ):
        # When each invocation comes with its own request id
        sample = {**sample, "requestContext": {**sample["requestContext"], "requestId": request_id}}
        assert webhook.lambda_handler(sample, FakeLambdaContext())["statusCode"] == status
        lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
        log_output.seek(0)
        log_output.truncate()
        seen[request_id] = {line.get("correlation_id") for line in lines}

    # Then every line of an invocation carries that invocation's id, never the one before
    assert seen == {
        "first-request": {"first-request"},
        "second-request": {"second-request"},
        "third": {"third"},
    }

    # And a function without an HTTP request logs no correlation id, even after a webhook set one
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "Body": "{}",  # not a recording message: logged as such
        "MD5OfBody": "",
    }
    archiver.lambda_handler(
        sqs_event([message], f"arn:aws:sqs:{REGION}:123456789012:q", REGION), FakeLambdaContext()
    )
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert lines
    assert all("correlation_id" not in line for line in lines)
