"""`make bench`'s relay latency: its statistics and its report (figures are made up: nothing here
is timed), and what it says when the template has no WebSocket API to measure."""

from __future__ import annotations

import math

import pytest
from voicedev.bench import relay
from voicedev.bench.cli import FULL, QUICK, SECTIONS


def test_median_and_p99_over_the_prompts() -> None:
    # Given 100 first-token times of 1..100 ms
    result = relay.RelayLatency(prompts=100, samples_ms=[float(ms) for ms in range(100, 0, -1)])

    # Then the median is 50.5 ms and p99 the 99th smallest (nearest rank)
    assert result.median_ms == 50.5
    assert result.p99_ms == 99.0


def test_the_section_shows_the_figure_and_its_floor_with_median_p99_and_prompts() -> None:
    result = relay.RelayLatency(
        prompts=20, samples_ms=[12.0, 14.0, 13.0], missing=17, floor_ms=[4.0, 3.0, 5.0, 4.0]
    )
    section = relay.section(result)
    (table,) = section.tables
    assert table.headers == ("figure", "median", "p99", "prompts")
    assert table.rows == (
        ("prompt -> first text token (scripted agent)", "13.0 ms", "14.0 ms", "3"),
        ("floor: one token posted back at once", "4.00 ms", "5.00 ms", "4"),
    )
    assert result.ratio == 13.0 / 4.0
    assert "17 of 20 prompts got no text token within 15 s" in section.notes
    assert "the agent's median is 3.25x the floor's" in section.notes
    assert section.title == "Relay latency"


def test_without_the_agent_the_floor_is_shown_and_the_reason_given() -> None:
    section = relay.section(relay.RelayLatency(prompts=2, skipped="no WebSocket API", floor_ms=[4.0, 6.0]))
    (table,) = section.tables
    assert [row[0] for row in table.rows] == ["floor: one token posted back at once"]
    assert "agent not measured: no WebSocket API" in section.notes
    assert math.isnan(relay.RelayLatency(prompts=0).median_ms)


def test_the_floor_is_measured_through_the_local_websocket_api() -> None:
    # Given a handful of prompts to the floor handler / When they are timed
    result = relay.RelayLatency(prompts=3)
    relay.run_floor(3, result)

    # Then each got its token back (a real time, well under the receive timeout)
    assert len(result.floor_ms) == 3
    assert result.missing == 0
    assert all(0 < ms < relay.RECV_TIMEOUT * 1000 for ms in result.floor_ms)


def test_without_the_websocket_api_the_run_is_skipped_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a template without the WebSocket API (an older checkout's)
    monkeypatch.setattr(relay, "template_has_websocket_api", lambda: False)

    # When the relay figure runs
    result = relay.run(prompts=3)

    # Then it says why the agent was not measured, and measured nothing of it
    assert result.skipped is not None
    assert result.samples_ms == []


def test_the_relay_section_is_part_of_the_bench_with_fewer_prompts_when_quick() -> None:
    assert "relay" in SECTIONS
    assert (FULL.relay_prompts, QUICK.relay_prompts) == (200, 20)
