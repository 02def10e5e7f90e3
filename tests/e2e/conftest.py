"""End-to-end fixtures: the real `make local` command, started on free loopback ports and driven over
HTTP, its table and queues inspected through boto3 pointed at its moto endpoint.

`local_mode` (session) is shared by the tests that only send requests; `start_local_mode(...)` starts
another instance with other settings. Each instance is stopped with SIGTERM and must exit 0."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from voicedev.local_client import HttpAnswer, http_request, twilio_request, twilio_url
from voicedev.twilio_signing import DEV_AUTH_TOKEN, random_sid, sign

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOOPBACK = "127.0.0.1"
READY_LINE = "Ready."
STARTUP_SECONDS = 45
STOP_SECONDS = 20
VENV_SECONDS = 600
# Nothing from the test process's own environment may configure the command under test.
_DROPPED_PREFIXES = ("AWS_", "POWERTOOLS_", "TWILIO_", "LOCAL_", "MAKE")
_DROPPED_NAMES = {
    "MFLAGS",
    "FLOW_CONFIG",
    "PUBLIC_BASE_URL",
    "ALLOWED_ACCOUNT_SIDS",
    "EVENTS_TABLE_NAME",
    "RECORDINGS_QUEUE_URL",
    "CALLBACK_CONNECTION_OVERRIDES",
    "EVENT_TTL_DAYS",
    "RELAY_PUBLIC_URL",
    "RELAY_MANAGEMENT_ENDPOINT",
}


def make_executable() -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("the e2e tests run `make local`: install GNU make")
    return make


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOOPBACK, port)) == 0


def load_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def connect_params(to: str, **overrides: str) -> dict[str, str]:
    """Twilio's connect webhook parameters for a new inbound call to `to`."""
    params = dict(load_fixture("connect_request.json")["params"])
    params.update({"CallSid": random_sid("CA"), "To": to, "Called": to})
    params.update(overrides)
    return params


@dataclass
class LocalModeProcess:
    """A running `make local`: its output, its URLs, and its AWS endpoint through boto3."""

    process: subprocess.Popen[str]
    api_port: int
    aws_port: int
    public_base_url: str
    ws_port: int = 0
    """The WebSocket API's port (served once template.yaml has the relay agent's WebSocket API)."""
    ws_management_port: int = 0
    lines: list[str] = field(default_factory=list)
    local_pid: int | None = None
    _reader: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.aws_port}"

    def output(self) -> str:
        return "\n".join(self.lines)

    def read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """The first output line matching `pattern` (output arrives through a pipe, a little later)."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            for line in list(self.lines):
                match = compiled.search(line)
                if match:
                    return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no output line matches {pattern!r}; output:\n{self.output()}")
            time.sleep(0.05)

    # -- requests ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The public URL of a route: what Twilio calls, and what it signs."""
        return self.public_base_url + path

    def post(
        self, path: str, params: dict[str, str], token: str | None = DEV_AUTH_TOKEN, **kw: Any
    ) -> HttpAnswer:
        return self.send("POST", path, params, token, **kw)

    def get(
        self, path: str, params: dict[str, str], token: str | None = DEV_AUTH_TOKEN, **kw: Any
    ) -> HttpAnswer:
        return self.send("GET", path, params, token, **kw)

    def send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        token: str | None = DEV_AUTH_TOKEN,
        *,
        signature: str | None = None,
    ) -> HttpAnswer:
        """As Twilio sends it: signed for the public URL (query included), delivered to the local
        API with the same path and query (which is what a tunnel does when PUBLIC_BASE_URL is one)."""
        public_url, pairs = twilio_url(self.url(path), method, params)
        local_url = self.api_url + public_url.removeprefix(self.public_base_url)
        if signature is None and token is not None:
            signature = sign(public_url, pairs, token)
        headers = {"X-Twilio-Signature": signature} if signature is not None else {}
        return twilio_request(method, local_url, pairs, token=None, headers=headers)

    # -- the embedded AWS endpoint --------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
        )

    def table(self, name: str = "EventsTable") -> Any:
        return boto3.resource(
            "dynamodb",
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
        ).Table(name)

    def items_of_call(self, call_sid: str) -> list[dict[str, Any]]:
        response = self.table().query(
            IndexName="ByCallSid", KeyConditionExpression=Key("SessionCallSid").eq(call_sid)
        )
        return list(response["Items"])

    def items_of_session(self, session_id: str) -> list[dict[str, Any]]:
        response = self.table().query(
            KeyConditionExpression=Key("SessionId").eq(session_id), ConsistentRead=True
        )
        return list(response["Items"])

    # -- stopping -------------------------------------------------------------------------------------

    def stop(self) -> int:
        """SIGTERM to the local mode (the pid its banner prints), as `kill <pid>` would; returns
        make's exit status, which is the command's."""
        if self.process.poll() is None:
            assert self.local_pid is not None, self.output()
            os.kill(self.local_pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"make local did not stop on SIGTERM; output:\n{self.output()}"
                ) from None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def command_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_DROPPED_PREFIXES) and name not in _DROPPED_NAMES
    }
    env.update(extra)
    return env


def _ready(local: LocalModeProcess) -> bool:
    if not any(line.startswith(READY_LINE) for line in list(local.lines)):
        return False
    try:
        return http_request("GET", local.api_url + "/", timeout=2).status == 404
    except OSError:
        return False


def start_local_mode(**settings: str) -> LocalModeProcess:
    """`make local` with LOCAL_API_PORT/LOCAL_AWS_PORT on free ports and `settings` in its
    environment; returns once its API answers, or fails with everything it printed."""
    api_port, aws_port, ws_port, ws_management_port = free_port(), free_port(), free_port(), free_port()
    ports = {
        "LOCAL_API_PORT": str(api_port),
        "LOCAL_AWS_PORT": str(aws_port),
        "LOCAL_WS_PORT": str(ws_port),
        "LOCAL_WS_MANAGEMENT_PORT": str(ws_management_port),
    }
    env = command_environment({**ports, **settings})
    process = subprocess.Popen(  # noqa: S603 - make from PATH, fixed arguments
        [make_executable(), "--no-print-directory", "local"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # so a failed test can kill make and the server together
    )
    local = LocalModeProcess(
        process=process,
        api_port=api_port,
        aws_port=aws_port,
        public_base_url=settings.get("PUBLIC_BASE_URL") or f"http://{LOOPBACK}:{api_port}",
        ws_port=int(settings.get("LOCAL_WS_PORT") or ws_port),
        ws_management_port=int(settings.get("LOCAL_WS_MANAGEMENT_PORT") or ws_management_port),
    )
    local._reader = threading.Thread(target=local.read_output, daemon=True)
    local._reader.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _ready(local):
        if process.poll() is not None:
            local._reader.join(timeout=5)
            pytest.fail(f"make local exited with {process.returncode} before answering:\n{local.output()}")
        if time.monotonic() > deadline:
            local.kill()
            pytest.fail(f"make local did not answer within {STARTUP_SECONDS} s:\n{local.output()}")
        time.sleep(0.1)
    local.local_pid = int(local.wait_for_line(r"\bpid (\d+)\b").group(1))
    return local


@pytest.fixture(scope="session")
def venv_ready() -> None:
    """`make local` installs the project first when pyproject.toml changed; do that up front, so
    the start-up wait measures the local mode alone."""
    result = subprocess.run(  # noqa: S603 - make from PATH, fixed arguments
        [make_executable(), "--no-print-directory", "venv"],
        cwd=ROOT,
        env=command_environment({}),
        capture_output=True,
        text=True,
        timeout=VENV_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"make venv failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@contextmanager
def running_local_mode(**settings: str) -> Iterator[LocalModeProcess]:
    """`start_local_mode`, stopped with SIGTERM after the block: it must exit 0."""
    local = start_local_mode(**settings)
    try:
        yield local
    finally:
        status = local.stop()
        assert status == 0, f"make local exited with {status} on SIGTERM:\n{local.output()}"


@pytest.fixture(scope="session")
def local_mode(venv_ready: None) -> Iterator[LocalModeProcess]:
    with running_local_mode() as local:
        yield local


@pytest.fixture
def local_mode_factory(venv_ready: None) -> Iterator[Callable[..., LocalModeProcess]]:
    """Start extra instances with their own settings; any left running are killed at the end."""
    started: list[LocalModeProcess] = []

    def factory(**settings: str) -> LocalModeProcess:
        local = start_local_mode(**settings)
        started.append(local)
        return local

    yield factory
    for local in started:
        local.kill()
