"""The archiver's HTTP client against loopback servers: where it sends credentials, which
redirects it follows, and how every network failure ends (a retryable error, never a hang)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from voice_webhooks.archiver.download import (
    BasicCredentials,
    MediaClient,
    MediaHostRefused,
    MediaNotFound,
    MediaOrigins,
    MediaRejected,
    MediaUnauthorized,
    MediaUnavailable,
)
from voicedev.local_archiver import FakeMediaHost
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, random_sid

CREDENTIALS = (BasicCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN),)


@pytest.fixture
def twilio() -> Iterator[FakeMediaHost]:
    with FakeMediaHost(auth_token=DEV_AUTH_TOKEN) as host:
        yield host


@pytest.fixture
def storage() -> Iterator[FakeMediaHost]:
    """A second host, like the pre-signed storage URL a media host may redirect to."""
    with FakeMediaHost(auth_token="unused", require_auth=False) as host:
        yield host


def client(*origins: str, timeout: float = 5.0) -> MediaClient:
    return MediaClient(MediaOrigins.parse(origins), timeout=timeout)


def fetch(media: MediaClient, url: str, credentials: tuple[BasicCredentials, ...] = CREDENTIALS) -> bytes:
    with media.download(url, credentials) as download:
        return download.body.read()


# --- redirects ----------------------------------------------------------------------------------------


def test_a_redirect_to_an_allowed_origin_is_followed_without_the_credentials(
    twilio: FakeMediaHost, storage: FakeMediaHost
) -> None:
    # Given Twilio's host redirecting the media to another allowed origin
    sid = random_sid("RE")
    target = storage.recording_url(DEV_ACCOUNT_SID, sid) + ".wav"
    twilio.redirects[sid] = target

    # When the media is fetched
    body = fetch(client(twilio.origin, storage.origin), twilio.recording_url(DEV_ACCOUNT_SID, sid) + ".wav")

    # Then it comes from the second host, which never saw the Authorization header
    assert body == storage.media(sid)
    [first] = twilio.requests
    [second] = storage.requests
    assert (first.status, first.authorization is not None) == (302, True)
    assert (second.status, second.authorization) == (200, None)


def test_a_redirect_to_an_origin_not_on_the_list_is_refused_before_any_request_there(
    twilio: FakeMediaHost, storage: FakeMediaHost
) -> None:
    sid = random_sid("RE")
    twilio.redirects[sid] = storage.recording_url(DEV_ACCOUNT_SID, sid) + ".wav"

    with pytest.raises(MediaHostRefused, match=storage.origin):
        fetch(client(twilio.origin), twilio.recording_url(DEV_ACCOUNT_SID, sid) + ".wav")

    assert storage.requests == []


def test_endless_redirects_are_rejected(twilio: FakeMediaHost) -> None:
    sid = random_sid("RE")
    url = twilio.recording_url(DEV_ACCOUNT_SID, sid) + ".wav"
    twilio.redirects[sid] = url

    with pytest.raises(MediaRejected, match="redirects"):
        fetch(client(twilio.origin), url)

    assert len(twilio.requests) == 4  # the request and 3 redirects


def test_a_url_outside_the_list_gets_no_request_at_all(twilio: FakeMediaHost, storage: FakeMediaHost) -> None:
    media = client(storage.origin)

    with pytest.raises(MediaHostRefused):
        fetch(media, twilio.recording_url(DEV_ACCOUNT_SID, random_sid("RE")) + ".wav")
    with pytest.raises(MediaHostRefused):
        media.delete(twilio.recording_url(DEV_ACCOUNT_SID, random_sid("RE")) + ".json", CREDENTIALS)

    assert twilio.requests == []


# --- answers ------------------------------------------------------------------------------------------


def test_statuses_map_to_what_the_archiver_does_next(twilio: FakeMediaHost) -> None:
    media = client(twilio.origin)
    url = twilio.recording_url(DEV_ACCOUNT_SID, sid := random_sid("RE")) + ".wav"

    twilio.missing.add(sid)
    with pytest.raises(MediaNotFound):
        fetch(media, url)
    twilio.missing.clear()
    for status, error in ((500, MediaUnavailable), (429, MediaUnavailable), (400, MediaRejected)):
        twilio.failures[("GET", sid)] = [status]
        with pytest.raises(error) as raised:
            fetch(media, url)
        assert raised.value.status == status
    with pytest.raises(MediaUnauthorized):
        fetch(media, url, (BasicCredentials(DEV_ACCOUNT_SID, "wrong"), BasicCredentials("ACx", "wrong")))
    assert fetch(media, url) == twilio.media(sid)


# --- a misbehaving network --------------------------------------------------------------------------


@contextmanager
def raw_server(respond: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            respond(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def media_path() -> str:
    return f"/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{random_sid('RE')}.wav"


def test_a_host_that_never_answers_times_out_as_retryable() -> None:
    def silent(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(2)

    with raw_server(silent) as origin:
        started = time.monotonic()
        with pytest.raises(MediaUnavailable, match="timed out"):
            fetch(client(origin, timeout=0.3), origin + media_path())
        assert time.monotonic() - started < 1.5


def test_a_body_cut_short_is_retryable() -> None:
    def truncated(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/x-wav")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"RIFF" + bytes(10))
        handler.wfile.flush()
        handler.close_connection = True

    with raw_server(truncated) as origin, pytest.raises(MediaUnavailable):
        fetch(client(origin), origin + media_path())


def test_an_answer_that_is_not_audio_is_rejected() -> None:
    def html(handler: BaseHTTPRequestHandler) -> None:
        body = b"<html>sign in</html>"
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with raw_server(html) as origin, pytest.raises(MediaRejected, match="text/html"):
        fetch(client(origin), origin + media_path())


def test_nothing_listening_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"

    with pytest.raises(MediaUnavailable):
        fetch(client(origin), origin + media_path())
