"""/voice/fallback under moto: the apology Twilio plays when the voice URL failed. It is signed like
every route, touches no other dependency, and answers even when the auth token cannot be loaded
(docs/decisions/0002-fallback-answers-without-token.md)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import pytest
from voice_webhooks.twiml.fallback import APOLOGY
from voicedev.sample_events import CALLER, call_params
from voicedev.twilio_signing import SAMPLE_API_DOMAIN, http_api_event, sign

from tests.conftest import reset_caches
from tests.support import Calls, body_text, emitted_metrics

FALLBACK_URL = f"https://{SAMPLE_API_DOMAIN}/voice/fallback"
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
# What Twilio adds when it calls the fallback URL: why the voice URL failed.
FALLBACK_PARAMS = call_params(ErrorCode="11200", ErrorUrl=f"https://{SAMPLE_API_DOMAIN}/voice/connect")


def fallback_event(params: Any = FALLBACK_PARAMS, **kwargs: Any) -> dict[str, Any]:
    return http_api_event(
        kwargs.pop("method", "POST"), FALLBACK_URL, params, route="/voice/fallback", **kwargs
    )


def assert_apology(response: dict[str, Any]) -> None:
    """Say the apology, then hang up: nothing else."""
    assert response["statusCode"] == 200, body_text(response)
    assert response["headers"]["Content-Type"] == "text/xml"
    root = ElementTree.fromstring(body_text(response))
    assert root.tag == "Response"
    assert [(child.tag, (child.text or "").strip()) for child in root] == [("Say", APOLOGY), ("Hangup", "")]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_signed_fallback_request_gets_the_apology(
    aws: Any, invoke: Invoke, aws_calls: Calls, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    aws_calls.clear()

    response = invoke("fallback", fallback_event(method=method))

    # Then the apology, counted, and no dependency but the token was touched
    assert_apology(response)
    assert emitted_metrics(capsys.readouterr().out) == {"FallbackAnswered": 1}
    assert {service for service, _ in aws_calls} == {"secretsmanager"}


def test_unsigned_fallback_request_is_403(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response = invoke("fallback", fallback_event(token=None))

    assert response["statusCode"] == 403
    assert emitted_metrics(capsys.readouterr().out) == {"RejectedSignature": 1}


def test_tampered_fallback_request_is_403(aws: Any, invoke: Invoke) -> None:
    event = fallback_event(call_params(ErrorCode="00000"), signature=sign(FALLBACK_URL, FALLBACK_PARAMS))

    assert invoke("fallback", event)["statusCode"] == 403


def test_other_account_is_403(aws: Any, invoke: Invoke) -> None:
    response = invoke("fallback", fallback_event(call_params(AccountSid="AC" + "9" * 32)))

    assert response["statusCode"] == 403


@pytest.mark.parametrize(
    "outage",
    ["secret deleted", "secrets manager unreachable"],
)
def test_fallback_answers_the_apology_when_the_token_cannot_be_loaded(
    aws: Any,
    invoke: Invoke,
    aws_calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outage: str,
) -> None:
    # Given the auth token cannot be loaded
    if outage == "secret deleted":
        aws.secrets.delete_secret(SecretId=aws.secret_arn, ForceDeleteWithoutRecovery=True)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")
    reset_caches()
    aws_calls.clear()

    # When Twilio calls the fallback URL
    response = invoke("fallback", fallback_event())

    # Then the caller still hears the apology (it is static and does nothing), the outage is
    # counted, and no other dependency was touched
    assert_apology(response)
    totals = emitted_metrics(capsys.readouterr().out)
    assert totals["FallbackAnswered"] == 1
    assert totals.get("AuthTokenUnavailable", 0) + totals.get("ConfigUnavailable", 0) == 1
    assert {service for service, _ in aws_calls} <= {"secretsmanager"}


def test_fallback_without_signature_header_is_403_even_during_an_outage(aws: Any, invoke: Invoke) -> None:
    # Twilio always signs: an unsigned request is not Twilio's, outage or not
    aws.secrets.delete_secret(SecretId=aws.secret_arn, ForceDeleteWithoutRecovery=True)
    reset_caches()

    assert invoke("fallback", fallback_event(token=None))["statusCode"] == 403


def test_fallback_works_without_any_table_queue_or_flow_config(
    aws: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given everything but the token is gone or unset
    aws.dynamodb.delete_table(TableName=aws.table_name)
    for name in ("EVENTS_TABLE_NAME", "RECORDINGS_QUEUE_URL", "FLOW_CONFIG"):
        monkeypatch.delenv(name)
    reset_caches()

    assert_apology(invoke("fallback", fallback_event()))


def test_fallback_logs_why_without_the_callers_number(
    aws: Any, invoke: Invoke, log_output: io.StringIO
) -> None:
    # Given the failed voice URL was requested with GET: Twilio's ErrorUrl may carry its query
    error_url = f"https://{SAMPLE_API_DOMAIN}/voice/connect"
    params = call_params(ErrorCode="11205", ErrorUrl=f"{error_url}?From=%2B15550109999&To=%2B15550100001")

    assert_apology(invoke("fallback", fallback_event(params)))

    logs = log_output.getvalue()
    lines = [json.loads(line) for line in logs.splitlines() if '"Fallback URL answered"' in line]
    assert [(line["error_code"], line["error_url"]) for line in lines] == [("11205", error_url)]
    assert CALLER.removeprefix("+") not in logs
