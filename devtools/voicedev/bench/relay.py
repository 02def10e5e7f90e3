"""Relay latency through the local mode: from a `prompt` frame (last: true) to the agent's first
`text` token, with the scripted agent (config/flows.example.json's `concierge` flow), median and p99 over
N prompts on one WebSocket. The scripted agent takes no time to think, so this is what the stack
adds to a model's own time: the local WebSocket API's event, the $default handler (parse, store the
turn, run the agent) and the @connections post back.

The floor: the same prompts through the same local WebSocket API to a handler that posts one token
back at once (relay_floor/app.py): the path's own cost. The figure runs only when template.yaml has
the WebSocket API (the relay agent's handlers); otherwise the section says why, and shows the floor."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from voicedev.bench.report import Section, Table
from voicedev.bench.stats import Spread, format_ratio, format_value, spread
from voicedev.emulator import params as p
from voicedev.emulator.relay import open_socket, setup_frame
from voicedev.emulator.scenarios import AGENT_LINE
from voicedev.local_api import FunctionSpec
from voicedev.local_ws import LocalWebSocketApi, WebSocketApiSpec, template_has_websocket_api
from voicedev.scoped_environment import scoped_environment

PROMPT = "What are your opening hours?"
RECV_TIMEOUT = 15.0
# After the last token, how long the agent may still send a frame of the same answer.
QUIET_SECONDS = 0.2
# The first prompts create the handlers' clients (a cold start's work): not counted.
WARMUP_PROMPTS = 3


@dataclass
class RelayLatency:
    prompts: int
    samples_ms: list[float] = field(default_factory=list)
    """prompt frame sent -> first text token received, one per prompt answered."""
    missing: int = 0
    """Prompts with no text token within RECV_TIMEOUT."""
    skipped: str | None = None
    """Why nothing was measured (no WebSocket API in template.yaml)."""
    floor_ms: list[float] = field(default_factory=list)
    """The same, to a handler that answers one token at once (the path's own cost)."""

    @property
    def spread(self) -> Spread:
        return spread(self.samples_ms, 0.99)

    @property
    def floor_spread(self) -> Spread:
        return spread(self.floor_ms, 0.99)

    @property
    def median_ms(self) -> float:
        return self.spread.median

    @property
    def p99_ms(self) -> float:
        return self.spread.upper

    @property
    def ratio(self) -> float:
        floor = self.floor_spread.median
        return self.median_ms / floor if floor > 0 else float("nan")


def _row(figure: str, measured: Spread) -> tuple[str, str, str, str]:
    median, upper = format_value(measured.median, "ms"), format_value(measured.upper, "ms")
    return (figure, median, upper, str(measured.count))


def section(result: RelayLatency) -> Section:
    intro = (
        "From a `prompt` frame to the first `text` token, through the local mode's WebSocket API "
        "with the scripted agent (no model time): the overhead the stack adds per turn."
    )
    rows = []
    if result.skipped is None:
        rows.append(_row("prompt -> first text token (scripted agent)", result.spread))
    if result.floor_ms:
        rows.append(_row("floor: one token posted back at once", result.floor_spread))
    table = Table(headers=("figure", "median", "p99", "prompts"), rows=tuple(rows))
    notes = [
        "one WebSocket, prompts one after another (each answer read to its last token first), "
        f"after {WARMUP_PROMPTS} uncounted prompts (the handlers' clients are created then)"
    ]
    if result.skipped is not None:
        notes.append(f"agent not measured: {result.skipped}")
    elif result.floor_ms:
        notes.append(f"the agent's median is {format_ratio(result.ratio)} the floor's")
    if result.missing:
        notes.append(
            f"{result.missing} of {result.prompts} prompts got no text token within {RECV_TIMEOUT:.0f} s"
        )
    return Section(title="Relay latency", intro=intro, tables=[table] if rows else [], notes=notes)


def _read_answer(ws: object, sent_at: float) -> float | None:
    """Milliseconds to the first token; reads the whole answer (to its last token)."""
    from websockets.sync.client import ClientConnection

    assert isinstance(ws, ClientConnection)
    first: float | None = None
    timeout = RECV_TIMEOUT
    while True:
        try:
            frame = json.loads(ws.recv(timeout=timeout))
        except TimeoutError:
            return first
        if frame.get("type") == "text":
            if first is None:
                first = (time.perf_counter() - sent_at) * 1000
            if frame.get("last") is True:
                timeout = QUIET_SECONDS
        elif frame.get("type") == "end":
            return first


def _silent(_: object) -> None:
    """The local mode's request lines would interleave with the bench's output."""


def _prompts(ws: object, prompts: int, result: RelayLatency, samples: list[float]) -> None:
    from websockets.sync.client import ClientConnection

    assert isinstance(ws, ClientConnection)
    for index in range(WARMUP_PROMPTS + prompts):
        sent_at = time.perf_counter()
        ws.send(json.dumps({"type": "prompt", "voicePrompt": PROMPT, "lang": "en-US", "last": True}))
        first = _read_answer(ws, sent_at)
        if index < WARMUP_PROMPTS:
            continue
        if first is None:
            result.missing += 1
        else:
            samples.append(first)


FLOOR = FunctionSpec(
    name="RelayLatencyFloor",
    code_uri=Path(__file__).resolve().parent / "relay_floor",
    handler="app.lambda_handler",
    timeout_seconds=29,
)


def run_floor(prompts: int, result: RelayLatency) -> None:
    """The floor, through a local WebSocket API of its own (no $connect route: every upgrade opens)."""
    from voicedev.local_aws import DUMMY_CREDENTIALS
    from voicedev.twilio_signing import DEV_AUTH_TOKEN

    api = LocalWebSocketApi(WebSocketApiSpec("RelayLatencyFloorApi", "relay", "", {"$default": FLOOR}), 0, 0)
    api.bind()
    credentials = {
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": "us-east-1",
    }
    with scoped_environment({**api.environment(), **credentials}):
        api.start()
        try:
            with open_socket(api.url + "?session=floor&attempt=1", DEV_AUTH_TOKEN, RECV_TIMEOUT) as ws:
                _prompts(ws, prompts, result, result.floor_ms)
        finally:
            api.stop()


def run(prompts: int, progress: Callable[[str], None] = _silent) -> RelayLatency:
    result = RelayLatency(prompts=prompts)
    progress(f"relay latency: floor, {prompts} prompts")
    run_floor(prompts, result)
    if not template_has_websocket_api():
        result.skipped = "template.yaml has no WebSocket API (the relay agent's handlers) yet"
        return result
    from voicedev.local_client import twilio_request
    from voicedev.local_mode import LocalMode
    from voicedev.local_settings import DEFAULT_FLOW_CONFIG, LocalSettings
    from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

    settings = LocalSettings(
        api_port=0,
        aws_port=0,
        ws_port=0,
        ws_management_port=0,
        flow_config=DEFAULT_FLOW_CONFIG,
    )
    progress(f"relay latency: {prompts} prompts through the local mode")
    with LocalMode(settings, on_request=_silent, on_ws_event=_silent) as local:
        call = p.CallIdentity(
            account_sid=DEV_ACCOUNT_SID,
            call_sid=p.emulated_call_sid(),
            from_=p.TEST_CUSTOMER_NUMBER,
            to=AGENT_LINE,
        )
        answer = twilio_request("POST", local.webhook_urls()["/voice/connect"], call.standard("ringing"))
        if answer.status != 200:
            raise RuntimeError(f"/voice/connect answered {answer.status}: {answer.body[:200]}")
        relay = ElementTree.fromstring(answer.body).find("Connect/ConversationRelay")  # noqa: S314 - our own
        if relay is None or not relay.get("url"):
            raise RuntimeError("the relay line's connect TwiML has no <ConversationRelay url>")
        with open_socket(str(relay.get("url")), DEV_AUTH_TOKEN, RECV_TIMEOUT) as ws:
            ws.send(json.dumps(setup_frame(call, p.sid("VX"), {})))
            _prompts(ws, prompts, result, result.samples_ms)
    return result
