"""How the emulator prints: one line per request (what was sent, what came back), phone numbers
masked as everywhere else in the project."""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from voice_webhooks.runtime.observability import mask_phone

from voicedev.emulator.relay import Turn

if TYPE_CHECKING:
    from voicedev.emulator.engine import CallResult, Exchange

_PHONE = re.compile(r"\+\d{6,15}")
WIDTH = 100
"""Every line printed fits a 100-column terminal: longer ones are wrapped at spaces."""


def mask(value: str | None) -> str:
    return mask_phone(value) or ""


def mask_text(text: str) -> str:
    """Every E.164 number inside free text masked."""
    return _PHONE.sub(lambda match: mask(match.group()), text)


def short_path(url: str) -> str:
    """`/voice/status?session=CA0000…9a3f` : path and query, long values shortened."""
    parts = urlsplit(url)
    query = "&".join(_shorten_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return parts.path + (f"?{query}" if query else "")


def _shorten_pair(pair: str) -> str:
    name, _, value = pair.partition("=")
    if len(value) > 14:
        value = value[:6] + "\u2026" + value[-4:]
    return f"{name}={value}" if _ else name


def wrap(line: str, indent: int | None = None, width: int = WIDTH) -> list[str]:
    """`line` in lines of at most `width` columns, broken at spaces; continuation lines start at
    column `indent` (default: the line's own indentation plus four)."""
    if len(line) <= width:
        return [line]
    if indent is None:
        indent = len(line) - len(line.lstrip(" ")) + 4
    # Leave a continuation at least 30 columns of text.
    indent = min(indent, width - 30)
    return textwrap.wrap(
        line,
        width=width,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
        replace_whitespace=False,
        drop_whitespace=True,
    )


def fit(text: str, width: int = WIDTH) -> str:
    """Every line of `text` wrapped to `width` (see `wrap`)."""
    return "\n".join(part for line in text.split("\n") for part in wrap(line, width=width))


def exchange_line(exchange: Exchange) -> str:
    sent = exchange.sent
    response = sent.response
    status = str(response.status) if response.error is None else "ERR"
    tags = []
    if exchange.duplicate:
        tags.append("duplicate")
    if sent.attempt > 1:
        tags.append(f"retry {sent.attempt - 1}")
    tag = f" [{', '.join(tags)}]" if tags else ""
    came_back = exchange.came_back()
    when = f"+{exchange.t:.1f}s"
    sent_line = f"  {when:>7}  {sent.method:<4} {short_path(sent.url):<44} {mask_text(exchange.label)}{tag}"
    answer = f"  {'':>7}  -> {status} in {response.latency_ms:.0f} ms"
    answer += f": {mask_text(came_back)}" if came_back else ""
    # Continuations line up under the path, and under the answer after "-> ".
    return "\n".join([*wrap(sent_line, indent=16), *wrap(answer, indent=14)])


def turn_lines(turn: Turn, indent: str = "  " + " " * 7 + "  ") -> str:
    """A conversation turn, `caller`/`agent` first, wrapped within WIDTH columns."""
    head = f"{indent}{turn.role:<6} "
    text = mask_text(turn.text) + (f"  ({mask_text(turn.detail)})" if turn.detail else "")
    return textwrap.fill(
        text, width=WIDTH, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
    )


def call_header(result: CallResult) -> str:
    scenario = result.scenario
    return (
        f"== {scenario.name}: {scenario.title}\n"
        f"   call {result.call_sid}  {mask(result.from_)} -> {mask(result.to)}  ({scenario.direction}), "
        f"seed {result.seed}"
    )


def call_report(result: CallResult) -> str:
    lines = [call_header(result)]
    for item in result.log:
        if isinstance(item, Turn):
            lines.append(turn_lines(item))
        elif isinstance(item, str):
            lines.append(f"  {'':>7}  {mask_text(item)}")
        else:
            lines.append(exchange_line(item))
    verdict = "PASS" if result.ok else "FAIL"
    lines.append(f"  {verdict}: expected {result.scenario.expect.value}")
    lines.extend(f"  ! {mask_text(problem)}" for problem in result.problems)
    lines.extend(
        "  ~ differs from config/flows.example.json's answer (a configured outcome?): "
        + mask_text(difference)
        for difference in result.differences
    )
    return fit("\n".join(lines))
