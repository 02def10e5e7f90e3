"""The story of a session, read back from where the product wrote it: the session item, its status
events of every stream (the `<Conversation>` events, the call's own call-progress events, each
dialled leg's, reconciled ones) interleaved by time, its action requests and recordings in
EventsTable (docs/data-model.md), and the RecordingsQueue messages, shown as tables with times
relative to the call's start.

Works against the local mode's embedded AWS endpoint (the default) and against a deployed stack
(real AWS credentials; table and queue from `--stack-name` outputs, the environment, or flags).

Against the local mode, queue messages are read from the embedded endpoint's own state (nothing is
received, so reading a timeline never ages a message toward the dead-letter queue). SQS itself has
no way to look at a message without receiving it: against a deployed stack, messages are *peeked*
by receiving them and making them visible again at once. Each peek still counts as a receive, and
RecordingsQueue moves a message to its dead-letter queue after `maxReceiveCount` receives, so both
queues are shown."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.dynamodb.conditions import Key

from voicedev.emulator.output import WIDTH, fit, mask, mask_text, wrap
from voicedev.local_aws import DUMMY_CREDENTIALS, QUEUE_MESSAGES_PATH

LOCAL_AWS_ENDPOINT = "http://127.0.0.1:5005"
LOCAL_REGION = "us-east-1"
TABLE_LOGICAL_ID = "EventsTable"
CALL_SID_INDEX = "ByCallSid"
CALL_SID_INDEX_KEY = "SessionCallSid"
SESSION_KEY = "session"
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
    """Status-event items of every stream (`event#...`), interleaved by time (`EventTime`)."""
    messages: list[PeekedMessage] = field(default_factory=list)
    queues_read: bool = False
    read_locally: bool = False
    """The messages come from the local mode's state (not received), not from peeks."""
    actions: list[dict[str, Any]] = field(default_factory=list)
    """Action-request items (`action#<step>`), in the order they were received."""
    recordings: list[dict[str, Any]] = field(default_factory=list)
    """Recording items (`recording#<RecordingSid>`)."""
    legs: list[dict[str, Any]] = field(default_factory=list)
    """Dialled legs of the session's call (`leg#<CallSid>`)."""
    turns: list[dict[str, Any]] = field(default_factory=list)
    """ConversationRelay turns (`turn#<attempt>#<seq>`), in order."""

    def stream(self, name: str) -> list[dict[str, Any]]:
        """One stream's events in SequenceNumber order: `conversation`, `call` (the session's
        own call), `call:<CallSid>` (any call, a dialled leg's included) or `reconciled`."""
        own = str((self.session or {}).get(CALL_SID_INDEX_KEY) or self.session_id.partition("-")[0])
        wanted = f"call:{own}" if name == "call" else name
        chosen = [item for item in self.events if stream_of(item) == wanted]
        return sorted(chosen, key=lambda item: int(item.get("SequenceNumber", -1)))

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
        """The sessions of a call (GSI ByCallSid), oldest first: the ones its connect requests
        opened, and the one a callback without `session` started (id = the CallSid)."""
        items = _query_all(
            self._table,
            IndexName=CALL_SID_INDEX,
            KeyConditionExpression=Key(CALL_SID_INDEX_KEY).eq(call_sid),
        )
        ordered = sorted(items, key=lambda item: str(item.get("CreatedAt") or item.get("ReceivedAt") or ""))
        return list(dict.fromkeys(str(item["SessionId"]) for item in ordered))

    def items(self, session_id: str) -> list[dict[str, Any]]:
        """Every item of the session, in ItemKey order."""
        items = _query_all(
            self._table, KeyConditionExpression=Key("SessionId").eq(session_id), ConsistentRead=True
        )
        return sorted((_plain(item) for item in items), key=lambda item: str(item.get("ItemKey", "")))

    def timeline(self, session_id: str, *, read_queues: bool = True) -> SessionTimeline:
        result = timeline_of(session_id, self.items(session_id))
        if read_queues:
            result.messages = [message for message in self.peek_all() if message.session_id == session_id]
            result.queues_read = True
            result.read_locally = self.reads_local_state
        return result

    @property
    def reads_local_state(self) -> bool:
        """True against the local mode: queues are read from its state, never received from."""
        return bool(self._endpoint and is_loopback(self._endpoint))

    def peek_all(self) -> list[PeekedMessage]:
        if self.reads_local_state:
            return self.local_messages()
        messages: list[PeekedMessage] = []
        for logical_id, url in self.queue_urls.items():
            messages.extend(self.peek(logical_id, url))
        return messages

    def local_messages(self) -> list[PeekedMessage]:
        """Every message of the queues, as the local mode's embedded endpoint holds them."""
        assert self._endpoint is not None
        url = self._endpoint.rstrip("/") + QUEUE_MESSAGES_PATH
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http
                queues = json.loads(response.read())["queues"]
        except (OSError, ValueError, KeyError) as exc:
            raise TimelineError(f"cannot read the local mode's queues at {url}: {exc}") from exc
        names = {url.rsplit("/", 1)[-1]: logical_id for logical_id, url in self.queue_urls.items()}
        return [
            _peeked(names[name], message)
            for name, messages in queues.items()
            if name in names
            for message in messages
        ]

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


def stream_of(item: Mapping[str, Any]) -> str:
    """`conversation`, `call:<CallSid>` or `reconciled`, from the event's ItemKey."""
    parts = str(item.get("ItemKey", "")).split("#")
    if len(parts) >= 3 and parts[1] == "call":
        return f"call:{parts[2]}"
    return parts[1] if len(parts) > 1 else "?"


def _event_time(item: Mapping[str, Any]) -> str:
    return str(item.get("EventTime") or _iso(item.get("Timestamp")) or item.get("ReceivedAt") or "")


def _iso(value: Any) -> str | None:
    moment = _parse_time(value)
    return moment.astimezone(UTC).isoformat() if moment else None


def timeline_of(session_id: str, items: Iterable[Mapping[str, Any]]) -> SessionTimeline:
    """Sort a session's items (as stored) into its timeline."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    session: dict[str, Any] | None = None
    for item in items:
        key = str(item.get("ItemKey", ""))
        if key == SESSION_KEY:
            session = dict(item)
        else:
            by_kind.setdefault(key.partition("#")[0], []).append(dict(item))
    events = sorted(by_kind.get("event", []), key=lambda item: (_event_time(item), str(item["ItemKey"])))
    actions = sorted(by_kind.get("action", []), key=lambda item: str(item.get("ReceivedAt") or ""))
    return SessionTimeline(
        session_id=session_id,
        session=session,
        events=events,
        actions=actions,
        recordings=sorted(by_kind.get("recording", []), key=lambda item: str(item.get("UpdatedAt") or "")),
        legs=by_kind.get("leg", []),
        turns=sorted(by_kind.get("turn", []), key=lambda item: str(item["ItemKey"])),
    )


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


def _table(headers: list[str], rows: Iterable[list[str]], width: int = WIDTH - 2) -> list[str]:
    """The table in at most `width` columns: a long last cell wraps under its own column."""
    body = [list(row) for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in body]) for index, header in enumerate(headers)]
    last_column = 2 + sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = min(widths[-1], max(width - last_column, len(headers[-1])))

    def line(cells: list[str]) -> list[str]:
        text = "  " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        return wrap(text, indent=last_column, width=width)

    return [
        *line(headers),
        *line(["-" * width for width in widths]),
        *(part for row in body for part in line(row)),
    ]


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
EVENT_DETAILS = ("DialCallSid", "ConversationSid", "WorkerInitiated", "CallDuration")


def _stream_label(item: Mapping[str, Any], own_call: str) -> str:
    stream = stream_of(item)
    if stream == f"call:{own_call}":
        return "call"
    if stream.startswith("call:"):
        return "leg " + _sid(stream.removeprefix("call:"))
    return stream


def _status_of(item: Mapping[str, Any]) -> str:
    return str(item.get("Status") or item.get("CallStatus") or "?")


def _latest(session: Mapping[str, Any], status: str, sequence: str) -> str:
    value = session.get(status)
    if not value:
        return "none"
    number = session.get(sequence)
    # The reconciler's status has no SequenceNumber of Twilio's: it says where it came from instead.
    return f"{value} (#{number})" if number is not None else f"{value} (reconciled)"


def render(timeline: SessionTimeline, *, queue_note: str | None = None) -> str:
    session = timeline.session or {}
    start = timeline.call_start
    lines = [f"Session {timeline.session_id}"]
    stored = timeline.events or timeline.actions or timeline.recordings or timeline.legs or timeline.turns
    if not timeline.session and not stored:
        lines.append("  nothing stored for this session (wrong id, another table, or expired by TTL)")
        return "\n".join(lines)
    own_call = str(session.get(CALL_SID_INDEX_KEY) or timeline.session_id.partition("-")[0])
    if session:
        parties = f"{mask(session.get('From'))} -> {mask(session.get('To'))}  {session.get('Direction', '')}"
        flow = f"flow {session.get('Flow', '?')} ({session.get('FlowKind', '?')})"
        if not session.get("Flow"):
            flow = "no flow: started by a callback without a session (docs/data-model.md)"
        opened = _parse_time(session.get("CreatedAt"))
        lines.append(f"  call {own_call}  {parties}")
        lines.append(f"  {flow}   opened {f'{opened:%Y-%m-%dT%H:%M:%SZ}' if opened else '?'}")
        lines.append(
            f"  call status {_latest(session, 'CallStatus', 'CallSequenceNumber')}"
            f"   conversation status {_latest(session, 'LatestStatus', 'LatestSequenceNumber')}"
        )
        if session.get("ConversationSid"):
            lines.append(f"  ConversationSid {_sid(session['ConversationSid'])}")
    else:
        lines.append("  no session item: the connect request was not recorded")

    lines += [
        "",
        "  Status events, every stream by time (time: Twilio's Timestamp; received: when stored)",
    ]
    if timeline.events:
        rows = [
            [
                _stream_label(item, own_call),
                str(item.get("SequenceNumber", "-")),
                _status_of(item) + (" (reconciled)" if item.get("Reconciled") else ""),
                # Twilio's Timestamps have whole seconds: compare them with the start's second.
                _relative(
                    _parse_time(item.get("Timestamp")), start.replace(microsecond=0) if start else None, 0
                ),
                _relative(_parse_time(item.get("ReceivedAt")), start, 3),
                _fields(item, EVENT_DETAILS),
            ]
            for item in timeline.events
        ]
        headers = ["stream", "#", "status", "time", "received", "details"]
        lines += ["  " + row for row in _table(headers, rows)]
    else:
        lines.append("    none")

    if timeline.legs:
        lines += ["", "  Dialled legs"]
        rows = [
            [
                _sid(item.get("CallSid") or str(item.get("ItemKey", "")).partition("#")[2]),
                _latest(item, "CallStatus", "CallSequenceNumber"),
                mask_text(_fields(item, ("To",))),
            ]
            for item in timeline.legs
        ]
        lines += ["  " + row for row in _table(["leg", "status", "details"], rows)]

    lines += render_turns(timeline.turns, start)

    steps: list[tuple[datetime | None, list[str]]] = []
    for entry in timeline.actions:
        moment = _parse_time(entry.get("ReceivedAt"))
        name = str(entry.get("ItemKey", "action#?")).removeprefix("action#").replace("#", " attempt ")
        steps.append(
            (
                moment,
                [f"action: {name}", _relative(moment, start, 3), mask_text(_fields(entry, ACTION_FIELDS))],
            )
        )
    for entry in timeline.recordings:
        sid = entry.get("RecordingSid") or str(entry.get("ItemKey", "")).partition("#")[2]
        moment = _parse_time(entry.get("UpdatedAt"))
        queued = (
            f" queued {_relative(_parse_time(entry.get('QueuedAt')), start, 3)}"
            if entry.get("QueuedAt")
            else ""
        )
        if entry.get("RecoveredBy"):
            queued += f" (recovered by the {entry['RecoveredBy']})"
        details = _fields(entry, ("Status", "Duration", "Channels", "Source")) + queued
        steps.append((moment, [f"recording {_sid(sid)}", _relative(moment, start, 3), details]))
    lines += ["", "  Action requests and recordings"]
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
            "read from the local mode's state: nothing received"
            if timeline.read_locally
            else "peeked: received and made visible again at once; each peek counts toward maxReceiveCount"
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
                    str(message.body.get("schema", "")).removeprefix("twilio-voice-webhooks."),
                    str(message.receive_count),
                ]
                for message in timeline.messages
            ]
            headers = ["queue", "sent", "recording", "kind", "duration", "schema", "receives"]
            lines += ["  " + row for row in _table(headers, rows)]
        else:
            lines.append("    none")
    return fit("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# The relay conversation (turn# items, see DATA-MODEL.md)

TURN_PREFIX = "turn#"
WIDTH = 100


def is_turn(item: Mapping[str, Any]) -> bool:
    return str(item.get("ItemKey", "")).startswith(TURN_PREFIX)


def _turn_text(item: Mapping[str, Any]) -> str:
    text = str(item.get("Text") or "")
    if item.get("Interrupted") is True:
        heard = str(item.get("Heard") or "")
        text = f"{text} [interrupted; heard: {heard!r}]" if heard != text else f"{text} [interrupted]"
    return mask_text(" ".join(text.split()))


def render_turns(turns: list[dict[str, Any]], start: datetime | None, width: int = WIDTH) -> list[str]:
    """The conversation, one row per turn (attempt#seq, time since the call started, who, kind,
    what was said), the text wrapped so that every line fits in `width` columns. Empty without
    turns (a session that is not a relay agent's)."""
    if not turns:
        return []
    rows = []
    # ItemKey order is conversation order (attempt, then sequence), whatever order they came in.
    for item in sorted(turns, key=lambda turn: str(turn["ItemKey"])):
        _, attempt, sequence = [*str(item["ItemKey"]).split("#"), "", ""][:3]
        moment = _parse_time(item.get("EventTime"))
        rows.append(
            [
                f"{attempt}#{sequence.lstrip('0') or '0'}",
                _relative(moment, start, 1),
                str(item.get("Role", "?")),
                str(item.get("Kind", "?")),
                _turn_text(item),
            ]
        )
    headers = ["turn", "time", "who", "kind"]
    widths = [max(len(header), *(len(row[index]) for row in rows)) for index, header in enumerate(headers)]
    prefix_width = 4 + sum(widths) + 2 * len(widths)
    text_width = max(width - prefix_width, 20)
    lines = ["", "  Conversation (relay agent turns, in order; time: when it happened)"]
    lines.append("    " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + "  text")
    for row in rows:
        head = "    " + "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  "
        wrapped = textwrap.wrap(row[4], text_width, break_on_hyphens=False) or [""]
        lines.append(head + wrapped[0])
        lines.extend(" " * prefix_width + part for part in wrapped[1:])
    return lines
