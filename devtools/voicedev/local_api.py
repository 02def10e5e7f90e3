"""The local mode's API Gateway: an HTTP server on 127.0.0.1 that routes by template.yaml's HttpApi
events to the real handlers, invoking them with payload v2 events built as API Gateway builds them
and turning their answers back into HTTP.

What API Gateway does and this server does too: header names lowercased, repeated headers and query
parameters joined with commas, cookies in `cookies`, `rawPath` and `rawQueryString` exactly as
received (never rebuilt: the signature covers them), `routeKey` of the matched route, non-text bodies
(forms included) base64-encoded with `isBase64Encoded`, 404 `{"message":"Not Found"}` for an unknown
route, 500 `{"message":"Internal Server Error"}` when the function fails.

What Lambda does and this server does too: each function's handler module is loaded from its
CodeUri by file path (every function's module is named `app`, so each gets a unique module name),
once, and kept warm; it is called with a Lambda context (request id, remaining time from the
function's Timeout). One invocation runs at a time: in AWS each execution environment serves one
request at a time, and here every function shares one process and the shared package's state."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote

from voicedev.local_aws import ACCOUNT_ID
from voicedev.local_settings import HOST, REGION
from voicedev.loopback_server import LoopbackServer
from voicedev.template_resources import PROJECT_ROOT, http_api_routes, load_template

# API Gateway's payload limit for HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/x-yaml")
_SESSION_IN_BODY = re.compile(r"[?&]session=([^&#\"'<>\s]+)")


# ---------------------------------------------------------------------------------------------
# Functions and routes, from the template


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the template, as Lambda would run it."""

    name: str
    code_uri: Path
    handler: str
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB

    @property
    def module_path(self) -> Path:
        """`app.lambda_handler` -> CodeUri/app.py (dotted modules -> sub-directories)."""
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri.joinpath(*module.split(".")).with_suffix(".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    function: FunctionSpec

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def function_spec(template: Mapping[str, Any], name: str) -> FunctionSpec:
    """A template function as Lambda runs it (Globals fill CodeUri, Handler, Timeout, MemorySize)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    props = {**globals_, **template["Resources"][name].get("Properties", {})}
    return FunctionSpec(
        name=name,
        code_uri=PROJECT_ROOT / str(props.get("CodeUri", ".")),
        handler=str(props.get("Handler", "app.lambda_handler")),
        timeout_seconds=int(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
    )


def template_routes(template: Mapping[str, Any] | None = None) -> list[ApiRoute]:
    """Every HttpApi event of template.yaml, with its function's Timeout and MemorySize."""
    template_dict = dict(template) if template is not None else load_template()
    routes = [
        ApiRoute(method=route.method, path=route.path, function=function_spec(template_dict, route.function))
        for route in http_api_routes(template_dict)
    ]
    return sorted(routes, key=lambda route: route.path)


# ---------------------------------------------------------------------------------------------
# Loading handlers


class HandlerNotBuilt(LookupError):
    """The template names a handler file that does not exist (yet)."""


@dataclass
class _Loaded:
    module: ModuleType
    handler: Callable[[dict[str, Any], Any], Any]


class FunctionLoader:
    """Loads each function's module once, by file path, under a unique module name."""

    def __init__(self) -> None:
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def is_loaded(self, spec: FunctionSpec) -> bool:
        return spec.name in self._loaded

    def load(self, spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
        """The handler; HandlerNotBuilt if its file is missing; the import error if it fails to load
        (retried on the next request, so a fixed file is picked up without a restart)."""
        with self._lock:
            if spec.name in self._loaded:
                return self._loaded[spec.name].handler
            path = spec.module_path
            if not path.is_file():
                raise HandlerNotBuilt(f"{_relative(path)} does not exist yet")
            module_name = "voicedev_local_" + re.sub(r"\W", "_", spec.name) + "_" + path.stem
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:  # pragma: no cover - a .py file
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
                handler: Callable[[dict[str, Any], Any], Any] = getattr(module, spec.handler_name)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            self._loaded[spec.name] = _Loaded(module=module, handler=handler)
            return handler


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


# ---------------------------------------------------------------------------------------------
# API Gateway: HTTP request -> payload v2 event, handler answer -> HTTP response


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    target: str
    """The request target as received: raw path, `?`, raw query string."""
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = HOST

    @property
    def raw_path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def raw_query(self) -> str:
        return self.target.partition("?")[2]


def _is_text(content_type: str) -> bool:
    main = content_type.split(";")[0].strip().lower()
    return main.startswith("text/") or main in _TEXT_TYPES or main.endswith(("+json", "+xml"))


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def build_event(request: IncomingRequest, route_key: str, now: datetime | None = None) -> dict[str, Any]:
    """The payload v2 event API Gateway (HTTP API) would send for this request."""
    now = now or datetime.now(UTC)
    headers = _joined((name.lower(), value) for name, value in request.headers if name.lower() != "cookie")
    cookies = [
        part.strip()
        for name, value in request.headers
        if name.lower() == "cookie"
        for part in value.split(";")
        if part.strip()
    ]
    host = headers.get("host", HOST)
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": base64.b64encode(secrets.token_bytes(10)).decode(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if request.raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(request.raw_query, keep_blank_values=True))
    if request.body:
        if _is_text(headers.get("content-type", "")):
            event["body"] = request.body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True)
class OutgoingResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _json_response(status: int, message: str) -> OutgoingResponse:
    body = json.dumps({"message": message}).encode()
    return OutgoingResponse(status, [("Content-Type", "application/json")], body)


def http_response(result: Any) -> OutgoingResponse:
    """How API Gateway reads a payload v2 answer: statusCode/headers/cookies/body/isBase64Encoded,
    or, for anything without a statusCode, a 200 whose JSON body is the answer itself."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return OutgoingResponse(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(str(body))
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    return OutgoingResponse(int(result["statusCode"]), headers, raw)


# ---------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class RequestRecord:
    """One request the local API served: what its request line shows, and what a tool may collect."""

    method: str
    path: str
    query: str
    status: int
    milliseconds: float
    session: str | None
    function: str | None
    note: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def line(self) -> str:
        session = self.session or "-"
        line = (
            f"{self.at.astimezone():%H:%M:%S} {self.method:<6} {self.path:<18} {self.status} "
            f"{self.milliseconds:6.0f} ms  session {session}"
        )
        return f"{line}  ({self.note})" if self.note else line


def session_of(request: IncomingRequest, response: OutgoingResponse) -> str | None:
    """The session a request belongs to: its `session` query parameter, else the one the answer
    hands out (the connect TwiML's callback URLs carry it)."""
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        if name == "session" and value:
            return value
    if response.status < 300 and response.body:
        match = _SESSION_IN_BODY.search(response.text)
        if match:
            return unquote(match.group(1))
    return None


def _note(response: OutgoingResponse, spec: FunctionSpec | None, milliseconds: float) -> str:
    notes = []
    content_type = (response.header("Content-Type") or "").lower()
    if response.status >= 400 and content_type.startswith("text/plain") and len(response.body) <= 200:
        # Refusals carry a short reason made for the caller; secrets and numbers never appear in it.
        notes.append(response.text.strip())
    if spec is not None and milliseconds > spec.timeout_seconds * 1000:
        notes.append(f"slower than the function's {spec.timeout_seconds} s Timeout: Lambda would stop it")
    return "; ".join(notes)


@dataclass
class _Listener(LoopbackServer):
    """The local API's HTTP server; its requests go to `api`."""

    server_name: ClassVar[str] = "local-api"
    port_hint: ClassVar[str] = "set LOCAL_API_PORT to a free port"
    port: int
    api: LocalApi

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return self.bound_handler(_RequestHandler)


class LocalApi:
    """The HTTP server. `start()` binds (port 0 picks a free port) and serves in a thread."""

    def __init__(
        self,
        routes: list[ApiRoute],
        port: int,
        on_request: Callable[[RequestRecord], None] | None = None,
        loader: FunctionLoader | None = None,
    ) -> None:
        self.routes = routes
        self.on_request = on_request
        self.loader = loader or FunctionLoader()
        self._by_path: dict[str, list[ApiRoute]] = {}
        for route in routes:
            self._by_path.setdefault(route.path, []).append(route)
        self._invoke_lock = threading.Lock()
        self._listener = _Listener(port=port, api=self)

    @property
    def port(self) -> int:
        return self._listener.bound_port

    @property
    def url(self) -> str:
        return self._listener.origin

    def bind(self) -> None:
        """Take the port (so its URL is known) without serving yet."""
        self._listener.bind()

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()

    def try_load(self, route: ApiRoute) -> str | None:
        """Load a route's handler now; None when ready, else why not (shown at start)."""
        try:
            self.loader.load(route.function)
        except HandlerNotBuilt as exc:
            return f"handler not built: {exc} (answers 501)"
        except Exception as exc:
            traceback.print_exc()
            return f"handler failed to load: {type(exc).__name__}: {exc} (answers 500)"
        return None

    def match(self, method: str, path: str) -> ApiRoute | None:
        candidates = self._by_path.get(path, [])
        for wanted in (method, "ANY"):
            for route in candidates:
                if route.method == wanted:
                    return route
        return None

    def serve(self, request: IncomingRequest) -> OutgoingResponse:
        started = time.perf_counter()
        route = self.match(request.method, request.raw_path)
        spec = route.function if route else None
        response = self._respond(request, route)
        milliseconds = (time.perf_counter() - started) * 1000
        if self.on_request is not None:
            self.on_request(
                RequestRecord(
                    method=request.method,
                    path=request.raw_path,
                    query=request.raw_query,
                    status=response.status,
                    milliseconds=milliseconds,
                    session=session_of(request, response),
                    function=spec.name if spec else None,
                    note=_note(response, spec, milliseconds),
                )
            )
        return response

    def _respond(self, request: IncomingRequest, route: ApiRoute | None) -> OutgoingResponse:
        if route is None:
            return _json_response(404, "Not Found")
        spec = route.function
        try:
            handler = self.loader.load(spec)
        except HandlerNotBuilt as exc:
            body = f"handler not built: {exc}\n".encode()
            return OutgoingResponse(501, [("Content-Type", "text/plain")], body)
        except Exception:
            print(f"{spec.name}: the handler module failed to load", file=sys.stderr)
            traceback.print_exc()
            return _json_response(500, "Internal Server Error")
        event = build_event(request, route.route_key)
        context = LocalLambdaContext(
            function_name=spec.name, memory_limit_in_mb=spec.memory_mb, timeout_seconds=spec.timeout_seconds
        )
        with self._invoke_lock:
            try:
                result = handler(event, context)
            except Exception:
                print(f"{spec.name}: the handler raised", file=sys.stderr)
                traceback.print_exc()
                return _json_response(500, "Internal Server Error")
        try:
            return http_response(result)
        except (TypeError, ValueError):
            print(f"{spec.name}: the handler's answer is not a valid HTTP API answer", file=sys.stderr)
            traceback.print_exc()
            return _json_response(500, "Internal Server Error")


class _RequestHandler(BaseHTTPRequestHandler):
    owner: _Listener
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway; every answer has a Content-Length

    def version_string(self) -> str:
        return "voicedev-local-api"

    def log_message(self, format: str, *args: Any) -> None:
        """The local API prints its own line per request (LocalApi.on_request)."""

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._send(_json_response(400, "Bad Request"))
            return
        if body is None:
            self.close_connection = True
            self._send(_json_response(413, "Request Entity Too Large"))
            return
        request = IncomingRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        self._send(self.owner.api.serve(request))

    def _send(self, response: OutgoingResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        no_body = response.status in (204, 304) or 100 <= response.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
