"""The local API's API Gateway behaviour, over loopback HTTP, against a probe function that answers
with the event and context it received (tests/e2e/fixtures/echo_function/app.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from voicedev.local_api import ApiRoute, FunctionSpec, LocalApi, RequestRecord, template_routes
from voicedev.local_client import HttpAnswer, http_request
from voicedev.template_resources import PROJECT_ROOT, load_template

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROBE = FunctionSpec(
    name="ProbeFunction",
    code_uri=FIXTURES / "echo_function",
    handler="app.lambda_handler",
    timeout_seconds=7,
    memory_mb=256,
)
UNBUILT = FunctionSpec(
    name="UnbuiltFunction", code_uri=FIXTURES / "not_written_yet", handler="app.lambda_handler"
)


@pytest.fixture
def api() -> Iterator[tuple[LocalApi, list[RequestRecord]]]:
    records: list[RequestRecord] = []
    server = LocalApi(
        [
            ApiRoute("ANY", "/probe", PROBE),
            ApiRoute("POST", "/only-post", PROBE),
            ApiRoute("ANY", "/unbuilt", UNBUILT),
        ],
        port=0,
        on_request=records.append,
    )
    server.start()
    try:
        yield server, records
    finally:
        server.stop()


def received(answer: HttpAnswer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    return dict(json.loads(answer.body))


def test_a_form_post_becomes_the_payload_v2_event_api_gateway_sends(api) -> None:
    server, _ = api
    # Given a Twilio-like form POST with a query string Twilio signed byte for byte
    raw_query = "session=CA1-ab&b=2&a=1&a=%2B3&empty=&sp=a+b"
    form = b"CallSid=CA1&From=%2B15550109999&FromCity="

    # When it reaches the local API
    answer = http_request(
        "POST",
        f"{server.url}/probe?{raw_query}",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "c2lnbmF0dXJl",
            "X-Repeated": "one",
            "Cookie": "c1=v1; c2=v2",
        },
    )

    # Then the function gets the event API Gateway would build
    event = received(answer)["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /probe"
    assert event["rawPath"] == "/probe"
    assert event["rawQueryString"] == raw_query
    assert event["queryStringParameters"] == {
        "session": "CA1-ab",
        "b": "2",
        "a": "1,+3",
        "empty": "",
        "sp": "a b",
    }
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == form
    assert event["headers"]["x-twilio-signature"] == "c2lnbmF0dXJl"
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert event["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/probe"
    assert context["domainName"] == f"127.0.0.1:{server.port}"
    assert context["routeKey"] == "ANY /probe"
    assert context["stage"] == "$default"


def test_a_get_has_no_body_and_a_json_body_stays_text(api) -> None:
    server, _ = api
    get_event = received(http_request("GET", f"{server.url}/probe"))["event"]
    assert "body" not in get_event
    assert get_event["isBase64Encoded"] is False
    assert get_event["rawQueryString"] == ""
    assert "queryStringParameters" not in get_event

    json_event = received(
        http_request("POST", f"{server.url}/probe", b'{"a": 1}', {"Content-Type": "application/json"})
    )["event"]
    assert (json_event["body"], json_event["isBase64Encoded"]) == ('{"a": 1}', False)


def test_the_handler_gets_a_lambda_context_of_its_function(api) -> None:
    server, _ = api
    context = received(http_request("GET", f"{server.url}/probe"))["context"]
    assert context["function_name"] == "ProbeFunction"
    assert context["memory_limit_in_mb"] == 256
    assert context["invoked_function_arn"].endswith(":function:ProbeFunction")
    assert 0 < context["remaining_ms"] <= 7000
    second = received(http_request("GET", f"{server.url}/probe"))["context"]
    assert second["aws_request_id"] != context["aws_request_id"]


def test_the_handler_answer_becomes_the_http_response(api) -> None:
    server, _ = api
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/probe?answer=binary")
    response = connection.getresponse()
    body = response.read()
    connection.close()

    assert response.status == 201
    assert body == b"\x00\x01probe"
    assert response.getheader("content-type") == "application/octet-stream"
    assert response.getheader("x-probe") == "binary"
    assert [value for name, value in response.getheaders() if name.lower() == "set-cookie"] == [
        "a=1; Path=/",
        "b=2; Path=/",
    ]


def test_an_answer_without_status_code_is_a_200_json_body(api) -> None:
    server, _ = api
    answer = http_request("GET", f"{server.url}/probe?answer=not-a-response")
    assert (answer.status, json.loads(answer.body)) == (200, ["no", "statusCode"])


def test_a_failing_handler_answers_500_and_the_server_keeps_serving(api) -> None:
    server, _ = api
    answer = http_request("GET", f"{server.url}/probe?answer=raise")
    assert (answer.status, json.loads(answer.body)) == (500, {"message": "Internal Server Error"})
    assert http_request("GET", f"{server.url}/probe").status == 200


def test_a_route_whose_handler_file_does_not_exist_answers_501(api) -> None:
    server, records = api
    answer = http_request("POST", f"{server.url}/unbuilt", b"a=1", {"Content-Type": "text/plain"})
    assert answer.status == 501
    assert answer.body.startswith("handler not built:")
    assert "not_written_yet/app.py does not exist yet" in answer.body
    assert records[-1].note.startswith("handler not built")


def test_unknown_paths_and_methods_answer_404(api) -> None:
    server, _ = api
    for method, path in (("GET", "/nothing"), ("GET", "/only-post"), ("GET", "/probe/")):
        answer = http_request(method, server.url + path)
        assert (answer.status, json.loads(answer.body)) == (404, {"message": "Not Found"}), (method, path)
    assert http_request("POST", f"{server.url}/only-post").status == 200


def test_each_request_is_recorded_with_its_session(api) -> None:
    server, records = api
    http_request("GET", f"{server.url}/probe?session=CA9-cd&x=1")
    http_request("GET", f"{server.url}/nothing")

    probe, unknown = records[-2:]
    assert (probe.method, probe.path, probe.status, probe.session, probe.function) == (
        "GET",
        "/probe",
        200,
        "CA9-cd",
        "ProbeFunction",
    )
    assert probe.milliseconds >= 0
    assert "/probe" in probe.line() and "session CA9-cd" in probe.line()
    assert (unknown.status, unknown.session, unknown.function) == (404, None, None)


def test_template_routes_are_every_http_api_event_of_the_template() -> None:
    template = load_template()
    expected = {
        (event["Properties"].get("Method", "ANY").upper(), event["Properties"]["Path"], name)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }

    routes = template_routes()

    assert {(route.method, route.path, route.function.name) for route in routes} == expected
    timeout = template["Globals"]["Function"]["Timeout"]
    for route in routes:
        code_uri = template["Resources"][route.function.name]["Properties"]["CodeUri"]
        assert route.function.module_path == PROJECT_ROOT / code_uri / "app.py"
        assert route.function.timeout_seconds == template["Resources"][route.function.name]["Properties"].get(
            "Timeout", timeout
        )


def test_repeated_headers_are_joined_with_commas(api) -> None:
    server, _ = api
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", "/probe")
    connection.putheader("X-Forwarded-Hop", "one")
    connection.putheader("X-Forwarded-Hop", "two")
    connection.endheaders()
    event = json.loads(connection.getresponse().read())["event"]
    connection.close()

    assert event["headers"]["x-forwarded-hop"] == "one,two"
