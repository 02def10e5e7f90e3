"""Warm request cost per route: the handlers invoked in-process, every AWS call answered by
botocore's Stubber, against a floor written inline (see voicedev.bench.warm_child, which does the
measuring in its own interpreter). Run twice: with tracing as deployed (`Tracing: Active`, the
X-Ray SDK recording a subsegment per AWS call) and with tracing off."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicedev.bench.environment import REGION, XRayDaemon, function_environment, lambda_environment
from voicedev.bench.profiling import own_time_by_package, top_entries
from voicedev.bench.report import Section, Table, measure_table
from voicedev.bench.stats import Measure, format_ratio, format_value, median, percentile
from voicedev.local_aws import ACCOUNT_ID, LocalResources
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type

GOAL = 2.0
ROUTES = ("connect", "status", "recording", "action", "fallback")
FUNCTIONS = {
    "connect": "ConnectFunction",
    "status": "StatusFunction",
    "recording": "RecordingFunction",
    "action": "ActionFunction",
    "fallback": "FallbackFunction",
}


class WarmError(RuntimeError):
    pass


@dataclass
class RouteResult:
    handler_ms: list[float]
    floor_ms: list[float]
    aws_calls: list[str]
    same_twiml: bool


@dataclass
class WarmRun:
    tracing: bool
    routes: dict[str, RouteResult] = field(default_factory=dict)
    segments: int = 0


def stack_resources(template: Mapping[str, Any]) -> LocalResources:
    """Names of the resources as moto in process creates them (the child sets the secret ARN and
    the queue URL it gets)."""
    queues = resources_of_type("AWS::SQS::Queue", dict(template))
    buckets = resources_of_type("AWS::S3::Bucket", dict(template))
    return LocalResources(
        endpoint_url="",
        region=REGION,
        tables={name: name for name in resources_of_type("AWS::DynamoDB::Table", dict(template))},
        queue_urls={name: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}" for name in queues},
        bucket_names={name: name.lower() for name in buckets},
        secret_arn="",
    )


def environment(template: Mapping[str, Any], xray_address: str, *, tracing: bool) -> dict[str, str]:
    """The five HTTP functions share this process: the union of their variables (they agree)."""
    resources = stack_resources(template)
    env: dict[str, str] = {}
    for logical_id in FUNCTIONS.values():
        for name, value in function_environment(template, resources, logical_id).items():
            if env.get(name, value) != value:
                raise WarmError(f"{name} differs between functions; they cannot share one process")
            env[name] = value
    env.update(
        lambda_environment(
            function_name="bench",
            task_root=str(PROJECT_ROOT / "functions"),
            memory_mb=template["Globals"]["Function"]["MemorySize"],
            xray_address=xray_address,
            endpoint_url=None,
            secret_arn=None,
        )
    )
    # moto runs in the child's process: no endpoint (the template's LocalAwsEndpoint is empty).
    if not env.get("AWS_ENDPOINT_URL"):
        env.pop("AWS_ENDPOINT_URL", None)
    # The cached token and flow config must outlive the run (Stubber answers nothing else).
    env["PARAMETERS_MAX_AGE"] = "3600"
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def run_child(
    *,
    tracing: bool,
    iterations: int,
    warmup: int,
    template: Mapping[str, Any] | None = None,
    profile_dir: Path | None = None,
    python: str = sys.executable,
) -> WarmRun:
    template = template or load_template()
    daemon = XRayDaemon()
    try:
        with tempfile.TemporaryDirectory(prefix="voice-bench-warm-") as workdir:
            spec_path = Path(workdir) / "spec.json"
            result_path = Path(workdir) / "result.json"
            spec = {
                "iterations": iterations,
                "warmup": warmup,
                "flow_parameter": template["Parameters"]["FlowConfigParameterName"]["Default"],
                "profile_dir": str(profile_dir) if profile_dir else None,
            }
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            completed = subprocess.run(  # noqa: S603 - this interpreter, our own module
                [python, "-m", "voicedev.bench.warm_child", str(spec_path), str(result_path)],
                env=environment(template, daemon.address, tracing=tracing),
                stdout=subprocess.DEVNULL,  # the handlers' logs and metrics, as Lambda would take them
                stderr=subprocess.PIPE,
                text=True,
                timeout=600,
                check=False,
            )
            if completed.returncode != 0 or not result_path.exists():
                tail = " | ".join(completed.stderr.strip().splitlines()[-8:])
                raise WarmError(f"warm benchmark (tracing {'on' if tracing else 'off'}) failed: {tail}")
            data = json.loads(result_path.read_text(encoding="utf-8"))
    finally:
        daemon.close()
    run = WarmRun(tracing=tracing, segments=daemon.segments)
    for name, values in data.items():
        run.routes[name] = RouteResult(
            values["handler_ms"], values["floor_ms"], values["aws_calls"], values["same_twiml"]
        )
    return run


def measures(run: WarmRun) -> list[Measure]:
    return [
        Measure(
            name=name,
            samples=tuple(run.routes[name].handler_ms),
            floor_samples=tuple(run.routes[name].floor_ms),
            goal=GOAL,
        )
        for name in ROUTES
        if name in run.routes
    ]


def section(traced: WarmRun, untraced: WarmRun | None, profiles: Mapping[str, Path] | None = None) -> Section:
    found = measures(traced)
    table = measure_table(found, "route", "floor (inline)")
    rows = []
    for name in ROUTES:
        if name not in traced.routes:
            continue
        route = traced.routes[name]
        off = untraced.routes.get(name) if untraced is not None else None
        rows.append(
            (
                name,
                format_value(percentile(route.handler_ms, 0.9), "ms"),
                format_value(median(off.handler_ms), "ms") if off else "n/a",
                format_ratio(median(off.handler_ms) / median(off.floor_ms) if off else float("nan")),
                ", ".join(route.aws_calls) or "none (token cached)",
            )
        )
    detail = Table(
        ("route", "p90", "tracing off: median", "tracing off: ratio", "AWS calls (stubbed)"), tuple(rows)
    )
    notes = []
    for name, route in traced.routes.items():
        if not route.same_twiml:
            notes.append(
                f"{name}: the floor's TwiML differs from the handler's (it is rebuilt element by element)"
            )
    notes.append(f"X-Ray segments received from the traced run: {traced.segments}.")
    section = Section(
        title="Warm request per route",
        intro=(
            "The handler invoked in process with every AWS call answered by botocore's Stubber (the "
            "requests and answers recorded from the same route under moto), tracing as deployed. "
            "Floor, inline in the benchmark: decode the body, `RequestValidator.validate`, the same AWS "
            "requests on plain stubbed clients, and for TwiML routes the same TwiML rendered with "
            f"twilio-python. {found[0].runs if found else 0} requests per route, alternating handler and "
            "floor; medians."
        ),
        tables=[table, detail],
        notes=notes,
    )
    for name, path in (profiles or {}).items():
        requests = profiled_requests(path)
        shares = own_time_by_package(path, root=str(PROJECT_ROOT), divide_by=requests)
        by_package = ", ".join(f"{package} {value:.3f}" for package, value in list(shares.items())[:8])
        section.blocks.append(
            (
                f"cProfile of the `{name}` handler, warm ({requests} requests, ms per request; cProfile "
                f"slows every call, so only the shares count). Own time by package: {by_package}. Top "
                "entries by own time:",
                top_entries(path, 15, root=str(PROJECT_ROOT), by="own", divide_by=requests),
            )
        )
    return section


def profiled_requests(path: Path) -> int:
    """How many handler calls a warm profile holds (its `lambda_handler` entry's call count)."""
    import io
    import pstats

    stats = pstats.Stats(str(path), stream=io.StringIO())
    counts = [
        calls
        for (filename, _, name), (_, calls, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
        if name == "lambda_handler" and filename.endswith(("app.py", "handler.py"))
    ]
    return max(counts, default=1)
