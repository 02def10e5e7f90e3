"""The pure parts of status-callback handling: what an event item holds, what counts as the same
delivery, what is refused. (Which parameters are Twilio's and which session a callback names:
the edge's request model, tests/unit/test_webhook_request.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from voice_webhooks.callbacks.models import ConversationStatus, StatusCallback, parse_params
from voice_webhooks.callbacks.status import (
    differing_fields,
    event_item,
    raw_digest,
    same_delivery,
)
from voice_webhooks.errors import MalformedRequest

ACCOUNT = "AC" + "0" * 32
CALL = "CA" + "1" * 32
RECEIVED = datetime(2022, 5, 7, 0, 58, 21, tzinfo=UTC)
PARAMS = {
    "AccountSid": ACCOUNT,
    "ConversationSid": "CH" + "2" * 32,
    "DialCallSid": "CA" + "3" * 32,
    "WorkerInitiated": "true",
    "Status": "call-answered",
    "SequenceNumber": "3",
    "Timestamp": "Sat, 7 May 2022 02:58:19 +0200",
    "CallbackSource": "voice-conversation-service",
    "SomethingTwilioAddedLater": "x",
}


def test_an_event_item_holds_the_parsed_fields_under_twilio_names_and_the_raw_parameters() -> None:
    # Given a status callback
    callback = parse_params(StatusCallback, PARAMS)

    # When its item is built
    item = event_item(callback, PARAMS, "session-1", RECEIVED, ttl_days=90)

    # Then: keys, parsed values (timestamp in UTC ISO, boolean), raw parameters, times, TTL
    assert item == {
        "SessionId": "session-1",
        "ItemKey": "event#conversation#0000000003",
        "Stream": "conversation",
        "SequenceNumber": 3,
        "Status": "call-answered",
        "Timestamp": "2022-05-07T00:58:19+00:00",
        "DialCallSid": PARAMS["DialCallSid"],
        "ConversationSid": PARAMS["ConversationSid"],
        "WorkerInitiated": True,
        "CallbackSource": "voice-conversation-service",
        "Raw": PARAMS,
        "RawDigest": raw_digest(PARAMS),
        "ReceivedAt": "2022-05-07T00:58:21+00:00",
        # Twilio's Timestamp interleaves the session's streams by time
        "EventTime": "2022-05-07T00:58:19+00:00",
        "ExpiresAt": int((RECEIVED + timedelta(days=90)).timestamp()),
    }
    assert type(item["Status"]) is str


def test_an_event_item_leaves_out_absent_fields_and_never_carries_a_top_level_call_sid() -> None:
    params = {"AccountSid": ACCOUNT, "CallSid": CALL, "Status": "call-initiated", "SequenceNumber": "1"}

    item = event_item(parse_params(StatusCallback, params), params, "s", RECEIVED, ttl_days=1)

    assert set(item) == {
        "SessionId",
        "ItemKey",
        "Stream",
        "SequenceNumber",
        "Status",
        "Raw",
        "RawDigest",
        "ReceivedAt",
        "EventTime",
        "ExpiresAt",
    }
    assert item["Raw"]["CallSid"] == CALL
    # Without Twilio's Timestamp, the time it was received places the event
    assert item["EventTime"] == item["ReceivedAt"]


def test_an_unknown_status_is_kept_as_received_and_reported() -> None:
    params = {**PARAMS, "Status": "call-transferred"}

    callback = parse_params(StatusCallback, params)

    assert callback.status == "call-transferred"
    assert not isinstance(callback.status, ConversationStatus)
    assert callback.unknown_values() == {"Status": "call-transferred"}
    assert event_item(callback, params, "s", RECEIVED, 1)["Status"] == "call-transferred"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"SequenceNumber": None}, "SequenceNumber"),
        ({"SequenceNumber": "x"}, "SequenceNumber"),
        ({"SequenceNumber": "1.0"}, "SequenceNumber"),
        ({"SequenceNumber": "0"}, "SequenceNumber"),
        ({"SequenceNumber": " 3"}, "SequenceNumber"),
        ({"SequenceNumber": "99999999999"}, "SequenceNumber"),
        ({"Status": None}, "Status"),
        ({"Status": ""}, "Status"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
        ({"WorkerInitiated": "yes"}, "WorkerInitiated"),
    ],
)
def test_a_callback_without_a_usable_sequence_number_or_status_is_malformed(change, field) -> None:
    params = {name: value for name, value in {**PARAMS, **change}.items() if value is not None}

    with pytest.raises(MalformedRequest) as refused:
        parse_params(StatusCallback, params)

    assert refused.value.reason.startswith(field)


def test_the_same_parameters_are_the_same_delivery_and_any_difference_is_a_conflict() -> None:
    stored = {"Raw": dict(PARAMS)}

    assert same_delivery(stored, dict(PARAMS))
    assert not same_delivery(stored, {**PARAMS, "Status": "call-completed"})
    assert not same_delivery(stored, {**PARAMS, "Extra": ""})
    assert differing_fields(stored, {**PARAMS, "Status": "call-completed", "Extra": ""}) == [
        "Extra",
        "Status",
    ]
