"""Cold start per function: a fresh interpreter imports functions/<name>/app.py (by path, as Lambda
loads it) and serves its first request, against a moto server on 127.0.0.1 that holds the
template's table, queues, bucket and flow-config parameter and the auth token secret.

The environment is Lambda's: the function's variables from template.yaml (Globals included), the
variables the Lambda runtime sets (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, a sampled
_X_AMZN_TRACE_ID...), so Powertools' Tracer is active as under `Tracing: Active` and sends its
segments to a UDP socket standing in for the X-Ray daemon.

Floor, per function: a fresh interpreter that imports boto3 and creates one client per AWS service
the function calls (checked: the function's process reports the clients it created). Libraries
reference (informative): the floor plus the prescribed libraries, imported and set up.

Each round plays one typical call (voicedev.bench.calls): connect first (its TwiML names the
session), then status, recording, action, fallback, and the archiver with the message the
recording route queued; each function's run is followed by its floor's and its reference's, so
drift on the machine hits all three alike. One round is run first and not counted (disk cache)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from voicedev.bench.calls import TypicalCall, answer_body, archiver_event
from voicedev.bench.environment import REGION, XRayDaemon, function_environment, lambda_environment
from voicedev.bench.netdelay import DelayProxy
from voicedev.bench.profiling import (
    IMPORT_GROUPS,
    OTHER,
    STARTUP,
    ImportTime,
    heaviest_imports,
    import_breakdown,
    parse_importtime,
    top_entries,
)
from voicedev.bench.report import Section, Table, measure_table
from voicedev.bench.stats import Measure, format_ratio, format_value, median
from voicedev.local_archiver import FakeMediaHost
from voicedev.local_aws import EmbeddedAws, LocalResources
from voicedev.relay_events import connect_event, disconnect_event, message_event, setup_frame
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type
from voicedev.twilio_signing import DEV_AUTH_TOKEN

CHILD = Path(__file__).with_name("cold_child.py")
GOAL = 1.4
# Issue 14: connect and action build the flow configuration's models and read two services before
# their first answer; the other functions, one or two.
GOALS = {"connect": 1.6, "action": 1.6}


@dataclass(frozen=True)
class ColdFunction:
    name: str
    logical_id: str
    clients: tuple[str, ...]
    """The AWS services the function calls on its first request: what its floor creates."""
    libraries: tuple[str, ...]
    """The modules of the prescribed libraries it runs on (the `libraries` reference)."""


_COMMON = (
    "pydantic",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.utilities.parameters",
)
_HTTP = (*_COMMON, "aws_lambda_powertools.event_handler", "twilio.request_validator")
_TWIML = (*_HTTP, "twilio.twiml.voice_response")
_RELAY_CONNECT = (*_COMMON, "twilio.request_validator")

FUNCTIONS = (
    ColdFunction("connect", "ConnectFunction", ("secretsmanager", "ssm", "dynamodb"), _TWIML),
    ColdFunction("status", "StatusFunction", ("secretsmanager", "dynamodb"), _HTTP),
    ColdFunction("recording", "RecordingFunction", ("secretsmanager", "dynamodb", "sqs"), _HTTP),
    ColdFunction("action", "ActionFunction", ("secretsmanager", "ssm", "dynamodb"), _TWIML),
    ColdFunction("fallback", "FallbackFunction", ("secretsmanager",), _TWIML),
    ColdFunction(
        "archiver",
        "RecordingArchiverFunction",
        ("secretsmanager", "s3", "dynamodb"),
        (*_COMMON, "aws_lambda_powertools.utilities.batch"),
    ),
    # The relay agent's WebSocket routes (docs/relay-agent.md): a signed handshake, a setup frame
    # (no post to @connections), the close.
    ColdFunction("relay_connect", "RelayConnectFunction", ("secretsmanager", "dynamodb"), _RELAY_CONNECT),
    ColdFunction("relay_message", "RelayMessageFunction", ("ssm", "dynamodb"), _COMMON),
    ColdFunction("relay_disconnect", "RelayDisconnectFunction", ("dynamodb",), _COMMON),
)


class ColdStartError(RuntimeError):
    pass


@dataclass
class ChildRun:
    init_ms: float
    first_ms: float
    total_ms: float
    answer: Any = None
    clients: list[str] = field(default_factory=list)
    compile_ms: dict[str, float] = field(default_factory=dict)
    warm_ms: float = 0.0
    """`restore` mode: the same request served again, warm."""
    connections: int = 0
    requests: int = 0
    """Network-aware runs: connections opened and requests answered through the delay proxy."""


@dataclass
class ColdStartBench:
    runs: int = 7
    warmup_rounds: int = 1
    template: dict[str, Any] = field(default_factory=load_template)
    python: str = sys.executable
    progress: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self._stack = ExitStack()
        self.aws = EmbeddedAws(0, REGION)
        self.media = FakeMediaHost(auth_token=DEV_AUTH_TOKEN)
        self.xray: XRayDaemon | None = None
        self.resources: LocalResources | None = None
        self.workdir = Path(tempfile.gettempdir())  # replaced by a directory of its own on entering
        self.samples: dict[str, dict[str, list[ChildRun]]] = {
            f.name: {"function": [], "floor": [], "libraries": []} for f in FUNCTIONS
        }
        self.problems: list[str] = []
        self.imports: dict[str, list[ImportTime]] = {}
        self.breakdown: dict[str, dict[str, float]] = {}
        self.compile_ms: dict[str, dict[str, float]] = {}
        self.profile_dir = self.workdir
        self._counter = 0
        self.restored: dict[str, list[ChildRun]] = {f.name: [] for f in FUNCTIONS}
        self.networked: dict[str, list[ChildRun]] = {f.name: [] for f in FUNCTIONS}
        self.network_delays: tuple[float, float] | None = None
        """(handshake, round trip) in ms of the network-aware runs, once they ran."""

    # -- set-up ---------------------------------------------------------------------------------

    def __enter__(self) -> ColdStartBench:
        self.workdir = Path(tempfile.mkdtemp(prefix="voice-bench-cold-"))
        self._stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.profile_dir = self.workdir / "profiles"
        self.profile_dir.mkdir()
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        self.aws.start()
        self._stack.callback(self.aws.stop)
        self.resources = self.aws.provision(DEV_AUTH_TOKEN)
        self.media.start()
        self._stack.callback(self.media.stop)
        self.xray = XRayDaemon()
        self._stack.callback(self.xray.close)
        flows = self.template["Parameters"]["FlowConfigParameterName"]["Default"]
        document = (PROJECT_ROOT / "config" / "flows.example.json").read_text(encoding="utf-8")
        self.aws.client("ssm").put_parameter(Name=flows, Value=document, Type="String")

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def environment(self, function: ColdFunction) -> dict[str, str]:
        assert self.resources is not None
        assert self.xray is not None
        props = resources_of_type("AWS::Serverless::Function", self.template)[function.logical_id]
        memory = props.get("MemorySize", self.template["Globals"]["Function"]["MemorySize"])
        env = function_environment(self.template, self.resources, function.logical_id)
        env.update(
            lambda_environment(
                function_name=function.logical_id,
                task_root=str(PROJECT_ROOT / props["CodeUri"]),
                memory_mb=memory,
                xray_address=self.xray.address,
                endpoint_url=self.resources.endpoint_url,
                secret_arn=self.resources.secret_arn,
            )
        )
        if function.name == "archiver":
            env["RECORDING_MEDIA_ORIGINS"] = self.media.origin
        return env

    # -- one child --------------------------------------------------------------------------------

    def child(
        self,
        function: ColdFunction,
        mode: str,
        event: Mapping[str, Any] | None = None,
        *,
        extra_args: tuple[str, ...] = (),
        profile: Path | None = None,
        compile_cost: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> tuple[ChildRun, str]:
        """Run one fresh interpreter; returns what it measured and its stderr."""
        self._counter += 1
        spec_path = self.workdir / f"spec-{self._counter}.json"
        result_path = self.workdir / f"result-{self._counter}.json"
        props = resources_of_type("AWS::Serverless::Function", self.template)[function.logical_id]
        globals_ = self.template["Globals"]["Function"]
        spec = {
            "mode": mode,
            "app": str(PROJECT_ROOT / props["CodeUri"] / "app.py"),
            "event": event,
            "clients": list(function.clients),
            "libraries": list(function.libraries),
            "function_name": function.logical_id,
            "memory_mb": props.get("MemorySize", globals_["MemorySize"]),
            "timeout_s": props.get("Timeout", globals_["Timeout"]),
            "profile": str(profile) if profile else None,
            "compile_cost": compile_cost,
        }
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        completed = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [self.python, *extra_args, str(CHILD), str(spec_path), str(result_path)],
            env={**self.environment(function), **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        spec_path.unlink()
        if completed.returncode != 0 or not result_path.exists():
            tail = completed.stderr.strip().splitlines()[-5:]
            raise ColdStartError(f"{function.name} {mode}: exit {completed.returncode}: " + " | ".join(tail))
        result = json.loads(result_path.read_text(encoding="utf-8"))
        result_path.unlink()
        run = ChildRun(
            result["init_ms"],
            result["first_ms"],
            result["total_ms"],
            result.get("answer"),
            result.get("clients", []),
            result.get("compile_ms", {}),
            result.get("warm_ms", 0.0),
        )
        if mode == "function" and sorted(run.clients) != sorted(function.clients):
            problem = (
                f"{function.name}: created clients for {', '.join(run.clients) or 'nothing'}; "
                f"its floor creates {', '.join(function.clients)}"
            )
            if problem not in self.problems:
                self.problems.append(problem)
        return run, completed.stderr

    # -- one round: one typical call -------------------------------------------------------------

    def _expect_http(self, name: str, answer: Any, status: int) -> str:
        if not isinstance(answer, dict) or answer.get("statusCode") != status:
            shown = json.dumps(answer)[:300] if answer is not None else "nothing"
            raise ColdStartError(f"{name}: expected HTTP {status}, got {shown}")
        return answer_body(answer)

    def _queued_message(self) -> dict[str, Any]:
        assert self.resources is not None
        sqs = self.aws.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.resources.queue_urls["RecordingsQueue"],
            MaxNumberOfMessages=1,
            WaitTimeSeconds=2,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            raise ColdStartError("recording: the completed recording was not queued")
        return dict(messages[0])

    def _delete(self, message: Mapping[str, Any]) -> None:
        assert self.resources is not None
        self.aws.client("sqs").delete_message(
            QueueUrl=self.resources.queue_urls["RecordingsQueue"], ReceiptHandle=message["ReceiptHandle"]
        )

    def play_call(self, serve: Callable[[ColdFunction, Mapping[str, Any]], Any]) -> None:
        """One typical call, each function's first request served by `serve` (which returns the
        handler's answer): connect, status, recording, action, fallback, then the archiver with
        the message the recording route queued."""
        assert self.resources is not None
        call = TypicalCall(media_api_base=self.media.api_base)
        by_name = {function.name: function for function in FUNCTIONS}

        def first(name: str, event: Mapping[str, Any]) -> Any:
            return serve(by_name[name], event)

        call.answered(self._expect_http("connect", first("connect", call.connect_event()), 200))
        self._expect_http("status", first("status", call.status_event(1, "call-initiated")), 204)
        self._expect_http("recording", first("recording", call.recording_event("completed")), 204)
        self._expect_http("action", first("action", call.action_event()), 200)
        self._expect_http("fallback", first("fallback", call.fallback_event()), 200)
        message = self._queued_message()
        queue_arn = self.resources.queue_arn("RecordingsQueue")
        answer = first("archiver", archiver_event([message], queue_arn, REGION))
        if answer != {"batchItemFailures": []}:
            raise ColdStartError(f"archiver: expected no failed message, got {json.dumps(answer)[:300]}")
        self._delete(message)
        self._play_relay(first, call.identity.call_sid, call.session_id)

    def _play_relay(
        self, first: Callable[[str, Mapping[str, Any]], Any], call_sid: str, session_id: str
    ) -> None:
        """The relay routes for the call's session. Until EventsTable has DATA-MODEL.md's
        `ItemKey` sort key, their storage fails and they answer so (503 / 500); the cold start is
        the same code up to the first write."""
        table = resources_of_type("AWS::DynamoDB::Table", self.template)["EventsTable"]
        new_keys = any(key["AttributeName"] == "ItemKey" for key in table["KeySchema"])
        # One WebSocket connection per call: API Gateway never reuses a connection id, and the
        # connection item of an earlier round would refuse this one's $connect as a replay.
        connection = f"conn-{call_sid[-12:]}"
        answer = first("relay_connect", connect_event(session_id, connection_id=connection))
        self._expect_status("relay_connect", answer, 200 if new_keys else 503)
        frame = setup_frame(call_sid=call_sid)
        answer = first("relay_message", message_event(frame, connection_id=connection))
        self._expect_status("relay_message", answer, 200 if new_keys else 500)
        answer = first("relay_disconnect", disconnect_event(connection_id=connection))
        self._expect_status("relay_disconnect", answer, 200 if new_keys else 500)

    def _expect_status(self, name: str, answer: Any, status: int) -> None:
        if not isinstance(answer, dict) or answer.get("statusCode") != status:
            raise ColdStartError(f"{name}: expected status {status}, got {json.dumps(answer)[:300]}")

    def run(self) -> None:
        """The measured rounds: each function's run followed by its floor's."""
        for index in range(self.warmup_rounds + self.runs):
            counted = index >= self.warmup_rounds
            self.progress(f"cold start: round {index + 1}/{self.warmup_rounds + self.runs}")

            def serve(function: ColdFunction, event: Mapping[str, Any], counted: bool = counted) -> Any:
                run, _ = self.child(function, "function", event)
                floor, _ = self.child(function, "floor")
                libraries, _ = self.child(function, "libraries")
                if counted:
                    self.samples[function.name]["function"].append(run)
                    self.samples[function.name]["floor"].append(floor)
                    self.samples[function.name]["libraries"].append(libraries)
                return run.answer

            self.play_call(serve)

    def run_variants(self, rounds: int, handshake_ms: float, rtt_ms: float) -> None:
        """The network-aware runs (AWS behind the delay proxy) and the SnapStart restore runs
        (loopback), `rounds` typical calls each; not interleaved with the main rounds."""
        assert self.resources is not None
        upstream = urlsplit(self.resources.endpoint_url)
        proxy = DelayProxy((upstream.hostname or "127.0.0.1", upstream.port or 80), handshake_ms, rtt_ms)
        self.network_delays = (handshake_ms, rtt_ms)
        with proxy:
            for index in range(rounds):
                self.progress(f"cold start: network-aware round {index + 1}/{rounds}")

                def networked(function: ColdFunction, event: Mapping[str, Any]) -> Any:
                    before = proxy.stats.snapshot()
                    run, _ = self.child(function, "function", event, env={"AWS_ENDPOINT_URL": proxy.url})
                    after = proxy.stats.snapshot()
                    run.connections, run.requests = after[0] - before[0], after[1] - before[1]
                    self.networked[function.name].append(run)
                    return run.answer

                self.play_call(networked)
        for index in range(rounds):
            self.progress(f"cold start: after a SnapStart restore, round {index + 1}/{rounds}")

            def restored(function: ColdFunction, event: Mapping[str, Any]) -> Any:
                run, _ = self.child(function, "restore", event)
                self.restored[function.name].append(run)
                return run.answer

            self.play_call(restored)

    def analyse(self, calls: int = 3) -> None:
        """More calls, each function under `-X importtime` (the median of `calls` runs per module,
        one run being too noisy on a busy machine), then its compile-from-source cost."""
        runs: dict[str, list[list[ImportTime]]] = {function.name: [] for function in FUNCTIONS}
        for index in range(calls):
            self.progress(f"cold start: -X importtime and compile cost ({index + 1}/{calls})")

            def serve(function: ColdFunction, event: Mapping[str, Any], first: bool = index == 0) -> Any:
                run, stderr = self.child(
                    function, "function", event, extra_args=("-X", "importtime"), compile_cost=first
                )
                runs[function.name].append(parse_importtime(stderr))
                if first:
                    self.compile_ms[function.name] = run.compile_ms
                return run.answer

            self.play_call(serve)
        self.imports = {name: median_imports(found) for name, found in runs.items()}
        self.breakdown = {
            name: median_groups([import_breakdown(found) for found in found_runs])
            for name, found_runs in runs.items()
        }

    def profile(self, names: set[str]) -> dict[str, Path]:
        """One more call, the named functions under cProfile; returns where each profile is."""
        self.progress(f"cold start: profiling {', '.join(sorted(names))}")
        paths: dict[str, Path] = {}

        def serve(function: ColdFunction, event: Mapping[str, Any]) -> Any:
            profile = None
            if function.name in names:
                profile = self.profile_dir / f"cold-{function.name}.prof"
                paths[function.name] = profile
            run, _ = self.child(function, "function", event, profile=profile)
            return run.answer

        self.play_call(serve)
        return paths


def median_imports(runs: list[list[ImportTime]]) -> list[ImportTime]:
    """Per module, the median self and cumulative times over several `-X importtime` runs."""
    by_module: dict[str, list[ImportTime]] = {}
    for found in runs:
        for entry in found:
            by_module.setdefault(entry.module, []).append(entry)
    return [
        ImportTime(
            module,
            int(median([entry.self_us for entry in entries])),
            int(median([entry.cumulative_us for entry in entries])),
            entries[0].depth,
        )
        for module, entries in by_module.items()
    ]


def median_groups(runs: list[dict[str, float]]) -> dict[str, float]:
    groups = {group for found in runs for group in found}
    return {group: median([found.get(group, 0.0) for found in runs]) for group in groups}


def measures(bench: ColdStartBench) -> list[Measure]:
    result = []
    for function in FUNCTIONS:
        samples = bench.samples[function.name]
        result.append(
            Measure(
                name=function.name,
                samples=tuple(run.total_ms for run in samples["function"]),
                floor_samples=tuple(run.total_ms for run in samples["floor"]),
                goal=GOALS.get(function.name, GOAL),
            )
        )
    return result


SDK_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def library_measures(bench: ColdStartBench) -> list[Measure]:
    """Each function against the `libraries` reference (informative, no goal)."""
    return [
        Measure(
            name=function.name,
            samples=tuple(run.total_ms for run in bench.samples[function.name]["function"]),
            floor_samples=tuple(run.total_ms for run in bench.samples[function.name]["libraries"]),
        )
        for function in FUNCTIONS
    ]


def variant_tables(bench: ColdStartBench) -> list[Table]:
    """The network-aware and after-restore figures, when they ran."""
    tables = []
    loopback = {f.name: median([r.total_ms for r in bench.samples[f.name]["function"]]) for f in FUNCTIONS}
    rows = []
    for function in FUNCTIONS:
        runs = bench.networked[function.name]
        if not runs or not bench.samples[function.name]["function"]:
            continue
        total = median([run.total_ms for run in runs])
        rows.append(
            (
                function.name,
                format_value(total, "ms"),
                format_value(median([run.first_ms for run in runs]), "ms"),
                format_value(loopback[function.name], "ms"),
                format_value(total - loopback[function.name], "ms"),
                f"{median([run.connections for run in runs]):g}",
                f"{median([run.requests for run in runs]):g}",
                str(len(runs)),
            )
        )
    if rows:
        tables.append(
            Table(
                (
                    "function (network-aware)",
                    "median",
                    "first request",
                    "loopback median",
                    "added",
                    "connections",
                    "requests",
                    "runs",
                ),
                tuple(rows),
            )
        )
    rows = []
    for function in FUNCTIONS:
        runs = bench.restored[function.name]
        if not runs:
            continue
        restored = median([run.total_ms for run in runs])
        warm = median([run.warm_ms for run in runs])
        rows.append(
            (
                function.name,
                format_value(median([run.init_ms for run in runs]), "ms"),
                format_value(median([run.first_ms for run in runs]), "ms"),
                format_value(restored, "ms"),
                format_value(warm, "ms"),
                format_ratio(restored / warm if warm else float("nan")),
                format_value(loopback[function.name], "ms")
                if bench.samples[function.name]["function"]
                else "-",
                str(len(runs)),
            )
        )
    if rows:
        tables.append(
            Table(
                (
                    "function (after a SnapStart restore)",
                    "after-restore hook",
                    "first request",
                    "restore to answer",
                    "warm request",
                    "restored / warm",
                    "cold start (no SnapStart)",
                    "runs",
                ),
                tuple(rows),
            )
        )
    return tables


def section(bench: ColdStartBench, profiles: Mapping[str, Path] | None = None) -> Section:
    found = measures(bench)
    table = measure_table(found, "function", "floor (boto3 + clients)")
    against_libraries = {measure.name: measure for measure in library_measures(bench)}
    split_rows = []
    for function in FUNCTIONS:
        samples = bench.samples[function.name]
        libraries = against_libraries[function.name]
        split_rows.append(
            (
                function.name,
                format_value(median([r.init_ms for r in samples["function"]]), "ms"),
                format_value(median([r.first_ms for r in samples["function"]]), "ms"),
                format_value(median([r.init_ms for r in samples["floor"]]), "ms"),
                format_value(median([r.first_ms for r in samples["floor"]]), "ms"),
                format_value(libraries.floor, "ms"),
                format_ratio(libraries.ratio),
            )
        )
    split = Table(
        (
            "function",
            "import",
            "first request",
            "floor: import boto3",
            "floor: create clients",
            "libraries reference",
            "function / libraries",
        ),
        tuple(split_rows),
    )
    groups = [*IMPORT_GROUPS, OTHER]
    breakdown = Table(
        ("function", *groups, "total"),
        tuple(
            (
                name,
                *(format_value(found.get(group, 0.0), "ms") for group in groups),
                format_value(sum(value for group, value in found.items() if group != STARTUP), "ms"),
            )
            for name, found in bench.breakdown.items()
        ),
    )
    heavy_rows = []
    for name, entries in bench.imports.items():
        for entry in heaviest_imports(entries, 5):
            heavy_rows.append(
                (name, entry.module, f"{entry.self_us / 1000:.1f} ms", f"{entry.cumulative_us / 1000:.1f} ms")
            )
    heavy = Table(
        ("function", "module (five heaviest, by own time)", "self", "cumulative"), tuple(heavy_rows)
    )
    compile_rows = []
    for name, costs in bench.compile_ms.items():
        total = sum(costs.values())
        sdk = sum(value for package, value in costs.items() if package in IMPORT_GROUPS["AWS SDK"])
        ours = sum(value for package, value in costs.items() if package in IMPORT_GROUPS["ours"])
        others = sorted(
            ((value, package) for package, value in costs.items() if package not in IMPORT_GROUPS["AWS SDK"]),
            reverse=True,
        )[:3]
        compile_rows.append(
            (
                name,
                format_value(total, "ms"),
                format_value(sdk, "ms"),
                format_value(ours, "ms"),
                ", ".join(f"{package} {value:.0f} ms" for value, package in others),
            )
        )
    compiled = Table(
        ("function", "compile from source", "of which the AWS SDK", "of which ours", "largest others"),
        tuple(compile_rows),
    )
    section = Section(
        title="Cold start per function",
        intro=(
            "A fresh interpreter imports the handler module (by path, as Lambda does) and serves its first "
            "request: AWS on a moto server on loopback, Lambda's environment (tracing active, segments sent "
            "to a local UDP socket). Floor: a fresh interpreter that imports boto3 and creates one client "
            "per AWS service the function calls. Libraries reference (informative): the floor plus the "
            "libraries the design prescribes (Powertools with its tracer patching botocore, pydantic, "
            f"twilio) imported and set up, none of our code. Median of {bench.runs} runs each, one typical "
            "call per run, "
            "the three interleaved; times measured inside the process (the interpreter's own start, the "
            "same for all, left out)."
        ),
        tables=[table, split, breakdown, heavy, compiled],
        notes=[
            *bench.problems,
            "Import time by package: the `-X importtime` self times (median of 3 runs), a standard-library "
            "module counted with the package that imported it; `ours` includes building our pydantic models.",
            "Compile from source: what each cold start adds on Lambda when the layer ships no `.pyc` "
            "(`sam build` writes none, and /opt is read-only, so nothing compiled is kept). Measured by "
            "compiling every non-standard-library module the function imported.",
        ],
    )
    section.tables.extend(variant_tables(bench))
    if bench.network_delays is not None:
        handshake, rtt = bench.network_delays
        section.notes.append(
            f"Network-aware: the same cold start with every AWS request through a loopback proxy that delays "
            f"each new connection {handshake:g} ms (a handshake) and each answer {rtt:g} ms (a round trip), "
            "an "
            "approximation of one AWS region (voicedev/bench/netdelay.py); `added` is against the loopback "
            "median above. After a SnapStart restore: the module imported and the before-snapshot hook run "
            "untimed (Lambda does it once per version, at deployment), then the after-restore hook and the "
            "first request, against the same request served again in the same process (warm, over loopback)."
        )
    for name, path in (profiles or {}).items():
        section.blocks.append(
            (
                f"cProfile of the `{name}` cold start (import + first request; cProfile slows every call, "
                "so only the shares count): our code's functions and modules by cumulative time, what "
                "they call included:",
                top_entries(path, 16, root=str(PROJECT_ROOT), ours_only=True),
            )
        )
    return section
