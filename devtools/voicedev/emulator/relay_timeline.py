"""The relay conversation in `make timeline`: the session's turn items (docs/relay-agent.md), in
order, beside the status events and the action outcome. Texts are masked like every other field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from voicedev.emulator.output import mask_text

TURN_PREFIX = "turn#"
MAX_TEXT = 90


def is_turn(item: Mapping[str, Any]) -> bool:
    return str(item.get("ItemKey", "")).startswith(TURN_PREFIX)


def _text(turn: Mapping[str, Any]) -> str:
    text = str(turn.get("Text", ""))
    if turn.get("Kind") == "reply" and turn.get("Interrupted"):
        text = f"{text.strip()}  [interrupted; heard: {str(turn.get('Heard', '')).strip()!r}]"
    if turn.get("ConnectionGone"):
        text += "  [connection gone]"
    text = " ".join(text.split())
    return mask_text(text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…")


def conversation_lines(
    turns: Iterable[Mapping[str, Any]],
    start: datetime | None,
    relative: Callable[[datetime | None, datetime | None, int], str],
    parse_time: Callable[[Any], datetime | None],
) -> list[str]:
    ordered = sorted(turns, key=lambda turn: str(turn.get("ItemKey", "")))
    if not ordered:
        return []
    lines = ["", "  Conversation (relay turns, in order; attempt#seq)"]
    for turn in ordered:
        key = str(turn["ItemKey"]).removeprefix(TURN_PREFIX)
        when = relative(parse_time(turn.get("EventTime")), start, 3)
        who = f"{turn.get('Role', '?')}/{turn.get('Kind', '?')}"
        lines.append(f"    {key}  {when:>8}  {who:<16} {_text(turn)}")
    return lines
