"""Send one request the way Twilio sends it, signed for the exact URL it calls.

POST: the parameters are the form body and are part of the signature. GET: the parameters are
appended to the URL's query string (after any already there, spaces as `+`) and the signature covers
that full URL with no parameters. Standard library HTTP only (http.client), so what goes on the wire
is exactly what was signed."""

from __future__ import annotations

import http.client
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

from voicedev.emulator.twiml import Target

USER_AGENT = "TwilioProxy/1.1"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Twilio's limits: 5 s to connect (`ct` default), 15 s for the whole answer (`rt`, `tt`).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0


class _Grouped(dict[str, str]):
    """Parameters as RequestValidator reads them: `getlist` yields every value of a repeated name."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = list(pairs)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def signature(token: str, url: str, params: Sequence[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature for `url` and the POST parameters (none for GET)."""
    return str(RequestValidator(token).compute_signature(url, _Grouped(params)))


def request_url(method: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """The URL Twilio requests: for GET its parameters follow the ones already in the URL."""
    if method != "GET" or not params:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(list(params))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    latency_ms: float
    error: str | None = None
    """Set when no HTTP answer came back (connection refused, timeout): `status` is 0."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class SentRequest:
    """What went on the wire, and what came back."""

    method: str
    url: str
    """The URL requested (query string included), which is the URL signed."""
    params: list[tuple[str, str]]
    """Twilio's parameters (in the body for POST, in `url` for GET)."""
    headers: dict[str, str]
    response: Response
    attempt: int = 1
    idempotency_token: str = ""


@dataclass
class TwilioClient:
    """Signs and sends requests. Thread-safe (one connection per request, as Twilio's webhooks)."""

    auth_token: str = field(repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    ssl_context: ssl.SSLContext | None = None

    def send(
        self,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]],
        *,
        idempotency_token: str | None = None,
        attempt: int = 1,
    ) -> SentRequest:
        method = method.upper()
        pairs = list(params)
        full_url = request_url(method, url, pairs)
        body = urlencode(pairs) if method == "POST" else ""
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Cache-Control": "max-age=259200",
            "I-Twilio-Idempotency-Token": idempotency_token or secrets.token_hex(16),
            "X-Twilio-Signature": signature(self.auth_token, full_url, pairs if method == "POST" else ()),
        }
        if method == "POST":
            headers["Content-Type"] = f"{FORM_CONTENT_TYPE}; charset=utf-8"
        response = self._exchange(method, full_url, body, headers)
        return SentRequest(
            method=method,
            url=full_url,
            params=pairs,
            headers=headers,
            response=response,
            attempt=attempt,
            idempotency_token=headers["I-Twilio-Idempotency-Token"],
        )

    def send_with_retries(
        self, target: Target, params: Sequence[tuple[str, str]], *, idempotency_token: str | None = None
    ) -> list[SentRequest]:
        """One request, retried as Twilio would under the target's connection overrides (`rc`, `rp`).
        Every attempt carries the same idempotency token. Returns every attempt, last one last."""
        token = idempotency_token or secrets.token_hex(16)
        attempts = [self.send(target.method, target.url, params, idempotency_token=token)]
        while len(attempts) <= target.retries and _retryable(attempts[-1].response, target.retry_policy):
            attempts.append(
                self.send(
                    target.method, target.url, params, idempotency_token=token, attempt=len(attempts) + 1
                )
            )
        return attempts

    def _exchange(self, method: str, url: str, body: str, headers: dict[str, str]) -> Response:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.netloc, timeout=self.connect_timeout, context=self.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.connect_timeout)
        started = time.perf_counter()
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self.read_timeout)
            connection.request(method, target, body=body.encode("ascii") if body else None, headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode("utf-8", errors="replace")
            return Response(
                status=answer.status,
                headers={name.lower(): value for name, value in answer.getheaders()},
                body=text,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        except (OSError, http.client.HTTPException) as exc:
            return Response(
                status=0,
                headers={},
                body="",
                latency_ms=(time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            connection.close()


def _retryable(response: Response, policy: frozenset[str]) -> bool:
    if "all" in policy:
        return response.error is not None or response.status >= 400
    if response.error is not None:
        timed_out = "timed out" in response.error.lower()
        return ("rt" in policy and timed_out) or ("ct" in policy and not timed_out)
    if response.status >= 500:
        return "5xx" in policy
    if 400 <= response.status < 500:
        return "4xx" in policy
    return False
