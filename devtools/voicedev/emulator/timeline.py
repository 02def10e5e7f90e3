"""The story of a session, read back from where the product wrote it: the session item and its
status events in EventsTable (in `SequenceNumber` order), and the RecordingsQueue messages, shown as
tables with times relative to the call's start.

Works against the local mode's embedded AWS endpoint (the default) and against a deployed stack
(real AWS credentials; table and queue from `--stack-name` outputs, the environment, or flags).

SQS has no way to look at a message without receiving it: messages are *peeked* by receiving them
and making them visible again at once. Each peek still counts as a receive, and RecordingsQueue
moves a message to its dead-letter queue after `maxReceiveCount` receives, so both queues are shown."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.dynamodb.conditions import Key

from voicedev.emulator.output import mask, mask_text
from voicedev.local_aws import DUMMY_CREDENTIALS

LOCAL_AWS_ENDPOINT = "http://127.0.0.1:5005"
LOCAL_REGION = "us-east-1"
TABLE_LOGICAL_ID = "EventsTable"
CALL_SID_INDEX = "ByCallSid"
QUEUE_LOGICAL_IDS = ("RecordingsQueue", "RecordingsDeadLetterQueue")
# Stack outputs of template.yaml naming the same resources.
STACK_OUTPUTS = {
    "EventsTableName": TABLE_LOGICAL_ID,
    "RecordingsQueueUrl": "RecordingsQueue",
    "RecordingsDeadLetterQueueUrl": "RecordingsDeadLetterQueue",
}
PEEK_VISIBILITY_SECONDS = 20
MAX_PEEKED = 500


class TimelineError(RuntimeError):
    """The table or queue cannot be found or read; the message says what to set."""


def is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def local_aws_endpoint() -> str:
    port = os.environ.get("LOCAL_AWS_PORT", "").strip()
    return f"http://127.0.0.1:{port}" if port else LOCAL_AWS_ENDPOINT


@dataclass(frozen=True)
class AwsLocation:
    """Where the product's table and queues are. `endpoint_url` None: real AWS (credentials from
    the usual chain). Names left None are discovered."""

    endpoint_url: str | None = LOCAL_AWS_ENDPOINT
    region: str | None = None
    table_name: str | None = None
    queue_urls: Mapping[str, str] | None = None
    stack_name: str | None = None


@dataclass(frozen=True)
class PeekedMessage:
    queue: str
    message_id: str
    body: dict[str, Any]
    attributes: dict[str, str]
    receive_count: int
    sent_at: datetime | None

    @property
    def session_id(self) -> str | None:
        value = self.body.get("sessionId")
        return str(value) if value is not None else None


@dataclass
class SessionTimeline:
    session_id: str
    session: dict[str, Any] | None
    events: list[dict[str, Any]]
    """Status-event items, in SequenceNumber order."""
    messages: list[PeekedMessage] = field(default_factory=list)
    queues_read: bool = False

    @property
    def call_start(self) -> datetime | None:
        if self.session and self.session.get("CreatedAt"):
            return _parse_time(self.session["CreatedAt"])
        moments = [_parse_time(item.get("ReceivedAt")) for item in self.events]
        known = [moment for moment in moments if moment is not None]
        return min(known) if known else None


class TimelineReader:
    """Reads EventsTable and peeks the queues (boto3)."""

    def __init__(self, location: AwsLocation) -> None:
        self.location = location
        region = location.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if location.endpoint_url and is_loopback(location.endpoint_url):
            # The embedded endpoint takes any credentials; never send a developer's real ones there.
            session = boto3.session.Session(region_name=region or LOCAL_REGION, **DUMMY_CREDENTIALS)
        else:
            session = boto3.session.Session(region_name=region)
        self._session = session
        self._endpoint = location.endpoint_url
        self._table_name = location.table_name or os.environ.get("EVENTS_TABLE_NAME") or None
        self._queue_urls: dict[str, str] | None = dict(location.queue_urls) if location.queue_urls else None
        self._outputs: dict[str, str] | None = None

    def _client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)

    def _stack_outputs(self) -> dict[str, str]:
        if self._outputs is None:
            self._outputs = {}
            if self.location.stack_name:
                stacks = self._client("cloudformation").describe_stacks(StackName=self.location.stack_name)
                for output in stacks["Stacks"][0].get("Outputs", []):
                    self._outputs[output["OutputKey"]] = output["OutputValue"]
        return self._outputs

    @property
    def table_name(self) -> str:
        if self._table_name:
            return self._table_name
        outputs = self._stack_outputs()
        if "EventsTableName" in outputs:
            self._table_name = outputs["EventsTableName"]
            return self._table_name
        names = self._client("dynamodb").list_tables().get("TableNames", [])
        # The local mode names it after the template's logical id; SAM as <stack>-EventsTable-<suffix>.
        candidates = [name for name in names if name == TABLE_LOGICAL_ID] or [
            name for name in names if TABLE_LOGICAL_ID in name
        ]
        if len(candidates) != 1:
            found = ", ".join(names) or "none"
            raise TimelineError(
                f"cannot tell which table is {TABLE_LOGICAL_ID} (tables: {found}); "
                "set EVENTS_TABLE_NAME, --table or --stack-name"
            )
        self._table_name = candidates[0]
        return self._table_name

    @property
    def queue_urls(self) -> dict[str, str]:
        if self._queue_urls is not None:
            return self._queue_urls
        urls: dict[str, str] = {}
        outputs = self._stack_outputs()
        for output, logical_id in STACK_OUTPUTS.items():
            if logical_id in QUEUE_LOGICAL_IDS and output in outputs:
                urls[logical_id] = outputs[output]
        if not urls and os.environ.get("RECORDINGS_QUEUE_URL"):
            urls["RecordingsQueue"] = os.environ["RECORDINGS_QUEUE_URL"]
        if not urls and self._endpoint and is_loopback(self._endpoint):
            sqs = self._client("sqs")
            for logical_id in QUEUE_LOGICAL_IDS:
                try:
                    urls[logical_id] = sqs.get_queue_url(QueueName=logical_id)["QueueUrl"]
                except sqs.exceptions.QueueDoesNotExist:
                    continue
        self._queue_urls = urls
        return urls

    @property
    def _table(self) -> Any:
        resource = self._session.resource("dynamodb", endpoint_url=self._endpoint)
        return resource.Table(self.table_name)

    # -- reading -------------------------------------------------------------------------------

    def sessions_for_call(self, call_sid: str) -> list[str]:
        """The sessions of a call (GSI ByCallSid), oldest first."""
        items = _query_all(
            self._table,
            IndexName=CALL_SID_INDEX,
            KeyConditionExpression=Key("SessionCallSid").eq(call_sid),
        )
        ordered = sorted(items, key=lambda item: str(item.get("CreatedAt") or item.get("ReceivedAt") or ""))
        return list(dict.fromkeys(str(item["SessionId"]) for item in ordered))

    def items(self, session_id: str) -> list[dict[str, Any]]:
        items = _query_all(
            self._table, KeyConditionExpression=Key("SessionId").eq(session_id), ConsistentRead=True
        )
        return sorted((_plain(item) for item in items), key=lambda item: str(item["ItemKey"]))

    def timeline(self, session_id: str, *, read_queues: bool = True) -> SessionTimeline:
        # docs/data-model.md: `session`, `event#...` (every stream, interleaved by EventTime),
        # `action#<step>` and `recording#<sid>` items, shown here as the session's history.
        items = self.items(session_id)
        session = next((dict(item) for item in items if item["ItemKey"] == "session"), None)
        steps = {
            name.removeprefix("action#"): item
            for item in items
            if (name := str(item["ItemKey"])).startswith("action#")
        }
        recordings = {
            str(item.get("RecordingSid")): item
            for item in items
            if str(item["ItemKey"]).startswith("recording#")
        }
        if session is not None or steps or recordings:
            session = session or {}
            session.setdefault("CallSid", session.get("SessionCallSid"))
            for attribute, name in ACTION_STEPS:
                if name in steps:
                    session[attribute] = steps[name]
            session["Recordings"] = recordings
        events = sorted(
            (item for item in items if str(item["ItemKey"]).startswith("event#")),
            key=lambda item: (
                str(item.get("EventTime") or item.get("ReceivedAt") or ""),
                str(item["ItemKey"]),
            ),
        )
        result = SessionTimeline(session_id=session_id, session=session, events=events)
        if read_queues:
            result.messages = [message for message in self.peek_all() if message.session_id == session_id]
            result.queues_read = True
        return result

    def peek_all(self) -> list[PeekedMessage]:
        messages: list[PeekedMessage] = []
        for logical_id, url in self.queue_urls.items():
            messages.extend(self.peek(logical_id, url))
        return messages

    def peek(self, name: str, queue_url: str) -> list[PeekedMessage]:
        """Every visible message, received and made visible again at once (VisibilityTimeout 0).
        A short visibility while collecting makes each receive return messages not seen yet."""
        sqs = self._client("sqs")
        seen: dict[str, PeekedMessage] = {}
        handles: list[str] = []
        try:
            while len(seen) < MAX_PEEKED:
                response = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                    WaitTimeSeconds=0,
                    MessageAttributeNames=["All"],
                    AttributeNames=["All"],
                )
                batch = response.get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    handles.append(message["ReceiptHandle"])
                    seen.setdefault(message["MessageId"], _peeked(name, message))
        finally:
            for start in range(0, len(handles), 10):
                entries = [
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, handle in enumerate(handles[start : start + 10])
                ]
                sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        return list(seen.values())


def _query_all(table: Any, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = table.query(**kwargs)
        items.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as ints (or floats), recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(item) for item in value]
    return value


def _peeked(queue: str, message: Mapping[str, Any]) -> PeekedMessage:
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        body = {"raw": message.get("Body", "")}
    if not isinstance(body, dict):
        body = {"raw": body}
    attributes = {
        name: str(value.get("StringValue", value.get("BinaryValue", "")))
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    system = message.get("Attributes") or {}
    sent = system.get("SentTimestamp")
    return PeekedMessage(
        queue=queue,
        message_id=str(message["MessageId"]),
        body=body,
        attributes=attributes,
        receive_count=int(system.get("ApproximateReceiveCount", "0")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
    )


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Rendering


def _relative(moment: datetime | None, start: datetime | None, digits: int = 1) -> str:
    if moment is None or start is None:
        return "?"
    return f"{(moment - start).total_seconds():+.{digits}f}s"


def _sid(value: Any) -> str:
    text = str(value or "")
    return text if len(text) <= 14 else text[:8] + "\u2026" + text[-4:]


def _table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    body = [list(row) for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in body]) for index, header in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in body)]


def _fields(entry: Mapping[str, Any], names: Iterable[str]) -> str:
    shown = []
    for name in names:
        value = entry.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, list):
            text = ",".join(str(part) for part in value)
        elif isinstance(value, str) and len(value) == 34 and value[:2].isalpha():
            text = _sid(value)
        else:
            text = str(value)
        shown.append(f"{name}={text}")
    return " ".join(shown)


ACTION_STEPS = (
    ("ConnectAction", "connect"),
    ("DialAction", "dial"),
    ("RecordAction", "record"),
    ("OtherAction", "other"),
)
ACTION_FIELDS = (
    "Result",
    "DialCallStatus",
    "SessionStatus",
    "ErrorCode",
    "HandoffDataKeys",
    "RecordingDuration",
    "Digits",
    "Outcome",
    "Next",
    "Target",
)


def render(timeline: SessionTimeline, *, queue_note: str | None = None) -> str:
    session = timeline.session or {}
    start = timeline.call_start
    lines = [f"Session {timeline.session_id}"]
    if not timeline.session and not timeline.events:
        lines.append("  nothing stored for this session (wrong id, another table, or expired by TTL)")
        return "\n".join(lines)
    if session:
        parties = f"{mask(session.get('From'))} -> {mask(session.get('To'))}  {session.get('Direction', '')}"
        flow = f"flow {session.get('Flow', '?')} ({session.get('FlowKind', '?')})"
        lines.append(f"  call {session.get('CallSid', '?')}  {parties}   {flow}")
        latest = session.get("LatestStatus")
        lines.append(
            f"  opened {session.get('CreatedAt', '?')}   latest status "
            + (f"{latest} (#{session.get('LatestSequenceNumber')})" if latest else "none")
            + (f"   ConversationSid {session['ConversationSid']}" if session.get("ConversationSid") else "")
        )
    else:
        lines.append("  no session item (SequenceNumber 0): the connect request was not recorded")

    lines += ["", "  Status events (SequenceNumber order; time: Twilio's Timestamp; received: when stored)"]
    if timeline.events:
        rows = [
            [
                str(item["SequenceNumber"]),
                str(item.get("Status") or item.get("CallStatus", "?")),
                # Twilio's Timestamps have whole seconds: compare them with the start's second.
                _relative(
                    _parse_time(item.get("Timestamp")), start.replace(microsecond=0) if start else None, 0
                ),
                _relative(_parse_time(item.get("ReceivedAt")), start, 3),
                _fields(item, ("DialCallSid", "ConversationSid", "WorkerInitiated")),
            ]
            for item in timeline.events
        ]
        lines += ["  " + row for row in _table(["#", "status", "time", "received", "details"], rows)]
    else:
        lines.append("    none")

    steps: list[tuple[datetime | None, list[str]]] = []
    for attribute, name in ACTION_STEPS:
        entry = session.get(attribute)
        if isinstance(entry, Mapping):
            moment = _parse_time(entry.get("ReceivedAt"))
            steps.append(
                (
                    moment,
                    [
                        f"action: {name}",
                        _relative(moment, start, 3),
                        mask_text(_fields(entry, ACTION_FIELDS)),
                    ],
                )
            )
    for sid, entry in sorted((session.get("Recordings") or {}).items()):
        if not isinstance(entry, Mapping):
            continue
        moment = _parse_time(entry.get("UpdatedAt"))
        queued = (
            f" queued {_relative(_parse_time(entry.get('QueuedAt')), start, 3)}"
            if entry.get("QueuedAt")
            else ""
        )
        details = _fields(entry, ("Status", "Duration", "Channels", "Source")) + queued
        steps.append((moment, [f"recording {_sid(sid)}", _relative(moment, start, 3), details]))
    lines += ["", "  Session item (SequenceNumber 0): action requests and recordings"]
    if steps:
        steps.sort(key=lambda step: step[0] or datetime.max.replace(tzinfo=UTC))
        lines += ["  " + row for row in _table(["what", "received", "details"], [row for _, row in steps])]
    else:
        lines.append("    none")

    lines.append("")
    if not timeline.queues_read:
        lines.append(f"  Queue messages: not read{f' ({queue_note})' if queue_note else ''}")
    else:
        note = queue_note or (
            "peeked: received and made visible again at once; each peek counts toward maxReceiveCount"
        )
        lines.append(f"  Queue messages for this session ({note})")
        if timeline.messages:
            rows = [
                [
                    message.queue,
                    _relative(message.sent_at, start, 3),
                    _sid(message.body.get("recordingSid")),
                    str(message.body.get("kind", "")),
                    f"{message.body.get('durationSeconds', '?')}s",
                    str(message.body.get("schema", "")),
                    str(message.receive_count),
                ]
                for message in timeline.messages
            ]
            headers = ["queue", "sent", "recording", "kind", "duration", "schema", "receives"]
            lines += ["  " + row for row in _table(headers, rows)]
        else:
            lines.append("    none")
    return "\n".join(lines)
