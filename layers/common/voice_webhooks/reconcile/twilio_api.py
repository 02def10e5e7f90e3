"""Twilio's REST API, read-only: a call and its recordings, with HTTP Basic auth, from allowed
origins only, rate-safe.

The archiver's allowlist rules apply (archiver/download.py): an origin is checked before any
request, redirects are never followed (the REST API does not redirect; a redirect could carry our
credentials elsewhere), no proxy comes from the environment, plain http only for loopback hosts.

Rate safety: a per-run request budget, and one gate shared by every worker thread: a 429 closes it
for `Retry-After` seconds (every request of the run waits), and when that wait would outlast the
run, the run stops making requests (RunStopped) and leaves the rest for the next run."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voice_webhooks.archiver.download import BasicCredentials, MediaOrigins, same_origin
from voice_webhooks.errors import ConfigurationError

DEFAULT_API_BASE: Final = "https://api.twilio.com"
API_VERSION: Final = "2010-04-01"
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
# Retry-After is seconds for Twilio; a missing or odd value waits this long, a huge one is capped
# (the run stops instead of waiting, see RateGate.wait).
DEFAULT_RETRY_AFTER_SECONDS: Final = 30.0
MAX_RETRY_AFTER_SECONDS: Final = 900.0
MAX_THROTTLED_RETRIES: Final = 3
# A call has a handful of recordings; more pages than this is not a call of ours.
MAX_RECORDING_PAGES: Final = 5
RECORDINGS_PAGE_SIZE: Final = 50

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")

FINAL_CALL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})


# --- what the API answers (only the fields we use; extra fields are ignored) ------------------------


class ApiCall(BaseModel):
    """The Call resource. `from`/`to` exist but are deliberately not modelled: phone numbers never
    leave this module (the session item already has them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sid: str
    account_sid: str
    status: str
    parent_call_sid: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration: str | None = None
    direction: str | None = None
    date_updated: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES


class ApiRecording(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sid: str
    account_sid: str
    call_sid: str | None = None
    status: str
    duration: str | None = None
    channels: int | None = None
    source: str | None = None
    start_time: str | None = None
    error_code: int | str | None = None
    uri: str | None = None
    media_url: str | None = None


class _RecordingPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    recordings: list[ApiRecording] = Field(default_factory=list)
    next_page_uri: str | None = None


# --- errors ----------------------------------------------------------------------------------------


class ApiError(Exception):
    """The API did not give an answer we can use now (5xx, timeout, refused, unparsable)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ApiNotFound(ApiError):
    """404: no such call on this account (wrong account, or Twilio purged it)."""


class RunStopped(Exception):
    """No more requests in this run: the request budget is spent, the deadline is near, or a 429
    asks for a wait longer than the run has left. Nothing about the session was learnt."""


# --- rate safety -------------------------------------------------------------------------------------


@dataclass
class RateGate:
    """Shared by a run's worker threads: the request budget and the 429 pause."""

    max_requests: int
    deadline: float
    """time.monotonic() after which no request may start."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0
    throttled: int = 0
    _closed_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acquire(self) -> None:
        """Wait for the gate, then take one request from the budget; RunStopped when not possible."""
        while True:
            with self._lock:
                now = self.clock()
                wait = self._closed_until - now
                if wait <= 0:
                    if self.requests >= self.max_requests:
                        raise RunStopped("request budget of the run spent")
                    if now >= self.deadline:
                        raise RunStopped("run deadline reached")
                    self.requests += 1
                    return
                if self._closed_until >= self.deadline:
                    raise RunStopped("throttled by Twilio beyond the end of the run")
            self.sleep(wait)

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self.throttled += 1
            self._closed_until = max(self._closed_until, self.clock() + seconds)


def retry_after_seconds(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER_SECONDS
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_SECONDS
    if seconds != seconds or seconds < 0:  # NaN or negative
        seconds = DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 1.0), MAX_RETRY_AFTER_SECONDS)


# --- the client ------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class TwilioRestClient:
    """GET JSON from `base_url` (which the allowlist must allow), with Basic auth: each credential
    in turn on 401/403 (the secondary auth token during a rotation)."""

    def __init__(
        self,
        base_url: str,
        origins: MediaOrigins,
        gate: RateGate,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not origins.allows(base_url):
            raise ConfigurationError(f"TWILIO_API_BASE_URL: {base_url} is not among the allowed API origins")
        self.base_url = base_url.rstrip("/")
        self.origins = origins
        self.gate = gate
        self.timeout = timeout
        # No proxy from the environment: nothing outside this module picks where we connect.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def fetch_call(self, account_sid: str, call_sid: str, credentials: Sequence[BasicCredentials]) -> ApiCall:
        _check_sids(account_sid, call_sid)
        document = self._get_json(f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}.json", credentials)
        try:
            call = ApiCall.model_validate(document)
        except ValidationError as exc:
            raise ApiError(f"call resource unreadable: {exc.error_count()} problem(s)") from exc
        if call.sid != call_sid or call.account_sid != account_sid:
            raise ApiError("call resource names another call")
        return call

    def list_recordings(
        self, account_sid: str, call_sid: str, credentials: Sequence[BasicCredentials]
    ) -> list[ApiRecording]:
        _check_sids(account_sid, call_sid)
        path: str | None = (
            f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}/Recordings.json"
            f"?PageSize={RECORDINGS_PAGE_SIZE}"
        )
        recordings: list[ApiRecording] = []
        for _ in range(MAX_RECORDING_PAGES):
            if path is None:
                return recordings
            try:
                page = _RecordingPage.model_validate(self._get_json(path, credentials))
            except ValidationError as exc:
                raise ApiError(f"recordings list unreadable: {exc.error_count()} problem(s)") from exc
            recordings.extend(r for r in page.recordings if r.account_sid == account_sid)
            path = page.next_page_uri
        if path is not None:
            raise ApiError(f"more than {MAX_RECORDING_PAGES} pages of recordings")
        return recordings

    def recording_url(self, recording: ApiRecording) -> str:
        """The media URL a recording status callback would carry (the archiver appends .wav/.mp3)."""
        if recording.media_url:
            return recording.media_url.removesuffix(".json")
        if recording.uri:
            return urljoin(self.base_url + "/", recording.uri.lstrip("/")).removesuffix(".json")
        return f"{DEFAULT_API_BASE}/{API_VERSION}/Accounts/{recording.account_sid}/Recordings/{recording.sid}"

    def _get_json(self, path: str, credentials: Sequence[BasicCredentials]) -> Any:
        if not credentials:
            raise ApiError("no credentials to send")
        url = urljoin(self.base_url + "/", path.lstrip("/"))
        # next_page_uri comes from the answer: it must not take us (or our credentials) elsewhere.
        if not same_origin(url, self.base_url) or not self.origins.allows(url):
            raise ApiError("the API pointed to another origin")
        last: ApiError | None = None
        for credential in credentials:
            status, _headers, body = self._get(url, credential)
            if status in (401, 403):
                last = ApiError(f"GET {_route(path)}: {status} with this credential", status)
                continue
            if status == 404:
                raise ApiNotFound(f"GET {_route(path)}: 404", status)
            if status != 200:
                raise ApiError(f"GET {_route(path)}: {status}", status)
            try:
                return json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(f"GET {_route(path)}: answer is not JSON") from exc
        assert last is not None
        raise last

    def _get(self, url: str, credential: BasicCredentials) -> tuple[int, Any, bytes]:
        """One GET, waiting out 429s through the gate (a few times at most)."""
        for _ in range(MAX_THROTTLED_RETRIES + 1):
            self.gate.acquire()
            status, headers, body = self._request(url, credential)
            if status != 429:
                return status, headers, body
            self.gate.close_for(retry_after_seconds(headers.get("Retry-After") if headers else None))
        raise ApiError(
            f"GET {_route(urlsplit(url).path)}: still 429 after {MAX_THROTTLED_RETRIES} waits", 429
        )

    def _request(self, url: str, credential: BasicCredentials) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(url, method="GET")  # noqa: S310 - scheme checked by the allowlist
        request.add_unredirected_header("Authorization", credential.header())
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "twilio-voice-webhooks-reconciler")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return int(response.status), response.headers, response.read(1_000_000)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(10_000)
            except OSError:
                body = b""
            finally:
                exc.close()
            return int(exc.code), exc.headers, body
        except TimeoutError as exc:
            raise ApiError(f"GET {_route(urlsplit(url).path)}: timed out") from exc
        except urllib.error.URLError as exc:
            raise ApiError(f"GET {_route(urlsplit(url).path)}: {type(exc.reason).__name__}") from exc
        except OSError as exc:
            raise ApiError(f"GET {_route(urlsplit(url).path)}: {type(exc).__name__}") from exc


def _check_sids(account_sid: str, call_sid: str) -> None:
    # Both come from our own table, but they become a URL path: never trust them to be clean.
    if not _ACCOUNT_SID.match(account_sid) or not _CALL_SID.match(call_sid):
        raise ApiError("not a valid AccountSid/CallSid pair")


def _route(path: str) -> str:
    """The path with the SIDs elided, for logs and errors (`/Calls/{sid}.json`)."""
    return re.sub(r"(AC|CA|RE)[0-9a-fA-F]{32}", r"\1…", path.split("?", 1)[0])
