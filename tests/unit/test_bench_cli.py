"""`make bench` as a command: its goals summary, and when it writes docs/benchmarks.md (only after a
complete run, never a BENCH_QUICK smoke run). No benchmark runs here: nothing is timed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from voicedev.bench import cli
from voicedev.bench.cli import goals_table, run
from voicedev.bench.report import BEGIN, END, Section
from voicedev.bench.stats import Measure
from voicedev.bench.throughput import Ledger


def test_the_goals_table_gives_each_figure_its_ratio_and_verdict() -> None:
    table = goals_table(
        [
            ("cold start", Measure("connect", (300.0,), (150.0,), goal=1.3)),
            ("warm request", Measure("status", (1.0,), (0.6,), goal=2.0)),
        ]
    )

    assert table.rows == (
        ("cold start: connect", "2.00x", "<= 1.3x", "MISSED"),
        ("warm request: status", "1.67x", "<= 2x", "met"),
    )


def test_an_unknown_benchmark_is_refused() -> None:
    with pytest.raises(SystemExit):
        run(["--only", "cold,speed"], emit=lambda line: None)


def test_a_quick_run_never_writes_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{BEGIN}\nreal figures\n{END}\n", encoding="utf-8")
    monkeypatch.setenv("BENCH_QUICK", "1")
    said: list[str] = []

    assert run(["--only", "", "--write"], emit=said.append, doc=doc) == 0

    assert "real figures" in doc.read_text(encoding="utf-8")
    assert any("BENCH_QUICK" in line and "left as it is" in line for line in said)


def test_a_partial_run_never_writes_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{BEGIN}\nall four benchmarks\n{END}\n", encoding="utf-8")
    monkeypatch.delenv("BENCH_QUICK", raising=False)
    said: list[str] = []

    assert run(["--only", "", "--write"], emit=said.append, doc=doc) == 0

    assert "all four benchmarks" in doc.read_text(encoding="utf-8")
    assert "benchmarks.md left as it is: only a complete run replaces its figures" in said


def test_a_complete_run_with_write_replaces_the_generated_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a document, and the five benchmarks answering at once (they are not what is tested)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nMethod.\n\n{BEGIN}\nold figures\n{END}\n\nAnalysis.\n", encoding="utf-8")
    monkeypatch.delenv("BENCH_QUICK", raising=False)
    monkeypatch.setattr(cli, "cold_section", lambda *args: (Section("cold_section ran"), []))
    monkeypatch.setattr(cli, "warm_section", lambda *args: (Section("warm_section ran"), []))
    monkeypatch.setattr(cli.throughput, "run", lambda **kwargs: SimpleNamespace(ledger=Ledger()))
    monkeypatch.setattr(cli.throughput, "section", lambda result: Section("throughput ran"))
    monkeypatch.setattr(cli.size, "ensure_build", lambda progress: "reused")
    monkeypatch.setattr(cli.size, "measure_build", lambda how, imported=None: how)
    monkeypatch.setattr(cli.size, "section", lambda report: Section(f"size ran ({report})"))
    monkeypatch.setattr(cli.relay, "run", lambda prompts, progress: SimpleNamespace(prompts=prompts))
    monkeypatch.setattr(cli.relay, "section", lambda result: Section(f"relay ran ({result.prompts} prompts)"))

    # When the complete run writes
    assert run(["--write"], emit=lambda line: None, doc=doc) == 0

    text = doc.read_text(encoding="utf-8")
    assert "old figures" not in text
    assert "- Machine: " in text
    assert "### Goals" in text
    for name in (
        "cold_section ran",
        "warm_section ran",
        "throughput ran",
        "size ran (reused)",
        "relay ran (200 prompts)",
    ):
        assert f"### {name}" in text
    assert text.startswith("# Benchmarks\n\nMethod.\n\n")
    assert text.endswith("\n\nAnalysis.\n")
