"""The timeline reader and its table, against moto (in-process) holding the template's table and
queues: sessions found by CallSid, events in SequenceNumber order, queue messages peeked and left
in place."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest
from voicedev.emulator.cli import timeline_main
from voicedev.emulator.timeline import AwsLocation, TimelineReader, render

CALL = "CA00000000" + "ab" * 12
SESSION = f"{CALL}-0123456789abcdef"
OTHER_SESSION = f"{CALL}-fedcba9876543210"


def session_item(session_id: str, created: str) -> dict[str, Any]:
    return {
        "SessionId": session_id,
        "ItemKey": "session",
        "SessionCallSid": CALL,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550006",
        "To": "+15550100001",
        "Direction": "inbound",
        "Flow": "frontline",
        "FlowKind": "conversation",
        "CreatedAt": created,
        "LatestStatus": "call-completed",
        "LatestSequenceNumber": 3,
        "CallStatus": "completed",
        "CallSequenceNumber": 0,
    }


ACTION = {
    "SessionId": SESSION,
    "ItemKey": "action#connect",
    "Result": "session-success",
    "Outcome": "session-success",
    "Next": "hangup",
    "ReceivedAt": "2026-05-07T00:59:30.500000+00:00",
}
RECORDING = {
    "SessionId": SESSION,
    "ItemKey": "recording#RE" + "1" * 32,
    "RecordingSid": "RE" + "1" * 32,
    "Status": "completed",
    "Duration": 60,
    "Channels": 2,
    "Source": "DialVerb",
    "UpdatedAt": "2026-05-07T00:59:31+00:00",
    "QueuedAt": "2026-05-07T00:59:31.200000+00:00",
}


def event(sequence: int, status: str, timestamp: str, received: str) -> dict[str, Any]:
    return {
        "SessionId": SESSION,
        "ItemKey": f"event#conversation#{sequence:010d}",
        "Stream": "conversation",
        "SequenceNumber": sequence,
        "Status": status,
        "Timestamp": timestamp,
        "EventTime": timestamp,
        "DialCallSid": "CA" + "d" * 32,
        "ReceivedAt": received,
    }


def call_event(call_sid: str, sequence: int, status: str, timestamp: str, received: str) -> dict[str, Any]:
    return {
        "SessionId": SESSION,
        "ItemKey": f"event#call#{call_sid}#{sequence:010d}",
        "Stream": "call",
        "CallSid": call_sid,
        "SequenceNumber": sequence,
        "CallStatus": status,
        "Timestamp": timestamp,
        "EventTime": timestamp,
        "ReceivedAt": received,
    }


LEG = "CA" + "e" * 32


@pytest.fixture
def stored(aws: Any) -> Any:
    # Events written in another order than they happened, as Twilio may deliver them
    table = aws.table
    table.put_item(Item=session_item(SESSION, "2026-05-07T00:58:19.400000+00:00"))
    table.put_item(
        Item=event(3, "call-completed", "2026-05-07T00:59:30+00:00", "2026-05-07T00:58:19.900000+00:00")
    )
    table.put_item(
        Item=event(1, "call-initiated", "2026-05-07T00:58:20+00:00", "2026-05-07T00:58:20.100000+00:00")
    )
    table.put_item(
        Item=event(2, "call-answered", "2026-05-07T00:58:28+00:00", "2026-05-07T00:58:20.300000+00:00")
    )
    # The call's own call-progress stream (number status URL) and a dialled leg's
    table.put_item(
        Item=call_event(CALL, 0, "completed", "2026-05-07T00:59:31+00:00", "2026-05-07T00:59:31.100000+00:00")
    )
    table.put_item(
        Item=call_event(LEG, 0, "initiated", "2026-05-07T00:58:21+00:00", "2026-05-07T00:58:21.100000+00:00")
    )
    table.put_item(
        Item={
            "SessionId": SESSION,
            "ItemKey": f"leg#{LEG}",
            "CallSid": LEG,
            "CallStatus": "initiated",
            "CallSequenceNumber": 0,
            "To": "+15550100100",
        }
    )
    table.put_item(Item=ACTION)
    table.put_item(Item=RECORDING)
    later = session_item(OTHER_SESSION, "2026-05-07T01:10:00+00:00")
    for name in ("LatestStatus", "LatestSequenceNumber", "CallStatus", "CallSequenceNumber"):
        later.pop(name)
    table.put_item(Item=later)
    return aws


def reader() -> TimelineReader:
    return TimelineReader(AwsLocation(endpoint_url=None, region="us-east-1"))


def test_the_sessions_of_a_call_come_from_the_call_sid_index_oldest_first(stored: Any) -> None:
    assert reader().sessions_for_call(CALL) == [SESSION, OTHER_SESSION]


def test_events_come_in_sequence_order_with_times_relative_to_the_call(stored: Any) -> None:
    # When the timeline is read and rendered
    timeline = reader().timeline(SESSION, read_queues=False)
    text = render(timeline)

    # Then each stream is in SequenceNumber order, whatever order the events were written in
    assert [item["SequenceNumber"] for item in timeline.stream("conversation")] == [1, 2, 3]
    assert [item["CallStatus"] for item in timeline.stream("call")] == ["completed"]
    assert [item["CallStatus"] for item in timeline.stream(f"call:{LEG}")] == ["initiated"]
    # And the streams are interleaved by Twilio's Timestamp
    rows = re.findall(
        r"^\s+(call|conversation|leg \S+)\s+(\d)\s+([\w-]+)\s+(\+\d+s)\s+(\+[\d.]+s)", text, re.M
    )
    assert rows == [
        ("conversation", "1", "call-initiated", "+1s", "+0.700s"),
        ("leg CAeeeeee…eeee", "0", "initiated", "+2s", "+1.700s"),
        ("conversation", "2", "call-answered", "+9s", "+0.900s"),
        ("conversation", "3", "call-completed", "+71s", "+0.500s"),
        ("call", "0", "completed", "+72s", "+71.700s"),
    ]
    # And the session's latest status of each stream, the leg, the action step, the recording
    assert "call status completed (#0)" in text
    assert "conversation status call-completed (#3)" in text
    assert re.search(r"Dialled legs\n.*\n.*\n\s+CAeeeeee…eeee\s+initiated \(#0\)\s+To=\+155", text)
    assert re.search(
        r"action: connect\s+\+71\.100s\s+Result=session-success Outcome=session-success Next=hangup", text
    )
    assert re.search(
        # (the cell wraps under its column: every line fits 100 columns)
        r"recording RE111111…1111\s+\+71\.600s\s+Status=completed Duration=60 .*\s+queued \+71\.800s",
        text,
        re.DOTALL,
    )
    assert "Queue messages: not read" in text
    # And phone numbers are masked
    assert "+15005550006" not in text and "+1500*****06" in text


def test_an_unknown_session_says_so(stored: Any) -> None:
    text = render(reader().timeline("CA-nothing", read_queues=False))
    assert "nothing stored for this session" in text


def test_queue_messages_are_peeked_and_left_visible(stored: Any) -> None:
    # Given 12 messages in RecordingsQueue, two of them for our session
    queue_url = stored.queue_urls["RecordingsQueue"]
    for index in range(12):
        session = SESSION if index in (3, 9) else f"CA{index:032d}-0"
        body = {
            "schema": "twilio-voice-webhooks.recording.v1",
            "sessionId": session,
            "recordingSid": f"RE{index:032d}",
        }
        stored.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))

    # When the timeline peeks the queue
    timeline = reader().timeline(SESSION)

    # Then it shows this session's messages (more than one receive batch was needed to find them)
    assert timeline.queues_read
    assert sorted(message.body["recordingSid"] for message in timeline.messages) == [
        f"RE{3:032d}",
        f"RE{9:032d}",
    ]
    assert {message.queue for message in timeline.messages} == {"RecordingsQueue"}
    assert {message.receive_count for message in timeline.messages} == {1}
    # And every message is still there and visible to the real consumer
    attributes = stored.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "12", "ApproximateNumberOfMessagesNotVisible": "0"}
    text = render(timeline)
    assert "peeked" in text
    assert re.search(r"^\s+RecordingsQueue\s+\S+\s+RE000000…0003\s", text, re.MULTILINE)


def test_the_timeline_command_finds_the_sessions_of_a_call_sid(
    stored: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status = timeline_main([CALL, "--aws-endpoint-url", "aws", "--region", "us-east-1", "--no-peek-queue"])

    out = capsys.readouterr().out
    assert status == 0
    assert out.index(f"Session {SESSION}") < out.index(f"Session {OTHER_SESSION}")
    assert "Queue messages: not read (use --peek-queue to read them)" in out


def test_the_timeline_command_reports_an_unknown_call(
    stored: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status = timeline_main(["CA" + "9" * 32, "--aws-endpoint-url", "aws", "--region", "us-east-1"])
    assert status == 1
    assert "no session for call" in capsys.readouterr().out


def test_the_timeline_command_without_the_local_mode_says_to_start_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given nothing listening on the local mode's AWS port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LOCAL_AWS_PORT", str(port))

    # When a newcomer runs `make timeline` before `make local`
    status = timeline_main([CALL])

    # Then one clear line says what to do, and the command fails without a traceback
    captured = capsys.readouterr()
    assert status != 0
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"Nothing answers at http://127.0.0.1:{port}: start the local mode first: make local "
        "(in another terminal, with the same LOCAL_AWS_PORT)"
    ]
