"""Load: the Twilio emulator drives many concurrent calls through the local mode (the real handlers
behind loopback HTTP, moto server behind them), with every call's callbacks reordered and about half
of them delivered twice. Afterwards the table and the queue are counted against what the emulator
sent: one session item per `<Connect>`, one event item per status event, every recording in the
state its last callback gave it, one message per completed recording. Not one missing, not one extra.

The local mode runs in this process on free ports (`LocalMode`, as tests/e2e/test_local_mode_library
does); mock_aws is not active here: the handlers reach the embedded moto server over HTTP."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from voicedev.emulator import SCENARIOS, EmulatorConfig, run_calls
from voicedev.emulator.engine import CallResult
from voicedev.local_mode import LocalMode
from voicedev.local_settings import LocalSettings

from tests.reliability.ledger import LEDGER, SLOW_TIMEOUT

DUPLICATES = 0.5


@dataclass(frozen=True)
class Stored:
    sessions: dict[str, dict[str, Any]]
    """SessionId -> session item, with its `recording#` items as `Recordings` (RecordingSid ->
    item) and its `action#<step>` items as `ConnectAction`, ... beside it."""
    events: Counter[tuple[str, int]]
    """(SessionId, SequenceNumber) of `<Conversation>` events -> how many items (more than 1 is
    impossible for a key: kept to make the check read as what it is)."""
    raw: dict[tuple[str, int], dict[str, str]]
    messages: list[dict[str, Any]]


def read_everything(local: LocalMode) -> Stored:
    assert local.resources is not None
    dynamodb = local.aws_client("dynamodb")
    sessions: dict[str, dict[str, Any]] = {}
    events: Counter[tuple[str, int]] = Counter()
    raw: dict[tuple[str, int], dict[str, str]] = {}
    deserialize = TypeDeserializer().deserialize
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=local.resources.table_name, ConsistentRead=True
    ):
        for wire in page["Items"]:
            item = {name: deserialize(value) for name, value in wire.items()}
            session_id, item_key = str(item["SessionId"]), str(item["ItemKey"])
            view = sessions.setdefault(session_id, {})
            if item_key == "session":
                view.update(item)
            elif item_key.startswith("recording#"):
                view.setdefault("Recordings", {})[str(item["RecordingSid"])] = item
            elif item_key.startswith("action#"):
                view[f"{item_key.removeprefix('action#').split('#')[0].capitalize()}Action"] = item
            elif item_key.startswith("event#conversation#"):
                key = (session_id, int(item["SequenceNumber"]))
                events[key] += 1
                raw[key] = dict(item["Raw"])
    sqs = local.aws_client("sqs")
    queue_url = local.resources.queue_urls["RecordingsQueue"]
    messages: list[dict[str, Any]] = []
    empty_receives = 0
    while empty_receives < 2:  # moto answers at once; twice empty means empty
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            empty_receives += 1
            continue
        messages += [json.loads(message["Body"]) for message in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return Stored(sessions, events, raw, messages)


def expected_from(results: list[CallResult]) -> dict[str, Any]:
    sessions = {session for result in results for session in result.session_ids}
    # An outbound call's call-progress events come before its TwiML, so before any connect session:
    # they start the call's own session, `<CallSid>` (docs/data-model.md), which keeps its stream.
    sessions |= {
        result.call_sid for result in results if result.call_events and result.scenario.direction != "inbound"
    }
    events = {
        (str(event.session_id), event.sequence_number): dict(event.params)
        for result in results
        for event in result.status_events
    }
    recordings: dict[str, dict[str, str]] = defaultdict(dict)
    for result in results:
        for recording in result.recordings:
            if recording.callback_events:
                # The last state Twilio sent (states only move forward).
                recordings[str(recording.session_id)][recording.recording_sid] = recording.callback_events[-1]
    completed = {
        (session, sid)
        for session, states in recordings.items()
        for sid, state in states.items()
        if state == "completed"
    }
    return {"sessions": sessions, "events": events, "recordings": recordings, "completed": completed}


@pytest.fixture
def fresh_moto_state() -> Iterator[None]:
    """The embedded moto server keeps its data in this process's moto backends, which outlive the
    server: a second local mode in the process would find the first one's table. Emptied before
    and after, as `mock_aws` does."""
    from moto.moto_api._internal import moto_api_backend

    moto_api_backend.reset()
    yield
    moto_api_backend.reset()


def run_load(calls: int, concurrency: int, seed: int) -> None:
    # Given the local mode on free ports
    settings = LocalSettings(api_port=0, aws_port=0, ws_port=0, ws_management_port=0)
    with LocalMode(settings, on_request=lambda _record: None) as local:
        config = EmulatorConfig(
            base_url=local.public_base_url, shuffle=True, duplicates=DUPLICATES, seed=seed
        )

        # When the emulator plays every scenario in turn, `concurrency` calls at a time
        started = time.perf_counter()
        results, summary = run_calls(config, SCENARIOS, calls=calls, concurrency=concurrency, run_seed=seed)
        elapsed = time.perf_counter() - started
        stored = read_everything(local)

    # Then every call went as the product promises, every request was answered 2xx
    assert [result.problems for result in results if result.problems] == []
    assert set(summary.status_codes) <= {"200", "204"}, summary.render()

    expected = expected_from(results)
    exchanges = [exchange for result in results for exchange in result.exchanges]
    duplicates = sum(1 for exchange in exchanges if exchange.duplicate)
    # and what is stored is exactly what was sent: one session item per session,
    missing_sessions = expected["sessions"] - set(stored.sessions)
    extra_sessions = set(stored.sessions) - expected["sessions"]
    # one event item per status event, holding what its first delivery carried,
    missing_events = set(expected["events"]) - set(stored.events)
    extra_events = set(stored.events) - set(expected["events"])
    wrong_events = [
        key for key, params in expected["events"].items() if stored.raw.get(key, params) != params
    ]
    # every recording in its last state,
    recording_states = {
        session: {sid: entry["Status"] for sid, entry in (item.get("Recordings") or {}).items()}
        for session, item in stored.sessions.items()
        if item.get("Recordings")
    }
    wrong_recordings = {
        session: (states, recording_states.get(session))
        for session, states in expected["recordings"].items()
        if recording_states.get(session) != states
    }
    # every session's outcome recorded,
    # (a session a call's own call-progress events started, `<CallSid>`, has no <Connect>)
    without_outcome = [
        session for session, item in stored.sessions.items() if "ConnectAction" not in item and "-" in session
    ]
    # and one message per completed recording.
    queued = Counter((message["sessionId"], message["recordingSid"]) for message in stored.messages)
    missing_messages = expected["completed"] - set(queued)
    doubled_messages = {key: count for key, count in queued.items() if count > 1}
    extra_messages = set(queued) - expected["completed"]

    lost = len(missing_sessions) + len(missing_events) + len(missing_messages)
    doubled = (
        len(extra_sessions)
        + len(extra_events)
        + sum(c - 1 for c in doubled_messages.values())
        + len(extra_messages)
    )
    LEDGER.add(
        "load",
        runs=1,
        calls=len(results),
        requests=summary.requests,
        duplicate_deliveries=duplicates,
        sessions=len(stored.sessions),
        status_events=len(expected["events"]),
        event_items=sum(stored.events.values()),
        recordings=sum(len(states) for states in expected["recordings"].values()),
        messages_expected=len(expected["completed"]),
        messages=len(stored.messages),
        lost=lost,
        doubled=doubled,
        milliseconds=int(elapsed * 1000),
    )
    LEDGER.at_least("load", largest_run_calls=len(results), largest_run_concurrency=concurrency)
    assert missing_sessions == set() and extra_sessions == set()
    assert missing_events == set() and extra_events == set() and wrong_events == []
    assert wrong_recordings == {}
    assert without_outcome == []
    assert missing_messages == set() and doubled_messages == {} and extra_messages == set()
    assert len(stored.events) == len(expected["events"]) and len(stored.messages) == len(
        expected["completed"]
    )
    assert duplicates > 0  # the run did deliver duplicates


@pytest.mark.usefixtures("fresh_moto_state")
def test_twenty_concurrent_calls_with_reordered_and_duplicated_callbacks_store_exact_counts() -> None:
    # Given / When / Then: in run_load
    run_load(calls=20, concurrency=4, seed=20)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
@pytest.mark.usefixtures("fresh_moto_state")
def test_two_hundred_calls_sixteen_at_a_time_store_exact_counts() -> None:
    run_load(calls=200, concurrency=16, seed=200)
