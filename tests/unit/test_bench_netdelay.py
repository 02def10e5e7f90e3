"""The network-aware cold start's loopback proxy: a handshake delay per client connection, a round
trip per request, counted, the messages passed through, and the client's connection kept open when
the server (like the moto server) closes its own after every answer."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from voicedev.bench.netdelay import DelayProxy


class Upper(BaseHTTPRequestHandler):
    """Answers the body in capitals, then closes the connection (HTTP/1.0, as moto's answers)."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).upper()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Upper)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "127.0.0.1", int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def post(conn: http.client.HTTPConnection, text: bytes, expect: bool = False) -> bytes:
    headers = {"Expect": "100-continue"} if expect else {}
    conn.request("POST", "/", body=text, headers=headers)
    response = conn.getresponse()
    assert response.getheader("Connection") == "keep-alive"
    return response.read()


def test_each_connection_pays_a_handshake_and_each_request_a_round_trip(server: tuple[str, int]) -> None:
    # Given the proxy in front of a server, 50 ms per new connection and 20 ms per round trip
    with DelayProxy(server, handshake_ms=50, rtt_ms=20) as proxy:
        # When one client connection sends two requests, one after the other
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
        started = time.perf_counter()
        first = post(conn, b"get item")
        after_first = time.perf_counter() - started
        second = post(conn, b"put item", expect=True)
        elapsed = time.perf_counter() - started
        conn.close()
        # and a second connection sends one
        other = http.client.HTTPConnection("127.0.0.1", proxy.port)
        third = post(other, b"send message")
        other.close()
        counts = proxy.stats.snapshot()
    # Then the answers come through, the server's close hidden from the client
    assert (first, second, third) == (b"GET ITEM", b"PUT ITEM", b"SEND MESSAGE")
    # the first waited for the handshake and a round trip, the second for a round trip only
    assert after_first >= 0.070
    assert elapsed - after_first >= 0.020
    assert elapsed - after_first < 0.050 + 0.020  # no second handshake on a kept connection
    # and two connections, three requests were counted
    assert counts == (2, 3)
