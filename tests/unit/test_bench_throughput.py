"""The local-load benchmark's ledger: what the emulator sent, counted against the table's items
and the queue's messages, so a lost or doubled item cannot go unnoticed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from voicedev.bench.throughput import (
    Ledger,
    ThroughputResult,
    expected,
    from_json,
    reconcile,
    section,
    to_json,
)
from voicedev.emulator.engine import CallResult, RecordingMade, StatusEventSent
from voicedev.emulator.scenarios import SCENARIOS, get


def call(session: str, statuses: int, recordings: list[tuple[str, str, tuple[str, ...]]]) -> CallResult:
    result = CallResult(
        scenario=get("worker-answers"),
        call_sid="CA" + "0" * 32,
        from_="+15005550006",
        to="+15550100001",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        seed=1,
    )
    result.session_ids.append(session)
    for sequence in range(1, statuses + 1):
        result.status_events.append(StatusEventSent(session, sequence, "call-initiated", ()))
    for sid, final, events in recordings:
        result.recordings.append(RecordingMade(session, sid, "DialVerb", final, 10, "2", events))
    return result


def item(session: str, sequence: int) -> dict[str, Any]:
    """The session item (0) or a `<Conversation>` event item, keyed as docs/data-model.md says."""
    key = "session" if sequence == 0 else f"event#conversation#{sequence:010d}"
    return {"SessionId": session, "ItemKey": key, "SequenceNumber": sequence}


def message(recording_sid: str) -> dict[str, Any]:
    return {
        "Body": json.dumps({"recordingSid": recording_sid, "schema": "twilio-voice-webhooks.recording.v1"})
    }


CALLS = [
    call("s1", 4, [("RE1", "completed", ("in-progress", "completed"))]),
    # an absent recording, and a completed one whose callback did not ask for `completed`: no message
    call("s2", 2, [("RE2", "absent", ("in-progress", "absent")), ("RE3", "completed", ("in-progress",))]),
]


def test_what_must_be_stored_is_every_session_every_status_event_and_each_completed_recording_once() -> None:
    sessions, events, recordings = expected(CALLS)

    assert sessions == {"s1", "s2"}
    assert events == {("s1", 1), ("s1", 2), ("s1", 3), ("s1", 4), ("s2", 1), ("s2", 2)}
    assert recordings == {"RE1"}


def test_an_outbound_call_with_call_progress_events_has_its_own_session_too() -> None:
    # Given an outbound call whose call-progress events were sent (they come before its TwiML)
    outbound = call("CA" + "0" * 32 + "-0000000000000001", 1, [])
    outbound.scenario = next(s for s in SCENARIOS if s.direction != "inbound")
    outbound.call_events.append(StatusEventSent(outbound.call_sid, 0, "initiated", ()))

    # When the expected items are listed, Then the call's own session `<CallSid>` is one of them
    sessions, _, _ = expected([outbound])
    assert sessions == {outbound.call_sid + "-0000000000000001", outbound.call_sid}


def test_everything_stored_once_is_a_clean_ledger() -> None:
    items = [item("s1", n) for n in range(5)] + [item("s2", n) for n in range(3)]

    ledger = reconcile(CALLS, items, [message("RE1")])

    assert ledger == Ledger(
        sessions_expected=2,
        sessions_found=2,
        events_expected=6,
        events_found=6,
        messages_expected=1,
        messages_found=1,
    )


def test_a_missing_event_item_and_a_missing_message_are_lost() -> None:
    items = [item("s1", n) for n in (0, 1, 2, 4)] + [item("s2", n) for n in range(3)]

    ledger = reconcile(CALLS, items, [])

    assert ledger.lost == ["status event s1 #3", "queue message for RE1"]
    assert ledger.events_found == 5
    assert ledger.duplicated == []


def test_a_message_queued_twice_is_duplicated_and_anything_not_sent_is_unexpected() -> None:
    items = (
        [item("s1", n) for n in range(5)] + [item("s2", n) for n in range(3)] + [item("s3", 0), item("s1", 9)]
    )

    ledger = reconcile(CALLS, items, [message("RE1"), message("RE1"), message("RE3")])

    assert ledger.duplicated == ["queue message for RE1 x2"]
    assert ledger.unexpected == ["session s3", "status event s1 #9", "queue message for RE3"]
    assert ledger.lost == []


def result(ledger: Ledger) -> ThroughputResult:
    return ThroughputResult(
        calls=2,
        failed_calls=0,
        requests=10,
        elapsed_s=2.0,
        concurrency=16,
        status_codes={"200": 4, "204": 6},
        problems={},
        latencies=[10.0, 20.0, 30.0, 40.0],
        callback_latencies=[10.0, 20.0],
        ledger=ledger,
        floor_latencies=[1.0, 2.0, 3.0, 4.0],
        floor_elapsed_s=0.5,
    )


def test_the_result_survives_the_trip_from_the_child_process() -> None:
    original = result(Ledger(sessions_expected=2, sessions_found=1, lost=["session s2"]))

    assert from_json(to_json(original)) == original


def test_the_section_reports_rates_latencies_and_the_counts_against_the_floor() -> None:
    # Given 10 requests in 2 s (2 callbacks), and the floor's same requests in 0.5 s
    report = section(result(Ledger(events_expected=6, events_found=5, lost=["status event s1 #3"])))
    figures, counts = report.tables

    # Then rates and latencies are set against the floor's
    assert figures.rows[0] == ("requests per second (all webhooks)", "5.0", "8.0", "1.6x slower")
    assert figures.rows[1] == ("callbacks per second (status + recording)", "1.0", "", "")
    assert figures.rows[2] == ("latency median", "25.0 ms", "2.50 ms", "10.0x")
    assert figures.rows[3] == ("latency p99", "40.0 ms", "4.00 ms", "10.0x")
    # And the counts show the lost event
    assert counts.rows[1] == ("status events (event items)", "6", "5", "1", "0")
    assert "Lost: 1; duplicated or unexpected: 0 (goal: 0 and 0)." in report.notes
    assert "example: status event s1 #3" in report.notes
