"""`make bench`'s arithmetic: medians, nearest-rank percentiles, a figure's ratio to its floor and
its verdict against the goal. Figures are made up: nothing here is timed."""

from __future__ import annotations

import math

import pytest
from voicedev.bench.stats import (
    Measure,
    Spread,
    format_bytes,
    format_ratio,
    format_value,
    median,
    percentile,
    spread,
)


def test_median_of_odd_and_even_counts_and_of_nothing() -> None:
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert math.isnan(median([]))


def test_percentile_is_nearest_rank() -> None:
    # Given the values 1..100 in any order
    values = [float(value) for value in range(100, 0, -1)]

    # Then p99 is the 99th smallest, p50 the 50th, p100 the largest
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.99))
    with pytest.raises(ValueError, match="fraction"):
        percentile(values, 0)


def test_a_spread_is_the_count_median_and_nearest_rank_percentile_the_reports_show() -> None:
    # Given the durations 1..30 in any order (as `make cost` and the relay bench collect them)
    values = [float(value) for value in range(30, 0, -1)]

    # Then p99 is the 30th smallest, p90 the 27th, and the median 15.5
    assert spread(values) == Spread(count=30, median=15.5, upper=30.0)
    assert spread(values, 0.9) == Spread(count=30, median=15.5, upper=27.0)
    # And nothing measured stays visible as NaN, not a zero
    empty = spread([])
    assert empty.count == 0
    assert math.isnan(empty.median)
    assert math.isnan(empty.upper)


def test_a_measure_is_the_ratio_of_its_median_to_its_floors_median() -> None:
    # Given seven runs of a figure and of its floor (an outlier in each)
    measure = Measure(
        name="connect",
        samples=(300.0, 310.0, 290.0, 305.0, 295.0, 900.0, 302.0),
        floor_samples=(150.0, 152.0, 148.0, 400.0, 151.0, 149.0, 150.0),
        goal=1.3,
    )

    # Then the medians ignore the outliers, and the ratio is theirs
    assert measure.value == 302.0
    assert measure.floor == 150.0
    assert measure.ratio == pytest.approx(302.0 / 150.0)
    assert measure.runs == 7
    assert measure.met is False
    assert measure.verdict() == "MISSED (<= 1.3x)"


def test_a_measure_within_its_goal_is_met_and_one_without_a_goal_has_no_verdict() -> None:
    within = Measure("status", samples=(1.9, 2.0, 2.1), floor_samples=(1.0, 1.0, 1.0), goal=2.0)
    exactly = Measure("action", samples=(2.0,), floor_samples=(1.0,), goal=2.0)
    informative = Measure("latency", samples=(5.0,), floor_samples=(1.0,))

    assert within.met is True
    assert within.verdict() == "met (<= 2x)"
    assert exactly.met is True
    assert informative.met is None
    assert informative.verdict() == "-"


def test_a_measure_without_floor_samples_has_no_ratio_and_says_so() -> None:
    measure = Measure("archiver", samples=(10.0,), floor_samples=(), goal=1.3)

    assert math.isnan(measure.ratio)
    assert measure.met is None
    assert measure.verdict() == "not measured"


def test_values_are_shown_with_digits_fitting_their_size() -> None:
    assert format_value(412.4, "ms") == "412 ms"
    assert format_value(12.34, "ms") == "12.3 ms"
    assert format_value(1.876, "ms") == "1.88 ms"
    assert format_value(0.18349, "ms") == "0.183 ms"
    assert format_value(math.nan, "ms") == "n/a"
    assert format_ratio(1.8349) == "1.83x"
    assert format_ratio(math.nan) == "n/a"
    assert format_bytes(312) == "312 B"
    assert format_bytes(7.4 * 1024) == "7.4 KiB"
    assert format_bytes(69.2 * 1024 * 1024) == "69.2 MiB"
    assert format_bytes(150 * 1024 * 1024) == "150 MiB"
