"""What the reliability suite did in a run, counted as it happens, and written at the end to a small
JSON summary (`RELIABILITY_SUMMARY`, default .pytest_cache/reliability-summary.json, gitignored):
`make reliability-report` turns the last full run's summary into docs/reliability.md's figures."""

from __future__ import annotations

import json
import os
import platform
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

DEFAULT_SUMMARY = ROOT / ".pytest_cache" / "reliability-summary.json"
# Seconds a slow test may take (pytest's default timeout is for ordinary tests).
SLOW_TIMEOUT = 900


def summary_path() -> Path:
    return Path(os.environ.get("RELIABILITY_SUMMARY") or DEFAULT_SUMMARY)


class Ledger:
    """Counters per section (`ordering`, `hostile`, `faults`, `races`, `load`), and the tests'
    outcomes and durations split by the `slow` marker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sections: dict[str, Counter[str]] = {}
        self.outcomes: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.tests: Counter[str] = Counter()

    def add(self, section: str, **counts: int) -> None:
        with self._lock:
            counter = self.sections.setdefault(section, Counter())
            for name, value in counts.items():
                counter[name] += int(value)

    def at_least(self, section: str, **values: int) -> None:
        """Figures of the run rather than sums over tests (fault points found, calls simulated)."""
        with self._lock:
            counter = self.sections.setdefault(section, Counter())
            for name, value in values.items():
                counter[name] = max(counter[name], int(value))

    def count(self, section: str, name: str) -> int:
        return int(self.sections.get(section, Counter())[name])

    def test_finished(self, *, slow: bool, outcome: str, seconds: float) -> None:
        part = "slow" if slow else "fast"
        with self._lock:
            self.outcomes[outcome] += 1
            self.seconds[part] += seconds
            if outcome == "passed":
                self.tests[part] += 1

    @property
    def ran(self) -> bool:
        return bool(self.outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(),
            "outcomes": dict(self.outcomes),
            "tests_passed": dict(self.tests),
            "seconds": {part: round(value, 1) for part, value in self.seconds.items()},
            "slow_included": self.tests["slow"] > 0,
            "sections": {
                name: dict(sorted(counter.items())) for name, counter in sorted(self.sections.items())
            },
        }

    def write(self, path: Path | None = None) -> Path:
        target = path or summary_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        return target


LEDGER = Ledger()
