"""/voice/status with every status stream Twilio sends, under moto: call-progress events (inbound,
outbound, a dialled leg) and `<Conversation>` events, shuffled and duplicated, with or without our
`session` parameter; each stored once in its own stream, each stream's latest status right."""

from __future__ import annotations

import random
from typing import Any
from xml.etree import ElementTree

import pytest
from voice_webhooks.edge import routes
from voicedev.twilio_signing import DEV_ACCOUNT_SID, http_api_event

from tests.integration.callback_helpers import (
    BASE_URL,
    Output,
    deliver,
    fixture,
    open_session,
    session_url,
)
from tests.support import body_text

PROGRESS = fixture("call_progress_callbacks.json")
INBOUND: list[dict[str, str]] = PROGRESS["inbound"]["events"]
OUTBOUND: list[dict[str, str]] = PROGRESS["outbound"]["events"]
LEG: list[dict[str, str]] = PROGRESS["dialled_leg"]["events"]
INBOUND_CALL = PROGRESS["inbound"]["call_sid"]
OUTBOUND_CALL = PROGRESS["outbound"]["call_sid"]
LEG_CALL = PROGRESS["dialled_leg"]["call_sid"]
CONVERSATION: list[dict[str, str]] = fixture("status_callbacks.json")["events"]
STATUS_URL = f"{BASE_URL}{routes.STATUS}"
RELAY_NUMBER = "+15550100002"


def connect_relay_call(invoke: Any, call_sid: str) -> str:
    """Answer a call on the relay number (no status callback in its TwiML); its session id."""
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": call_sid,
        "From": "+15550109999",
        "To": RELAY_NUMBER,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    response = invoke("connect", http_api_event("POST", f"{BASE_URL}/voice/connect", params))
    assert response["statusCode"] == 200
    connect = ElementTree.fromstring(body_text(response)).find("./Connect")
    assert connect is not None
    return connect.attrib["action"].split("#", 1)[0].split("session=", 1)[1]


def stream(aws: Any, session_id: str, prefix: str) -> list[dict[str, Any]]:
    return [item for item in aws.items(session_id) if item["ItemKey"].startswith(prefix)]


def session_item(aws: Any, session_id: str) -> dict[str, Any]:
    item = aws.item(session_id)
    assert item is not None
    return dict(item)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_call_progress_and_conversation_streams_shuffled_and_duplicated_are_each_stored_once(
    aws, invoke, seed
) -> None:
    # Given a conversation session of the inbound call, and every stream Twilio sends for it:
    # the number's call-progress callback (completed), the hand-off leg's call-progress events
    # (with ParentCallSid) and the <Conversation> events, each delivered twice in a random order
    session = open_session(invoke, INBOUND_CALL)
    deliveries = [
        *[(STATUS_URL, params) for params in INBOUND],
        *[(session.status_url, params) for params in LEG],
        *[(session.status_url, params) for params in CONVERSATION],
    ] * 2
    random.Random(seed).shuffle(deliveries)

    # When they all reach /voice/status (the number's URL has no ?session=)
    answers = [deliver(invoke, "status", url, params) for url, params in deliveries]

    # Then every delivery is acknowledged
    assert answers == [204] * len(deliveries)
    # And each stream holds one item per SequenceNumber, the <Conversation> #1 beside the call's #0..
    conversation = stream(aws, session.session_id, "event#conversation#")
    assert [item["SequenceNumber"] for item in conversation] == [1, 2, 3, 4]
    own = stream(aws, session.session_id, f"event#call#{INBOUND_CALL}#")
    assert [(item["SequenceNumber"], item["CallStatus"]) for item in own] == [(0, "completed")]
    leg = stream(aws, session.session_id, f"event#call#{LEG_CALL}#")
    assert [(item["SequenceNumber"], item["CallStatus"]) for item in leg] == [
        (0, "initiated"),
        (1, "ringing"),
        (2, "in-progress"),
        (3, "completed"),
    ]
    assert all(item["ParentCallSid"] == INBOUND_CALL for item in leg)
    assert all(item["Raw"] == sent for item, sent in zip(leg, LEG, strict=True))
    # And the session shows both its own streams' latest states, and the leg its own
    state = session_item(aws, session.session_id)
    assert (state["LatestStatus"], state["LatestSequenceNumber"]) == ("call-completed", 4)
    assert (state["CallStatus"], state["CallSequenceNumber"], state["CallDuration"]) == ("completed", 0, 343)
    assert state["CallStatusTimestamp"] == "2022-05-07T01:04:02+00:00"
    leg_item = aws.item(session.session_id, f"leg#{LEG_CALL}")
    assert (leg_item["CallStatus"], leg_item["CallSequenceNumber"]) == ("completed", 3)
    assert (leg_item["ParentCallSid"], leg_item["To"]) == (INBOUND_CALL, "+15550100100")
    # And the call reached a final status: the session is due for one reconciler pass (its
    # recordings) a grace period after the last final status arrived, no longer from its creation
    finals = [
        item
        for item in [*conversation, *own]
        if item.get("Status", item.get("CallStatus"))
        in (
            "call-completed",
            "completed",
        )
    ]
    assert state["ReconcileShard"] == "open"
    assert state["ReconcileAt"] == max(item["ReceivedAt"] for item in finals) > state["CreatedAt"]
    # And nothing went anywhere else
    assert {item["SessionId"] for item in aws.items()} == {session.session_id}


@pytest.mark.parametrize("seed", [1, 2])
def test_an_outbound_calls_events_without_a_session_start_one_and_end_at_completed(aws, invoke, seed) -> None:
    # Given an outbound call no connect webhook saw (created with a StatusCallback), whose
    # ringing / in-progress / completed events arrive shuffled and duplicated
    deliveries = [*OUTBOUND, *OUTBOUND]
    random.Random(seed).shuffle(deliveries)

    answers = [deliver(invoke, "status", STATUS_URL, params) for params in deliveries]

    # Then the call gets a session of its own, `<CallSid>`, holding its one stream once
    assert answers == [204] * len(deliveries)
    assert {item["SessionId"] for item in aws.items()} == {OUTBOUND_CALL}
    events = stream(aws, OUTBOUND_CALL, "event#call#")
    assert [(item["SequenceNumber"], item["CallStatus"]) for item in events] == [
        (0, "ringing"),
        (1, "in-progress"),
        (2, "completed"),
    ]
    state = session_item(aws, OUTBOUND_CALL)
    assert (state["CallStatus"], state["CallSequenceNumber"], state["CallDuration"]) == ("completed", 2, 180)
    assert (state["SessionCallSid"], state["Origin"], state["Direction"]) == (
        OUTBOUND_CALL,
        "callback",
        "outbound-api",
    )
    # And it is due for the reconciler from the moment its completed event arrived
    assert state["ReconcileShard"] == "open"
    assert state["ReconcileAt"] == events[2]["ReceivedAt"]


def test_a_session_started_by_a_callback_is_due_from_its_creation_then_from_its_final_status(
    aws, invoke
) -> None:
    # Given the outbound call's first event, alone
    assert deliver(invoke, "status", STATUS_URL, OUTBOUND[0]) == 204

    # Then its session is listed as due for reconciliation from its creation
    state = session_item(aws, OUTBOUND_CALL)
    assert state["ReconcileShard"] == "open"
    assert state["ReconcileAt"] == state["CreatedAt"]
    due = aws.table.query(
        IndexName="ByReconcileDue",
        KeyConditionExpression="ReconcileShard = :open",
        ExpressionAttributeValues={":open": "open"},
    )["Items"]
    assert [item["SessionId"] for item in due] == [OUTBOUND_CALL]

    # When the completed event arrives, then the session stays listed, due from that moment: one
    # reconciler pass will check the call's recordings (a recording callback may still be lost)
    assert deliver(invoke, "status", STATUS_URL, OUTBOUND[2]) == 204
    state = session_item(aws, OUTBOUND_CALL)
    [completed] = [item for item in stream(aws, OUTBOUND_CALL, "event#call#") if item["SequenceNumber"] == 2]
    assert state["ReconcileShard"] == "open"
    assert state["ReconcileAt"] == completed["ReceivedAt"] > state["CreatedAt"]
    # And a duplicate of it moves nothing
    assert deliver(invoke, "status", STATUS_URL, OUTBOUND[2]) == 204
    assert session_item(aws, OUTBOUND_CALL)["ReconcileAt"] == completed["ReceivedAt"]


def test_a_relay_call_gets_its_status_from_the_numbers_callback_in_its_connect_session(aws, invoke) -> None:
    # Given a relay call answered by connect (ConversationRelay has no status callback)
    session_id = connect_relay_call(invoke, INBOUND_CALL)

    # When the number's "Call status changes" callback arrives, without ?session=
    assert deliver(invoke, "status", STATUS_URL, INBOUND[0]) == 204

    # Then the connect session, found by its CallSid, holds the call's final status
    state = session_item(aws, session_id)
    assert (state["CallStatus"], state["FlowKind"]) == ("completed", "relay")
    assert [item["CallStatus"] for item in stream(aws, session_id, "event#call#")] == ["completed"]
    assert aws.item(INBOUND_CALL) is None


def test_a_dialled_legs_events_without_a_session_join_the_parent_calls_session(aws, invoke) -> None:
    # Given the parent call's connect session
    session_id = connect_relay_call(invoke, INBOUND_CALL)

    # When the leg's events arrive at a URL without ?session=
    for params in LEG:
        assert deliver(invoke, "status", STATUS_URL, params) == 204

    # Then they are the leg's stream in the parent's session, and the leg item has its latest
    assert [item["CallStatus"] for item in stream(aws, session_id, f"event#call#{LEG_CALL}#")] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert aws.item(session_id, f"leg#{LEG_CALL}")["CallStatus"] == "completed"
    # And the parent call's own status is untouched by its leg's
    assert "CallStatus" not in session_item(aws, session_id)


def test_a_stream_that_started_in_a_callback_session_stays_there(aws, invoke) -> None:
    # Given a call whose first event started the session `<CallSid>`
    assert deliver(invoke, "status", STATUS_URL, OUTBOUND[0]) == 204
    # And, later, a connect session for the same call (say the call was redirected to connect)
    connect_relay_call(invoke, OUTBOUND_CALL)

    # When its next events arrive without ?session=
    for params in OUTBOUND[1:]:
        assert deliver(invoke, "status", STATUS_URL, params) == 204

    # Then the stream is whole in the session it started in (one stream, one place)
    assert [item["SequenceNumber"] for item in stream(aws, OUTBOUND_CALL, "event#call#")] == [0, 1, 2]


# --- what a callback may not do -------------------------------------------------------------------


def assert_refused_and_nothing_written(
    response: dict[str, Any], aws: Any, before: list[Any], status: int
) -> None:
    assert response["statusCode"] == status, body_text(response)
    assert aws.items() == before
    assert aws.messages() == []


@pytest.mark.parametrize(
    ("function", "route", "params"),
    [
        ("status", routes.STATUS, INBOUND[0]),
        ("status", routes.STATUS, LEG[0]),
        (
            "recording",
            routes.RECORDING,
            fixture("recording_callbacks.json")["conversation"]["completed"],
        ),
        ("action", routes.ACTION, fixture("action/conversation-session-success.json")["params"]),
    ],
)
def test_a_callback_naming_another_calls_session_is_refused_with_403_and_writes_nothing(
    aws, invoke, capfd, monkeypatch, function, route, params
) -> None:
    output = Output(capfd, monkeypatch)
    # Given call B's session
    victim = open_session(invoke, OUTBOUND_CALL)
    before = aws.items()
    output.read()

    # When a signed callback of call A names B's session
    url = session_url(route, victim.session_id)
    response = invoke(function, http_api_event("POST", url, params))

    # Then it is refused with a reason, counted, and nothing is written anywhere
    assert_refused_and_nothing_written(response, aws, before, 403)
    assert body_text(response) == "session belongs to another call"
    assert output.read().metrics["SessionMismatch"] == 1


@pytest.mark.parametrize(
    "session",
    [
        "x",
        "CA123",
        f"{INBOUND_CALL}-XYZ",
        f"{INBOUND_CALL}-0123456789abcdef-1",
        f"{INBOUND_CALL}-0123456789ABCDEF",
    ],
)
def test_a_session_parameter_no_id_of_ours_can_be_is_a_400(aws, invoke, session) -> None:
    response = invoke("status", http_api_event("POST", f"{STATUS_URL}?session={session}", INBOUND[0]))

    assert_refused_and_nothing_written(response, aws, [], 400)


@pytest.mark.parametrize(
    ("function", "route", "params"),
    [
        ("status", routes.STATUS, INBOUND[0]),
        ("status", routes.STATUS, CONVERSATION[0]),
        ("recording", routes.RECORDING, fixture("recording_callbacks.json")["conversation"]["completed"]),
        ("action", routes.ACTION, fixture("action/conversation-session-success.json")["params"]),
    ],
)
def test_a_parameter_with_an_empty_name_is_a_400_before_anything_is_written(
    aws, invoke, function, route, params
) -> None:
    # Given a signed body with `...&=x` (DynamoDB refuses an empty attribute name)
    url = session_url(route, f"{INBOUND_CALL}-0123456789abcdef")

    response = invoke(function, http_api_event("POST", url, {**params, "CallSid": INBOUND_CALL, "": "x"}))

    assert_refused_and_nothing_written(response, aws, [], 400)
    assert "empty name" in body_text(response)


@pytest.mark.parametrize(
    ("function", "route", "params", "field"),
    [
        ("status", routes.STATUS, INBOUND[0], "Timestamp"),
        ("status", routes.STATUS, CONVERSATION[0], "Timestamp"),
        (
            "recording",
            routes.RECORDING,
            fixture("recording_callbacks.json")["conversation"]["completed"],
            "RecordingStartTime",
        ),
    ],
)
def test_a_date_past_year_9999_in_utc_is_a_400_never_a_5xx(
    aws, invoke, function, route, params, field
) -> None:
    url = session_url(route, f"{INBOUND_CALL}-0123456789abcdef")
    hostile = {**params, "CallSid": INBOUND_CALL, field: "Fri, 31 Dec 9999 23:59:59 -2359"}

    response = invoke(function, http_api_event("POST", url, hostile))

    assert_refused_and_nothing_written(response, aws, [], 400)
    assert body_text(response).startswith(field)


def test_an_event_over_the_raw_budget_is_stored_truncated_with_a_marker_and_still_deduplicated(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given an event carrying parameters Twilio might add, 40 KB of them
    session = open_session(invoke, INBOUND_CALL)
    params = {**INBOUND[0], **{f"Added{i}": "v" * 1000 for i in range(40)}}
    output.read()

    # When it is delivered twice
    first = deliver(invoke, "status", session.status_url, params)
    second = deliver(invoke, "status", session.status_url, params)

    # Then it is stored once: Twilio's own fields whole, Raw within its budget and marked
    assert (first, second) == (204, 204)
    [item] = stream(aws, session.session_id, "event#call#")
    assert item["CallStatus"] == "completed"
    assert item["RawTruncated"] is True
    assert item["RawOmitted"] > 0
    assert int(item["RawBytes"]) > 40_000
    assert sum(len(name) + len(value) for name, value in item["Raw"].items()) <= 16 * 1024
    assert item["Raw"]["CallSid"] == INBOUND_CALL
    emitted = output.read()
    assert emitted.metrics["RawTruncated"] == 2
    assert emitted.metrics["DuplicateCallback"] == 1
