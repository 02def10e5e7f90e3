"""What `make bench` prints and writes: tables (terminal and Markdown), and the generated section
of docs/benchmarks.md, which is replaced between two markers so the hand-written text around it
(method, analysis, what remains) stays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voicedev.bench.machine import Machine
from voicedev.bench.stats import Measure, format_ratio, format_value
from voicedev.template_resources import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:generated:begin (make bench) -->"
END = "<!-- bench:generated:end -->"


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"row {row!r} has {len(row)} cells for {len(self.headers)} headers")

    def markdown(self) -> str:
        def cells(values: Sequence[str]) -> str:
            return "| " + " | ".join(value.replace("|", "\\|") for value in values) + " |"

        lines = [cells(self.headers), "| " + " | ".join("---" for _ in self.headers) + " |"]
        lines += [cells(row) for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        widths = [
            max(len(self.headers[index]), *(len(row[index]) for row in self.rows))
            if self.rows
            else len(self.headers[index])
            for index in range(len(self.headers))
        ]

        def line(values: Sequence[str]) -> str:
            return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

        return "\n".join(
            [line(self.headers), line(["-" * width for width in widths])] + [line(r) for r in self.rows]
        )


def measure_table(measures: Sequence[Measure], name_header: str, floor_header: str = "floor") -> Table:
    """One row per figure: median, floor, ratio, runs, and the verdict against its goal."""
    return Table(
        headers=(name_header, "median", floor_header, "ratio", "runs", "goal"),
        rows=tuple(
            (
                measure.name,
                format_value(measure.value, measure.unit),
                format_value(measure.floor, measure.unit),
                format_ratio(measure.ratio),
                str(measure.runs),
                measure.verdict(),
            )
            for measure in measures
        ),
    )


@dataclass
class Section:
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Bullet points under the tables (what a figure depends on, what went wrong)."""
    blocks: list[tuple[str, str]] = field(default_factory=list)
    """Preformatted text (profiles) with its caption."""

    def markdown(self) -> str:
        parts = [f"### {self.title}"]
        if self.intro:
            parts.append(self.intro)
        parts += [table.markdown() for table in self.tables]
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        for caption, text in self.blocks:
            parts.append(f"{caption}\n\n```text\n{text.rstrip()}\n```")
        return "\n\n".join(parts)

    def text(self) -> str:
        parts = [self.title, "=" * len(self.title)]
        if self.intro:
            parts.append(self.intro)
        parts += [table.text() for table in self.tables]
        parts += [f"- {note}" for note in self.notes]
        for caption, text in self.blocks:
            parts += [caption, text.rstrip()]
        return "\n".join(parts) + "\n"


@dataclass
class Report:
    machine: Machine
    sections: list[Section]
    quick: bool = False

    def header_lines(self) -> list[str]:
        return [
            f"Machine: {self.machine.describe()}",
            f"Python {self.machine.python} ({self.machine.implementation}), {self.machine.platform}",
            f"Run: {self.machine.date}, {self.machine.wall_s:.0f} s"
            + (" (BENCH_QUICK: smoke run, too few runs to quote)" if self.quick else "")
            + self._load(),
        ]

    def _load(self) -> str:
        start, end = self.machine.load_start, self.machine.load_end
        if start is None or end is None:
            return ""
        return (
            f"; load average {start:.1f} before the run (other work on the machine), {end:.1f} at its end "
            f"(its own processes included), {self.machine.cores} cores"
        )

    def text(self) -> str:
        return (
            "\n".join(self.header_lines()) + "\n\n" + "\n".join(section.text() for section in self.sections)
        )

    def markdown(self) -> str:
        header = "\n".join(f"- {line}" for line in self.header_lines())
        return "\n\n".join([header, *(section.markdown() for section in self.sections)])


def generated_section(report: Report) -> str:
    return "\n".join([BEGIN, "", report.markdown(), "", END])


def replace_generated(text: str, section: str) -> str:
    """`text` with its generated section replaced (appended when the markers are missing)."""
    if BEGIN in text and END in text.split(BEGIN, 1)[1]:
        before, rest = text.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        return before + section + after
    return text.rstrip("\n") + "\n\n" + section + "\n"


def write_doc(report: Report, path: Path = DOC) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    path.write_text(replace_generated(text, generated_section(report)), encoding="utf-8")
