"""Every emulator scenario against the real `make local` (free loopback ports), then what the product
stored: the event items (exact SequenceNumbers, once each), the session item's final state, the
TwiML answered at each step, and the RecordingsQueue messages. Once in order, once shuffled with
every callback delivered twice, and once with every callback method GET.

Expected answers come from config/flows.example.json (the local mode's flows), read through the
product's own config model, so a changed prompt or target changes the expectation with it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from voice_webhooks.flows.loader import parse_flow_config
from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voicedev.emulator.engine import CallResult, EmulatorConfig, run_call
from voicedev.emulator.scenarios import SCENARIOS, Line, Scenario, get
from voicedev.emulator.timeline import AwsLocation, SessionTimeline, TimelineReader
from voicedev.twilio_signing import DEV_ACCOUNT_SID

from tests.e2e.conftest import ROOT, LocalModeProcess, command_environment

EXAMPLE_PATH = ROOT / "config" / "flows.example.json"
EXAMPLE, _ = parse_flow_config(EXAMPLE_PATH.read_text(encoding="utf-8"), "flows.example.json")
_FRONTLINE, _ASSISTANT = EXAMPLE.flows["frontline"], EXAMPLE.flows["assistant"]
assert isinstance(_FRONTLINE, ConversationFlow) and isinstance(_ASSISTANT, RelayFlow)
FRONTLINE: ConversationFlow = _FRONTLINE
ASSISTANT: RelayFlow = _ASSISTANT
VOICEMAIL = FRONTLINE.outcomes.voicemail
HANDOFF_KEY = "support"  # what the ai-handoff scenario's HandoffData names
OVERRIDES = "rc=3&rp=all"  # the local mode's CALLBACK_CONNECTION_OVERRIDES (the template default)
CUSTOMER = "+15005550006"


def verbs(xml: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tag, text, attributes) of each verb of a TwiML answer."""
    return [
        (child.tag, "".join(child.itertext()).strip(), dict(child.attrib))
        for child in ElementTree.fromstring(xml)
    ]


def says(*texts: str | None) -> list[tuple[str, str]]:
    return [("Say", text) for text in texts if text]


def shape(xml: str) -> list[tuple[str, str]]:
    """(tag, text) pairs, with <Dial>'s text being its target and <Record>/<Start> empty."""
    return [(tag, text) for tag, text, _ in verbs(xml)]


def voicemail_answer(message: str | None = None) -> list[tuple[str, str]]:
    return [*says(message, VOICEMAIL.prompt), ("Record", ""), *says(VOICEMAIL.no_message), ("Hangup", "")]


def conversation_message(key: str) -> str | None:
    return FRONTLINE.outcomes.on.get(key).message


def relay_message(key: str) -> str | None:
    return ASSISTANT.outcomes.on.get(key).message


SUPPORT_NUMBER = ASSISTANT.outcomes.targets[HANDOFF_KEY]


@dataclass(frozen=True)
class Expected:
    """What the product does with the example configuration."""

    action: list[tuple[str, str]]
    connect_action: dict[str, Any]
    after: list[tuple[str, str]] | None = None
    """The answer to the request the voicemail <Record> or the hand-off <Dial> makes when it ends."""
    later_step: tuple[str, dict[str, Any]] | None = None
    recordings: dict[str, str] = field(default_factory=dict)
    """Source -> final status of the session's recordings."""


VOICEMAIL_LEFT = (
    "RecordAction",
    {"Outcome": "voicemail-left", "Next": "hangup", "RecordingDuration": 12, "Digits": "#"},
)
THANKS = [*says(VOICEMAIL.thanks), ("Hangup", "")]
HANDED_OFF = [*says(relay_message("handoff")), ("Dial", SUPPORT_NUMBER)]

EXPECTED: dict[str, Expected] = {
    "worker-answers": Expected(
        action=[("Hangup", "")],
        connect_action={
            "Result": "session-success",
            "DialCallStatus": "completed",
            "Outcome": "session-success",
            "Next": "hangup",
        },
        recordings={"DialVerb": "completed"},
    ),
    "no-answer-voicemail": Expected(
        action=voicemail_answer(),
        connect_action={
            "Result": "dialed-call-incomplete",
            "DialCallStatus": "no-answer",
            "Next": "voicemail",
        },
        after=THANKS,
        later_step=VOICEMAIL_LEFT,
        recordings={"RecordVerb": "completed"},
    ),
    "busy": Expected(
        action=voicemail_answer(),
        connect_action={"Result": "dialed-call-incomplete", "DialCallStatus": "busy", "Next": "voicemail"},
        after=THANKS,
        later_step=VOICEMAIL_LEFT,
        recordings={"RecordVerb": "completed"},
    ),
    "no-worker-assigned": Expected(
        action=voicemail_answer(),
        connect_action={
            "Result": "no-other-participants",
            "Outcome": "no-other-participants",
            "Next": "voicemail",
        },
        after=THANKS,
        later_step=VOICEMAIL_LEFT,
        recordings={"RecordVerb": "completed"},
    ),
    "no-existing-conversation": Expected(
        action=voicemail_answer(conversation_message("no-existing-conversation")),
        connect_action={
            "Result": "no-existing-conversation",
            "Outcome": "no-existing-conversation",
            "Next": "voicemail",
        },
        after=THANKS,
        later_step=VOICEMAIL_LEFT,
        recordings={"RecordVerb": "completed"},
    ),
    "worker-invalid-conversation": Expected(
        action=[*says(conversation_message("invalid-conversation")), ("Hangup", "")],
        connect_action={
            "Result": "invalid-conversation",
            "WorkerInitiated": True,
            "Outcome": "invalid-conversation",
            "Next": "hangup",
        },
    ),
    "ai-completed": Expected(
        action=[],
        connect_action={
            "SessionStatus": "completed",
            "SessionDuration": 35,
            "Outcome": "completed",
            "Next": "empty",
        },
    ),
    "ai-handoff": Expected(
        action=HANDED_OFF,
        connect_action={
            "SessionStatus": "ended",
            "Outcome": "handoff",
            "Next": "dial",
            "Target": HANDOFF_KEY,
        },
        after=[("Hangup", "")],
        later_step=(
            "DialAction",
            {"DialCallStatus": "completed", "Outcome": "dial-completed", "Next": "hangup"},
        ),
    ),
    "ai-failed": Expected(
        action=[*says(relay_message("failed")), ("Dial", SUPPORT_NUMBER)],
        connect_action={
            "SessionStatus": "failed",
            "ErrorCode": "39001",
            "Outcome": "failed",
            "Next": "dial",
            "Target": HANDOFF_KEY,
        },
        after=[("Hangup", "")],
        later_step=("DialAction", {"DialCallStatus": "completed", "Outcome": "dial-completed"}),
    ),
    "recording-absent": Expected(
        action=[("Hangup", "")],
        connect_action={"Result": "session-success", "DialCallDuration": 1, "Outcome": "session-success"},
        recordings={"DialVerb": "absent"},
    ),
    "voicemail-silence": Expected(
        action=voicemail_answer(),
        connect_action={
            "Result": "dialed-call-incomplete",
            "DialCallStatus": "no-answer",
            "Next": "voicemail",
        },
        recordings={"RecordVerb": "absent"},
    ),
}


def test_every_scenario_has_an_expectation() -> None:
    assert set(EXPECTED) == {scenario.name for scenario in SCENARIOS}


@pytest.fixture
def reader(local_mode: LocalModeProcess, monkeypatch: pytest.MonkeyPatch) -> TimelineReader:
    # Discovery as the command does it: nothing named in the environment.
    monkeypatch.delenv("EVENTS_TABLE_NAME", raising=False)
    monkeypatch.delenv("RECORDINGS_QUEUE_URL", raising=False)
    return TimelineReader(AwsLocation(endpoint_url=local_mode.aws_endpoint, region="us-east-1"))


def emulator(local: LocalModeProcess, **options: Any) -> EmulatorConfig:
    return EmulatorConfig(base_url=local.public_base_url, strict=True, **options)


def callback(url: str, route: str, session_id: str, base: str) -> None:
    """A callback URL of ours: the route, the session, and the connection overrides fragment."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == base
    assert parts.path == route
    assert parse_qs(parts.query) == {"session": [session_id]}
    assert parts.fragment == OVERRIDES


# --- what each run must have stored -----------------------------------------------------------------------


def check_connect_twiml(result: CallResult, session_id: str, base: str) -> None:
    connect_xml = result.document("connect")
    assert connect_xml is not None
    ((tag, _, attrs),) = verbs(connect_xml.xml)
    assert tag == "Connect"
    assert attrs["method"] == "POST"
    callback(attrs["action"], "/voice/action", session_id, base)
    noun = ElementTree.fromstring(connect_xml.xml).find("./Connect/*")
    assert noun is not None
    if result.scenario.line is Line.CONVERSATION:
        assert noun.tag == "Conversation"
        assert noun.attrib["serviceInstanceSid"] == FRONTLINE.service_instance_sid
        assert noun.attrib["record"] == "record-from-answer-dual"
        assert noun.attrib["inboundTimeout"] == "20"
        assert noun.attrib["routingAssignmentTimeout"] == "10"
        callback(noun.attrib["statusCallback"], "/voice/status", session_id, base)
        callback(noun.attrib["recordingStatusCallback"], "/voice/recording", session_id, base)
        assert noun.attrib["statusCallbackMethod"] == noun.attrib["recordingStatusCallbackMethod"] == "POST"
        assert (
            noun.attrib["statusCallbackEvent"] == "call-initiated call-ringing call-answered call-completed"
        )
        assert noun.attrib["recordingStatusCallbackEvent"] == "in-progress completed absent"
    else:
        assert noun.tag == "ConversationRelay"
        assert noun.attrib["url"] == "wss://agent.example.com/relay"
        assert [(p.attrib["name"], p.attrib["value"]) for p in noun.findall("Parameter")] == [
            ("team", "support")
        ]
        assert [language.attrib["code"] for language in noun.findall("Language")] == ["sv-SE"]


def check_action_twiml(result: CallResult, expected: Expected, session_id: str, base: str) -> None:
    action = result.document("action")
    assert action is not None
    assert shape(action.xml) == expected.action
    for tag, _, attrs in verbs(action.xml):
        if tag == "Record":
            callback(attrs["action"], "/voice/action", session_id, base)
            callback(attrs["recordingStatusCallback"], "/voice/recording", session_id, base)
            assert attrs["method"] == attrs["recordingStatusCallbackMethod"] == "POST"
            assert attrs["recordingStatusCallbackEvent"] == "in-progress completed absent"
            assert attrs["maxLength"] == str(VOICEMAIL.max_length)
            assert attrs["finishOnKey"] == "#"
        if tag == "Dial":
            callback(attrs["action"], "/voice/action", session_id, base)
            assert attrs["method"] == "POST"
            assert attrs["timeout"] == str(ASSISTANT.outcomes.dial.timeout)
            assert attrs["answerOnBridge"] == "true"
    later = result.document("record-action") or result.document("dial-action")
    if expected.after is None:
        assert later is None
    else:
        assert later is not None
        assert shape(later.xml) == expected.after


ACTION_ITEMS = {"ConnectAction": "connect", "DialAction": "dial", "RecordAction": "record"}


def check_stored(result: CallResult, timeline: SessionTimeline, expected: Expected) -> None:
    scenario = result.scenario
    session = timeline.session
    assert session is not None
    # The call's identity, and the flow of the number called
    assert session["SessionCallSid"] == result.call_sid
    assert session["AccountSid"] == DEV_ACCOUNT_SID
    assert (session["From"], session["To"], session["Direction"]) == (
        result.from_,
        result.to,
        scenario.direction,
    )
    flow = "frontline" if scenario.line is Line.CONVERSATION else "assistant"
    assert (session["Flow"], session["FlowKind"]) == (flow, scenario.line.value)

    # One <Conversation> event item per SequenceNumber the emulator sent, with its status
    conversation = timeline.stream("conversation")
    sent = [(event.sequence_number, event.status) for event in result.status_events]
    assert [(item["SequenceNumber"], item["Status"]) for item in conversation] == sent
    assert [number for number, _ in sent] == list(range(1, len(sent) + 1))
    for item, event in zip(conversation, result.status_events, strict=True):
        assert item["Raw"] == dict(event.params)
    if sent:
        assert (session["LatestSequenceNumber"], session["LatestStatus"]) == sent[-1]
        assert session["DialCallSid"] == dict(result.status_events[0].params)["DialCallSid"]
        assert session["ConversationSid"] == dict(result.status_events[0].params)["ConversationSid"]
    else:
        assert "LatestStatus" not in session

    # The session's outcome, and the later step (voicemail left, hand-off ended)
    actions = {str(item["ItemKey"]).removeprefix("action#"): item for item in timeline.actions}
    connect_action = actions["connect"]
    assert {name: connect_action.get(name) for name in expected.connect_action} == expected.connect_action
    steps = {name for name, step in ACTION_ITEMS.items() if step in actions and step != "connect"}
    if expected.later_step is None:
        assert steps == set()
    else:
        name, fields = expected.later_step
        assert steps == {name}
        assert {key: actions[ACTION_ITEMS[name]].get(key) for key in fields} == fields

    # Every recording the call made, in its final state; queued once if completed
    recordings = {str(item["RecordingSid"]): item for item in timeline.recordings}
    made = {recording.recording_sid: recording for recording in result.recordings}
    assert set(recordings) == set(made)
    assert {entry["Source"]: entry["Status"] for entry in recordings.values()} == expected.recordings
    completed = set()
    for sid, entry in recordings.items():
        recording = made[sid]
        assert entry["Status"] == recording.final_status
        assert entry["Duration"] == recording.duration
        assert entry["Channels"] == int(recording.channels)
        if entry["Status"] == "completed":
            completed.add(sid)
            assert entry["QueuedAt"]
        else:
            assert "QueuedAt" not in entry

    # The queue: exactly one message per completed recording, in RecordingsQueue
    assert timeline.queues_read
    assert [message.queue for message in timeline.messages] == ["RecordingsQueue"] * len(completed)
    assert {message.body["recordingSid"] for message in timeline.messages} == completed
    assert len(completed) == scenario.queued_recordings
    for message in timeline.messages:
        body = message.body
        entry = recordings[body["recordingSid"]]
        assert body["schema"] == "twilio-voice-webhooks.recording.v1"
        assert body["sessionId"] == timeline.session_id
        assert body["callSid"] == result.call_sid
        assert body["accountSid"] == DEV_ACCOUNT_SID
        assert body["recordingUrl"] == (
            f"https://api.twilio.com/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{body['recordingSid']}"
        )
        assert body["durationSeconds"] == entry["Duration"]
        assert body["channels"] == entry["Channels"]
        assert body["source"] == entry["Source"]
        assert body["kind"] == ("voicemail" if entry["Source"] == "RecordVerb" else "conversation")
        assert body["flow"] == "frontline"
        assert message.attributes["RecordingKind"] == body["kind"]
        assert entry["QueueMessageId"] == message.message_id


def play(
    local: LocalModeProcess, reader: TimelineReader, scenario: Scenario, *, seed: int = 11, **options: Any
) -> tuple[CallResult, SessionTimeline]:
    result = run_call(emulator(local, **options), scenario, seed=seed)
    assert result.ok, result.problems
    assert result.differences == []
    (session_id,) = result.session_ids
    assert session_id.startswith(result.call_sid + "-")
    # No request went out with a fragment, and none was refused
    for exchange in result.exchanges:
        assert "#" not in exchange.sent.url
        assert exchange.sent.response.ok, (exchange.kind, exchange.sent.response.status)
    check_call_streams(result, reader)
    return result, reader.timeline(session_id)


FINAL_CALL_STATUSES = {"completed", "busy", "no-answer", "canceled", "failed"}


def check_call_streams(result: CallResult, reader: TimelineReader) -> None:
    """Every call-progress event the emulator sent (the call's own, each dialled leg's) is stored
    exactly once, in one session of the call, and each stream's latest status is its last event."""
    sessions = [
        reader.timeline(session_id, read_queues=False)
        for session_id in reader.sessions_for_call(result.call_sid)
    ]
    stored: dict[tuple[str, int], list[str]] = {}
    for timeline in sessions:
        for item in timeline.events:
            if str(item["ItemKey"]).startswith("event#call#"):
                stored.setdefault((str(item["CallSid"]), int(item["SequenceNumber"])), []).append(
                    timeline.session_id
                )
    sent = {
        (event.stream.removeprefix("call:"), event.sequence_number): event for event in result.call_events
    }
    assert set(stored) == set(sent)
    assert all(len(where) == 1 for where in stored.values()), stored
    by_stream: dict[str, list[int]] = {}
    for call_sid, sequence in sent:
        by_stream.setdefault(call_sid, []).append(sequence)
    for call_sid, numbers in by_stream.items():
        last = sent[(call_sid, max(numbers))]
        (holder,) = {where[0] for key, where in stored.items() if key[0] == call_sid}
        timeline = next(item for item in sessions if item.session_id == holder)
        if call_sid == result.call_sid:
            latest = timeline.session or {}
        else:
            (latest,) = [leg for leg in timeline.legs if str(leg["ItemKey"]) == f"leg#{call_sid}"]
            assert latest["ParentCallSid"] == result.call_sid
        assert (latest["CallSequenceNumber"], latest["CallStatus"]) == (last.sequence_number, last.status)


# --- the scenarios -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [scenario.name for scenario in SCENARIOS])
def test_scenario_in_order(name: str, local_mode: LocalModeProcess, reader: TimelineReader) -> None:
    # Given the local mode with the example flows
    scenario = get(name)
    expected = EXPECTED[name]

    # When the emulator plays the call, delivering every callback once and in order
    result, timeline = play(local_mode, reader, scenario)

    # Then the TwiML at each step, and everything stored and queued, is what the product promises
    session_id = timeline.session_id
    check_connect_twiml(result, session_id, local_mode.public_base_url)
    check_action_twiml(result, expected, session_id, local_mode.public_base_url)
    check_stored(result, timeline, expected)


def test_every_scenario_shuffled_and_every_callback_delivered_twice(
    local_mode: LocalModeProcess, reader: TimelineReader
) -> None:
    # Given every status and recording callback delivered twice, in a seeded random order
    reordered = 0
    for index, scenario in enumerate(SCENARIOS):
        expected = EXPECTED[scenario.name]

        # When each scenario is played
        result, timeline = play(local_mode, reader, scenario, seed=100 + index, shuffle=True, duplicates=1.0)

        # Then what is stored is exactly what the in-order run stores: one item per SequenceNumber,
        # the session at its true latest status, each completed recording queued once
        check_stored(result, timeline, expected)
        check_action_twiml(result, expected, timeline.session_id, local_mode.public_base_url)
        callbacks = [e for e in result.exchanges if e.kind in ("status", "recording")]
        assert sum(e.duplicate for e in callbacks) == len(callbacks) // 2
        delivered = [int(e.label.split()[0][1:]) for e in callbacks if e.kind == "status" and not e.duplicate]
        reordered += delivered != sorted(delivered)
    # And the seed did reorder some sessions' status callbacks
    assert reordered >= 3


def test_callbacks_configured_as_get_are_followed_with_get(
    local_mode_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a frontline flow whose action and callbacks use GET, and a voice URL called by GET
    document = json.loads(EXAMPLE_PATH.read_text(encoding="utf-8"))
    document["flows"]["frontline"].update(
        {"method": "GET", "statusCallbackMethod": "GET", "recordingStatusCallbackMethod": "GET"}
    )
    config_path = tmp_path / "flows.get.json"
    config_path.write_text(json.dumps(document), encoding="utf-8")
    local = local_mode_factory(FLOW_CONFIG=str(config_path))
    monkeypatch.delenv("EVENTS_TABLE_NAME", raising=False)
    monkeypatch.delenv("RECORDINGS_QUEUE_URL", raising=False)
    reader = TimelineReader(AwsLocation(endpoint_url=local.aws_endpoint, region="us-east-1"))

    # When a worker answers, with callbacks shuffled and duplicated
    result, timeline = play(
        local, reader, get("worker-answers"), connect_method="GET", shuffle=True, duplicates=0.5
    )

    # Then every request of the conversation went by GET, signed over its full URL, and was accepted
    # (the number's own status URL is configured by hand, with POST)
    assert {e.sent.method for e in result.exchanges if e.kind != "call-status"} == {"GET"}
    assert {urlsplit(e.sent.url).path for e in result.exchanges} == {
        "/voice/connect",
        "/voice/status",
        "/voice/recording",
        "/voice/action",
    }
    check_stored(result, timeline, EXPECTED["worker-answers"])


# --- the commands ------------------------------------------------------------------------------------------


def run_command(local: LocalModeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = command_environment({"LOCAL_API_PORT": str(local.api_port), "LOCAL_AWS_PORT": str(local.aws_port)})
    return subprocess.run(  # noqa: S603 - our own make targets
        ["make", "--no-print-directory", *args],  # noqa: S607
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_simulate_plays_a_call_and_prints_its_timeline_then_make_timeline_finds_it(
    local_mode: LocalModeProcess,
) -> None:
    # When a newcomer runs `make simulate` against `make local`
    simulated = run_command(local_mode, "simulate", "SCENARIO=worker-answers", "ARGS=--seed 4")

    # Then the call plays out request by request and passes, followed by the stored timeline
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    out = simulated.stdout
    assert "seed 4" in out
    for line in (
        "POST /voice/connect",
        "#1 call-initiated",
        "#4 call-completed",
        "Result=session-success",
        "PASS",
    ):
        assert line in out
    assert "Status events, every stream by time" in out
    assert "conversation status call-completed (#4)" in out
    assert "RecordingsQueue" in out and "conversation" in out
    call_sid = next(word for word in out.split() if word.startswith("CA00000000") and len(word) == 34)

    # And `make timeline ID=<CallSid>` prints the same session again
    shown = run_command(local_mode, "timeline", f"ID={call_sid}")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"Session {call_sid}-" in shown.stdout
    assert "call-completed" in shown.stdout and "RecordingsQueue" in shown.stdout


def test_make_simulate_runs_many_calls_at_once(local_mode: LocalModeProcess) -> None:
    result = run_command(local_mode, "simulate", "SCENARIO=all", "ARGS=--calls 22 --concurrency 6 --seed 8")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "calls      22 (0 failed), concurrency 6" in result.stdout
    assert "latency    median" in result.stdout and "p99" in result.stdout


def test_reading_timelines_leaves_every_queued_recording_unreceived(
    local_mode_factory: Any,
) -> None:
    # Given a fresh local mode (its queues hold only what this test sends)
    local = local_mode_factory()

    # When a newcomer runs the README's sequence: simulate, simulate all, then a timeline, twice over
    first = run_command(local, "simulate", "ARGS=--seed 3")
    assert first.returncode == 0, first.stdout + first.stderr
    every = run_command(local, "simulate", "SCENARIO=all", "ARGS=--seed 5")
    assert every.returncode == 0, every.stdout + every.stderr
    call_sid = next(
        word for word in first.stdout.split() if word.startswith("CA00000000") and len(word) == 34
    )
    for _ in range(6):  # more reads than RecordingsQueue's maxReceiveCount (5)
        shown = run_command(local, "timeline", f"ID={call_sid}")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "read from the local mode's state: nothing received" in shown.stdout

    # Then every recording is still in RecordingsQueue, visible, never received; the DLQ is empty
    expected = 1 + sum(scenario.queued_recordings for scenario in SCENARIOS)
    sqs = local.client("sqs")
    queue = sqs.get_queue_url(QueueName="RecordingsQueue")["QueueUrl"]
    dead = sqs.get_queue_url(QueueName="RecordingsDeadLetterQueue")["QueueUrl"]
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == str(expected)
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    dead_counts = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["All"])["Attributes"]
    assert dead_counts["ApproximateNumberOfMessages"] == "0"
    assert dead_counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    # (A receive counts itself: 1 here means no earlier receive.)
    received: dict[str, str] = {}
    while batch := sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60, AttributeNames=["All"]
    ).get("Messages", []):
        received.update({m["MessageId"]: m["Attributes"]["ApproximateReceiveCount"] for m in batch})
    assert len(received) == expected
    assert set(received.values()) == {"1"}
