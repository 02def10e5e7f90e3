"""The reliability suite's in-process harness, under moto's `mock_aws` like tests/integration:

- `LambdaEnvironment`: the real handlers, each module loaded once per environment (two environments
  are two warm Lambda instances: they share the layer's process state, nothing else);
- `open_session` / `Callback`: a session opened through the real connect handler, and signed
  deliveries to the callback URLs its TwiML hands Twilio;
- `snapshot`: what one session left in EventsTable and RecordingsQueue, with the attributes that
  record *when* something happened replaced by a presence marker, so two sessions compare equal
  exactly when they hold the same facts;
- `AwsTap`: sees every DynamoDB and SQS call a delivery makes, can fail any attempt of any call the
  way a real outage does, and can run another delivery just before any call (a race)."""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType, SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import botocore.endpoint
import pytest
from boto3.dynamodb.conditions import Key
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from voice_webhooks.edge import routes
from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event

from tests.conftest import ROOT, FakeLambdaContext

BASE_URL = f"https://{SAMPLE_API_DOMAIN}"
FRONTLINE = "+15550100001"  # config/flows.example.json: the conversation flow that records
CALLER = "+15550109999"
FUNCTIONS = {
    routes.CONNECT: "connect",
    routes.ACTION: "action",
    routes.STATUS: "status",
    routes.RECORDING: "recording",
    routes.FALLBACK: "fallback",
}
TWIML_ROUTES = frozenset({routes.CONNECT, routes.ACTION, routes.FALLBACK})
# Twilio's retries of one delivery under the connection overrides every callback URL carries.
TWILIO_RETRIES = 3
PRESENT = "<present>"
SESSION = "<session>"

# ---------------------------------------------------------------------------------------------------
# Lambda execution environments


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def twiml(self) -> ElementTree.Element:
        """The TwiML document; fails the test unless this is a `<Response>` served as text/xml."""
        assert self.status == 200, f"{self.status}: {self.body[:200]}"
        assert self.content_type.startswith("text/xml"), self.content_type
        root = ElementTree.fromstring(self.body)
        assert root.tag == "Response", self.body[:200]
        return root


class LambdaEnvironment:
    """One warm execution environment per function, as Lambda keeps them."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(self._ids)
        self._modules: dict[str, ModuleType] = {}

    def _module(self, function: str) -> ModuleType:
        if function not in self._modules:
            path = ROOT / "functions" / function / "app.py"
            name = f"reliability_env{self.id}_{function}_app"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            self._modules[function] = module
        return self._modules[function]

    def invoke(self, function: str, event: dict[str, Any]) -> Answer:
        response = self._module(function).lambda_handler(event, FakeLambdaContext())
        headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
        body = str(response.get("body") or "")
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return Answer(int(response["statusCode"]), body, headers.get("content-type", ""))

    def send(self, route: str, event: dict[str, Any]) -> Answer:
        return self.invoke(FUNCTIONS[route], event)


# ---------------------------------------------------------------------------------------------------
# Sessions and deliveries


@dataclass(frozen=True)
class Session:
    session_id: str
    call_sid: str
    urls: Mapping[str, str]
    """Route -> the callback URL the connect TwiML names, as Twilio requests it (no fragment)."""


def connect_params(call_sid: str, to: str = FRONTLINE) -> dict[str, str]:
    return {
        "AccountSid": DEV_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": to,
        "Caller": CALLER,
        "Direction": "inbound",
        "From": CALLER,
        "To": to,
    }


def session_from_twiml(answer: Answer, call_sid: str) -> Session:
    connect = answer.twiml().find("./Connect")
    assert connect is not None, answer.body
    urls = {routes.ACTION: connect.attrib["action"]}
    noun = connect.find("./Conversation")
    if noun is not None:
        urls[routes.STATUS] = noun.attrib["statusCallback"]
        urls[routes.RECORDING] = noun.attrib["recordingStatusCallback"]
    urls = {route: url.split("#", 1)[0] for route, url in urls.items()}
    session_id = urls[routes.ACTION].split("session=", 1)[1]
    for route in (routes.ACTION, routes.STATUS, routes.RECORDING):
        # The voicemail <Record> the action route answers names the same URLs.
        urls.setdefault(route, f"{BASE_URL}{route}?session={session_id}")
    return Session(session_id=session_id, call_sid=call_sid, urls=urls)


def open_session(env: LambdaEnvironment, call_sid: str, to: str = FRONTLINE) -> Session:
    answer = env.send(
        routes.CONNECT, http_api_event("POST", f"{BASE_URL}{routes.CONNECT}", connect_params(call_sid, to))
    )
    return session_from_twiml(answer, call_sid)


@dataclass(frozen=True)
class Callback:
    """One request Twilio sends for a session (a status or recording callback, an action request)."""

    route: str
    params: tuple[tuple[str, str], ...]
    label: str

    def event(self, session: Session, method: str = "POST") -> dict[str, Any]:
        return http_api_event(method, session.urls[self.route], self.params)

    def value(self, name: str) -> str | None:
        return dict(self.params).get(name)


def deliver(env: LambdaEnvironment, session: Session, callback: Callback, method: str = "POST") -> Answer:
    return env.send(callback.route, callback.event(session, method))


# ---------------------------------------------------------------------------------------------------
# What a session left behind


@dataclass(frozen=True)
class Message:
    body: dict[str, Any]
    raw_body: str
    attributes: dict[str, str]


class Mailbox:
    """Everything RecordingsQueue received in this test, taken off the queue and sorted by session
    (so that each session's messages can be compared however many sessions share the queue)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.by_session: dict[str, list[Message]] = defaultdict(list)
        self.unreadable: list[str] = []

    def collect(self) -> None:
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return
            for message in batch:
                attributes = {
                    name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()
                }
                try:
                    body = json.loads(message["Body"])
                    self.by_session[body["sessionId"]].append(Message(body, message["Body"], attributes))
                except (ValueError, KeyError, TypeError):
                    self.unreadable.append(message["Body"])
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(batch)
                ],
            )

    def of(self, session_id: str) -> list[Message]:
        self.collect()
        return list(self.by_session.get(session_id, []))

    def total(self) -> int:
        self.collect()
        return sum(len(messages) for messages in self.by_session.values()) + len(self.unreadable)


def stored_items(table: Any, session_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "KeyConditionExpression": Key("SessionId").eq(session_id),
        "ConsistentRead": True,
    }
    while True:
        page = table.query(**query)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# Attributes recording when (or under which random claim) something happened: compared by presence.
_WHEN = frozenset({"CreatedAt", "ExpiresAt", "ReceivedAt", "EventTime", "ReconcileAt"})
_RECORDING_WHEN = frozenset(
    {"UpdatedAt", "CompletedAt", "QueueClaimId", "QueueLeaseUntil", "QueuedAt", "QueueMessageId"}
)
ACTION_ATTRIBUTES = ("ConnectAction", "DialAction", "RecordAction", "OtherAction")


def _present(value: Any) -> str:
    return PRESENT if value is not None else "<absent>"


def normalized_item(item: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    normal: dict[str, Any] = {}
    recording = str(item.get("ItemKey", "")).startswith("recording#")
    for name, value in item.items():
        if name in ignore:
            continue
        if name == "SessionId":
            normal[name] = SESSION
        elif name in _WHEN or (recording and name in _RECORDING_WHEN):
            normal[name] = _present(value)
        elif name in ACTION_ATTRIBUTES and isinstance(value, Mapping):
            normal[name] = {
                key: _present(inner) if key in _WHEN else inner
                for key, inner in value.items()
                if key not in ignore
            }
        elif name == "Recordings" and isinstance(value, Mapping):
            normal[name] = {
                sid: {
                    key: _present(inner) if key in _RECORDING_WHEN else inner
                    for key, inner in entry.items()
                    if key not in ignore
                }
                for sid, entry in value.items()
            }
        else:
            normal[name] = value
    return normal


def normalized_message(message: Message, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    body = {
        name: SESSION if name == "sessionId" else PRESENT if name == "completedAt" else value
        for name, value in message.body.items()
        if name not in ignore
    }
    return {"body": body, "attributes": message.attributes}


@dataclass(frozen=True)
class Snapshot:
    items: dict[str, dict[str, Any]]
    """ItemKey -> normalized item (`session`, `event#...`, `recording#...`, `action#...`)."""
    messages: list[dict[str, Any]]
    raw_messages: list[Message] = field(compare=False, repr=False)


def snapshot(
    table: Any, mailbox: Mailbox, session_id: str, *, ignore: frozenset[str] = frozenset()
) -> Snapshot:
    items = {str(item["ItemKey"]): normalized_item(item, ignore) for item in stored_items(table, session_id)}
    raw = mailbox.of(session_id)
    assert mailbox.unreadable == [], "RecordingsQueue holds a message that is not a recording message"
    messages = in_message_order(normalized_message(message, ignore) for message in raw)
    return Snapshot(items=items, messages=messages, raw_messages=raw)


def in_message_order(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(messages, key=lambda message: json.dumps(message, sort_keys=True, default=str))


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two snapshots (or parts of them) differ, as readable paths."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        found: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{where}: missing (expected {expected[key]!r})")
            elif key not in expected:
                found.append(f"{where}: unexpected {actual[key]!r}")
            else:
                found.extend(differences(expected[key], actual[key], where))
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            line
            for index, pair in enumerate(zip(expected, actual, strict=True))
            for line in differences(*pair, f"{path}[{index}]")
        ]
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def compare(expected: Snapshot, actual: Snapshot) -> list[str]:
    return differences(
        {"items": expected.items, "messages": expected.messages},
        {"items": actual.items, "messages": actual.messages},
    )


# ---------------------------------------------------------------------------------------------------
# The AWS tap: every DynamoDB and SQS call, faults on any attempt, races before any call

WATCHED_SERVICES = frozenset({"dynamodb", "sqs"})
WRITE_OPERATIONS = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "SendMessage",
        "SendMessageBatch",
        "DeleteMessage",
        "PurgeQueue",
    }
)


@dataclass(frozen=True)
class AwsCall:
    index: int
    """1-based, among the DynamoDB and SQS calls of the delivery being watched."""
    service: str
    operation: str

    @property
    def is_write(self) -> bool:
        return self.operation in WRITE_OPERATIONS

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}"


class FaultKind(StrEnum):
    THROTTLED = "throttled"
    """DynamoDB ProvisionedThroughputExceededException / SQS RequestThrottled (HTTP 400)."""
    SERVER_ERROR = "server-error"
    """InternalServerError / InternalError (HTTP 500)."""
    UNREACHABLE = "unreachable"
    """The request never reaches the service (EndpointConnectionError)."""
    RESPONSE_LOST = "response-lost"
    """The service applies the request; its answer never comes back (read timeout)."""


_ERROR_CODES = {
    ("dynamodb", FaultKind.THROTTLED): ("ProvisionedThroughputExceededException", 400),
    ("sqs", FaultKind.THROTTLED): ("RequestThrottled", 400),
    ("dynamodb", FaultKind.SERVER_ERROR): ("InternalServerError", 500),
    ("sqs", FaultKind.SERVER_ERROR): ("InternalError", 500),
}


@dataclass(frozen=True)
class Fault:
    call: int
    """Which call of the delivery fails (AwsCall.index)."""
    kind: FaultKind
    every_attempt: bool
    """True: every attempt the SDK makes fails, so the call raises (an outage outlasting botocore's
    retries). False: only the first attempt fails and the SDK's own retry goes through."""

    def __str__(self) -> str:
        attempts = "every attempt" if self.every_attempt else "the first attempt"
        return f"{self.kind} on {attempts} of call {self.call}"


_Original = Callable[..., Any]


class AwsTap:
    """Installed on botocore itself (`BaseClient._make_api_call` sees each call, the endpoint each
    attempt), so it sees the handlers' cached clients and resources whatever they are."""

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self.injected: list[tuple[AwsCall, int]] = []
        """(call, attempt) of every failed attempt."""
        self._active = False
        self._fault: Fault | None = None
        self._before: dict[int, Callable[[], None]] = {}
        self._current: AwsCall | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> AwsTap:
        make_api_call: _Original = BaseClient._make_api_call
        do_get_response: _Original = botocore.endpoint.Endpoint._do_get_response
        tap = self

        def _make_api_call(client: Any, operation: str, params: Any) -> Any:
            service = client.meta.service_model.service_id.hyphenize()
            if not (tap._active and service in WATCHED_SERVICES):
                return make_api_call(client, operation, params)
            call = AwsCall(len(tap.calls) + 1, service, operation)
            tap.calls.append(call)
            hook = tap._before.pop(call.index, None)
            if hook is not None:
                # Another delivery runs now, in its own environment, unwatched and unfaulted.
                tap._active = False
                try:
                    hook()
                finally:
                    tap._active = True
            tap._current = call
            try:
                return make_api_call(client, operation, params)
            finally:
                tap._current = None

        def _do_get_response(endpoint: Any, request: Any, operation_model: Any, context: Any) -> Any:
            call, fault = tap._current, tap._fault
            if tap._active and call is not None and fault is not None and call.index == fault.call:
                attempt = int(context.get("retries", {}).get("attempt", 1))
                if fault.every_attempt or attempt == 1:
                    tap.injected.append((call, attempt))
                    return _inject(
                        fault.kind,
                        call,
                        request,
                        lambda: do_get_response(endpoint, request, operation_model, context),
                    )
            return do_get_response(endpoint, request, operation_model, context)

        monkeypatch.setattr(BaseClient, "_make_api_call", _make_api_call)
        monkeypatch.setattr(botocore.endpoint.Endpoint, "_do_get_response", _do_get_response)
        # botocore backs off between attempts; the suite needs the attempts, not the waiting.
        monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=lambda _seconds: None))
        return self

    @contextmanager
    def watching(
        self, *, fault: Fault | None = None, before: Mapping[int, Callable[[], None]] | None = None
    ) -> Iterator[list[AwsCall]]:
        """Record the DynamoDB/SQS calls made inside the block; fail `fault.call` as told; run
        `before[n]` just before call n."""
        self.calls, self.injected = [], []
        self._fault, self._before = fault, dict(before or {})
        self._active = True
        try:
            yield self.calls
        finally:
            self._active, self._fault, self._before, self._current = False, None, {}, None


def _inject(kind: FaultKind, call: AwsCall, request: Any, send: Callable[[], Any]) -> Any:
    """What `Endpoint._do_get_response` returns for a failed attempt: ((http, parsed), None) for an
    error answer, (None, exception) when no answer came back."""
    if kind is FaultKind.UNREACHABLE:
        return None, EndpointConnectionError(endpoint_url=request.url)
    if kind is FaultKind.RESPONSE_LOST:
        send()
        return None, ReadTimeoutError(endpoint_url=request.url)
    code, status = _ERROR_CODES[(call.service, kind)]
    http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, MockRawResponse(b"{}"))
    parsed = {
        "Error": {"Code": code, "Message": f"injected: {kind}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RequestId": "injected"},
    }
    return (http, parsed), None


def writes(calls: Sequence[AwsCall]) -> list[AwsCall]:
    return [call for call in calls if call.is_write]
