"""`make bench` / `python -m voicedev.bench`: every benchmark in turn, printed as tables, and with
`--write` the generated section of docs/benchmarks.md replaced (only by a complete run: all five
benchmarks, not BENCH_QUICK=1 / `--quick`, the smoke run with few repetitions)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from voicedev.bench import cold, netdelay, relay, size, throughput, warm
from voicedev.bench.machine import Machine, load_average
from voicedev.bench.report import DOC, Report, Section, Table, write_doc
from voicedev.bench.stats import Measure, format_ratio

SECTIONS = ("cold", "warm", "throughput", "size", "relay")


@dataclass(frozen=True)
class Plan:
    cold_runs: int
    cold_warmup_rounds: int
    warm_requests: int
    warm_warmup: int
    calls: int
    concurrency: int
    relay_prompts: int = 200
    variant_rounds: int = 3
    """Typical calls for each cold-start variant (network-aware, after a SnapStart restore)."""


FULL = Plan(cold_runs=7, cold_warmup_rounds=1, warm_requests=1000, warm_warmup=50, calls=500, concurrency=16)
QUICK = Plan(
    cold_runs=2,
    cold_warmup_rounds=0,
    warm_requests=100,
    warm_warmup=10,
    calls=40,
    concurrency=16,
    relay_prompts=20,
    variant_rounds=1,
)


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="python -m voicedev.bench", description=__doc__)
    result.add_argument("--quick", action="store_true", help="a smoke run (also BENCH_QUICK=1)")
    result.add_argument("--write", action="store_true", help=f"replace the generated section of {DOC.name}")
    result.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    result.add_argument(
        "--handshake-ms",
        type=float,
        default=netdelay.HANDSHAKE_MS,
        help="network-aware cold start: delay of each new connection to AWS (default %(default)g)",
    )
    result.add_argument(
        "--rtt-ms",
        type=float,
        default=netdelay.RTT_MS,
        help="network-aware cold start: round trip of each AWS request (default %(default)g)",
    )
    result.add_argument(
        "--no-profile",
        action="store_true",
        help="do not profile the worst figures (those missing their goal first)",
    )
    return result


def _progress(line: str) -> None:
    print(f"... {line}", file=sys.stderr, flush=True)


def goals_table(measures: Sequence[tuple[str, Measure]]) -> Table:
    return Table(
        ("figure", "ratio", "goal", "verdict"),
        tuple(
            (
                f"{group}: {measure.name}",
                format_ratio(measure.ratio),
                f"<= {measure.goal:g}x" if measure.goal is not None else "-",
                "met" if measure.met else ("MISSED" if measure.met is False else "-"),
            )
            for group, measure in measures
        ),
    )


def cold_section(
    plan: Plan, profile: bool, profile_dir: Path, imported: set[str], network: tuple[float, float]
) -> tuple[Section, list[Measure]]:
    with cold.ColdStartBench(
        runs=plan.cold_runs, warmup_rounds=plan.cold_warmup_rounds, progress=_progress
    ) as bench:
        bench.run()
        bench.run_variants(plan.variant_rounds, *network)
        bench.analyse()
        found = cold.measures(bench)
        for entries in bench.imports.values():
            imported.update(entry.module for entry in entries)
        profiles: dict[str, Path] = {}
        if found and profile:
            # The worst ratio only, met or not: the import breakdown already covers every function.
            worst = max(found, key=lambda measure: measure.ratio).name
            for name, path in bench.profile({worst}).items():
                profiles[name] = profile_dir / path.name
                profiles[name].write_bytes(path.read_bytes())
        return cold.section(bench, profiles), found


def warm_section(plan: Plan, profile: bool, profile_dir: Path) -> tuple[Section, list[Measure]]:
    _progress(f"warm requests: {plan.warm_requests} per route, tracing on")
    traced = warm.run_child(tracing=True, iterations=plan.warm_requests, warmup=plan.warm_warmup)
    _progress(f"warm requests: {plan.warm_requests} per route, tracing off")
    untraced = warm.run_child(tracing=False, iterations=plan.warm_requests, warmup=plan.warm_warmup)
    found = warm.measures(traced)
    # The routes that miss their goal, or else the worst ratio: what a reader asks about next.
    missed = sorted(measure.name for measure in found if measure.met is False)
    chosen = missed or ([max(found, key=lambda measure: measure.ratio).name] if found else [])
    profiles: dict[str, Path] = {}
    if chosen and profile:
        _progress(f"warm requests: profiling {', '.join(chosen)}")
        iterations = max(plan.warm_requests // 4, 50)
        warm.run_child(tracing=True, iterations=iterations, warmup=plan.warm_warmup, profile_dir=profile_dir)
        profiles = {name: profile_dir / f"warm-{name}.prof" for name in chosen}
    return warm.section(traced, untraced, profiles), found


def run(argv: Sequence[str] | None = None, emit: Callable[[str], None] = print, doc: Path = DOC) -> int:
    args = parser().parse_args(argv)
    quick = args.quick or os.environ.get("BENCH_QUICK", "").strip() not in ("", "0", "false")
    plan = QUICK if quick else FULL
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser().error(f"unknown section(s): {', '.join(sorted(unknown))}")
    machine = Machine.current()
    started = time.perf_counter()
    sections: list[Section] = []
    goals: list[tuple[str, Measure]] = []
    failures: list[str] = []
    data_lost = False
    imported: set[str] = set()
    """Every module the functions imported in the cold-start runs (for the package-size notes)."""

    def attempt(name: str, work: Callable[[], Section]) -> None:
        if name not in only:
            return
        try:
            section = work()
        except Exception as exc:  # the other benchmarks still run; the report says what failed
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return
        sections.append(section)
        emit(section.text())

    with tempfile.TemporaryDirectory(prefix="voice-bench-") as scratch:
        profile_dir = Path(scratch)

        def cold_work() -> Section:
            section, found = cold_section(
                plan, not args.no_profile, profile_dir, imported, (args.handshake_ms, args.rtt_ms)
            )
            goals.extend(("cold start", measure) for measure in found)
            return section

        def warm_work() -> Section:
            section, found = warm_section(plan, not args.no_profile, profile_dir)
            goals.extend(("warm request", measure) for measure in found)
            return section

        def throughput_work() -> Section:
            nonlocal data_lost
            result = throughput.run(calls=plan.calls, concurrency=plan.concurrency, progress=_progress)
            data_lost = bool(result.ledger.lost or result.ledger.duplicated or result.ledger.unexpected)
            return throughput.section(result)

        def size_work() -> Section:
            how = size.ensure_build(progress=_progress)
            top_levels = {module.split(".")[0] for module in imported} | (
                {"twilio.rest"} & imported  # whether twilio's REST client was ever imported
            )
            return size.section(size.measure_build(how, imported=top_levels or None))

        attempt("cold", cold_work)
        attempt("warm", warm_work)
        attempt("throughput", throughput_work)
        attempt("size", size_work)
        attempt("relay", lambda: relay.section(relay.run(plan.relay_prompts, progress=_progress)))

    machine.wall_s = time.perf_counter() - started
    machine.load_end = load_average()
    summary = Section(
        title="Goals",
        intro="Each figure against its floor, measured in the same run.",
        tables=[goals_table(goals)] if goals else [],
        notes=[f"not measured: {failure}" for failure in failures]
        + (["DATA LOST OR DUPLICATED under local load (see Local throughput)"] if data_lost else []),
    )
    report = Report(machine, [summary, *sections], quick=quick)
    emit("\n".join(report.header_lines()))
    emit(summary.text())
    if args.write:
        if quick:
            emit(f"BENCH_QUICK: {doc.name} left as it is (a smoke run's figures are not quoted)")
        elif only != set(SECTIONS):
            emit(f"{doc.name} left as it is: only a complete run replaces its figures")
        elif failures:
            emit(f"{doc.name} left as it is: some benchmarks failed")
        else:
            write_doc(report, doc)
            emit(f"wrote {doc}")
    return 1 if failures or data_lost else 0


def main() -> None:
    sys.exit(run())
