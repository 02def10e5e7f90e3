"""Twilio's REST API on loopback, for the reconciler (tests and the local mode): the Call resource
and a call's Recordings list, as `api.twilio.com` answers them, for the calls it is told about.

- `FakeTwilioApi.add_call(...)` / `add_recording(...)`: what Twilio knows (the emulator records what
  it played through `record_call`). Phone numbers are never served: the reconciler ignores them.
- Basic auth is checked like Twilio does: the AccountSid in the path and the auth token (401 else).
- `failures`: statuses to answer, one per request, before serving (tests script 500s, 429s with
  `Retry-After`); `requests` records each request's path and status."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from voicedev.loopback_server import LoopbackServer, basic_credentials
from voicedev.template_resources import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterable

    from voicedev.emulator.engine import CallResult

_CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls/(?P<call>CA[0-9a-fA-F]{32})")
_CALL_PATH = re.compile(_CALL.pattern + r"\.json$")
_RECORDINGS_PATH = re.compile(_CALL.pattern + r"/Recordings\.json$")


def rfc2822(moment: datetime | None = None) -> str:
    return format_datetime((moment or datetime.now(UTC)).astimezone(UTC), usegmt=False).replace(
        "-0000", "+0000"
    )


# --- what the emulator played (JSON lines: one call each) ------------------------------------------


def played_calls_default() -> Path:
    return PROJECT_ROOT / ".voicedev" / "played-calls.jsonl"


def played_call(result: CallResult, media_api_base: str | None) -> dict[str, Any]:
    """What Twilio's REST API knows of an emulated call, whichever callbacks reached the stack."""
    from voicedev.emulator import params

    recordings = [
        {
            "sid": made.recording_sid,
            "status": made.final_status,
            "duration": made.duration,
            "channels": int(made.channels) if made.channels.isdigit() else 1,
            "source": made.source,
            "url": params.recording_url(result_account(result), made.recording_sid, media_api_base),
        }
        for made in result.recordings
    ]
    return {
        "account_sid": result_account(result),
        "call_sid": result.call_sid,
        "status": result.final_call_status,
        "duration": result.duration,
        "recordings": recordings,
        "dropped": len(result.dropped),
    }


def result_account(result: CallResult) -> str:
    for exchange in result.exchanges:
        for name, value in exchange.sent.params:
            if name == "AccountSid":
                return value
    from voicedev.twilio_signing import DEV_ACCOUNT_SID

    return DEV_ACCOUNT_SID


def record_played_calls(
    path: str | Path, results: Iterable[CallResult], media_api_base: str | None = None
) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as file:
        for result in results:
            file.write(json.dumps(played_call(result, media_api_base)) + "\n")


def read_played_calls(path: str | Path) -> list[dict[str, Any]]:
    target = Path(path)
    if not target.is_file():
        return []
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class ApiRequest:
    path: str
    status: int


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


@dataclass
class FakeTwilioApi(LoopbackServer):
    auth_token: str
    port: int = 0
    media_base: str | None = None
    """Where the recordings' media is (`media_url`), e.g. the local media host's API base."""
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    recordings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    server_name: ClassVar[str] = "fake-twilio-api"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return self.bound_handler(_ApiHandler)

    # -- what Twilio knows ------------------------------------------------------------------------

    def add_call(
        self,
        account_sid: str,
        call_sid: str,
        status: str,
        *,
        duration: int | None = None,
        parent_call_sid: str | None = None,
        ended: datetime | None = None,
    ) -> None:
        final = status in ("completed", "busy", "no-answer", "canceled", "failed")
        with self._lock:
            self.calls[call_sid] = {
                "sid": call_sid,
                "account_sid": account_sid,
                "parent_call_sid": parent_call_sid,
                "status": status,
                "direction": "inbound",
                "api_version": "2010-04-01",
                "start_time": rfc2822(),
                "end_time": rfc2822(ended) if final else None,
                "duration": str(duration) if duration is not None and final else None,
                "date_updated": rfc2822(),
                "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json",
            }

    def add_recording(
        self,
        account_sid: str,
        call_sid: str,
        recording_sid: str,
        status: str = "completed",
        *,
        duration: int = 5,
        channels: int = 2,
        source: str = "StartConferenceRecordingAPI",
        url: str | None = None,
    ) -> None:
        uri = f"/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}.json"
        media = url or (
            f"{self.media_base}/Accounts/{account_sid}/Recordings/{recording_sid}"
            if self.media_base
            else None
        )
        entry = {
            "sid": recording_sid,
            "account_sid": account_sid,
            "call_sid": call_sid,
            "status": status,
            "duration": str(duration) if status == "completed" else "-1",
            "channels": channels,
            "source": source,
            "start_time": rfc2822(),
            "error_code": None,
            "uri": uri,
            "media_url": media,
        }
        with self._lock:
            listed = self.recordings.setdefault(call_sid, [])
            listed[:] = [r for r in listed if r["sid"] != recording_sid] + [entry]

    def load_played(self, calls: Iterable[dict[str, Any]]) -> int:
        """Serve the calls the emulator played (read_played_calls); returns how many."""
        loaded = 0
        for call in calls:
            self.add_call(
                call["account_sid"], call["call_sid"], call["status"], duration=call.get("duration")
            )
            for recording in call.get("recordings", []):
                self.add_recording(
                    call["account_sid"],
                    call["call_sid"],
                    recording["sid"],
                    recording["status"],
                    duration=int(recording.get("duration") or 0),
                    channels=int(recording.get("channels") or 1),
                    source=str(recording.get("source") or "RecordVerb"),
                    url=recording.get("url"),
                )
            loaded += 1
        return loaded

    def count(self, kind: str | None = None) -> int:
        """Requests made; `kind` = `call` or `recordings`."""
        with self._lock:
            paths = [r.path for r in self.requests]
        if kind == "call":
            return sum(1 for path in paths if _CALL_PATH.match(path))
        if kind == "recordings":
            return sum(1 for path in paths if _RECORDINGS_PATH.match(path))
        return len(paths)

    # -- answers ----------------------------------------------------------------------------------

    def _authorized(self, account: str, authorization: str | None) -> bool:
        return basic_credentials(authorization) == (account, self.auth_token)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = self._answer(path, authorization)
        with self._lock:
            self.requests.append(ApiRequest(path.split("?", 1)[0], status))
        return status, headers, body

    def _answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            headers = dict(json_type)
            if failure.retry_after is not None:
                headers["Retry-After"] = failure.retry_after
            return failure.status, headers, json.dumps({"status": failure.status, "code": 20429}).encode()
        bare = path.split("?", 1)[0]
        match = _CALL_PATH.match(bare) or _RECORDINGS_PATH.match(bare)
        if match is None:
            return 404, json_type, b'{"status": 404, "message": "The requested resource was not found"}'
        if not self._authorized(match["account"], authorization):
            return 401, {**json_type, "WWW-Authenticate": 'Basic realm="Twilio API"'}, b'{"status": 401}'
        with self._lock:
            call = self.calls.get(match["call"])
            recordings = list(self.recordings.get(match["call"], []))
        if call is None or call["account_sid"] != match["account"]:
            return 404, json_type, b'{"status": 404, "message": "The requested resource was not found"}'
        if _CALL_PATH.match(bare):
            return 200, json_type, json.dumps(call).encode()
        page = {
            "recordings": recordings,
            "page": 0,
            "page_size": 50,
            "next_page_uri": None,
            "uri": bare,
        }
        return 200, json_type, json.dumps(page).encode()


class _ApiHandler(BaseHTTPRequestHandler):
    owner: FakeTwilioApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        status, headers, body = self.owner.answer(self.path, self.headers.get("Authorization"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
