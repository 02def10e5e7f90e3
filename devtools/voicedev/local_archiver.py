"""The recording archiver in the local mode, and the Twilio media host it downloads from.

- `FakeMediaHost`: Twilio's media host on 127.0.0.1. Any `/2010-04-01/Accounts/AC.../Recordings/RE...`
  path serves a small, valid WAV (`.wav`) or silent MP3 (`.mp3`) to a request with the right Basic
  auth (the AccountSid in the path and the auth token, or a configured API key), and DELETE removes
  it. Tests script failures on it (404, 5xx, redirects) and count what it was asked.
- `LocalArchiver`: what Lambda's SQS event source mapping does for RecordingArchiverFunction:
  poll RecordingsQueue, invoke the handler with SQS-shaped events of up to BatchSize messages,
  delete the messages it did not report as failed. A failed message is made visible again after
  a few seconds (SQS would wait for the queue's visibility timeout), and SQS's redrive policy moves
  it to the dead-letter queue after maxReceiveCount receives, as in AWS.
- `sqs_event(...)`: the Lambda event for messages received from a queue (also used by tests)."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import re
import struct
import sys
import threading
import time
import traceback
import wave
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from voicedev.local_settings import HOST
from voicedev.loopback_server import LoopbackServer, basic_credentials
from voicedev.template_resources import resources_of_type

API_PREFIX = "/2010-04-01"
_MEDIA_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Recordings/(?P<sid>RE[0-9a-fA-F]{32})"
    r"(?:\.(?P<ext>wav|mp3|json))?$"
)
WAV_SAMPLE_RATE = 8000  # Twilio's voice recordings: 8 kHz, 16-bit PCM


# --- media ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def wav_bytes(seed: str, seconds: float = 1.0, channels: int = 1) -> bytes:
    """A valid PCM WAV: a quiet tone whose pitch depends on `seed`, so two recordings differ."""
    # A whole number of hertz repeats exactly every second: one second is computed, then repeated.
    frequency = 300 + int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) % 500
    second = bytearray()
    for index in range(WAV_SAMPLE_RATE):
        value = int(3000 * math.sin(2 * math.pi * frequency * index / WAV_SAMPLE_RATE))
        second += struct.pack("<h", value) * channels
    frames = int(WAV_SAMPLE_RATE * seconds)
    whole, rest = divmod(frames, WAV_SAMPLE_RATE)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(WAV_SAMPLE_RATE)
        writer.writeframes(bytes(second) * whole + bytes(second[: rest * 2 * channels]))
    return buffer.getvalue()


def mp3_bytes(seconds: float = 1.0) -> bytes:
    """Silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono): a header and all-zero side
    information and data, which decoders play as silence."""
    header = bytes([0xFF, 0xFB, 0x90, 0xC4])
    frame = header + bytes(417 - len(header))  # 144 * 128000 / 44100 = 417 bytes per frame
    return frame * max(1, round(seconds * 44100 / 1152))


@dataclass(frozen=True)
class MediaRequest:
    method: str
    path: str
    authorization: str | None
    """The Authorization header as received (tests check where credentials went)."""
    status: int


@dataclass
class FakeMediaHost(LoopbackServer):
    """Twilio's media host, on loopback. `failures[(method, sid)]` lists statuses to answer (one per
    request) before serving; `redirects[sid]` answers GET with 302 to that URL; `missing` answers
    404; `require_auth=False` serves without credentials (a pre-signed redirect target)."""

    auth_token: str
    api_keys: dict[str, str] = field(default_factory=dict)
    port: int = 0
    seconds: float = 1.0
    failures: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    sizes: dict[str, float] = field(default_factory=dict)
    """Per-recording length in seconds (default `seconds`)."""
    deleted: set[str] = field(default_factory=set)
    require_auth: bool = True
    requests: list[MediaRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    server_name: ClassVar[str] = "fake-media-host"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return self.bound_handler(_MediaHandler)

    @property
    def api_base(self) -> str:
        """Where RecordingUrls point: `http://127.0.0.1:<port>/2010-04-01`."""
        return self.origin + API_PREFIX

    def recording_url(self, account_sid: str, recording_sid: str) -> str:
        return f"{self.api_base}/Accounts/{account_sid}/Recordings/{recording_sid}"

    # -- what it serves ---------------------------------------------------------------------------

    def media(self, recording_sid: str, extension: str = "wav") -> bytes:
        seconds = self.sizes.get(recording_sid, self.seconds)
        return mp3_bytes(seconds) if extension == "mp3" else wav_bytes(recording_sid, seconds)

    def count(self, method: str | None = None, recording_sid: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for request in self.requests
                if (method is None or request.method == method)
                and (recording_sid is None or recording_sid in request.path)
            )

    def _authorized(self, account: str, authorization: str | None) -> bool:
        credentials = basic_credentials(authorization)
        if credentials is None:
            return False
        username, password = credentials
        if username == account and password == self.auth_token:
            return True
        return username in self.api_keys and self.api_keys[username] == password

    def answer(self, method: str, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        match = _MEDIA_PATH.match(path)
        status, headers, body = self._answer(method, match, authorization)
        with self._lock:
            self.requests.append(MediaRequest(method, path, authorization, status))
        return status, headers, body

    def _answer(
        self, method: str, match: re.Match[str] | None, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if match is None:
            return 404, {"Content-Type": "application/json"}, b'{"status": 404, "message": "not found"}'
        sid, extension = match["sid"], match["ext"] or "wav"
        with self._lock:
            scripted = self.failures.get((method, sid))
            failure = scripted.pop(0) if scripted else None
        if failure is not None:
            return failure, {"Content-Type": "application/json"}, b'{"message": "scripted failure"}'
        if sid in self.redirects and method == "GET":
            return 302, {"Location": self.redirects[sid]}, b""
        if self.require_auth and not self._authorized(match["account"], authorization):
            return (
                401,
                {"Content-Type": "application/json", "WWW-Authenticate": 'Basic realm="Twilio API"'},
                b"",
            )
        if sid in self.missing or sid in self.deleted:
            return 404, {"Content-Type": "application/json"}, b'{"status": 404, "message": "not found"}'
        if method == "DELETE":
            with self._lock:
                self.deleted.add(sid)
            return 204, {}, b""
        if extension == "json":
            return 405, {}, b""
        content_type = "audio/mpeg" if extension == "mp3" else "audio/x-wav"
        return 200, {"Content-Type": content_type}, self.media(sid, extension)


class _MediaHandler(BaseHTTPRequestHandler):
    owner: FakeMediaHost
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the local mode prints one line per archived batch instead."""

    def _handle(self, method: str) -> None:
        status, headers, body = self.owner.answer(
            method, self.path.split("?", 1)[0], self.headers.get("Authorization")
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


# --- the event source mapping -----------------------------------------------------------------------


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from messages SQS returned (ReceiveMessage with all attributes)."""
    records = []
    for message in messages:
        attributes = {
            name: value
            for name, value in (message.get("Attributes") or {}).items()
            if name
            in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "MessageGroupId",
                "MessageDeduplicationId",
                "SequenceNumber",
            )
        }
        message_attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": (
                    base64.b64encode(value["BinaryValue"]).decode() if value.get("BinaryValue") else None
                ),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


@dataclass(frozen=True)
class BatchOutcome:
    received: int
    failed: list[str]
    """MessageIds the handler reported as failed (all of them when it raised)."""
    error: str | None = None

    def line(self) -> str:
        done = self.received - len(self.failed)
        text = f"archiver: {self.received} message{'s' if self.received != 1 else ''}, {done} done"
        if self.failed:
            text += f", {len(self.failed)} failed (retried)"
        if self.error:
            text += f"; the handler raised {self.error}"
        return text


Handler = Callable[[dict[str, Any], Any], Any]


class LocalArchiver:
    """Polls one queue and feeds the handler, in a thread, until stopped."""

    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        handler: Callable[[], Handler],
        context: Callable[[], Any],
        batch_size: int = 10,
        retry_after_seconds: int = 5,
        invoke_lock: AbstractContextManager[Any] | None = None,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        poll_seconds: int = 1,
    ) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.handler = handler
        self.context = context
        self.batch_size = max(1, min(batch_size, 10))
        self.retry_after_seconds = retry_after_seconds
        self.invoke_lock = invoke_lock or nullcontext()
        self.on_batch = on_batch
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LocalArchiver:
        self._thread = threading.Thread(target=self._run, name="local-archiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                print("archiver: polling failed", file=sys.stderr)
                traceback.print_exc()
                self._stop.wait(1)

    def poll_once(self) -> BatchOutcome | None:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.poll_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = list(response.get("Messages") or [])
        if not messages:
            return None
        outcome = self.process(messages)
        if self.on_batch is not None:
            self.on_batch(outcome)
        return outcome

    def process(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        event = sqs_event(messages, self.queue_arn, self.region)
        ids = [message["MessageId"] for message in messages]
        error = None
        try:
            with self.invoke_lock:
                result = self.handler()(event, self.context())
            failed = [str(item["itemIdentifier"]) for item in (result or {}).get("batchItemFailures", [])]
        except Exception as exc:
            traceback.print_exc()
            failed, error = ids, type(exc).__name__
        by_id = {message["MessageId"]: message for message in messages}
        done = [by_id[message_id] for message_id in ids if message_id not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        retry = [by_id[message_id] for message_id in failed if message_id in by_id]
        if retry:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_after_seconds,
                    }
                    for i, m in enumerate(retry)
                ],
            )
        return BatchOutcome(len(messages), failed, error)


# --- the archiver in the local mode -----------------------------------------------------------------


def archiver_mapping(template: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(function name, its properties, its event source mapping) for the template's consumer of
    RecordingsQueue (an `AWS::Lambda::EventSourceMapping` on the queue)."""
    queue_arn = {"Fn::GetAtt": ["RecordingsQueue", "Arn"]}
    functions = resources_of_type("AWS::Serverless::Function", dict(template))
    for mapping in resources_of_type("AWS::Lambda::EventSourceMapping", dict(template)).values():
        if mapping.get("EventSourceArn") == queue_arn:
            # `!Ref Function.Alias`: the function's `live` alias (AutoPublishAlias), named by its function.
            name = str(mapping["FunctionName"]["Ref"]).removesuffix(".Alias")
            return name, functions[name], mapping
    raise LookupError("template.yaml has no event source mapping on RecordingsQueue")


class LocalArchiving:
    """The archiver side of the local mode: the fake media host, the handler's extra environment,
    and the queue poller. `LocalMode` starts it when LOCAL_ARCHIVER is on."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        auth_token: str,
        media_port: int,
        loader: Any,
        invoke_lock: AbstractContextManager[Any] | None,
        print_line: Callable[[str], None],
    ) -> None:
        from voicedev.local_api import function_spec

        name, _, mapping = archiver_mapping(template)
        self.spec = function_spec(template, name)
        self.batch_size = int(mapping.get("BatchSize", 10))
        self.media = FakeMediaHost(auth_token=auth_token, port=media_port)
        self.loader = loader
        self.print_line = print_line
        self.poller = LocalArchiver(
            sqs_client=sqs_client,
            queue_url=queue_url,
            queue_arn=queue_arn,
            region=region,
            handler=lambda: self.loader.load(self.spec),
            context=self._context,
            batch_size=self.batch_size,
            invoke_lock=invoke_lock,
            on_batch=lambda outcome: self.print_line(f"{time.strftime('%H:%M:%S')} {outcome.line()}"),
        )

    def _context(self) -> Any:
        from voicedev.local_api import LocalLambdaContext

        return LocalLambdaContext(self.spec.name, self.spec.memory_mb, self.spec.timeout_seconds)

    def start_media_host(self) -> None:
        try:
            self.media.start()
        except OSError as exc:
            raise OSError(
                f"port {self.media.port} on {HOST} is in use ({exc.strerror}); "
                "set LOCAL_MEDIA_PORT to a free port"
            ) from exc

    def environment(self, current: Mapping[str, str]) -> dict[str, str]:
        """What the archiver handler needs on top of the template's environment: the fake media
        host's origin added to the allowed ones (http is accepted for loopback only)."""
        origins = [o for o in current.get("RECORDING_MEDIA_ORIGINS", "").split(",") if o.strip()]
        return {"RECORDING_MEDIA_ORIGINS": ",".join(dict.fromkeys([*origins, self.media.origin]))}

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()
        self.media.stop()

    @property
    def media_api_base(self) -> str:
        return self.media.api_base

    def banner_lines(self) -> list[str]:
        return [
            f"  archiver       {self.spec.name}: polls RecordingsQueue, batches of {self.batch_size}",
            f"  media host     {self.media.api_base}  (fake Twilio media: a WAV for any recording;"
            " emulator: --media-url)",
        ]
