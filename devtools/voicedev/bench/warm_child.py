"""Warm request cost, in its own interpreter (`python -m voicedev.bench.warm_child SPEC RESULT`),
started by `voicedev.bench.warm` with Lambda's environment already set: the X-Ray SDK patches
botocore for good when the handlers are imported, so this must not happen in the benchmark's
own process.

1. Under moto (in-process), the handlers serve two typical calls: the first warms every cache
   (token, flow config, clients), the second is recorded: for each route, the AWS requests its
   handler made (parameters as sent, answers as received, before boto3's own transformations).
2. Then each route's second request is served again and again with those answers queued on
   botocore's Stubber, so no AWS and no network is left in the figure: what remains is our code
   and the libraries it runs on. Only the handler call is timed.
3. The floor is written here, inline: decode the body, `RequestValidator.validate`, the same AWS
   requests (same parameters, same stubbed answers, plain clients), and for the TwiML routes the
   same TwiML rendered with twilio-python. It runs interleaved with the handler, request by
   request, so both see the same machine."""

from __future__ import annotations

import base64
import copy
import cProfile
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from voicedev.bench.calls import TypicalCall, answer_body

ROUTES = ("connect", "status", "recording", "action", "fallback")
TWIML_ROUTES = ("connect", "action", "fallback")
EXPECTED_STATUS = {"connect": 200, "status": 204, "recording": 204, "action": 200, "fallback": 200}


@dataclass
class Recorded:
    """One AWS request a handler made: which client, the operation, its parameters (as sent to
    the wire, after boto3's DynamoDB transformations) and the answer (as parsed from the wire)."""

    client: str
    operation: str
    method: str
    params: dict[str, Any]
    response: dict[str, Any]


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "c0ffee00-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2026/01/01/[$LATEST]bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def load_handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    import importlib.util

    from voicedev.template_resources import PROJECT_ROOT

    path = PROJECT_ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


def handler_clients() -> dict[str, Any]:
    """The clients the handlers use, as they cached them."""
    from voice_webhooks.runtime import aws_clients

    from voicedev.handler_caches import handler_providers

    clients = {"dynamodb": aws_clients.dynamodb_client(), "sqs": aws_clients.sqs()}
    for name, provider in handler_providers().items():
        clients[name] = provider.client  # type: ignore[attr-defined]
    return clients


class Recorder:
    """Records what each client sends and receives (hooks on the clients' own event systems)."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.calls: list[Recorded] = []
        self.active = False
        self._pending: dict[int, tuple[str, str, dict[str, Any]]] = {}
        for key, client in clients.items():
            events = client.meta.events
            service = client.meta.service_model.service_id.hyphenize()
            # Last, on the general event (called after the service's own): once boto3's DynamoDB
            # handlers have turned Python values into wire values.
            events.register_last("before-parameter-build", self._params_hook(key))
            # First, on the service's event: before boto3's DynamoDB handler turns the wire values
            # of the answer into Python values (it changes them in place).
            events.register_first(f"after-call.{service}", self._response_hook())

    def _params_hook(self, key: str) -> Callable[..., None]:
        def hook(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            if self.active:
                self._pending[id(context)] = (key, model.name, copy.deepcopy(params))

        return hook

    def _response_hook(self) -> Callable[..., None]:
        def hook(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            if not self.active:
                return
            client_key, operation, params = self._pending.pop(id(context))
            client = self.clients[client_key]
            method = next(m for m, api in client.meta.method_to_api_mapping.items() if api == operation)
            self.calls.append(Recorded(client_key, operation, method, params, copy.deepcopy(parsed)))

        return hook


def queue(stubber: Any, call: Recorded) -> None:
    response = copy.deepcopy(call.response)
    metadata = response.pop("ResponseMetadata", {})
    error = response.pop("Error", None)
    if error is None:
        stubber.add_response(call.method, response)
    else:
        stubber.add_client_error(
            call.method,
            service_error_code=error.get("Code", ""),
            service_message=error.get("Message", ""),
            http_status_code=metadata.get("HTTPStatusCode", 400),
            modeled_fields=response or None,
        )


def twiml_builder(xml: str) -> Callable[[], str]:
    """A function rendering the same TwiML with twilio-python (element by element)."""
    from twilio.twiml.voice_response import VoiceResponse

    root = ElementTree.fromstring(xml)  # noqa: S314 - our own handler's answer

    def add(parent: Any, element: ElementTree.Element) -> None:
        node = parent.add_child(element.tag, element.text, **element.attrib)
        for child in element:
            add(node, child)

    def build() -> str:
        response = VoiceResponse()
        for child in root:
            add(response, child)
        return str(response)

    return build


def make_floor(
    event: dict[str, Any], token: str, calls: list[Recorded], clients: dict[str, Any], twiml: str | None
) -> Callable[[], object]:
    from twilio.request_validator import RequestValidator

    render = twiml_builder(twiml) if twiml is not None else None
    plan = [(getattr(clients[call.client], call.method), call.params) for call in calls]

    def floor() -> object:
        raw = event.get("body") or ""
        body = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        params = dict(parse_qsl(body, keep_blank_values=True))
        headers = event["headers"]
        query = event.get("rawQueryString")
        url = f"https://{headers['host']}{event['rawPath']}" + (f"?{query}" if query else "")
        if not RequestValidator(token).validate(url, params, headers["x-twilio-signature"]):
            raise AssertionError("the floor's signature check failed")
        for method, call_params in plan:
            try:
                method(**call_params)
            except Exception as exc:  # the recorded answer is an error (a conditional check)
                if not hasattr(exc, "response"):
                    raise
        return render() if render is not None else None

    return floor


def record_route(
    name: str,
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    event: dict[str, Any],
    recorder: Recorder,
) -> tuple[dict[str, Any], list[Recorded]]:
    recorder.calls = []
    recorder.active = True
    try:
        answer = handler(copy.deepcopy(event), Context())
    finally:
        recorder.active = False
    if answer.get("statusCode") != EXPECTED_STATUS[name]:
        raise AssertionError(f"{name}: expected {EXPECTED_STATUS[name]}, got {json.dumps(answer)[:300]}")
    return answer, list(recorder.calls)


def prepare(handlers: dict[str, Any], media_api_base: str | None) -> dict[str, dict[str, Any]]:
    """Two typical calls under moto; for the second one: each route's request, the handler's
    answer, and the AWS requests it made."""
    recorder: Recorder | None = None
    prepared: dict[str, dict[str, Any]] = {}
    for attempt in range(2):
        call = TypicalCall(media_api_base=media_api_base)
        for name in ROUTES:
            event = route_event(call, name)
            if attempt == 0:
                answer = handlers[name](copy.deepcopy(event), Context())
                if answer.get("statusCode") != EXPECTED_STATUS[name]:
                    raise AssertionError(
                        f"{name}: expected {EXPECTED_STATUS[name]}, got {json.dumps(answer)[:300]}"
                    )
            else:
                recorder = recorder or Recorder(handler_clients())
                answer, calls = record_route(name, handlers[name], event, recorder)
                prepared[name] = {"event": event, "answer": answer, "calls": calls}
            if name == "connect":
                call.answered(answer_body(answer))
    return prepared


def route_event(call: TypicalCall, name: str) -> dict[str, Any]:
    if name == "connect":
        return call.connect_event()
    if name == "status":
        return call.status_event(1, "call-initiated")
    if name == "recording":
        return call.recording_event("completed")
    if name == "action":
        return call.action_event()
    return call.fallback_event()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result_path = Path(sys.argv[2])
    iterations, warmup = int(spec["iterations"]), int(spec["warmup"])

    import boto3
    from botocore.stub import Stubber
    from moto import mock_aws

    from voicedev import template_resources
    from voicedev.twilio_signing import DEV_AUTH_TOKEN

    with mock_aws():
        session = boto3.session.Session()
        template_resources.create_table(session.client("dynamodb"))
        template_resources.create_queues(session.client("sqs"))
        secret = session.client("secretsmanager").create_secret(Name="bench", SecretString=DEV_AUTH_TOKEN)
        ssm_name = spec["flow_parameter"]
        flows = (template_resources.PROJECT_ROOT / "config" / "flows.example.json").read_text(
            encoding="utf-8"
        )
        session.client("ssm").put_parameter(Name=ssm_name, Value=flows, Type="String")
        import os

        os.environ["TWILIO_AUTH_TOKEN_SECRET"] = secret["ARN"]
        os.environ["RECORDINGS_QUEUE_URL"] = session.client("sqs").get_queue_url(QueueName="RecordingsQueue")[
            "QueueUrl"
        ]
        handlers = {name: load_handler(name) for name in ROUTES}
        prepared = prepare(handlers, None)
        clients = handler_clients()
        floor_session = boto3.session.Session()
        floor_clients = {
            key: floor_session.client(client.meta.service_model.service_name)
            for key, client in clients.items()
        }
        stubbers = {key: Stubber(client) for key, client in clients.items()}
        floor_stubbers = {key: Stubber(client) for key, client in floor_clients.items()}
        for stubber in [*stubbers.values(), *floor_stubbers.values()]:
            stubber.activate()

        results: dict[str, Any] = {}
        for name in ROUTES:
            item = prepared[name]
            event, calls, answer = item["event"], item["calls"], item["answer"]
            twiml = answer_body(answer) if name in TWIML_ROUTES else None
            floor = make_floor(event, DEV_AUTH_TOKEN, calls, floor_clients, twiml)
            handler = handlers[name]
            same_twiml = twiml is None or twiml_builder(twiml)() == twiml
            handler_ms: list[float] = []
            floor_ms: list[float] = []
            profile = cProfile.Profile() if spec.get("profile_dir") else None
            for index in range(warmup + iterations):
                for call in calls:
                    queue(stubbers[call.client], call)
                request = copy.deepcopy(event)
                started = time.perf_counter()
                if profile is not None and index >= warmup:
                    profile.enable()
                got = handler(request, Context())
                if profile is not None and index >= warmup:
                    profile.disable()
                elapsed = (time.perf_counter() - started) * 1000
                if got.get("statusCode") != answer.get("statusCode"):
                    raise AssertionError(f"{name}: answered {json.dumps(got)[:300]}")
                for stubber in stubbers.values():
                    stubber.assert_no_pending_responses()
                for call in calls:
                    queue(floor_stubbers[call.client], call)
                started = time.perf_counter()
                floor()
                floor_elapsed = (time.perf_counter() - started) * 1000
                for stubber in floor_stubbers.values():
                    stubber.assert_no_pending_responses()
                if index >= warmup:
                    handler_ms.append(elapsed)
                    floor_ms.append(floor_elapsed)
            if profile is not None:
                path = Path(spec["profile_dir"]) / f"warm-{name}.prof"
                profile.dump_stats(str(path))
            results[name] = {
                "handler_ms": handler_ms,
                "floor_ms": floor_ms,
                "aws_calls": [f"{call.client}.{call.operation}" for call in calls],
                "same_twiml": same_twiml,
            }
    result_path.write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
