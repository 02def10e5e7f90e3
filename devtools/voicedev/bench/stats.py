"""The arithmetic every figure goes through: medians, percentiles, and a figure's ratio to its floor."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values (a figure that could not be measured stays visible)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: p99 of 100 values is the 99th smallest (the emulator's definition)."""
    if not values:
        return math.nan
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Spread:
    """Samples summed up as the reports show them: how many, their median and one upper percentile."""

    count: int
    median: float
    upper: float
    """The `fraction` percentile `spread()` was asked for (nearest rank): p99, p90."""


def spread(values: Sequence[float], fraction: float = 0.99) -> Spread:
    """The median and the nearest-rank `fraction` percentile of `values` (NaN for none)."""
    return Spread(count=len(values), median=median(values), upper=percentile(values, fraction))


@dataclass(frozen=True)
class Measure:
    """A figure and its floor, each the median of `runs` runs measured in the same benchmark run.

    `goal` is the largest ratio (value / floor) the project accepts; None: reported only."""

    name: str
    samples: tuple[float, ...]
    floor_samples: tuple[float, ...]
    unit: str = "ms"
    goal: float | None = None

    @property
    def value(self) -> float:
        return median(self.samples)

    @property
    def floor(self) -> float:
        return median(self.floor_samples)

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def ratio(self) -> float:
        value, floor = self.value, self.floor
        if math.isnan(value) or math.isnan(floor) or floor <= 0:
            return math.nan
        return value / floor

    @property
    def met(self) -> bool | None:
        """True / False against the goal; None without a goal or without a ratio."""
        ratio = self.ratio
        if self.goal is None or math.isnan(ratio):
            return None
        return ratio <= self.goal

    def verdict(self) -> str:
        met = self.met
        if met is None:
            return "-" if self.goal is None else "not measured"
        return f"{'met' if met else 'MISSED'} (<= {self.goal:g}x)"


def format_value(value: float, unit: str) -> str:
    """`412 ms`, `0.183 ms`, `n/a`: enough digits for the size of the number."""
    if math.isnan(value):
        return "n/a"
    if unit == "ms":
        if value >= 100:
            return f"{value:.0f} ms"
        if value >= 10:
            return f"{value:.1f} ms"
        if value >= 1:
            return f"{value:.2f} ms"
        return f"{value:.3f} ms"
    if unit == "us":
        return f"{value:.0f} µs" if value >= 100 else f"{value:.1f} µs"
    return f"{value:g} {unit}".strip()


def format_ratio(ratio: float) -> str:
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"


def format_bytes(size: float) -> str:
    """Binary units, three significant digits: `85.2 MiB`, `7.4 KiB`, `312 B`."""
    if math.isnan(size):
        return "n/a"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size) >= scale:
            scaled = size / scale
            return f"{scaled:.1f} {unit}" if abs(scaled) < 100 else f"{scaled:.0f} {unit}"
    return f"{size:.0f} B"
