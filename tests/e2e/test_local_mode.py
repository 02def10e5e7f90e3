"""`make local` end to end: the real command on free loopback ports, Twilio-signed requests over
HTTP, the TwiML it answers, and what it stored, read through boto3 at its moto endpoint."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from voicedev.local_client import HttpAnswer
from voicedev.template_resources import http_api_routes
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

from tests.e2e.conftest import (
    ROOT,
    LocalModeProcess,
    command_environment,
    connect_params,
    free_port,
    make_executable,
    port_is_open,
)

CONVERSATION_NUMBER = "+15550100001"
RELAY_NUMBER = "+15550100002"
EXAMPLE_FLOWS = json.loads((ROOT / "config" / "flows.example.json").read_text(encoding="utf-8"))


def twiml(answer: HttpAnswer) -> ElementTree.Element:
    assert answer.status == 200, f"{answer.status}: {answer.body}"
    assert answer.content_type.startswith("text/xml")
    return ElementTree.fromstring(answer.body)


def session_in(url: str) -> str:
    return parse_qs(urlsplit(url).query)["session"][0]


def path_of(url: str) -> str:
    return urlsplit(url).path


# --- start-up ---------------------------------------------------------------------------------------


def test_banner_names_the_endpoints_the_resources_the_dev_token_and_every_webhook_url(
    local_mode: LocalModeProcess,
) -> None:
    # Given the command has started (the fixture waited for its API to answer)
    banner = local_mode.output()

    # Then its banner says where everything is
    assert re.search(rf"^\s+API\s+{re.escape(local_mode.api_url)}\s*$", banner, re.MULTILINE)
    assert re.search(rf"^\s+AWS endpoint\s+{re.escape(local_mode.aws_endpoint)}\b", banner, re.MULTILINE)
    assert re.search(r"^\s+table\s+EventsTable\s*$", banner, re.MULTILINE)
    for queue in ("RecordingsQueue", "RecordingsDeadLetterQueue"):
        assert re.search(rf"\b{queue}\s+{re.escape(local_mode.aws_endpoint)}/123456789012/{queue}\b", banner)
    # and the token in use, saying it is the documented development one
    token_line = next(line for line in banner.splitlines() if line.strip().startswith("auth token"))
    assert DEV_AUTH_TOKEN in token_line
    assert "development token" in token_line
    assert DEV_ACCOUNT_SID in banner
    # and every webhook URL of the template
    for route in http_api_routes():
        assert f"{local_mode.api_url}{route.path} " in banner, route.path


# --- connect --------------------------------------------------------------------------------------


def test_signed_post_for_a_conversation_number_answers_conversation_twiml_calling_back_the_local_api(
    local_mode: LocalModeProcess,
) -> None:
    # Given a call to the number of the `conversation` flow
    params = connect_params(CONVERSATION_NUMBER)

    # When Twilio posts the signed connect webhook
    root = twiml(local_mode.post("/voice/connect", params))

    # Then the answer connects the call to a Conversation of the configured service
    connect = root.find("Connect")
    assert connect is not None
    conversation = connect.find("Conversation")
    assert conversation is not None
    assert conversation.get("serviceInstanceSid") == EXAMPLE_FLOWS["flows"]["frontline"]["serviceInstanceSid"]
    # and every callback URL points at the local API, with one session id minted for this call
    callbacks = {
        "/voice/action": connect.get("action"),
        "/voice/status": conversation.get("statusCallback"),
        "/voice/recording": conversation.get("recordingStatusCallback"),
    }
    sessions = set()
    for path, url in callbacks.items():
        assert url is not None, path
        assert url.startswith(local_mode.api_url + path + "?"), url
        sessions.add(session_in(url))
    assert len(sessions) == 1
    assert sessions.pop().startswith(params["CallSid"])


def test_signed_post_for_a_relay_number_answers_conversation_relay_twiml(
    local_mode: LocalModeProcess,
) -> None:
    # Given a call to the number of the `relay` flow
    params = connect_params(RELAY_NUMBER)
    flow = EXAMPLE_FLOWS["flows"]["assistant"]

    # When Twilio posts the signed connect webhook
    root = twiml(local_mode.post("/voice/connect", params))

    # Then the call is connected to the AI agent's WebSocket, as configured
    connect = root.find("Connect")
    assert connect is not None
    relay = connect.find("ConversationRelay")
    assert relay is not None
    assert root.find("Connect/Conversation") is None
    assert relay.get("url") == flow["url"]
    assert relay.get("welcomeGreeting") == flow["welcomeGreeting"]
    parameters = {element.get("name"): element.get("value") for element in relay.findall("Parameter")}
    assert parameters == flow["parameters"]
    # and the session result comes back to the local API
    action = connect.get("action")
    assert action is not None
    assert action.startswith(local_mode.api_url + "/voice/action?")
    assert session_in(action).startswith(params["CallSid"])


def test_signed_get_with_twilio_params_appended_to_the_configured_query_is_answered(
    local_mode: LocalModeProcess,
) -> None:
    # Given a connect URL configured with a query of its own, called with GET:
    # Twilio appends its parameters after `?tenant=acme` and signs that whole URL
    params = connect_params(CONVERSATION_NUMBER)

    # When the signed GET arrives
    answer = local_mode.get("/voice/connect?tenant=acme", params)

    # Then it is accepted and answered like the POST
    assert urlsplit(answer.url).query.startswith("tenant=acme&AccountSid=")
    conversation = twiml(answer).find("Connect/Conversation")
    assert conversation is not None
    # and the session was recorded for this call
    assert [item["SessionCallSid"] for item in local_mode.items_of_call(params["CallSid"])] == [
        params["CallSid"]
    ]


def test_unsigned_and_wrongly_signed_requests_get_403_and_write_nothing(local_mode: LocalModeProcess) -> None:
    # Given one call, sent in every way Twilio never signs it
    params = connect_params(CONVERSATION_NUMBER)
    refusals = {
        "unsigned": local_mode.post("/voice/connect", params, token=None),
        "other token": local_mode.post("/voice/connect", params, token="not-the-" + DEV_AUTH_TOKEN),
        "tampered": local_mode.post(
            "/voice/connect", params, signature=_signature_for(local_mode, {**params, "To": RELAY_NUMBER})
        ),
        "other account": local_mode.post("/voice/connect", {**params, "AccountSid": "AC" + "f" * 32}),
    }

    # Then each is refused, and nothing of that call is stored
    assert {name: answer.status for name, answer in refusals.items()} == dict.fromkeys(refusals, 403)
    assert local_mode.items_of_call(params["CallSid"]) == []

    # When the same call arrives correctly signed, it is stored (the check above could see it)
    twiml(local_mode.post("/voice/connect", params))
    assert len(local_mode.items_of_call(params["CallSid"])) == 1


def _signature_for(local_mode: LocalModeProcess, params: dict[str, str]) -> str:
    from voicedev.twilio_signing import sign

    return sign(local_mode.url("/voice/connect"), params)


def test_the_session_item_is_readable_through_boto3_at_the_moto_endpoint(
    local_mode: LocalModeProcess,
) -> None:
    # Given an answered call
    params = connect_params(CONVERSATION_NUMBER)
    root = twiml(local_mode.post("/voice/connect", params))
    action = root.find("Connect")
    assert action is not None
    session_id = session_in(str(action.get("action")))

    # When a developer reads the table at the AWS endpoint the banner printed
    items = local_mode.items_of_session(session_id)

    # Then the session item holds the call's identity and the chosen flow
    assert len(items) == 1
    item = items[0]
    assert item["ItemKey"] == "session"
    assert item["SessionCallSid"] == params["CallSid"]
    assert item["AccountSid"] == DEV_ACCOUNT_SID
    assert item["To"] == CONVERSATION_NUMBER
    assert (item["Flow"], item["FlowKind"]) == ("frontline", "conversation")


# --- the request log ------------------------------------------------------------------------------


def test_each_request_is_logged_on_one_line_with_route_status_duration_and_session(
    local_mode: LocalModeProcess,
) -> None:
    # Given an answered call, a refused callback for a known session, and an unknown path
    params = connect_params(RELAY_NUMBER)
    action = twiml(local_mode.post("/voice/connect", params)).find("Connect")
    assert action is not None
    session_id = session_in(str(action.get("action")))
    refused_session = "CA" + secrets.token_hex(16) + "-e2e"
    local_mode.post(f"/voice/status?session={refused_session}", {"AccountSid": DEV_ACCOUNT_SID}, token=None)
    unknown = f"/voice/unknown-{secrets.token_hex(4)}"
    local_mode.get(unknown, {})

    # Then each has its line: method, route, status, milliseconds, session
    local_mode.wait_for_line(rf"POST\s+/voice/connect\s+200\s+\d+ ms\s+session {re.escape(session_id)}$")
    refused = re.escape(refused_session)
    local_mode.wait_for_line(
        rf"POST\s+/voice/status\s+403\s+\d+ ms\s+session {refused}\s+\((?i:.*signature.*)\)$"
    )
    local_mode.wait_for_line(rf"GET\s+{re.escape(unknown)}\s+404\s+\d+ ms\s+session -$")


def test_an_unknown_route_answers_404_as_api_gateway_does(local_mode: LocalModeProcess) -> None:
    for path in ("/", "/voice", "/voice/connect/", "/voice/nothing"):
        answer = local_mode.post(path, connect_params(CONVERSATION_NUMBER))
        assert (answer.status, json.loads(answer.body)) == (404, {"message": "Not Found"}), path


# --- other settings -------------------------------------------------------------------------------


def test_tunnel_url_real_token_and_account_are_used_and_sigterm_stops_everything(local_mode_factory) -> None:
    # Given the settings for a real number behind a tunnel, and AWS settings in the developer's shell
    token = "e2e" + secrets.token_hex(16)
    account = "AC" + secrets.token_hex(16)
    tunnel = "https://e2e-tunnel.example.test"
    local: LocalModeProcess = local_mode_factory(
        PUBLIC_BASE_URL=tunnel,
        TWILIO_AUTH_TOKEN=token,
        TWILIO_ACCOUNT_SID=account,
        AWS_PROFILE="a-profile-that-does-not-exist",
        AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9",
    )

    # Then the banner shows the tunnel's webhook URLs and never the real token
    banner = local.output()
    for route in http_api_routes():
        assert f"{tunnel}{route.path} " in banner
    assert token not in banner
    assert "from TWILIO_AUTH_TOKEN, masked" in banner

    # When Twilio calls the tunnel URL, signed with the real token, for the real account
    params = connect_params(CONVERSATION_NUMBER, AccountSid=account)
    root = twiml(local.send("POST", "/voice/connect", params, token))

    # Then the callbacks point at the tunnel, and the session is stored in the local table
    connect = root.find("Connect")
    assert connect is not None
    assert str(connect.get("action")).startswith(tunnel + "/voice/action?session=")
    assert len(local.items_of_call(params["CallSid"])) == 1

    # And what Twilio would not send is refused: the development token, the local URL, another account
    assert local.send("POST", "/voice/connect", params, DEV_AUTH_TOKEN).status == 403
    local_url_signed = _send_signed_for_local_url(local, params, token)
    assert local_url_signed.status == 403
    other_account = connect_params(CONVERSATION_NUMBER, AccountSid=DEV_ACCOUNT_SID)
    assert local.send("POST", "/voice/connect", other_account, token).status == 403

    # When it gets SIGTERM
    status = local.stop()

    # Then it stops both servers and exits 0
    assert status == 0, local.output()
    assert "Local mode stopped." in local.output()
    assert not port_is_open(local.api_port)
    assert not port_is_open(local.aws_port)


def _send_signed_for_local_url(local: LocalModeProcess, params: dict[str, str], token: str) -> HttpAnswer:
    from voicedev.local_client import twilio_request

    return twilio_request("POST", local.api_url + "/voice/connect", params, token=token)


def _run_until_exit(**settings: str) -> subprocess.CompletedProcess[str]:
    env = command_environment(
        {"LOCAL_API_PORT": str(free_port()), "LOCAL_AWS_PORT": str(free_port()), **settings}
    )
    return subprocess.run(  # noqa: S603 - make from PATH, fixed arguments
        [make_executable(), "--no-print-directory", "local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_an_invalid_flow_config_stops_the_start_naming_the_field(venv_ready: None, tmp_path: Path) -> None:
    # Given a relay flow whose url is not a WebSocket URL
    flows = json.loads(json.dumps(EXAMPLE_FLOWS))
    flows["flows"]["assistant"]["url"] = "https://agent.example.com/relay"
    config = tmp_path / "flows.json"
    config.write_text(json.dumps(flows), encoding="utf-8")

    # When the local mode starts with it
    result = _run_until_exit(FLOW_CONFIG=str(config))

    # Then it exits with an error naming the setting and the field, before serving anything
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(r"cannot start: FLOW_CONFIG: .*flows\.assistant\.url", output), output
    assert "Ready." not in output


@pytest.mark.parametrize("busy", ["LOCAL_API_PORT", "LOCAL_AWS_PORT"])
def test_a_busy_port_stops_the_start_naming_the_setting(local_mode: LocalModeProcess, busy: str) -> None:
    # Given a port already taken (by the running instance)
    port = local_mode.api_port if busy == "LOCAL_API_PORT" else local_mode.aws_port

    # When a second instance is started on it
    result = _run_until_exit(**{busy: str(port)})

    # Then it exits with an error saying which setting to change
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert busy in result.stderr
    # and the running instance is unaffected
    assert local_mode.post("/voice/connect", connect_params(CONVERSATION_NUMBER)).status == 200


def test_invalid_settings_stop_the_start_naming_each_variable(venv_ready: None) -> None:
    # When the local mode starts with an account SID and a public URL that cannot be right
    result = _run_until_exit(TWILIO_ACCOUNT_SID="AC123", PUBLIC_BASE_URL="tunnel.example.test/voice")

    # Then it exits with one message naming both variables, before starting anything
    assert result.returncode != 0
    assert "invalid setting" in result.stderr
    assert "TWILIO_ACCOUNT_SID" in result.stderr
    assert "PUBLIC_BASE_URL: must be an http(s) URL" in result.stderr
    assert "Ready." not in result.stdout


def info_log_lines(local: LocalModeProcess) -> list[str]:
    """The handlers' JSON log lines below WARNING (warnings of refused requests are expected)."""
    return [line for line in local.lines if re.match(r'^\{"level":\s*"(INFO|DEBUG)"', line)]


def test_the_terminal_shows_one_line_per_request_and_no_handler_json_logs_by_default(
    local_mode: LocalModeProcess,
) -> None:
    # Given the local mode as `make local` starts it, the banner says how to see the handler logs
    assert re.search(
        r"^\s+handler logs\s+WARNING and above \(full JSON logs: make local ARGS=--verbose, or "
        r"LOCAL_LOG_LEVEL=INFO\)$",
        local_mode.output(),
        re.MULTILINE,
    )

    # When a call is answered
    twiml(local_mode.post("/voice/connect", connect_params(CONVERSATION_NUMBER)))

    # Then its request line is printed, and no handler log line below WARNING
    local_mode.wait_for_line(r"POST\s+/voice/connect\s+200\s")
    assert info_log_lines(local_mode) == []


def test_verbose_prints_the_handlers_json_logs(local_mode_factory) -> None:
    # Given `make local ARGS=--verbose`
    local = local_mode_factory(ARGS="--verbose")
    assert re.search(r"^\s+handler logs\s+INFO \(every handler log line", local.output(), re.MULTILINE)

    # When a call is answered
    twiml(local.post("/voice/connect", connect_params(CONVERSATION_NUMBER)))

    # Then the handlers' structured logs are printed too
    local.wait_for_line(r"POST\s+/voice/connect\s+200\s")
    local.wait_for_line(r'^\{"level":\s*"INFO"')
    assert info_log_lines(local)
