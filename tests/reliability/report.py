"""Rewrite the figures of docs/reliability.md from the last run's summary (tests/reliability/ledger.py).

    python -m tests.reliability.report                # print the figures
    python -m tests.reliability.report --write docs/reliability.md

`make reliability-report` runs the whole suite, slow part included, then this. A summary from a run
that skipped the slow part or had a failure is refused: the document states what a full, green run
showed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tests.reliability.ledger import summary_path

BEGIN = "<!-- figures: written by `make reliability-report` from the last full run; do not edit by hand -->"
END = "<!-- end of figures -->"


def _n(value: int) -> str:
    return f"{value:,}"


def render(summary: dict[str, Any]) -> str:
    sections: dict[str, dict[str, int]] = summary["sections"]

    def get(section: str, name: str) -> int:
        return int(sections.get(section, {}).get(name, 0))

    passed = summary.get("tests_passed", {})
    seconds = summary.get("seconds", {})
    lost = sum(get(section, "lost") for section in ("load", "faults", "races"))
    doubled = sum(get(section, "doubled") for section in ("load", "faults", "races"))
    kinds = ", ".join(
        f"{label} {_n(get('faults', f'kind_{kind}'))}"
        for kind, label in (
            ("throttled", "throttling"),
            ("server-error", "5xx"),
            ("unreachable", "unreachable"),
            ("response-lost", "applied, answer lost"),
        )
    )
    answered = get("faults", "cases") - get("faults", "sdk_absorbed") - get("faults", "twilio_retried")
    rows = [
        ("Run", "when", f"{summary['generated_at']} on {summary['machine']}, Python {summary['python']}"),
        (
            "Run",
            "tests",
            f"{_n(passed.get('fast', 0))} fast in {seconds.get('fast', 0):.0f} s, "
            f"{_n(passed.get('slow', 0))} slow in {seconds.get('slow', 0):.0f} s, all passed",
        ),
        (
            "Load",
            "calls (emulator through the local mode)",
            f"{_n(get('load', 'calls'))} in {get('load', 'runs')} runs; the largest "
            f"{_n(get('load', 'largest_run_calls'))} calls, "
            f"{get('load', 'largest_run_concurrency')} at a time",
        ),
        (
            "Load",
            "callbacks and requests",
            f"{_n(get('load', 'requests'))} requests, of which {_n(get('load', 'duplicate_deliveries'))} "
            "duplicate deliveries; every call's callbacks reordered",
        ),
        (
            "Load",
            "stored / expected",
            f"{_n(get('load', 'sessions'))} sessions; {_n(get('load', 'event_items'))} / "
            f"{_n(get('load', 'status_events'))} event items; {_n(get('load', 'messages'))} / "
            f"{_n(get('load', 'messages_expected'))} queue messages",
        ),
        (
            "Ordering",
            "sessions compared with in-order delivery",
            f"{_n(get('ordering', 'examples'))} ({_n(get('ordering', 'reordered_examples'))} out of order)",
        ),
        (
            "Ordering",
            "deliveries",
            f"{_n(get('ordering', 'deliveries'))}, of which {_n(get('ordering', 'duplicate_deliveries'))} "
            f"repeats and {_n(get('ordering', 'get_deliveries'))} by GET",
        ),
        ("Ordering", "differences found", _n(get("ordering", "differences"))),
        (
            "Faults",
            "fault points (AWS calls of one whole call, found by the tap)",
            f"{get('faults', 'fault_points')}, of which {get('faults', 'write_points')} writes",
        ),
        (
            "Faults",
            "faults injected",
            f"{_n(get('faults', 'cases'))} ({kinds}); {_n(get('faults', 'attempts_failed'))} failed attempts",
        ),
        (
            "Faults",
            "outcomes",
            f"absorbed by the SDK's retry {_n(get('faults', 'sdk_absorbed'))}; finished by Twilio's retry "
            f"{_n(get('faults', 'twilio_retried'))}; answered without a retry (TwiML routes, the queued "
            f"mark) {_n(answered)}; failed {_n(get('faults', 'failed'))}",
        ),
        (
            "Faults",
            "documented trade-offs (see above)",
            f"{_n(get('faults', 'given_up_by_design'))} writes given up for the answer; "
            f"{_n(get('faults', 'resent_identical_messages'))} identical messages sent again",
        ),
        ("Races", "overlapping deliveries (at every AWS call)", _n(get("races", "cases"))),
        (
            "Hostile input",
            "requests tried",
            f"{_n(get('hostile', 'inputs'))}: {_n(get('hostile', 'unsigned'))} unsigned or forged, "
            f"{_n(get('hostile', 'signed'))} signed, {_n(get('hostile', 'classic'))} classic cases",
        ),
        (
            "Hostile input",
            "signed answers",
            f"accepted {_n(get('hostile', 'signed_accepted'))}; refused, with a reason: "
            f"400 {_n(get('hostile', 'signed_malformed_400'))}, "
            f"403 (account not allowed) {_n(get('hostile', 'signed_other_account_403'))}, "
            f"403 (session of another call) {_n(get('hostile', 'signed_other_session_403'))}",
        ),
        ("Hostile input", "5xx answers", _n(get("hostile", "server_errors"))),
        ("Hostile input", "writes without a valid signature", _n(get("hostile", "unsigned_writes"))),
        ("All", "data lost, beyond the documented trade-offs", _n(lost)),
        ("All", "data doubled, beyond the documented trade-offs", _n(doubled)),
    ]
    lines = ["| Area | Figure | Value |", "| --- | --- | --- |"]
    lines += [f"| {area} | {figure} | {value} |" for area, figure, value in rows]
    return "\n".join(lines)


def problems(summary: dict[str, Any]) -> list[str]:
    found = []
    if not summary.get("slow_included"):
        found.append("the run skipped the slow tests (run the whole suite: make reliability-report)")
    bad = {outcome: count for outcome, count in summary.get("outcomes", {}).items() if outcome != "passed"}
    if bad:
        found.append(f"the run was not green: {bad}")
    missing = {"load", "ordering", "faults", "races", "hostile"} - set(summary.get("sections", {}))
    if missing:
        found.append(f"no figures for {', '.join(sorted(missing))} (a partial run?)")
    return found


def rewrite(document: str, figures: str) -> str:
    if BEGIN not in document or END not in document:
        raise ValueError(f"the document has no figures block ({BEGIN} ... {END})")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{figures}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--summary", type=Path, default=None, help="default: the last run's")
    parser.add_argument("--write", type=Path, default=None, help="the document to rewrite")
    args = parser.parse_args(argv)
    path = args.summary or summary_path()
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"no summary at {path}: run the reliability suite first", file=sys.stderr)
        return 2
    refused = problems(summary)
    if refused:
        print("not writing the figures: " + "; ".join(refused), file=sys.stderr)
        return 1
    figures = render(summary)
    print(figures)
    if args.write is not None:
        args.write.write_text(rewrite(args.write.read_text(encoding="utf-8"), figures), encoding="utf-8")
        print(f"\nwrote the figures into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
