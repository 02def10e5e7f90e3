"""/voice/action requests as Twilio sends them: which step a request is for (told apart by the
request itself, never by a guess), its parsed model, the fingerprint that tells a repeated
delivery from a different request, and HandoffData read defensively (see action_decisions.py
for the routing and action_answer.py for the I/O)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from voice_webhooks.callbacks.models import (
    ConversationActionRequest,
    DialCallStatus,
    RelayActionRequest,
    parse_params,
)
from voice_webhooks.edge.request import WebhookRequest
from voice_webhooks.runtime.observability import log_safe

Kind = Literal["conversation", "relay"]

# HandoffData is written by an AI application: untrusted, and possibly large. Bigger than this is
# refused unread (no hand-off), like invalid JSON.
MAX_HANDOFF_BYTES = 8 * 1024
HANDOFF_TARGET_KEY = "target"
MAX_LOGGED_KEYS = 20
# The <Dial> DialCallStatus values that mean the human was reached ("answered" is <Dial>'s own value).
DIAL_REACHED = frozenset({DialCallStatus.COMPLETED.value, "answered"})


class Step(StrEnum):
    CONNECT = "connect"
    DIAL = "dial"
    RECORD = "record"
    OTHER = "other"


@dataclass(frozen=True)
class ActionRequest:
    """A parsed action request: its step, its model, and a fingerprint of what Twilio sent."""

    step: Step
    model: ConversationActionRequest | RelayActionRequest
    fingerprint: str

    @property
    def kind(self) -> Kind | None:
        if self.step is not Step.CONNECT:
            return None
        return "relay" if isinstance(self.model, RelayActionRequest) else "conversation"


def fingerprint(pairs: tuple[tuple[str, str], ...]) -> str:
    """Same parameters, same fingerprint: tells a repeated delivery from a different request."""
    canonical = "\n".join(f"{name}={value}" for name, value in sorted(pairs))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def classify(params: Mapping[str, str]) -> Step:
    if params.get("SessionStatus") or params.get("Result"):
        return Step.CONNECT
    if params.get("DialCallStatus"):
        return Step.DIAL
    if params.get("RecordingSid") or params.get("RecordingUrl"):
        return Step.RECORD
    return Step.OTHER


def read_action_request(webhook: WebhookRequest) -> ActionRequest:
    """Parse the request (a missing or invalid field is a 400, like on every route)."""
    params = webhook.params
    step = classify(params)
    model: ConversationActionRequest | RelayActionRequest
    if params.get("SessionStatus"):
        model = parse_params(RelayActionRequest, params)
    else:
        model = parse_params(ConversationActionRequest, params)
    return ActionRequest(step=step, model=model, fingerprint=fingerprint(params.pairs))


# ---------------------------------------------------------------------------------------------------
# HandoffData


@dataclass(frozen=True)
class Handoff:
    """What HandoffData asked for. Its content is never logged nor stored: only its size, its
    top-level keys and the target key it named (when that key is one of ours)."""

    size: int
    valid: bool
    keys: tuple[str, ...] = ()
    target: str | None = None
    has_target: bool = False
    problem: str | None = None


def parse_handoff(raw: str) -> Handoff:
    size = len(raw.encode("utf-8"))
    if size > MAX_HANDOFF_BYTES:
        return Handoff(size=size, valid=False, problem=f"over {MAX_HANDOFF_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return Handoff(size=size, valid=False, problem="not valid JSON")
    if not isinstance(data, dict):
        return Handoff(size=size, valid=False, problem=f"a JSON {type(data).__name__}, not an object")
    # Key names are written by the AI application: reduced unless they are plain words.
    keys = tuple(sorted(log_safe(str(key)[:64]) for key in data)[:MAX_LOGGED_KEYS])
    if HANDOFF_TARGET_KEY not in data:
        return Handoff(size=size, valid=True, keys=keys)
    target = data[HANDOFF_TARGET_KEY]
    return Handoff(
        size=size, valid=True, keys=keys, target=target if isinstance(target, str) else None, has_target=True
    )


def unknown_values(request: ActionRequest) -> dict[str, str]:
    """Enumerated fields holding a value this version does not know ("answered" is a <Dial>
    value, known on the dial step)."""
    unknown = request.model.unknown_values()
    if request.step is Step.DIAL and unknown.get("DialCallStatus") in DIAL_REACHED:
        unknown.pop("DialCallStatus")
    return unknown
