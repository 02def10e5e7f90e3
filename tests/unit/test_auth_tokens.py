"""The Twilio auth token(s) from Secrets Manager (moto): formats, caching, outages, and the token
never reaching a log line."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from voice_webhooks.edge.auth_tokens import AuthTokens, load_auth_tokens, parse_secret
from voice_webhooks.errors import ConfigurationError, DependencyUnavailable
from voice_webhooks.runtime.observability import metrics
from voice_webhooks.runtime.settings import FallbackSettings, load_settings

from tests.conftest import reset_caches
from tests.support import emitted_metrics


def tokens_from_settings() -> AuthTokens:
    """What the edge does on every request: the secret named by TWILIO_AUTH_TOKEN_SECRET."""
    settings = load_settings(FallbackSettings)
    return load_auth_tokens(settings.auth_token_secret, settings.cache_max_age_seconds)


PRIMARY = "tok_primary_7f3a9c1e5b2d4f60"
SECONDARY = "tok_secondary_0a1b2c3d4e5f6789"


def secret_gets(calls: list[tuple[str, str]]) -> int:
    return calls.count(("secretsmanager", "GetSecretValue"))


# --- formats ----------------------------------------------------------------------------------


def test_plain_text_secret_is_the_primary_token() -> None:
    assert parse_secret(f"  {PRIMARY}\n").all() == (PRIMARY,)


def test_json_secret_holds_primary_and_secondary() -> None:
    tokens = parse_secret(json.dumps({"authToken": PRIMARY, "secondaryAuthToken": SECONDARY}))

    assert tokens.all() == (PRIMARY, SECONDARY)


@pytest.mark.parametrize("secondary", [None, "", "  "])
def test_json_secret_without_secondary_has_the_primary_only(secondary: str | None) -> None:
    assert parse_secret(json.dumps({"authToken": PRIMARY, "secondaryAuthToken": secondary})).all() == (
        PRIMARY,
    )


def test_secondary_equal_to_primary_is_not_tried_twice() -> None:
    assert parse_secret(json.dumps({"authToken": PRIMARY, "secondaryAuthToken": PRIMARY})).all() == (PRIMARY,)


def test_binary_secret_is_decoded() -> None:
    assert parse_secret(PRIMARY.encode()).all() == (PRIMARY,)


@pytest.mark.parametrize(
    "raw",
    ["", "   ", json.dumps({"secondaryAuthToken": SECONDARY}), json.dumps({"authToken": ""})],
)
def test_secret_without_a_token_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="no auth token"):
        parse_secret(raw)


def test_invalid_json_error_does_not_quote_the_secret() -> None:
    with pytest.raises(ValueError, match="valid JSON") as refused:
        parse_secret('{"authToken": "' + PRIMARY + '", broken')

    assert PRIMARY not in str(refused.value)
    assert refused.value.__suppress_context__


def test_tokens_never_show_in_repr() -> None:
    tokens = AuthTokens(primary=PRIMARY, secondary=SECONDARY)

    assert PRIMARY not in repr(tokens)
    assert SECONDARY not in repr(tokens)


# --- from Secrets Manager ------------------------------------------------------------------------


def test_plain_string_secret_is_loaded(aws: Any) -> None:
    aws.set_auth_tokens(PRIMARY)

    assert tokens_from_settings().all() == (PRIMARY,)


def test_json_secret_with_secondary_is_loaded(aws: Any) -> None:
    aws.set_auth_tokens(PRIMARY, SECONDARY)

    assert tokens_from_settings().all() == (PRIMARY, SECONDARY)


def test_token_is_cached_between_invocations(aws: Any, aws_calls: list[tuple[str, str]]) -> None:
    # Given a cold start
    aws.set_auth_tokens(PRIMARY)
    aws_calls.clear()

    # When the token is needed twice within PARAMETERS_MAX_AGE
    first = tokens_from_settings()
    second = tokens_from_settings()

    # Then Secrets Manager was asked once
    assert first == second
    assert secret_gets(aws_calls) == 1


def test_cached_token_outlives_a_secret_change_until_max_age(
    aws: Any, aws_calls: list[tuple[str, str]]
) -> None:
    # Given the token was loaded and cached
    aws.set_auth_tokens(PRIMARY)
    assert tokens_from_settings().all() == (PRIMARY,)

    # When the secret changes (a rotation) without the cache being cleared
    aws.secrets.put_secret_value(SecretId="twilio/auth-token", SecretString=SECONDARY)

    # Then the cached value is served: rotations add the new token as secondary first (docs)
    assert tokens_from_settings().all() == (PRIMARY,)


def test_max_age_zero_fetches_every_time(aws: Any, aws_calls: list[tuple[str, str]]) -> None:
    # Shows the call count above is real: without caching, every load is a call
    aws.set_auth_tokens(PRIMARY)
    aws.env(PARAMETERS_MAX_AGE="0")
    aws_calls.clear()

    tokens_from_settings()
    tokens_from_settings()

    assert secret_gets(aws_calls) == 2


def test_missing_secret_is_dependency_unavailable_and_counted(
    aws: Any, capsys: pytest.CaptureFixture[str], log_output: io.StringIO
) -> None:
    # Given the setting names a secret that does not exist
    aws.env(TWILIO_AUTH_TOKEN_SECRET="arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")

    # When the token is loaded
    with pytest.raises(DependencyUnavailable) as refused:
        tokens_from_settings()
    metrics.flush_metrics()

    # Then it is a 503 saying so, counted, and logged with the error type only
    assert refused.value.status == 503
    assert refused.value.reason == "auth token unavailable"
    assert emitted_metrics(capsys.readouterr().out).get("AuthTokenUnavailable") == 1
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert [(line["message"], line["error_type"]) for line in lines] == [
        ("Twilio auth token unavailable", "GetParameterError")
    ]


def test_unreachable_secrets_manager_fails_fast(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Secrets Manager does not answer (nothing listens on the discard port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")
    reset_caches()

    # When the token is loaded, Then a 503 comes quickly (Twilio waits 15 s at most)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        tokens_from_settings()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "secret",
    [
        '{"authToken": "' + PRIMARY + '", broken',  # invalid JSON around the token
        json.dumps({"secondaryAuthToken": PRIMARY}),  # JSON without the primary
    ],
)
def test_unusable_secret_is_503_and_never_logged(aws: Any, log_output: io.StringIO, secret: str) -> None:
    aws.secrets.put_secret_value(SecretId="twilio/auth-token", SecretString=secret)
    reset_caches()

    with pytest.raises(DependencyUnavailable):
        tokens_from_settings()

    assert "Twilio auth token unavailable" in log_output.getvalue()
    assert PRIMARY not in log_output.getvalue()


def test_unset_secret_setting_is_a_configuration_error(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN_SECRET")
    reset_caches()

    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN_SECRET"):
        tokens_from_settings()
