"""The warm benchmark's machinery: the AWS requests recorded under moto in wire format (what
Stubber must answer), replayed through Stubber to the resource API as to a plain client, and the
inline floor (it checks the signature and renders the same TwiML)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from twilio.twiml.voice_response import VoiceResponse
from voicedev.bench.calls import TypicalCall
from voicedev.bench.warm import environment
from voicedev.bench.warm_child import Recorder, make_floor, queue, twiml_builder
from voicedev.template_resources import load_template

from tests.conftest import REGION


def test_the_floor_renders_the_same_twiml_with_twilio_python() -> None:
    # Given TwiML as the handlers render it: nested nouns, attributes, text
    response = VoiceResponse()
    connect = response.connect(action="https://example.com/voice/action?session=S1#rc=3&rp=all")
    connect.conversation(
        service_instance_sid="IS" + "0" * 32, status_callback_event="call-initiated call-completed"
    )
    response.say("Sorry & goodbye <now>", voice="Polly.Joanna")
    twiml = str(response)

    # Then the floor's rebuild, element by element, is the same document
    assert twiml_builder(twiml)() == twiml


def test_the_floor_checks_the_signature_and_answers_the_twiml() -> None:
    event = TypicalCall().connect_event()

    assert make_floor(event, "dev_auth_token_do_not_use_in_prod", [], {}, "<Response/>")() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response />'
    )
    with pytest.raises(AssertionError, match="signature"):
        make_floor(event, "another token", [], {}, None)()


def test_requests_are_recorded_as_sent_and_answers_as_received_on_the_wire(aws: Any) -> None:
    # Given the resource API, recorded
    table = boto3.resource("dynamodb", region_name=REGION).Table(aws.table_name)
    recorder = Recorder({"dynamodb": table.meta.client})
    recorder.active = True

    # When an item is written, read back, and written again against a condition
    table.put_item(Item={"SessionId": "S1", "ItemKey": "e1", "Size": Decimal(5)})
    table.get_item(Key={"SessionId": "S1", "ItemKey": "e1"})
    with pytest.raises(ClientError):
        table.put_item(
            Item={"SessionId": "S1", "ItemKey": "e1"},
            ConditionExpression="attribute_not_exists(SessionId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    # Then the parameters are DynamoDB's wire values, and so are the answers
    put, get, refused = recorder.calls
    assert (put.operation, put.method) == ("PutItem", "put_item")
    assert put.params["Item"] == {"SessionId": {"S": "S1"}, "ItemKey": {"S": "e1"}, "Size": {"N": "5"}}
    assert get.response["Item"]["Size"] == {"N": "5"}
    assert refused.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.response["Item"]["SessionId"] == {"S": "S1"}
    assert refused.params["ConditionExpression"] == "attribute_not_exists(SessionId)"
    recorded = recorder.calls

    # And replayed through Stubber, the resource API gets back what moto answered
    stubbed = boto3.resource("dynamodb", region_name=REGION).Table(aws.table_name)
    with Stubber(stubbed.meta.client) as stubber:
        for call in recorded:
            queue(stubber, call)
        stubbed.put_item(Item={"SessionId": "S1", "ItemKey": "e1", "Size": Decimal(5)})
        assert stubbed.get_item(Key={"SessionId": "S1", "ItemKey": "e1"})["Item"] == {
            "SessionId": "S1",
            "ItemKey": "e1",
            "Size": Decimal(5),
        }
        with pytest.raises(ClientError) as refusal:
            stubbed.put_item(Item={"SessionId": "S1", "ItemKey": "e1"})
        stubber.assert_no_pending_responses()
    assert refusal.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    # (boto3 leaves an error's item in wire values, from DynamoDB as from the stub)
    assert refusal.value.response["Item"]["SessionId"] == {"S": "S1"}


def test_the_warm_child_gets_lambdas_environment_with_tracing_as_deployed_or_off() -> None:
    template = load_template()

    traced = environment(template, "127.0.0.1:2000", tracing=True)
    untraced = environment(template, "127.0.0.1:2000", tracing=False)

    assert traced["LAMBDA_TASK_ROOT"]
    assert traced["_X_AMZN_TRACE_ID"].endswith(";Sampled=1")
    assert traced["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"
    assert traced["FLOW_CONFIG"] == "ssm:/twilio-voice-webhooks/flows"
    assert traced["EVENTS_TABLE_NAME"] == "EventsTable"
    assert "POWERTOOLS_TRACE_DISABLED" not in traced
    assert untraced["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert "AWS_ENDPOINT_URL" not in traced  # moto runs in the child's process
