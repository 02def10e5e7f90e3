"""`make timeline` shows a relay session's conversation (its `turn#` items) beside the status
events and action outcomes: in ItemKey order, times relative to the call, an interrupted reply
with what the caller heard, phone numbers masked, every line within 100 columns."""

from __future__ import annotations

from datetime import UTC, datetime

from voicedev.emulator.timeline import SessionTimeline, is_turn, render, render_turns

START = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
LONG = "We are open from nine to five, Monday to Friday, and on Saturdays from ten to two. " * 2


def turn(key: str, role: str, kind: str, text: str, second: float, **extra: object) -> dict[str, object]:
    moment = START.replace(microsecond=int((second % 1) * 1e6), second=int(second))
    return {
        "ItemKey": key,
        "Role": role,
        "Kind": kind,
        "Text": text,
        "EventTime": moment.isoformat(),
        **extra,
    }


TURNS = [
    turn("turn#01#000001", "caller", "prompt", "What are your opening hours?", 3),
    turn("turn#01#000002", "agent", "reply", LONG.strip(), 3.2, Interrupted=True, Heard="We are open"),
    turn("turn#01#000003", "caller", "dtmf", "1", 9),
    turn("turn#02#000001", "caller", "prompt", "Call me on +15550109999", 20),
]


def test_turns_render_in_order_with_relative_times_and_the_interruption_marked() -> None:
    lines = render_turns(TURNS, START)
    text = "\n".join(lines)
    assert lines[1] == "  Conversation (relay agent turns, in order; time: when it happened)"
    assert lines[2].split() == ["turn", "time", "who", "kind", "text"]
    assert lines[3].split()[:5] == ["01#1", "+3.0s", "caller", "prompt", "What"]
    assert lines[4].split()[:4] == ["01#2", "+3.2s", "agent", "reply"]
    assert "[interrupted; heard: 'We are open']" in " ".join(text.split())
    assert any(line.split()[:2] == ["02#1", "+20.0s"] for line in lines)
    assert "+15550109999" not in text
    assert all(len(line) <= 100 for line in lines), text


def test_turns_handed_over_out_of_order_are_listed_in_conversation_order() -> None:
    # Given the same turns in another order (as a scan or a merge of attempts may give them)
    shuffled = [TURNS[3], TURNS[1], TURNS[0], TURNS[2]]

    # When they are rendered, Then the rows are exactly those of the ordered turns
    assert render_turns(shuffled, START) == render_turns(TURNS, START)


def test_a_session_without_turns_shows_no_conversation() -> None:
    assert render_turns([], START) == []


def test_the_timeline_places_the_conversation_after_the_status_events() -> None:
    session = {"CreatedAt": START.isoformat(), "SessionId": "s", "ItemKey": "session"}
    timeline = SessionTimeline(session_id="s", session=session, events=[], turns=TURNS)
    rendered = render(timeline)
    assert rendered.index("Status events") < rendered.index("Conversation (relay agent turns")
    assert rendered.index("Conversation (relay agent turns") < rendered.index(
        "Action requests and recordings"
    )


def test_only_turn_items_are_turns() -> None:
    assert is_turn({"ItemKey": "turn#01#000001"})
    assert not is_turn({"ItemKey": "session"})
    assert not is_turn({"SequenceNumber": 0})
