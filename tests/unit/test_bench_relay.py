"""`make bench`'s relay latency: its statistics and its report (figures are made up: nothing here
is timed), and what it says when the template has no WebSocket API to measure."""

from __future__ import annotations

import math

import pytest
from voicedev.bench import relay
from voicedev.bench.cli import FULL, QUICK, SECTIONS
from voicedev.local_ws import template_has_websocket_api


def test_median_and_p99_over_the_prompts() -> None:
    # Given 100 first-token times of 1..100 ms
    result = relay.RelayLatency(prompts=100, samples_ms=[float(ms) for ms in range(100, 0, -1)])

    # Then the median is 50.5 ms and p99 the 99th smallest (nearest rank)
    assert result.median_ms == 50.5
    assert result.p99_ms == 99.0


def test_the_section_shows_median_p99_and_how_many_prompts() -> None:
    result = relay.RelayLatency(prompts=20, samples_ms=[12.0, 14.0, 13.0], missing=17)
    section = relay.section(result)
    (table,) = section.tables
    assert table.headers == ("figure", "median", "p99", "prompts")
    assert table.rows == (("prompt -> first text token", "13.0 ms", "14.0 ms", "3"),)
    assert "17 of 20 prompts got no text token within 15 s" in section.notes
    assert section.title == "Relay latency"
    assert "prompt -> first text token" in section.text()


def test_nothing_measured_says_why() -> None:
    section = relay.section(relay.RelayLatency(prompts=20, skipped="no WebSocket API"))
    assert section.tables == []
    assert section.notes == ["not measured: no WebSocket API"]
    assert math.isnan(relay.RelayLatency(prompts=0).median_ms)


@pytest.mark.skipif(template_has_websocket_api(), reason="the template has the WebSocket API: measured")
def test_without_the_websocket_api_the_run_is_skipped_not_failed() -> None:
    result = relay.run(prompts=3)
    assert result.skipped is not None
    assert result.samples_ms == []


def test_the_relay_section_is_part_of_the_bench_with_fewer_prompts_when_quick() -> None:
    assert "relay" in SECTIONS
    assert (FULL.relay_prompts, QUICK.relay_prompts) == (200, 20)
