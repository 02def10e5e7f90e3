"""The local WebSocket API's reading of the template (the forms a SAM template routes a WebSocket
API with), the events it builds, its route selection, and its settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from voicedev.local_settings import LocalSettingsError, load_local_settings
from voicedev.local_ws import (
    Handshake,
    connect_event,
    disconnect_event,
    message_event,
    select_route,
    template_has_websocket_api,
    websocket_api,
)
from voicedev.template_resources import PROJECT_ROOT

API = {"Ref": "RelayApi"}


def template(**extra: Any) -> dict[str, Any]:
    """A WebSocket API whose three routes reach their functions through three spellings of the
    integration target and integration URI."""
    resources: dict[str, Any] = {
        "RelayApi": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.type"},
        },
        "HttpApiNotThisOne": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "HTTP"}},
        "RelayStage": {
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {"ApiId": API, "StageName": {"Ref": "Stage"}},
        },
        "ConnectIntegration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": API,
                "IntegrationUri": {
                    "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                    "${RelayConnectFunction.Arn}/invocations"
                },
            },
        },
        "MessageIntegration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": API,
                "IntegrationUri": {
                    "Fn::Join": [
                        "",
                        [
                            "arn:aws:apigateway:",
                            {"Ref": "AWS::Region"},
                            ":lambda:path/functions/",
                            {"Fn::GetAtt": ["RelayMessageFunction", "Arn"]},
                            "/invocations",
                        ],
                    ]
                },
            },
        },
        "DisconnectIntegration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": API,
                "IntegrationUri": {
                    "Fn::Sub": [
                        "arn:aws:apigateway:${AWS::Region}:lambda:path/functions/${Arn}/invocations",
                        {"Arn": {"Fn::GetAtt": "RelayDisconnectFunction.Arn"}},
                    ]
                },
            },
        },
        "ConnectRoute": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": API,
                "RouteKey": "$connect",
                "Target": {"Fn::Sub": "integrations/${ConnectIntegration}"},
            },
        },
        "DefaultRoute": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": API,
                "RouteKey": "$default",
                "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "MessageIntegration"}]]},
            },
        },
        "DisconnectRoute": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": API,
                "RouteKey": "$disconnect",
                "Target": {"Fn::Sub": "integrations/${DisconnectIntegration}"},
            },
        },
    }
    for name in ("RelayConnectFunction", "RelayMessageFunction", "RelayDisconnectFunction"):
        folder = name.removesuffix("Function").replace("Relay", "relay_").lower()
        resources[name] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {"CodeUri": f"functions/{folder}/", "Timeout": 29 if "Message" in name else 5},
        }
    resources.update(extra)
    return {
        "Parameters": {"Stage": {"Type": "String", "Default": "relay"}},
        "Globals": {"Function": {"Handler": "app.lambda_handler", "MemorySize": 256}},
        "Resources": resources,
    }


def test_the_routes_are_found_through_every_spelling_of_target_and_integration_uri() -> None:
    # Given a template routing its WebSocket API three ways / When it is read
    spec = websocket_api(template())

    # Then each route key has its function, with the Globals filling what the function omits
    assert spec is not None
    assert spec.name == "RelayApi"
    assert spec.stage == "relay"
    assert spec.route_selection_expression == "$request.body.type"
    assert {key: fn.name for key, fn in spec.routes.items()} == {
        "$connect": "RelayConnectFunction",
        "$default": "RelayMessageFunction",
        "$disconnect": "RelayDisconnectFunction",
    }
    message = spec.routes["$default"]
    assert message.code_uri == PROJECT_ROOT / "functions/relay_message/"
    assert message.module_path == PROJECT_ROOT / "functions/relay_message/app.py"
    assert (message.timeout_seconds, message.memory_mb) == (29, 256)
    assert spec.notes == ()
    assert template_has_websocket_api(template())


def test_the_template_s_routes_invoke_their_functions_through_the_live_alias() -> None:
    # Given template.yaml, whose integrations name `!Ref <Function>.Alias` (SnapStart: docs/deploy.md)
    spec = websocket_api()

    # Then the local mode serves each route with its function
    assert spec is not None
    assert {key: fn.name for key, fn in spec.routes.items()} == {
        "$connect": "RelayConnectFunction",
        "$default": "RelayMessageFunction",
        "$disconnect": "RelayDisconnectFunction",
    }
    assert spec.notes == ()


def test_a_template_without_a_websocket_api_has_none() -> None:
    resources = {name: value for name, value in template()["Resources"].items() if name != "RelayApi"}
    assert websocket_api({"Resources": resources}) is None
    assert not template_has_websocket_api({"Resources": resources})


def test_a_route_without_a_lambda_integration_is_noted_not_served() -> None:
    broken = template(
        MockRoute={
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {"ApiId": API, "RouteKey": "ping", "Target": "integrations/abc123"},
        }
    )
    spec = websocket_api(broken)
    assert spec is not None
    assert "ping" not in spec.routes
    assert spec.notes == ("route ping (MockRoute) has no Lambda integration: not served",)


HANDSHAKE = Handshake(
    connection_id="L0SM9cOFvHcCIhw=",
    path="/relay",
    query="session=CA1-ab&attempt=2&b=2&a=1&a=3",
    headers=[("Host", "127.0.0.1:3001"), ("X-Twilio-Signature", "c2ln"), ("X-Multi", "1"), ("X-Multi", "2")],
    source_ip="127.0.0.1",
    connected_at=datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
)


def test_the_connect_event_keeps_the_query_in_the_order_received() -> None:
    event = connect_event(HANDSHAKE, "relay", now=datetime(2026, 12, 1, 20, 0, 1, tzinfo=UTC))
    # The signed URL is rebuilt from this order: never sorted
    assert list(event["queryStringParameters"]) == ["session", "attempt", "b", "a"]
    assert event["queryStringParameters"]["a"] == "3"  # the last value, as API Gateway
    assert event["multiValueQueryStringParameters"]["a"] == ["1", "3"]
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    context = event["requestContext"]
    assert context["domainName"] == "127.0.0.1:3001"
    assert context["connectedAt"] == 1796155200000
    assert context["requestTimeEpoch"] == 1796155201000
    assert context["requestTime"] == "01/Dec/2026:20:00:01 +0000"
    assert HANDSHAKE.session == "CA1-ab"


def test_message_and_disconnect_events() -> None:
    text = message_event(HANDSHAKE, "relay", "$default", '{"type":"prompt"}')
    assert (text["body"], text["isBase64Encoded"]) == ('{"type":"prompt"}', False)
    binary = message_event(HANDSHAKE, "relay", "$default", b"\x00\x01")
    assert (binary["body"], binary["isBase64Encoded"]) == ("AAE=", True)
    gone = disconnect_event(HANDSHAKE, "relay", 1006, "Connection closed abnormally")
    assert gone["requestContext"]["disconnectStatusCode"] == 1006
    assert "X-Twilio-Signature" not in gone["headers"]
    assert gone["headers"]["Host"] == "127.0.0.1:3001"


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "sendmessage"}', "sendmessage"),
        ('{"action": "unknown"}', "$default"),
        ('{"action": "$connect"}', "$default"),
        ("not json", "$default"),
        (b"\x00", "$default"),
    ],
)
def test_route_selection(body: str | bytes, route: str) -> None:
    routes = {"$default": 1, "sendmessage": 2, "$connect": 3}
    assert select_route("$request.body.action", body, routes) == route


def test_no_default_route_drops_unmatched_frames() -> None:
    assert select_route("$request.body.action", "{}", {"$connect": 1}) is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOCAL_WS_PORT": "70000"}, "LOCAL_WS_PORT"),
        ({"LOCAL_WS_MANAGEMENT_PORT": "x"}, "LOCAL_WS_MANAGEMENT_PORT"),
        ({"RELAY_PUBLIC_URL": "https://example.com/relay"}, "RELAY_PUBLIC_URL: must be a ws"),
        ({"RELAY_PUBLIC_URL": "wss://example.com/relay?x=1"}, "RELAY_PUBLIC_URL: must not carry a query"),
        ({"LOCAL_WS_IDLE_SECONDS": "0"}, "LOCAL_WS_IDLE_SECONDS"),
    ],
)
def test_bad_websocket_settings_name_their_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(LocalSettingsError, match=message):
        load_local_settings(environ)


def test_websocket_settings_defaults() -> None:
    settings = load_local_settings({"RELAY_PUBLIC_URL": "wss://abcd.ngrok.app/relay/"})
    assert (settings.ws_port, settings.ws_management_port) == (3001, 3003)
    assert settings.relay_public_url == "wss://abcd.ngrok.app/relay"
    assert (settings.ws_idle_seconds, settings.ws_max_seconds) == (600.0, 7200.0)
