"""The machine a run measured: figures are only comparable on the same one."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`model name` from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gib: float | None
    python: str
    implementation: str
    platform: str
    date: str
    wall_s: float = 0.0
    """How long the whole run took (set at the end)."""
    load_start: float | None = None
    load_end: float | None = None
    """The 1-minute load average when the run started and ended: other work on the machine slows
    every figure (floors included)."""

    @classmethod
    def current(cls) -> Machine:
        return cls(
            cpu=cpu_model(),
            cores=os.cpu_count() or 1,
            memory_gib=memory_gib(),
            python=platform.python_version(),
            implementation=sys.implementation.name,
            platform=f"{platform.system()} {platform.release()} {platform.machine()}",
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            load_start=load_average(),
        )

    def describe(self) -> str:
        memory = f", {self.memory_gib:.0f} GiB RAM" if self.memory_gib else ""
        return f"{self.cpu}, {self.cores} core{'s' if self.cores != 1 else ''}{memory}"
