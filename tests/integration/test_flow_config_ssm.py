"""FLOW_CONFIG=ssm:/name under moto: the document read through Powertools Parameters and cached,
a broken one answered as 500 "service misconfigured" by the connect route, warnings logged."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import load_flow_config, ssm_provider
from voice_webhooks.runtime.observability import logger
from voice_webhooks.runtime.settings import ConnectSettings, load_settings
from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event, random_sid


def load_configured() -> Any:
    """What the connect route does: the document named by FLOW_CONFIG."""
    settings = load_settings(ConnectSettings)
    return load_flow_config(settings.flow_config, settings.cache_max_age_seconds)


ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "flow_config"
PARAMETER = "/voice-webhooks/flows"
CONNECT_URL = f"https://{SAMPLE_API_DOMAIN}/voice/connect"


@pytest.fixture
def ssm(aws: Any) -> Any:
    client = boto3.client("ssm", region_name="us-east-1")
    aws.env(FLOW_CONFIG=f"ssm:{PARAMETER}")
    return client


def put(ssm: Any, text: str, kind: str = "String") -> None:
    ssm.put_parameter(Name=PARAMETER, Value=text, Type=kind, Overwrite=True)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Any:
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def connect_call(to: str = "+15550100002") -> dict[str, Any]:
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": random_sid("CA"),
        "From": "+15550109999",
        "To": to,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    return http_api_event("POST", CONNECT_URL, params)


def body(response: dict[str, Any]) -> str:
    text = str(response["body"])
    return base64.b64decode(text).decode() if response.get("isBase64Encoded") else text


@pytest.mark.parametrize("kind", ["String", "SecureString"])
def test_the_document_is_read_from_ssm(ssm: Any, kind: str) -> None:
    # Given the document in an SSM parameter (plain or SecureString)
    put(ssm, fixture_text("minimal_both_kinds.json"), kind)

    # When the functions load FLOW_CONFIG=ssm:/name
    config = load_configured()

    # Then they get that document
    assert config.flow_name_for("+15550100002") == "assistant"


def test_the_parameter_is_cached_for_parameters_max_age(ssm: Any, aws: Any) -> None:
    # Given a loaded document (PARAMETERS_MAX_AGE defaults to 300 s)
    put(ssm, fixture_text("minimal_both_kinds.json"))
    assert load_configured().default == "frontline"

    # When the parameter changes in SSM
    changed = json.loads(fixture_text("minimal_both_kinds.json"))
    changed["default"] = "assistant"
    put(ssm, json.dumps(changed))

    # Then warm invocations keep the cached value until it expires, then read the new one
    assert load_configured().default == "frontline"
    ssm_provider().clear_cache()  # what max_age expiring does
    assert load_configured().default == "assistant"


def test_max_age_zero_reads_every_time(ssm: Any, aws: Any) -> None:
    aws.env(PARAMETERS_MAX_AGE="0")
    put(ssm, fixture_text("minimal_both_kinds.json"))
    assert load_configured().default == "frontline"
    changed = json.loads(fixture_text("minimal_both_kinds.json"))
    changed["default"] = "assistant"
    put(ssm, json.dumps(changed))
    assert load_configured().default == "assistant"


def test_a_missing_parameter_is_a_configuration_error_naming_it(ssm: Any) -> None:
    with pytest.raises(
        ConfigurationError, match=f"cannot read flow config ssm:{PARAMETER}: .*ParameterNotFound"
    ):
        load_configured()


def test_a_broken_document_raises_naming_the_fields(ssm: Any) -> None:
    # Given a broken document in SSM
    put(ssm, fixture_text("broken.json"))

    # When it is loaded
    with pytest.raises(ConfigurationError) as raised:
        load_configured()

    # Then every problem names its field
    assert [line.split(":")[0] for line in raised.value.problems] == [
        "flows.frontline.serviceInstanceSid",
        "flows.assistant.url",
        "flows.assistant.interruptSensitivity",
    ]


def test_connect_answers_500_service_misconfigured_when_the_document_is_broken(
    ssm: Any, aws: Any, invoke: Any, logs: Any
) -> None:
    # Given a broken document in SSM
    put(ssm, fixture_text("broken.json"))

    # When Twilio posts a signed call to /voice/connect
    response = invoke("connect", connect_call())

    # Then the answer is 500 "service misconfigured" (Twilio moves on to the fallback URL), the log
    # names the broken fields, and no session is written
    assert response["statusCode"] == 500
    assert body(response) == "service misconfigured"
    errors = [record for record in logs() if record["message"] == "Configuration error"]
    assert len(errors) == 1
    assert "flows.assistant.url: must be your WebSocket server's URL" in errors[0]["reason"]
    assert f"ssm:{PARAMETER}" in errors[0]["reason"]
    assert aws.items() == []


def test_connect_logs_warnings_once_at_cold_start_and_answers(ssm: Any, invoke: Any, logs: Any) -> None:
    # Given a valid document with a setting Twilio ignores
    put(ssm, fixture_text("with_warnings.json"))

    # When two calls come in on the same (warm) function
    first = invoke("connect", connect_call())
    second = invoke("connect", connect_call())

    # Then both are answered with the relay TwiML and the warning was logged once, naming the field
    assert (first["statusCode"], second["statusCode"]) == (200, 200)
    assert "<ConversationRelay " in body(first)
    warnings_logged = [record for record in logs() if record["message"] == "Flow config warning"]
    assert [record["warning"].split(":")[0] for record in warnings_logged] == [
        "flows.assistant.conversationConfiguration"
    ]
