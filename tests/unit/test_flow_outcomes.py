"""The `outcomes` key of a flow: defaults, how a partial setting merges with them, and every rule
that keeps a hand-off from reaching an address the flow does not list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import parse_flow_config
from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voice_webhooks.flows.outcomes import (
    APOLOGY,
    HANDOFF_MESSAGE,
    VOICEMAIL_PROMPT,
    ConversationOutcomes,
    RelayOutcomes,
    dial_target_kind,
)

SERVICE = "IS" + "0" * 32
ROOT = Path(__file__).resolve().parents[2]


def conversation(**outcomes: object) -> ConversationFlow:
    return ConversationFlow.model_validate(
        {"kind": "conversation", "serviceInstanceSid": SERVICE, "outcomes": outcomes}
    )


def relay(**outcomes: object) -> RelayFlow:
    return RelayFlow.model_validate(
        {"kind": "relay", "url": "wss://agent.example.com/ws", "outcomes": outcomes}
    )


def problem(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return "; ".join(str(error["msg"]) for error in excinfo.value.errors())


def test_conversation_defaults_follow_the_issue() -> None:
    # Given no outcomes key at all
    flow = ConversationFlow.model_validate({"kind": "conversation", "serviceInstanceSid": SERVICE})

    on = flow.outcomes.on
    # Then: success hangs up, an unanswered or unrouted call takes a voicemail, a caller with no
    # conversation hears a message, failures apologise then take a voicemail, the worker hears why
    assert (on.session_success.then, on.session_success.message) == ("hangup", None)
    assert (on.dialed_call_incomplete.then, on.dialed_call_incomplete.message) == ("voicemail", None)
    assert on.no_other_participants.then == "voicemail"
    assert on.no_existing_conversation.then == "hangup"
    assert on.no_existing_conversation.message
    assert (on.invalid_conversation.then, bool(on.invalid_conversation.message)) == ("hangup", True)
    for failure in (on.failed_create_conversation, on.internal_error, on.unknown):
        assert (failure.message, failure.then) == (APOLOGY, "voicemail")
    assert on.worker_initiated.then == "hangup"
    assert on.dial_incomplete.then == "voicemail"
    assert flow.outcomes.voicemail.prompt == VOICEMAIL_PROMPT
    assert flow.outcomes.voicemail.max_length == 120


def test_relay_defaults_reach_a_human_only_when_a_target_exists() -> None:
    without = relay()
    with_one = relay(targets={"desk": "+15550100100"})

    assert (without.outcomes.on.handoff.then, without.outcomes.on.handoff.message) == ("voicemail", None)
    assert without.outcomes.on.failed.then == "voicemail"
    assert (with_one.outcomes.on.handoff.then, with_one.outcomes.on.handoff.message) == (
        "dial",
        HANDOFF_MESSAGE,
    )
    assert (with_one.outcomes.on.failed.then, with_one.outcomes.on.failed.message) == ("dial", APOLOGY)
    assert with_one.outcomes.fallback_target == "desk"
    assert without.outcomes.on.ended.then == "hangup"
    assert without.outcomes.on.unknown.then == "hangup"


def test_two_targets_without_a_default_keep_the_voicemail_defaults() -> None:
    flow = relay(targets={"a": "+15550100100", "b": "client:b"})

    assert flow.outcomes.fallback_target is None
    assert flow.outcomes.on.handoff.then == "voicemail"


def test_a_partial_outcome_keeps_the_rest_of_its_default() -> None:
    flow = conversation(on={"no-existing-conversation": {"then": "voicemail"}, "internal-error": "hangup"})

    assert flow.outcomes.on.no_existing_conversation.then == "voicemail"
    assert flow.outcomes.on.no_existing_conversation.message.startswith("Sorry, we could not find")
    assert (flow.outcomes.on.internal_error.then, flow.outcomes.on.internal_error.message) == (
        "hangup",
        APOLOGY,
    )


@pytest.mark.parametrize("silence", [None, ""])
def test_null_or_empty_message_says_nothing(silence: str | None) -> None:
    flow = conversation(on={"failed-create-conversation": {"message": silence}})

    assert flow.outcomes.on.failed_create_conversation.message is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("+15550100100", "number"),
        ("client:sales-desk", "client"),
        ("client:agent_1.eu@acme", "client"),
        ("sip:desk@pbx.example.com", "sip"),
        ("sips:desk@pbx.example.com;transport=tls", "sip"),
    ],
)
def test_dial_targets_accept_numbers_clients_and_sip(address: str, kind: str) -> None:
    assert dial_target_kind(address) == kind
    assert relay(targets={"t": address}).outcomes.targets["t"] == address


@pytest.mark.parametrize(
    "address",
    [
        "15550100100",
        "+0123",
        "tel:+15550100100",
        "client:",
        "client:has space",
        "sip:nohost",
        "https://x.example",
    ],
)
def test_dial_targets_refuse_anything_else(address: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        relay(targets={"t": address})
    assert "must be an E.164 number" in problem(excinfo)


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        ({"defaultTarget": "nobody"}, "defaultTarget: 'nobody' is not a key of targets"),
        ({"on": {"ended": "dial"}}, "on.ended.then=dial needs a target"),
        (
            {"targets": {"a": "+15550100100"}, "on": {"ended": {"then": "dial", "target": "b"}}},
            "on.ended.target: 'b' is not a key of targets",
        ),
        (
            {"targets": {"a": "+15550100100"}, "on": {"ended": {"then": "hangup", "target": "a"}}},
            "on.ended.target: only used with then=dial",
        ),
        (
            {"targets": {"a": "+15550100100"}, "on": {"dial-incomplete": "dial"}},
            "on.dial-incomplete.then: must be",
        ),
        ({"on": {"bogus": "hangup"}}, "Extra inputs are not permitted"),
        ({"on": {"ended": "transfer"}}, "Input should be 'hangup', 'voicemail' or 'dial'"),
        ({"voicemail": {"maxLength": 0}}, "greater than or equal to 1"),
        ({"voicemail": {"finishOnKey": "a"}}, "String should match pattern"),
        ({"dial": {"callerId": "sales"}}, "must be an E.164 number or client:<identity>"),
        ({"targets": {"has space": "+15550100100"}}, "String should match pattern"),
        ({"transcribeHandof": False}, "Extra inputs are not permitted"),
    ],
)
def test_relay_outcome_rules(outcomes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        relay(**outcomes)
    assert message in problem(excinfo)


@pytest.mark.parametrize("key", ["invalid-conversation", "worker-initiated"])
def test_messages_to_the_worker_can_only_hang_up(key: str) -> None:
    # The caller is our own worker: a voicemail or a dial makes no sense
    with pytest.raises(ValidationError) as excinfo:
        conversation(on={key: "voicemail"})
    assert f"on.{key}.then: must be hangup" in problem(excinfo)


def test_outcomes_are_never_rendered_as_twiml_attributes() -> None:
    flow = relay(targets={"desk": "+15550100100"}, voicemail={"prompt": "Leave a message."})

    assert "outcomes" not in flow.twiml_attributes()


def test_the_loader_names_the_flow_of_a_bad_outcome() -> None:
    document = {
        "default": "bot",
        "flows": {
            "bot": {
                "kind": "relay",
                "url": "wss://agent.example.com/ws",
                "outcomes": {"targets": {"desk": "555-0100"}},
            }
        },
    }

    with pytest.raises(ConfigurationError) as excinfo:
        parse_flow_config(json.dumps(document))

    assert "flows.bot" in str(excinfo.value)
    assert "outcomes.targets.desk" in str(excinfo.value)


def test_shipped_example_configures_a_handoff_allowlist() -> None:
    text = (ROOT / "config" / "flows.example.json").read_text(encoding="utf-8")
    config, _ = parse_flow_config(text)

    assistant = config.flows["assistant"].outcomes
    assert isinstance(assistant, RelayOutcomes)
    assert assistant.targets == {
        "support": "+15550100100",
        "sales": "client:sales-desk",
        "escalations": "sip:escalations@pbx.example.com",
    }
    assert assistant.fallback_target == "support"
    assert assistant.on.handoff.then == "dial"
    frontline = config.flows["frontline"].outcomes
    assert isinstance(frontline, ConversationOutcomes)
    assert frontline.on.no_existing_conversation.then == "voicemail"


# ---------------------------------------------------------------------------------------------------
# The committed JSON Schema agrees with the validator on `outcomes`


def schema_validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads((ROOT / "schema" / "flow-config.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def document_with(outcomes: dict[str, Any]) -> dict[str, Any]:
    return {
        "default": "bot",
        "flows": {"bot": {"kind": "relay", "url": "wss://agent.example.com/ws", "outcomes": outcomes}},
    }


SCHEMA_ACCEPTS = {
    "shorthand and objects": {
        "targets": {"desk": "+15550100100", "pbx": "sip:desk@pbx.example.com"},
        "defaultTarget": "desk",
        "on": {
            "failed": "voicemail",
            "handoff": {"message": None, "target": "pbx"},
            "ended": {"message": ""},
        },
    },
    "every option": {
        "say": {"voice": "Polly.Amy", "language": "en-GB"},
        "voicemail": {
            "prompt": "Hi.",
            "thanks": "Bye.",
            "noMessage": "Nothing?",
            "maxLength": 30,
            "timeout": 3,
            "playBeep": False,
            "finishOnKey": "*#",
            "trim": "do-not-trim",
        },
        "dial": {"timeout": 15, "callerId": "client:bot", "timeLimit": 600, "answerOnBridge": True},
        "targets": {"desk": "client:desk"},
        "transcribeHandoff": False,
    },
}
SCHEMA_REJECTS = {
    "integer as a string": {"voicemail": {"maxLength": "120"}},
    "boolean as a string": {"dial": {"answerOnBridge": "true"}},
    "unknown then": {"on": {"ended": "transfer"}},
    "unknown outcome": {"on": {"session-success": "hangup"}},  # a conversation key in a relay flow
    "unknown option": {"voicemail": {"beep": True}},
    "address not dialable": {"targets": {"desk": "555-0100"}},
    "caller id not a number": {"dial": {"callerId": "sales"}},
}


@pytest.mark.parametrize("outcomes", SCHEMA_ACCEPTS.values(), ids=SCHEMA_ACCEPTS.keys())
def test_what_the_validator_accepts_the_schema_accepts(outcomes: dict[str, Any]) -> None:
    document = document_with(outcomes)

    parse_flow_config(json.dumps(document))
    assert [error.message for error in schema_validator().iter_errors(document)] == []


@pytest.mark.parametrize("outcomes", SCHEMA_REJECTS.values(), ids=SCHEMA_REJECTS.keys())
def test_what_the_schema_can_express_both_refuse(outcomes: dict[str, Any]) -> None:
    document = document_with(outcomes)

    with pytest.raises(ConfigurationError):
        parse_flow_config(json.dumps(document))
    assert list(schema_validator().iter_errors(document)) != []
