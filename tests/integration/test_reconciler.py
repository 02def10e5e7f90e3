"""The reconciler against moto and a fake Twilio REST API on 127.0.0.1: what one run finds, asks
Twilio, and writes (docs/reconciliation.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from voice_webhooks.callbacks.models import RecordingStatusCallback
from voice_webhooks.callbacks.recordings import RecordingResult, handle_recording_callback
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.queues.recording_messages import RecordingPublisher
from voice_webhooks.reconcile.claim_store import recording_route_store
from voice_webhooks.reconcile.run import run_once
from voice_webhooks.runtime.observability import metrics
from voicedev.fake_twilio_api import Failure
from voicedev.twilio_signing import DEV_ACCOUNT_SID

from tests.conftest import FakeLambdaContext, load_function, reset_caches
from tests.reconcile_support import World, new_recording_sid, reconcile_world
from tests.support import emitted_metrics


@pytest.fixture
def world() -> Iterator[World]:
    with reconcile_world() as w:
        yield w


def call_sid_of(session_id: str) -> str:
    return session_id[:34]


def lost_call(
    world: World, *, recordings: int = 1, status: str = "completed", **session: Any
) -> tuple[str, list[str]]:
    """A call Twilio finished (with its recordings) whose final callbacks never reached us."""
    session_id = world.open_session(**session)
    call_sid = call_sid_of(session_id)
    return session_id, world.twilio_call(call_sid, status, duration=42, recordings=recordings)


def recording_completed(world: World, session_id: str, recording_sid: str, **fields: str) -> RecordingResult:
    """Twilio's `completed` recording callback for the session's call, handled by the recording
    route's domain function."""
    callback = RecordingStatusCallback.model_validate(
        {
            "AccountSid": DEV_ACCOUNT_SID,
            "CallSid": call_sid_of(session_id),
            "RecordingSid": recording_sid,
            "RecordingStatus": "completed",
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{recording_sid}",
            **fields,
        }
    )
    return handle_recording_callback(
        callback,
        session_id,
        recording_route_store(world.table),
        RecordingPublisher(world.queue_url),
        ttl_days=90,
    )


def seconds_from_now(value: str) -> float:
    return (datetime.fromisoformat(value) - datetime.now(UTC)).total_seconds()


# --- settling a lost call ---------------------------------------------------------------------------


def test_a_call_whose_final_callbacks_were_lost_is_settled_and_its_recording_queued_once(
    world: World,
) -> None:
    # Given a session still open 20 minutes after it started, which Twilio completed with a recording
    session_id, [recording_sid] = lost_call(world)

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the session has Twilio's final status, marked as reconciled, and left the index
    session = world.item(session_id)
    assert session is not None
    assert session["CallStatus"] == "completed"
    assert session["CallDuration"] == 42
    assert session["ReconciledAt"]
    assert "ReconcileShard" not in session and "ReconcileAt" not in session
    assert world.session_ids_due() == []
    # And the call's final state is an event of its own reconciled stream, with no SequenceNumber
    event = world.item(session_id, f"event#reconciled#{call_sid_of(session_id)}")
    assert event is not None
    assert event["Reconciled"] is True and event["Stream"] == "reconciled"
    assert event["CallStatus"] == "completed"
    assert "SequenceNumber" not in event
    assert "From" not in json.loads(event["Raw"]) and "from" not in json.loads(event["Raw"])
    # And the recording was queued once, through the claim, and says who recovered it
    [message] = world.messages()
    assert message["recordingSid"] == recording_sid
    assert message["sessionId"] == session_id
    recording = world.item(session_id, f"recording#{recording_sid}")
    assert recording is not None
    assert recording["QueuedAt"] and recording["RecoveredBy"] == "reconciler"
    assert report.recovered == 1 and report.outcomes == {"reconciled": 1}
    # And Twilio was asked twice: the call, then its recordings
    assert (world.api.count("call"), world.api.count("recordings")) == (1, 1)


def test_a_late_twilio_callback_after_reconciliation_queues_nothing_more(world: World) -> None:
    # Given a call the reconciler settled, its recording queued
    session_id, [recording_sid] = lost_call(world)
    run_once(world.settings(), remaining_seconds=60)
    assert len(world.messages()) == 1

    # When Twilio's recording callback finally arrives, through the recording route's domain function
    result = recording_completed(world, session_id, recording_sid, RecordingDuration="5")

    # Then nothing more is queued, and a second run finds nothing to do
    assert result.queued_now is False
    assert world.messages() == []
    second = run_once(world.settings(), remaining_seconds=60)
    assert second.due == 0 and world.api.count() == 2


def test_a_recording_twilio_delivered_and_queued_is_not_queued_again(world: World) -> None:
    # Given a call whose recording callback arrived (and was queued) but whose final status was lost
    session_id, [recording_sid] = lost_call(world)
    assert recording_completed(world, session_id, recording_sid).queued_now
    assert len(world.messages()) == 1

    # When the reconciler settles the call
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the status is reconciled but the recording is not queued a second time
    assert report.outcomes == {"reconciled": 1} and report.recovered == 0
    assert world.messages() == []
    recording = world.item(session_id, f"recording#{recording_sid}")
    assert recording is not None and "RecoveredBy" not in recording


def test_a_final_status_twilio_delivered_is_never_overwritten(world: World) -> None:
    # Given a session whose final call status Twilio delivered (busy, sequence 3), still listed as open
    session_id, _ = lost_call(
        world, recordings=0, status="completed", CallStatus="busy", CallSequenceNumber=3
    )

    # When the reconciler runs, and the API (say) answers `completed`
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the delivered status stays, no reconciled event is written, and the session is closed
    session = world.item(session_id)
    assert session is not None
    assert (session["CallStatus"], session["CallSequenceNumber"]) == ("busy", 3)
    assert world.item(session_id, f"event#reconciled#{call_sid_of(session_id)}") is None
    assert "ReconcileShard" not in session
    assert report.outcomes == {"closed": 1}


def test_a_conversation_that_ended_keeps_its_status_and_gets_its_recordings(world: World) -> None:
    # Given a <Conversation> session that reached call-completed, listed open, with a lost recording
    session_id, [recording_sid] = lost_call(world, LatestStatus="call-completed", LatestSequenceNumber=4)

    # When the reconciler runs
    run_once(world.settings(), remaining_seconds=60)

    # Then its status is untouched (no CallStatus invented), and the recording is queued
    session = world.item(session_id)
    assert session is not None and "CallStatus" not in session
    assert [m["recordingSid"] for m in world.messages()] == [recording_sid]


def deliver_final_status(world: World, session_id: str, *, minutes_ago: int) -> None:
    """Twilio's `completed` call-progress event, recorded as the status route records it."""
    from voice_webhooks.storage.sessions import SessionStore

    SessionStore(world.table).advance_call_status(
        session_id,
        sequence_number=2,
        call_status="completed",
        timestamp=None,
        duration=42,
        identity={"AccountSid": DEV_ACCOUNT_SID},
        now=(datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
    )


def test_a_recording_lost_after_the_final_status_arrived_is_queued_once_by_one_pass(world: World) -> None:
    # Given a call whose completed status Twilio delivered 20 minutes ago, but whose recording
    # callback was lost for good
    session_id, [recording_sid] = lost_call(world, age=timedelta(minutes=40))
    deliver_final_status(world, session_id, minutes_ago=20)
    assert world.session_ids_due() == [session_id]

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the recording is queued once, through the claim, and the session closed with Twilio's
    # status untouched, no reconciled event
    [message] = world.messages()
    assert (message["recordingSid"], message["sessionId"]) == (recording_sid, session_id)
    assert (world.item(session_id, f"recording#{recording_sid}") or {})["RecoveredBy"] == "reconciler"
    session = world.item(session_id)
    assert session is not None
    assert (session["CallStatus"], session["CallSequenceNumber"]) == ("completed", 2)
    assert "ReconcileShard" not in session and world.session_ids_due() == []
    assert world.item(session_id, f"event#reconciled#{call_sid_of(session_id)}") is None
    assert report.outcomes == {"closed": 1} and report.recovered == 1
    # And Twilio was asked once: the recordings (the call's status was known)
    assert (world.api.count("call"), world.api.count("recordings")) == (0, 1)
    # And a second run has nothing left to do
    assert run_once(world.settings(), remaining_seconds=60).due == 0 and world.messages() == []


def test_a_final_status_is_checked_one_grace_period_after_it_arrived(world: World) -> None:
    # Given a long call (created an hour ago) whose completed status arrived 5 minutes ago
    session_id, _ = lost_call(world, age=timedelta(hours=1))
    deliver_final_status(world, session_id, minutes_ago=5)

    # When the reconciler runs (grace: 15 minutes)
    report = run_once(world.settings(), remaining_seconds=60)

    # Then Twilio is not asked yet: its recording callbacks may still be on their way
    assert report.due == 0 and world.api.count() == 0
    assert world.session_ids_due() == [session_id]


def test_sessions_within_the_grace_period_are_not_asked_about(world: World) -> None:
    # Given a session that started 5 minutes ago (grace: 15)
    session_id, _ = lost_call(world, age=timedelta(minutes=5))

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then Twilio is not asked and the session stays as it was
    assert report.due == 0 and world.api.count() == 0
    assert world.session_ids_due() == [session_id]


# --- deferring and giving up -----------------------------------------------------------------------


def test_a_call_still_in_progress_is_deferred_with_exponential_backoff(world: World) -> None:
    # Given a long call Twilio reports in progress
    session_id = world.open_session()
    world.api.add_call(DEV_ACCOUNT_SID, call_sid_of(session_id), "in-progress")

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the session is looked at again in 5 minutes, one attempt counted, nothing else written
    session = world.item(session_id)
    assert session is not None
    assert session["ReconcileAttempts"] == 1
    assert 280 < seconds_from_now(session["ReconcileAt"]) <= 300
    assert "CallStatus" not in session and session["ReconcileShard"] == "open"
    assert report.outcomes == {"deferred": 1} and world.api.count("recordings") == 0

    # And after two more failed attempts the delay has doubled twice (5, 10, 20 minutes)
    world.dynamodb.update_item(
        TableName=world.table,
        Key={"SessionId": {"S": session_id}, "ItemKey": {"S": "session"}},
        UpdateExpression="SET ReconcileAt = :past, ReconcileAttempts = :two",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00+00:00"}, ":two": {"N": "2"}},
    )
    run_once(world.settings(), remaining_seconds=60)
    session = world.item(session_id)
    assert session is not None and session["ReconcileAttempts"] == 3
    assert 1180 < seconds_from_now(session["ReconcileAt"]) <= 1200


def test_an_api_failure_is_counted_and_deferred(world: World) -> None:
    # Given Twilio's API answering 500
    session_id = world.open_session()
    world.api.failures.append(Failure(500))

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the failure is counted and the session retried later
    assert report.api_failures == 1 and report.outcomes == {"deferred": 1}
    session = world.item(session_id)
    assert session is not None and session["ReconcileAttempts"] == 1


def test_a_call_twilio_does_not_know_is_given_up_after_the_limit(world: World) -> None:
    # Given a session whose call Twilio does not know, at its last attempt
    session_id = world.open_session(ReconcileAttempts=11)

    # When the reconciler runs (limit: 12 attempts)
    report = run_once(world.settings(), remaining_seconds=60)

    # Then it is given up: out of the index, with the reason
    session = world.item(session_id)
    assert session is not None
    assert session["ReconcileGaveUp"] == "not-found" and session["ReconcileAttempts"] == 12
    assert "ReconcileShard" not in session
    assert report.outcomes == {"gave-up": 1} and report.api_failures == 0


def test_a_recording_still_processing_keeps_the_session_open_until_it_completes(world: World) -> None:
    # Given a completed call whose recording Twilio is still processing
    session_id = world.open_session()
    call_sid = call_sid_of(session_id)
    recording_sid = new_recording_sid()
    world.api.add_call(DEV_ACCOUNT_SID, call_sid, "completed", duration=9)
    world.api.add_recording(DEV_ACCOUNT_SID, call_sid, recording_sid, status="processing")

    # When the reconciler runs
    run_once(world.settings(), remaining_seconds=60)

    # Then the call's status is recorded, but the session stays open for the recording
    session = world.item(session_id)
    assert session is not None
    assert session["CallStatus"] == "completed" and session["ReconcileShard"] == "open"
    assert world.messages() == []

    # When the recording completes and a later run comes
    world.api.add_recording(DEV_ACCOUNT_SID, call_sid, recording_sid, status="completed")
    world.dynamodb.update_item(
        TableName=world.table,
        Key={"SessionId": {"S": session_id}, "ItemKey": {"S": "session"}},
        UpdateExpression="SET ReconcileAt = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00+00:00"}},
    )
    report = run_once(world.settings(), remaining_seconds=60)

    # Then it is queued and the session closed
    assert [m["recordingSid"] for m in world.messages()] == [recording_sid]
    assert report.outcomes == {"closed": 1}
    assert "ReconcileShard" not in (world.item(session_id) or {})


# --- rate safety -----------------------------------------------------------------------------------


def test_a_429_pauses_the_run_for_retry_after_then_completes(world: World) -> None:
    # Given Twilio throttling the first request for 1 second
    lost_call(world)
    world.api.failures.append(Failure(429, retry_after="1"))

    # When the reconciler runs
    started = time.monotonic()
    report = run_once(world.settings(), remaining_seconds=60)

    # Then it waited, asked again, and settled the session
    assert time.monotonic() - started >= 1.0
    assert report.throttled == 1 and report.outcomes == {"reconciled": 1}
    assert world.api.count("call") == 2


def test_a_429_longer_than_the_run_stops_its_requests_and_leaves_sessions_due(world: World) -> None:
    # Given Twilio asking for a 10-minute pause, and two sessions due
    first, _ = lost_call(world)
    second, _ = lost_call(world)
    world.api.failures.append(Failure(429, retry_after="600"))

    # When the reconciler runs (one worker, so the order is fixed)
    report = run_once(world.settings(RECONCILE_CONCURRENCY="1"), remaining_seconds=60)

    # Then it stops asking, and both sessions stay due, no attempt counted
    assert world.api.count() == 1
    assert report.outcomes == {"not-reached": 2}
    assert sorted(world.session_ids_due()) == sorted([first, second])
    assert "ReconcileAttempts" not in (world.item(first) or {})


def test_the_request_budget_bounds_a_run(world: World) -> None:
    # Given three lost calls and a budget of 3 requests (2 per call)
    sessions = [lost_call(world)[0] for _ in range(3)]

    # When the reconciler runs with one worker
    report = run_once(
        world.settings(RECONCILE_CONCURRENCY="1", RECONCILE_MAX_REQUESTS="3"), remaining_seconds=60
    )

    # Then one call is settled and the rest wait for the next run, untouched
    assert world.api.count() == 3
    assert report.outcomes["reconciled"] == 1 and report.outcomes["not-reached"] == 2
    assert len(world.session_ids_due()) == 2 and len(sessions) == 3


def test_a_run_looks_at_no_more_than_its_maximum_of_sessions(world: World) -> None:
    # Given five lost calls and a maximum of two sessions per run
    for _ in range(5):
        lost_call(world, recordings=0)

    # When the reconciler runs
    report = run_once(world.settings(RECONCILE_MAX_SESSIONS="2"), remaining_seconds=60)

    # Then it settles the two oldest, leaving three
    assert report.due == 2 and report.outcomes == {"reconciled": 2}
    assert len(world.session_ids_due()) == 3


# --- credentials and hosts -------------------------------------------------------------------------


def test_the_secondary_token_is_used_when_the_primary_is_refused(world: World) -> None:
    # Given a rotation: the secret's primary token is a new one Twilio does not accept yet
    lost_call(world, recordings=0)
    import boto3

    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=world.secret_arn,
        SecretString=json.dumps({"authToken": "not-yet-active", "secondaryAuthToken": world.api.auth_token}),
    )
    reset_caches()

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then the secondary token got the answer
    assert report.outcomes == {"reconciled": 1}
    assert [r.status for r in world.api.requests] == [401, 200, 401, 200]


def test_an_api_host_outside_the_allowlist_is_refused_before_any_request(world: World) -> None:
    lost_call(world)
    with pytest.raises(ConfigurationError, match="TWILIO_API_BASE_URL"):
        run_once(world.settings(TWILIO_API_ORIGINS="https://api.twilio.com"), remaining_seconds=60)
    assert world.api.count() == 0


def test_plain_http_to_a_non_loopback_api_host_is_refused() -> None:
    from voice_webhooks.reconcile.settings import load_settings

    settings = load_settings(
        {
            "EVENTS_TABLE_NAME": "t",
            "RECORDINGS_QUEUE_URL": "q",
            "TWILIO_AUTH_TOKEN_SECRET": "s",
            "TWILIO_API_ORIGINS": "http://api.twilio.com",
        }
    )
    with pytest.raises(ConfigurationError, match=r"TWILIO_API_ORIGINS: .* plain http"):
        settings.origins()


def test_a_missing_setting_is_named() -> None:
    from voice_webhooks.reconcile.settings import load_settings

    with pytest.raises(ConfigurationError, match="EVENTS_TABLE_NAME"):
        load_settings({"RECORDINGS_QUEUE_URL": "q", "TWILIO_AUTH_TOKEN_SECRET": "s"})


# --- the function --------------------------------------------------------------------------------


def test_the_function_emits_the_reconciler_metrics(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given one lost call with a recording, one call in progress, and one the API fails on
    lost_call(world)
    in_progress = world.open_session(age=timedelta(minutes=30))
    world.api.add_call(DEV_ACCOUNT_SID, call_sid_of(in_progress), "in-progress")
    for name, value in world.settings().model_dump(by_alias=True).items():
        monkeypatch.setenv(name, ",".join(value) if isinstance(value, tuple) else str(value))
    from voice_webhooks.reconcile.settings import get_settings

    get_settings.cache_clear()
    app = load_function("reconciler")
    metrics.clear_metrics()  # what earlier runs in this process counted

    # When the scheduled function runs
    answer = app.lambda_handler({"source": "aws.scheduler"}, FakeLambdaContext())

    # Then its metrics say what happened
    emitted = emitted_metrics(capsys.readouterr().out)
    assert emitted["SessionsReconciled"] == 1
    assert emitted["RecordingsRecovered"] == 1
    assert emitted["ReconcileApiFailures"] == 0
    assert emitted["ReconcileGaveUp"] == 0
    assert emitted["ReconcileDeferred"] == 1
    assert answer["due"] == 2
    get_settings.cache_clear()


def test_a_redirect_from_the_api_is_not_followed(world: World) -> None:
    # Given the API answering a redirect (credentials must never follow one)
    session_id, _ = lost_call(world)
    world.api.failures.append(Failure(302))

    # When the reconciler runs
    report = run_once(world.settings(), remaining_seconds=60)

    # Then nothing else was asked, and the session waits for a later run
    assert world.api.count() == 1
    assert report.api_failures == 1 and report.outcomes == {"deferred": 1}
    assert (world.item(session_id) or {})["ReconcileAttempts"] == 1
