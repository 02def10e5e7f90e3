"""The pure parts of recording-callback handling: the entry kept on the session item, when a
recording needs queueing, and how long a queueing claim lasts. (The forward-only state rule is the
DynamoDB condition, tested through the route: tests/integration/test_recording_route.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from voice_webhooks.callbacks.models import RecordingStatusCallback, parse_params
from voice_webhooks.callbacks.recordings import (
    LEASE_SKEW_MS,
    MAX_LEASE_MS,
    MIN_LEASE_MS,
    lease_until,
    needs_queueing,
    recording_entry,
)
from voice_webhooks.errors import MalformedRequest

RECEIVED = datetime(2022, 5, 7, 1, 4, 30, tzinfo=UTC)
SID = "RE" + "a" * 32
COMPLETED = {
    "AccountSid": "AC" + "0" * 32,
    "CallSid": "CA" + "1" * 32,
    "RecordingSid": SID,
    "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{'AC' + '0' * 32}/Recordings/{SID}",
    "RecordingStatus": "completed",
    "RecordingDuration": "335",
    "RecordingChannels": "2",
    "RecordingSource": "DialVerb",
    "RecordingStartTime": "Sat, 07 May 2022 00:58:27 +0000",
}


def test_a_completed_entry_keeps_what_twilio_said_and_when_it_completed() -> None:
    callback = parse_params(RecordingStatusCallback, COMPLETED)

    entry = recording_entry(callback, RECEIVED)

    assert entry == {
        "Status": "completed",
        "Duration": 335,
        "Channels": 2,
        "Source": "DialVerb",
        "Url": COMPLETED["RecordingUrl"],
        "StartTime": "2022-05-07T00:58:27+00:00",
        "CallSid": COMPLETED["CallSid"],
        "AccountSid": COMPLETED["AccountSid"],
        "UpdatedAt": "2022-05-07T01:04:30+00:00",
        "CompletedAt": "2022-05-07T01:04:30+00:00",
    }
    assert all(type(value) in (str, int) for value in entry.values())


def test_an_in_progress_entry_has_no_completion_time_and_no_empty_fields() -> None:
    params = {
        **COMPLETED,
        "RecordingStatus": "in-progress",
        "RecordingDuration": "-1",
        "RecordingChannels": "",
    }

    entry = recording_entry(parse_params(RecordingStatusCallback, params), RECEIVED)

    assert entry["Status"] == "in-progress"
    assert "CompletedAt" not in entry
    assert "Duration" not in entry  # -1: no length yet
    assert "Channels" not in entry


@pytest.mark.parametrize(("channels", "kept"), [("1", 1), ("2", 2), ("4", 4), ("stereo", "stereo")])
def test_a_channel_count_is_kept_as_a_number_and_an_unknown_value_as_received(channels, kept) -> None:
    params = {**COMPLETED, "RecordingChannels": channels}

    entry = recording_entry(parse_params(RecordingStatusCallback, params), RECEIVED)

    assert entry["Channels"] == kept


def test_a_blank_duration_is_unknown_not_an_error() -> None:
    callback = parse_params(RecordingStatusCallback, {**COMPLETED, "RecordingDuration": ""})

    assert callback.recording_duration is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"RecordingSid": None}, "RecordingSid"),
        ({"RecordingSid": "RE123"}, "RecordingSid"),
        ({"RecordingStatus": None}, "RecordingStatus"),
        ({"RecordingStatus": ""}, "RecordingStatus"),
        ({"RecordingDuration": "-2"}, "RecordingDuration"),
        ({"AccountSid": None}, "AccountSid"),
    ],
)
def test_a_recording_callback_without_its_identity_or_status_is_malformed(change, field) -> None:
    params = {name: value for name, value in {**COMPLETED, **change}.items() if value is not None}

    with pytest.raises(MalformedRequest) as refused:
        parse_params(RecordingStatusCallback, params)

    assert refused.value.reason.startswith(field)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (None, False),
        ({}, False),
        ({"Status": "in-progress"}, False),
        ({"Status": "absent"}, False),
        ({"Status": "completed"}, True),
        ({"Status": "completed", "QueueLeaseUntil": 5}, True),  # claimed but never marked
        ({"Status": "completed", "QueuedAt": "2022-05-07T01:04:31+00:00"}, False),
    ],
)
def test_a_recording_needs_queueing_while_completed_and_not_yet_queued(entry, expected) -> None:
    assert needs_queueing(entry) is expected


def test_a_claim_lasts_as_long_as_the_invocation_can_within_bounds() -> None:
    now = 1_000_000

    assert lease_until(now, 9_500) == now + 9_500 + LEASE_SKEW_MS
    assert lease_until(now, 10) == now + MIN_LEASE_MS + LEASE_SKEW_MS
    assert lease_until(now, 900_000) == now + MAX_LEASE_MS + LEASE_SKEW_MS
    assert lease_until(now, None) == now + MAX_LEASE_MS + LEASE_SKEW_MS
