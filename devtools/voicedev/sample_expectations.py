"""What each sample event in `events/` must answer and change: `events/<name>.expected.json`.

The promise of each event (docs/security.md#sample-events lists them) is written here once, by
case name, and `make events` writes it beside the event. Two runs check it, with the same code
(`differences`): tests/integration/test_sample_events.py, in process under moto, and
`make sam-local`, through the real `sam local` and the Lambda runtime in Docker.

An answer is its status code, its content type, the shape of its TwiML (each child of <Response>
with its own children's tags, e.g. `Connect/Conversation`; `[]` for an empty <Response/>) and
texts the body must contain. Effects are kept to what survives a change of the data model: whether
the events table changed, and how many messages the recordings queue received."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

from pydantic import BaseModel, ConfigDict, Field


class ExpectedAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int
    content_type: str = "text/xml"
    twiml: list[str] | None = None
    """The shape of the TwiML (`twiml_shape`); None when the body is not TwiML."""
    body_contains: list[str] = Field(default_factory=list)


class ExpectedEffects(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table_changed: bool
    """Whether EventsTable holds anything new or different after the event."""
    queued: int = 0
    """Messages the event sent to RecordingsQueue."""


class Expected(BaseModel):
    """The content of `<name>.expected.json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: str
    function: str
    """The template's logical id of the function the event's route reaches."""
    description: str
    seed: str | None = None
    """What is written before the event (the prior step it needs), or None."""
    answer: ExpectedAnswer
    effects: ExpectedEffects

    def summary(self) -> str:
        """One line for a table: status, then shape or body, then effects."""
        return summarize(
            self.answer.status,
            self.answer.twiml,
            self.answer.body_contains,
            self.effects.table_changed,
            self.effects.queued,
        )


def summarize(
    status: int, twiml: Sequence[str] | None, body: Sequence[str], changed: bool, queued: int
) -> str:
    what = f"<{' '.join(twiml)}>" if twiml else ("<Response/>" if twiml is not None else "")
    if twiml is None and body:
        what = repr(body[0])
    effects = ("table changed" if changed else "nothing written") + (f", {queued} queued" if queued else "")
    return " ".join(part for part in (str(status), what, f"({effects})") if part)


def twiml_shape(body: str) -> list[str]:
    """`<Response><Say/><Dial><Client/></Dial></Response>` -> ["Say", "Dial/Client"]."""
    root = ElementTree.fromstring(body)  # noqa: S314 - our own handler's answer
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    return [child.tag + "".join(f"/{grandchild.tag}" for grandchild in child) for child in root]


def _twiml(status: int, *shape: str, contains: Sequence[str] = ()) -> ExpectedAnswer:
    return ExpectedAnswer(status=status, twiml=list(shape), body_contains=list(contains))


def _text(status: int, *contains: str) -> ExpectedAnswer:
    return ExpectedAnswer(status=status, content_type="text/plain", body_contains=list(contains))


_NOTHING = ExpectedEffects(table_changed=False)
_WRITES = ExpectedEffects(table_changed=True)
_QUEUES = ExpectedEffects(table_changed=True, queued=1)

# By case name: (answer, effects). What the docs promise for each (docs/security.md#sample-events,
# docs/action-routing.md); the shapes follow config/flows.example.json.
PROMISES: Mapping[str, tuple[ExpectedAnswer, ExpectedEffects]] = {
    "connect-conversation": (_twiml(200, "Connect/Conversation"), _WRITES),
    "connect-relay": (_twiml(200, "Connect/ConversationRelay"), _WRITES),
    "connect-default-flow": (_twiml(200, "Connect/Conversation"), _WRITES),
    "connect-get": (_twiml(200, "Connect/Conversation"), _WRITES),
    "connect-unsigned": (_text(403, "missing X-Twilio-Signature"), _NOTHING),
    "connect-tampered": (_text(403, "invalid X-Twilio-Signature"), _NOTHING),
    "connect-other-account": (_text(403, "account not allowed"), _NOTHING),
    "fallback": (_twiml(200, "Say", "Hangup", contains=["We are sorry"]), _NOTHING),
    "fallback-unsigned": (_text(403, "missing X-Twilio-Signature"), _NOTHING),
    "status-call-answered": (_text(204), _WRITES),
    "status-call-completed-get": (_text(204), _WRITES),
    "status-missing-sequence-number": (_text(400, "SequenceNumber"), _NOTHING),
    "status-unsigned": (_text(403, "missing X-Twilio-Signature"), _NOTHING),
    "status-call-progress-inbound-completed": (_text(204), _WRITES),
    "status-call-progress-dialled-leg": (_text(204), _WRITES),
    "status-call-progress-outbound-ringing": (_text(204), _WRITES),
    "status-call-progress-outbound-answered": (_text(204), _WRITES),
    "status-call-progress-outbound-completed": (_text(204), _WRITES),
    "status-other-calls-session": (_text(403, "session belongs to another call"), _NOTHING),
    "recording-in-progress": (_text(204), _WRITES),
    "recording-completed": (_text(204), _QUEUES),
    "recording-voicemail-completed-get": (_text(204), _QUEUES),
    "recording-absent": (_text(204), _WRITES),
    "recording-missing-status": (_text(400, "RecordingStatus"), _NOTHING),
    "action-conversation-no-answer": (
        _twiml(200, "Say", "Record", "Say", "Hangup", contains=["leave a message"]),
        _WRITES,
    ),
    "action-conversation-session-success": (_twiml(200, "Hangup"), _WRITES),
    "action-conversation-get": (
        _twiml(200, "Say", "Record", "Say", "Hangup", contains=["leave a message"]),
        _WRITES,
    ),
    "action-voicemail-recorded": (_twiml(200, "Say", "Hangup", contains=["Thank you"]), _WRITES),
    "action-relay-completed": (_twiml(200), _WRITES),
    "action-relay-handoff": (_twiml(200, "Say", "Dial/Client", contains=["sales-desk"]), _WRITES),
    "action-relay-failed": (_twiml(200, "Say", "Dial/Number", contains=["something went wrong"]), _WRITES),
    "action-unsigned": (_text(403, "missing X-Twilio-Signature"), _NOTHING),
}


def expected_for(
    name: str, function: str, description: str, seed: str | None, expected_status: int
) -> Expected:
    """The expectation of case `name`; KeyError with a clear message when none is written."""
    if name not in PROMISES:
        raise KeyError(
            f"sample case {name!r} has no expected answer in voicedev.sample_expectations.PROMISES"
        )
    answer, effects = PROMISES[name]
    if answer.status != expected_status:
        raise ValueError(f"sample case {name!r}: status {expected_status} in CASES, {answer.status} here")
    return Expected(
        event=f"{name}.json",
        function=function,
        description=description,
        seed=seed,
        answer=answer,
        effects=effects,
    )


def load(text: str) -> Expected:
    return Expected.model_validate_json(text)


def dumps(expected: Expected) -> str:
    return json.dumps(expected.model_dump(mode="json"), indent=2) + "\n"


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def got_summary(response: Mapping[str, Any], changed: bool, queued: int) -> str:
    body = str(response.get("body") or "")
    content_type = (header(response.get("headers"), "Content-Type") or "").split(";")[0]
    twiml: list[str] | None = None
    if content_type == "text/xml":
        try:
            twiml = twiml_shape(body)
        except (ElementTree.ParseError, ValueError):
            twiml = None
    return summarize(int(response.get("statusCode", 0)), twiml, [body[:60]] if body else [], changed, queued)


def differences(expected: Expected, response: Mapping[str, Any], changed: bool, queued: int) -> list[str]:
    """How an answer (an API Gateway v2 response dict) and its effects differ from `expected`."""
    problems: list[str] = []
    answer = expected.answer
    status = response.get("statusCode")
    if status != answer.status:
        problems.append(f"status {status}, expected {answer.status}")
    content_type = (header(response.get("headers"), "Content-Type") or "").split(";")[0].strip()
    if content_type != answer.content_type:
        problems.append(f"Content-Type {content_type or '(none)'}, expected {answer.content_type}")
    body = str(response.get("body") or "")
    if response.get("isBase64Encoded"):
        problems.append("body is base64-encoded")
    if answer.twiml is not None:
        try:
            shape = twiml_shape(body)
        except (ElementTree.ParseError, ValueError) as exc:
            problems.append(f"body is not TwiML: {exc}")
        else:
            if shape != answer.twiml:
                problems.append(f"TwiML <{' '.join(shape)}>, expected <{' '.join(answer.twiml)}>")
    problems.extend(f"body lacks {text!r}" for text in answer.body_contains if text not in body)
    if changed != expected.effects.table_changed:
        problems.append("EventsTable changed" if changed else "EventsTable unchanged")
    if queued != expected.effects.queued:
        problems.append(f"{queued} message(s) queued, expected {expected.effects.queued}")
    return problems
