"""The figures of docs/reliability.md come from a run's summary, and only from a full, green one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT
from tests.reliability.report import BEGIN, END, main, problems, render, rewrite

SUMMARY = Path(__file__).parent / "fixtures" / "summary.json"
DOC = ROOT / "docs" / "reliability.md"


def summary() -> dict:
    return json.loads(SUMMARY.read_text(encoding="utf-8"))


def test_the_figures_show_the_runs_counts() -> None:
    # Given a full run's summary, When rendered
    figures = render(summary())
    # Then each area's counts are in the table, and data lost and doubled are totals over the areas
    load = "| 220 in 2 runs; the largest 200 calls, 16 at a time |"
    assert "| Load | calls (emulator through the local mode) " + load in figures
    assert (
        "| Faults | faults injected | 297 (throttling 75, 5xx 74, unreachable 74, applied, answer lost 74)"
        in figures
    )
    assert "| Hostile input | 5xx answers | 0 |" in figures
    assert "| All | data lost, beyond the documented trade-offs | 0 |" in figures
    assert "; answered without a retry (TwiML routes, the queued mark) 42; failed 0 |" in figures
    assert "| Ordering | differences found | 0 |" in figures


def test_a_partial_or_red_run_is_refused(tmp_path: Path) -> None:
    # Given runs without the slow part, with a failure, or without an area
    fast_only = {**summary(), "slow_included": False}
    red = {**summary(), "outcomes": {"passed": 13, "failed": 1}}
    partial = {**summary(), "sections": {"load": summary()["sections"]["load"]}}
    # Then none of them may write the document's figures
    assert problems(summary()) == []
    assert "slow" in problems(fast_only)[0]
    assert "failed" in problems(red)[0]
    assert "faults" in problems(partial)[0]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(red), encoding="utf-8")
    document = tmp_path / "doc.md"
    document.write_text(f"intro\n{BEGIN}\nold\n{END}\noutro\n", encoding="utf-8")
    assert main(["--summary", str(path), "--write", str(document)]) == 1
    assert "old" in document.read_text(encoding="utf-8")


def test_only_the_figures_block_is_rewritten() -> None:
    document = f"intro\n{BEGIN}\nold figures\n{END}\noutro\n"
    assert rewrite(document, "new figures") == f"intro\n{BEGIN}\nnew figures\n{END}\noutro\n"


def test_the_document_carries_figures_in_the_generated_form() -> None:
    # The block exists once, and holds a table rendered from a summary (not hand-written).
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    rendered_rows = [line.split("|")[1:3] for line in render(summary()).splitlines()]
    assert [line.split("|")[1:3] for line in block.splitlines()] == rendered_rows
