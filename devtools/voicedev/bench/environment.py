"""The environment a benchmark child process runs in: Lambda's, as far as the handlers can tell."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Mapping
from typing import Any

from voicedev.local_aws import LocalResources
from voicedev.local_env import TemplateResolver, Unresolvable, _NoValue
from voicedev.local_settings import HOST
from voicedev.twilio_signing import DEV_ACCOUNT_SID

REGION = "us-east-1"
# Kept from this machine's environment: what an interpreter needs to start (PYTHONPATH: to measure
# another version of the shared package, docs/benchmarks.md), nothing about AWS.
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")


def trace_header() -> str:
    """A sampled `_X_AMZN_TRACE_ID`, as Lambda sets it for each invocation under `Tracing: Active`."""
    return f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=1"


class XRayDaemon:
    """A UDP socket where the X-Ray SDK sends segments, counting them (proof that tracing ran)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((HOST, 0))
        self.socket.settimeout(0.2)
        self.segments = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="xray-sink", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.socket.getsockname()[1]}"

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.segments += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.socket.close()


def function_environment(
    template: Mapping[str, Any], resources: LocalResources, logical_id: str
) -> dict[str, str]:
    """A function's variables as CloudFormation resolves them for a stack built from parameter
    defaults (Globals first, the function's own over them), the local resources standing for the
    stack's. Parameters without a default are left out (the caller sets them)."""
    resolver = TemplateResolver(template, resources)
    globals_ = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = template["Resources"][logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
    values: dict[str, str] = {}
    for name, raw in {**globals_, **own}.items():
        try:
            value = resolver.resolve(raw)
        except Unresolvable:
            continue
        if isinstance(value, _NoValue):
            continue
        values[name] = ",".join(value) if isinstance(value, list) else str(value)
    return values


def lambda_environment(
    *,
    function_name: str,
    task_root: str,
    memory_mb: int | str,
    xray_address: str,
    endpoint_url: str | None,
    secret_arn: str | None,
) -> dict[str, str]:
    """What the Lambda runtime sets, AWS pointed at `endpoint_url` (None: moto in process) with
    dummy credentials and no configuration file, and the stack parameters without a default."""
    env = {name: os.environ[name] for name in _KEPT if name in os.environ}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": task_root,
            "_X_AMZN_TRACE_ID": trace_header(),
            "AWS_XRAY_DAEMON_ADDRESS": xray_address,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "ALLOWED_ACCOUNT_SIDS": DEV_ACCOUNT_SID,
        }
    )
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    if secret_arn:
        env["TWILIO_AUTH_TOKEN_SECRET"] = secret_arn
    return env
