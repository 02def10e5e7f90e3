"""Fetching (and deleting) a recording's media on Twilio's media host, with HTTP Basic auth, from
allowed origins only.

The URL reached the archiver through a queue: whoever can write to that queue must not be able to
make the archiver send Twilio credentials, or any request, anywhere else. So an origin (scheme,
host, port) is checked before a request is made, redirects are followed only to allowed origins,
and credentials are only ever sent to the origin of the URL itself. Plain http is accepted only
for loopback hosts (the local mode's fake media host, tests): credentials never cross a network
in the clear."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import urljoin, urlsplit

from voice_webhooks.errors import ConfigurationError

DEFAULT_MEDIA_ORIGINS: Final = ("https://api.twilio.com",)
# Twilio answers media requests in well under a second; a socket silent this long is a failure
# worth retrying later rather than a reason to hold the batch.
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
MAX_REDIRECTS: Final = 3
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


# --- the allowlist ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaOrigin:
    """`https://api.twilio.com`, `https://*.twilio.com` (any subdomain), `http://127.0.0.1:8080`."""

    scheme: str
    host: str
    port: int

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme != self.scheme or port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    def __str__(self) -> str:
        default = _DEFAULT_PORTS[self.scheme]
        return f"{self.scheme}://{self.host}" + ("" if self.port == default else f":{self.port}")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_origin(text: str) -> MediaOrigin:
    """One origin; ConfigurationError naming the value when it is not an acceptable one."""
    value = text.strip()
    parts = urlsplit(value)
    host = parts.hostname or ""
    problem = None
    if parts.scheme not in _DEFAULT_PORTS or not host:
        problem = "must be scheme://host[:port] with scheme https (or http for a loopback host)"
    elif parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        problem = "must be an origin only: no path, query, fragment or credentials"
    elif parts.scheme == "http" and not _is_loopback(host):
        problem = "plain http is only accepted for a loopback host (credentials would travel in clear)"
    elif "*" in host.removeprefix("*."):
        problem = "a wildcard may only be the first label (*.example.com)"
    if problem is not None:
        raise ConfigurationError(f"RECORDING_MEDIA_ORIGINS: {value!r} {problem}")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ConfigurationError(f"RECORDING_MEDIA_ORIGINS: {value!r} has an invalid port") from exc
    return MediaOrigin(parts.scheme, host.lower(), port)


@dataclass(frozen=True)
class MediaOrigins:
    origins: tuple[MediaOrigin, ...]

    @classmethod
    def parse(cls, values: Iterable[str]) -> MediaOrigins:
        origins = tuple(parse_origin(value) for value in values if value.strip())
        if not origins:
            raise ConfigurationError("RECORDING_MEDIA_ORIGINS: at least one origin is required")
        return cls(origins)

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, -1)
        except ValueError:
            return False
        if not parts.hostname or parts.username or parts.password:
            return False
        host = parts.hostname.lower()
        return any(origin.matches(parts.scheme, host, port) for origin in self.origins)

    def __str__(self) -> str:
        return ",".join(str(origin) for origin in self.origins)


def same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, (a.hostname or "").lower(), a.port or _DEFAULT_PORTS.get(a.scheme)) == (
        b.scheme,
        (b.hostname or "").lower(),
        b.port or _DEFAULT_PORTS.get(b.scheme),
    )


# --- credentials and errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class BasicCredentials:
    """An account SID and auth token, or an API key SID and secret."""

    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


class MediaError(Exception):
    """The media could not be fetched (or deleted). `retryable`: a later attempt may succeed."""

    retryable: ClassVar[bool] = False
    status: int | None = None

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class MediaHostRefused(MediaError):
    """The URL (or a redirect) points outside the allowlist: no request was made there."""


class MediaNotFound(MediaError):
    """404: deleted, never completed, or the wrong account."""


class MediaUnauthorized(MediaError):
    """401/403 with every credential we have."""


class MediaRejected(MediaError):
    """Any other refusal (4xx, not audio, too many redirects): retrying will not help."""


class MediaUnavailable(MediaError):
    """5xx, 429 (throttled), a timeout or a broken connection: try again later."""

    retryable = True


# --- HTTP ---------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as responses: each hop is checked against the allowlist here, and
    urllib would otherwise copy our Authorization header to whatever host it is sent to."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # No proxy from the environment either: nothing outside this module picks where we connect.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


class _Body(Protocol):
    def read(self, amt: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class _Answer:
    """One HTTP exchange: a 2xx response or an HTTPError (both carry the body)."""

    status: int
    headers: Message
    url: str
    body: _Body

    def close(self) -> None:
        self.body.close()


class CountingReader:
    """The response body as a file object for upload_fileobj, counting what went through."""

    def __init__(self, body: _Body) -> None:
        self._body = body
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._body.read(size) if size >= 0 else self._body.read()
        except TimeoutError as exc:
            raise MediaUnavailable("timed out reading the media") from exc
        except (OSError, http.client.HTTPException) as exc:
            # A reset connection, or IncompleteRead: the host closed before the announced end.
            raise MediaUnavailable(f"media read failed: {type(exc).__name__}") from exc
        self.bytes_read += len(chunk)
        return chunk


@dataclass
class MediaDownload:
    url: str
    content_type: str
    content_length: int | None
    body: CountingReader


def _status_error(status: int, what: str) -> MediaError:
    if status == 404:
        return MediaNotFound(f"{what}: 404 not found", status)
    if status in (401, 403):
        return MediaUnauthorized(f"{what}: {status} with every credential", status)
    if status == 429 or status >= 500:
        return MediaUnavailable(f"{what}: {status}", status)
    return MediaRejected(f"{what}: {status}", status)


class MediaClient:
    """GET (streamed) and DELETE against allowed origins, with urllib and explicit timeouts."""

    def __init__(
        self,
        origins: MediaOrigins,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self.origins = origins
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._opener = _opener()

    def check(self, url: str) -> None:
        """Refuse (MediaHostRefused) a URL outside the allowlist; makes no request."""
        if not self.origins.allows(url):
            raise MediaHostRefused(f"{_origin_of(url)} is not an allowed media origin ({self.origins})")

    @contextmanager
    def download(self, url: str, credentials: Sequence[BasicCredentials]) -> Iterator[MediaDownload]:
        """The media at `url`, open for streaming. Tries each credential in turn on 401/403 (the
        secondary auth token during a rotation)."""
        answer = self._send("GET", url, credentials)
        try:
            content_type = (answer.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if not content_type.startswith("audio/"):
                raise MediaRejected(f"GET media: answered {content_type or 'no content type'}, not audio")
            length = answer.headers.get("Content-Length")
            yield MediaDownload(
                url=answer.url,
                content_type=content_type,
                content_length=int(length) if length and length.isdigit() else None,
                body=CountingReader(answer.body),
            )
        finally:
            answer.close()

    def delete(self, url: str, credentials: Sequence[BasicCredentials]) -> bool:
        """DELETE the resource. True when deleted now, False when it was already gone (404)."""
        try:
            answer = self._send("DELETE", url, credentials)
        except MediaNotFound:
            return False
        answer.close()
        return True

    def _send(self, method: str, url: str, credentials: Sequence[BasicCredentials]) -> _Answer:
        if not credentials:
            raise MediaUnauthorized("no credentials to send")
        last: MediaError | None = None
        for credential in credentials:
            try:
                return self._follow(method, url, credential)
            except MediaUnauthorized as exc:
                last = exc
        assert last is not None
        raise last

    def _follow(self, method: str, url: str, credential: BasicCredentials) -> _Answer:
        current = url
        for _ in range(self.max_redirects + 1):
            self.check(current)
            # Credentials go to the origin the message named, never to where it redirects.
            authorize = same_origin(current, url)
            answer = self._request(method, current, credential if authorize else None)
            if answer.status in (301, 302, 303, 307, 308):
                location = answer.headers.get("Location")
                answer.close()
                if not location:
                    raise MediaRejected(f"{method} media: {answer.status} without Location", answer.status)
                current = urljoin(current, location)
                if method != "GET":
                    raise MediaRejected(f"{method} media: redirected to {_origin_of(current)}", answer.status)
                continue
            if answer.status >= 300:
                answer.close()
                raise _status_error(answer.status, f"{method} media")
            return answer
        raise MediaRejected(f"{method} media: more than {self.max_redirects} redirects")

    def _request(self, method: str, url: str, credential: BasicCredentials | None) -> _Answer:
        request = urllib.request.Request(url, method=method)  # noqa: S310 - scheme checked by the allowlist
        if credential is not None:
            request.add_unredirected_header("Authorization", credential.header())
        request.add_header("User-Agent", "twilio-voice-webhooks-archiver")
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            # Every non-2xx answer, redirects included (they are not followed by urllib here).
            return _Answer(exc.code, exc.headers, exc.url, exc)
        except TimeoutError as exc:
            raise MediaUnavailable(f"{method} media: timed out") from exc
        except urllib.error.URLError as exc:
            raise MediaUnavailable(f"{method} media: {type(exc.reason).__name__}") from exc
        except OSError as exc:
            raise MediaUnavailable(f"{method} media: {type(exc).__name__}") from exc
        return _Answer(response.status, response.headers, response.url, response)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}" if parts.netloc else repr(url)
