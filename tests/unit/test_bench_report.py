"""What `make bench` prints and writes: tables in text and Markdown, and docs/benchmarks.md's
generated section replaced between its markers, the hand-written text around it kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from voicedev.bench.machine import Machine, cpu_model, memory_gib
from voicedev.bench.report import (
    BEGIN,
    END,
    Report,
    Section,
    Table,
    measure_table,
    replace_generated,
    write_doc,
)
from voicedev.bench.stats import Measure


def machine() -> Machine:
    return Machine(
        cpu="Test CPU 3000",
        cores=2,
        memory_gib=8.0,
        python="3.11.7",
        implementation="cpython",
        platform="Linux 6 x86_64",
        date="2026-01-01 00:00 UTC",
        wall_s=42.0,
    )


def test_a_table_renders_as_markdown_with_a_header_separator_and_escaped_cells() -> None:
    table = Table(("route", "median"), (("connect", "0.75 ms"), ("a|b", "1 ms")))

    assert table.markdown().splitlines() == [
        "| route | median |",
        "| --- | --- |",
        "| connect | 0.75 ms |",
        "| a\\|b | 1 ms |",
    ]


def test_a_table_renders_as_aligned_text_columns() -> None:
    table = Table(("route", "median"), (("connect", "0.75 ms"), ("status", "1.1 ms")))

    lines = table.text().splitlines()

    assert lines[0] == "route    median"
    assert lines[1] == "-------  -------"
    assert lines[2] == "connect  0.75 ms"
    assert lines[3] == "status   1.1 ms"


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 headers"):
        Table(("a", "b", "c"), (("1", "2"),))


def test_the_measure_table_shows_median_floor_ratio_runs_and_verdict() -> None:
    measures = [
        Measure("connect", (300.0, 302.0, 310.0), (150.0, 151.0, 149.0), goal=1.3),
        Measure("status", (1.0, 1.0, 1.0), (0.6, 0.6, 0.6), goal=2.0),
    ]

    table = measure_table(measures, "function", "floor (boto3 + clients)")

    assert table.headers == ("function", "median", "floor (boto3 + clients)", "ratio", "runs", "goal")
    assert table.rows[0] == ("connect", "302 ms", "150 ms", "2.01x", "3", "MISSED (<= 1.3x)")
    assert table.rows[1] == ("status", "1.00 ms", "0.600 ms", "1.67x", "3", "met (<= 2x)")


def test_the_report_names_the_machine_python_and_date() -> None:
    section = Section(
        "Warm request per route", intro="Intro.", tables=[Table(("a",), (("1",),))], notes=["n"]
    )
    report = Report(machine(), [section])

    markdown = report.markdown()

    assert "- Machine: Test CPU 3000, 2 cores, 8 GiB RAM" in markdown
    assert "- Python 3.11.7 (cpython), Linux 6 x86_64" in markdown
    assert "- Run: 2026-01-01 00:00 UTC, 42 s" in markdown
    assert "### Warm request per route\n\nIntro.\n\n| a |\n| --- |\n| 1 |\n\n- n" in markdown


def test_the_load_on_the_machine_is_stated_when_known() -> None:
    busy = machine()
    busy.load_start, busy.load_end = 1.04, 2.5

    assert Report(busy, []).header_lines()[2] == (
        "Run: 2026-01-01 00:00 UTC, 42 s; load average 1.0 before the run (other work on the machine), "
        "2.5 at its end (its own processes included), 2 cores"
    )


def test_a_quick_run_says_its_figures_are_not_to_be_quoted() -> None:
    assert "BENCH_QUICK" in Report(machine(), [], quick=True).text()
    assert "BENCH_QUICK" not in Report(machine(), [], quick=False).text()


def test_only_the_generated_section_is_replaced() -> None:
    # Given a document with hand-written text around an old generated section
    text = f"# Benchmarks\n\nMethod.\n\n{BEGIN}\nold figures\n{END}\n\n## What remains\n\nAnalysis.\n"

    # When a new section replaces it
    replaced = replace_generated(text, f"{BEGIN}\nnew figures\n{END}")

    # Then the text around it is unchanged and the old figures are gone
    assert (
        replaced
        == f"# Benchmarks\n\nMethod.\n\n{BEGIN}\nnew figures\n{END}\n\n## What remains\n\nAnalysis.\n"
    )


def test_a_document_without_markers_gets_the_section_appended() -> None:
    replaced = replace_generated("# Benchmarks\n\nMethod.\n", f"{BEGIN}\nfigures\n{END}")

    assert replaced == f"# Benchmarks\n\nMethod.\n\n{BEGIN}\nfigures\n{END}\n"


def test_write_doc_puts_the_report_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{BEGIN}\n{END}\n\nAfter.\n", encoding="utf-8")

    write_doc(Report(machine(), [Section("Package size")]), doc)

    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\n" + BEGIN)
    assert "### Package size" in text
    assert text.endswith(END + "\n\nAfter.\n")


def test_the_cpu_model_and_memory_are_read_from_proc(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t: fpu\n", encoding="utf-8")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree: 1 kB\n", encoding="utf-8")

    assert cpu_model(cpuinfo) == "AMD EPYC 9R14"
    assert memory_gib(meminfo) == 24.0
    assert cpu_model(tmp_path / "missing")  # falls back to what the platform module knows
    assert memory_gib(tmp_path / "missing") is None
