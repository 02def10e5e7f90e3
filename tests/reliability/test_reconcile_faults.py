"""Faults at the reconciler's own calls: every DynamoDB and SQS call one run makes (found by the
tap, not listed by hand) fails in turn, the way an outage does; one more run later, the table must
hold what a clean run leaves, and every completed recording must be queued exactly once.

The exceptions are the recording route's own documented trade-offs (docs/reliability.md), expected
exactly: a send whose answer was lost may have gone out more than once (identical bodies; consumers
dedupe on recordingSid); a recording whose send succeeded but whose "queued" mark failed stays
marked as being queued; `RecoveredBy` is not written when the run fails between the send and it
(the next run sees the recording queued and cannot know who queued it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from voice_webhooks.errors import StorageError
from voice_webhooks.reconcile.run import run_once
from voice_webhooks.storage.sessions import SessionStore
from voicedev.twilio_signing import DEV_ACCOUNT_SID

from tests.reconcile_support import World, reconcile_world
from tests.reliability.harness import AwsCall, AwsTap, Fault, FaultKind
from tests.reliability.ledger import LEDGER


@dataclass
class Calls:
    """The scenario's sessions by role, and their recordings."""

    sessions: dict[str, str]
    recordings: dict[str, list[str]]


def scenario(world: World) -> Calls:
    """A lost call with two recordings, one without, one whose final status Twilio delivered but
    whose recording callback was lost, and one still in progress."""
    sessions: dict[str, str] = {}
    recordings: dict[str, list[str]] = {}
    for role, status, delivered, count in (
        ("lost-two-recordings", "completed", None, 2),
        ("lost-no-recording", "no-answer", None, 0),
        ("delivered-final", "completed", "completed", 1),
        ("in-progress", "in-progress", None, 0),
    ):
        session_id = world.open_session(age=timedelta(minutes=40))
        call_sid = session_id[:34]
        if delivered:
            # As the status route records it: the session stays due, from when the status arrived.
            SessionStore(world.table).advance_call_status(
                session_id,
                sequence_number=5,
                call_status=delivered,
                timestamp=None,
                duration=30,
                identity={"AccountSid": DEV_ACCOUNT_SID},
                now=(datetime.now(UTC) - timedelta(minutes=20)).isoformat(),
            )
        sessions[role] = session_id
        recordings[role] = world.twilio_call(call_sid, status, duration=30, recordings=count)
    return Calls(sessions, recordings)


def facts(world: World, calls: Calls) -> dict[str, Any]:
    """What the table and queue hold, by role, without the times and ids that differ per run."""
    messages = Counter(message["recordingSid"] for message in world.messages())
    found: dict[str, Any] = {}
    for role, session_id in calls.sessions.items():
        session = world.item(session_id) or {}
        event = world.item(session_id, f"event#reconciled#{session_id[:34]}")
        found[role] = {
            "CallStatus": session.get("CallStatus"),
            "CallSequenceNumber": session.get("CallSequenceNumber"),
            "open": "ReconcileShard" in session,
            "ReconcileAttempts": session.get("ReconcileAttempts"),
            "reconciled_event": None if event is None else (event["CallStatus"], event["Reconciled"]),
            "recordings": [
                {
                    "Status": (world.item(session_id, f"recording#{sid}") or {}).get("Status"),
                    "queued_mark": bool((world.item(session_id, f"recording#{sid}") or {}).get("QueuedAt")),
                    "RecoveredBy": (world.item(session_id, f"recording#{sid}") or {}).get("RecoveredBy"),
                    "messages": messages[sid],
                }
                for sid in calls.recordings[role]
            ],
        }
    return found


@pytest.fixture
def tap(monkeypatch: pytest.MonkeyPatch) -> AwsTap:
    return AwsTap().install(monkeypatch)


def reconcile(world: World) -> None:
    # One worker: the calls come in a fixed order, so a fault point means the same call every time.
    run_once(world.settings(RECONCILE_CONCURRENCY="1"), remaining_seconds=60)


@pytest.fixture
def clean(tap: AwsTap, base: World) -> tuple[dict[str, Any], list[AwsCall]]:
    """What a clean run leaves (and the next run keeps), and the calls it made: the fault points.
    (Secrets Manager is not watched: a secret that cannot be read fails the run before any write.)"""
    world = base.fresh("clean")
    calls = scenario(world)
    with tap.watching() as seen:
        reconcile(world)
    points = list(seen)
    reconcile(world)
    return facts(world, calls), points


def matches(actual: dict[str, Any], clean_facts: dict[str, Any], fault: Fault, call: AwsCall) -> str:
    """`exact`, or the name of the documented trade-off seen; fails the test on anything else."""
    if actual == clean_facts:
        return "exact"

    def strip(value: dict[str, Any]) -> dict[str, Any]:
        # Everything but the trade-off fields, which are checked one by one below.
        return {
            role: {
                **entry,
                "recordings": [
                    {k: v for k, v in rec.items() if k not in ("messages", "queued_mark", "RecoveredBy")}
                    for rec in entry["recordings"]
                ],
            }
            for role, entry in value.items()
        }

    assert strip(actual) == strip(clean_facts), f"{fault} at {call}: {actual}"
    outcome = "exact"
    for role, entry in actual.items():
        for rec, clean_rec in zip(entry["recordings"], clean_facts[role]["recordings"], strict=True):
            assert rec["messages"] >= 1, f"{fault} at {call}: a recording was never queued ({role})"
            if rec["messages"] > 1:
                assert call.operation == "SendMessage" and fault.kind is FaultKind.RESPONSE_LOST, (
                    f"{fault} at {call}: queued {rec['messages']} times ({role})"
                )
                outcome = "resent_identical_messages"
            if not rec["queued_mark"] and clean_rec["queued_mark"]:
                assert call.operation == "UpdateItem", f"{fault} at {call}: queued mark lost ({role})"
                outcome = "mark_lost"
            if rec["RecoveredBy"] != clean_rec["RecoveredBy"]:
                assert rec["RecoveredBy"] is None and call.operation == "UpdateItem", f"{fault} at {call}"
                outcome = "recovered_by_lost"
    return outcome


def check_fault(tap: AwsTap, base: World, fault: Fault, call: AwsCall, clean_facts: dict[str, Any]) -> str:
    world = base.fresh(f"case-{fault.kind}-{int(fault.every_attempt)}-{fault.call}")
    calls = scenario(world)
    failed_run = False
    with tap.watching(fault=fault):
        try:
            reconcile(world)
        except StorageError:
            # Only the index query fails a whole run (a Lambda error: FunctionErrorsAlarm); a
            # failure at any other call is contained to its session.
            assert call.operation == "Query", f"{fault} at {call} failed the run"
            failed_run = True
    reconcile(world)  # one run later
    outcome = matches(facts(world, calls), clean_facts, fault, call)
    return "run_failed" if failed_run and outcome == "exact" else outcome


@pytest.fixture
def base() -> Iterator[World]:
    with reconcile_world() as world:
        yield world


def test_the_clean_run_settles_everything_and_queues_each_recording_once(
    clean: tuple[dict[str, Any], list[AwsCall]],
) -> None:
    clean_facts, points = clean
    assert clean_facts["lost-two-recordings"]["CallStatus"] == "completed"
    assert clean_facts["lost-two-recordings"]["reconciled_event"] == ("completed", True)
    assert clean_facts["lost-no-recording"]["CallStatus"] == "no-answer"
    assert clean_facts["delivered-final"]["CallSequenceNumber"] == 5
    assert clean_facts["delivered-final"]["reconciled_event"] is None
    assert clean_facts["in-progress"]["open"] is True
    for role in ("lost-two-recordings", "lost-no-recording", "delivered-final"):
        assert clean_facts[role]["open"] is False
    queued = [rec for entry in clean_facts.values() for rec in entry["recordings"]]
    assert len(queued) == 3 and all(rec["messages"] == 1 and rec["queued_mark"] for rec in queued)
    assert {call.operation for call in points} >= {"Query", "GetItem", "PutItem", "UpdateItem", "SendMessage"}


def test_a_failure_at_any_call_of_a_run_is_repaired_by_the_next_run(
    tap: AwsTap, base: World, clean: tuple[dict[str, Any], list[AwsCall]]
) -> None:
    # Given every DynamoDB and SQS call a run makes, each failing on every attempt (an outage)
    clean_facts, points = clean
    outcomes: Counter[str] = Counter()
    for call in points:
        fault = Fault(call.index, FaultKind.SERVER_ERROR, every_attempt=True)
        # When a run meets it, and the next run comes
        # Then the table and the queue hold what a clean run leaves
        outcomes[check_fault(tap, base, fault, call, clean_facts)] += 1
    # (3 recordings: each has one "queued" mark and one RecoveredBy write that may be the one lost)
    assert set(outcomes) <= {"exact", "run_failed", "mark_lost", "recovered_by_lost"}, outcomes
    assert outcomes["mark_lost"] <= 3 and outcomes["recovered_by_lost"] <= 3, outcomes
    assert outcomes["run_failed"] == 1, outcomes
    LEDGER.add("reconcile", cases=len(points), **{f"outcome_{k}": v for k, v in outcomes.items()})
    LEDGER.at_least("reconcile", fault_points=len(points))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FaultKind))
@pytest.mark.parametrize("every_attempt", [True, False])
def test_every_kind_of_failure_at_every_call_is_repaired(
    tap: AwsTap,
    base: World,
    clean: tuple[dict[str, Any], list[AwsCall]],
    kind: FaultKind,
    every_attempt: bool,
) -> None:
    clean_facts, points = clean
    outcomes: Counter[str] = Counter()
    for call in points:
        fault = Fault(call.index, kind, every_attempt=every_attempt)
        outcomes[check_fault(tap, base, fault, call, clean_facts)] += 1
    LEDGER.add("reconcile", cases=len(points), **{f"outcome_{k}": v for k, v in outcomes.items()})
