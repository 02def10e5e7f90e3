"""A loopback TCP proxy that makes the AWS endpoint cost what a network does: each new connection
waits a handshake delay before its first byte goes through, and each request's answer waits one
round trip. The cold-start benchmark's network-aware variant points AWS_ENDPOINT_URL at it, so a
first request that opens three connections to three services pays three handshakes, as it does on
Lambda, where a loopback moto server would show none of it.

The defaults approximate one AWS region seen from a Lambda function in it: 20 ms for a new
connection (TCP, then TLS 1.2/1.3 with certificate checks, and the first request's signing and
endpoint resolution are not in it) and 2 ms per request round trip. They are an order of magnitude,
not a measurement: change them with the benchmark's `--handshake-ms` / `--rtt-ms`."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

HANDSHAKE_MS = 20.0
RTT_MS = 2.0


@dataclass
class ProxyStats:
    connections: int = 0
    requests: int = 0
    """Client bursts answered (a request and its answer), counted when the answer starts."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.connections, self.requests


class DelayProxy:
    """Forwards 127.0.0.1:<port> to `upstream` (host, port) with the delays above."""

    def __init__(
        self, upstream: tuple[str, int], handshake_ms: float = HANDSHAKE_MS, rtt_ms: float = RTT_MS
    ) -> None:
        self.upstream = upstream
        self.handshake_s = handshake_ms / 1000
        self.rtt_s = rtt_ms / 1000
        self.stats = ProxyStats()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="delay-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._server.close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self.stats.lock:
                self.stats.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One client connection, request by request (HTTP/1.1). The moto server closes its side
        after every answer (`Connection: close`); an AWS endpoint keeps it open. So the answer goes
        to the client as keep-alive and the next request gets a new upstream connection, paying no
        handshake: the client sees one connection, as it would with AWS."""
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = client.makefile("rb")
        upstream: socket.socket | None = None
        upstream_reader: Any = None
        # The client's connect() returned at once; its first request waits for the "handshake".
        time.sleep(self.handshake_s)
        try:
            while True:
                request = _read_message(reader, request=True, on_continue=client)
                if request is None:
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    upstream_reader = upstream.makefile("rb")
                upstream.sendall(request.raw)
                answer = _read_message(upstream_reader, request=False, head=request.method == "HEAD")
                if answer is None:
                    return
                time.sleep(self.rtt_s)  # the request's round trip
                with self.stats.lock:
                    self.stats.requests += 1
                client.sendall(answer.keep_alive() if answer.framed else answer.raw)
                if answer.closes or not answer.framed:
                    upstream_reader.close()
                    upstream.close()
                    upstream = None
                    if not answer.framed:
                        return  # the body ended with the connection: the client's ends too
        except OSError:
            return
        finally:
            reader.close()
            if upstream is not None:
                upstream.close()
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()


@dataclass
class _Message:
    head: bytes
    body: bytes
    method: str
    closes: bool
    framed: bool
    """The body's end is known from the message itself (length, chunks, or none), not from a close."""

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    def keep_alive(self) -> bytes:
        lines = [line for line in self.head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        return b"\r\n".join([*lines[:-2], b"Connection: keep-alive", b"", b""]) + self.body


def _read_message(
    reader: Any, *, request: bool, head: bool = False, on_continue: socket.socket | None = None
) -> _Message | None:
    """One HTTP/1.1 message from `reader`, or None at the end of the connection."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
        if not line:
            return None
        if not request and not lines and line.startswith(b"HTTP/1.1 100"):
            reader.readline()  # an interim 100 Continue and its blank line: skip
            continue
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    headers = {}
    for line in lines[1:-1]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    method = lines[0].split(b" ", 1)[0].decode("latin-1") if request else ""
    if request and headers.get("expect", "").lower() == "100-continue":
        # Answer the client's Expect ourselves, and send upstream the request without it.
        lines = [line for line in lines if not line.lower().startswith(b"expect:")]
        if on_continue is not None:
            on_continue.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    status = 0 if request else int(lines[0].split(b" ", 2)[1])
    body = b""
    framed = True
    if head or status in (204, 304) or 100 <= status < 200:
        pass
    elif "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = reader.readline()
            chunks.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = reader.readline()
                    chunks.append(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                break
            chunks.append(reader.read(size + 2))
        body = b"".join(chunks)
    elif not request:
        body = reader.read()  # delimited by the close
        framed = False
    closes = headers.get("connection", "").lower() == "close"
    return _Message(b"".join(lines), body, method, closes, framed)
