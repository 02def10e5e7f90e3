"""The local mode's API Gateway WebSocket API: a WebSocket server on 127.0.0.1 (the maintained
`websockets` library) that routes by template.yaml's `AWS::ApiGatewayV2::Api` (ProtocolType
WEBSOCKET) to the real handlers, with the events API Gateway builds for them, and the
`@connections` management API they answer through.

What API Gateway does and this server does too:
- The upgrade request becomes the `$connect` event (headers as received, with multiValueHeaders;
  `queryStringParameters` in the order received). The connection opens only when the handler
  answers statusCode 200; any other status is the upgrade's answer (403 for a bad signature) and
  no socket opens. Without a `$connect` route every upgrade is accepted.
- Each frame becomes one `$default` invocation (or the route its RouteSelectionExpression
  `$request.body.<field>` picks), each in its own thread: invocations run concurrently and in no
  guaranteed order, as in AWS. A handler that raises makes the server send the client
  `{"message": "Internal server error", ...}`, as API Gateway does; its answer is otherwise unused.
- The close (either side, or a dropped TCP connection: 1006) becomes `$disconnect`.
- Frames over 128 KB close the connection with 1009; a connection idle for 10 minutes or open for
  2 hours is closed with 1001 (both configurable, to test what the agent does then).
- `POST /<stage>/@connections/<id>` sends its body as one frame (text when it is UTF-8),
  `DELETE` closes the connection (204), `GET` describes it; an unknown or closed connection is
  410 GoneException, a body over 128 KB 413 PayloadTooLargeException; boto3's
  `apigatewaymanagementapi` client reads these answers as it reads AWS's.
The management API listens on its own port: `websockets` serves only GET upgrade requests.

What differs: no IAM on the management API (loopback only), no route responses, and the
disconnect reasons are approximations of API Gateway's texts."""

from __future__ import annotations

import base64
import http
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from voicedev.local_api import (
    FunctionLoader,
    FunctionSpec,
    HandlerNotBuilt,
    LocalLambdaContext,
    function_spec,
)
from voicedev.local_settings import HOST
from voicedev.template_resources import load_template

CONNECT, DEFAULT, DISCONNECT = "$connect", "$default", "$disconnect"
DEFAULT_STAGE = "relay"
DEFAULT_ROUTE_SELECTION = "$request.body.action"
# API Gateway's WebSocket quotas (twilio-facts.md): 128 KB messages, 10 minutes idle, 2 hours.
MAX_MESSAGE_BYTES = 128 * 1024
IDLE_SECONDS = 600.0
MAX_CONNECTION_SECONDS = 7200.0
API_ID = "local"
# API Gateway connection ids: 16 characters of URL-safe base64, such as `L0SM9cOFvHcCIhw=`.
_CONNECTION_ID_BYTES = 11
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")
_FRAME_TYPE = re.compile(r'"type"\s*:\s*"([A-Za-z-]{1,20})"')


# ---------------------------------------------------------------------------------------------
# The API, from the template


@dataclass(frozen=True)
class WebSocketApiSpec:
    """The template's WebSocket API: its stage, and the function behind each route key."""

    name: str
    stage: str
    route_selection_expression: str
    routes: dict[str, FunctionSpec]
    notes: tuple[str, ...] = ()

    @property
    def functions(self) -> list[FunctionSpec]:
        return list({spec.name: spec for spec in self.routes.values()}.values())


def _references(value: Any) -> Iterator[str]:
    """Logical ids an expression refers to (Ref, GetAtt, ${Name} or ${Name.Attr} in Sub)."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                # `Function.Alias`: SAM's reference to the function's alias (AutoPublishAlias).
                yield argument.removesuffix(".Alias")
            elif key == "Fn::GetAtt":
                parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
                yield str(parts[0])
            elif key == "Fn::Sub":
                text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
                yield from _SUB_NAME.findall(str(text))
                yield from _references(variables)
            else:
                yield from _references(argument)


def _plain_string(value: Any, template: Mapping[str, Any], default: str) -> str:
    """A literal, or a Ref to a parameter with a default; anything else: `default`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"], {})
        if isinstance(parameter.get("Default"), str):
            return str(parameter["Default"])
    return default


def websocket_api(template: Mapping[str, Any] | None = None) -> WebSocketApiSpec | None:
    """The first WEBSOCKET API of the template with its routes' Lambda functions, or None."""
    template = template if template is not None else load_template()
    resources: Mapping[str, Any] = template.get("Resources", {})

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {
            name: dict(resource.get("Properties") or {})
            for name, resource in resources.items()
            if resource.get("Type") == kind
        }

    apis = {
        name: props
        for name, props in of_type("AWS::ApiGatewayV2::Api").items()
        if str(props.get("ProtocolType", "")).upper() == "WEBSOCKET"
    }
    if not apis:
        return None
    name = sorted(apis)[0]
    notes: list[str] = []
    if len(apis) > 1:
        notes.append(f"several WebSocket APIs in template.yaml; serving {name} only")

    def belongs(props: Mapping[str, Any]) -> bool:
        return name in set(_references(props.get("ApiId")))

    stages = [props for props in of_type("AWS::ApiGatewayV2::Stage").values() if belongs(props)]
    stage = _plain_string(stages[0].get("StageName"), template, DEFAULT_STAGE) if stages else DEFAULT_STAGE
    integrations = of_type("AWS::ApiGatewayV2::Integration")
    functions = {
        function
        for function, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    routes: dict[str, FunctionSpec] = {}
    for route_name, props in sorted(of_type("AWS::ApiGatewayV2::Route").items()):
        if not belongs(props):
            continue
        route_key = str(props.get("RouteKey", ""))
        integration = next((ref for ref in _references(props.get("Target")) if ref in integrations), None)
        if integration is None:
            notes.append(f"route {route_key} ({route_name}) has no Lambda integration: not served")
            continue
        function = next(
            (ref for ref in _references(integrations[integration].get("IntegrationUri")) if ref in functions),
            None,
        )
        if function is None:
            notes.append(f"route {route_key}: {integration} invokes no function of the template")
            continue
        routes[route_key] = function_spec(template, function)
    selection = _plain_string(apis[name].get("RouteSelectionExpression"), template, DEFAULT_ROUTE_SELECTION)
    return WebSocketApiSpec(
        name=name, stage=stage, route_selection_expression=selection, routes=routes, notes=tuple(notes)
    )


def template_has_websocket_api(template: Mapping[str, Any] | None = None) -> bool:
    """True once template.yaml has a WebSocket API routing to functions (the relay agent)."""
    spec = websocket_api(template)
    return spec is not None and bool(spec.routes)


# ---------------------------------------------------------------------------------------------
# Events, as API Gateway builds them


def new_connection_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(_CONNECTION_ID_BYTES)).decode("ascii")


def _request_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Handshake:
    """What the upgrade request carried, kept for the connection's later events."""

    connection_id: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    source_ip: str
    connected_at: datetime

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def domain_name(self) -> str:
        return self.header("Host") or HOST

    @property
    def user_agent(self) -> str:
        return self.header("User-Agent") or ""

    @property
    def session(self) -> str | None:
        return next((value for name, value in parse_qsl(self.query) if name == "session" and value), None)


def _request_context(
    handshake: Handshake, stage: str, route_key: str, event_type: str, now: datetime
) -> dict[str, Any]:
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": base64.b64encode(secrets.token_bytes(6)).decode("ascii"),
        "requestTime": _request_time(now),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": _epoch_ms(handshake.connected_at),
        "requestTimeEpoch": _epoch_ms(now),
        "identity": {"sourceIp": handshake.source_ip, "userAgent": handshake.user_agent},
        "requestId": base64.b64encode(secrets.token_bytes(6)).decode("ascii"),
        "domainName": handshake.domain_name,
        "connectionId": handshake.connection_id,
        "apiId": API_ID,
    }


def _headers(handshake: Handshake) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Headers as API Gateway hands WebSocket handlers: names as sent, plus X-Forwarded-*."""
    multi: dict[str, list[str]] = {}
    for name, value in handshake.headers:
        multi.setdefault(name, []).append(value)
    host = handshake.domain_name
    for name, value in (
        ("X-Forwarded-For", handshake.source_ip),
        ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
        ("X-Forwarded-Proto", "http"),
    ):
        multi.setdefault(name, [value])
    single = {name: values[-1] for name, values in multi.items()}
    return single, multi


def connect_event(handshake: Handshake, stage: str, now: datetime | None = None) -> dict[str, Any]:
    """The $connect event. `queryStringParameters` keeps the order received: the handler rebuilds
    the signed URL from it (API Gateway never hands a WebSocket handler the raw query string)."""
    now = now or datetime.now(UTC)
    headers, multi_headers = _headers(handshake)
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _request_context(handshake, stage, CONNECT, "CONNECT", now),
        "isBase64Encoded": False,
    }
    pairs = parse_qsl(handshake.query, keep_blank_values=True)
    if pairs:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            single[name] = value
            multi.setdefault(name, []).append(value)
        event["queryStringParameters"] = single
        event["multiValueQueryStringParameters"] = multi
    return event


def message_event(
    handshake: Handshake, stage: str, route_key: str, data: str | bytes, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    context = _request_context(handshake, stage, route_key, "MESSAGE", now)
    context["messageId"] = base64.b64encode(secrets.token_bytes(6)).decode("ascii")
    if isinstance(data, bytes):
        return {"requestContext": context, "body": base64.b64encode(data).decode(), "isBase64Encoded": True}
    return {"requestContext": context, "body": data, "isBase64Encoded": False}


def disconnect_event(
    handshake: Handshake, stage: str, code: int, reason: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    headers, multi_headers = _headers(handshake)
    kept = ("Host", "User-Agent", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")
    context = _request_context(handshake, stage, DISCONNECT, "DISCONNECT", now)
    context["disconnectStatusCode"] = code
    context["disconnectReason"] = reason
    return {
        "headers": {name: value for name, value in headers.items() if name in kept},
        "multiValueHeaders": {name: value for name, value in multi_headers.items() if name in kept},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def select_route(expression: str, body: str | bytes, routes: Mapping[str, Any]) -> str | None:
    """The route a frame goes to: `$request.body.<path>`'s value when it names a route, else
    $default (None when there is no $default either: API Gateway drops the frame)."""
    if expression.startswith("$request.body.") and isinstance(body, str):
        try:
            value: Any = json.loads(body)
            for part in expression.removeprefix("$request.body.").split("."):
                value = value.get(part) if isinstance(value, dict) else None
        except ValueError:
            value = None
        if isinstance(value, str) and value in routes and value not in (CONNECT, DISCONNECT):
            return value
    return DEFAULT if DEFAULT in routes else None


# ---------------------------------------------------------------------------------------------
# Records (one line per event in the local mode's output)


@dataclass(frozen=True)
class WsRecord:
    route_key: str
    connection_id: str
    status: int
    milliseconds: float
    session: str | None
    function: str | None
    note: str = ""
    event: dict[str, Any] = field(default_factory=dict, repr=False)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def line(self) -> str:
        line = (
            f"{self.at.astimezone():%H:%M:%S} WS     {self.route_key:<18} {self.status} "
            f"{self.milliseconds:6.0f} ms  session {self.session or '-'}  conn {self.connection_id}"
        )
        return f"{line}  ({self.note})" if self.note else line


def _frame_note(data: str | bytes) -> str:
    if isinstance(data, bytes):
        return f"binary frame, {len(data)} bytes"
    match = _FRAME_TYPE.search(data[:200])
    return match.group(1) if match else f"{len(data)} chars"


# ---------------------------------------------------------------------------------------------
# Live connections


class _RelayConnection(ServerConnection):
    """Carries the connection id from the handshake to the connection's handler."""

    relay_handshake: Handshake | None = None


@dataclass
class LiveConnection:
    handshake: Handshake
    socket: ServerConnection
    last_active_at: datetime
    closing: bool = False
    frames_sent: int = 0
    frames_received: int = 0
    close_note: str = ""
    active_monotonic: float = field(default_factory=time.monotonic)
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def open(self) -> bool:
        from websockets.protocol import State

        return not self.closing and self.socket.protocol.state is State.OPEN


class _Registry:
    def __init__(self) -> None:
        self._live: dict[str, LiveConnection] = {}
        self._lock = threading.Lock()

    def add(self, live: LiveConnection) -> None:
        with self._lock:
            self._live[live.handshake.connection_id] = live

    def remove(self, connection_id: str) -> None:
        with self._lock:
            self._live.pop(connection_id, None)

    def get(self, connection_id: str) -> LiveConnection | None:
        with self._lock:
            return self._live.get(connection_id)

    def all(self) -> list[LiveConnection]:
        with self._lock:
            return list(self._live.values())


# ---------------------------------------------------------------------------------------------
# The servers


class LocalWebSocketApi:
    """The WebSocket server and its management API. `bind()` takes both ports (0: a free one),
    so their URLs are known before the handlers' environment is set; `start()` serves."""

    def __init__(
        self,
        spec: WebSocketApiSpec,
        port: int,
        management_port: int,
        *,
        loader: FunctionLoader | None = None,
        on_event: Callable[[WsRecord], None] | None = None,
        idle_seconds: float = IDLE_SECONDS,
        max_connection_seconds: float = MAX_CONNECTION_SECONDS,
    ) -> None:
        self.spec = spec
        self.requested_port = port
        self.requested_management_port = management_port
        self.loader = loader or FunctionLoader()
        self.on_event = on_event
        self.idle_seconds = idle_seconds
        self.max_connection_seconds = max_connection_seconds
        self.connections = _Registry()
        self._socket: socket.socket | None = None
        self._server: Server | None = None
        self._management: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._invocations: set[threading.Thread] = set()
        self._invocations_lock = threading.Lock()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the local WebSocket API is not bound")
        return int(self._socket.getsockname()[1])

    @property
    def management_port(self) -> int:
        if self._management is None:
            raise RuntimeError("the local @connections API is not bound")
        return int(self._management.server_address[1])

    @property
    def url(self) -> str:
        """What Twilio opens (and signs), without the query: `ws://127.0.0.1:<port>/<stage>`."""
        return f"ws://{HOST}:{self.port}/{self.spec.stage}"

    @property
    def management_endpoint(self) -> str:
        """RELAY_MANAGEMENT_ENDPOINT: boto3's endpoint_url for `apigatewaymanagementapi`."""
        return f"http://{HOST}:{self.management_port}/{self.spec.stage}"

    def environment(self, public_url: str | None = None) -> dict[str, str]:
        """What the handlers need to find this server: where to post, and the URL to hand Twilio."""
        return {
            "RELAY_MANAGEMENT_ENDPOINT": self.management_endpoint,
            "RELAY_PUBLIC_URL": public_url or self.url,
        }

    # -- lifecycle -------------------------------------------------------------------------------

    def bind(self) -> None:
        if self._socket is not None:
            return
        try:
            self._socket = socket.create_server((HOST, self.requested_port))
        except OSError as exc:
            raise OSError(
                f"port {self.requested_port} on {HOST} is in use ({exc.strerror}); "
                "set LOCAL_WS_PORT to a free port"
            ) from exc
        api = self

        class ManagementHandler(_ManagementHandler):
            local_ws = api

        try:
            management = ThreadingHTTPServer((HOST, self.requested_management_port), ManagementHandler)
        except OSError as exc:
            self._socket.close()
            self._socket = None
            raise OSError(
                f"port {self.requested_management_port} on {HOST} is in use ({exc.strerror}); "
                "set LOCAL_WS_MANAGEMENT_PORT to a free port"
            ) from exc
        management.daemon_threads = True
        self._management = management

    def start(self) -> None:
        self.bind()
        assert self._socket is not None
        assert self._management is not None
        self._server = serve(
            self._serve_connection,
            sock=self._socket,
            process_request=self._process_request,
            create_connection=_RelayConnection,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            # API Gateway pings nobody; Twilio keeps its side alive. No keepalive noise here either.
            ping_interval=None,
            server_header="voicedev-local-ws",
        )
        management = self._management
        server = self._server
        self._threads = [
            threading.Thread(target=server.serve_forever, name="local-ws", daemon=True),
            threading.Thread(
                target=management.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="local-ws-management",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self._server is not None:
            # Closes open connections with 1001 (each gets its $disconnect) and waits for them.
            self._server.shutdown()
            self._server = None
        elif self._socket is not None:
            self._socket.close()
        self._socket = None
        if self._management is not None:
            if self._threads:
                self._management.shutdown()
            self._management.server_close()
            self._management = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        with self._invocations_lock:
            running = list(self._invocations)
        for thread in running:
            thread.join(timeout=5)

    def try_load(self, spec: FunctionSpec) -> str | None:
        """None when the handler loads; else why not (shown at start)."""
        try:
            self.loader.load(spec)
        except HandlerNotBuilt as exc:
            return f"handler not built: {exc}"
        except Exception as exc:
            traceback.print_exc()
            return f"handler failed to load: {type(exc).__name__}: {exc}"
        return None

    # -- invoking handlers -----------------------------------------------------------------------

    def _invoke(self, route_key: str, event: dict[str, Any]) -> tuple[int, Any, str | None]:
        """(status, answer, function name). Status 500 when the handler is missing or raises."""
        spec = self.spec.routes[route_key]
        try:
            handler = self.loader.load(spec)
        except Exception as exc:
            print(f"{spec.name}: the handler cannot be loaded: {exc}", file=sys.stderr)
            return 500, None, spec.name
        context = LocalLambdaContext(
            function_name=spec.name, memory_limit_in_mb=spec.memory_mb, timeout_seconds=spec.timeout_seconds
        )
        try:
            result = handler(event, context)
        except Exception:
            print(f"{spec.name}: the handler raised", file=sys.stderr)
            traceback.print_exc()
            return 500, None, spec.name
        status = result.get("statusCode", 200) if isinstance(result, dict) else 200
        try:
            return int(status), result, spec.name
        except (TypeError, ValueError):
            return 500, result, spec.name

    def _record(self, record: WsRecord) -> None:
        if self.on_event is not None:
            self.on_event(record)

    def _record_invocation(
        self,
        route_key: str,
        handshake: Handshake,
        status: int,
        milliseconds: float,
        function: str | None,
        note: str,
        event: dict[str, Any],
    ) -> None:
        """The record of one route's handler run for the connection `handshake` opened."""
        self._record(
            WsRecord(
                route_key,
                handshake.connection_id,
                status,
                milliseconds,
                handshake.session,
                function,
                note,
                event,
            )
        )

    # -- the handshake ---------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        started = time.perf_counter()
        parts = urlsplit(request.path)
        handshake = Handshake(
            connection_id=new_connection_id(),
            path=parts.path,
            query=parts.query,
            headers=list(request.headers.raw_items()),
            source_ip=str(connection.remote_address[0]) if connection.remote_address else HOST,
            connected_at=datetime.now(UTC),
        )
        if parts.path.rstrip("/") != f"/{self.spec.stage}":
            self._record(
                WsRecord(CONNECT, handshake.connection_id, 404, 0.0, handshake.session, None, parts.path)
            )
            return connection.respond(http.HTTPStatus.NOT_FOUND, '{"message":"Not Found"}')
        assert isinstance(connection, _RelayConnection)
        connection.relay_handshake = handshake
        if CONNECT not in self.spec.routes:
            return None
        event = connect_event(handshake, self.spec.stage)
        status, result, function = self._invoke(CONNECT, event)
        milliseconds = (time.perf_counter() - started) * 1000
        note = ""
        response: Response | None = None
        if status != 200:
            body = result.get("body") if isinstance(result, dict) else None
            text = body if isinstance(body, str) else json.dumps({"message": "Forbidden"})
            if status == 500 and result is None:
                text = json.dumps({"message": "Internal server error"})
            try:
                response = connection.respond(http.HTTPStatus(status), text)
            except ValueError:
                response = connection.respond(http.HTTPStatus.INTERNAL_SERVER_ERROR, text)
            note = "refused: " + " ".join(text.split())[:80]
            connection.relay_handshake = None
        self._record_invocation(CONNECT, handshake, status, milliseconds, function, note, event)
        return response

    # -- an open connection ----------------------------------------------------------------------

    def _serve_connection(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _RelayConnection)
        handshake = connection.relay_handshake
        if handshake is None:  # refused in the handshake: never reaches here, but be sure
            return
        live = LiveConnection(handshake=handshake, socket=connection, last_active_at=datetime.now(UTC))
        self.connections.add(live)
        opened = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                idle_left = self.idle_seconds - (now - live.active_monotonic)
                age_left = self.max_connection_seconds - (now - opened)
                try:
                    data = connection.recv(timeout=max(min(idle_left, age_left), 0.0))
                except TimeoutError:
                    idle = age_left > idle_left
                    live.close_note = "idle timeout" if idle else "connection duration limit"
                    live.closing = True
                    connection.close(1001, "Going away")
                    break
                live.last_active_at = datetime.now(UTC)
                live.active_monotonic = time.monotonic()
                live.frames_received += 1
                self._dispatch(live, data)
        except ConnectionClosed:
            pass
        finally:
            live.closing = True
            self.connections.remove(handshake.connection_id)
        self._disconnected(live)

    def _dispatch(self, live: LiveConnection, data: str | bytes) -> None:
        route_key = select_route(self.spec.route_selection_expression, data, self.spec.routes)
        if route_key is None:
            self._record(
                WsRecord(
                    "(no route)",
                    live.handshake.connection_id,
                    0,
                    0.0,
                    live.handshake.session,
                    None,
                    "no $default route: frame dropped",
                )
            )
            return
        thread = threading.Thread(
            target=self._run_message, args=(live, route_key, data), name="local-ws-frame", daemon=True
        )
        with self._invocations_lock:
            self._invocations.add(thread)
        thread.start()

    def _run_message(self, live: LiveConnection, route_key: str, data: str | bytes) -> None:
        try:
            started = time.perf_counter()
            event = message_event(live.handshake, self.spec.stage, route_key, data)
            status, _, function = self._invoke(route_key, event)
            note = _frame_note(data)
            if status == 500:
                # What API Gateway sends the client when the integration fails.
                self.send(
                    live.handshake.connection_id,
                    json.dumps(
                        {
                            "message": "Internal server error",
                            "connectionId": live.handshake.connection_id,
                            "requestId": event["requestContext"]["requestId"],
                        }
                    ).encode(),
                )
                note += "; the client was sent 'Internal server error'"
            milliseconds = (time.perf_counter() - started) * 1000
            self._record_invocation(route_key, live.handshake, status, milliseconds, function, note, event)
        finally:
            with self._invocations_lock:
                self._invocations.discard(threading.current_thread())

    def _disconnected(self, live: LiveConnection) -> None:
        protocol = live.socket.protocol
        code = protocol.close_code or 1006
        if live.close_note:
            reason = f"Going away ({live.close_note})"
        elif protocol.close_rcvd is None:
            reason = "Connection closed abnormally"
        else:
            reason = (
                f"Client-side close frame status code '{code}' and reason '{protocol.close_reason or ''}'"
            )
        if DISCONNECT not in self.spec.routes:
            return
        started = time.perf_counter()
        event = disconnect_event(live.handshake, self.spec.stage, code, reason)
        status, _, function = self._invoke(DISCONNECT, event)
        note = f"code {code}; {live.frames_received} frames in, {live.frames_sent} out"
        if live.close_note:
            note += f"; {live.close_note}"
        self._record_invocation(
            DISCONNECT, live.handshake, status, (time.perf_counter() - started) * 1000, function, note, event
        )

    # -- the management API's actions ------------------------------------------------------------

    def send(self, connection_id: str, data: bytes) -> bool:
        """Send one frame (text when UTF-8); False when the connection is gone."""
        live = self.connections.get(connection_id)
        if live is None or not live.open:
            return False
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        try:
            with live.send_lock:
                live.socket.send(message)
        except ConnectionClosed:
            return False
        live.frames_sent += 1
        return True

    def delete(self, connection_id: str) -> bool:
        """Close the connection (in the background, as AWS answers at once); False when gone."""
        live = self.connections.get(connection_id)
        if live is None or not live.open:
            return False
        live.closing = True
        live.close_note = "closed by DeleteConnection"
        threading.Thread(target=live.socket.close, args=(1000, ""), daemon=True).start()
        return True

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        live = self.connections.get(connection_id)
        if live is None or not live.open:
            return None
        return {
            "connectedAt": live.handshake.connected_at.isoformat().replace("+00:00", "Z"),
            "identity": {"sourceIp": live.handshake.source_ip, "userAgent": live.handshake.user_agent},
            "lastActiveAt": live.last_active_at.isoformat().replace("+00:00", "Z"),
        }


class _ManagementHandler(BaseHTTPRequestHandler):
    """`/<stage>/@connections/<id>`: the answers (and error types) of API Gateway's own."""

    local_ws: LocalWebSocketApi
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "voicedev-local-ws-management"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per post would drown the output (the $disconnect line counts them)."""

    def _connection_id(self) -> str | None:
        prefix = f"/{self.local_ws.spec.stage}/@connections/"
        path = urlsplit(self.path).path
        if not path.startswith(prefix) or len(path) == len(prefix):
            return None
        return unquote(path[len(prefix) :])

    def _answer(self, status: int, body: dict[str, Any] | None = None, error_type: str | None = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if status != 204:
            self.wfile.write(raw)

    def _gone(self) -> None:
        self._answer(410, {"message": "Gone"}, "GoneException")

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_MESSAGE_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def do_POST(self) -> None:
        connection_id = self._connection_id()
        body = self._read_body()
        if connection_id is None:
            self._answer(403, {"message": "Forbidden"}, "ForbiddenException")
        elif body is None:
            self.close_connection = True
            self._answer(
                413,
                {"message": f"Message too long; limit {MAX_MESSAGE_BYTES} bytes"},
                "PayloadTooLargeException",
            )
        elif self.local_ws.send(connection_id, body):
            self._answer(200)
        else:
            self._gone()

    def do_DELETE(self) -> None:
        connection_id = self._connection_id()
        if connection_id is None:
            self._answer(403, {"message": "Forbidden"}, "ForbiddenException")
        elif self.local_ws.delete(connection_id):
            self._answer(204)
        else:
            self._gone()

    def do_GET(self) -> None:
        connection_id = self._connection_id()
        described = self.local_ws.describe(connection_id) if connection_id else None
        if connection_id is None:
            self._answer(403, {"message": "Forbidden"}, "ForbiddenException")
        elif described is None:
            self._gone()
        else:
            self._answer(200, described)


__all__ = [
    "CONNECT",
    "DEFAULT",
    "DISCONNECT",
    "LiveConnection",
    "LocalWebSocketApi",
    "WebSocketApiSpec",
    "WsRecord",
    "connect_event",
    "disconnect_event",
    "message_event",
    "select_route",
    "template_has_websocket_api",
    "websocket_api",
]
