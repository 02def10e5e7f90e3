"""Many calls at once, and what they measured. A library first (the benchmark and load work import
`run_calls` and `Summary`); `voice-webhooks-simulate --calls N --concurrency C` prints the summary."""

from __future__ import annotations

import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from voicedev.emulator.client import TwilioClient
from voicedev.emulator.engine import CallResult, EmulatorConfig, run_call
from voicedev.emulator.output import short_path
from voicedev.emulator.scenarios import Scenario


def call_seed(run_seed: int, index: int) -> int:
    """Each call's own seed, derived from the run's: the same `--seed` replays every call's
    reordering and duplicates identically, whatever the concurrency."""
    return random.Random(f"{run_seed}:{index}").getrandbits(32)


def run_calls(
    config: EmulatorConfig,
    scenarios: Sequence[Scenario],
    *,
    calls: int,
    concurrency: int = 1,
    run_seed: int = 0,
    client: TwilioClient | None = None,
    on_result: Callable[[CallResult], None] | None = None,
) -> tuple[list[CallResult], Summary]:
    """Run `calls` calls (cycling through `scenarios`), `concurrency` at a time. Results come back in
    call order; `on_result` sees each as it finishes (from worker threads: keep it thread-safe)."""
    if calls < 1 or concurrency < 1 or not scenarios:
        raise ValueError("calls and concurrency must be >= 1, with at least one scenario")
    shared = client or TwilioClient(config.auth_token, read_timeout=config.timeout)

    def one(index: int) -> CallResult:
        result = run_call(config, scenarios[index % len(scenarios)], shared, seed=call_seed(run_seed, index))
        if on_result is not None:
            on_result(result)
        return result

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="emulated-call") as pool:
        results = list(pool.map(one, range(calls)))
    elapsed = time.perf_counter() - started
    return results, summarize(results, elapsed, concurrency)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LatencyStats:
    count: int
    median_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencyStats:
        if not values:
            return cls(0, math.nan, math.nan, math.nan)
        return cls(len(values), statistics.median(values), percentile(values, 0.99), max(values))


@dataclass(frozen=True)
class Summary:
    calls: int
    failed_calls: int
    requests: int
    elapsed_s: float
    concurrency: int
    status_codes: dict[str, int]
    """`200`, `204`, `403`, ... and `error` for requests that got no HTTP answer."""
    latency: LatencyStats
    by_route: dict[str, LatencyStats] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else math.nan

    def render(self) -> str:
        codes = "  ".join(f"{code}: {count}" for code, count in sorted(self.status_codes.items()))
        lines = [
            f"calls      {self.calls} ({self.failed_calls} failed), concurrency {self.concurrency}, "
            f"{self.elapsed_s:.2f} s",
            f"requests   {self.requests} ({self.requests_per_second:.1f}/s)   {codes}",
            f"latency    median {self.latency.median_ms:.1f} ms   p99 {self.latency.p99_ms:.1f} ms   "
            f"max {self.latency.max_ms:.1f} ms",
        ]
        for route, stats in sorted(self.by_route.items()):
            lines.append(
                f"  {route:<18} {stats.count:>6}  "
                f"median {stats.median_ms:7.1f} ms   p99 {stats.p99_ms:7.1f} ms"
            )
        if self.problems:
            lines.append("problems")
            ranked = sorted(self.problems.items(), key=lambda item: (-item[1], item[0]))
            lines.extend(f"  {count:>5} x {problem}" for problem, count in ranked)
        return "\n".join(lines)


def summarize(results: Iterable[CallResult], elapsed_s: float, concurrency: int = 1) -> Summary:
    results = list(results)
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    per_route: dict[str, list[float]] = {}
    problems: Counter[str] = Counter()
    for result in results:
        for problem in result.problems:
            problems[_generic(problem)] += 1
        for exchange in result.exchanges:
            response = exchange.sent.response
            codes["error" if response.error else str(response.status)] += 1
            latencies.append(response.latency_ms)
            per_route.setdefault(short_path(exchange.sent.url).split("?")[0], []).append(response.latency_ms)
    return Summary(
        calls=len(results),
        failed_calls=sum(1 for result in results if not result.ok),
        requests=sum(codes.values()),
        elapsed_s=elapsed_s,
        concurrency=concurrency,
        status_codes=dict(codes),
        latency=LatencyStats.of(latencies),
        by_route={route: LatencyStats.of(values) for route, values in per_route.items()},
        problems=dict(problems),
    )


def _generic(problem: str) -> str:
    # Problems name sids and sessions; group them by their wording without those.
    return re.sub(r"\b(CA|RE|CH|VX)[0-9a-f]{6,}\S*", r"\1…", problem)
