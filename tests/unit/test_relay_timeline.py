"""`make timeline` shows a relay session's conversation, in order, beside the rest."""

from __future__ import annotations

from voicedev.emulator.timeline import SessionTimeline, render

SESSION = "CA" + "ab" * 16 + "-0011223344556677"


def turn(seq: int, role: str, kind: str, text: str, **extra: object) -> dict[str, object]:
    return {
        "SessionId": SESSION,
        "ItemKey": f"turn#01#{seq:06d}",
        "Role": role,
        "Kind": kind,
        "Text": text,
        "EventTime": f"2026-12-01T10:00:0{seq}+00:00",
        **extra,
    }


def test_the_conversation_is_listed_in_turn_order_with_what_the_caller_heard() -> None:
    # Given a session with turns stored out of order, one reply interrupted
    session = {"SessionId": SESSION, "CreatedAt": "2026-12-01T10:00:00+00:00", "Flow": "assistant"}
    timeline = SessionTimeline(session_id=SESSION, session=session, events=[])
    timeline.turns = [
        turn(3, "agent", "reply", "We are open from nine to five.", Interrupted=True, Heard="We are open"),
        turn(1, "system", "setup", ""),
        turn(2, "caller", "prompt", "What are your hours? Call me at +15550109999"),
    ]

    # When it is rendered
    text = render(timeline)

    # Then the conversation section lists the turns in order, phone numbers masked
    section = text.split("Conversation (relay turns")[1]
    assert section.index("01#000001") < section.index("01#000002") < section.index("01#000003")
    assert "heard: 'We are open'" in section
    assert "+15550109999" not in section
