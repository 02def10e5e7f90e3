"""One cold start, run as a script in a fresh interpreter by `voicedev.bench.cold` (never imported).

    python cold_child.py SPEC.json RESULT.json

SPEC `mode`:
- `function`: load `app` (functions/<name>/app.py) by path as Lambda does, then serve `event`
  with `lambda_handler` once.
- `floor`: import boto3 and create the `clients` the function uses (one default session).
- `libraries`: the floor, plus the libraries the handlers run on (`libraries`), imported and set up.
- `restore`: `function` as SnapStart runs it: import and the before-snapshot hook untimed, then the
  after-restore hook and the first request timed, then the same request once more (warm).

Only the standard library is imported before the clock starts, the same in both modes; the event
is read from the spec first (Lambda's runtime does that, not the function). With `profile`, the
timed work runs under cProfile and the stats are written to that path."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from typing import Any


class Context:
    """The Lambda context object the handlers read."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.function_name = spec["function_name"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(spec["memory_mb"])
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000000"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]bench"
        self._deadline = time.monotonic() + float(spec["timeout_s"])

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def load_app(path: str) -> Any:
    """The function's app.py imported by path under the name `app`, as Lambda's runtime does."""
    module_spec = importlib.util.spec_from_file_location("app", path)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["app"] = module
    module_spec.loader.exec_module(module)
    return module


def serve(spec: dict[str, Any], marks: dict[str, float]) -> Any:
    module = load_app(spec["app"])
    marks["imported"] = time.perf_counter()
    return module.lambda_handler(spec["event"], Context(spec))


def restore(spec: dict[str, Any], marks: dict[str, float]) -> Any:
    """What SnapStart leaves to a restored environment: the module was imported and the
    before-snapshot hook ran (at deployment, untimed); timed from there: the after-restore hook,
    the first request, then the same request again as a warm one (a retry, as Twilio sends it)."""
    import os

    os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"  # what Lambda sets for a snapshot
    module = load_app(spec["app"])
    from voice_webhooks.runtime import snapstart

    snapstart.before_snapshot()
    marks["restore_start"] = time.perf_counter()
    snapstart.after_restore()
    marks["imported"] = time.perf_counter()
    answer = module.lambda_handler(spec["event"], Context(spec))
    marks["first_done"] = time.perf_counter()
    module.lambda_handler(spec["event"], Context(spec))
    marks["warm_done"] = time.perf_counter()
    return answer


def floor(spec: dict[str, Any], marks: dict[str, float]) -> Any:
    import boto3

    marks["imported"] = time.perf_counter()
    return [boto3.client(service) for service in spec["clients"]]


def libraries(spec: dict[str, Any], marks: dict[str, float]) -> Any:
    """The floor plus the libraries the design prescribes, imported and set up as the handlers do
    (Powertools' Logger, Metrics and Tracer patching botocore; pydantic; twilio), and nothing of ours."""
    import boto3

    for name in spec["libraries"]:
        importlib.import_module(name)
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from pydantic import BaseModel

    Logger()
    Metrics()
    Tracer(patch_modules=("botocore",))
    if "aws_lambda_powertools.event_handler" in spec["libraries"]:
        from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

        APIGatewayHttpResolver()

    class Probe(BaseModel):  # pydantic imports most of itself only when a first model is built
        value: int = 0

    Probe.model_validate({"value": 1})
    marks["imported"] = time.perf_counter()
    return [boto3.client(service) for service in spec["clients"]]


def clients_created() -> list[str]:
    """The AWS services this process made botocore clients for (after the clock stopped)."""
    import gc

    import botocore.client

    return sorted(
        {
            item.meta.service_model.service_name
            for item in gc.get_objects()
            if isinstance(item, botocore.client.BaseClient)
        }
    )


def compile_costs() -> dict[str, float]:
    """Milliseconds to compile from source every module this process imported from outside the
    standard library, by top-level package: what each cold start pays on Lambda when the layer
    ships no `.pyc` files (/opt is read-only, so Python cannot keep what it compiled)."""
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    costs: dict[str, float] = {}
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py") or path.startswith(stdlib):
            continue
        with open(path, "rb") as handle:
            source = handle.read()
        started = time.perf_counter()
        compile(source, path, "exec", dont_inherit=True)
        top = name.split(".")[0]
        costs[top] = costs.get(top, 0.0) + (time.perf_counter() - started) * 1000
    return costs


def main() -> int:
    spec_path, result_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    work = {"function": serve, "floor": floor, "libraries": libraries, "restore": restore}[spec["mode"]]
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    marks: dict[str, float] = {}
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    answer = work(spec, marks)
    if profiler is not None:
        profiler.disable()
    finished = time.perf_counter()
    if profiler is not None:
        profiler.dump_stats(spec["profile"])
    result: dict[str, Any] = {
        "init_ms": (marks["imported"] - started) * 1000,
        "first_ms": (finished - marks["imported"]) * 1000,
        "total_ms": (finished - started) * 1000,
    }
    if spec["mode"] == "restore":
        result = {
            "init_ms": (marks["imported"] - marks["restore_start"]) * 1000,
            "first_ms": (marks["first_done"] - marks["imported"]) * 1000,
            "total_ms": (marks["first_done"] - marks["restore_start"]) * 1000,
            "warm_ms": (marks["warm_done"] - marks["first_done"]) * 1000,
            "answer": answer,
        }
    if spec["mode"] == "function":
        result["answer"] = answer
        result["clients"] = clients_created()
    if spec.get("compile_cost"):
        result["compile_ms"] = compile_costs()
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
