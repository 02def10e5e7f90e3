"""/voice/action under moto: every way a session can end gets its TwiML, the requests our own
voicemail <Record> and hand-off <Dial> make come back here and end the call (never a loop), and
every request is recorded on the session item without ever costing the caller the TwiML."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse
from voice_webhooks.edge import routes
from voice_webhooks.flows.outcomes import APOLOGY, VOICEMAIL_PROMPT
from voice_webhooks.runtime import aws_clients
from voicedev.twilio_signing import DEV_ACCOUNT_SID, http_api_event, random_sid

from tests.integration.callback_helpers import BASE_URL, Output, body_text

FIXTURES = Path(__file__).parent / "fixtures" / "action"
EXAMPLE_FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows.example.json"
FRONTLINE = "+15550100001"  # config/flows.example.json: conversation flow `frontline`
ASSISTANT = "+15550100002"  # relay flow `assistant`: targets support (default), sales, escalations
CALLER = "+15550109999"
FRONTLINE_PROMPT = (
    "Sorry, your advisor is not available right now. Please leave a message after the tone, "
    "then press the pound key."
)
SUPPORT_NUMBER = "+15550100100"
VOICEMAIL_THANKS = "Thank you for your message. Goodbye."
VOICEMAIL_VERBS = ["Say", "Record", "Say", "Hangup"]


def params_of(name: str) -> dict[str, str]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["params"])


@dataclass(frozen=True)
class Call:
    session_id: str
    call_sid: str
    action_url: str
    """`<Connect action>` as the connect TwiML wrote it (with the connection-override fragment)."""

    @property
    def requested_action_url(self) -> str:
        # Twilio reads the fragment and never sends it.
        return self.action_url.split("#", 1)[0]


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    @property
    def root(self) -> ElementTree.Element:
        assert self.status == 200, self.text
        return ElementTree.fromstring(self.text)

    @property
    def verbs(self) -> list[str]:
        return [element.tag for element in self.root]

    def says(self) -> list[str]:
        return [element.text or "" for element in self.root.iter("Say")]

    def one(self, path: str) -> ElementTree.Element:
        found = self.root.findall(path)
        assert len(found) == 1, (path, self.text)
        return found[0]


def answer_call(invoke: Any, to: str, method: str = "POST") -> Call:
    call_sid = random_sid("CA")
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": call_sid,
        "From": CALLER,
        "To": to,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    response = invoke("connect", http_api_event(method, f"{BASE_URL}{routes.CONNECT}", params))
    assert response["statusCode"] == 200, body_text(response)
    connect = ElementTree.fromstring(body_text(response)).find("./Connect")
    assert connect is not None
    action_url = connect.attrib["action"]
    session_id = action_url.split("#", 1)[0].split("session=", 1)[1]
    return Call(session_id, call_sid, action_url)


def post_action(
    invoke: Any, url: str, call: Call | None, fixture_name: str, method: str = "POST", **changes: str
) -> Answer:
    params = {**params_of(fixture_name), **changes}
    if call is not None:
        params["CallSid"] = call.call_sid
    response = invoke("action", http_api_event(method, url.split("#", 1)[0], params))
    return Answer(int(response["statusCode"]), body_text(response))


STEP_NAMES = {
    "connect": "ConnectAction",
    "dial": "DialAction",
    "record": "RecordAction",
    "other": "OtherAction",
}
KEY_ATTRIBUTES = ("SessionId", "ItemKey", "Step", "ExpiresAt")


def session_item(aws: Any, session_id: str) -> dict[str, Any]:
    """The session item, with each `action#<step>` item of the session beside it under the name
    the loop guard knows it by (ConnectAction, ...), without its key attributes."""
    items = aws.items(session_id)
    [session] = [item for item in items if item["ItemKey"] == "session"]
    view = dict(session)
    for item in items:
        if item["ItemKey"].startswith("action#"):
            step = item["ItemKey"].removeprefix("action#")
            view[STEP_NAMES[step]] = {k: v for k, v in item.items() if k not in KEY_ATTRIBUTES}
    return view


def session_url(route: str, session_id: str) -> str:
    return f"{BASE_URL}{route}?session={session_id}"


def assert_voicemail(answer: Answer, call: Call, prompt: str) -> ElementTree.Element:
    """Prompt, <Record> whose callbacks name the session, words for an empty recording, hang-up."""
    assert answer.verbs[-4:] == VOICEMAIL_VERBS
    assert answer.says()[-2:] == [prompt, "We did not receive a message. Goodbye."]
    record = answer.one("./Record")
    assert record.attrib["action"] == call.action_url  # same URL and overrides as <Connect action>
    assert record.attrib["action"].split("#", 1)[0] == session_url(routes.ACTION, call.session_id)
    assert record.attrib["method"] == "POST"
    callback, _, overrides = record.attrib["recordingStatusCallback"].partition("#")
    assert callback == session_url(routes.RECORDING, call.session_id)
    assert overrides == call.action_url.partition("#")[2]
    assert record.attrib["recordingStatusCallbackMethod"] == "POST"
    assert record.attrib["recordingStatusCallbackEvent"] == "in-progress completed absent"
    return record


@contextmanager
def dynamodb_failing(*operations: str, code: str = "InternalServerError") -> Iterator[list[str]]:
    """While open, every call of `operations` comes back as that AWS error (as after botocore's
    retries), before it reaches moto. Yields the names of the calls that failed."""
    client = aws_clients.dynamodb_client()
    failed: list[str] = []

    def fail(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        failed.append(model.name)
        http = AWSResponse("https://dynamodb.invalid/", 500, {}, MockRawResponse(b""))
        error = {
            "Error": {"Code": code, "Message": "injected failure"},
            "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": "injected"},
        }
        return http, error

    for operation in operations:
        client.meta.events.register_first(f"before-call.dynamodb.{operation}", fail, unique_id=operation)
    try:
        yield failed
    finally:
        for operation in operations:
            client.meta.events.unregister(f"before-call.dynamodb.{operation}", unique_id=operation)


# ---------------------------------------------------------------------------------------------------
# <Conversation> sessions, by Result


@pytest.mark.parametrize(
    ("fixture_name", "first_words", "metric"),
    [
        ("conversation-dialed-call-incomplete", [], None),
        ("conversation-no-other-participants", [], "NoWorkerAssigned"),
        (
            "conversation-no-existing-conversation",
            [
                "Sorry, we could not find an open conversation for your number. "
                "Please contact us another way. Goodbye."
            ],
            None,
        ),
        ("conversation-failed-create-conversation", [APOLOGY], "ConversationFailed"),
        ("conversation-internal-error", [APOLOGY], "ConversationFailed"),
        ("conversation-unknown-result", [APOLOGY], "ConversationFailed"),
    ],
)
def test_results_that_leave_the_caller_waiting_end_in_a_voicemail(
    aws, invoke, capfd, monkeypatch, fixture_name, first_words, metric
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a call answered with the frontline flow (its no-existing-conversation takes a message)
    call = answer_call(invoke, FRONTLINE)
    output.read()

    # When the session ends with this Result
    answer = post_action(invoke, call.action_url, call, fixture_name)

    # Then the caller hears any configured words, then the flow's voicemail
    assert answer.verbs == ["Say"] * len(first_words) + VOICEMAIL_VERBS
    assert answer.says()[: len(first_words)] == first_words
    assert_voicemail(answer, call, FRONTLINE_PROMPT)
    record = answer.one("./Record")
    assert record.attrib["maxLength"] == "120"
    assert record.attrib["finishOnKey"] == "#"
    # and the request is on the session item, under Twilio's names
    sent = params_of(fixture_name)
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Result"] == sent["Result"]
    assert stored["WorkerInitiated"] is False
    assert stored["Next"] == "voicemail"
    assert stored["Flow"] == "frontline"
    assert stored["Kind"] == "conversation"
    emitted = output.read()
    assert emitted.metrics["ActionRequest"] == 1
    assert emitted.metrics["VoicemailOffered"] == 1
    if metric:
        assert emitted.metrics[metric] == 1


def test_no_other_participants_warns_that_routing_assigned_no_worker(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, FRONTLINE)
    output.read()

    post_action(invoke, call.action_url, call, "conversation-no-other-participants")

    warnings = [log["message"] for log in output.read().at("WARNING")]
    assert any("routing assigned no worker" in message for message in warnings), warnings


def test_unknown_result_is_logged_and_counted_as_an_unknown_value(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, FRONTLINE)
    output.read()

    post_action(invoke, call.action_url, call, "conversation-unknown-result")

    emitted = output.read()
    assert emitted.metrics["ActionUnknownValue"] == 1
    unknown = [log for log in emitted.at("WARNING") if log.get("unknown_values")]
    assert unknown[0]["unknown_values"] == {"Result": "routing-overflow"}
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Outcome"] == "unknown"
    assert stored["UnknownValues"] == {"Result": "routing-overflow"}


def test_session_success_hangs_up_and_records_the_dial_and_recording_fields(aws, invoke) -> None:
    call = answer_call(invoke, FRONTLINE)

    answer = post_action(invoke, call.action_url, call, "conversation-session-success")

    assert answer.verbs == ["Hangup"]
    sent = params_of("conversation-session-success")
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Result"] == "session-success"
    assert stored["DialCallStatus"] == "completed"
    assert stored["DialCallSid"] == sent["DialCallSid"]
    assert stored["DialCallDuration"] == 184
    assert stored["RecordingSid"] == sent["RecordingSid"]
    assert stored["RecordingDuration"] == 183
    assert stored["RecordingUrl"] == sent["RecordingUrl"]
    assert stored["Next"] == "hangup"
    assert stored["Method"] == "POST"


def test_invalid_conversation_tells_the_worker_and_hangs_up(aws, invoke) -> None:
    call = answer_call(invoke, FRONTLINE)

    answer = post_action(invoke, call.action_url, call, "conversation-invalid-conversation")

    assert answer.verbs == ["Say", "Hangup"]
    assert "conversation was not found" in answer.says()[0]
    assert session_item(aws, call.session_id)["ConnectAction"]["WorkerInitiated"] is True


@pytest.mark.parametrize("dial_call_status", ["no-answer", "busy", "failed", "canceled"])
def test_every_unanswered_dial_call_status_takes_a_voicemail(aws, invoke, dial_call_status) -> None:
    call = answer_call(invoke, FRONTLINE)

    answer = post_action(
        invoke, call.action_url, call, "conversation-dialed-call-incomplete", DialCallStatus=dial_call_status
    )

    assert answer.verbs == VOICEMAIL_VERBS
    assert_voicemail(answer, call, FRONTLINE_PROMPT)
    assert session_item(aws, call.session_id)["ConnectAction"]["DialCallStatus"] == dial_call_status


@pytest.mark.parametrize("dial_call_status", ["completed", "ringing-forever"])
def test_dialed_call_incomplete_with_an_unexpected_dial_call_status_still_takes_a_voicemail(
    aws, invoke, capfd, monkeypatch, dial_call_status
) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, FRONTLINE)
    output.read()

    answer = post_action(
        invoke, call.action_url, call, "conversation-dialed-call-incomplete", DialCallStatus=dial_call_status
    )

    assert answer.verbs == VOICEMAIL_VERBS
    warnings = [log["message"] for log in output.read().at("WARNING")]
    assert "dialed-call-incomplete with an unexpected DialCallStatus" in warnings


def test_worker_initiated_call_the_customer_did_not_answer_tells_the_worker_without_a_voicemail(
    aws, invoke
) -> None:
    call = answer_call(invoke, FRONTLINE)

    answer = post_action(invoke, call.action_url, call, "conversation-worker-dialed-call-incomplete")

    assert answer.verbs == ["Say", "Hangup"]
    assert answer.says() == ["The customer could not be reached. Goodbye."]
    assert session_item(aws, call.session_id)["ConnectAction"]["Outcome"] == "worker-initiated"


# ---------------------------------------------------------------------------------------------------
# The voicemail <Record action>, and the loop guard


def test_the_voicemail_record_request_thanks_the_caller_and_hangs_up(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    # Given a worker who did not answer, and the voicemail TwiML that followed
    call = answer_call(invoke, FRONTLINE)
    voicemail = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")
    record_action = voicemail.one("./Record").attrib["action"]
    output.read()

    # When the caller finished the message and Twilio requests the <Record action> URL
    answer = post_action(invoke, record_action, call, "voicemail-recorded")

    # Then the caller is thanked and the call ends: no second voicemail
    assert answer.verbs == ["Say", "Hangup"]
    assert answer.says() == [VOICEMAIL_THANKS]
    sent = params_of("voicemail-recorded")
    item = session_item(aws, call.session_id)
    assert item["RecordAction"]["RecordingSid"] == sent["RecordingSid"]
    assert item["RecordAction"]["RecordingUrl"] == sent["RecordingUrl"]
    assert item["RecordAction"]["RecordingDuration"] == 17
    assert item["RecordAction"]["Digits"] == "#"
    assert item["ConnectAction"]["Result"] == "dialed-call-incomplete"
    assert output.read().metrics["VoicemailLeft"] == 1


def test_a_result_arriving_again_after_the_voicemail_hangs_up_instead_of_looping(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session that already went through its voicemail
    call = answer_call(invoke, FRONTLINE)
    voicemail = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")
    post_action(invoke, voicemail.one("./Record").attrib["action"], call, "voicemail-recorded")
    output.read()

    # When the same action URL receives the Result again (identical, or a different one)
    again = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")
    other = post_action(invoke, call.action_url, call, "conversation-no-other-participants")
    record_again = post_action(
        invoke, call.action_url, call, "voicemail-recorded", RecordingSid="RE" + "b" * 32
    )
    dial_late = post_action(invoke, call.action_url, call, "handoff-dial-no-answer")

    # Then nothing is offered twice: each is answered with a bare hang-up, logged and counted
    assert again.verbs == ["Hangup"]
    assert other.verbs == ["Hangup"]
    assert record_again.verbs == ["Hangup"]
    assert dial_late.verbs == ["Hangup"]
    assert output.read().metrics["ActionLoopGuard"] == 4
    # and the refused requests did not rewrite the session's history
    item = session_item(aws, call.session_id)
    assert "DialAction" not in item
    assert item["ConnectAction"]["Result"] == "dialed-call-incomplete"
    assert item["RecordAction"]["RecordingSid"] == params_of("voicemail-recorded")["RecordingSid"]


def test_a_repeated_delivery_of_the_same_result_gets_the_same_answer_and_is_recorded_once(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, FRONTLINE)
    first = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")
    stored = session_item(aws, call.session_id)["ConnectAction"]
    output.read()

    # When Twilio retries the identical request (our first answer was too slow for it)
    second = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")

    assert second.text == first.text
    assert session_item(aws, call.session_id)["ConnectAction"] == stored
    # and its outcome is not counted twice
    emitted = output.read()
    assert emitted.metrics["ActionReplayed"] == 1
    assert emitted.metrics["ActionLoopGuard"] == 0
    assert emitted.metrics["VoicemailOffered"] == 0
    assert emitted.metrics["ActionRequest"] == 1


# ---------------------------------------------------------------------------------------------------
# ConversationRelay sessions, by SessionStatus


def test_relay_completed_answers_an_empty_response(aws, invoke) -> None:
    call = answer_call(invoke, ASSISTANT)

    answer = post_action(invoke, call.action_url, call, "relay-completed")

    assert answer.root.tag == "Response"
    assert answer.verbs == []
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["SessionStatus"] == "completed"
    assert stored["SessionDuration"] == 35
    assert stored["RelaySessionId"] == "VX00000000000000000000000000000000"
    assert stored["Kind"] == "relay"
    assert stored["Next"] == "empty"


def test_relay_ended_without_handoff_hangs_up(aws, invoke) -> None:
    call = answer_call(invoke, ASSISTANT)

    answer = post_action(invoke, call.action_url, call, "relay-ended-no-handoff")

    assert answer.verbs == ["Hangup"]
    assert session_item(aws, call.session_id)["ConnectAction"]["Outcome"] == "ended"


def assert_dial(answer: Answer, call: Call) -> ElementTree.Element:
    dial = answer.one("./Dial")
    assert dial.attrib["action"] == call.action_url
    assert dial.attrib["method"] == "POST"
    assert dial.attrib["timeout"] == "25"
    assert dial.attrib["answerOnBridge"] == "true"
    # And the dialled leg reports its status into the same session, with the connection overrides
    (noun,) = list(dial)
    callback, _, overrides = noun.attrib["statusCallback"].partition("#")
    assert callback == session_url(routes.STATUS, call.session_id)
    assert overrides == call.action_url.partition("#")[2]
    assert noun.attrib["statusCallbackEvent"] == "initiated ringing answered completed"
    assert noun.attrib["statusCallbackMethod"] == "POST"
    return dial


def test_relay_handoff_without_a_target_dials_the_flows_default_target(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-ended-handoff")

    # The assistant flow does not use Conversation Orchestrator: no <Start><Transcription>
    assert answer.verbs == ["Say", "Dial"]
    assert answer.says() == ["Please hold while I connect you to a member of our team."]
    dial = assert_dial(answer, call)
    assert [(noun.tag, noun.text) for noun in dial] == [("Number", SUPPORT_NUMBER)]
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Outcome"] == "handoff"
    assert stored["Target"] == "support"
    assert stored["HandoffDataKeys"] == ["reason"]
    assert stored["HandoffDataBytes"] == len(params_of("relay-ended-handoff")["HandoffData"])
    assert "HandoffData" not in stored
    assert output.read().metrics["HandoffDialed"] == 1


def test_relay_handoff_to_an_allowed_target_dials_that_target(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-ended-handoff-sales")

    dial = assert_dial(answer, call)
    assert [(noun.tag, noun.text) for noun in dial] == [("Client", "sales-desk")]
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Target"] == "sales"
    assert stored["HandoffDataKeys"] == ["reason", "summary", "target"]
    # The application's free text (possibly personal data) is neither stored nor logged
    emitted = output.read()
    assert "annual plan" not in json.dumps(stored, default=str)
    assert "annual plan" not in json.dumps(emitted.logs)
    assert emitted.metrics["HandoffTargetRefused"] == 0


def test_relay_handoff_naming_a_number_not_on_the_list_dials_the_default_target(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-ended-handoff-number")

    dial = assert_dial(answer, call)
    assert [(noun.tag, noun.text) for noun in dial] == [("Number", SUPPORT_NUMBER)]
    assert "+15557778888" not in answer.text
    emitted = output.read()
    assert emitted.metrics["HandoffTargetRefused"] == 1
    assert "+15557778888" not in json.dumps(emitted.logs)
    refused = [log for log in emitted.at("WARNING") if "refused_target" in log]
    assert refused[0]["allowed_targets"] == ["escalations", "sales", "support"]
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["HandoffTargetRefused"] is True
    assert stored["Target"] == "support"


def test_relay_handoff_with_invalid_json_is_no_handoff(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-ended-handoff-invalid-json")

    assert answer.verbs == ["Hangup"]
    emitted = output.read()
    assert emitted.metrics["HandoffDataInvalid"] == 1
    assert "talk to a person" not in json.dumps(emitted.logs)
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Outcome"] == "ended"
    assert stored["HandoffDataBytes"] == len(params_of("relay-ended-handoff-invalid-json")["HandoffData"])
    assert "HandoffDataKeys" not in stored


def test_relay_failed_apologises_and_dials_a_human_logging_the_error_code(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-failed")

    assert answer.verbs == ["Say", "Dial"]
    assert answer.says() == [APOLOGY]
    dial = assert_dial(answer, call)
    assert [(noun.tag, noun.text) for noun in dial] == [("Number", SUPPORT_NUMBER)]
    emitted = output.read()
    assert emitted.metrics["RelaySessionFailed"] == 1
    failure = [log for log in emitted.at("WARNING") if log.get("error_code")]
    assert failure[0]["error_code"] == "39001"
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["ErrorCode"] == "39001"
    assert stored["ErrorMessage"] == "Network connection to WebSocket server failed."


def test_relay_unknown_session_status_apologises_and_hangs_up(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, ASSISTANT)
    output.read()

    answer = post_action(invoke, call.action_url, call, "relay-unknown-status")

    assert answer.verbs == ["Say", "Hangup"]
    assert output.read().metrics["ActionUnknownValue"] == 1


def relay_flows_with_orchestrator(tmp_path: Path, **orchestrator: str) -> str:
    document = json.loads(EXAMPLE_FLOWS.read_text(encoding="utf-8"))
    document["flows"]["assistant"].update(orchestrator)
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("orchestrator", "expected"),
    [
        ({"conversationId": "conv_conversation_0123"}, {"conversationId": "conv_conversation_0123"}),
        (
            {"conversationConfiguration": "conv_configuration_0123"},
            {"conversationConfiguration": "conv_configuration_0123"},
        ),
    ],
)
def test_handoff_of_an_orchestrator_flow_transcribes_into_the_same_conversation_before_dialling(
    aws, invoke, tmp_path, orchestrator, expected
) -> None:
    # Given a relay flow feeding Conversation Orchestrator
    aws.env(FLOW_CONFIG=relay_flows_with_orchestrator(tmp_path, **orchestrator))
    call = answer_call(invoke, ASSISTANT)

    # When the AI application hands the caller off
    answer = post_action(invoke, call.action_url, call, "relay-ended-handoff-sales")

    # Then the human part of the call joins the same conversation, then the target is dialled
    assert answer.verbs == ["Start", "Say", "Dial"]
    assert answer.one("./Start/Transcription").attrib == expected
    assert [(noun.tag, noun.text) for noun in answer.one("./Dial")] == [("Client", "sales-desk")]


# ---------------------------------------------------------------------------------------------------
# The hand-off <Dial action>


def test_a_handoff_nobody_answers_takes_a_voicemail_and_then_ends(aws, invoke) -> None:
    # Given a hand-off to the support number
    call = answer_call(invoke, ASSISTANT)
    handoff = post_action(invoke, call.action_url, call, "relay-ended-handoff")
    dial_action = handoff.one("./Dial").attrib["action"]

    # When nobody answers, then the caller leaves a message
    unanswered = post_action(invoke, dial_action, call, "handoff-dial-no-answer")
    recorded = post_action(invoke, unanswered.one("./Record").attrib["action"], call, "voicemail-recorded")

    # Then: the default voicemail, then thanks and goodbye
    assert unanswered.verbs == VOICEMAIL_VERBS
    assert_voicemail(unanswered, call, VOICEMAIL_PROMPT)
    assert recorded.verbs == ["Say", "Hangup"]
    assert recorded.says() == [VOICEMAIL_THANKS]
    item = session_item(aws, call.session_id)
    assert item["ConnectAction"]["Outcome"] == "handoff"
    assert item["DialAction"]["DialCallStatus"] == "no-answer"
    assert item["DialAction"]["Outcome"] == "dial-incomplete"
    assert item["RecordAction"]["Next"] == "hangup"


def test_a_handoff_that_connected_hangs_up_when_the_human_leaves(aws, invoke) -> None:
    call = answer_call(invoke, ASSISTANT)
    handoff = post_action(invoke, call.action_url, call, "relay-ended-handoff")

    answer = post_action(invoke, handoff.one("./Dial").attrib["action"], call, "handoff-dial-completed")

    assert answer.verbs == ["Hangup"]
    stored = session_item(aws, call.session_id)["DialAction"]
    assert stored["DialCallStatus"] == "completed"
    assert stored["DialCallDuration"] == 312


# ---------------------------------------------------------------------------------------------------
# Methods, derivation, failures


def test_get_action_requests_are_answered_like_posts(aws, invoke) -> None:
    # Given a session, and Twilio requesting the action URL with GET (<Connect method="GET">)
    call = answer_call(invoke, FRONTLINE)

    answer = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete", method="GET")

    assert_voicemail(answer, call, FRONTLINE_PROMPT)
    stored = session_item(aws, call.session_id)["ConnectAction"]
    assert stored["Method"] == "GET"
    assert stored["Result"] == "dialed-call-incomplete"


def test_an_action_url_without_the_session_parameter_uses_the_call_sid_and_the_called_numbers_flow(
    aws, invoke
) -> None:
    # Given an action URL configured by hand, without ?session= (no connect session item exists)
    call_sid = random_sid("CA")
    url = f"{BASE_URL}{routes.ACTION}"

    answer = post_action(invoke, url, None, "relay-ended-handoff", CallSid=call_sid)

    # Then the session is the CallSid, the flow is the called number's (assistant), and the
    # callbacks in the answer name that session
    assert answer.one("./Dial").attrib["action"].split("#", 1)[0] == session_url(routes.ACTION, call_sid)
    item = session_item(aws, call_sid)
    assert item["SessionCallSid"] == call_sid
    assert item["AccountSid"] == DEV_ACCOUNT_SID
    assert item["ConnectAction"]["Flow"] == "assistant"


def test_an_action_after_a_lost_connect_write_fills_in_the_calls_identity(aws, invoke) -> None:
    # Given a call whose connect answered TwiML but whose session item write was lost
    with dynamodb_failing("PutItem") as failed:
        call = answer_call(invoke, FRONTLINE)
    assert failed == ["PutItem"]
    assert aws.items(call.session_id) == []

    # When the session ends and Twilio requests the action URL
    answer = post_action(invoke, call.action_url, call, "conversation-session-success")

    # Then the caller gets the TwiML, and the session item names the call as connect would have
    assert answer.verbs == ["Hangup"]
    item = session_item(aws, call.session_id)
    assert (item["SessionCallSid"], item["AccountSid"], item["Flow"]) == (
        call.call_sid,
        DEV_ACCOUNT_SID,
        "frontline",
    )
    fixture = params_of("conversation-session-success")
    assert (item["From"], item["To"], item["Direction"]) == (
        fixture["From"],
        fixture["To"],
        fixture["Direction"],
    )


def test_an_action_never_overwrites_the_identity_connect_recorded(aws, invoke) -> None:
    # Given a session opened normally by connect
    call = answer_call(invoke, FRONTLINE)

    # When the action request carries different From/To values (as a forwarded leg may)
    post_action(invoke, call.action_url, call, "conversation-session-success", From="+15550108888")

    # Then what connect recorded stays
    item = session_item(aws, call.session_id)
    assert (item["From"], item["To"]) == (CALLER, FRONTLINE)


def test_dynamodb_failing_to_record_the_request_still_answers_the_twiml(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a session, and DynamoDB failing every PutItem (the action request's own item)
    call = answer_call(invoke, FRONTLINE)
    output.read()

    # When the worker does not answer
    with dynamodb_failing("PutItem", code="ProvisionedThroughputExceededException") as failed:
        answer = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")

    # Then the caller still gets the voicemail, and the failure is logged and counted
    assert_voicemail(answer, call, FRONTLINE_PROMPT)
    assert failed == ["PutItem"]
    assert "ConnectAction" not in session_item(aws, call.session_id)
    emitted = output.read()
    assert emitted.metrics["ActionWriteFailed"] == 1
    assert any("not recorded" in log["message"] for log in emitted.at("ERROR"))


def test_dynamodb_failing_entirely_still_answers_by_the_called_numbers_flow(
    aws, invoke, capfd, monkeypatch
) -> None:
    output = Output(capfd, monkeypatch)
    # Given a relay session, and DynamoDB down for reads and writes
    call = answer_call(invoke, ASSISTANT)
    output.read()

    # When the relay session fails
    with dynamodb_failing("BatchGetItem", "PutItem", "UpdateItem") as failed:
        answer = post_action(invoke, call.action_url, call, "relay-failed")

    # Then the flow of the called number still hands the caller to a human
    assert failed == ["BatchGetItem", "PutItem", "UpdateItem"]
    assert answer.verbs == ["Say", "Dial"]
    assert [(noun.tag, noun.text) for noun in answer.one("./Dial")] == [("Number", SUPPORT_NUMBER)]
    emitted = output.read()
    assert emitted.metrics["ActionSessionReadFailed"] == 1
    # the action item and the identity fill (the session could not be read to skip it)
    assert emitted.metrics["ActionWriteFailed"] == 2


def test_flow_configuration_unavailable_answers_with_the_default_outcomes(aws, invoke, tmp_path) -> None:
    call = answer_call(invoke, FRONTLINE)
    aws.env(FLOW_CONFIG=str(tmp_path / "missing.json"))

    answer = post_action(invoke, call.action_url, call, "conversation-dialed-call-incomplete")

    assert_voicemail(answer, call, VOICEMAIL_PROMPT)


def test_a_request_of_no_known_shape_hangs_up_and_is_counted(aws, invoke, capfd, monkeypatch) -> None:
    output = Output(capfd, monkeypatch)
    call = answer_call(invoke, FRONTLINE)
    params = {
        key: value for key, value in params_of("conversation-internal-error").items() if key != "Result"
    }
    output.read()

    response = invoke(
        "action", http_api_event("POST", call.requested_action_url, {**params, "CallSid": call.call_sid})
    )

    assert response["statusCode"] == 200
    assert [element.tag for element in ElementTree.fromstring(body_text(response))] == ["Hangup"]
    assert output.read().metrics["ActionUnrecognised"] == 1
    assert session_item(aws, call.session_id)["OtherAction"]["Outcome"] == "unrecognised"


def test_unsigned_action_request_is_refused_and_writes_nothing(aws, invoke) -> None:
    call = answer_call(invoke, FRONTLINE)
    params = {**params_of("conversation-dialed-call-incomplete"), "CallSid": call.call_sid}

    response = invoke("action", http_api_event("POST", call.requested_action_url, params, token=None))

    assert response["statusCode"] == 403
    assert "ConnectAction" not in session_item(aws, call.session_id)


def test_action_request_without_call_sid_is_a_bad_request(aws, invoke) -> None:
    call = answer_call(invoke, FRONTLINE)
    params = {k: v for k, v in params_of("conversation-session-success").items() if k != "CallSid"}

    response = invoke("action", http_api_event("POST", call.requested_action_url, params))

    assert response["statusCode"] == 400
    assert "ConnectAction" not in session_item(aws, call.session_id)
