"""The action routing decision, without AWS: request shape -> step, HandoffData handling, each
outcome's next step, and the loop guard over what the session item says already happened."""

from __future__ import annotations

import json
from typing import Any

import pytest
from voice_webhooks.calls.action_decisions import decide
from voice_webhooks.calls.action_requests import (
    MAX_HANDOFF_BYTES,
    ActionRequest,
    Step,
    classify,
    fingerprint,
    parse_handoff,
    read_action_request,
)
from voice_webhooks.edge.request import FormParams, WebhookRequest
from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voice_webhooks.flows.outcomes import APOLOGY, VOICEMAIL_THANKS
from voice_webhooks.twiml.action import DialTarget, EmptyResponse, HangUp, TakeVoicemail, Transcription

ACCOUNT = "AC" + "0" * 32
CALL = "CA" + "1" * 32
BASE = {"AccountSid": ACCOUNT, "CallSid": CALL, "From": "+15550109999", "To": "+15550100001"}

FRONTLINE = ConversationFlow.model_validate(
    {
        "kind": "conversation",
        "serviceInstanceSid": "IS" + "0" * 32,
        "outcomes": {"say": {"voice": "Polly.Amy"}},
    }
)
ASSISTANT = RelayFlow.model_validate(
    {
        "kind": "relay",
        "url": "wss://agent.example.com/ws",
        "conversationId": "conv_123",
        "outcomes": {
            "targets": {"support": "+15550100100", "sales": "client:sales"},
            "defaultTarget": "support",
        },
    }
)


def request(method: str = "POST", **params: str) -> ActionRequest:
    pairs = tuple({**BASE, **params}.items())
    form = FormParams(pairs) if method == "POST" else FormParams(())
    query = FormParams(pairs) if method == "GET" else FormParams(())
    return read_action_request(WebhookRequest(method=method, signature="sig", query=query, form=form))


def messages(decision: Any) -> list[str]:
    return [notice.message for notice in decision.notices]


def metrics(decision: Any) -> list[str]:
    return [notice.metric for notice in decision.notices if notice.metric]


@pytest.mark.parametrize(
    ("params", "step"),
    [
        ({"Result": "session-success"}, Step.CONNECT),
        ({"SessionStatus": "ended"}, Step.CONNECT),
        ({"DialCallStatus": "no-answer"}, Step.DIAL),
        ({"RecordingSid": "RE" + "a" * 32, "RecordingUrl": "https://api.twilio.com/r"}, Step.RECORD),
        ({"RecordingUrl": "https://api.twilio.com/r"}, Step.RECORD),
        # A <Conversation record> action carries recording fields too: Result decides
        ({"Result": "session-success", "RecordingSid": "RE" + "a" * 32}, Step.CONNECT),
        ({"Digits": "#"}, Step.OTHER),
        ({"Result": ""}, Step.OTHER),
    ],
)
def test_the_request_shape_names_the_step(params: dict[str, str], step: Step) -> None:
    assert classify({**BASE, **params}) is step


def test_relay_and_conversation_requests_are_told_apart_by_their_own_fields() -> None:
    assert request(SessionStatus="ended").kind == "relay"
    assert request(Result="internal-error").kind == "conversation"
    assert request(DialCallStatus="busy").kind is None


def test_fingerprint_ignores_order_but_not_values() -> None:
    assert fingerprint((("a", "1"), ("b", "2"))) == fingerprint((("b", "2"), ("a", "1")))
    assert fingerprint((("a", "1"),)) != fingerprint((("a", "2"),))


# ---------------------------------------------------------------------------------------------------
# HandoffData


def test_handoff_keys_and_size_are_kept_never_the_content() -> None:
    raw = json.dumps({"reason": "card 4111 1111 1111 1111", "target": "sales"})

    handoff = parse_handoff(raw)

    assert handoff.valid
    assert handoff.keys == ("reason", "target")
    assert handoff.size == len(raw)
    assert handoff.target == "sales"
    assert "4111" not in repr(handoff)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('"sales"', "a JSON str, not an object"),
        ("[1, 2]", "a JSON list, not an object"),
        ("x" * (MAX_HANDOFF_BYTES + 1), f"over {MAX_HANDOFF_BYTES} bytes"),
        ("[" * 5_000, "not valid JSON"),  # nested deeper than the parser's recursion limit
    ],
    ids=["broken", "string", "list", "oversized", "deeply-nested"],
)
def test_handoff_data_that_is_not_a_small_json_object_is_refused(raw: str, problem: str) -> None:
    handoff = parse_handoff(raw)

    assert not handoff.valid
    assert handoff.problem == problem
    assert handoff.keys == ()


def test_a_non_string_target_is_a_target_we_cannot_use() -> None:
    handoff = parse_handoff(json.dumps({"target": ["sales", "+15557778888"]}))

    assert handoff.has_target
    assert handoff.target is None


# ---------------------------------------------------------------------------------------------------
# Conversation sessions


@pytest.mark.parametrize(
    ("result", "extra", "kind", "outcome"),
    [
        ("session-success", {}, HangUp, "session-success"),
        ("dialed-call-incomplete", {"DialCallStatus": "busy"}, TakeVoicemail, "dialed-call-incomplete"),
        ("no-other-participants", {}, TakeVoicemail, "no-other-participants"),
        ("no-existing-conversation", {}, HangUp, "no-existing-conversation"),
        ("invalid-conversation", {"WorkerInitiated": "true"}, HangUp, "invalid-conversation"),
        ("failed-create-conversation", {}, TakeVoicemail, "failed-create-conversation"),
        ("internal-error", {}, TakeVoicemail, "internal-error"),
        ("brand-new-result", {}, TakeVoicemail, "unknown"),
        (
            "dialed-call-incomplete",
            {"WorkerInitiated": "true", "DialCallStatus": "no-answer"},
            HangUp,
            "worker-initiated",
        ),
    ],
)
def test_each_result_gets_its_default_step(
    result: str, extra: dict[str, str], kind: type, outcome: str
) -> None:
    decision = decide(request(Result=result, **extra), FRONTLINE, {})

    assert isinstance(decision.next, kind)
    assert decision.outcome == outcome
    assert decision.step is Step.CONNECT
    assert decision.fields["Result"] == result
    assert decision.say.voice == "Polly.Amy"


def test_failures_are_counted_and_unknown_values_reported() -> None:
    decision = decide(request(Result="brand-new-result"), FRONTLINE, {})

    assert metrics(decision) == ["ConversationFailed", "ActionUnknownValue"]
    assert decision.notices[-1].extra == {"unknown_values": {"Result": "brand-new-result"}}
    assert isinstance(decision.next, TakeVoicemail)
    assert decision.next.message == APOLOGY


def test_no_other_participants_warns_about_routing() -> None:
    decision = decide(request(Result="no-other-participants"), FRONTLINE, {})

    assert metrics(decision) == ["NoWorkerAssigned"]
    assert decision.notices[0].level == "warning"


def test_without_a_flow_the_built_in_defaults_answer() -> None:
    decision = decide(request(Result="dialed-call-incomplete", DialCallStatus="no-answer"), None, {})

    assert isinstance(decision.next, TakeVoicemail)
    assert decision.say.voice is None


def test_a_conversation_request_on_a_relay_flow_uses_conversation_defaults_and_says_so() -> None:
    decision = decide(request(Result="no-other-participants"), ASSISTANT, {})

    assert isinstance(decision.next, TakeVoicemail)
    assert "Conversation action request for a relay flow: using defaults" in messages(decision)


# ---------------------------------------------------------------------------------------------------
# Relay sessions


def test_relay_completed_is_an_empty_response() -> None:
    decision = decide(request(SessionStatus="completed", SessionDuration="35"), ASSISTANT, {})

    assert isinstance(decision.next, EmptyResponse)
    assert decision.fields["SessionDuration"] == 35


def test_relay_handoff_transcribes_into_the_flows_conversation_and_dials_the_named_target() -> None:
    data = json.dumps({"target": "sales", "conversationId": "conv_attacker"})

    decision = decide(request(SessionStatus="ended", HandoffData=data), ASSISTANT, {})

    step = decision.next
    assert isinstance(step, DialTarget)
    assert (step.target, step.address) == ("sales", "client:sales")
    # conversationId comes from the flow, never from HandoffData
    assert step.transcription == Transcription(conversation_id="conv_123")
    assert decision.fields["HandoffDataKeys"] == ["conversationId", "target"]
    assert "HandoffData" not in decision.fields
    assert metrics(decision) == ["HandoffDialed"]


@pytest.mark.parametrize("target", ["+15557778888", "SALES", "client:sales", "sip:x@evil.example", ""])
def test_relay_handoff_to_anything_but_a_listed_key_dials_the_default(target: str) -> None:
    decision = decide(
        request(SessionStatus="ended", HandoffData=json.dumps({"target": target})), ASSISTANT, {}
    )

    step = decision.next
    assert isinstance(step, DialTarget)
    assert step.address == "+15550100100"
    assert metrics(decision) == ["HandoffTargetRefused", "HandoffDialed"]
    assert decision.fields["HandoffTargetRefused"] is True
    # What the application wrote is logged masked, never as sent (it may be a phone number)
    shown = decision.notices[0].extra["refused_target"]
    assert not target or target not in str(shown)


def test_relay_handoff_without_targets_takes_a_voicemail() -> None:
    flow = RelayFlow.model_validate({"kind": "relay", "url": "wss://agent.example.com/ws"})

    decision = decide(request(SessionStatus="ended", HandoffData="{}"), flow, {})

    assert isinstance(decision.next, TakeVoicemail)
    assert decision.outcome == "handoff"


def test_relay_failed_dials_the_default_target_and_logs_the_error_code() -> None:
    decision = decide(
        request(SessionStatus="failed", ErrorCode="39001", ErrorMessage="Network connection failed."),
        ASSISTANT,
        {},
    )

    assert isinstance(decision.next, DialTarget)
    assert decision.next.message == APOLOGY
    assert decision.notices[0].metric == "RelaySessionFailed"
    assert decision.notices[0].extra["error_code"] == "39001"


def test_relay_unknown_status_hangs_up_with_an_apology() -> None:
    decision = decide(request(SessionStatus="paused"), ASSISTANT, {})

    assert isinstance(decision.next, HangUp)
    assert decision.next.message is not None
    assert metrics(decision) == ["ActionUnknownValue"]


# ---------------------------------------------------------------------------------------------------
# Dial, record, other


def test_dial_reached_hangs_up_and_unanswered_takes_a_voicemail() -> None:
    assert isinstance(decide(request(DialCallStatus="completed"), ASSISTANT, {}).next, HangUp)
    answered = decide(request(DialCallStatus="answered"), ASSISTANT, {})
    assert isinstance(answered.next, HangUp)
    assert metrics(answered) == []  # "answered" is a <Dial> value, not an unknown one
    unanswered = decide(request(DialCallStatus="busy"), ASSISTANT, {})
    assert isinstance(unanswered.next, TakeVoicemail)
    assert unanswered.outcome == "dial-incomplete"


def test_record_step_thanks_and_hangs_up() -> None:
    decision = decide(request(RecordingSid="RE" + "a" * 32, RecordingDuration="9"), FRONTLINE, {})

    assert decision.next == HangUp(message=VOICEMAIL_THANKS)
    assert decision.fields["RecordingDuration"] == 9


def test_an_unrecognised_request_hangs_up_and_lists_only_parameter_names() -> None:
    decision = decide(request(Secret="do-not-log"), FRONTLINE, {})

    assert isinstance(decision.next, HangUp)
    assert decision.step is Step.OTHER
    assert "do-not-log" not in json.dumps(decision.notices[0].extra)
    assert "Secret" in decision.notices[0].extra["parameter_names"]


# ---------------------------------------------------------------------------------------------------
# Loop guard


def history(**entries: ActionRequest) -> dict[str, Any]:
    return {name: {"Fingerprint": req.fingerprint} for name, req in entries.items()}


def test_the_same_request_again_gets_the_same_answer() -> None:
    first = request(Result="dialed-call-incomplete", DialCallStatus="no-answer")

    decision = decide(first, FRONTLINE, history(ConnectAction=first))

    assert isinstance(decision.next, TakeVoicemail)


def test_a_different_request_for_an_answered_step_hangs_up() -> None:
    first = request(Result="dialed-call-incomplete", DialCallStatus="no-answer")

    decision = decide(request(Result="internal-error"), FRONTLINE, history(ConnectAction=first))

    assert decision.next == HangUp()
    assert decision.outcome == "loop-guard"
    assert metrics(decision) == ["ActionLoopGuard"]


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ({"RecordAction": {"Fingerprint": "x"}}, {"Result": "dialed-call-incomplete"}),
        ({"DialAction": {"Fingerprint": "x"}}, {"SessionStatus": "ended", "HandoffData": "{}"}),
        ({"RecordAction": {"Fingerprint": "x"}}, {"DialCallStatus": "no-answer"}),
    ],
)
def test_an_earlier_step_after_a_later_one_hangs_up(later: dict[str, Any], earlier: dict[str, str]) -> None:
    decision = decide(request(**earlier), ASSISTANT, later)

    assert decision.next == HangUp()
    assert decision.outcome == "loop-guard"


def test_no_step_answers_with_itself() -> None:
    # dial-incomplete may not dial again, the record step always hangs up: a chain ends
    flow = RelayFlow.model_validate(
        {"kind": "relay", "url": "wss://a.example/ws", "outcomes": {"targets": {"a": "+15550100100"}}}
    )
    assert not isinstance(decide(request(DialCallStatus="no-answer"), flow, {}).next, DialTarget)
    assert isinstance(decide(request(RecordingSid="RE" + "a" * 32), flow, {}).next, HangUp)


def test_get_requests_are_read_from_the_query_string() -> None:
    decision = decide(request("GET", Result="session-success"), FRONTLINE, {})

    assert decision.outcome == "session-success"
