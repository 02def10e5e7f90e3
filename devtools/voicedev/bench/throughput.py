"""Local throughput: the Twilio emulator (`voice-webhooks-simulate --calls 500 --concurrency 16`,
every scenario in turn) against the local mode started in this process on free ports, then an
exact count of what was stored and queued against what was sent.

Floor: the same number of signed requests, sent by the emulator's own client with the same
concurrency, to a loopback HTTP server that reads each request and answers at once: what HTTP,
signing and threads cost on this machine, in this process, before any handler runs.

The local mode runs every handler invocation under one lock (the handlers share one process and
its caches), and the moto server, the local API and the emulator share this interpreter: the
figure is this machine's local capacity, not Lambda's, which runs invocations side by side."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicedev.bench.report import Section, Table
from voicedev.bench.stats import format_value, median, percentile
from voicedev.local_settings import HOST
from voicedev.twilio_signing import DEV_AUTH_TOKEN

if TYPE_CHECKING:  # the emulator imports the handlers' package: only after the local mode set it up
    from voicedev.emulator import CallResult

CALLBACK_KINDS = ("status", "recording")


@dataclass
class Ledger:
    """What the emulator sent, what the table and the queue hold, and the difference."""

    sessions_expected: int = 0
    sessions_found: int = 0
    events_expected: int = 0
    events_found: int = 0
    messages_expected: int = 0
    messages_found: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def expected(results: Sequence[CallResult]) -> tuple[set[str], set[tuple[str, int]], set[str]]:
    """Sessions, status events (session, SequenceNumber) and queued recordings (RecordingSid) the
    product must have stored for these calls."""
    sessions: set[str] = set()
    events: set[tuple[str, int]] = set()
    recordings: set[str] = set()
    for result in results:
        sessions.update(result.session_ids)
        # An outbound call's call-progress events come before its TwiML, so before any connect
        # session: they start the call's own session, `<CallSid>` (docs/data-model.md).
        if result.call_events and result.scenario.direction != "inbound":
            sessions.add(result.call_sid)
        for event in result.status_events:
            if event.session_id:
                events.add((event.session_id, event.sequence_number))
        for recording in result.recordings:
            if recording.final_status == "completed" and "completed" in recording.callback_events:
                recordings.add(recording.recording_sid)
    return sessions, events, recordings


def reconcile(
    results: Sequence[CallResult], items: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]
) -> Ledger:
    """Compare what was sent with the table's items and the queue's message bodies."""
    sessions, events, recordings = expected(results)
    found_sessions = {str(item["SessionId"]) for item in items if item["ItemKey"] == "session"}
    found_events = Counter(
        (str(item["SessionId"]), int(item["SequenceNumber"]))
        for item in items
        if str(item["ItemKey"]).startswith("event#conversation#")
    )
    queued = Counter(str(json.loads(message["Body"])["recordingSid"]) for message in messages)
    ledger = Ledger(
        sessions_expected=len(sessions),
        sessions_found=len(found_sessions & sessions),
        events_expected=len(events),
        events_found=len(set(found_events) & events),
        messages_expected=len(recordings),
        messages_found=len(set(queued) & recordings),
    )
    ledger.lost += [f"session {sid}" for sid in sorted(sessions - found_sessions)]
    ledger.lost += [f"status event {sid} #{seq}" for sid, seq in sorted(events - set(found_events))]
    ledger.lost += [f"queue message for {sid}" for sid in sorted(recordings - set(queued))]
    ledger.duplicated += [f"status event {key[0]} #{key[1]} x{n}" for key, n in found_events.items() if n > 1]
    ledger.duplicated += [f"queue message for {sid} x{n}" for sid, n in queued.items() if n > 1]
    ledger.unexpected += [f"session {sid}" for sid in sorted(found_sessions - sessions)]
    ledger.unexpected += [f"status event {sid} #{seq}" for sid, seq in sorted(set(found_events) - events)]
    ledger.unexpected += [f"queue message for {sid}" for sid in sorted(set(queued) - recordings)]
    return ledger


def scan_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            items.append({name: next(iter(value.values())) for name, value in item.items()})
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def drain_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message in the queue (received with a long visibility timeout, so each once)."""
    messages: list[dict[str, Any]] = []
    empty = 0
    while empty < 2:
        page = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        batch = page.get("Messages", [])
        messages += batch
        empty = 0 if batch else empty + 1
    return messages


# --- the floor ----------------------------------------------------------------------------------


class _InstantServer(ThreadingHTTPServer):
    daemon_threads = True
    # 16 clients connecting at once overflow the default backlog of 5: SYN retransmits (1 s) would
    # be the floor's p99.
    request_queue_size = 128


class _Instant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST


def floor_latencies(
    requests: Sequence[tuple[str, str, list[tuple[str, str]]]], concurrency: int
) -> tuple[list[float], float]:
    """Send the same requests (method, path+query, params), signed, to an instant server."""
    from voicedev.emulator import TwilioClient

    server = _InstantServer((HOST, 0), _Instant)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://{HOST}:{server.server_address[1]}"
    client = TwilioClient(DEV_AUTH_TOKEN)
    try:

        def one(request: tuple[str, str, list[tuple[str, str]]]) -> float:
            method, target, params = request
            return client.send(method, base + target, params).response.latency_ms

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            latencies = list(pool.map(one, requests))
        elapsed = time.perf_counter() - started
    finally:
        server.shutdown()
        server.server_close()
    return latencies, elapsed


# --- the run ------------------------------------------------------------------------------------


@dataclass
class ThroughputResult:
    calls: int
    failed_calls: int
    requests: int
    elapsed_s: float
    concurrency: int
    status_codes: dict[str, int]
    problems: dict[str, int]
    latencies: list[float]
    callback_latencies: list[float]
    ledger: Ledger
    floor_latencies: list[float]
    floor_elapsed_s: float
    handler_errors: int = 0
    """Tracebacks the local API printed (a handler raised)."""

    @property
    def callbacks(self) -> int:
        return len(self.callback_latencies)


def _ignore(record: object) -> None:
    """The local mode's request lines are not wanted here."""


def measure_in_process(calls: int, concurrency: int) -> ThroughputResult:
    """The run itself (in `throughput_child`'s process): the local mode starts before the emulator
    is imported, so the handlers' Powertools objects get the template's environment."""
    from voicedev.local_mode import LocalMode
    from voicedev.local_settings import LocalSettings

    # The template's log level (INFO), not the local mode's quiet default: logging is part of the cost.
    settings = LocalSettings(
        api_port=0, aws_port=0, media_port=0, ws_port=0, ws_management_port=0, log_level="INFO"
    )
    with LocalMode(settings, on_request=_ignore) as local:
        from voicedev.emulator import SCENARIOS, EmulatorConfig, run_calls

        config = EmulatorConfig(base_url=local.api_url, timeout=30)
        results, summary = run_calls(config, SCENARIOS, calls=calls, concurrency=concurrency, run_seed=0)
        assert local.resources is not None
        items = scan_items(local.aws_client("dynamodb"), local.resources.table_name)
        messages = drain_queue(local.aws_client("sqs"), local.resources.queue_urls["RecordingsQueue"])
    ledger = reconcile(results, items, messages)
    sent: list[tuple[str, str, list[tuple[str, str]]]] = []
    latencies: list[float] = []
    callback_latencies: list[float] = []
    for result in results:
        for exchange in result.exchanges:
            request = exchange.sent
            latencies.append(request.response.latency_ms)
            if exchange.kind in CALLBACK_KINDS:
                callback_latencies.append(request.response.latency_ms)
            target = request.url.split("://", 1)[1]
            sent.append((request.method, target[target.index("/") :], request.params))
    floor, floor_elapsed = floor_latencies(sent, concurrency)
    return ThroughputResult(
        calls=summary.calls,
        failed_calls=summary.failed_calls,
        requests=summary.requests,
        elapsed_s=summary.elapsed_s,
        concurrency=summary.concurrency,
        status_codes=dict(summary.status_codes),
        problems=dict(summary.problems),
        latencies=latencies,
        callback_latencies=callback_latencies,
        ledger=ledger,
        floor_latencies=floor,
        floor_elapsed_s=floor_elapsed,
    )


def to_json(result: ThroughputResult) -> str:
    return json.dumps(asdict(result))


def from_json(text: str) -> ThroughputResult:
    data = json.loads(text)
    data["ledger"] = Ledger(**data["ledger"])
    return ThroughputResult(**data)


def run(
    calls: int = 500,
    concurrency: int = 16,
    progress: Callable[[str], None] = print,
    python: str = sys.executable,
) -> ThroughputResult:
    """In a fresh interpreter: the local mode sets the process's environment, imports every handler
    and patches nothing back; the handlers' logs go where Lambda's would (not to this terminal)."""
    progress(f"throughput: {calls} calls, concurrency {concurrency}, then the floor")
    with tempfile.TemporaryDirectory(prefix="voice-bench-load-") as workdir:
        result_path = Path(workdir) / "result.json"
        completed = subprocess.run(  # noqa: S603 - this interpreter, our own module
            [python, "-m", "voicedev.bench.throughput_child", str(calls), str(concurrency), str(result_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=1800,
            check=False,
        )
        if completed.returncode != 0 or not result_path.exists():
            tail = " | ".join(completed.stderr.strip().splitlines()[-8:])
            raise RuntimeError(f"throughput run failed: {tail}")
        result = from_json(result_path.read_text(encoding="utf-8"))
    result.handler_errors = completed.stderr.count("Traceback (most recent call last)")
    return result


def section(result: ThroughputResult) -> Section:
    elapsed = result.elapsed_s
    floor_rate = (
        len(result.floor_latencies) / result.floor_elapsed_s if result.floor_elapsed_s else float("nan")
    )
    rate = result.requests / elapsed if elapsed else float("nan")
    callback_rate = result.callbacks / elapsed if elapsed else float("nan")
    ledger = result.ledger
    lost, duplicated = len(ledger.lost), len(ledger.duplicated) + len(ledger.unexpected)
    rows = (
        (
            "requests per second (all webhooks)",
            f"{rate:.1f}",
            f"{floor_rate:.1f}",
            f"{floor_rate / rate:.1f}x slower",
        ),
        ("callbacks per second (status + recording)", f"{callback_rate:.1f}", "", ""),
        (
            "latency median",
            format_value(median(result.latencies), "ms"),
            format_value(median(result.floor_latencies), "ms"),
            f"{median(result.latencies) / median(result.floor_latencies):.1f}x",
        ),
        (
            "latency p99",
            format_value(percentile(result.latencies, 0.99), "ms"),
            format_value(percentile(result.floor_latencies, 0.99), "ms"),
            f"{percentile(result.latencies, 0.99) / percentile(result.floor_latencies, 0.99):.1f}x",
        ),
        (
            "callback latency median / p99",
            f"{format_value(median(result.callback_latencies), 'ms')} / "
            f"{format_value(percentile(result.callback_latencies, 0.99), 'ms')}",
            "",
            "",
        ),
    )
    figures = Table(("figure", "local mode", "floor (instant server)", "ratio"), rows)
    codes = "  ".join(f"{code}: {count}" for code, count in sorted(result.status_codes.items()))
    counts = Table(
        ("what", "sent", "stored", "lost", "duplicated or unexpected"),
        (
            (
                "sessions (session items)",
                str(ledger.sessions_expected),
                str(ledger.sessions_found),
                str(sum(1 for x in ledger.lost if x.startswith("session"))),
                str(sum(1 for x in ledger.unexpected if x.startswith("session"))),
            ),
            (
                "status events (event items)",
                str(ledger.events_expected),
                str(ledger.events_found),
                str(sum(1 for x in ledger.lost if x.startswith("status"))),
                str(sum(1 for x in ledger.duplicated + ledger.unexpected if x.startswith("status"))),
            ),
            (
                "completed recordings (queue messages)",
                str(ledger.messages_expected),
                str(ledger.messages_found),
                str(sum(1 for x in ledger.lost if x.startswith("queue"))),
                str(sum(1 for x in ledger.duplicated + ledger.unexpected if x.startswith("queue"))),
            ),
        ),
    )
    notes = [
        f"{result.calls} calls ({result.failed_calls} failed), {result.requests} requests in "
        f"{elapsed:.1f} s, concurrency {result.concurrency}; answers: {codes}; handler tracebacks: "
        f"{result.handler_errors}.",
        f"Lost: {lost}; duplicated or unexpected: {duplicated} (goal: 0 and 0).",
        "The local mode serialises handler invocations (one lock), and the moto server, the local API "
        "and the emulator share one interpreter (one GIL) on this machine: this is local capacity, not "
        "Lambda's.",
    ]
    for example in (ledger.lost + ledger.duplicated + ledger.unexpected)[:5]:
        notes.append(f"example: {example}")
    for problem, count in sorted(result.problems.items(), key=lambda item: -item[1])[:5]:
        notes.append(f"emulator problem x{count}: {problem}")
    return Section(
        title="Local throughput",
        intro=(
            "`voice-webhooks-simulate --calls N --concurrency 16` (every scenario in turn) against "
            "`make local`'s `LocalMode`, started in a child process on free ports; then every session item, "
            "status-event item and queue message counted against what the emulator sent."
        ),
        tables=[figures, counts],
        notes=notes,
    )
