"""`make cost`: what the stack costs in AWS per 1,000 calls, from figures measured by running the real
handlers, and the public prices in `PRICES` (the one place they are written).

Measuring (`measure()`): in this process, under moto's in-process AWS (`mock_aws`), with the
template's table, queues and bucket, the Twilio emulator plays a typical call (`TYPICAL`) against
the real handlers, invoked directly with the payload v2 events API Gateway would send (no HTTP, so
the durations are the handlers' own). Each completed recording is then archived by the real
archiver from a loopback media host. Recorded per call: API requests, invocations and their
durations per function, DynamoDB request units (from the item sizes the calls left), SQS and S3
requests, log bytes. The first invocation of each function (imports, clients, secret) is measured
apart as the cold start.

The relay agent (`measure_relay()`) has a section of its own, per minute of conversation: its three
handlers run in process under moto for whole conversations of the scripted agent, counting per turn
the frames posted, the DynamoDB units and the AWS requests, and each invocation's own time.

Estimating (`estimate()`): those figures times `PRICES`, with the `ASSUMPTIONS` stated next to
them. `--write` replaces the generated section of docs/cost.md (figures as JSON, then the tables);
a unit test recomputes the tables from that JSON, so a price changed here without `make cost`
fails the suite."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from voicedev.bench.stats import spread
from voicedev.scoped_environment import scoped_environment
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type

# Public list prices, us-east-1, Lambda on arm64, without the free tier. Written from AWS's pricing
# pages as known in June 2025 (the machine that wrote this has no internet): check
# https://aws.amazon.com/pricing/ before relying on them, change them here, and run `make cost`.
PRICES: dict[str, Any] = {
    "region": "us-east-1",
    "as_of": "2025-06",
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_per_request": 0.20 / 1e6,
    "http_api_per_request": 1.00 / 1e6,  # first 300 million a month, per 512 KB
    "dynamodb_per_write_request_unit": 0.625 / 1e6,  # on-demand (since November 2024)
    "dynamodb_per_read_request_unit": 0.125 / 1e6,
    "dynamodb_storage_gb_month": 0.25,
    "sqs_per_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "s3_per_put_request": 0.005 / 1000,  # PUT, COPY, POST, LIST (and multipart parts)
    "s3_per_get_request": 0.0004 / 1000,  # GET, HEAD
    "s3_standard_gb_month": 0.023,
    "s3_glacier_ir_gb_month": 0.004,
    "s3_glacier_ir_per_transition": 0.02 / 1000,
    "logs_ingestion_gb": 0.50,
    "logs_storage_gb_month": 0.03,
    "xray_per_trace": 5.00 / 1e6,
    "websocket_per_message": 1.00 / 1e6,  # first billion a month, sent or received, per 32 KB
    "websocket_per_connection_minute": 0.25 / 1e6,
    "secret_month": 0.40,
    "alarm_metric_month": 0.10,  # standard resolution; a metric-math alarm pays per metric
    "custom_metric_month": 0.30,  # first 10,000 metrics
}

ASSUMPTIONS: dict[str, Any] = {
    # Share of invocations that start a new execution environment. Lambda bills the INIT phase
    # (since August 2025). Low, steady traffic keeps few environments warm; bursts add more.
    "cold_start_share": 0.05,
    # Lambda writes START, END and REPORT lines for every invocation.
    "platform_log_bytes_per_invocation": 420,
    # Tracing: Active samples the first request each second and 5% after: at a few calls a minute
    # nearly every invocation is a trace. Each Lambda invocation is its own trace (HTTP APIs do not
    # trace), so traces = invocations.
    "xray_sampled_share": 1.0,
    # The media fetch from Twilio is not on loopback in AWS: latency plus transfer at this rate.
    "media_latency_ms": 150,
    "media_megabytes_per_second": 25,
    # Lambda's SQS event source polls with 5 long-polling pollers even when idle (20 s waits).
    "idle_poll_requests_month": 5 * 3 * 60 * 24 * 30,
}

TYPICAL = "worker-answers"
TYPICAL_TALK_SECONDS = 300
TYPICAL_DESCRIPTION = (
    "an inbound call to the Frontline (`<Conversation>`) number; a worker answers after 6 s of "
    "ringing; they talk 5 minutes; the worker hangs up; the dual-channel recording (from answer) "
    "completes and is archived as WAV. Status callbacks: call-initiated, call-ringing, "
    "call-answered, call-completed; recording callbacks: in-progress, completed"
)
API_DOMAIN = "abc123example.execute-api.us-east-1.amazonaws.com"
DOC = PROJECT_ROOT / "docs" / "cost.md"
BEGIN = "<!-- cost:generated:begin (make cost) -->"
END = "<!-- cost:generated:end -->"
WAV_BYTES_PER_CHANNEL_SECOND = 16_000  # 8 kHz, 16-bit PCM


# --- figures ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FunctionFigures:
    invocations_per_call: float
    median_ms: float
    p90_ms: float
    memory_mb: int
    cold_ms: float
    """Import time (INIT) plus the first invocation's extra time, measured in a fresh process."""


@dataclasses.dataclass
class Measured:
    how: str
    calls: int
    functions: dict[str, FunctionFigures]
    api_requests_per_call: float
    dynamodb_write_units_per_call: float
    dynamodb_read_units_per_call: float
    dynamodb_bytes_per_call: float
    sqs_requests_per_call: float
    s3_put_requests_per_call: float
    s3_get_requests_per_call: float
    recording_bytes_per_call: float
    log_bytes_per_call: float
    custom_metric_names: list[str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Measured:
        data = json.loads(text)
        data["functions"] = {name: FunctionFigures(**value) for name, value in data["functions"].items()}
        return cls(**data)


# --- the model ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Line:
    service: str
    what: str
    usd_per_1000_calls: float
    later: bool = False
    """Paid after the first month (per month the recordings are kept), not with the call."""


def fixed_monthly(measured: Measured, template: Mapping[str, Any] | None = None) -> list[Line]:
    """Costs that do not grow with calls (per month)."""
    template = template or load_template()
    alarm_metrics = 0
    for alarm in resources_of_type("AWS::CloudWatch::Alarm", dict(template)).values():
        alarm_metrics += (
            sum(1 for query in alarm["Metrics"] if "MetricStat" in query) if "Metrics" in alarm else 1
        )
    metrics = len(measured.custom_metric_names)
    polls = ASSUMPTIONS["idle_poll_requests_month"]
    return [
        Line(
            "CloudWatch",
            f"{alarm_metrics} alarm metrics (the template's alarms)",
            alarm_metrics * PRICES["alarm_metric_month"],
        ),
        Line(
            "CloudWatch",
            f"{metrics} custom metrics (EMF) emitted by the typical call",
            metrics * PRICES["custom_metric_month"],
        ),
        Line("Secrets Manager", "the auth token secret", PRICES["secret_month"]),
        Line(
            "SQS",
            f"{polls:,} idle long polls by the archiver's event source",
            polls * PRICES["sqs_per_request"],
        ),
    ]


def per_1000_calls(measured: Measured, retention_days: int = 90, log_retention_days: int = 30) -> list[Line]:
    calls = 1000
    lines: list[Line] = []
    invocations = sum(f.invocations_per_call for f in measured.functions.values())
    share = ASSUMPTIONS["cold_start_share"]
    warm_gb_s = cold_gb_s = 0.0
    for figures in measured.functions.values():
        gb = figures.memory_mb / 1024
        billed_ms = math.ceil(figures.median_ms)
        warm_gb_s += figures.invocations_per_call * billed_ms / 1000 * gb
        cold_gb_s += figures.invocations_per_call * share * figures.cold_ms / 1000 * gb
    lines.append(
        Line(
            "Lambda",
            f"{invocations:g} invocations per call",
            calls * invocations * PRICES["lambda_per_request"],
        )
    )
    lines.append(
        Line(
            "Lambda",
            f"{warm_gb_s * 1000:.1f} GB-s per 1,000 calls (median durations)",
            calls * warm_gb_s * PRICES["lambda_gb_second_arm64"],
        )
    )
    lines.append(
        Line(
            "Lambda",
            f"cold starts: {share:.0%} of invocations, {cold_gb_s * 1000:.1f} GB-s",
            calls * cold_gb_s * PRICES["lambda_gb_second_arm64"],
        )
    )
    lines.append(
        Line(
            "API Gateway (HTTP API)",
            f"{measured.api_requests_per_call:g} requests per call",
            calls * measured.api_requests_per_call * PRICES["http_api_per_request"],
        )
    )
    lines.append(
        Line(
            "DynamoDB (on-demand)",
            f"write request units per call: {measured.dynamodb_write_units_per_call:g} (index included)",
            calls * measured.dynamodb_write_units_per_call * PRICES["dynamodb_per_write_request_unit"],
        )
    )
    lines.append(
        Line(
            "DynamoDB (on-demand)",
            f"read request units per call: {measured.dynamodb_read_units_per_call:g}",
            calls * measured.dynamodb_read_units_per_call * PRICES["dynamodb_per_read_request_unit"],
        )
    )
    # The ByCallSid index holds a few hundred bytes per session: negligible next to the table.
    stored_gb = calls * measured.dynamodb_bytes_per_call / 1e9
    lines.append(
        Line(
            "DynamoDB (on-demand)",
            f"storage for the {retention_days}-day TTL "
            f"({measured.dynamodb_bytes_per_call / 1000:.1f} KB per call)",
            stored_gb * PRICES["dynamodb_storage_gb_month"] * retention_days / 30,
        )
    )
    lines.append(
        Line(
            "SQS",
            f"{measured.sqs_requests_per_call:g} requests per call (send, receive, delete)",
            calls * measured.sqs_requests_per_call * PRICES["sqs_per_request"],
        )
    )
    s3_requests = (
        calls * measured.s3_put_requests_per_call * PRICES["s3_per_put_request"]
        + calls * measured.s3_get_requests_per_call * PRICES["s3_per_get_request"]
    )
    lines.append(
        Line(
            "S3",
            f"{measured.s3_put_requests_per_call:g} PUT + "
            f"{measured.s3_get_requests_per_call:g} HEAD per call",
            s3_requests,
        )
    )
    recording_gb = calls * measured.recording_bytes_per_call / 1e9
    lines.append(
        Line(
            "S3",
            f"first month of storage, Standard ({measured.recording_bytes_per_call / 1e6:.1f} MB per call)",
            recording_gb * PRICES["s3_standard_gb_month"],
        )
    )
    lines.append(
        Line(
            "S3",
            "moving them to Glacier Instant Retrieval at day 30 (once per object)",
            calls * PRICES["s3_glacier_ir_per_transition"],
            later=True,
        )
    )
    lines.append(
        Line(
            "S3",
            "each month they are kept after that, in Glacier Instant Retrieval",
            recording_gb * PRICES["s3_glacier_ir_gb_month"],
            later=True,
        )
    )
    log_gb = (
        calls
        * (measured.log_bytes_per_call + invocations * ASSUMPTIONS["platform_log_bytes_per_invocation"])
        / 1e9
    )
    lines.append(
        Line(
            "CloudWatch Logs",
            f"{log_gb * 1e6 / calls:.1f} KB per call, ingested and kept {log_retention_days} days",
            log_gb
            * (PRICES["logs_ingestion_gb"] + PRICES["logs_storage_gb_month"] * log_retention_days / 30),
        )
    )
    traces = invocations * ASSUMPTIONS["xray_sampled_share"]
    lines.append(
        Line(
            "X-Ray",
            f"{traces:g} traces per call (Tracing: Active)",
            calls * traces * PRICES["xray_per_trace"],
        )
    )
    return lines


def _money(value: float) -> str:
    """Two decimals from $1, else two significant digits ($0.0072, $0.00012)."""
    if value == 0:
        return "$0"
    decimals = 2 if value >= 1 else 1 - math.floor(math.log10(value))
    return f"${value:.{decimals}f}"


def render(measured: Measured) -> str:
    template = load_template()
    globals_ = template["Globals"]["Function"]
    parameters = template["Parameters"]
    lines = per_1000_calls(
        measured,
        int(parameters["EventRetentionDays"]["Default"]),
        int(parameters["LogRetentionDays"]["Default"]),
    )
    fixed = fixed_monthly(measured, template)
    m = measured
    first_month = sum(line.usd_per_1000_calls for line in lines if not line.later)
    monthly = [line for line in lines if line.later and "each month" in line.what]
    kept_month = sum(line.usd_per_1000_calls for line in monthly)
    out = [
        f"Prices: {PRICES['region']}, arm64, list prices as of {PRICES['as_of']} (`PRICES` in "
        "`devtools/voicedev/cost.py`), free tier not deducted.",
        "",
        f"Measured: {measured.how}",
        "",
        "### Per call",
        "",
        "| function | invocations per call | median | p90 | memory | cold start (INIT + first call) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, figures in sorted(measured.functions.items()):
        out.append(
            f"| {name} | {figures.invocations_per_call:g} | {figures.median_ms:.1f} ms "
            f"| {figures.p90_ms:.1f} ms | {figures.memory_mb} MB | {figures.cold_ms:.0f} ms |"
        )
    out += [
        "",
        f"API requests per call: {m.api_requests_per_call:g}; DynamoDB request units: "
        f"{m.dynamodb_write_units_per_call:g} write, {m.dynamodb_read_units_per_call:g} read; "
        f"SQS: {m.sqs_requests_per_call:g} requests; S3: {m.s3_put_requests_per_call:g} PUT and "
        f"{m.s3_get_requests_per_call:g} HEAD; recording {m.recording_bytes_per_call / 1e6:.1f} MB; "
        f"function logs {m.log_bytes_per_call / 1000:.1f} KB (Globals: {globals_['MemorySize']} MB, "
        f"Timeout {globals_['Timeout']} s).",
        "",
        "### Per 1,000 calls",
        "",
        "| service | what | USD per 1,000 calls |",
        "| --- | --- | --- |",
        *(
            f"| {line.service} | {line.what} | {_money(line.usd_per_1000_calls)} |"
            for line in lines
            if not line.later
        ),
        f"| **total** | **the calls and their first month** | **{_money(first_month)}** |",
        *(
            f"| {line.service} | {line.what} | {_money(line.usd_per_1000_calls)} |"
            for line in lines
            if line.later
        ),
        f"| **then** | **per month the recordings are kept** | **{_money(kept_month)}** |",
        "",
        "### Fixed, per month",
        "",
        "| service | what | USD per month |",
        "| --- | --- | --- |",
        *(f"| {line.service} | {line.what} | {_money(line.usd_per_1000_calls)} |" for line in fixed),
        f"| **total** | | **{_money(sum(line.usd_per_1000_calls for line in fixed))}** |",
    ]
    return "\n".join(out)


# docs/cost.md has one generated section per measurement (per call, the reconciler, the relay), each
# between its own markers: the figures as JSON (what --from-doc reads back), then the tables they give.


def _section(begin: str, end: str, figures_json: str, tables: str) -> str:
    return "\n".join([begin, "", "```json", figures_json, "```", "", tables, "", end])


def _section_json(text: str, begin: str, end: str) -> str:
    section = text.split(begin, 1)[1].split(end, 1)[0]
    return section.split("```json", 1)[1].split("```", 1)[0]


def _replace_section(path: Path, begin: str, end: str, section: str) -> None:
    text = path.read_text(encoding="utf-8")
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    path.write_text(before + section + after, encoding="utf-8")


def generated_section(measured: Measured) -> str:
    return _section(BEGIN, END, measured.to_json(), render(measured))


def measured_from_doc(text: str) -> Measured:
    return Measured.from_json(_section_json(text, BEGIN, END))


def write_doc(measured: Measured, path: Path = DOC) -> None:
    _replace_section(path, BEGIN, END, generated_section(measured))


# --- measuring ------------------------------------------------------------------------------------------

_TABLE_KEYS = ("SessionId", "ItemKey")


def _index_attributes() -> dict[str, tuple[str, ...]]:
    """Each index of EventsTable: its keys, the table's keys and its projection (docs/data-model.md:
    both indexes hold session items only)."""
    indexes = resources_of_type("AWS::DynamoDB::Table")["EventsTable"]["GlobalSecondaryIndexes"]
    return {
        index["IndexName"]: (
            *(key["AttributeName"] for key in index["KeySchema"]),
            *_TABLE_KEYS,
            *index["Projection"].get("NonKeyAttributes", ()),
        )
        for index in indexes
    }


def _writes_index(operation: str, params: dict[str, Any]) -> int:
    """How many indexes a write of a session item also writes (DynamoDB skips an index when an
    update changes none of its attributes). Other items are in no index: the caller checks."""
    indexes = _index_attributes()
    if operation != "UpdateItem":
        return len(indexes)
    expression = str(params.get("UpdateExpression", ""))
    names = {str(value) for value in (params.get("ExpressionAttributeNames") or {}).values()}
    return sum(
        any(name in names or re.search(rf"\b{name}\b", expression) for name in attributes)
        for attributes in indexes.values()
    )


def _item_bytes(value: Any) -> int:
    """DynamoDB's item size rules, approximately: names + values, numbers ~ digits / 2 + 1."""
    if isinstance(value, Mapping):
        return 3 + sum(len(str(name).encode()) + _item_bytes(item) for name, item in value.items())
    if isinstance(value, (list, tuple, set)):
        return 3 + sum(1 + _item_bytes(item) for item in value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float, Decimal)):
        return len(str(value)) // 2 + 1
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode())


def _cold_ms(function_dir: Path, env: Mapping[str, str], repeats: int = 3) -> float:
    """Median import time of a handler module in a fresh interpreter (Lambda's INIT)."""
    code = (
        "import importlib.util, time, sys\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(function_dir / 'app.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    samples = []
    for _ in range(repeats):
        result = subprocess.run(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", code], env=dict(env), capture_output=True, text=True, check=True
        )
        samples.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "cost",
    "AWS_SECRET_ACCESS_KEY": "cost",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # As template.yaml's Globals. Powertools reads them when the package is first imported.
    "POWERTOOLS_SERVICE_NAME": "twilio-voice-webhooks",
    "POWERTOOLS_METRICS_NAMESPACE": "TwilioVoiceWebhooks",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "1",
}


@contextlib.contextmanager
def _handlers_in_process(handler_env: Mapping[str, str], stdout: io.StringIO) -> Iterator[None]:
    """The handlers' environment for the block, their caches fresh at both ends (clients made for
    moto, settings read from `handler_env`), and all they print, Powertools' log lines included, in
    `stdout` (what the log bytes are counted from)."""
    from voice_webhooks.runtime.observability import logger

    from voicedev.handler_caches import reset_handler_caches

    with scoped_environment(handler_env), contextlib.redirect_stdout(stdout):
        reset_handler_caches()
        # The logger's handler holds the sys.stdout of its first import: redirect_stdout misses it.
        handler_stream = logger.registered_handler.stream  # type: ignore[attr-defined]
        logger.registered_handler.stream = stdout  # type: ignore[attr-defined]
        try:
            yield
        finally:
            logger.registered_handler.stream = handler_stream  # type: ignore[attr-defined]
            reset_handler_caches()


def measure(calls: int = 30) -> Measured:
    """Play `calls` typical calls in process under moto and measure them (see the module doc)."""
    with scoped_environment(BASE_ENV):
        return _measure(calls)


def _measure(calls: int) -> Measured:
    import boto3
    from moto import mock_aws

    from voicedev.emulator.client import Response, TwilioClient
    from voicedev.emulator.engine import EmulatorConfig, run_call
    from voicedev.emulator.scenarios import get
    from voicedev.local_api import (
        FunctionLoader,
        IncomingRequest,
        LocalLambdaContext,
        build_event,
        function_spec,
        http_response,
        template_routes,
    )
    from voicedev.local_archiver import FakeMediaHost, sqs_event
    from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

    template = load_template()
    globals_ = template["Globals"]["Function"]
    functions = resources_of_type("AWS::Serverless::Function", template)
    routes = {route.path: route for route in template_routes(template)}
    archiver_spec = function_spec(template, "RecordingArchiverFunction")
    base_env = {**BASE_ENV, "PATH": os.environ.get("PATH", "")}
    durations: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    operations: list[tuple[str, str, dict[str, Any]]] = []
    log_bytes = 0
    metric_names: set[str] = set()

    def record_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        # `params` is the HTTP request; DynamoDB's body is the JSON of the call (wire format).
        service = model.service_model.service_name
        body = json.loads(params.get("body") or b"{}") if service == "dynamodb" else {}
        operations.append((service, model.name, body))

    stdout = io.StringIO()

    def timed(name: str, call: Any) -> Any:
        nonlocal log_bytes
        start = len(stdout.getvalue())
        started = time.perf_counter()
        result = call()
        elapsed = (time.perf_counter() - started) * 1000
        output = stdout.getvalue()[start:]
        log_bytes += len(output.encode())
        for line in output.splitlines():
            if line.startswith("{") and '"_aws"' in line:
                document = json.loads(line)
                metric_names.update(m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"])
        if name in first:
            durations.setdefault(name, []).append(elapsed)
        else:
            first[name] = elapsed
        return result

    loader = FunctionLoader()

    class InProcessTwilio(TwilioClient):
        """The emulator's Twilio, delivering each request to its handler as API Gateway would."""

        def _exchange(self, method: str, url: str, body: str, headers: dict[str, str]) -> Response:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            route = routes[parts.path]
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            request = IncomingRequest(
                method, target, [("Host", parts.netloc), *headers.items()], body.encode("ascii")
            )
            event = build_event(request, route.route_key)
            spec = route.function
            context = LocalLambdaContext(spec.name, spec.memory_mb, spec.timeout_seconds)
            handler = loader.load(spec)
            answer = http_response(timed(spec.name, lambda: handler(event, context)))
            return Response(
                answer.status, {k.lower(): v for k, v in answer.headers}, answer.text, latency_ms=0.0
            )

    scenario = get(TYPICAL)
    assert scenario.conversation is not None
    scenario = dataclasses.replace(
        scenario, conversation=dataclasses.replace(scenario.conversation, talk_seconds=TYPICAL_TALK_SECONDS)
    )
    api_requests = 0
    recording_bytes = 0
    with mock_aws(), FakeMediaHost(auth_token=DEV_AUTH_TOKEN) as media:
        from voicedev import template_resources

        boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        sqs = session.client("sqs")
        table = template_resources.create_table(session.client("dynamodb"))
        queues = template_resources.create_queues(sqs)
        bucket = template_resources.create_buckets(session.client("s3"))["RecordingsBucket"]
        secret = session.client("secretsmanager").create_secret(Name="cost", SecretString=DEV_AUTH_TOKEN)
        queue_arn = sqs.get_queue_attributes(QueueUrl=queues["RecordingsQueue"], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        handler_env = {
            "TWILIO_AUTH_TOKEN_SECRET": secret["ARN"],
            "ALLOWED_ACCOUNT_SIDS": DEV_ACCOUNT_SID,
            "EVENTS_TABLE_NAME": table,
            "RECORDINGS_QUEUE_URL": queues["RecordingsQueue"],
            "RECORDINGS_BUCKET_NAME": bucket,
            "RECORDING_MEDIA_ORIGINS": media.origin,
            "FLOW_CONFIG": str(PROJECT_ROOT / "config" / "flows.example.json"),
            "EVENT_TTL_DAYS": str(template["Parameters"]["EventRetentionDays"]["Default"]),
        }
        with _handlers_in_process(handler_env, stdout):
            session.events.register("before-call", record_call)
            try:
                config = EmulatorConfig(
                    base_url=f"https://{API_DOMAIN}", timeout=10, media_api_base=media.api_base
                )
                client = InProcessTwilio(DEV_AUTH_TOKEN)
                archiver = loader.load(archiver_spec)
                for _ in range(calls):
                    result = run_call(config, scenario, client, seed=1)
                    if not result.ok:
                        raise RuntimeError(f"the typical call failed: {result.problems}")
                    api_requests += len(result.exchanges)
                    for made in result.recordings:
                        if made.final_status == "completed":
                            channels = int(made.channels)
                            media.sizes[made.recording_sid] = made.duration * channels
                            recording_bytes += made.duration * channels * WAV_BYTES_PER_CHANNEL_SECOND
                    messages = sqs.receive_message(
                        QueueUrl=queues["RecordingsQueue"],
                        MaxNumberOfMessages=10,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    ).get("Messages", [])
                    event = sqs_event(messages, queue_arn, "us-east-1")
                    context = LocalLambdaContext(
                        archiver_spec.name, archiver_spec.memory_mb, archiver_spec.timeout_seconds
                    )
                    outcome = timed(archiver_spec.name, lambda: archiver(event, context))  # noqa: B023
                    if outcome["batchItemFailures"]:
                        raise RuntimeError(f"the archiver failed: {outcome}")
                    sqs.delete_message_batch(
                        QueueUrl=queues["RecordingsQueue"],
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(messages)
                        ],
                    )
                items = session.resource("dynamodb").Table(table).scan()["Items"]
            finally:
                session.events.unregister("before-call", record_call)

    # DynamoDB request units: each write costs the written item's size in KB (rounded up); each
    # strongly consistent read the item's size per 4 KB (eventually consistent: half). Item sizes are
    # the final ones (an upper bound for earlier writes). Each index (ByCallSid, ByReconcileDue: both
    # session items only, small projections) costs one more unit for a write of a session item that
    # creates it or touches a key or projected attribute of that index.
    sizes = {(item["SessionId"], item["ItemKey"]): _item_bytes(item) for item in items}
    write_units = read_units = 0.0
    counts: Counter[str] = Counter()
    for service, operation, params in operations:
        counts[f"{service}:{operation}"] += 1
        if service != "dynamodb":
            continue
        key_source = params.get("Key") or params.get("Item") or {}
        key = (_plain(key_source.get("SessionId")), _plain(key_source.get("ItemKey")))
        size = sizes.get(key, 1024)
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            write_units += math.ceil(size / 1024)
            if key[1] == "session":
                write_units += _writes_index(operation, params)
        elif operation == "GetItem":
            read_units += math.ceil(size / 4096) * (1 if params.get("ConsistentRead") else 0.5)
        elif operation == "BatchGetItem":
            for request in (params.get("RequestItems") or {}).values():
                for wanted in request.get("Keys", []):
                    found = sizes.get((_plain(wanted.get("SessionId")), _plain(wanted.get("ItemKey"))))
                    # A key not found still costs the minimum read.
                    read_units += math.ceil((found or 1) / 4096) * (
                        1 if request.get("ConsistentRead") else 0.5
                    )
        elif operation == "Query":
            # ByCallSid lookups by status callbacks without `session`: a few small projected items.
            read_units += 1 if params.get("ConsistentRead") else 0.5
    sqs_requests = (
        counts["sqs:SendMessage"] + counts["sqs:SendMessageBatch"]
    ) / calls + 2  # plus the event source's receive and delete for the message
    s3_puts = sum(
        counts[f"s3:{op}"]
        for op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    )
    s3_gets = counts["s3:HeadObject"] + counts["s3:GetObject"]
    media_seconds = recording_bytes / calls / 1e6 / ASSUMPTIONS["media_megabytes_per_second"]
    media_ms = ASSUMPTIONS["media_latency_ms"] + media_seconds * 1000

    figures: dict[str, FunctionFigures] = {}
    all_names = sorted(set(durations) | set(first))
    # The settings each function checks at cold start (the values are never used: nothing is called).
    cold_env = {**base_env, **handler_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in all_names:
        samples = durations.get(name, [first[name]])
        props = functions[name]
        code_dir = PROJECT_ROOT / props["CodeUri"]
        warm = spread(samples, 0.9)
        median, p90 = warm.median, warm.upper
        if name == archiver_spec.name:
            median, p90 = median + media_ms, p90 + media_ms
        figures[name] = FunctionFigures(
            invocations_per_call=round((len(durations.get(name, [])) + 1) / calls, 2),
            median_ms=round(median, 1),
            p90_ms=round(p90, 1),
            memory_mb=int(props.get("MemorySize", globals_["MemorySize"])),
            cold_ms=round(_cold_ms(code_dir, cold_env) + max(first[name] - warm.median, 0), 0),
        )
    how = (
        f"{calls} typical calls ({TYPICAL_DESCRIPTION}), played by the emulator in process against the "
        f"real handlers under moto (`mock_aws`) on {sys.platform}, Python {sys.version.split()[0]}; handler "
        "durations timed around each invocation (warm: every invocation but each function's first); "
        f"the archiver's include an assumed Twilio fetch of {ASSUMPTIONS['media_latency_ms']} ms + "
        f"{ASSUMPTIONS['media_megabytes_per_second']} MB/s; cold start = median import time in a fresh "
        "interpreter + the first invocation's extra time. moto answers in process, so DynamoDB, SQS and "
        "S3 calls cost less time here than the few milliseconds each takes in AWS."
    )
    return Measured(
        how=how,
        calls=calls,
        functions=figures,
        api_requests_per_call=api_requests / calls,
        dynamodb_write_units_per_call=write_units / calls,
        dynamodb_read_units_per_call=read_units / calls,
        dynamodb_bytes_per_call=round(sum(sizes.values()) / calls),
        sqs_requests_per_call=sqs_requests,
        s3_put_requests_per_call=s3_puts / calls,
        s3_get_requests_per_call=s3_gets / calls,
        recording_bytes_per_call=recording_bytes / calls,
        log_bytes_per_call=round(log_bytes / calls),
        custom_metric_names=sorted(metric_names),
    )


def _plain(value: Any) -> Any:
    """A key value as the resource API or the client API gives it."""
    if isinstance(value, Mapping):
        return next(iter(value.values()))
    return value


# --- the reconciler (docs/reconciliation.md): a section of its own --------------------------------------

RECONCILER_BEGIN = "<!-- cost:reconciler:begin (make cost) -->"
RECONCILER_END = "<!-- cost:reconciler:end -->"
RECONCILER_ASSUMPTIONS: dict[str, Any] = {
    "runs_per_day": 288,  # ReconcileSchedule rate(5 minutes)
    "twilio_api_ms": 150.0,  # one REST API answer, as the archiver assumes for a fetch
    "concurrency": 4,  # RECONCILE_CONCURRENCY
    "long_call_share": 0.02,  # calls still in progress after the 15-minute grace (one deferral each)
    "recordings_per_call": 1,
    "outage_hours": 1,
    "calls_per_day": 1000,  # spread evenly: an hour of outage loses 1/24 of the day's final callbacks
}


@dataclasses.dataclass
class ReconcilerMeasured:
    how: str
    empty_run_ms: float
    """A run that finds nothing due (one index query)."""
    ms_per_session: float
    """Per lost session settled with one recording, Twilio's answers excluded (loopback fake API)."""
    memory_mb: int
    write_units_per_session: float
    read_units_per_session: float
    sqs_requests_per_session: float
    twilio_requests_per_session: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReconcilerMeasured:
        return cls(**json.loads(text))


def measure_reconciler(sessions: int = 40) -> ReconcilerMeasured:
    """Runs the real reconciler under moto against the fake Twilio REST API: an empty run, then one
    that settles `sessions` lost calls with one recording each. Request units are counted from the
    DynamoDB calls made (each item here is under 1 KB: one unit per write, one per consistent read)."""
    import secrets as _secrets
    from datetime import UTC, datetime, timedelta

    import boto3
    from botocore.client import BaseClient
    from moto import mock_aws
    from voice_webhooks.reconcile.run import run_once
    from voice_webhooks.reconcile.settings import load_settings
    from voice_webhooks.storage.dynamo import serialize

    from voicedev import template_resources
    from voicedev.fake_twilio_api import FakeTwilioApi
    from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counting(client: Any, operation: str, params: Any) -> Any:
        calls[f"{client.meta.service_model.service_name}.{operation}"] += 1
        return original(client, operation, params)

    env = {"AWS_ACCESS_KEY_ID": "cost", "AWS_SECRET_ACCESS_KEY": "cost", "AWS_DEFAULT_REGION": "us-east-1"}
    with scoped_environment(env), mock_aws(), FakeTwilioApi(auth_token=DEV_AUTH_TOKEN) as api:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        props = resources_of_type("AWS::DynamoDB::Table")["EventsTable"]
        [index] = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "ByReconcileDue"]
        dynamodb.create_table(
            TableName="EventsTable",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("SessionId", "ItemKey", "ReconcileShard", "ReconcileAt")
            ],
            KeySchema=[
                {"AttributeName": "SessionId", "KeyType": "HASH"},
                {"AttributeName": "ItemKey", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[index],
        )
        queues = template_resources.create_queues(boto3.client("sqs", region_name="us-east-1"))
        queue = queues["RecordingsQueue"]
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="cost/auth-token", SecretString=DEV_AUTH_TOKEN
        )["ARN"]
        settings = load_settings(
            {
                "EVENTS_TABLE_NAME": "EventsTable",
                "RECORDINGS_QUEUE_URL": queue,
                "TWILIO_AUTH_TOKEN_SECRET": secret,
                "TWILIO_API_BASE_URL": api.origin,
                "TWILIO_API_ORIGINS": api.origin,
            }
        )
        run_once(settings, remaining_seconds=120)  # warm: clients, secret, imports
        empty = []
        for _ in range(5):
            started = time.perf_counter()
            run_once(settings, remaining_seconds=120)
            empty.append((time.perf_counter() - started) * 1000)
        created = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        for _ in range(sessions):
            call_sid = "CA" + _secrets.token_hex(16)
            dynamodb.put_item(
                TableName="EventsTable",
                Item=serialize(
                    {
                        "SessionId": f"{call_sid}-{_secrets.token_hex(8)}",
                        "ItemKey": "session",
                        "SessionCallSid": call_sid,
                        "AccountSid": DEV_ACCOUNT_SID,
                        "Flow": "frontline",
                        "FlowKind": "conversation",
                        "CreatedAt": created,
                        "ReconcileShard": "open",
                        "ReconcileAt": created,
                    }
                ),
            )
            api.add_call(DEV_ACCOUNT_SID, call_sid, "completed", duration=300)
            api.add_recording(DEV_ACCOUNT_SID, call_sid, "RE" + _secrets.token_hex(16))
        BaseClient._make_api_call = counting
        try:
            started = time.perf_counter()
            report = run_once(settings, remaining_seconds=120)
            busy_ms = (time.perf_counter() - started) * 1000
        finally:
            BaseClient._make_api_call = original
        assert report.outcomes.get("reconciled") == sessions, report.outcomes
    writes = sum(n for name, n in calls.items() if name.split(".")[1] in ("PutItem", "UpdateItem"))
    # Settling removes the session from the sparse index: one more write unit, on the index.
    index_writes = sessions
    reads = sum(n for name, n in calls.items() if name.split(".")[1] in ("GetItem", "Query"))
    sends = sum(n for name, n in calls.items() if name.startswith("sqs."))
    return ReconcilerMeasured(
        how=(
            f"the real reconciler under moto (`mock_aws`) against the fake Twilio REST API on loopback: "
            f"an empty run (median of 5), then one run settling {sessions} lost calls with one recording "
            f"each; Python {sys.version.split()[0]}"
        ),
        empty_run_ms=round(statistics.median(empty), 1),
        ms_per_session=round(max(busy_ms - statistics.median(empty), 0) / sessions, 1),
        memory_mb=int(load_template()["Globals"]["Function"]["MemorySize"]),
        write_units_per_session=round((writes + index_writes) / sessions, 2),
        read_units_per_session=round(reads / sessions, 2),
        sqs_requests_per_session=round(sends / sessions, 2),
        twilio_requests_per_session=round(api.count() / sessions, 2),
    )


def reconciler_day(figures: ReconcilerMeasured, lost_share: float) -> dict[str, float]:
    """One day of reconciliation for `calls_per_day` calls, `lost_share` of whose final callbacks
    were lost: Twilio API requests, Lambda seconds, DynamoDB units, and USD per 1,000 calls."""
    a = RECONCILER_ASSUMPTIONS
    calls = a["calls_per_day"]
    lost = calls * lost_share
    deferred = calls * a["long_call_share"]
    # Every call whose final status arrived still gets one pass: its recordings list (one request),
    # a consistent read of the session, and the closing write (a lost recording callback shows
    # only there). Counted at a lost session's own time, an upper bound.
    checked = calls - lost
    twilio = lost * figures.twilio_requests_per_session + checked + deferred
    # The API answers dominate a busy run; worker threads overlap them.
    lambda_ms = (
        a["runs_per_day"] * figures.empty_run_ms
        + (lost + checked) * figures.ms_per_session
        + twilio * a["twilio_api_ms"] / a["concurrency"]
    )
    gb_s = lambda_ms / 1000 * figures.memory_mb / 1024
    # Every session enters and leaves the sparse index: two index writes per call, lost or not. A
    # checked call also moves its index key at the final status (delete + put: two) and is closed
    # by the reconciler (one table write).
    writes = 2 * calls + 3 * checked + lost * (figures.write_units_per_session - 1) + deferred
    reads = a["runs_per_day"] + lost * figures.read_units_per_session + checked + deferred
    sqs = lost * figures.sqs_requests_per_session
    usd = (
        a["runs_per_day"] * PRICES["lambda_per_request"]
        + gb_s * PRICES["lambda_gb_second_arm64"]
        + writes * PRICES["dynamodb_per_write_request_unit"]
        + reads * PRICES["dynamodb_per_read_request_unit"]
        + sqs * PRICES["sqs_per_request"]
    )
    scale = 1000 / calls
    return {
        "sessions_reconciled": lost * scale,
        "twilio_requests": twilio * scale,
        "lambda_invocations": a["runs_per_day"],
        "lambda_seconds": lambda_ms / 1000,
        "dynamodb_write_units": writes * scale,
        "dynamodb_read_units": reads * scale,
        "usd": usd * scale,
    }


def render_reconciler(figures: ReconcilerMeasured) -> str:
    a = RECONCILER_ASSUMPTIONS
    healthy = reconciler_day(figures, 0.0)
    outage = reconciler_day(figures, a["outage_hours"] / 24)
    rows = [
        ("sessions settled from the API", "sessions_reconciled", "{:.0f}"),
        ("Twilio REST API requests", "twilio_requests", "{:.0f}"),
        ("reconciler invocations (the day's runs)", "lambda_invocations", "{:.0f}"),
        ("reconciler Lambda time, seconds (whole day)", "lambda_seconds", "{:.1f}"),
        ("DynamoDB write request units", "dynamodb_write_units", "{:.0f}"),
        ("DynamoDB read request units", "dynamodb_read_units", "{:.0f}"),
    ]
    out = [
        f"Measured: {figures.how}. An empty run took {figures.empty_run_ms:.1f} ms; each lost session "
        f"{figures.ms_per_session:.1f} ms of its own (moto and the loopback API in process), "
        f"{figures.twilio_requests_per_session:g} Twilio requests, "
        f"{figures.write_units_per_session:g} write and {figures.read_units_per_session:g} read units "
        "(index removal included). Assumed: "
        f"{a['calls_per_day']:,} calls a day, runs every 5 minutes ({a['runs_per_day']} a day), "
        f"Twilio answers in {a['twilio_api_ms']:.0f} ms with {a['concurrency']} requests in flight, "
        f"{a['long_call_share']:.0%} of calls still in progress after the grace period (one deferral each), "
        "one recordings-only pass for every call whose final status arrived, "
        f"a {a['outage_hours']}-hour outage losing every final callback of its calls.",
        "",
        "| per 1,000 calls of the day | healthy day | day with a one-hour outage |",
        "| --- | --- | --- |",
        *(
            f"| {label} | {fmt.format(healthy[key])} | {fmt.format(outage[key])} |"
            for label, key, fmt in rows
        ),
        f"| **USD** | **{_money(healthy['usd'])}** | **{_money(outage['usd'])}** |",
    ]
    return "\n".join(out)


def reconciler_section(figures: ReconcilerMeasured) -> str:
    return _section(RECONCILER_BEGIN, RECONCILER_END, figures.to_json(), render_reconciler(figures))


def reconciler_from_doc(text: str) -> ReconcilerMeasured:
    return ReconcilerMeasured.from_json(_section_json(text, RECONCILER_BEGIN, RECONCILER_END))


def write_reconciler_doc(figures: ReconcilerMeasured, path: Path = DOC) -> None:
    _replace_section(path, RECONCILER_BEGIN, RECONCILER_END, reconciler_section(figures))


# --- the relay agent (docs/relay-agent.md): per minute of conversation ---------------------------------

RELAY_BEGIN = "<!-- cost:relay:begin (make cost) -->"
RELAY_END = "<!-- cost:relay:end -->"
RELAY_ASSUMPTIONS: dict[str, Any] = {
    # A caller's turn and the agent's answer take about ten seconds: six `prompt` frames a minute.
    "turns_per_minute": 6,
    # How long a conversation lasts: its handshake, `setup` and close are spread over these minutes.
    "minutes_per_conversation": 5,
    # One DynamoDB or @connections request from a Lambda in the same region (moto answers in process).
    "aws_request_ms": 5,
}
RELAY_PROMPT = "What are your opening hours?"


@dataclasses.dataclass
class RelayMeasured:
    how: str
    conversations: int
    turns: int
    """`prompt` frames measured (every turn of every conversation)."""
    memory_mb: int
    turn_median_ms: float
    """One `$default` invocation for a `prompt` (parse, store, run the scripted agent, post its tokens),
    its own time: the time spent in moto's answers is taken out (`aws_request_ms` each stands in)."""
    turn_p90_ms: float
    turn_aws_requests: float
    """DynamoDB and @connections requests per turn (each one a round trip in AWS)."""
    turn_messages_out: float
    """Frames posted back to Twilio per turn (`text` tokens)."""
    turn_write_units: float
    turn_read_units: float
    turn_log_bytes: float
    conversation_invocations: float
    """`$connect`, the `setup` frame's `$default`, `$disconnect`."""
    conversation_ms: float
    """Their median own times (as `turn_median_ms`), added up."""
    conversation_aws_requests: float
    conversation_write_units: float
    conversation_read_units: float
    conversation_log_bytes: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RelayMeasured:
        return cls(**json.loads(text))


def relay_minute(figures: RelayMeasured, log_retention_days: int = 30) -> list[Line]:
    """One minute of conversation with the scripted agent, as `Line`s in USD per 1,000 minutes."""
    a = RELAY_ASSUMPTIONS
    minutes = 1000
    turns = a["turns_per_minute"]
    share = 1 / a["minutes_per_conversation"]  # of a conversation's own invocations, per minute
    invocations = turns + figures.conversation_invocations * share
    gb = figures.memory_mb / 1024
    turn_ms = math.ceil(figures.turn_median_ms + figures.turn_aws_requests * a["aws_request_ms"])
    conversation_ms = figures.conversation_ms + figures.conversation_aws_requests * a["aws_request_ms"]
    gb_s = (turns * turn_ms + share * conversation_ms) / 1000 * gb
    # Received: each `prompt` and the `setup` frame; sent: every frame posted back.
    messages = turns * (1 + figures.turn_messages_out) + share * 1
    writes = turns * figures.turn_write_units + share * figures.conversation_write_units
    reads = turns * figures.turn_read_units + share * figures.conversation_read_units
    log_bytes = (
        turns * figures.turn_log_bytes
        + share * figures.conversation_log_bytes
        + invocations * ASSUMPTIONS["platform_log_bytes_per_invocation"]
    )
    log_gb = minutes * log_bytes / 1e9
    return [
        Line(
            "API Gateway (WebSocket)",
            f"{messages:.1f} messages a minute ({turns} x (1 prompt in + "
            f"{figures.turn_messages_out:g} tokens out), the setup frame)",
            minutes * messages * PRICES["websocket_per_message"],
        ),
        Line(
            "API Gateway (WebSocket)",
            "1 connection minute",
            minutes * PRICES["websocket_per_connection_minute"],
        ),
        Line(
            "Lambda",
            f"{invocations:g} invocations a minute ({turns} turns, the handshake, setup and close)",
            minutes * invocations * PRICES["lambda_per_request"],
        ),
        Line(
            "Lambda",
            f"{gb_s * 1000:.1f} GB-s per 1,000 minutes ({turn_ms} ms billed per turn)",
            minutes * gb_s * PRICES["lambda_gb_second_arm64"],
        ),
        Line(
            "DynamoDB (on-demand)",
            f"write request units a minute: {writes:.1f}",
            minutes * writes * PRICES["dynamodb_per_write_request_unit"],
        ),
        Line(
            "DynamoDB (on-demand)",
            f"read request units a minute: {reads:.1f}",
            minutes * reads * PRICES["dynamodb_per_read_request_unit"],
        ),
        Line(
            "CloudWatch Logs",
            f"{log_bytes / 1000:.1f} KB a minute, ingested and kept {log_retention_days} days",
            log_gb
            * (PRICES["logs_ingestion_gb"] + PRICES["logs_storage_gb_month"] * log_retention_days / 30),
        ),
        Line(
            "X-Ray",
            f"{invocations * ASSUMPTIONS['xray_sampled_share']:g} traces a minute (Tracing: Active)",
            minutes * invocations * ASSUMPTIONS["xray_sampled_share"] * PRICES["xray_per_trace"],
        ),
    ]


def render_relay(figures: RelayMeasured) -> str:
    a = RELAY_ASSUMPTIONS
    parameters = load_template()["Parameters"]
    lines = relay_minute(figures, int(parameters["LogRetentionDays"]["Default"]))
    total = sum(line.usd_per_1000_calls for line in lines)
    out = [
        f"Measured: {figures.how}.",
        "",
        "| per | invocations | own time: median | p90 | AWS requests | frames out | write units | read units "
        "| logs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| turn (`prompt`) | 1 | {figures.turn_median_ms:.1f} ms | {figures.turn_p90_ms:.1f} ms "
        f"| {figures.turn_aws_requests:g} | {figures.turn_messages_out:g} | {figures.turn_write_units:g} "
        f"| {figures.turn_read_units:g} | {figures.turn_log_bytes / 1000:.1f} KB |",
        f"| conversation (handshake, `setup`, close) | {figures.conversation_invocations:g} "
        f"| {figures.conversation_ms:.1f} ms (sum) | | {figures.conversation_aws_requests:g} | 0 "
        f"| {figures.conversation_write_units:g} | {figures.conversation_read_units:g} "
        f"| {figures.conversation_log_bytes / 1000:.1f} KB |",
        "",
        f"Assumed: {a['turns_per_minute']} turns a minute, conversations of "
        f"{a['minutes_per_conversation']} minutes (their handshake, `setup` and close spread over them), "
        f"{a['aws_request_ms']} ms per DynamoDB or `@connections` request in AWS added to each "
        f"invocation's measured time, {figures.memory_mb} MB.",
        "",
        "| service | what | USD per 1,000 minutes |",
        "| --- | --- | --- |",
        *(f"| {line.service} | {line.what} | {_money(line.usd_per_1000_calls)} |" for line in lines),
        f"| **total** | **this stack, per 1,000 minutes of conversation** | **{_money(total)}** |",
    ]
    return "\n".join(out)


def relay_section(figures: RelayMeasured) -> str:
    return _section(RELAY_BEGIN, RELAY_END, figures.to_json(), render_relay(figures))


def relay_from_doc(text: str) -> RelayMeasured:
    return RelayMeasured.from_json(_section_json(text, RELAY_BEGIN, RELAY_END))


def write_relay_doc(figures: RelayMeasured, path: Path = DOC) -> None:
    _replace_section(path, RELAY_BEGIN, RELAY_END, relay_section(figures))


def measure_relay(conversations: int = 3, turns: int = 30) -> RelayMeasured:
    """Runs the relay's three real handlers in process under moto (`mock_aws`), with the template's
    table and the scripted agent (config/flows.example.json's `concierge` flow): per conversation a signed
    handshake, `setup`, `turns` prompts, the close. `@connections` is a counter in place of API
    Gateway. Request units come from each item's size just after the write (one more read, not
    counted) and from the items each read returned."""
    with scoped_environment(BASE_ENV):
        return _measure_relay(conversations, turns)


def _measure_relay(conversations: int, turns: int) -> RelayMeasured:
    import boto3
    from boto3.dynamodb.types import TypeDeserializer
    from botocore.client import BaseClient
    from moto import mock_aws
    from voice_webhooks.relay import connections, reset_relay_caches

    from voicedev import template_resources
    from voicedev.local_api import FunctionLoader, LocalLambdaContext, function_spec
    from voicedev.relay_events import (
        SAMPLE_RELAY_DOMAIN,
        STAGE,
        connect_event,
        disconnect_event,
        message_event,
        prompt_frame,
        setup_frame,
    )
    from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

    template = load_template()
    deserializer = TypeDeserializer()
    original = BaseClient._make_api_call
    counting = False
    requests = 0
    write_units = read_units = aws_ms = 0.0
    posted = 0

    def units(size: int, per: int) -> int:
        return max(1, math.ceil(size / per))

    def plain(item: Mapping[str, Any] | None) -> dict[str, Any]:
        return {name: deserializer.deserialize(value) for name, value in (item or {}).items()}

    def tapped(client: Any, operation: str, params: Any) -> Any:
        nonlocal requests, write_units, read_units, aws_ms
        started = time.perf_counter()
        try:
            return _counted(client, operation, params, original(client, operation, params))
        finally:
            aws_ms += (time.perf_counter() - started) * 1000  # moto's time, the size read's included

    def _counted(client: Any, operation: str, params: Any, answer: Any) -> Any:
        nonlocal requests, write_units, read_units
        if not counting or client.meta.service_model.service_name != "dynamodb":
            return answer
        requests += 1
        consistent = 1 if params.get("ConsistentRead") else 0.5
        if operation in ("PutItem", "UpdateItem"):
            after = original(client, "GetItem", {"TableName": params["TableName"], "Key": _key_of(params)})
            write_units += units(_item_bytes(plain(after.get("Item"))), 1024)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (request,) = entry.values()
                size = _item_bytes(plain(request.get("Item"))) if "Item" in request else 1
                write_units += 2 * units(size, 1024)  # a transaction writes each item twice
        elif operation == "GetItem":
            read_units += units(_item_bytes(plain(answer.get("Item"))), 4096) * consistent
        elif operation == "Query":
            size = sum(_item_bytes(plain(item)) for item in answer.get("Items", []))
            read_units += units(size, 4096) * consistent
        return answer

    class Posts:
        def post(self, connection_id: str, data: str) -> None:  # noqa: ARG002 - counted only
            nonlocal posted, requests
            posted += 1
            requests += 1

        def close(self, connection_id: str) -> None:  # noqa: ARG002 - counted only
            nonlocal requests
            requests += 1

    specs = {
        route: function_spec(template, name)
        for route, name in (
            ("connect", "RelayConnectFunction"),
            ("message", "RelayMessageFunction"),
            ("disconnect", "RelayDisconnectFunction"),
        )
    }
    loader = FunctionLoader()
    stdout = io.StringIO()
    samples: dict[str, list[float]] = {"connect": [], "setup": [], "turn": [], "disconnect": []}
    totals: dict[str, list[float]] = {"requests": [], "writes": [], "reads": [], "logs": [], "posted": []}
    per_conversation = {"requests": 0.0, "writes": 0.0, "reads": 0.0, "logs": 0.0}

    def invoke(kind: str, route: str, event: dict[str, Any]) -> None:
        nonlocal counting, requests, write_units, read_units, posted, aws_ms
        handler = loader.load(specs[route])
        context = LocalLambdaContext(specs[route].name, specs[route].memory_mb, specs[route].timeout_seconds)
        requests, write_units, read_units, posted, aws_ms = 0, 0.0, 0.0, 0, 0.0
        start = len(stdout.getvalue())
        counting = True
        started = time.perf_counter()
        answer = handler(event, context)
        elapsed = (time.perf_counter() - started) * 1000
        counting = False
        if answer.get("statusCode") != 200:
            raise RuntimeError(f"relay {kind} answered {answer.get('statusCode')}")
        logs = len(stdout.getvalue()[start:].encode())
        samples[kind].append(max(elapsed - aws_ms, 0.0))
        if kind == "turn":
            for name, value in (
                ("requests", requests),
                ("writes", write_units),
                ("reads", read_units),
                ("logs", logs),
                ("posted", posted),
            ):
                totals[name].append(value)
        else:
            per_conversation["requests"] += requests
            per_conversation["writes"] += write_units
            per_conversation["reads"] += read_units
            per_conversation["logs"] += logs

    with mock_aws():
        boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        dynamodb = session.client("dynamodb")
        table = template_resources.create_table(dynamodb)
        secret = session.client("secretsmanager").create_secret(
            Name="cost-relay", SecretString=DEV_AUTH_TOKEN
        )
        handler_env = {
            "TWILIO_AUTH_TOKEN_SECRET": secret["ARN"],
            "ALLOWED_ACCOUNT_SIDS": DEV_ACCOUNT_SID,
            "EVENTS_TABLE_NAME": table,
            "FLOW_CONFIG": str(PROJECT_ROOT / "config" / "flows.example.json"),
            "EVENT_TTL_DAYS": str(template["Parameters"]["EventRetentionDays"]["Default"]),
            "RELAY_PUBLIC_URL": f"wss://{SAMPLE_RELAY_DOMAIN}/{STAGE}",
        }
        saved_poster = connections.management_api
        with _handlers_in_process(handler_env, stdout):
            reset_relay_caches()
            connections.management_api = lambda context: Posts()  # type: ignore[assignment]  # noqa: ARG005
            BaseClient._make_api_call = tapped
            try:
                for index in range(conversations + 1):  # the first one warms the handlers: not counted
                    call_sid = "CA" + f"{index:02x}" * 16
                    session_id = f"{call_sid}-{index:016x}"
                    dynamodb.put_item(
                        TableName=table,
                        Item={
                            "SessionId": {"S": session_id},
                            "ItemKey": {"S": "session"},
                            "SessionCallSid": {"S": call_sid},
                            "AccountSid": {"S": DEV_ACCOUNT_SID},
                            "Flow": {"S": "concierge"},
                            "FlowKind": {"S": "relay"},
                        },
                    )
                    connection = f"conn-{index:04d}"
                    invoke("connect", "connect", connect_event(session_id, connection_id=connection))
                    invoke("setup", "message", message_event(setup_frame(call_sid), connection_id=connection))
                    for _ in range(turns):
                        invoke(
                            "turn",
                            "message",
                            message_event(prompt_frame(RELAY_PROMPT), connection_id=connection),
                        )
                    invoke("disconnect", "disconnect", disconnect_event(connection_id=connection))
                    if index == 0:
                        samples = {kind: [] for kind in samples}
                        totals = {name: [] for name in totals}
                        per_conversation = dict.fromkeys(per_conversation, 0.0)
            finally:
                BaseClient._make_api_call = original
                connections.management_api = saved_poster
                reset_relay_caches()

    turn = spread(samples["turn"], 0.9)
    conversation_ms = sum(spread(samples[kind]).median for kind in ("connect", "setup", "disconnect"))
    return RelayMeasured(
        how=(
            f'{conversations} conversations of {turns} turns (each a `prompt` frame, "{RELAY_PROMPT}", '
            "answered by the scripted agent of config/flows.example.json's `concierge` flow), after one "
            "uncounted warm-up conversation: the real relay handlers invoked in process with API Gateway's "
            "WebSocket events, under moto (`mock_aws`) with the template's EventsTable, `@connections` "
            "counted in place; durations are each invocation's own time, the time moto took to answer "
            f"taken out; {sys.platform}, Python {sys.version.split()[0]}"
        ),
        conversations=conversations,
        turns=len(samples["turn"]),
        memory_mb=specs["message"].memory_mb,
        turn_median_ms=round(turn.median, 1),
        turn_p90_ms=round(turn.upper, 1),
        turn_aws_requests=round(statistics.fmean(totals["requests"]), 2),
        turn_messages_out=round(statistics.fmean(totals["posted"]), 2),
        turn_write_units=round(statistics.fmean(totals["writes"]), 2),
        turn_read_units=round(statistics.fmean(totals["reads"]), 2),
        turn_log_bytes=round(statistics.fmean(totals["logs"])),
        conversation_invocations=3,
        conversation_ms=round(conversation_ms, 1),
        conversation_aws_requests=round(per_conversation["requests"] / conversations, 2),
        conversation_write_units=round(per_conversation["writes"] / conversations, 2),
        conversation_read_units=round(per_conversation["reads"] / conversations, 2),
        conversation_log_bytes=round(per_conversation["logs"] / conversations),
    )


def _key_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """The key of a PutItem (from its item) or an UpdateItem, in the wire format."""
    if "Key" in params:
        return dict(params["Key"])
    return {name: params["Item"][name] for name in _TABLE_KEYS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="voicedev.cost", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--calls", type=int, default=30, help="typical calls to measure (default 30)")
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"rewrite the generated section of {DOC.relative_to(PROJECT_ROOT)}",
    )
    parser.add_argument(
        "--from-doc",
        action="store_true",
        help="recompute from the figures in docs/cost.md instead of measuring",
    )
    args = parser.parse_args(argv)
    measured = measured_from_doc(DOC.read_text(encoding="utf-8")) if args.from_doc else measure(args.calls)
    print(render(measured))
    doc_text = DOC.read_text(encoding="utf-8")
    reconciler = reconciler_from_doc(doc_text) if args.from_doc else measure_reconciler()
    print("\n### The reconciler\n\n" + render_reconciler(reconciler))
    relay = relay_from_doc(doc_text) if args.from_doc else measure_relay()
    print("\n### The relay agent, per minute of conversation\n\n" + render_relay(relay))
    if args.write:
        write_doc(measured)
        write_reconciler_doc(reconciler)
        write_relay_doc(relay)
        print(f"\nwrote {DOC.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
