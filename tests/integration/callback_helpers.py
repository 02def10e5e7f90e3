"""Helpers for the status and recording callback tests: open a session through the connect
handler, deliver signed callbacks to the URLs its TwiML hands Twilio, read what the functions
emitted (EMF metrics, JSON logs), and make an AWS call fail the way a real outage does."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from moto.core.botocore_stubber import MockRawResponse
from voice_webhooks.runtime.observability import logger
from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event, random_sid

from tests.support import body_text, emitted_metrics

FIXTURES = Path(__file__).parent / "fixtures"
BASE_URL = f"https://{SAMPLE_API_DOMAIN}"
FRONTLINE_NUMBER = "+15550100001"  # config/flows.example.json: a conversation flow that records

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Session:
    session_id: str
    call_sid: str
    status_url: str
    recording_url: str


def open_session(invoke: Invoke, call_sid: str | None = None) -> Session:
    """Answer a call on the Frontline number and take the callback URLs from its TwiML, without
    the fragment (connection overrides are read by Twilio and never sent)."""
    call_sid = call_sid or random_sid("CA")
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": call_sid,
        "From": "+15550109999",
        "To": FRONTLINE_NUMBER,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    response = invoke("connect", http_api_event("POST", f"{BASE_URL}/voice/connect", params))
    assert response["statusCode"] == 200, body_text(response)
    conversation = ElementTree.fromstring(body_text(response)).find("./Connect/Conversation")
    assert conversation is not None
    status_url = conversation.attrib["statusCallback"].split("#", 1)[0]
    recording_url = conversation.attrib["recordingStatusCallback"].split("#", 1)[0]
    session_id = status_url.split("session=", 1)[1]
    return Session(session_id, call_sid, status_url, recording_url)


def session_url(route: str, session_id: str) -> str:
    return f"{BASE_URL}{route}?session={session_id}"


def deliver(invoke: Invoke, function: str, url: str, params: Mapping[str, str], method: str = "POST") -> int:
    response = invoke(function, http_api_event(method, url, params))
    return int(response["statusCode"])


@dataclass
class Emitted:
    metrics: Counter[str]
    logs: list[dict[str, Any]]

    def at(self, level: str) -> list[dict[str, Any]]:
        return [log for log in self.logs if log.get("level") == level]


class Output:
    """What the functions emit: EMF metric documents (printed to stdout) and the Powertools
    logger's JSON records (its handler is pointed at a buffer for the test)."""

    def __init__(self, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capfd = capfd
        self.buffer = io.StringIO()
        self.read_to = 0
        monkeypatch.setattr(logger.registered_handler, "stream", self.buffer)
        capfd.readouterr()

    def read(self) -> Emitted:
        """Everything emitted since the previous read."""
        totals = emitted_metrics(self.capfd.readouterr().out)
        metrics: Counter[str] = Counter({name: int(total) for name, total in totals.items()})
        text = self.buffer.getvalue()
        logs = [json.loads(line) for line in text[self.read_to :].splitlines() if line.startswith("{")]
        self.read_to = len(text)
        return Emitted(metrics, logs)


@contextmanager
def failing(
    client: Any, operation: str, *, code: str | None = None, status: int = 500, calls: int = 1, after: int = 0
) -> Iterator[list[str]]:
    """Let `after` calls of `operation` through, then make the next `calls` fail before they
    reach moto.

    code=None: the endpoint is unreachable; every HTTP attempt raises a connection error, which
    botocore retries (all attempts fail) and then raises. code="...": the call comes back with
    that AWS error (a ClientError, as after botocore's retries). Yields one entry per failed
    HTTP attempt (unreachable) or per failed call (error code)."""
    failures: list[str] = []
    state = {"seen": 0, "active": False}
    service_id = client.meta.service_model.service_id.hyphenize()
    tag = f"test-failure-{operation}-{id(failures)}"

    def before_call(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        state["seen"] += 1
        state["active"] = after < state["seen"] <= after + calls
        if not state["active"]:
            return None
        if code is None:
            return None  # fail in before_send, attempt by attempt
        failures.append(operation)
        http = AWSResponse(
            "https://injected.invalid/", status, {"x-amzn-requestid": "injected"}, MockRawResponse(b"")
        )
        error = {
            "Error": {"Code": code, "Message": "injected failure"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "injected"},
        }
        return http, error

    def before_send(request: Any, **_: Any) -> None:
        if state["active"]:
            failures.append(operation)
            raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register_first(
        f"before-call.{service_id}.{operation}", before_call, unique_id=tag + "c"
    )
    client.meta.events.register_first(
        f"before-send.{service_id}.{operation}", before_send, unique_id=tag + "s"
    )
    try:
        yield failures
    finally:
        client.meta.events.unregister(f"before-call.{service_id}.{operation}", unique_id=tag + "c")
        client.meta.events.unregister(f"before-send.{service_id}.{operation}", unique_id=tag + "s")


def skip_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore backs off between retries; the tests need the retries, not the waiting."""
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _seconds: None)
