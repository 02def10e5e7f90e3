"""The emulator's printed lines fit a 100-column terminal: long answers, labels and timeline cells
wrap at spaces, continuation lines indented under their column, and nothing is lost."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from voicedev.emulator.output import WIDTH, exchange_line, fit, wrap
from voicedev.emulator.timeline import SessionTimeline, render

LONG_ANSWER = (
    "Say 'Sorry, we could not find an open conversation f…' ; Say 'Sorry, your advisor is not "
    "available right now.…' ; Record (max 120s, action /voice/action, in-progress/completed/absent) ; "
    "Say 'We did not receive a message. Goodbye.' ; Hangup"
)


def words(text: str) -> list[str]:
    return text.split()


def exchange(label: str, came_back: str) -> Any:
    response = SimpleNamespace(status=200, error=None, latency_ms=78.0)
    sent = SimpleNamespace(
        method="POST",
        url="http://127.0.0.1:3000/voice/action?session=CA00000000abababababababababababab-0123456789abcdef",
        response=response,
        attempt=1,
    )
    return SimpleNamespace(sent=sent, duplicate=False, t=21.0, label=label, came_back=lambda: came_back)


def test_a_long_answer_wraps_under_itself_within_100_columns_and_keeps_every_word() -> None:
    # Given the longest request of SCENARIO=all (no-conversation-found: five verbs answered)
    item = exchange("Result=dialed-call-incomplete DialCallStatus=no-answer From=+15550100001", LONG_ANSWER)

    # When its lines are formatted
    lines = exchange_line(item).split("\n")

    # Then every line fits, the continuations line up under the answer, and nothing is lost
    assert all(len(line) <= WIDTH for line in lines), [len(line) for line in lines]
    assert len(lines) > 2
    answer_start = next(index for index, line in enumerate(lines) if "-> 200 in 78 ms" in line)
    assert all(line.startswith(" " * 14) and line[14] != " " for line in lines[answer_start + 1 :])
    text = " ".join(lines)
    assert words(LONG_ANSWER)[0] in text and "Hangup" in text
    assert words(text)[-len(words(LONG_ANSWER)) :] == words(LONG_ANSWER)
    assert "+15550100001" not in text and "From=+1555*****01" in text  # still masked


def test_short_lines_are_left_as_they_are() -> None:
    line = "    +1.0s  POST /voice/status?session=CA0000…2ce5            #1 call-initiated"
    assert wrap(line) == [line]
    assert fit(f"{line}\n\n{line}") == f"{line}\n\n{line}"


def test_a_word_longer_than_a_line_is_still_cut_to_fit() -> None:
    lines = wrap("  HandoffData=" + "x" * 250)
    assert all(len(line) <= WIDTH for line in lines)
    assert "".join(line.strip() for line in lines) == "HandoffData=" + "x" * 250


def test_timeline_tables_wrap_their_last_column_under_itself() -> None:
    # Given a session whose stored details are longer than a terminal line
    session = {
        "SessionId": "CA00000000abababababababababababab-0123456789abcdef",
        "ItemKey": "session",
        "SessionCallSid": "CA00000000abababababababababababab",
        "From": "+15005550006",
        "To": "+15550100001",
        "Direction": "inbound",
        "Flow": "frontline",
        "FlowKind": "conversation",
        "CreatedAt": "2026-12-01T20:18:52.733753+00:00",
        "LatestStatus": "call-completed",
        "LatestSequenceNumber": 4,
        "ConversationSid": "CH93142c54d82707289faccdfdb419c0c4",
    }
    action = {
        "ItemKey": "action#connect",
        "ReceivedAt": "2026-12-01T20:18:53.900000+00:00",
        "Result": "session-success",
        "DialCallStatus": "completed",
        "RecordingDuration": 60,
        "Outcome": "session-success",
        "Next": "hangup",
    }
    event = {
        "ItemKey": "event#conversation#0000000001",
        "SequenceNumber": 1,
        "Status": "call-initiated",
        "Timestamp": "Tue, 01 Dec 2026 20:18:53 +0000",
        "ReceivedAt": "2026-12-01T20:18:53.100000+00:00",
        "DialCallSid": "CAd6303d00000000000000000000000b89",
        "ConversationSid": "CH93142c54d82707289faccdfdb419c0c4",
        "WorkerInitiated": False,
    }
    timeline = SessionTimeline(
        session_id=session["SessionId"], session=session, events=[event], actions=[action]
    )

    # When it is rendered
    lines = render(timeline).split("\n")

    # Then every line fits, and a wrapped cell continues under its own column
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    row = next(index for index, line in enumerate(lines) if "call-initiated" in line)
    column = lines[row].index("DialCallSid=")
    assert lines[row + 1].startswith(" " * column) and lines[row + 1][column] != " "
    assert "WorkerInitiated=False" in "\n".join(lines[row + 1 : row + 3])
    assert "ConversationSid CH93142c…c0c4" in "\n".join(lines)
