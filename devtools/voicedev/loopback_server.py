"""A small HTTP server on 127.0.0.1 in a daemon thread: the lifecycle the local mode's fakes of
Twilio share (`FakeMediaHost`, `FakeTwilioApi`). Port 0 picks a free port; `origin` says which."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self

from voicedev.local_settings import HOST


class LoopbackServer:
    """Subclasses (dataclasses) give `port` and `handler_class()`; `start`/`stop` or `with`."""

    server_name: ClassVar[str] = "loopback-server"
    """The thread's name, and what `origin` names when the server is not running."""
    port: int
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, bound to this instance."""
        raise NotImplementedError

    def start(self) -> Self:
        server = ThreadingHTTPServer((HOST, self.port), self.handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=self.server_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`."""
        if self._server is None:
            raise RuntimeError(f"the {self.server_name.replace('-', ' ')} is not running")
        return f"http://{HOST}:{self._server.server_address[1]}"
