"""`make sam-local`: the real SAM CLI path, checked end to end (docs/sam-local.md).

1. Docker: the reachable daemon, else a private dockerd (stopped at the end, by its pid).
2. The Lambda base image: cached, else pulled, else the offline stand-in (voicedev.sam_local.image).
3. `sam build` for this host's architecture (template parameter Architecture).
4. A moto server on the Docker bridge address only (containers reach it; nothing else listens
   beyond loopback), holding the template's resources, the auth token secret and the flows.
5. Every sample event in events/ through SAM: the first with `sam local invoke`, the rest through
   `sam local start-lambda --warm-containers EAGER` (the same emulator and container, kept warm),
   each checked against events/<name>.expected.json (answer and effects).
6. `sam local start-api`, with the emulator's scenarios played against it: SAM's own API Gateway
   emulation builds the events, and the handlers check the signatures the emulator computed.
7. A table (event or scenario, expected, got); exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from voicedev import layer_trim, sample_events, sample_expectations
from voicedev.local_aws import DUMMY_CREDENTIALS, EmbeddedAws, LocalResources
from voicedev.sam_local.docker_daemon import Docker, DockerError, ensure_docker
from voicedev.sam_local.image import ImageError, ensure_image, lambda_arch
from voicedev.template_resources import PROJECT_ROOT
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

SAM = Path(os.environ.get("SAM", PROJECT_ROOT / ".tools" / "sam" / "bin" / "sam"))
FLOWS_FILE = PROJECT_ROOT / "config" / "flows.example.json"
FLOW_PARAMETER = "/twilio-voice-webhooks/flows"
REGION = "us-east-1"
LOOPBACK = "127.0.0.1"
# Every container SAM starts carries this label (samcli LambdaContainer).
SAM_CONTAINER_LABEL = "sam.cli.container.type=lambda"


class RunError(RuntimeError):
    pass


@dataclass
class Row:
    kind: str
    name: str
    expected: str
    got: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def python313_env() -> dict[str, str]:
    """The environment `sam build` needs: python3.13 on PATH (the Lambda runtime's version),
    through pyenv when it has a 3.13 and PATH does not."""
    env = dict(os.environ)
    if shutil.which("python3.13"):
        probe = subprocess.run(["python3.13", "-c", ""], capture_output=True, check=False)
        if probe.returncode == 0:
            return env
    pyenv = shutil.which("pyenv")
    if pyenv:
        versions = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, check=False)
        found = [v.strip() for v in versions.stdout.splitlines() if v.strip().startswith("3.13")]
        if found:
            current = os.environ.get("PYENV_VERSION", "").strip()
            env["PYENV_VERSION"] = ":".join(part for part in (current, found[-1]) if part)
            return env
    raise RunError(
        "sam build needs python3.13 on PATH (the Lambda runtime's version): install it, or "
        "`pyenv install 3.13` (docs/sam-local.md)"
    )


class Sam:
    """The SAM CLI with this run's parameters, environment and Docker daemon."""

    def __init__(self, docker: Docker, arch: str, build_dir: Path, endpoint: str, resources: LocalResources):
        self.docker = docker
        self.arch = arch
        self.build_dir = build_dir
        self.resources = resources
        self.endpoint = endpoint
        self.env = {
            **docker.env(),
            "SAM_CLI_TELEMETRY": "0",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        }
        self.env.pop("AWS_PROFILE", None)
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.env_file = build_dir.parent / f"sam-local-env-{arch}.json"
        # --env-vars overrides only variables the template declares: the table and queue names,
        # which `sam local` would otherwise resolve to the logical ids.
        self.env_file.write_text(
            json.dumps(
                {
                    "Parameters": {
                        "EVENTS_TABLE_NAME": resources.table_name,
                        "RECORDINGS_QUEUE_URL": resources.queue_urls["RecordingsQueue"],
                    }
                }
            ),
            encoding="utf-8",
        )

    def parameters(self, **extra: str) -> list[str]:
        values = {
            "Architecture": self.arch,
            "LocalAwsEndpoint": self.endpoint,
            "AuthTokenSecretArn": self.resources.secret_arn,
            "AllowedAccountSids": DEV_ACCOUNT_SID,
            "LogLevel": "WARNING",
            **extra,
        }
        return ["--parameter-overrides", " ".join(f"{name}={value}" for name, value in values.items())]

    def common(self) -> list[str]:
        return [
            "--template",
            str(self.build_dir / "template.yaml"),
            "--skip-pull-image",
            "--env-vars",
            str(self.env_file),
            "--region",
            REGION,
        ]

    def invoke(self, function: str, event: Path) -> dict[str, Any]:
        cmd = [
            str(SAM),
            "local",
            "invoke",
            function,
            "--event",
            str(event),
            *self.common(),
            *self.parameters(),
        ]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180, check=False)
        lines = [line for line in result.stdout.splitlines() if line.strip().startswith("{")]
        if result.returncode != 0 or not lines:
            tail = "\n    ".join(result.stderr.strip().splitlines()[-8:])
            raise RunError(f"sam local invoke {function} failed (exit {result.returncode}):\n    {tail}")
        payload: dict[str, Any] = json.loads(lines[-1])
        return payload

    def start(self, command: str, log: Path, port: int | None = None, **parameters: str) -> Server:
        """`sam local start-lambda` or `start-api` on loopback, warm; `Server.ready()` waits for it."""
        port = port or free_port()
        cmd = [
            str(SAM),
            "local",
            command,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--warm-containers",
            "EAGER",
            # The build output never changes during a run; SAM's file watcher otherwise recreates
            # warm containers on spurious events (each recreation costs 15-20 s here).
            "--no-watch",
            *self.common(),
            *self.parameters(**parameters),
        ]
        print(f"$ sam local {command} --warm-containers EAGER --port {port} (log {log})", flush=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Server(command, process, port, log)


@dataclass
class Server:
    command: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def ready(self, timeout: float = 600) -> None:
        wait_for_port(self.port, self.process, self.log, timeout)

    def stop(self) -> None:
        stop_process(self.process)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(f"sam exited with {process.returncode}:\n    {tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            # SAM listens before its EAGER containers are up: wait for "Running on" in its log.
            if "Running on" in log.read_text(encoding="utf-8", errors="replace"):
                return
        time.sleep(0.5)
    raise RunError(f"sam did not listen on {port} within {timeout:.0f} s:\n    {tail(log)}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (SAM's Ctrl-C: it stops its containers), then SIGKILL after 30 s; by pid only."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def tail(log: Path, lines: int = 10) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n    ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def sam_build(arch: str, build_dir: Path) -> None:
    env = {**python313_env(), "SAM_CLI_TELEMETRY": "0"}
    cmd = [
        str(SAM),
        "build",
        "--template",
        str(PROJECT_ROOT / "template.yaml"),
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(build_dir.parent / f"cache-sam-local-{arch}"),
        "--cached",
        # The functions and the layer are built side by side (each runs its own pip).
        "--parallel",
        "--parameter-overrides",
        f"Architecture={arch}",
    ]
    print(f"$ sam build (Architecture={arch}) -> {build_dir.relative_to(PROJECT_ROOT)}", flush=True)
    result = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RunError("sam build failed:\n    " + "\n    ".join(result.stdout.strip().splitlines()[-10:]))
    finish_layer(build_dir / "CommonLayer" / "python", env)


EMULATION_SLOWDOWN = 10
_TIMEOUT_LINE = re.compile(r"^(?P<indent>\s+)Timeout: (?P<seconds>\d+)\s*$", re.MULTILINE)


def emulated_timeouts(template: str, factor: int = EMULATION_SLOWDOWN) -> str:
    """The built template with every function `Timeout` multiplied by `factor`: under qemu-user a
    function's init and first invoke run about ten times slower than natively, and SAM enforces
    the template's Timeout (10 s) on both. Only the built copy in .aws-sam changes."""
    return _TIMEOUT_LINE.sub(
        lambda m: f"{m.group('indent')}Timeout: {int(m.group('seconds')) * factor}", template
    )


def finish_layer(site: Path, env: dict[str, str]) -> None:
    """What `make build` does to the layer before it is deployed: trimmed (layer_trim) and compiled
    with python3.13. The containers then run the layer a stack would, and SAM, which rebuilds its
    layer image for every container it starts (a layer defined in the template is never reused),
    copies 18 MiB instead of 69 MiB each time."""
    report = layer_trim.trim(site)
    print(
        f"  trimmed the layer: {report.bytes_before / 2**20:.1f} MiB -> {report.bytes_after / 2**20:.1f} MiB",
        flush=True,
    )
    compiled = subprocess.run(
        [
            "python3.13",
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(site),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if compiled.returncode != 0:
        raise RunError("compiling the layer failed:\n    " + compiled.stdout[-500:] + compiled.stderr[-500:])


class Aws:
    """Host-side view of the moto server (the same URL the containers use)."""

    def __init__(self, server: EmbeddedAws, resources: LocalResources) -> None:
        self.server = server
        self.resources = resources
        isolated = botocore.session.Session(
            session_vars={
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        session = boto3.session.Session(botocore_session=isolated, region_name=REGION, **DUMMY_CREDENTIALS)
        self.table = session.resource("dynamodb", endpoint_url=resources.endpoint_url).Table(
            resources.table_name
        )
        self.sqs = server.client("sqs")
        self.queue_url = resources.queue_urls["RecordingsQueue"]

    def snapshot(self) -> list[str]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(json.dumps(item, sort_keys=True, default=str) for item in items)

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def provision(server: EmbeddedAws) -> LocalResources:
    resources = server.provision(DEV_AUTH_TOKEN)
    # The functions read the flows from SSM, as in a deployed stack (FLOW_CONFIG=ssm:...).
    server.client("ssm").put_parameter(
        Name=FLOW_PARAMETER, Type="String", Tier="Advanced", Value=FLOWS_FILE.read_text(encoding="utf-8")
    )
    return resources


def check_events(
    sam: Sam, aws: Aws, cases: Sequence[sample_events.SampleCase], lambdas: Server | None
) -> list[Row]:
    """Every sample event, each on its own session, against its expected answer and effects."""
    flows = json.loads(FLOWS_FILE.read_text(encoding="utf-8"))
    rows: list[Row] = []
    lambda_client: Any = None
    for index, case in enumerate(cases):
        expected_path = sample_events.EVENTS_DIR / case.expected_file_name
        expected = sample_expectations.load(expected_path.read_text(encoding="utf-8"))
        event_path = sample_events.EVENTS_DIR / case.file_name
        for item in sample_events.seed_items(case, flows):
            aws.table.put_item(Item=item)
        before, queued_before = aws.snapshot(), aws.queued()
        started = time.monotonic()
        kind = "invoke" if index == 0 else "start-lambda"
        try:
            if index == 0:
                # The documented command itself, once: `sam local invoke <Function> -e events/...`.
                response = sam.invoke(expected.function, event_path)
            else:
                if lambda_client is None:
                    if lambdas is None:
                        raise RunError("no sam local start-lambda for the events after the first")
                    lambdas.ready()
                    lambda_client = boto3.client(
                        "lambda",
                        endpoint_url=lambdas.url,
                        region_name=REGION,
                        config=Config(read_timeout=120, retries={"max_attempts": 0}),
                        **DUMMY_CREDENTIALS,
                    )
                    started = time.monotonic()
                answer = lambda_client.invoke(FunctionName=expected.function, Payload=event_path.read_bytes())
                payload = answer["Payload"].read()
                if answer.get("FunctionError"):
                    raise RunError(f"function error: {payload[:300]!r}")
                response = json.loads(payload)
        except (RunError, OSError, ValueError) as exc:
            rows.append(Row(f"event ({kind})", case.name, expected.summary(), "error", problems=[str(exc)]))
            print(f"  FAIL {case.name}: {exc}", flush=True)
            continue
        changed = aws.snapshot() != before
        queued = aws.queued() - queued_before
        problems = sample_expectations.differences(expected, response, changed, queued)
        seconds = time.monotonic() - started
        got = sample_expectations.got_summary(response, changed, queued)
        rows.append(Row(f"event ({kind})", case.name, expected.summary(), got, problems, seconds))
        print(f"  {'ok  ' if not problems else 'FAIL'} {case.name} [{kind}] ({seconds:.1f} s)", flush=True)
    return rows


def check_scenarios(api: Server, names: Sequence[str] | None = None) -> list[Row]:
    """The emulator's scenarios against `sam local start-api` (SAM builds the API Gateway events)."""
    from voicedev.emulator import SCENARIOS, EmulatorConfig, run_call

    scenarios = [s for s in SCENARIOS if not names or s.name in names]
    rows: list[Row] = []
    api.ready()
    config = EmulatorConfig(base_url=api.url, strict=True, timeout=60, seed=12)
    for scenario in scenarios:
        started = time.monotonic()
        try:
            result = run_call(config, scenario)
            problems = [*result.problems, *result.differences]
        except Exception as exc:  # one broken scenario must not hide the others
            problems = [f"{type(exc).__name__}: {exc}"]
        got = "as expected" if not problems else "; ".join(problems)[:160]
        seconds = time.monotonic() - started
        rows.append(
            Row("scenario (start-api)", scenario.name, str(scenario.expect.value), got, problems, seconds)
        )
        print(
            f"  {'ok  ' if not problems else 'FAIL'} {scenario.name} [start-api] ({seconds:.1f} s)",
            flush=True,
        )
    return rows


def render(rows: Sequence[Row]) -> str:
    headers = ("", "event or scenario", "expected", "got")
    body = [("ok" if row.ok else "FAIL", f"{row.name} [{row.kind}]", row.expected, row.got) for row in rows]
    widths = [max(len(str(line[i])) for line in [headers, *body]) for i in range(3)]
    lines = []
    for line in [headers, *body]:
        lines.append(
            "  ".join(str(cell).ljust(widths[i]) if i < 3 else str(cell) for i, cell in enumerate(line))
        )
    failed = [row for row in rows if not row.ok]
    for row in failed:
        lines.append(f"FAIL {row.name}: " + "; ".join(row.problems))
    lines.append(f"{len(rows) - len(failed)} of {len(rows)} as expected")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make sam-local", description="Run the sample events and the emulator through the real SAM CLI."
    )
    parser.add_argument(
        "--arch",
        choices=("x86_64", "arm64"),
        default=os.environ.get("SAM_LOCAL_ARCH") or None,
        help="Lambda architecture (default: SAM_LOCAL_ARCH, else this host's; another one runs under qemu)",
    )
    parser.add_argument("--events", nargs="*", help="only these sample events (names without .json)")
    parser.add_argument("--scenarios", nargs="*", help="only these emulator scenarios")
    parser.add_argument("--skip-events", action="store_true", help="skip the sam local invoke part")
    parser.add_argument("--skip-api", action="store_true", help="skip the sam local start-api part")
    parser.add_argument("--rebuild-image", action="store_true", help="build the stand-in image again")
    parser.add_argument("--no-pull", action="store_true", help="never try to pull the real image")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if not SAM.exists():
        print(f"{SAM} is missing: run `make sam-cli`", file=sys.stderr)
        return 2
    arch = args.arch or lambda_arch()
    build_dir = PROJECT_ROOT / ".aws-sam" / f"sam-local-{arch}"
    log_dir = Path(tempfile.mkdtemp(prefix="sam-local-logs-"))
    docker: Docker | None = None
    server: EmbeddedAws | None = None
    rows: list[Row] = []
    servers: list[Server] = []
    phases: list[str] = []

    def phase(name: str, since: float) -> float:
        phases.append(f"{name} {time.monotonic() - since:.0f} s")
        return time.monotonic()

    mark = started
    try:
        docker = ensure_docker()
        print(f"docker: {docker.host or 'default'}", flush=True)
        obtained = ensure_image(docker, arch, rebuild=args.rebuild_image, try_pull=not args.no_pull)
        print(f"image: {obtained}", flush=True)
        mark = phase("docker+image", mark)
        if "cached" not in obtained:
            # SAM's derived images (base + emulator + layer) are tagged by the layer's hash, not
            # the base's: drop them so that SAM builds them on the new base.
            docker.remove_images("samcli/lambda-python")
            docker.remove_images("public.ecr.aws/lambda/python:*rapid*")
        sam_build(arch, build_dir)
        if arch != lambda_arch():
            built = build_dir / "template.yaml"
            built.write_text(emulated_timeouts(built.read_text(encoding="utf-8")), encoding="utf-8")
            print(f"  emulated {arch}: function timeouts x{EMULATION_SLOWDOWN} (built template)", flush=True)
        mark = phase("sam build", mark)
        gateway = docker.bridge_gateway()
        # Bound to the bridge address only: reachable from the containers and this host, not beyond.
        server = EmbeddedAws(0, region=REGION, host=gateway)
        server.start()
        resources = provision(server)
        print(f"moto: {resources.endpoint_url} (the containers' AWS endpoint)", flush=True)
        sam = Sam(docker, arch, build_dir, resources.endpoint_url, resources)
        aws = Aws(server, resources)
        # Both servers start their warm containers while the first event runs through
        # `sam local invoke`. PublicBaseUrl: the handlers check each signature against the URL
        # the emulator called (SAM's events say `localhost` without the port).
        cases = [c for c in sample_events.CASES if not args.events or c.name in args.events]
        lambdas: Server | None = None
        # The first event goes through `sam local invoke`; the warm server only for the others.
        if not args.skip_events and len(cases) > 1:
            lambdas = sam.start("start-lambda", log_dir / "start-lambda.log")
            servers.append(lambdas)
        if not args.skip_api:
            port = free_port()
            api_url = f"http://{LOOPBACK}:{port}"
            servers.append(sam.start("start-api", log_dir / "start-api.log", port, PublicBaseUrl=api_url))
        if not args.skip_events:
            rows += check_events(sam, aws, cases, lambdas)
            mark = phase("events", mark)
        if not args.skip_api:
            rows += check_scenarios(servers[-1], args.scenarios)
            mark = phase("scenarios", mark)
    except (DockerError, ImageError, RunError) as exc:
        print(f"make sam-local: {exc}", file=sys.stderr)
        print(f"logs: {log_dir}", file=sys.stderr)
        return 2
    finally:
        for running in servers:
            running.stop()
        if server is not None:
            server.stop()
        if docker is not None:
            docker.remove_containers(SAM_CONTAINER_LABEL)
            docker.stop()
    print()
    print(render(rows))
    print(f"make sam-local: {time.monotonic() - started:.0f} s ({', '.join(phases)}; logs: {log_dir})")
    return 0 if rows and all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
