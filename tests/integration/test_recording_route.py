"""/voice/recording under moto: a recording's state moves forward only, and a completed recording
reaches RecordingsQueue exactly once, whatever Twilio retries and whatever fails in between."""

from __future__ import annotations

import json
from typing import Any

import pytest
from voice_webhooks.edge import routes
from voice_webhooks.queues.recording_messages import SCHEMA
from voice_webhooks.runtime import aws_clients
from voicedev.twilio_signing import DEV_ACCOUNT_SID, http_api_event

from tests.integration.callback_helpers import (
    Output,
    deliver,
    failing,
    fixture,
    open_session,
    session_url,
    skip_retry_sleep,
)

CALLBACKS = fixture("recording_callbacks.json")
IN_PROGRESS: dict[str, str] = CALLBACKS["conversation"]["in-progress"]
COMPLETED: dict[str, str] = CALLBACKS["conversation"]["completed"]
# Every recording callback of a session carries the session's CallSid (the ownership rule): the
# voicemail is recorded on the same call as the conversation.
CALL = COMPLETED["CallSid"]
VOICEMAIL: dict[str, dict[str, str]] = {
    status: {**params, "CallSid": CALL} for status, params in CALLBACKS["voicemail"].items()
}
STATUS_EVENTS: list[dict[str, str]] = fixture("status_callbacks.json")["events"]


def recordings(aws: Any, session_id: str) -> dict[str, dict[str, Any]]:
    """RecordingSid -> its `recording#<RecordingSid>` item."""
    return {
        item["RecordingSid"]: item
        for item in aws.items(session_id)
        if item["ItemKey"].startswith("recording#")
    }


def all_messages(aws: Any) -> list[dict[str, Any]]:
    """Every message in RecordingsQueue (read once: reading hides them for the visibility timeout)."""
    messages = aws.messages()
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_urls["RecordingsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": str(len(messages)),
    }
    return messages


def test_in_progress_then_completed_each_delivered_twice_queue_exactly_one_message(aws, invoke) -> None:
    # Given a session whose status callbacks already told us its ConversationSid
    session = open_session(invoke, CALL)
    assert deliver(invoke, "status", session.status_url, STATUS_EVENTS[0]) == 204

    # When the recording's callbacks arrive, each twice
    answers = [
        deliver(invoke, "recording", session.recording_url, params)
        for params in (IN_PROGRESS, IN_PROGRESS, COMPLETED, COMPLETED)
    ]

    # Then all are acknowledged and exactly one message is queued, carrying the recording
    assert answers == [204, 204, 204, 204]
    [message] = all_messages(aws)
    body = json.loads(message["Body"])
    sid = COMPLETED["RecordingSid"]
    assert body == {
        "schema": SCHEMA,
        "deduplicationId": sid,
        "sessionId": session.session_id,
        "accountSid": DEV_ACCOUNT_SID,
        "callSid": COMPLETED["CallSid"],
        "recordingSid": sid,
        "recordingUrl": COMPLETED["RecordingUrl"],
        "durationSeconds": 335,
        "channels": 2,
        "source": "DialVerb",
        "kind": "conversation",
        "conversationSid": STATUS_EVENTS[0]["ConversationSid"],
        "flow": "frontline",
        "startedAt": "2022-05-07T00:58:27Z",
        "completedAt": body["completedAt"],
    }
    assert {name: value["StringValue"] for name, value in message["MessageAttributes"].items()} == {
        "schema": SCHEMA,
        "AccountSid": DEV_ACCOUNT_SID,
        "RecordingKind": "conversation",
        "RecordingSource": "DialVerb",
    }
    # And the session item shows the recording completed and queued, with that message's id
    entry = recordings(aws, session.session_id)[sid]
    assert entry["Status"] == "completed"
    assert entry["Duration"] == 335
    assert entry["Channels"] == 2
    assert entry["Url"] == COMPLETED["RecordingUrl"]
    assert entry["QueueMessageId"] == message["MessageId"]
    assert entry["CompletedAt"].replace("+00:00", "Z") == body["completedAt"]
    assert entry["QueueAttempts"] == 1
    assert "QueueLeaseUntil" not in entry


def test_a_completed_recording_is_queued_and_counted_even_without_in_progress(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session (Twilio's default recordingStatusCallbackEvent has no in-progress)
    session = open_session(invoke, CALL)
    output.read()

    # When the voicemail recording completes
    answer = deliver(invoke, "recording", session.recording_url, VOICEMAIL["completed"])

    # Then it is queued as a voicemail, and counted
    assert answer == 204
    [message] = all_messages(aws)
    assert json.loads(message["Body"])["kind"] == "voicemail"
    assert message["MessageAttributes"]["RecordingKind"]["StringValue"] == "voicemail"
    out = output.read()
    assert out.metrics["RecordingCallback"] == 1
    assert out.metrics["RecordingQueued"] == 1
    [queued_log] = [log for log in out.logs if log["message"] == "Recording queued"]
    assert queued_log["session_id"] == session.session_id
    assert queued_log["call_sid"] == VOICEMAIL["completed"]["CallSid"]


@pytest.mark.parametrize("status", ["absent", "failed"])
def test_an_absent_or_failed_recording_is_recorded_and_counted_but_never_queued(
    aws, invoke, capfd, monkeypatch, status
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session
    session = open_session(invoke, CALL)
    output.read()

    # When the voicemail recording comes back absent (too short / silent) or failed, twice
    answers = [deliver(invoke, "recording", session.recording_url, VOICEMAIL[status]) for _ in range(2)]

    # Then nothing is queued, the state is kept with its error code, and it is counted once
    assert answers == [204, 204]
    assert all_messages(aws) == []
    entry = recordings(aws, session.session_id)[VOICEMAIL[status]["RecordingSid"]]
    assert entry["Status"] == status
    assert entry.get("ErrorCode") == VOICEMAIL[status].get("ErrorCode")
    out = output.read()
    assert out.metrics[f"Recording{status.capitalize()}"] == 1
    assert out.metrics["DuplicateCallback"] == 1
    assert out.metrics["RecordingQueued"] == 0


def test_a_terminal_state_never_goes_back(aws, invoke) -> None:
    # Given a completed, queued recording
    session = open_session(invoke, CALL)
    assert deliver(invoke, "recording", session.recording_url, COMPLETED) == 204
    before = recordings(aws, session.session_id)

    # When a late in-progress arrives, and then a contradictory absent
    late = [
        deliver(invoke, "recording", session.recording_url, params)
        for params in (IN_PROGRESS, {**COMPLETED, "RecordingStatus": "absent"})
    ]

    # Then both are acknowledged and change nothing; still one message
    assert late == [204, 204]
    assert recordings(aws, session.session_id) == before
    assert len(all_messages(aws)) == 1


@pytest.mark.parametrize("first", ["absent", "failed"])
@pytest.mark.parametrize("late", ["in-progress", "completed", "absent", "failed"])
def test_an_absent_or_failed_recording_never_changes_again(aws, invoke, first: str, late: str) -> None:
    # Given a recording Twilio reported absent (too short) or failed: a final answer
    session = open_session(invoke)
    callback = {**VOICEMAIL[first], "CallSid": session.call_sid}
    assert deliver(invoke, "recording", session.recording_url, callback) == 204
    before = recordings(aws, session.session_id)

    # When a contradictory status arrives for the same recording (it can only be a late or stray one)
    changed = {**callback, "RecordingStatus": late}
    changed.pop("ErrorCode", None)
    answer = deliver(invoke, "recording", session.recording_url, changed)

    # Then it is acknowledged, the stored state is unchanged (the conditional update refused it),
    # and nothing is queued: the DynamoDB condition, not a Python rule, keeps final states final
    assert answer == 204
    assert recordings(aws, session.session_id) == before
    assert all_messages(aws) == []


def test_sqs_failing_on_the_first_completed_delivery_answers_5xx_and_the_retry_queues_exactly_once(
    aws, invoke, monkeypatch
) -> None:
    # Given a session and SQS unreachable for the next send
    session = open_session(invoke, CALL)
    skip_retry_sleep(monkeypatch)

    with failing(aws_clients.sqs(), "SendMessage") as failed:
        first = deliver(invoke, "recording", session.recording_url, COMPLETED)

    # Then Twilio is told to retry; the recording is completed but not queued, and not claimed
    assert failed == ["SendMessage"] * aws_clients.MAX_ATTEMPTS
    assert 500 <= first < 600
    entry = recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]
    assert entry["Status"] == "completed"
    assert "QueuedAt" not in entry
    assert "QueueLeaseUntil" not in entry

    # When Twilio retries (twice: its retry and a duplicate)
    retries = [deliver(invoke, "recording", session.recording_url, COMPLETED) for _ in range(2)]

    # Then exactly one message is in the queue and the recording is marked queued
    assert retries == [204, 204]
    [message] = all_messages(aws)
    assert json.loads(message["Body"])["recordingSid"] == COMPLETED["RecordingSid"]
    entry = recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]
    assert entry["QueueMessageId"] == message["MessageId"]
    assert entry["QueueAttempts"] == 2


def test_sqs_refusing_the_send_answers_5xx_and_a_later_duplicate_sends_it(aws, invoke, monkeypatch) -> None:
    # Given SQS answering an error (not unreachable) for the first send
    session = open_session(invoke, CALL)
    with failing(aws_clients.sqs(), "SendMessage", code="KmsThrottled", status=400):
        first = deliver(invoke, "recording", session.recording_url, COMPLETED)
    assert 500 <= first < 600

    # When a late in-progress for the same recording arrives afterwards
    assert deliver(invoke, "recording", session.recording_url, IN_PROGRESS) == 204

    # Then that delivery finishes the job: the state stays completed and one message is queued
    assert recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]["Status"] == "completed"
    assert len(all_messages(aws)) == 1


def test_a_concurrent_duplicate_does_not_send_a_second_message(aws, invoke) -> None:
    # Given a session, and a duplicate of the completed callback arriving while the first
    # delivery is sending (simulated by delivering it from inside the first SendMessage)
    session = open_session(invoke, CALL)
    duplicate_answers: list[int] = []
    client = aws_clients.sqs()

    def deliver_duplicate(**_: Any) -> None:
        if not duplicate_answers:
            duplicate_answers.append(deliver(invoke, "recording", session.recording_url, COMPLETED))

    client.meta.events.register_first("before-call.sqs.SendMessage", deliver_duplicate, unique_id="dup")
    try:
        first = deliver(invoke, "recording", session.recording_url, COMPLETED)
    finally:
        client.meta.events.unregister("before-call.sqs.SendMessage", unique_id="dup")

    # Then the duplicate found the claim held and asked Twilio to retry; the first one sent
    assert duplicate_answers == [503]
    assert first == 204
    assert len(all_messages(aws)) == 1

    # And the duplicate's retry finds the recording queued: acknowledged, nothing more sent
    assert deliver(invoke, "recording", session.recording_url, COMPLETED) == 204
    assert aws.messages() == []


def test_the_mark_failing_after_a_successful_send_still_answers_2xx(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session, and DynamoDB failing the update that marks the recording queued: the
    # third update of the delivery (state, claim, mark)
    session = open_session(invoke, CALL)
    skip_retry_sleep(monkeypatch)
    output.read()

    with failing(aws_clients.dynamodb_client(), "UpdateItem", code="InternalServerError", after=2) as failed:
        answer = deliver(invoke, "recording", session.recording_url, COMPLETED)

    # Then the message is out, so Twilio is not asked to retry (its retry would send it again);
    # the entry stays unmarked and the failure is logged and counted
    assert failed == ["UpdateItem"]
    assert answer == 204
    assert len(all_messages(aws)) == 1
    entry = recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]
    assert (entry["Status"], "QueuedAt" in entry) == ("completed", False)
    out = output.read()
    assert out.metrics["RecordingMarkFailed"] == 1
    assert "Recording queued but not marked queued" in [log["message"] for log in out.at("ERROR")]


def test_dynamodb_failing_on_the_state_update_answers_5xx_and_the_retry_completes_it(
    aws, invoke, monkeypatch
) -> None:
    # Given a session and DynamoDB unreachable for the next update
    session = open_session(invoke, CALL)
    skip_retry_sleep(monkeypatch)
    with failing(aws_clients.dynamodb_client(), "UpdateItem"):
        first = deliver(invoke, "recording", session.recording_url, COMPLETED)

    # Then Twilio is told to retry, nothing was recorded or queued
    assert 500 <= first < 600
    assert recordings(aws, session.session_id) == {}
    assert aws.messages() == []

    # And the retry records and queues it
    assert deliver(invoke, "recording", session.recording_url, COMPLETED) == 204
    assert recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]["Status"] == "completed"
    assert len(all_messages(aws)) == 1


def test_an_unknown_recording_status_is_stored_counted_and_later_completed(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session
    session = open_session(invoke, CALL)
    output.read()

    # When Twilio sends a RecordingStatus this code does not know yet
    answer = deliver(
        invoke, "recording", session.recording_url, {**IN_PROGRESS, "RecordingStatus": "processing"}
    )

    # Then it is stored as received, logged and counted, and nothing is queued
    assert answer == 204
    assert recordings(aws, session.session_id)[IN_PROGRESS["RecordingSid"]]["Status"] == "processing"
    out = output.read()
    assert out.metrics["UnknownValue"] == 1
    assert [(log["field"], log["value"]) for log in out.at("WARNING")] == [("RecordingStatus", "processing")]
    assert aws.messages() == []

    # And the recording can still complete (an unknown state is not terminal)
    assert deliver(invoke, "recording", session.recording_url, COMPLETED) == 204
    assert recordings(aws, session.session_id)[COMPLETED["RecordingSid"]]["Status"] == "completed"
    assert len(all_messages(aws)) == 1


def test_get_callbacks_work_like_post_ones(aws, invoke) -> None:
    # Given recordingStatusCallbackMethod="GET"
    session = open_session(invoke, CALL)

    # When the callbacks arrive with their parameters in the query string
    answers = [
        deliver(invoke, "recording", session.recording_url, params, method="GET")
        for params in (IN_PROGRESS, COMPLETED, COMPLETED)
    ]

    # Then the result is the same: one message
    assert answers == [204, 204, 204]
    [message] = all_messages(aws)
    assert json.loads(message["Body"])["sessionId"] == session.session_id


def test_a_recording_for_a_session_never_written_still_gets_queued(aws, invoke) -> None:
    # Given a session id whose connect-time write failed (no session item, no Recordings map)
    session_id = f"{CALL}-0011223344556677"
    url = session_url(routes.RECORDING, session_id)

    # When its recording completes
    assert deliver(invoke, "recording", url, COMPLETED) == 204

    # Then a partial session item holds the recording and the message is sent
    assert recordings(aws, session_id)[COMPLETED["RecordingSid"]]["Status"] == "completed"
    [message] = all_messages(aws)
    body = json.loads(message["Body"])
    assert (body["sessionId"], body["conversationSid"], body["flow"]) == (session_id, None, None)


def test_two_recordings_of_one_session_are_tracked_and_queued_separately(aws, invoke) -> None:
    # Given a session with a conversation recording, then a voicemail
    session = open_session(invoke, CALL)

    # When both complete
    for params in (COMPLETED, VOICEMAIL["completed"]):
        assert deliver(invoke, "recording", session.recording_url, params) == 204

    # Then both are on the session item and each was queued once
    assert sorted(recordings(aws, session.session_id)) == sorted(
        [COMPLETED["RecordingSid"], VOICEMAIL["completed"]["RecordingSid"]]
    )
    kinds = sorted(json.loads(message["Body"])["kind"] for message in all_messages(aws))
    assert kinds == ["conversation", "voicemail"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"RecordingSid": None}, "RecordingSid: Field required"),
        ({"RecordingSid": "not-a-sid"}, "RecordingSid"),
        ({"RecordingStatus": None}, "RecordingStatus: Field required"),
        ({"RecordingDuration": "ten"}, "RecordingDuration"),
    ],
)
def test_a_malformed_recording_callback_is_refused_with_400(aws, invoke, change, reason) -> None:
    params = {name: value for name, value in {**COMPLETED, **change}.items() if value is not None}
    url = session_url(routes.RECORDING, f"{CALL}-0123456789abcdef")

    response = invoke("recording", http_api_event("POST", url, params))

    assert response["statusCode"] == 400
    assert response["body"].startswith(reason)
    assert aws.items() == []
    assert aws.messages() == []
