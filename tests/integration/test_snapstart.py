"""SnapStart's runtime hooks (voice_webhooks.runtime.snapstart) under moto: registered when the
runtime has `snapshot_restore_py`, the snapshot holds warm clients and reads, and a restored
environment never serves a token older than the restore."""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from voice_webhooks.runtime import aws_clients, snapstart
from voicedev.relay_events import SAMPLE_RELAY_DOMAIN, STAGE, connect_event, message_event, prompt_frame
from voicedev.sample_events import call_params
from voicedev.twilio_signing import SAMPLE_API_DOMAIN, http_api_event

from tests.integration import relay_helpers
from tests.integration.relay_helpers import Relay
from tests.support import Calls, emitted_metrics

CONNECT_URL = f"https://{SAMPLE_API_DOMAIN}/voice/connect"
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
relay = relay_helpers.relay  # the fixture
RELAY_API_URL = f"wss://{SAMPLE_RELAY_DOMAIN}/{STAGE}"


@pytest.fixture
def runtime_hooks(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Callable[[], None]]]:
    """A stand-in for the `snapshot_restore_py` library Lambda's Python runtimes include."""
    hooks: dict[str, list[Callable[[], None]]] = {"before": [], "after": []}
    module = types.ModuleType("snapshot_restore_py")
    module.register_before_snapshot = hooks["before"].append  # type: ignore[attr-defined]
    module.register_after_restore = hooks["after"].append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    monkeypatch.setattr(snapstart, "_registered", False)
    # What a function registered with (the relay's own clients, whether it reads the token)
    monkeypatch.setattr(snapstart, "_reads_auth_token", True)
    monkeypatch.setattr(snapstart, "_warm_steps", ())
    monkeypatch.setattr(snapstart, "_snapshot_clients", [])
    return hooks


def webhook_event(token: str | None = None) -> dict[str, Any]:
    kwargs = {"token": token} if token else {}
    return http_api_event("POST", CONNECT_URL, call_params(), route="/voice/connect", **kwargs)


def test_without_the_runtime_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a runtime without SnapStart's hooks library (tests, the local mode)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    monkeypatch.setattr(snapstart, "_registered", False)
    # Then registering does nothing, and says so
    assert snapstart.register() is False


def test_every_function_registers_the_hooks_once(
    aws: Any, invoke: Invoke, runtime_hooks: dict[str, list[Callable[[], None]]]
) -> None:
    # When a webhook function and the archiver are loaded, as Lambda loads them
    invoke("connect", webhook_event())
    invoke("fallback", webhook_event())
    from tests.conftest import load_function

    aws.env(RECORDINGS_BUCKET_NAME="recordings")
    load_function("archiver")
    # Then the two hooks are registered, once per process
    assert runtime_hooks["before"] == [snapstart.before_snapshot]
    assert runtime_hooks["after"] == [snapstart.after_restore]


def test_the_snapshot_holds_the_clients_and_the_first_reads(
    aws: Any, invoke: Invoke, aws_calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the before-snapshot hook runs in the connect function's environment
    snapstart.before_snapshot()
    # Then the token was read (and the flow configuration, a file here), and the clients exist
    assert ("secretsmanager", "GetSecretValue") in aws_calls
    assert snapstart.close_connections() >= 2  # Secrets Manager's client and DynamoDB's
    made = aws_clients.dynamodb_client.cache_info()
    assert made.currsize == 1
    aws_calls.clear()
    # and the first request reads nothing again but writes its session, with the client the
    # snapshot holds (it builds no client of its own)
    response = invoke("connect", webhook_event())
    assert response["statusCode"] == 200
    assert aws_calls == [("dynamodb", "PutItem")]
    assert aws_clients.dynamodb_client.cache_info().misses == made.misses


def test_a_restored_environment_reads_the_token_again(
    aws: Any, invoke: Invoke, aws_calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapstart, "_prefetch", None)
    # Given a snapshot taken while the secret held the old token
    snapstart.before_snapshot()
    # When the token is rotated while the snapshot waits, and an environment is restored from it
    aws.secrets.put_secret_value(SecretId=aws.secret_arn, SecretString="rotated-token-value")
    aws_calls.clear()
    snapstart.after_restore()
    snapstart.settle()
    # Then the old token was forgotten and the new one read again, by the after-restore hook
    assert ("secretsmanager", "GetSecretValue") in aws_calls
    aws_calls.clear()
    # and a request signed with the new token is accepted, reading nothing but writing its session
    response = invoke("connect", webhook_event(token="rotated-token-value"))
    assert response["statusCode"] == 200
    assert aws_calls == [("dynamodb", "PutItem")]


def test_a_restored_environment_has_its_own_random_state() -> None:
    # Given the random state a snapshot would hold
    random.seed(1234)
    in_snapshot = random.getstate()
    # When an environment is restored
    snapstart.after_restore()
    # Then its random state is not the snapshot's (two restored environments do not repeat)
    assert random.getstate() != in_snapshot


def test_a_missing_secret_at_snapshot_time_breaks_nothing(
    aws: Any, invoke: Invoke, capsys: pytest.CaptureFixture[str], log_output: Any
) -> None:
    # Given the secret does not exist when the snapshot is taken
    aws.secrets.delete_secret(SecretId=aws.secret_arn, ForceDeleteWithoutRecovery=True)
    # When the before-snapshot hook runs
    snapstart.before_snapshot()
    # Then it does not fail, and leaves no metric for the first invocation to emit
    assert "SnapStart hook step skipped" in log_output.getvalue()
    capsys.readouterr()
    snapstart.after_restore()
    response = invoke("connect", webhook_event())
    # and the request answers as it always does without a token: 503, counted once
    assert response["statusCode"] == 503
    assert emitted_metrics(capsys.readouterr().out).get("AuthTokenUnavailable") == 1


# --- init-phase reads on an on-demand cold start ------------------------------------------------


@pytest.fixture
def on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    monkeypatch.setattr(snapstart, "_prefetch", None)


@pytest.fixture
def flows_in_ssm(aws: Any) -> None:
    import boto3

    from tests.conftest import EXAMPLE_FLOWS

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/twilio-voice-webhooks/flows", Value=EXAMPLE_FLOWS.read_text(encoding="utf-8"), Type="String"
    )
    aws.env(FLOW_CONFIG="ssm:/twilio-voice-webhooks/flows")


def test_an_on_demand_cold_start_reads_token_and_config_during_init(
    aws: Any, flows_in_ssm: None, on_demand: None, invoke: Invoke, aws_calls: Calls
) -> None:
    # When the init phase starts its reads, and the first request comes
    assert snapstart.prefetch() is True
    snapstart.settle()
    assert {("secretsmanager", "GetSecretValue"), ("ssm", "GetParameter")} <= set(aws_calls)
    aws_calls.clear()
    response = invoke("connect", webhook_event())
    # Then the request finds both cached and only writes its session
    assert response["statusCode"] == 200
    assert aws_calls == [("dynamodb", "PutItem")]


def test_no_init_reads_outside_an_on_demand_cold_start(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process Lambda did not start on demand (tests, the local mode, a SnapStart snapshot)
    monkeypatch.setattr(snapstart, "_prefetch", None)
    for kind in (None, "snap-start"):
        if kind:
            monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", kind)
        # Then nothing is read at init
        assert snapstart.prefetch() is False


def test_a_failed_init_read_is_reported_once_by_the_request(
    aws: Any,
    on_demand: None,
    invoke: Invoke,
    aws_calls: Calls,
    capsys: pytest.CaptureFixture[str],
    log_output: Any,
) -> None:
    # Given the secret is gone when the init phase reads it
    aws.secrets.delete_secret(SecretId=aws.secret_arn, ForceDeleteWithoutRecovery=True)
    snapstart.prefetch()
    snapstart.settle()
    assert log_output.getvalue() == ""  # nothing said at init
    # When the first request comes
    response = invoke("connect", webhook_event())
    # Then it reads again and answers as it always does: 503, logged and counted once
    assert response["statusCode"] == 503
    assert emitted_metrics(capsys.readouterr().out).get("AuthTokenUnavailable") == 1
    assert log_output.getvalue().count("Twilio auth token unavailable") == 1


# --- the relay's WebSocket functions ----------------------------------------------------------------


def test_the_relay_functions_register_the_hooks_once(
    relay: Relay, runtime_hooks: dict[str, list[Callable[[], None]]]
) -> None:
    # When the three relay functions are loaded and serve a connection, as Lambda runs them
    relay.open()
    assert relay.invoke("relay_disconnect", relay_disconnect_event())["statusCode"] == 200
    # Then the two hooks are registered, once per process, as for every other function
    assert runtime_hooks["before"] == [snapstart.before_snapshot]
    assert runtime_hooks["after"] == [snapstart.after_restore]


def relay_disconnect_event() -> dict[str, Any]:
    from voicedev.relay_events import disconnect_event

    return disconnect_event()


def test_the_relay_message_snapshot_holds_its_clients_and_never_reads_the_token(
    aws: Any,
    relay: Relay,
    runtime_hooks: dict[str, list[Callable[[], None]]],
    aws_calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voice_webhooks.relay import connections

    from tests.conftest import load_function

    # Given $default's environment (template.yaml: no queue), Twilio opening the API by its own
    # execute-api URL
    monkeypatch.delenv("RECORDINGS_QUEUE_URL")
    aws.env(RELAY_PUBLIC_URL=RELAY_API_URL)
    load_function("relay_message")
    # When the before-snapshot hook runs
    snapstart.before_snapshot()
    # Then the auth token was not read ($default has no right to it: $connect verified the handshake)
    assert not [call for call in aws_calls if call[0] == "secretsmanager"]
    # and the snapshot holds the table's client, the relay's storage client and the @connections
    # client of the very endpoint the first frame's event names
    endpoint = connections.management_endpoint(message_event(prompt_frame("hi"))["requestContext"])
    assert connections.endpoint_before_events() == endpoint == f"https://{SAMPLE_RELAY_DOMAIN}/{STAGE}"
    assert connections._client.cache_info().currsize == 1
    assert connections.warm_client() in snapstart._snapshot_clients
    # and after a restore their pooled connections are closed (three clients), and the session goes on
    assert snapstart.close_connections() == 3
    snapstart.after_restore()
    snapstart.settle()
    relay.open()
    assert relay.send(prompt_frame("What are your opening hours?"))["statusCode"] == 200
    assert relay.recorder.frames("text")


def test_a_restored_relay_connect_verifies_handshakes_with_the_rotated_token(
    aws: Any, relay: Relay, runtime_hooks: dict[str, list[Callable[[], None]]], aws_calls: Calls
) -> None:
    from tests.conftest import load_function

    # Given a $connect snapshot taken while the secret held the old token
    load_function("relay_connect")
    snapstart.before_snapshot()
    assert ("secretsmanager", "GetSecretValue") in aws_calls
    # When the token is rotated while the snapshot waits, and an environment is restored from it
    aws.secrets.put_secret_value(SecretId=aws.secret_arn, SecretString="rotated-token-value")
    aws_calls.clear()
    snapstart.after_restore()
    snapstart.settle()
    # Then the after-restore hook read the new token
    assert ("secretsmanager", "GetSecretValue") in aws_calls
    # and a handshake signed with it is accepted, one signed with the old one refused
    assert relay.invoke("relay_connect", connect_event(token="rotated-token-value"))["statusCode"] == 200
    refused = relay.invoke("relay_connect", connect_event(connection_id="conn-0002"))
    assert refused["statusCode"] == 403


def test_an_on_demand_cold_start_of_relay_message_reads_its_config_not_the_token(
    aws: Any, flows_in_ssm: None, on_demand: None, aws_calls: Calls
) -> None:
    from tests.conftest import load_function

    # When $default starts on demand (its flow configuration in SSM)
    load_function("relay_message")
    snapstart.settle()
    # Then its init phase read the flow configuration, and nothing from Secrets Manager
    assert ("ssm", "GetParameter") in aws_calls
    assert not [call for call in aws_calls if call[0] == "secretsmanager"]


_PRELOAD_PROBE = """
import importlib.util, json, sys, types
hooks = types.ModuleType("snapshot_restore_py")
hooks.register_before_snapshot = hooks.register_after_restore = lambda hook: None
sys.modules["snapshot_restore_py"] = hooks
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
watched = json.loads(sys.argv[2])
at_init = [name for name in watched if name in sys.modules]
from voice_webhooks.runtime import snapstart
snapstart.before_snapshot()
print(json.dumps({"at_init": at_init, "in_snapshot": [name for name in watched if name in sys.modules]}))
"""


@pytest.mark.parametrize(
    ("function", "logical_id", "modules"),
    [
        (
            "relay_connect",
            "RelayConnectFunction",
            ["voice_webhooks.relay.handshake", "voice_webhooks.edge.auth_tokens"],
        ),
        (
            "relay_message",
            "RelayMessageFunction",
            ["voice_webhooks.relay.conversation", "voice_webhooks.relay.frames"],
        ),
    ],
)
def test_a_relay_snapshot_holds_the_modules_its_first_request_imports(
    function: str, logical_id: str, modules: list[str]
) -> None:
    import json
    import os
    import subprocess

    from tests.conftest import EXAMPLE_FLOWS, ROOT
    from tests.support import deployed_environment

    # Given the function's deployed environment in a fresh interpreter (AWS only on a closed
    # loopback port: the snapshot's reads fail fast and are skipped, as a hook allows)
    env = {
        **deployed_environment(logical_id),
        "FLOW_CONFIG": str(EXAMPLE_FLOWS),
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    app = ROOT / "functions" / function / "app.py"
    # When the module is loaded (an on-demand init imports only what every request needs) and the
    # before-snapshot hook runs
    completed = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-c", _PRELOAD_PROBE, str(app), json.dumps(modules)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    # Then the route's own modules were not imported at init, and are in the snapshot
    assert result == {"at_init": [], "in_snapshot": modules}
