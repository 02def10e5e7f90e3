"""/voice/connect under moto, with HTTP API v2 events as API Gateway delivers them: the flow of the
called number, the callback URLs, the session item, and every way a request is refused."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.runtime.observability import mask_phone
from voice_webhooks.runtime.settings import DEFAULT_CONNECTION_OVERRIDES
from voicedev.sample_events import (
    CALLER,
    CONVERSATION_NUMBER,
    RELAY_NUMBER,
    SAMPLE_CALL_SID,
    UNMAPPED_NUMBER,
    call_params,
)
from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event, random_sid, sign

from tests.conftest import EXAMPLE_FLOWS, load_function, reset_caches
from tests.support import Calls, body_text, emitted_metrics

BASE = f"https://{SAMPLE_API_DOMAIN}"
CONNECT_URL = f"{BASE}/voice/connect"
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
# --- helpers -------------------------------------------------------------------------------------


def twiml(response: dict[str, Any]) -> ElementTree.Element:
    assert response["statusCode"] == 200, body_text(response)
    assert response["headers"]["Content-Type"] == "text/xml"
    root = ElementTree.fromstring(body_text(response))
    assert root.tag == "Response"
    return root


def connect_event(
    params: Any = None,
    *,
    method: str = "POST",
    url: str = CONNECT_URL,
    stage: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    event = http_api_event(
        method, url, call_params() if params is None else params, route="/voice/connect", **kwargs
    )
    if stage:
        event["requestContext"]["stage"] = stage
    return event


def only_session(aws: Any) -> dict[str, Any]:
    items: list[dict[str, Any]] = aws.items()
    assert len(items) == 1, items
    assert items[0]["ItemKey"] == "session"
    return items[0]


def services(calls: Calls) -> set[str]:
    return {service for service, _ in calls}


# --- flows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "flow", "kind", "element"),
    [
        (CONVERSATION_NUMBER, "frontline", "conversation", "Conversation"),
        (RELAY_NUMBER, "assistant", "relay", "ConversationRelay"),
        (UNMAPPED_NUMBER, "frontline", "conversation", "Conversation"),  # not mapped: `default`
    ],
)
def test_called_number_picks_its_flow(
    aws: Any, invoke: Invoke, to: str, flow: str, kind: str, element: str
) -> None:
    # Given config/flows.example.json, When a call for `to` comes in
    root = twiml(invoke("connect", connect_event(call_params(to))))

    # Then the TwiML is that flow's, and the session records which flow answered
    connect = root.find("./Connect")
    assert connect is not None
    assert [child.tag for child in connect] == [element]
    session = only_session(aws)
    assert (session["Flow"], session["FlowKind"], session["To"]) == (flow, kind, to)


def test_call_without_to_gets_the_default_flow(aws: Any, invoke: Invoke) -> None:
    params = [(name, value) for name, value in call_params() if name not in ("To", "Called")]

    root = twiml(invoke("connect", connect_event(params)))

    assert root.find("./Connect/Conversation") is not None
    assert only_session(aws)["Flow"] == "frontline"


def test_get_connect_reads_the_query_string(aws: Any, invoke: Invoke) -> None:
    # Given the number's voice URL uses GET: every parameter is in the query string
    event = connect_event(call_params(RELAY_NUMBER), method="GET")
    assert "body" not in event and "To=%2B15550100002" in event["rawQueryString"]

    root = twiml(invoke("connect", event))

    assert root.find("./Connect/ConversationRelay") is not None
    assert only_session(aws)["To"] == RELAY_NUMBER


# --- callback URLs ----------------------------------------------------------------------------------


def callback_urls(root: ElementTree.Element) -> dict[str, str]:
    connect = root.find("./Connect")
    assert connect is not None
    urls = {"action": connect.attrib["action"]}
    conversation = connect.find("./Conversation")
    if conversation is not None:
        urls["status"] = conversation.attrib["statusCallback"]
        urls["recording"] = conversation.attrib["recordingStatusCallback"]
    return urls


def expected_urls(base: str, session_id: str, kinds: tuple[str, ...], overrides: str) -> dict[str, str]:
    fragment = f"#{overrides}" if overrides else ""
    return {kind: f"{base}/voice/{kind}?session={session_id}{fragment}" for kind in kinds}


def test_callback_urls_point_back_at_the_api_with_session_and_overrides(aws: Any, invoke: Invoke) -> None:
    # When a conversation call is answered on the default endpoint
    root = twiml(invoke("connect", connect_event(call_params(CONVERSATION_NUMBER))))

    # Then every callback URL is https://domain/voice/<route>?session=<id>#<overrides>
    session_id = only_session(aws)["SessionId"]
    assert session_id.startswith(SAMPLE_CALL_SID + "-")
    assert callback_urls(root) == expected_urls(
        BASE, session_id, ("action", "status", "recording"), DEFAULT_CONNECTION_OVERRIDES
    )


def test_relay_action_url_carries_the_session(aws: Any, invoke: Invoke) -> None:
    root = twiml(invoke("connect", connect_event(call_params(RELAY_NUMBER))))

    session_id = only_session(aws)["SessionId"]
    assert callback_urls(root) == expected_urls(BASE, session_id, ("action",), DEFAULT_CONNECTION_OVERRIDES)


def test_callback_urls_keep_a_named_stage(aws: Any, invoke: Invoke) -> None:
    # Given the request came through the `prod` stage of the default endpoint
    event = connect_event(url=f"{BASE}/prod/voice/connect", stage="prod")

    root = twiml(invoke("connect", event))

    session_id = only_session(aws)["SessionId"]
    assert callback_urls(root) == expected_urls(
        f"{BASE}/prod", session_id, ("action", "status", "recording"), DEFAULT_CONNECTION_OVERRIDES
    )


def test_callback_urls_use_public_base_url_when_set(aws: Any, invoke: Invoke) -> None:
    # Given a custom domain with base path /twilio in front of the API
    public_base = "https://voice.example.com/twilio"
    aws.env(PUBLIC_BASE_URL=public_base)
    params = dict(call_params())
    event = connect_event(
        params,
        url="https://voice.example.com/voice/connect",
        signature=sign(f"{public_base}/voice/connect", params),
    )

    # When Twilio calls the public URL
    root = twiml(invoke("connect", event))

    # Then the callbacks go to the public URL too
    session_id = only_session(aws)["SessionId"]
    assert callback_urls(root) == expected_urls(
        public_base, session_id, ("action", "status", "recording"), DEFAULT_CONNECTION_OVERRIDES
    )


@pytest.mark.parametrize("overrides", ["rc=5&ct=2000&rp=ct,rt", ""])
def test_connection_overrides_are_configurable(aws: Any, invoke: Invoke, overrides: str) -> None:
    aws.env(CALLBACK_CONNECTION_OVERRIDES=overrides)

    root = twiml(invoke("connect", connect_event()))

    session_id = only_session(aws)["SessionId"]
    assert callback_urls(root) == expected_urls(
        BASE, session_id, ("action", "status", "recording"), overrides
    )


def test_each_connect_opens_a_new_session(aws: Any, invoke: Invoke) -> None:
    # Twilio retries a connect webhook that timed out: the retry is a new session, not a clash
    twiml(invoke("connect", connect_event()))
    twiml(invoke("connect", connect_event()))

    sessions = [item["SessionId"] for item in aws.items()]
    assert len(set(sessions)) == 2
    assert all(session.startswith(SAMPLE_CALL_SID + "-") for session in sessions)


# --- session item -------------------------------------------------------------------------------------


def test_session_item_holds_the_call_identity(aws: Any, invoke: Invoke) -> None:
    # Given a retention of 7 days
    aws.env(EVENT_TTL_DAYS="7")
    call_sid = random_sid("CA")
    params = call_params(RELAY_NUMBER, CallSid=call_sid)

    # When the call is answered
    before = time.time()
    twiml(invoke("connect", connect_event(params)))

    # Then the session item holds who called whom, how, and which flow answered, and is open for
    # the reconciler until a final status arrives
    session = only_session(aws)
    expected = {
        "ItemKey": "session",
        "SessionCallSid": call_sid,
        "Origin": "connect",
        "ReconcileShard": "open",
        "AccountSid": DEV_ACCOUNT_SID,
        "From": CALLER,
        "To": RELAY_NUMBER,
        "Direction": "inbound",
        "Flow": "assistant",
        "FlowKind": "relay",
    }
    assert {name: session[name] for name in expected} == expected
    assert session["SessionId"].startswith(call_sid + "-")
    created = datetime.fromisoformat(session["CreatedAt"])
    assert created.tzinfo is not None
    assert before - 1 <= created.timestamp() <= time.time() + 1
    assert session["ReconcileAt"] == session["CreatedAt"]
    # ExpiresAt is the TTL attribute: epoch seconds, EVENT_TTL_DAYS after creation
    assert int(session["ExpiresAt"]) == int((created + timedelta(days=7)).timestamp())


# --- dependency failures ---------------------------------------------------------------------------------


def fail_dynamodb_put(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    original = BaseClient._make_api_call

    def failing(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb" and operation_name == "PutItem":
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", failing)


def assert_answered_despite_write_failure(response: dict[str, Any], stdout: str) -> None:
    root = twiml(response)
    assert root.find("./Connect/Conversation") is not None
    totals = emitted_metrics(stdout)
    assert totals.get("SessionWriteFailed") == 1
    assert totals.get("CallAnswered") == 1


def test_write_refused_still_answers_twiml(
    aws: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given DynamoDB refuses the write (a missing IAM permission)
    fail_dynamodb_put(monkeypatch, "AccessDeniedException")

    # When a call comes in, Then the caller still gets the TwiML, and the failure is counted
    response = invoke("connect", connect_event())
    assert_answered_despite_write_failure(response, capsys.readouterr().out)
    assert aws.items() == []


def test_missing_table_still_answers_twiml(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.dynamodb.delete_table(TableName=aws.table_name)

    response = invoke("connect", connect_event())

    assert_answered_despite_write_failure(response, capsys.readouterr().out)


def test_unreachable_dynamodb_still_answers_twiml(
    aws: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given DynamoDB does not answer (nothing listens on the discard port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    reset_caches()

    response = invoke("connect", connect_event())

    assert_answered_despite_write_failure(response, capsys.readouterr().out)


# --- refusals ------------------------------------------------------------------------------------------


def test_missing_call_sid_is_400_and_nothing_is_written(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    params = [(name, value) for name, value in call_params() if name != "CallSid"]

    response = invoke("connect", connect_event(params))

    assert response["statusCode"] == 400
    assert "CallSid" in body_text(response)
    assert aws.items() == []
    assert emitted_metrics(capsys.readouterr().out).get("BadRequest") == 1


def test_unsigned_request_is_403_counted_and_nothing_is_written(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response = invoke("connect", connect_event(token=None))

    assert response["statusCode"] == 403
    assert aws.items() == []
    assert emitted_metrics(capsys.readouterr().out).get("RejectedSignature") == 1


def test_tampered_request_is_403_counted(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    params = dict(call_params())
    event = connect_event(call_params(RELAY_NUMBER), signature=sign(CONNECT_URL, params))

    response = invoke("connect", event)

    assert response["statusCode"] == 403
    assert aws.items() == []
    assert emitted_metrics(capsys.readouterr().out).get("RejectedSignature") == 1


def test_other_account_is_403_counted(aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]) -> None:
    response = invoke("connect", connect_event(call_params(AccountSid="AC" + "9" * 32)))

    assert response["statusCode"] == 403
    assert aws.items() == []
    assert emitted_metrics(capsys.readouterr().out).get("RejectedAccount") == 1


def test_repeated_parameter_is_400_after_the_signature(aws: Any, invoke: Invoke) -> None:
    # Given a signed body sending `To` twice with different values
    params = [*call_params(), ("To", RELAY_NUMBER)]

    response = invoke("connect", connect_event(params))

    # Then it is refused as malformed, and no session is opened
    assert response["statusCode"] == 400
    assert "To" in body_text(response)
    assert aws.items() == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND"])
def test_other_methods_are_405_with_allow_header(aws: Any, invoke: Invoke, method: str) -> None:
    event = connect_event()
    event["requestContext"]["http"]["method"] = method

    response = invoke("connect", event)

    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, POST"
    assert aws.items() == []


def malformed(**changes: Any) -> Callable[[], dict[str, Any]]:
    """A signed connect event, then changed the way a broken or hostile client would."""

    def build() -> dict[str, Any]:
        event = connect_event()
        for path, value in changes.items():
            target = event
            *parents, leaf = path.split("__")
            for parent in parents:
                target = target[parent]
            if value is None:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        return event

    return build


@pytest.mark.parametrize(
    ("build", "status"),
    [
        pytest.param(malformed(body="!!not base64!!"), 400, id="not-base64"),
        pytest.param(malformed(body=base64.b64encode(b"\xff\xfe\x00").decode()), 400, id="base64-not-ascii"),
        pytest.param(malformed(body="a=\ud800", isBase64Encoded=False), 400, id="lone-surrogate"),
        pytest.param(malformed(body="AccountSid=%zz", isBase64Encoded=False), 400, id="bad-escape"),
        pytest.param(malformed(rawQueryString="session=%ff"), 400, id="query-not-utf8"),
        pytest.param(malformed(rawQueryString="session=caf\u00e9"), 400, id="query-not-ascii"),
        pytest.param(malformed(body=base64.b64encode(b"x" * 70_000).decode()), 413, id="body-too-large"),
        pytest.param(malformed(rawQueryString="a=" + "x" * 70_000), 413, id="query-too-large"),
        pytest.param(malformed(**{"headers__content-type": "application/json"}), 415, id="json-content-type"),
        pytest.param(malformed(**{"headers__content-type": None}), 415, id="no-content-type"),
        pytest.param(malformed(headers={}), 415, id="no-headers"),
        pytest.param(malformed(**{"headers__x-twilio-signature": None}), 403, id="no-signature"),
        pytest.param(
            malformed(**{"headers__x-twilio-signature": "\u00e9\u0000"}), 403, id="garbage-signature"
        ),
        pytest.param(
            malformed(body=None), 403, id="no-body"
        ),  # signature was for the parameters, not an empty body
        pytest.param(malformed(requestContext__http__method="TRACE"), 405, id="trace"),
    ],
)
def test_bad_input_is_never_a_5xx(
    aws: Any,
    invoke: Invoke,
    capsys: pytest.CaptureFixture[str],
    build: Callable[[], dict[str, Any]],
    status: int,
) -> None:
    response = invoke("connect", build())

    # Then a 4xx naming the problem, counted, and nothing written
    assert response["statusCode"] == status, body_text(response)
    assert aws.items() == []
    metric = "RejectedSignature" if status == 403 else "BadRequest"
    assert emitted_metrics(capsys.readouterr().out) == {metric: 1}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (call_params(CallSid="not-a-call-sid"), "CallSid"),
        (call_params(CallSid=""), "CallSid"),
    ],
)
def test_signed_but_invalid_fields_are_400(aws: Any, invoke: Invoke, params: Any, field: str) -> None:
    response = invoke("connect", connect_event(params))

    assert response["statusCode"] == 400
    assert field in body_text(response)
    assert aws.items() == []


# --- configuration and token outages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"EVENTS_TABLE_NAME": ""}, "EVENTS_TABLE_NAME is required by this function but not set"),
        ({"ALLOWED_ACCOUNT_SIDS": " , "}, "ALLOWED_ACCOUNT_SIDS is required by this function but not set"),
        (
            {"PUBLIC_BASE_URL": "voice.example.com/no-scheme"},
            "PUBLIC_BASE_URL: must be an absolute http(s) URL",
        ),
        ({"EVENT_TTL_DAYS": "zero"}, "EVENT_TTL_DAYS: "),
    ],
)
def test_a_missing_or_invalid_setting_fails_the_cold_start_naming_the_variable(
    aws: Any, setting: dict[str, str], message: str
) -> None:
    # Given a deployment with one setting missing or wrong
    aws.env(**setting)

    # When Lambda imports the function (its cold start), then the import fails with one message
    # naming the variable (Lambda reports it as the init error); no request is ever served broken
    with pytest.raises(ConfigurationError) as failure:
        load_function("connect")
    assert message in str(failure.value)
    assert aws.items() == []


def test_every_missing_setting_is_named_in_the_one_cold_start_error(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EVENTS_TABLE_NAME", "FLOW_CONFIG", "TWILIO_AUTH_TOKEN_SECRET"):
        monkeypatch.delenv(name)
    reset_caches()

    with pytest.raises(ConfigurationError) as failure:
        load_function("connect")
    assert all(
        name in str(failure.value)
        for name in ("EVENTS_TABLE_NAME", "FLOW_CONFIG", "TWILIO_AUTH_TOKEN_SECRET")
    )


def test_an_unreadable_flow_document_is_500_service_misconfigured(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    # The document itself is read at request time (an SSM read is a network call, never at import)
    aws.env(FLOW_CONFIG="/nonexistent/flows.json")

    response = invoke("connect", connect_event())

    assert response["statusCode"] == 500
    assert body_text(response) == "service misconfigured"
    assert aws.items() == []
    assert emitted_metrics(capsys.readouterr().out).get("ConfigUnavailable") == 1


def test_invalid_flow_document_is_500_and_logged_naming_the_field(
    aws: Any, invoke: Invoke, tmp_path: Path, log_output: io.StringIO
) -> None:
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps({"default": "missing", "numbers": {}, "flows": {}}), encoding="utf-8")
    aws.env(FLOW_CONFIG=str(flows))

    response = invoke("connect", connect_event())

    assert response["statusCode"] == 500
    assert aws.items() == []
    errors = [
        json.loads(line) for line in log_output.getvalue().splitlines() if '"Configuration error"' in line
    ]
    assert len(errors) == 1 and "default" in errors[0]["reason"]


def test_auth_token_unavailable_is_503_counted_and_nothing_is_touched(
    aws: Any, invoke: Invoke, aws_calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the secret is gone
    aws.secrets.delete_secret(SecretId=aws.secret_arn, ForceDeleteWithoutRecovery=True)
    reset_caches()
    aws_calls.clear()

    # When a (correctly signed) call comes in
    response = invoke("connect", connect_event())

    # Then 503 (Twilio moves on to the fallback URL), counted, and only Secrets Manager was asked
    assert response["statusCode"] == 503
    assert body_text(response) == "auth token unavailable"
    assert services(aws_calls) == {"secretsmanager"}
    assert emitted_metrics(capsys.readouterr().out).get("AuthTokenUnavailable") == 1
    assert aws.items() == []


# --- check order --------------------------------------------------------------------------------------


@pytest.fixture
def flows_in_ssm(aws: Any) -> None:
    """FLOW_CONFIG in SSM, as deployed, so that reading it shows up as an AWS call."""
    import boto3

    text = EXAMPLE_FLOWS.read_text(encoding="utf-8")
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/twilio-voice-webhooks/flows", Value=text, Type="String"
    )
    aws.env(FLOW_CONFIG="ssm:/twilio-voice-webhooks/flows")


@pytest.mark.usefixtures("flows_in_ssm")
def test_signed_call_reads_the_flows_and_writes_the_session(
    aws: Any, invoke: Invoke, aws_calls: Calls
) -> None:
    twiml(invoke("connect", connect_event()))

    assert ("ssm", "GetParameter") in aws_calls
    assert ("dynamodb", "PutItem") in aws_calls
    assert aws_calls.index(("secretsmanager", "GetSecretValue")) < aws_calls.index(("ssm", "GetParameter"))


@pytest.mark.usefixtures("flows_in_ssm")
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: connect_event(token=None, signature="bm90IGEgc2lnbmF0dXJl"), id="bad-signature"),
        pytest.param(
            lambda: connect_event(call_params(RELAY_NUMBER), signature=sign(CONNECT_URL, call_params())),
            id="tampered",
        ),
        pytest.param(lambda: connect_event(call_params(AccountSid="AC" + "9" * 32)), id="other-account"),
        pytest.param(lambda: connect_event([*call_params(), ("To", RELAY_NUMBER)]), id="ambiguous"),
    ],
)
def test_refused_request_reads_nothing_but_the_token(
    aws: Any, invoke: Invoke, aws_calls: Calls, build: Callable[[], dict[str, Any]]
) -> None:
    response = invoke("connect", build())

    assert response["statusCode"] in (400, 403)
    assert services(aws_calls) == {"secretsmanager"}


@pytest.mark.usefixtures("flows_in_ssm")
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(malformed(requestContext__http__method="PUT"), id="405"),
        pytest.param(malformed(**{"headers__content-type": "text/plain"}), id="415"),
        pytest.param(malformed(body=base64.b64encode(b"x" * 70_000).decode()), id="413"),
        pytest.param(malformed(**{"headers__x-twilio-signature": None}), id="403-no-header"),
        pytest.param(malformed(body="!!"), id="400-undecodable"),
    ],
)
def test_request_refused_by_its_shape_makes_no_aws_call(
    aws: Any, invoke: Invoke, aws_calls: Calls, build: Callable[[], dict[str, Any]]
) -> None:
    response = invoke("connect", build())

    assert 400 <= response["statusCode"] < 500
    assert aws_calls == []


# --- logs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_phone_numbers_are_masked_in_logs(
    aws: Any, invoke: Invoke, log_output: io.StringIO, method: str
) -> None:
    # When a call is answered
    twiml(invoke("connect", connect_event(call_params(CONVERSATION_NUMBER), method=method)))

    # Then neither number appears in any log line, in any encoding, and the masked forms do
    logs = log_output.getvalue()
    for number in (CALLER, CONVERSATION_NUMBER):
        assert number.removeprefix("+") not in logs
    answered = [json.loads(line) for line in logs.splitlines() if '"Answered call"' in line]
    assert len(answered) == 1
    assert answered[0]["from"] == mask_phone(CALLER)
    assert answered[0]["to"] == mask_phone(CONVERSATION_NUMBER)
    assert answered[0]["call_sid"] == SAMPLE_CALL_SID


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_rejected_request_logs_no_number_and_no_token(
    aws: Any, invoke: Invoke, log_output: io.StringIO, method: str
) -> None:
    # Given a distinctive token in the secret
    token = "tok_never_logged_4c1d2e3f"
    aws.set_auth_tokens(token)

    # When one request is refused and one accepted
    refused = invoke("connect", connect_event(method=method, token="a_wrong_token"))
    accepted = invoke("connect", connect_event(method=method, token=token))

    # Then the log says which URL was checked, without its query, and never the token or a number
    assert (refused["statusCode"], accepted["statusCode"]) == (403, 200)
    logs = log_output.getvalue()
    assert token not in logs
    assert CALLER.removeprefix("+") not in logs
    rejected = [json.loads(line) for line in logs.splitlines() if "bad signature" in line]
    assert [line["checked_url"] for line in rejected] == [CONNECT_URL]


# --- Webhooks Rules (shared-key) signatures ---------------------------------------------------------


def test_a_call_signed_with_a_webhooks_rule_shared_key_is_answered(aws: Any, invoke: Invoke) -> None:
    import hashlib
    import hmac

    # Given the auth-token secret also holds the rule's SharedKey under its id
    key_id, shared_key = "webhooks_sharedkey_0123456789abcdef", "shk_3f9a1c7e5b2d4f6081a3c5e7"
    aws.secrets.put_secret_value(
        SecretId=aws.secret_arn,
        SecretString=json.dumps({"authToken": "tok_not_used_here", "sharedKeys": {key_id: shared_key}}),
    )
    reset_caches()
    params = dict(call_params(To=CONVERSATION_NUMBER))
    url = f"https://{SAMPLE_API_DOMAIN}/voice/connect"
    signed = url + "".join(name + params[name] for name in sorted(params))
    signature = base64.b64encode(
        hmac.new(shared_key.encode(), signed.encode(), hashlib.sha256).digest()
    ).decode()
    headers = {"X-Twilio-Webhooks-Signature-Settings": f"key={key_id},algorithm=HMAC_SHA256"}

    # When Twilio calls with the rule's signature, Then the call is answered
    response = invoke(
        "connect", http_api_event("POST", url, params, signature=signature, extra_headers=headers)
    )
    assert response["statusCode"] == 200, body_text(response)

    # And an unknown key id is a 403 that opens no session
    headers["X-Twilio-Webhooks-Signature-Settings"] = "key=webhooks_sharedkey_other,algorithm=HMAC_SHA256"
    response = invoke(
        "connect", http_api_event("POST", url, params, signature=signature, extra_headers=headers)
    )
    assert response["statusCode"] == 403
    assert len(aws.items()) == 1
