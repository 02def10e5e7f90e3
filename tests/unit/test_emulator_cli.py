"""The commands (`voice-webhooks-simulate`, `voice-webhooks-timeline`) and the many-calls runner,
against a loopback server answering canned TwiML."""

from __future__ import annotations

import math
import re

import pytest
from voicedev.emulator.cli import simulate_main
from voicedev.emulator.engine import EmulatorConfig
from voicedev.emulator.load import call_seed, percentile, run_calls
from voicedev.emulator.scenarios import SCENARIOS, get

from tests.unit.test_emulator_engine import HANGUP, RELAY, conversation_twiml, serve_call
from tests.unit.test_emulator_signing import FakeTwilioApp, config_for, fake_app

__all__ = ["fake_app"]


def test_list_shows_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main(["--list"]) == 0
    out = capsys.readouterr().out
    for scenario in SCENARIOS:
        assert re.search(rf"^  {re.escape(scenario.name)}\s", out, re.MULTILINE)


def test_a_deployed_stack_needs_its_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no TWILIO_AUTH_TOKEN and no secret
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)

    # When the emulator is pointed at a non-loopback URL, it refuses rather than send dev-signed requests
    with pytest.raises(SystemExit) as exit_info:
        simulate_main(["--base-url", "https://abc.execute-api.us-east-1.amazonaws.com"])

    assert exit_info.value.code == 2
    assert "TWILIO_AUTH_TOKEN" in capsys.readouterr().err


def test_unknown_scenarios_and_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulate_main(["no-such-scenario"])
    assert exit_info.value.code == 2
    assert "unknown scenario 'no-such-scenario'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate_main(["--duplicates", "2"])


def test_simulate_prints_one_line_per_request_and_passes(
    fake_app: FakeTwilioApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a server that answers like the product for an answered call (signed with the env token)
    serve_call(fake_app, conversation_twiml())
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli_token")

    # When the command runs the default scenario against it
    status = simulate_main(["--base-url", fake_app.base_url, "--no-timeline", "--seed", "5"])

    # Then it passes, and prints each request with what came back
    out = capsys.readouterr().out
    assert status == 0
    assert "signed with TWILIO_AUTH_TOKEN" in out and "seed 5" in out
    assert re.search(r"\+0\.0s\s+POST /voice/connect\s+CallStatus=ringing", out)
    assert re.search(r"POST /voice/status\?session=s1\s+#4 call-completed", out)
    # Four <Conversation> events, two recording callbacks, and the call's own `completed`
    # call-progress event (the number's status URL, no session)
    assert out.count("-> 204") == 7
    assert re.search(r"POST /voice/status\s+call #0 completed", out)
    assert "-> 200 in" in out and "Hangup" in out
    assert "PASS: expected hang up" in out
    # And no phone number is printed unmasked
    assert "+15005550006" not in out and "+15550100001" not in out
    assert all(request.valid_for("cli_token") for request in fake_app.received)


def test_simulate_exits_1_when_a_call_fails(
    fake_app: FakeTwilioApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_call(fake_app, conversation_twiml())
    fake_app.routes["/voice/status"] = 500
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli_token")

    status = simulate_main(["--base-url", fake_app.base_url, "--no-timeline"])

    captured = capsys.readouterr()
    assert status == 1
    assert "FAIL" in captured.out and "500" in captured.out
    assert "1 of 1 calls FAILED" in captured.err


def test_many_calls_print_a_summary(
    fake_app: FakeTwilioApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_call(fake_app, conversation_twiml())
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli_token")

    status = simulate_main(["--base-url", fake_app.base_url, "--calls", "6", "--concurrency", "3"])

    out = capsys.readouterr().out
    assert status == 0
    assert "calls      6 (0 failed), concurrency 3" in out
    assert f"requests   {len(fake_app.received)} " in out
    # Per call: 4 <Conversation> events, 2 recording callbacks, 1 call-progress event
    assert "204: 42" in out and "200: 12" in out
    assert re.search(r"latency    median [\d.]+ ms   p99 [\d.]+ ms", out)
    assert "== worker-answers" not in out  # successful calls are summarised, not printed


# --- the runner as a library ------------------------------------------------------------------------


def test_run_calls_runs_every_call_concurrently_and_counts_every_request(fake_app: FakeTwilioApp) -> None:
    # Given both kinds of line
    def connect(request: object) -> tuple[int, str, str]:
        params = request.params  # type: ignore[attr-defined]
        twiml = RELAY if params["To"] == "+15550100002" else conversation_twiml()
        return 200, "text/xml", twiml

    serve_call(fake_app, "", action=HANGUP)
    fake_app.routes["/voice/connect"] = connect
    config = config_for(fake_app)

    # When 8 calls alternate between two scenarios, 4 at a time
    results, summary = run_calls(
        config, [get("worker-answers"), get("ai-failed")], calls=8, concurrency=4, run_seed=7
    )

    # Then results come back in call order, and the summary counts what the server received
    assert [result.scenario.name for result in results] == ["worker-answers", "ai-failed"] * 4
    assert len({result.call_sid for result in results}) == 8
    assert summary.calls == 8 and summary.concurrency == 4
    assert summary.requests == len(fake_app.received)
    assert summary.status_codes == {"200": 16, "204": 24}
    assert summary.latency.count == summary.requests
    assert summary.latency.median_ms <= summary.latency.p99_ms <= summary.latency.max_ms
    assert set(summary.by_route) == {"/voice/connect", "/voice/status", "/voice/recording", "/voice/action"}
    # ai-failed expects a human or voicemail after the apology; a bare hang-up is only a difference
    assert summary.failed_calls == 0
    assert [result.seed for result in results] == [call_seed(7, index) for index in range(8)]


def test_call_seeds_are_stable() -> None:
    assert call_seed(7, 0) == call_seed(7, 0)
    assert call_seed(7, 0) != call_seed(7, 1)
    assert call_seed(7, 0) != call_seed(8, 0)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.5) == 50
    assert percentile([3.0], 0.99) == 3
    assert math.isnan(percentile([], 0.99))


def test_run_calls_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="calls and concurrency"):
        run_calls(EmulatorConfig(), [get("busy")], calls=0)


# --- a deployed stack describes itself ----------------------------------------------------------------------

STACK_ACCOUNT = "AC" + "2" * 32


def create_stack(aws: object, public_base_url: str, secret_arn: str) -> None:
    import json as _json

    import boto3

    template = {
        "Parameters": {
            "AuthTokenSecretArn": {"Type": "String"},
            "AllowedAccountSids": {"Type": "CommaDelimitedList"},
            "PublicBaseUrl": {"Type": "String", "Default": ""},
        },
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "ConnectUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com/voice/connect"}
        },
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="voice",
        TemplateBody=_json.dumps(template),
        Parameters=[
            {"ParameterKey": "AuthTokenSecretArn", "ParameterValue": secret_arn},
            {"ParameterKey": "AllowedAccountSids", "ParameterValue": f"{STACK_ACCOUNT},AC{'3' * 32}"},
            {"ParameterKey": "PublicBaseUrl", "ParameterValue": public_base_url},
        ],
    )


def test_stack_defaults_come_from_its_outputs_and_parameters(aws: object) -> None:
    from voicedev.emulator.cli import stack_defaults

    create_stack(aws, "", "arn:aws:secretsmanager:us-east-1:123456789012:secret:twilio")

    defaults = stack_defaults("voice", "us-east-1")

    assert defaults.base_url == "https://abc123.execute-api.us-east-1.amazonaws.com"
    assert defaults.secret_id == "arn:aws:secretsmanager:us-east-1:123456789012:secret:twilio"
    assert defaults.account_sid == STACK_ACCOUNT


def test_a_stack_name_is_enough_to_smoke_test_it(
    aws: object, fake_app: FakeTwilioApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack whose public base URL is (here) a loopback server, and its token in a JSON secret
    import boto3

    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="voice/token", SecretString='{"authToken": "stack_token", "secondaryAuthToken": "old"}'
    )
    create_stack(aws, fake_app.base_url, secret["ARN"])
    serve_call(fake_app, conversation_twiml())

    # When the emulator is given only the stack's name
    status = simulate_main(["--stack-name", "voice", "--region", "us-east-1", "--no-timeline"])

    # Then it called the stack's public URL, signed with the secret's primary token, as its account
    assert status == 0, capsys.readouterr().out
    assert fake_app.received
    assert all(request.valid_for("stack_token") for request in fake_app.received)
    assert {request.params["AccountSid"] for request in fake_app.received} == {STACK_ACCOUNT}
    assert f"secret {secret['ARN']}" in capsys.readouterr().out


def test_an_unknown_stack_is_a_usage_error(aws: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulate_main(["--stack-name", "missing", "--region", "us-east-1"])
    assert exit_info.value.code == 2
    assert "--stack-name missing" in capsys.readouterr().err
