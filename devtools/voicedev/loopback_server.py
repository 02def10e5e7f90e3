"""A small HTTP server on 127.0.0.1 in a daemon thread: the lifecycle the local mode's servers
share (its API, `FakeMediaHost`, `FakeTwilioApi`). Port 0 picks a free port; `origin` says which."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self, cast

from voicedev.local_settings import HOST


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(username, password) of an HTTP Basic `Authorization` header, as the fakes of Twilio's API
    and media host check it; None when there is none or it does not decode."""
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        username, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
    except ValueError:
        return None
    return username, password


class LoopbackServer:
    """Subclasses (dataclasses) give `port` and `handler_class()` (most: `bound_handler(...)`);
    `start`/`stop` or `with`."""

    server_name: ClassVar[str] = "loopback-server"
    """The thread's name, and what `origin` names when the server is not running."""
    port_hint: ClassVar[str] = "choose a free port"
    """What to do when the port is taken (named in the error)."""
    port: int
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, bound to this instance."""
        raise NotImplementedError

    def bound_handler(self, handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
        """A subclass of `handler` whose requests reach this server as `self.owner`. One class per
        server, not a class attribute of `handler`: tests run several servers of a kind at once."""
        return cast("type[BaseHTTPRequestHandler]", type(handler.__name__, (handler,), {"owner": self}))

    def bind(self) -> Self:
        """Take the port (so `origin` is known) without serving yet; `start` serves."""
        if self._server is None:
            try:
                server = ThreadingHTTPServer((HOST, self.port), self.handler_class())
            except OSError as exc:
                raise OSError(
                    f"port {self.port} on {HOST} is in use ({exc.strerror}); {self.port_hint}"
                ) from exc
            server.daemon_threads = True
            self._server = server
        return self

    def start(self) -> Self:
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=self.server_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                # Only a serving server can be shut down: shutdown() waits for serve_forever to end.
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
        return f"http://{HOST}:{self.bound_port}"

    @property
    def bound_port(self) -> int:
        """The port taken (the one chosen when `port` is 0)."""
        if self._server is None:
            raise RuntimeError(f"the {self.server_name.replace('-', ' ')} is not running")
        return int(self._server.server_address[1])
