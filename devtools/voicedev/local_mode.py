"""`make local`: the real handlers behind an HTTP server on 127.0.0.1, backed by an embedded AWS
endpoint (moto server) holding template.yaml's table, queues and buckets and the auth token secret.
No Docker, no AWS account. See docs/local-mode.md.

Settings (environment): LOCAL_API_PORT (3000), LOCAL_AWS_PORT (5005), TWILIO_AUTH_TOKEN (the
documented development token), TWILIO_ACCOUNT_SID (the documented development account),
FLOW_CONFIG (config/flows.example.json), PUBLIC_BASE_URL (the local API URL; a tunnel URL lets a
real Twilio number call this laptop), LOCAL_LOG_LEVEL (the handlers' log level: WARNING, so that
one line per request stays readable; INFO, or --verbose, prints their JSON logs). When template.yaml
has the WebSocket API (relay agent): LOCAL_WS_PORT (3001), LOCAL_WS_MANAGEMENT_PORT (3003),
RELAY_PUBLIC_URL (the local WebSocket URL), LOCAL_WS_IDLE_SECONDS (600), LOCAL_WS_MAX_SECONDS (7200).

`LocalMode` is the same thing as a library, for tools that drive it (the call emulator):

    with LocalMode(load_local_settings()) as local:
        print(local.api_url, local.aws_endpoint, local.resources.table_name)
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from voicedev.local_api import ApiRoute, LocalApi, RequestRecord, template_routes
from voicedev.local_archiver import LocalArchiving
from voicedev.local_aws import AUTH_TOKEN_SECRET_NAME, EmbeddedAws, LocalAwsError, LocalResources
from voicedev.local_env import HandlerEnvironment, aws_isolation, handler_environment
from voicedev.local_settings import HOST, LocalSettings, LocalSettingsError, load_local_settings
from voicedev.local_ws import LocalWebSocketApi, WebSocketApiSpec, WsRecord, websocket_api
from voicedev.template_resources import PROJECT_ROOT, load_template


class LocalModeError(RuntimeError):
    """The local mode cannot start; the message says what to fix."""


@dataclass(frozen=True)
class WebSocketRouteStatus:
    route_key: str
    function: str
    problem: str | None
    """None when the handler is loaded; else why the route cannot answer (500)."""


@dataclass(frozen=True)
class RouteStatus:
    route: ApiRoute
    url: str
    problem: str | None
    """None when the handler is loaded; else why the route cannot answer (501 or 500)."""


def _print_line(line: str) -> None:
    print(line, flush=True)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


class LocalMode:
    """The embedded AWS endpoint and the local API, started and stopped together.

    `start()` sets the handlers' environment in this process (os.environ) before any handler is
    imported, and `stop()` puts the previous values back."""

    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        on_request: Callable[[RequestRecord], None] | None = None,
        template: dict[str, Any] | None = None,
        on_ws_event: Callable[[WsRecord], None] | None = None,
    ) -> None:
        self.settings = settings or load_local_settings()
        self.on_request = on_request or (lambda record: _print_line(record.line()))
        self.on_ws_event = on_ws_event or (lambda record: _print_line(record.line()))
        self.template = template or load_template()
        self.aws = EmbeddedAws(self.settings.aws_port)
        self.api = LocalApi(template_routes(self.template), self.settings.api_port, self._record)
        self.websocket_spec: WebSocketApiSpec | None = websocket_api(self.template)
        self.websocket: LocalWebSocketApi | None = None
        """The WebSocket API (relay agent); None until template.yaml has one with routes."""
        if self.websocket_spec is not None and self.websocket_spec.routes:
            self.websocket = LocalWebSocketApi(
                self.websocket_spec,
                self.settings.ws_port,
                self.settings.ws_management_port,
                loader=self.api.loader,
                on_event=self._record_ws,
                idle_seconds=self.settings.ws_idle_seconds,
                max_connection_seconds=self.settings.ws_max_seconds,
            )
        self.websocket_statuses: list[WebSocketRouteStatus] = []
        self.resources: LocalResources | None = None
        self.environment: HandlerEnvironment | None = None
        self.route_statuses: list[RouteStatus] = []
        self.notes: list[str] = []
        self.flow_summary = ""
        self._saved_environ: dict[str, str | None] = {}
        self.archiving: LocalArchiving | None = None
        """The recording archiver and fake media host, with LOCAL_ARCHIVER on."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalMode:
        try:
            # moto itself calls boto3 in this process: isolate it from the developer's AWS setup too.
            self._apply(aws_isolation(self.aws.region))
            self.aws.start()
            self.resources = self.aws.provision(self.settings.auth_token)
            # Bound (not yet serving) first: the default PUBLIC_BASE_URL needs the actual port.
            self.api.bind()
            if self.websocket is not None:
                self.websocket.bind()
            self._apply_environment()
            if self.settings.archiver:
                self._prepare_archiving()
            self.flow_summary = self._check_flow_config()
            self._load_handlers()
            self._note_routes_missing_from_template()
            self.api.start()
            if self.websocket is not None:
                self.websocket.start()
            if self.archiving is not None:
                self.archiving.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.archiving is not None:
            self.archiving.stop()
        if self.websocket is not None:
            self.websocket.stop()
        self.api.stop()
        self.aws.stop()
        self._restore_environment()

    def __enter__(self) -> LocalMode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tools need -----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def public_base_url(self) -> str:
        return self.settings.public_base_url or self.api_url

    @property
    def aws_endpoint(self) -> str:
        return self.aws.endpoint_url

    @property
    def websocket_url(self) -> str | None:
        """The local WebSocket API (`ws://127.0.0.1:<port>/relay`), or None without one."""
        return self.websocket.url if self.websocket is not None else None

    @property
    def relay_public_url(self) -> str | None:
        """The WebSocket URL the connect TwiML hands Twilio (RELAY_PUBLIC_URL), or None."""
        if self.websocket is None:
            return None
        return self.settings.relay_public_url or self.websocket.url

    def webhook_urls(self) -> dict[str, str]:
        """Route path -> the URL Twilio calls (and signs)."""
        return {route.path: self.public_base_url + route.path for route in self.api.routes}

    def aws_client(self, service: str) -> Any:
        """A boto3 client for the embedded endpoint (inspect the table, read the queue)."""
        return self.aws.client(service)

    @property
    def media_api_base(self) -> str | None:
        """Base of the fake media host's RecordingUrls (the emulator's `media_api_base`), or None
        without the archiver."""
        return self.archiving.media_api_base if self.archiving is not None else None

    # -- start-up steps --------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        self.on_request(record)

    def _record_ws(self, record: WsRecord) -> None:
        self.on_ws_event(record)

    def _apply_environment(self) -> None:
        assert self.resources is not None
        extra = (
            self.websocket.environment(self.settings.relay_public_url) if self.websocket is not None else None
        )
        environment = handler_environment(
            self.template, self.settings, self.resources, self.public_base_url, extra_overrides=extra
        )
        environment.values["POWERTOOLS_LOG_LEVEL"] = self.settings.handler_log_level(os.environ)
        self.environment = environment
        self._apply(environment)
        self.notes.extend(environment.notes)
        _reset_handler_caches()
        _align_metrics_namespace()

    def _prepare_archiving(self) -> None:
        """The fake media host (its origin joins the archiver's allowed ones) and the queue poller,
        which shares the API's lock: one invocation at a time, as the handlers share state."""
        assert self.resources is not None
        archiving = LocalArchiving(
            self.template,
            sqs_client=self.aws.client("sqs"),
            queue_url=self.resources.queue_urls["RecordingsQueue"],
            queue_arn=self.resources.queue_arn("RecordingsQueue"),
            region=self.resources.region,
            auth_token=self.settings.auth_token,
            media_port=self.settings.media_port,
            loader=self.api.loader,
            invoke_lock=self.api._invoke_lock,
            print_line=_print_line,
        )
        archiving.start_media_host()
        self.archiving = archiving
        self._apply(HandlerEnvironment(values=archiving.environment(os.environ)))
        _reset_handler_caches()

    def _apply(self, environment: HandlerEnvironment) -> None:
        """Change os.environ, remembering what was there for stop()."""
        for name in environment.removed:
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        for name, value in environment.values.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environment(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._saved_environ:
            _reset_handler_caches()
        self._saved_environ = {}

    def _check_flow_config(self) -> str:
        """Fail at start, naming the fields, rather than on the first call."""
        from voice_webhooks.errors import ConfigurationError
        from voice_webhooks.flows.loader import parse_flow_config

        path = self.settings.flow_config
        shown = _display_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LocalModeError(f"FLOW_CONFIG: cannot read {shown}: {exc.strerror}") from exc
        try:
            config, warnings = parse_flow_config(text, shown)
        except ConfigurationError as exc:
            raise LocalModeError(f"FLOW_CONFIG: {exc}") from exc
        self.notes.extend(f"flow config: {warning}" for warning in warnings)
        flows = ", ".join(
            f"{name} ({flow.kind}{', default' if name == config.default else ''})"
            for name, flow in config.flows.items()
        )
        count = len(config.numbers)
        return f"{shown}: {flows}; {count} number{'' if count == 1 else 's'} mapped"

    def _load_handlers(self) -> None:
        problems: dict[str, str | None] = {}
        for route in self.api.routes:
            if route.function.name not in problems:
                problems[route.function.name] = self.api.try_load(route)
            url = self.public_base_url + route.path
            self.route_statuses.append(RouteStatus(route, url, problems[route.function.name]))
        if self.websocket is not None:
            for route_key, spec in self.websocket.spec.routes.items():
                if spec.name not in problems:
                    problems[spec.name] = self.websocket.try_load(spec)
                self.websocket_statuses.append(
                    WebSocketRouteStatus(route_key, spec.name, problems[spec.name])
                )

    def _note_routes_missing_from_template(self) -> None:
        from voice_webhooks.edge import routes

        served = {route.path for route in self.api.routes}
        missing = [path for path in routes.ALL if path not in served]
        if missing:
            self.notes.append("not routed by template.yaml yet (answer 404): " + ", ".join(missing))
        routed = {route.function.name for route in self.api.routes}
        if self.websocket_spec is not None:
            routed |= {spec.name for spec in self.websocket_spec.routes.values()}
            self.notes.extend(f"WebSocket API: {note}" for note in self.websocket_spec.notes)
        functions = self.template.get("Resources", {})
        unrouted = sorted(
            name
            for name, resource in functions.items()
            if resource.get("Type") == "AWS::Serverless::Function"
            and name not in routed
            and (self.archiving is None or name != self.archiving.spec.name)
        )
        if unrouted:
            self.notes.append("not run by the local mode (no HttpApi route): " + ", ".join(unrouted))
            if self.archiving is None and "RecordingArchiverFunction" in unrouted:
                self.notes.append(
                    "LOCAL_ARCHIVER=1 runs RecordingArchiverFunction, with a fake Twilio media host"
                )

    # -- the banner ----------------------------------------------------------------------------

    def banner(self) -> str:
        assert self.resources is not None
        settings = self.settings
        resources = self.resources
        public_note = (
            "(from PUBLIC_BASE_URL: requests arriving here are checked against it)"
            if settings.public_base_url
            else "(the URL Twilio calls and signs; set PUBLIC_BASE_URL to a tunnel for a real number)"
        )
        token_note = (
            "(the documented development token; set TWILIO_AUTH_TOKEN for a real number)"
            if settings.uses_dev_token
            else "(from TWILIO_AUTH_TOKEN, masked)"
        )
        account_note = (
            "(the documented development account)"
            if settings.account_sid == _dev_account()
            else "(from TWILIO_ACCOUNT_SID)"
        )
        width = max(len(name) for name in resources.queue_urls) if resources.queue_urls else 0
        queues = [f"{name:<{width}}  {url}" for name, url in resources.queue_urls.items()] or ["none"]
        buckets = ", ".join(resources.bucket_names.values()) or "none in template.yaml"
        lines = [
            "Twilio voice webhooks: local mode (no Docker; listening on 127.0.0.1 only)",
            f"  API            {self.api_url}",
            f"  public URL     {self.public_base_url}  {public_note}",
            f"  AWS endpoint   {self.aws_endpoint}  (moto, region {resources.region}, any credentials)",
            f"  table          {resources.table_name}",
            f"  queues         {queues[0]}",
            *(f"                 {line}" for line in queues[1:]),
            f"  buckets        {buckets}",
            f"  secret         {AUTH_TOKEN_SECRET_NAME}  (TWILIO_AUTH_TOKEN_SECRET, read by the handlers)",
            f"  auth token     {settings.token_for_display()}  {token_note}",
            f"  account        {settings.account_sid}  {account_note}",
            f"  flow config    {self.flow_summary}",
            f"  handler logs   {self._log_note()}",
            *(self.archiving.banner_lines() if self.archiving is not None else []),
            f"  process        pid {os.getpid()}  (stop: Ctrl-C, or kill {os.getpid()})",
            "",
            *self._websocket_lines(),
            "",
            "Webhooks:",
        ]
        path_width = max((len(status.url) for status in self.route_statuses), default=0)
        for status in self.route_statuses:
            state = status.problem or "ready"
            function = status.route.function.name
            lines.append(f"  {status.route.method:<4} {status.url:<{path_width}}  {function}: {state}")
        if self.websocket_statuses:
            lines += ["", "WebSocket routes (one invocation per frame, concurrently, as in AWS):"]
            for ws_status in self.websocket_statuses:
                state = ws_status.problem or "ready"
                lines.append(f"  {ws_status.route_key:<12} {ws_status.function}: {state}")
        if self.notes:
            lines += ["", "Notes:", *(f"  - {note}" for note in self.notes)]
        lines += ["", "Ready. One line per request: time, method, route, status, duration, session."]
        return "\n".join(lines)

    def _log_note(self) -> str:
        level = self.environment.values["POWERTOOLS_LOG_LEVEL"] if self.environment else "?"
        if level in ("DEBUG", "INFO"):
            return f"{level} (every handler log line; LOCAL_LOG_LEVEL=WARNING for requests only)"
        return f"{level} and above (full JSON logs: make local ARGS=--verbose, or LOCAL_LOG_LEVEL=INFO)"

    def _websocket_lines(self) -> list[str]:
        if self.websocket is None:
            why = (
                f"{self.websocket_spec.name} has no route to a function"
                if self.websocket_spec is not None
                else "template.yaml has no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET"
            )
            return [f"  WebSocket API  not started: {why}"]
        websocket = self.websocket
        public = self.relay_public_url
        public_note = "(from RELAY_PUBLIC_URL)" if self.settings.relay_public_url else "(RELAY_PUBLIC_URL)"
        return [
            f"  WebSocket API  {websocket.url}  ({websocket.spec.name}, stage {websocket.spec.stage})",
            f"  relay URL      {public}  {public_note}; Twilio signs ws:// here as it signs wss://",
            f"  @connections   {websocket.management_endpoint}/@connections/<id>  "
            "(RELAY_MANAGEMENT_ENDPOINT)",
        ]


def _dev_account() -> str:
    from voicedev.twilio_signing import DEV_ACCOUNT_SID

    return DEV_ACCOUNT_SID


def _reset_handler_caches() -> None:
    """Cached settings, clients and secrets belong to the environment they were made in."""
    from voicedev.handler_caches import reset_handler_caches

    reset_handler_caches()


# ---------------------------------------------------------------------------------------------
# The command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-webhooks-local",
        description=__doc__.split("\n\n`LocalMode`")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print the handlers' JSON logs (LOCAL_LOG_LEVEL=INFO)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    if _parser().parse_args(argv).verbose:
        os.environ["LOCAL_LOG_LEVEL"] = "INFO"
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    # Installed before starting, so a Ctrl-C during start-up still stops both servers cleanly.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        settings = load_local_settings()
    except LocalSettingsError as exc:
        print(f"local mode: invalid setting: {exc}", file=sys.stderr)
        return 2
    local = LocalMode(settings)
    try:
        local.start()
    except (LocalModeError, LocalAwsError, OSError) as exc:
        print(f"local mode: cannot start: {exc}", file=sys.stderr)
        return 2
    _print_line(local.banner())
    while not stop_requested.wait(0.5):
        pass
    websocket = "WebSocket API, " if local.websocket is not None else ""
    _print_line(f"Stopping: {websocket}local API, then the embedded AWS endpoint")
    local.stop()
    _print_line("Local mode stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["HOST", "LocalMode", "LocalModeError", "RouteStatus", "WebSocketRouteStatus", "main"]


def _align_metrics_namespace() -> None:
    """Powertools reads the metric namespace when the shared `metrics` object is made (at import):
    a process that imported the shared package before this environment existed (the bench, a tool
    using this class) would otherwise answer every request that counts a metric with a 500."""
    from voice_webhooks.runtime.observability import metrics

    metrics.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
