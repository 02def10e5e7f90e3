"""The local mode's WebSocket API (API Gateway WEBSOCKET emulation), over loopback WebSockets and
HTTP, against a probe of the relay contract (tests/e2e/fixtures/relay_echo_function/app.py): a
handler that accepts only signed handshakes and answers each frame through @connections.

The local mode runs in this process with template.yaml plus a WebSocket API routing to the probe,
declared the way a SAM template declares one (AWS::ApiGatewayV2::* resources), so these tests run
whatever state the relay agent's own handlers are in."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from voicedev.local_api import FunctionSpec
from voicedev.local_mode import LocalMode
from voicedev.local_settings import LocalSettings
from voicedev.local_ws import LocalWebSocketApi, WebSocketApiSpec, WsRecord
from voicedev.template_resources import load_template
from voicedev.twilio_signing import DEV_AUTH_TOKEN, random_sid, sign
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import port_is_open

FIXTURE_DIR = "tests/e2e/fixtures/relay_echo_function"
SESSION = random_sid("CA") + "-0123456789abcdef"


def echo_websocket_template() -> dict[str, Any]:
    """template.yaml without any WebSocket API of its own, plus one routing every route to the probe."""
    template = copy.deepcopy(load_template())
    resources = template["Resources"]
    for name in [name for name, res in resources.items() if res["Type"].startswith("AWS::ApiGatewayV2::")]:
        del resources[name]
    api = {"Ref": "ProbeWebSocketApi"}
    resources.update(
        {
            "ProbeWebSocketApi": {
                "Type": "AWS::ApiGatewayV2::Api",
                "Properties": {
                    "Name": "probe",
                    "ProtocolType": "WEBSOCKET",
                    "RouteSelectionExpression": "$request.body.action",
                },
            },
            "ProbeStage": {
                "Type": "AWS::ApiGatewayV2::Stage",
                "Properties": {"ApiId": api, "StageName": "relay"},
            },
            "ProbeIntegration": {
                "Type": "AWS::ApiGatewayV2::Integration",
                "Properties": {
                    "ApiId": api,
                    "IntegrationType": "AWS_PROXY",
                    "IntegrationUri": {
                        "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                        "${RelayProbeFunction.Arn}/invocations"
                    },
                },
            },
            "ProbeConnectRoute": {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {
                    "ApiId": api,
                    "RouteKey": "$connect",
                    "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "ProbeIntegration"}]]},
                },
            },
            "ProbeDefaultRoute": {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {
                    "ApiId": api,
                    "RouteKey": "$default",
                    "Target": {"Fn::Sub": "integrations/${ProbeIntegration}"},
                },
            },
            "ProbeDisconnectRoute": {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {
                    "ApiId": api,
                    "RouteKey": "$disconnect",
                    "Target": {"Fn::Sub": "integrations/${ProbeIntegration}"},
                },
            },
            "RelayProbeFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": FIXTURE_DIR, "Handler": "app.lambda_handler", "Timeout": 10},
            },
        }
    )
    return template


class Records:
    """The local mode's WebSocket event records, waited on."""

    def __init__(self) -> None:
        self.items: list[WsRecord] = []
        self._changed = threading.Condition()

    def append(self, record: WsRecord) -> None:
        with self._changed:
            self.items.append(record)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[WsRecord], bool], timeout: float = 10.0) -> WsRecord:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((record for record in self.items if predicate(record)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such record; have: {[r.line() for r in self.items]}")
                self._changed.wait(left)

    def of(self, connection_id: str) -> list[WsRecord]:
        with self._changed:
            return [record for record in self.items if record.connection_id == connection_id]


@pytest.fixture(scope="module")
def records() -> Records:
    return Records()


@pytest.fixture(scope="module")
def local(records: Records) -> Iterator[LocalMode]:
    # The embedded moto server keeps its data in this process's moto backends, which outlive it:
    # emptied before and after, so another in-process local mode never finds this one's table.
    from moto.moto_api._internal import moto_api_backend

    moto_api_backend.reset()
    settings = LocalSettings(api_port=0, aws_port=0, ws_port=0, ws_management_port=0)
    try:
        with LocalMode(settings, template=echo_websocket_template(), on_ws_event=records.append) as mode:
            yield mode
    finally:
        moto_api_backend.reset()


def relay_url(local: LocalMode, query: str = f"session={SESSION}&attempt=1") -> str:
    assert local.websocket_url is not None
    return f"{local.websocket_url}?{query}"


def open_signed(url: str, token: str = DEV_AUTH_TOKEN, signed_url: str | None = None) -> ClientConnection:
    """Open the WebSocket as Twilio does: X-Twilio-Signature over the exact URL, no parameters."""
    headers = {"X-Twilio-Signature": sign(signed_url or url, (), token)}
    return connect(
        url, additional_headers=headers, proxy=None, compression=None, open_timeout=10, legacy=True
    )


def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def connection_id_of(ws: ClientConnection) -> str:
    send(ws, {"type": "connect-event"})
    answer = receive(ws)
    assert answer["type"] == "connect-event"
    return str(answer["event"]["requestContext"]["connectionId"])


def management(local: LocalMode) -> Any:
    assert local.websocket is not None
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=local.websocket.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
    )


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


# ---------------------------------------------------------------------------------------------


def test_the_banner_shows_the_websocket_api_and_its_routes(local: LocalMode) -> None:
    # Given the local mode started with a template that has a WebSocket API
    banner = local.banner()

    # Then the banner names its URL, the relay URL handed to Twilio, @connections and each route
    assert local.websocket is not None
    assert f"WebSocket API  {local.websocket.url}  (ProbeWebSocketApi, stage relay)" in banner
    assert f"relay URL      {local.websocket.url}  (RELAY_PUBLIC_URL)" in banner
    assert f"{local.websocket.management_endpoint}/@connections/<id>" in banner
    for route in ("$connect", "$default", "$disconnect"):
        assert f"  {route:<12} RelayProbeFunction: ready" in banner
    assert "RelayProbeFunction" not in banner.split("Notes:")[-1]


def test_the_handlers_are_told_where_to_post_and_which_url_to_hand_twilio(local: LocalMode) -> None:
    import os

    assert local.websocket is not None
    assert os.environ["RELAY_MANAGEMENT_ENDPOINT"] == local.websocket.management_endpoint
    assert os.environ["RELAY_MANAGEMENT_ENDPOINT"].startswith("http://127.0.0.1:")
    assert os.environ["RELAY_PUBLIC_URL"] == local.websocket.url
    assert local.websocket.url.startswith("ws://127.0.0.1:")
    assert local.websocket.url.endswith("/relay")


def test_a_signed_handshake_opens_and_the_connect_event_is_api_gateways(local: LocalMode) -> None:
    # Given a URL whose query parameters are not in sorted order
    query = f"session={SESSION}&attempt=1&zeta=last&alpha=first"
    url = relay_url(local, query)

    # When Twilio opens it with a valid signature
    with open_signed(url) as ws:
        send(ws, {"type": "connect-event"})
        event = receive(ws)["event"]

    # Then the $connect handler got API Gateway's event, the query in the order received
    context = event["requestContext"]
    assert context["routeKey"] == "$connect"
    assert context["eventType"] == "CONNECT"
    assert context["stage"] == "relay"
    assert context["domainName"] == f"127.0.0.1:{local.websocket.port}"  # type: ignore[union-attr]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert len(context["connectionId"]) == 16
    assert list(event["queryStringParameters"].items()) == [
        ("session", SESSION),
        ("attempt", "1"),
        ("zeta", "last"),
        ("alpha", "first"),
    ]
    assert event["multiValueQueryStringParameters"]["attempt"] == ["1"]
    assert event["headers"]["X-Twilio-Signature"] == sign(url)
    assert event["headers"]["Host"] == context["domainName"]
    assert event["multiValueHeaders"]["X-Twilio-Signature"] == [sign(url)]
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("unsigned", {}),
        ("signed for another URL", {"X-Twilio-Signature": sign("ws://127.0.0.1:1/relay?session=x")}),
        ("signed with another token", None),
    ],
)
def test_an_unsigned_or_badly_signed_handshake_is_refused_with_403(
    local: LocalMode, records: Records, case: str, headers: dict[str, str] | None
) -> None:
    # Given a handshake without a valid signature
    url = relay_url(local, f"session={SESSION}&attempt=1&case={case.replace(' ', '-')}")
    if headers is None:
        headers = {"X-Twilio-Signature": sign(url, (), "another_token")}

    # When it is attempted
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers, proxy=None, open_timeout=10)

    # Then the upgrade is answered 403 with the handler's reason, and no socket ever opened
    assert refused.value.response.status_code == 403
    assert bytes(refused.value.response.body or b"") == b"invalid signature"
    record = records.wait_for(
        lambda r: r.route_key == "$connect"
        and r.status == 403
        and case.split()[0] in str(r.event.get("queryStringParameters", {}).get("case"))
    )
    assert record.note == "refused: invalid signature"
    assert local.websocket is not None
    assert local.websocket.connections.get(record.connection_id) is None
    time.sleep(0.2)
    assert [r.route_key for r in records.of(record.connection_id)] == ["$connect"]


def test_frames_are_invoked_concurrently_one_invocation_each(local: LocalMode, records: Records) -> None:
    with open_signed(relay_url(local)) as ws:
        # Given a frame whose handling takes a second, then a quick one
        started = time.monotonic()
        send(ws, {"type": "sleep", "ms": 1000, "n": 1})
        send(ws, {"type": "prompt", "n": 2})

        # When both are answered
        first, second = receive(ws), receive(ws)
        elapsed = time.monotonic() - started

    # Then the quick one did not wait for the slow one (one thread per frame, as in AWS)
    assert [first["received"]["n"], second["received"]["n"]] == [2, 1]
    assert first["route"] == "$default"
    assert elapsed < 1.9
    prompt = records.wait_for(
        lambda r: r.route_key == "$default" and r.event.get("body", "").endswith('"n": 2}')
    )
    assert prompt.note == "prompt"
    assert prompt.event["requestContext"]["eventType"] == "MESSAGE"
    assert prompt.event["requestContext"]["messageId"]
    assert prompt.event["body"] == json.dumps({"type": "prompt", "n": 2})
    assert prompt.session == SESSION


def test_many_frames_each_get_an_answer(local: LocalMode) -> None:
    with open_signed(relay_url(local)) as ws:
        for n in range(20):
            send(ws, {"type": "prompt", "n": n})
        answered = sorted(receive(ws)["received"]["n"] for _ in range(20))
    assert answered == list(range(20))


def test_a_post_to_connections_reaches_the_client_and_get_describes_it(local: LocalMode) -> None:
    with open_signed(relay_url(local)) as ws:
        connection_id = connection_id_of(ws)
        client = management(local)

        # When the management API is called as the handlers call it (boto3)
        client.post_to_connection(
            ConnectionId=connection_id, Data=b'{"type":"text","token":"Hi","last":true}'
        )
        described = client.get_connection(ConnectionId=connection_id)

        # Then the client got the frame as text, byte for byte, and the connection is described
        assert ws.recv(timeout=5) == '{"type":"text","token":"Hi","last":true}'
        assert described["Identity"]["SourceIp"] == "127.0.0.1"
        assert described["ConnectedAt"] <= described["LastActiveAt"]


def test_a_closed_or_unknown_connection_is_410_gone(local: LocalMode, records: Records) -> None:
    client = management(local)
    with open_signed(relay_url(local)) as ws:
        connection_id = connection_id_of(ws)
        # An unknown id, posted to from a handler, is GoneException (what the agent must handle)
        send(ws, {"type": "post-to", "connectionId": "AAAAAAAAAAAAAAA="})
        assert receive(ws) == {"type": "post-to", "outcome": "GoneException"}
    records.wait_for(lambda r: r.route_key == "$disconnect" and r.connection_id == connection_id)

    # Then every management call on the closed connection is GoneException (HTTP 410)
    assert (
        error_code(lambda: client.post_to_connection(ConnectionId=connection_id, Data=b"x"))
        == "GoneException"
    )
    assert error_code(lambda: client.get_connection(ConnectionId=connection_id)) == "GoneException"
    assert error_code(lambda: client.delete_connection(ConnectionId=connection_id)) == "GoneException"
    with pytest.raises(ClientError) as caught:
        client.post_to_connection(ConnectionId=connection_id, Data=b"x")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_the_client_closing_invokes_disconnect_with_its_close_code(
    local: LocalMode, records: Records
) -> None:
    # Given an open connection
    ws = open_signed(relay_url(local))
    connection_id = connection_id_of(ws)

    # When the client closes it
    ws.close(1000, "bye")

    # Then $disconnect runs once with the close code
    record = records.wait_for(lambda r: r.route_key == "$disconnect" and r.connection_id == connection_id)
    assert record.status == 200
    context = record.event["requestContext"]
    assert context["eventType"] == "DISCONNECT"
    assert context["disconnectStatusCode"] == 1000
    assert "bye" in context["disconnectReason"]
    assert record.event["headers"]["Host"] == f"127.0.0.1:{local.websocket.port}"  # type: ignore[union-attr]
    # and the handler saw it (it reports its $disconnect events to a later connection)
    with open_signed(relay_url(local)) as other:
        send(other, {"type": "disconnects"})
        seen = receive(other)["events"]
    assert connection_id in [event["requestContext"]["connectionId"] for event in seen]


def test_a_dropped_socket_is_disconnect_1006(local: LocalMode, records: Records) -> None:
    ws = open_signed(relay_url(local))
    connection_id = connection_id_of(ws)

    # When the TCP connection drops without a close frame
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()

    record = records.wait_for(lambda r: r.route_key == "$disconnect" and r.connection_id == connection_id)
    assert record.event["requestContext"]["disconnectStatusCode"] == 1006


def test_delete_connection_from_a_handler_closes_the_socket(local: LocalMode, records: Records) -> None:
    with open_signed(relay_url(local)) as ws:
        connection_id = connection_id_of(ws)
        send(ws, {"type": "hang-up"})
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    record = records.wait_for(lambda r: r.route_key == "$disconnect" and r.connection_id == connection_id)
    assert "closed by DeleteConnection" in record.note


def test_a_failing_handler_sends_the_client_internal_server_error(local: LocalMode, records: Records) -> None:
    with open_signed(relay_url(local)) as ws:
        connection_id = connection_id_of(ws)
        send(ws, {"type": "raise"})
        answer = receive(ws)
        # the connection stays usable
        send(ws, {"type": "prompt", "n": 7})
        assert receive(ws)["received"]["n"] == 7
    assert answer["message"] == "Internal server error"
    assert answer["connectionId"] == connection_id
    failed = records.wait_for(lambda r: r.connection_id == connection_id and r.status == 500)
    assert failed.route_key == "$default"


def test_a_frame_over_128_kb_closes_the_connection_with_1009(local: LocalMode) -> None:
    with open_signed(relay_url(local)) as ws:
        ws.send("x" * (128 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_a_route_selection_expression_picks_a_named_route(local: LocalMode) -> None:
    # The probe API routes only $default: an `action` naming no route goes there too
    with open_signed(relay_url(local)) as ws:
        send(ws, {"action": "sendmessage", "type": "prompt", "n": 1})
        assert receive(ws)["route"] == "$default"


def test_another_path_is_404(local: LocalMode) -> None:
    assert local.websocket is not None
    url = f"ws://127.0.0.1:{local.websocket.port}/other?session=x"
    with pytest.raises(InvalidStatus) as refused:
        open_signed(url)
    assert refused.value.response.status_code == 404


# ---------------------------------------------------------------------------------------------
# Without the LocalMode around it: limits, and start/stop


PROBE = FunctionSpec(
    name="RelayProbeFunction",
    code_uri=Path(__file__).resolve().parent / "fixtures/relay_echo_function",
    handler="app.lambda_handler",
    timeout_seconds=10,
)


@pytest.fixture
def short_lived(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalWebSocketApi, Records]]:
    records = Records()
    spec = WebSocketApiSpec(
        "ProbeApi",
        "relay",
        "$request.body.action",
        {"$connect": PROBE, "$default": PROBE, "$disconnect": PROBE},
    )
    server = LocalWebSocketApi(
        spec, 0, 0, on_event=records.append, idle_seconds=0.6, max_connection_seconds=1.5
    )
    server.bind()
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "e2e")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "e2e")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    server.start()
    try:
        yield server, records
    finally:
        server.stop()


def test_an_idle_connection_is_closed_with_1001(short_lived: tuple[LocalWebSocketApi, Records]) -> None:
    server, records = short_lived
    with open_signed(server.url + "?session=s&attempt=1") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    record = records.wait_for(lambda r: r.route_key == "$disconnect")
    assert "idle timeout" in record.note


def keep_busy(ws: ClientConnection) -> None:
    """Never idle: a frame every 0.2 s, answers read, until the server closes the connection."""
    while True:
        send(ws, {"type": "prompt"})
        time.sleep(0.2)
        while True:
            try:
                ws.recv(timeout=0)
            except TimeoutError:
                break


def test_a_busy_connection_still_ends_at_the_duration_limit(
    short_lived: tuple[LocalWebSocketApi, Records],
) -> None:
    server, records = short_lived
    started = time.monotonic()
    with open_signed(server.url + "?session=s&attempt=1") as ws, pytest.raises(ConnectionClosed):
        keep_busy(ws)
    assert 1.4 < time.monotonic() - started < 4
    record = records.wait_for(lambda r: r.route_key == "$disconnect")
    assert "connection duration limit" in record.note


def test_stopping_closes_open_connections_and_frees_both_ports(
    short_lived: tuple[LocalWebSocketApi, Records],
) -> None:
    server, records = short_lived
    ws = open_signed(server.url + "?session=s&attempt=1")
    ports = (server.port, server.management_port)
    server.stop()
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert (
        records.wait_for(lambda r: r.route_key == "$disconnect").event["requestContext"][
            "disconnectStatusCode"
        ]
        == 1001
    )
    assert not any(port_is_open(port) for port in ports)


def test_without_a_websocket_api_in_the_template_nothing_is_started() -> None:
    template = echo_websocket_template()
    for name in [
        name for name, res in template["Resources"].items() if res["Type"].startswith("AWS::ApiGatewayV2::")
    ]:
        del template["Resources"][name]
    settings = LocalSettings(api_port=0, aws_port=0, ws_port=0, ws_management_port=0)
    mode = LocalMode(settings, template=template)
    assert mode.websocket is None
    assert mode.relay_public_url is None
    assert mode._websocket_lines() == [
        "  WebSocket API  not started: template.yaml has no AWS::ApiGatewayV2::Api "
        "with ProtocolType WEBSOCKET"
    ]
