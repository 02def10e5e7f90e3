"""/voice/status under moto: signed `<Conversation statusCallback>` deliveries, in any order and
any number of times, leave one item per SequenceNumber and the session at its true latest status."""

from __future__ import annotations

import random
from typing import Any

import pytest
from voice_webhooks.edge import routes
from voice_webhooks.runtime import aws_clients
from voicedev.twilio_signing import http_api_event, random_sid

from tests.integration.callback_helpers import (
    Output,
    deliver,
    failing,
    fixture,
    open_session,
    session_url,
    skip_retry_sleep,
)

EVENTS: list[dict[str, str]] = fixture("status_callbacks.json")["events"]
LATEST = EVENTS[-1]


def event(sequence: int, **changes: str) -> dict[str, str]:
    return {**EVENTS[sequence - 1], **changes}


def event_items(aws: Any, session_id: str, prefix: str = "event#conversation#") -> list[dict[str, Any]]:
    return [item for item in aws.items(session_id) if item["ItemKey"].startswith(prefix)]


def session_item(aws: Any, session_id: str) -> dict[str, Any]:
    items = [item for item in aws.items(session_id) if item["ItemKey"] == "session"]
    assert len(items) == 1
    return items[0]


def assert_exactly_the_fixture_events(aws: Any, session_id: str) -> None:
    items = event_items(aws, session_id)
    assert [int(item["SequenceNumber"]) for item in items] == [1, 2, 3, 4]
    for item, sent in zip(items, EVENTS, strict=True):
        assert item["Raw"] == sent
        assert item["Status"] == sent["Status"]
        assert item["DialCallSid"] == sent["DialCallSid"]
        assert item["ConversationSid"] == sent["ConversationSid"]
        assert item["WorkerInitiated"] is False
        assert item["CallbackSource"] == "voice-conversation-service"
        assert "CallSid" not in item  # events stay out of the ByCallSid index


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_shuffled_and_duplicated_deliveries_leave_one_item_per_event_and_the_true_latest_status(
    aws, invoke, seed
) -> None:
    # Given a session opened by the connect handler, and its four events each delivered twice
    # (Twilio retries) in a random order
    session = open_session(invoke)
    deliveries = [*EVENTS, *EVENTS]
    random.Random(seed).shuffle(deliveries)

    # When every delivery reaches the status URL the TwiML gave Twilio
    answers = [deliver(invoke, "status", session.status_url, params) for params in deliveries]

    # Then every delivery is acknowledged, each event is stored once, and the session is at its
    # true latest status, with the identity the connect handler wrote untouched
    assert answers == [204] * len(deliveries)
    assert_exactly_the_fixture_events(aws, session.session_id)
    session_state = session_item(aws, session.session_id)
    assert session_state["LatestStatus"] == "call-completed"
    assert session_state["LatestSequenceNumber"] == 4
    assert session_state["LatestStatusTimestamp"] == "2022-05-07T01:04:02+00:00"
    assert session_state["ConversationSid"] == LATEST["ConversationSid"]
    assert session_state["DialCallSid"] == LATEST["DialCallSid"]
    assert session_state["WorkerInitiated"] is False
    assert session_state["SessionCallSid"] == session.call_sid
    assert session_state["Flow"] == "frontline"


def test_call_completed_before_call_answered_leaves_the_session_completed(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session
    session = open_session(invoke)

    # When call-completed (4) arrives before call-answered (3)
    assert deliver(invoke, "status", session.status_url, event(4)) == 204
    assert deliver(invoke, "status", session.status_url, event(3)) == 204

    # Then both are stored and the session stays at call-completed; the late one is counted
    assert [item["Status"] for item in event_items(aws, session.session_id)] == [
        "call-answered",
        "call-completed",
    ]
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-completed"
    assert session_item(aws, session.session_id)["LatestSequenceNumber"] == 4
    assert output.read().metrics["OutOfOrderCallback"] == 1


def test_a_duplicate_delivery_writes_nothing_and_is_counted(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    # Given one stored event
    session = open_session(invoke)
    assert deliver(invoke, "status", session.status_url, event(1)) == 204
    before = aws.items(session.session_id)
    output.read()

    # When Twilio delivers it again
    answer = deliver(invoke, "status", session.status_url, event(1))

    # Then it is acknowledged, nothing changes (not even ReceivedAt), and a duplicate is counted
    assert answer == 204
    assert aws.items(session.session_id) == before
    out = output.read()
    assert out.metrics["DuplicateCallback"] == 1
    assert out.metrics["StatusEventStored"] == 0
    assert out.metrics["StatusCallback"] == 1


def test_a_sequence_number_reused_with_different_content_keeps_the_first_and_is_counted(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given event 2 stored
    session = open_session(invoke)
    assert deliver(invoke, "status", session.status_url, event(2)) == 204
    output.read()

    # When another delivery claims SequenceNumber 2 with different content
    answer = deliver(invoke, "status", session.status_url, event(2, Status="call-answered"))

    # Then it is acknowledged (a retry would not change anything), the first is kept, the
    # session follows the kept event, and the conflict is logged and counted
    assert answer == 204
    [item] = event_items(aws, session.session_id)
    assert item["Status"] == "call-ringing"
    assert item["Raw"] == event(2)
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-ringing"
    out = output.read()
    assert out.metrics["ConflictingCallback"] == 1
    warnings = out.at("WARNING")
    assert [log["differing"] for log in warnings] == [["Status"]]
    assert warnings[0]["session_id"] == session.session_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"SequenceNumber": None}, "SequenceNumber: Field required"),
        ({"SequenceNumber": "three"}, "SequenceNumber: must be a non-negative integer"),
        ({"SequenceNumber": "2.5"}, "SequenceNumber: must be a non-negative integer"),
        ({"SequenceNumber": "-1"}, "SequenceNumber: must be a non-negative integer"),
        ({"SequenceNumber": ""}, "SequenceNumber"),
        # `<Conversation>` events start at 1 (call-progress events at 0).
        ({"SequenceNumber": "0"}, "SequenceNumber"),
        ({"Status": None}, "Status: Field required"),
        ({"Status": ""}, "Status"),
    ],
)
def test_a_malformed_event_is_refused_with_400_and_nothing_is_written(aws, invoke, change, reason) -> None:
    # Given an event without a usable SequenceNumber or Status, for a session nobody wrote yet
    params = {name: value for name, value in {**event(1), **change}.items() if value is not None}
    url = session_url(routes.STATUS, f"{random_sid('CA')}-0123456789abcdef")

    # When it is delivered, signed
    response = invoke("status", http_api_event("POST", url, params))

    # Then it is refused as malformed, naming the field, and the table stays empty
    assert response["statusCode"] == 400
    assert response["body"].startswith(reason)
    assert aws.items() == []


def test_an_event_without_session_parameter_or_call_sid_is_refused(aws, invoke) -> None:
    # Given a status URL configured by hand (no ?session=) and Twilio's payload (no CallSid)
    response = invoke(
        "status",
        http_api_event(
            "POST", "https://abc123example.execute-api.us-east-1.amazonaws.com/voice/status", event(1)
        ),
    )

    # Then there is no session to file it under: 400, nothing written
    assert response["statusCode"] == 400
    assert aws.items() == []


def test_an_event_without_session_parameter_falls_back_to_the_call_sid(aws, invoke) -> None:
    # Given a hand-configured status URL and a payload that carries a CallSid
    call_sid = random_sid("CA")
    url = "https://abc123example.execute-api.us-east-1.amazonaws.com/voice/status"

    # When an event arrives
    answer = deliver(invoke, "status", url, event(3, CallSid=call_sid))

    # Then it is filed under the CallSid, and the (partial) session item can be found by CallSid
    assert answer == 204
    assert [int(item["SequenceNumber"]) for item in event_items(aws, call_sid)] == [3]
    by_call = aws.table.query(
        IndexName="ByCallSid",
        KeyConditionExpression="SessionCallSid = :c",
        ExpressionAttributeValues={":c": call_sid},
    )["Items"]
    assert [(item["SessionId"], item["LatestStatus"]) for item in by_call] == [(call_sid, "call-answered")]


def test_an_unknown_status_is_stored_counted_and_still_moves_the_session_by_sequence(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session at call-answered
    session = open_session(invoke)
    assert deliver(invoke, "status", session.status_url, event(3)) == 204
    output.read()

    # When Twilio sends a Status value it added after this code was written
    answer = deliver(invoke, "status", session.status_url, event(4, Status="call-transferred"))

    # Then it is stored as received, logged, counted, and the session moves to it
    assert answer == 204
    assert [item["Status"] for item in event_items(aws, session.session_id)] == [
        "call-answered",
        "call-transferred",
    ]
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-transferred"
    out = output.read()
    assert out.metrics["UnknownValue"] == 1
    assert any(log.get("field") == "Status" and log.get("value") == "call-transferred" for log in out.logs)


def test_events_for_a_session_whose_item_was_never_written_create_a_partial_session(aws, invoke) -> None:
    # Given a session id whose connect-time write failed (no session item)
    session_id = f"{random_sid('CA')}-00112233aabbccdd"
    url = session_url(routes.STATUS, session_id)

    # When its events arrive, newest first
    answers = [deliver(invoke, "status", url, params) for params in reversed(EVENTS)]

    # Then they are stored, and a session item exists with the latest status and first-seen
    # attributes, expiring like the rest
    assert answers == [204] * 4
    assert_exactly_the_fixture_events(aws, session_id)
    state = session_item(aws, session_id)
    assert state["LatestStatus"] == "call-completed"
    assert state["ConversationSid"] == LATEST["ConversationSid"]
    assert state["AccountSid"] == LATEST["AccountSid"]
    assert int(state["ExpiresAt"]) > 0


def test_get_callbacks_are_stored_like_post_ones(aws, invoke) -> None:
    # Given statusCallbackMethod="GET": Twilio appends its parameters to our URL's query string
    session = open_session(invoke)

    # When two events arrive that way, one of them twice
    answers = [
        deliver(invoke, "status", session.status_url, params, method="GET")
        for params in (event(2), event(1), event(2))
    ]

    # Then they are stored once each; Raw holds Twilio's parameters only (not our session parameter)
    assert answers == [204, 204, 204]
    items = event_items(aws, session.session_id)
    assert [item["Raw"] for item in items] == [event(1), event(2)]
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-ringing"


def test_an_unsigned_event_is_refused_and_nothing_is_written(aws, invoke) -> None:
    session = open_session(invoke)
    before = aws.items()

    response = invoke("status", http_api_event("POST", session.status_url, event(1), token=None))

    assert response["statusCode"] == 403
    assert aws.items() == before


def test_dynamodb_failing_on_the_event_write_answers_5xx_and_the_retry_stores_it(
    aws, invoke, monkeypatch, capfd
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session, and DynamoDB failing every attempt of the next event write
    session = open_session(invoke)
    skip_retry_sleep(monkeypatch)
    client = aws_clients.dynamodb_client()
    output.read()

    # When Twilio delivers call-answered
    with failing(client, "PutItem") as failed:
        first = deliver(invoke, "status", session.status_url, event(3))

    # Then (after botocore's attempts) Twilio is told to retry (5xx), nothing of the event
    # was written, and the failure is counted
    assert failed == ["PutItem"] * aws_clients.MAX_ATTEMPTS
    assert 500 <= first < 600
    assert event_items(aws, session.session_id) == []
    assert "LatestStatus" not in session_item(aws, session.session_id)
    assert output.read().metrics["CallbackStorageFailed"] == 1

    # And when Twilio retries, the event and the session update are written
    assert deliver(invoke, "status", session.status_url, event(3)) == 204
    assert [item["Raw"] for item in event_items(aws, session.session_id)] == [event(3)]
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-answered"


def test_dynamodb_failing_on_the_session_update_answers_5xx_and_the_duplicate_retry_finishes_it(
    aws, invoke, monkeypatch
) -> None:
    # Given a session, and DynamoDB failing the session update (after the event write succeeded)
    session = open_session(invoke)
    skip_retry_sleep(monkeypatch)
    client = aws_clients.dynamodb_client()

    with failing(client, "UpdateItem", code="ProvisionedThroughputExceededException", status=400):
        first = deliver(invoke, "status", session.status_url, event(4))

    # Then the event is stored but the session is not yet moved, and Twilio is told to retry
    assert 500 <= first < 600
    assert [item["Status"] for item in event_items(aws, session.session_id)] == ["call-completed"]
    assert "LatestStatus" not in session_item(aws, session.session_id)

    # When the retry arrives (a duplicate of a stored event)
    assert deliver(invoke, "status", session.status_url, event(4)) == 204

    # Then it completes the work: the session is at call-completed, still one event item
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-completed"
    assert session_item(aws, session.session_id)["ConversationSid"] == LATEST["ConversationSid"]
    assert len(event_items(aws, session.session_id)) == 1


def test_a_conflicting_retry_completes_the_session_update_from_the_event_kept(
    aws, invoke, monkeypatch
) -> None:
    # Given event 4 stored, but the session update that followed it failed (answered 5xx)
    session = open_session(invoke)
    skip_retry_sleep(monkeypatch)
    with failing(aws_clients.dynamodb_client(), "UpdateItem"):
        assert 500 <= deliver(invoke, "status", session.status_url, event(4)) < 600

    # When a delivery claiming SequenceNumber 4 arrives with different content
    answer = deliver(invoke, "status", session.status_url, event(4, Status="call-answered"))

    # Then the session moves by the event that is kept (the first), not by the conflicting one
    assert answer == 204
    [item] = event_items(aws, session.session_id)
    assert item["Status"] == "call-completed"
    assert session_item(aws, session.session_id)["LatestStatus"] == "call-completed"
