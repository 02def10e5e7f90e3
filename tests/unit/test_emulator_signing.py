"""The emulator signs exactly as twilio-python's RequestValidator expects: every request it sends
to a loopback server is validated there, POST and GET, with blank values, a query string already
in the URL, relative URLs and connection-override fragments.

`FakeTwilioApp` (a tiny loopback HTTP server answering canned TwiML and recording every request as
it arrived on the wire) is shared with the other emulator unit tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator
from voicedev.emulator.client import TwilioClient, signature
from voicedev.emulator.engine import EmulatorConfig, run_call
from voicedev.emulator.scenarios import get
from voicedev.emulator.twiml import Target

TOKEN = "unit_test_token_0123456789abcdef"
ACCOUNT = "AC" + "1" * 32


class Multi(dict[str, str]):
    """Received form parameters as RequestValidator reads them (`getlist` for repeated names)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


@dataclass
class Received:
    method: str
    target: str
    """The request target exactly as sent: path and raw query string."""
    headers: dict[str, str]
    body: str
    base_url: str

    @property
    def url(self) -> str:
        return self.base_url + self.target

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body, keep_blank_values=True)

    @property
    def params(self) -> dict[str, str]:
        """Twilio's parameters wherever the method put them (for GET: after ours in the query)."""
        return dict(self.form if self.method == "POST" else self.query)

    @property
    def signature(self) -> str:
        return self.headers["x-twilio-signature"]

    def valid_for(self, token: str) -> bool:
        validator = RequestValidator(token)
        if self.method == "POST":
            return bool(validator.validate(self.url, Multi(self.form), self.signature))
        return bool(validator.validate(self.url, {}, self.signature))


Responder = str | int | Callable[[Received], tuple[int, str, str]]


@dataclass
class FakeTwilioApp:
    """Routes by path: a TwiML string (200 text/xml), a status code (empty body), or a function."""

    routes: dict[str, Responder] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> tuple[int, str, str]:
        with self._lock:
            self.received.append(request)
        responder = self.routes.get(request.path, 404)
        if isinstance(responder, str):
            return 200, "text/xml", responder
        if isinstance(responder, int):
            return responder, "text/plain", ""
        return responder(request)

    def on(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]


@pytest.fixture
def fake_app() -> Iterator[FakeTwilioApp]:
    app = FakeTwilioApp()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("ascii") if length else ""
            request = Received(
                method=self.command,
                target=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                base_url=app.base_url,
            )
            status, content_type, text = app.answer(request)
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    app.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()


def config_for(app: FakeTwilioApp, **overrides: object) -> EmulatorConfig:
    # The call's own call-progress stream is off unless a test asks for it: most tests look at one
    # TwiML noun's callbacks in isolation (tests/unit/test_emulator_engine.py covers the stream).
    values: dict[str, object] = {
        "base_url": app.base_url,
        "auth_token": TOKEN,
        "account_sid": ACCOUNT,
        "call_status": False,
    }
    values.update(overrides)
    return EmulatorConfig(**values)  # type: ignore[arg-type]


# --- the client alone ---------------------------------------------------------------------------------


def test_post_is_signed_over_the_url_with_its_query_and_every_parameter_including_blank_ones(
    fake_app: FakeTwilioApp,
) -> None:
    # Given a URL that already carries a query string, and parameters with blank values
    fake_app.routes["/voice/status"] = 204
    params = [("AccountSid", ACCOUNT), ("FromCity", ""), ("Status", "call-completed"), ("ToZip", "")]

    # When the client POSTs them
    sent = TwilioClient(TOKEN).send("POST", fake_app.base_url + "/voice/status?session=abc", params)

    # Then the server got the form with the blanks, and RequestValidator accepts the signature
    (request,) = fake_app.received
    assert sent.response.status == 204
    assert request.target == "/voice/status?session=abc"
    assert request.form == params
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.valid_for(TOKEN)
    # And the blank values are part of what was signed: dropping them breaks the signature
    without_blanks = Multi([(name, value) for name, value in request.form if value])
    assert not RequestValidator(TOKEN).validate(request.url, without_blanks, request.signature)


def test_get_appends_the_parameters_after_the_existing_query_and_signs_the_full_url(
    fake_app: FakeTwilioApp,
) -> None:
    # Given a GET callback URL with our own query parameter
    fake_app.routes["/voice/status"] = 204
    params = [("Status", "call-ringing"), ("FromCity", ""), ("Timestamp", "Sat, 07 May 2022 00:58:19 +0000")]

    # When the client GETs it
    TwilioClient(TOKEN).send("GET", fake_app.base_url + "/voice/status?session=abc", params)

    # Then Twilio's parameters follow ours, unsorted, spaces as '+', blank values kept, no body
    (request,) = fake_app.received
    assert request.target == (
        "/voice/status?session=abc&Status=call-ringing&FromCity=&Timestamp=Sat%2C+07+May+2022+00%3A58%3A19+%2B0000"
    )
    assert request.body == ""
    assert "content-type" not in request.headers
    # And the signature covers the full URL with no POST parameters
    assert request.valid_for(TOKEN)
    assert not RequestValidator(TOKEN).validate(
        fake_app.base_url + "/voice/status?session=abc", {}, request.signature
    )


def test_a_wrong_token_or_a_changed_parameter_fails_validation(fake_app: FakeTwilioApp) -> None:
    # Given a signed POST as received
    fake_app.routes["/voice/action"] = "<Response/>"
    TwilioClient(TOKEN).send("POST", fake_app.base_url + "/voice/action", [("Result", "session-success")])
    (request,) = fake_app.received

    # Then the validator refuses it under another token, or with a parameter changed
    assert request.valid_for(TOKEN)
    assert not request.valid_for("another_token")
    tampered = Multi([("Result", "internal-error")])
    assert not RequestValidator(TOKEN).validate(request.url, tampered, request.signature)


def test_signature_helper_matches_request_validator_for_repeated_names() -> None:
    url = "https://example.com/voice/action?session=a%20b"
    pairs = [("Digits", "1"), ("Digits", "2"), ("Blank", "")]
    assert RequestValidator(TOKEN).validate(url, Multi(pairs), signature(TOKEN, url, pairs))


def test_retries_follow_the_fragment_overrides_with_the_same_idempotency_token(
    fake_app: FakeTwilioApp,
) -> None:
    # Given a callback that fails twice with 500, then succeeds, and rc=3&rp=5xx in its fragment
    answers = iter([500, 500, 204])
    fake_app.routes["/voice/status"] = lambda request: (next(answers), "text/plain", "")
    target = Target(
        url=fake_app.base_url + "/voice/status?session=s", method="POST", overrides={"rc": "3", "rp": "5xx"}
    )

    # When it is sent
    attempts = TwilioClient(TOKEN).send_with_retries(target, [("Status", "call-initiated")])

    # Then Twilio's behaviour: three attempts, one idempotency token, each signed
    assert [attempt.response.status for attempt in attempts] == [500, 500, 204]
    assert [attempt.attempt for attempt in attempts] == [1, 2, 3]
    tokens = {request.headers["i-twilio-idempotency-token"] for request in fake_app.received}
    assert len(tokens) == 1
    assert all(request.valid_for(TOKEN) for request in fake_app.received)


def test_the_default_policy_does_not_retry_a_5xx(fake_app: FakeTwilioApp) -> None:
    fake_app.routes["/voice/status"] = 500
    target = Target(url=fake_app.base_url + "/voice/status", method="POST")

    attempts = TwilioClient(TOKEN).send_with_retries(target, [("Status", "call-initiated")])

    assert [attempt.response.status for attempt in attempts] == [500]


# --- whole calls ------------------------------------------------------------------------------------

CONVERSATION_TWIML = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Connect action="action?session=s1#rc=2&amp;rp=all" method="GET">
<Conversation serviceInstanceSid="IS00000000000000000000000000000000" record="record-from-answer"
 statusCallback="/voice/status?session=s1#rc=3" statusCallbackMethod="GET"
 statusCallbackEvent="call-initiated call-ringing call-answered call-completed"
 recordingStatusCallback="{base}/voice/recording?session=s1" recordingStatusCallbackMethod="POST"
 recordingStatusCallbackEvent="in-progress completed"/></Connect></Response>"""


def test_every_request_of_a_call_validates_whatever_its_method_url_or_fragment(
    fake_app: FakeTwilioApp,
) -> None:
    # Given a server whose connect TwiML mixes GET and POST callbacks, relative URLs and fragments
    fake_app.routes["/voice/connect"] = CONVERSATION_TWIML.replace("{base}", fake_app.base_url)
    fake_app.routes["/voice/action"] = "<Response><Hangup/></Response>"
    fake_app.routes["/voice/status"] = 204
    fake_app.routes["/voice/recording"] = 204

    # When the emulator plays a whole answered call
    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    # Then every request validates with RequestValidator, and none carries a fragment
    assert result.ok, result.problems
    assert [request.path for request in fake_app.received] == [
        "/voice/connect",
        "/voice/status",
        "/voice/status",
        "/voice/status",
        "/voice/recording",
        "/voice/status",
        "/voice/action",
        "/voice/recording",
    ]
    for request in fake_app.received:
        assert request.valid_for(TOKEN), request.target
        assert "#" not in request.target
    # And the methods are the TwiML's: GET status callbacks and action, POST recordings
    assert {r.method for r in fake_app.on("/voice/status")} == {"GET"}
    assert {r.method for r in fake_app.on("/voice/action")} == {"GET"}
    assert {r.method for r in fake_app.on("/voice/recording")} == {"POST"}
    # And GET parameters follow the URL's own query (the relative action resolved against /voice/connect)
    (action,) = fake_app.on("/voice/action")
    assert action.target.startswith("/voice/action?session=s1&AccountSid=")
    assert action.query[0] == ("session", "s1")


def test_the_connect_request_carries_twilios_standard_parameters_with_blank_geography(
    fake_app: FakeTwilioApp,
) -> None:
    fake_app.routes["/voice/connect"] = "<Response><Hangup/></Response>"

    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    (request,) = fake_app.received
    params = request.params
    assert params["CallSid"] == result.call_sid
    assert params["CallSid"].startswith("CA00000000") and len(params["CallSid"]) == 34
    assert params["AccountSid"] == ACCOUNT
    assert params["From"] == params["Caller"] == "+15005550006"
    assert params["To"] == params["Called"] == "+15550100001"
    assert params["Direction"] == "inbound"
    assert params["CallStatus"] == "ringing"
    assert params["ApiVersion"] == "2010-04-01"
    for prefix in ("From", "To", "Caller", "Called"):
        assert params[f"{prefix}City"] == ""
        assert params[f"{prefix}State"] == ""
        assert params[f"{prefix}Zip"] == ""
        assert params[f"{prefix}Country"] == "US"
    assert request.valid_for(TOKEN)
    assert request.headers["user-agent"] == "TwilioProxy/1.1"


def test_connect_by_get_signs_the_voice_url_with_the_parameters_in_its_query(fake_app: FakeTwilioApp) -> None:
    fake_app.routes["/voice/connect"] = "<Response><Hangup/></Response>"

    run_call(config_for(fake_app, connect_method="GET"), get("worker-answers"), seed=1)

    (request,) = fake_app.received
    assert request.method == "GET"
    assert dict(request.query)["CallStatus"] == "ringing"
    assert request.valid_for(TOKEN)
