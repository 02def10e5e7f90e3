"""What /voice/action answers when a session ends: the `outcomes` key of a flow.

Every outcome is the same small instruction: an optional `message` (a `<Say>`), then one of
`hangup`, `voicemail` (a prompt and a `<Record>` whose callbacks come back to this API) or `dial`
(a `<Dial>` to one of the flow's own `targets`). Outcome keys are Twilio's own values (`Result`,
`SessionStatus`) plus a few of ours; see docs/action-routing.md for the routing table.

```json
"outcomes": {
  "targets": {"support": "+15550100100", "sales": "client:sales-desk"},
  "defaultTarget": "support",
  "voicemail": {"prompt": "Please leave a message after the tone.", "maxLength": 90},
  "on": {"no-existing-conversation": {"then": "voicemail"}, "failed": "dial"}
}
```

A value in `on` is merged over that outcome's default, so `{"then": "voicemail"}` keeps the
default message; a bare string is shorthand for `{"then": ...}`; `"message": null` (or `""`)
silences it.
This module must not import flow_config (flow_config imports it)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from voice_webhooks.flows.values import DocumentModel

Then = Literal["hangup", "voicemail", "dial"]
THEN_VALUES = list(get_args(Then))
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
# Numbers and booleans are JSON numbers and booleans, as the JSON Schema says ("10" is refused).
Seconds = Annotated[int, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]
# `null` or `""`: say nothing.
Message = Annotated[NonEmpty | None, BeforeValidator(lambda value: None if value == "" else value)]
TARGET_KEY = r"^[A-Za-z0-9_-]{1,64}$"
TargetKey = Annotated[str, StringConstraints(pattern=TARGET_KEY)]

APOLOGY = "We are sorry, something went wrong on our side."
VOICEMAIL_PROMPT = "Sorry, no one is available to take your call. Please leave a message after the tone."
VOICEMAIL_THANKS = "Thank you for your message. Goodbye."
VOICEMAIL_NO_MESSAGE = "We did not receive a message. Goodbye."
HANDOFF_MESSAGE = "Please hold while I connect you to a member of our team."

_E164_BODY = r"\+[1-9]\d{1,14}"
# Twilio Client identities: letters, digits and a few separators (no spaces, no markup).
_CLIENT_BODY = r"client:[A-Za-z0-9_.@-]{1,121}"
_SIP_BODY = r"sips?:[^\s@<>\"]+@[^\s<>\"]+"
_E164 = re.compile(f"^{_E164_BODY}$")
_CLIENT = re.compile(f"^{_CLIENT_BODY}$")
_SIP = re.compile(f"^{_SIP_BODY}$")
DIAL_ADDRESS = f"^(?:{_E164_BODY}|{_CLIENT_BODY}|{_SIP_BODY})$"
CALLER_ID = f"^(?:{_E164_BODY}|{_CLIENT_BODY})$"


def dial_target_kind(address: str) -> Literal["number", "client", "sip"]:
    """Which `<Dial>` noun an address needs; raises ValueError for anything else."""
    if _E164.match(address):
        return "number"
    if _CLIENT.match(address):
        return "client"
    if _SIP.match(address):
        return "sip"
    raise ValueError(
        "must be an E.164 number (+15551234567), client:<identity> or sip:<user>@<host>, "
        f"not {address[:40]!r}"
    )


def _dial_target(value: str) -> str:
    dial_target_kind(value)
    return value


def _caller_id(value: str) -> str:
    if not (_E164.match(value) or _CLIENT.match(value)):
        raise ValueError("must be an E.164 number or client:<identity>")
    return value


DialAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_dial_target),
    WithJsonSchema({"type": "string", "pattern": DIAL_ADDRESS}),
]


class SayOptions(DocumentModel):
    """`<Say>` attributes used for every message of this flow's action answers."""

    voice: NonEmpty | None = Field(None, description="<Say voice>, e.g. Polly.Joanna-Neural.")
    language: NonEmpty | None = Field(None, description="<Say language>, e.g. en-US.")


class VoicemailOptions(DocumentModel):
    """The voicemail: `<Say prompt>`, `<Record>` (callbacks to this API), and the closing words."""

    prompt: NonEmpty = Field(VOICEMAIL_PROMPT, description="Said before the recording starts.")
    thanks: NonEmpty = Field(
        VOICEMAIL_THANKS, description="Said when the recording has ended, before hanging up."
    )
    no_message: NonEmpty = Field(
        VOICEMAIL_NO_MESSAGE,
        description="Said when the caller recorded nothing (Twilio then skips the action request).",
    )
    max_length: Seconds = Field(120, ge=1, le=14400, description="<Record maxLength> in seconds.")
    timeout: Seconds | None = Field(None, ge=1, le=600, description="<Record timeout>: seconds of silence.")
    play_beep: StrictBool | None = Field(None, description="<Record playBeep> (Twilio default true).")
    finish_on_key: Annotated[str, StringConstraints(pattern=r"^[0-9*#]{1,12}$")] | None = Field(
        None, description="<Record finishOnKey> (Twilio default: any key)."
    )
    trim: Literal["trim-silence", "do-not-trim"] | None = Field(None, description="<Record trim>.")


class DialOptions(DocumentModel):
    """`<Dial>` attributes for hand-offs and `then: dial`."""

    timeout: Seconds | None = Field(None, ge=5, le=600, description="<Dial timeout>: seconds of ringing.")
    caller_id: (
        Annotated[str, AfterValidator(_caller_id), WithJsonSchema({"type": "string", "pattern": CALLER_ID})]
        | None
    ) = Field(None, description="<Dial callerId>: an E.164 number or client:<identity>.")
    time_limit: Seconds | None = Field(None, ge=1, le=14400, description="<Dial timeLimit> in seconds.")
    answer_on_bridge: StrictBool | None = Field(None, description="<Dial answerOnBridge>.")


class OutcomeAction(DocumentModel):
    """One outcome: an optional message, then hang up, take a voicemail, or dial a target."""

    message: Message = Field(None, description='<Say> before the next step; null or "" for none.')
    then: Then = Field("hangup", description="hangup | voicemail | dial.")
    target: TargetKey | None = Field(
        None, description="For then=dial: a key of `targets` (default: `defaultTarget`)."
    )


def _action(message: str | None, then: Then) -> dict[str, Any]:
    return {"message": message, "then": then}


# What an `on` value may be in the document: the object, or the `then` shorthand (a string).
_ON_VALUE_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "message": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": '<Say> before the next step; null or "" for none.',
                },
                "then": {"enum": THEN_VALUES, "description": "hangup | voicemail | dial."},
                "target": {
                    "type": "string",
                    "pattern": TARGET_KEY,
                    "description": "For then=dial: a key of `targets` (default: `defaultTarget`).",
                },
            },
        },
        {"enum": THEN_VALUES, "description": 'Shorthand for {"then": ...}: the default message stays.'},
    ]
}
OnValue = Annotated[OutcomeAction, WithJsonSchema(_ON_VALUE_SCHEMA)]


def _field(key: str, default: dict[str, Any], description: str) -> Any:
    return Field(default=OutcomeAction(**default), alias=key, description=description)


# Outcome keys shared by both kinds: the request a hand-off <Dial> makes when it ends.
DIAL_INCOMPLETE = "dial-incomplete"

CONVERSATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "session-success": _action(None, "hangup"),
    "dialed-call-incomplete": _action(None, "voicemail"),
    "no-other-participants": _action(None, "voicemail"),
    "no-existing-conversation": _action(
        "Sorry, we could not find an open conversation for your number. "
        "Please contact us another way. Goodbye.",
        "hangup",
    ),
    "invalid-conversation": _action(
        "This call could not be placed: the conversation was not found. Please check it in Frontline.",
        "hangup",
    ),
    "failed-create-conversation": _action(APOLOGY, "voicemail"),
    "internal-error": _action(APOLOGY, "voicemail"),
    "unknown": _action(APOLOGY, "voicemail"),
    "worker-initiated": _action("The customer could not be reached. Goodbye.", "hangup"),
    DIAL_INCOMPLETE: _action(None, "voicemail"),
}


def relay_defaults(has_target: bool) -> dict[str, dict[str, Any]]:
    """With a dial target configured, a hand-off or a failed session reaches a human; without one,
    the caller can leave a message."""
    human: Then = "dial" if has_target else "voicemail"
    return {
        "ended": _action(None, "hangup"),
        "handoff": _action(HANDOFF_MESSAGE if has_target else None, human),
        "failed": _action(APOLOGY, human),
        "unknown": _action(APOLOGY + " Goodbye.", "hangup"),
        DIAL_INCOMPLETE: _action(None, "voicemail"),
    }


class _On(DocumentModel):
    """Outcome key -> what to do. Keys are Twilio's values (hyphenated), not camelCase."""

    # Outcomes whose `then` is restricted (why: see the validators of the outcomes classes).
    only: ClassVar[dict[str, tuple[str, ...]]] = {DIAL_INCOMPLETE: ("hangup", "voicemail")}

    dial_incomplete: OnValue = _field(
        DIAL_INCOMPLETE,
        CONVERSATION_DEFAULTS[DIAL_INCOMPLETE],
        "A <Dial> to a target ended unanswered (busy, no-answer, failed, canceled). hangup | voicemail.",
    )

    def by_key(self) -> dict[str, OutcomeAction]:
        return {info.alias or name: getattr(self, name) for name, info in type(self).model_fields.items()}

    def get(self, key: str) -> OutcomeAction:
        return self.by_key()[key]


class ConversationOn(_On):
    only: ClassVar[dict[str, tuple[str, ...]]] = {
        **_On.only,
        # The caller is our own worker: a voicemail or a dial would make no sense.
        "invalid-conversation": ("hangup",),
        "worker-initiated": ("hangup",),
    }

    session_success: OnValue = _field(
        "session-success", CONVERSATION_DEFAULTS["session-success"], "Both parties talked; one hung up."
    )
    dialed_call_incomplete: OnValue = _field(
        "dialed-call-incomplete",
        CONVERSATION_DEFAULTS["dialed-call-incomplete"],
        "The worker did not answer (DialCallStatus no-answer, busy, failed, canceled).",
    )
    no_other_participants: OnValue = _field(
        "no-other-participants",
        CONVERSATION_DEFAULTS["no-other-participants"],
        "Frontline routing assigned no worker in time (also logged as a warning).",
    )
    no_existing_conversation: OnValue = _field(
        "no-existing-conversation",
        CONVERSATION_DEFAULTS["no-existing-conversation"],
        "Caller not in a conversation and inboundAutocreation is off.",
    )
    invalid_conversation: OnValue = _field(
        "invalid-conversation",
        CONVERSATION_DEFAULTS["invalid-conversation"],
        "Worker-initiated call with an invalid Conversation SID: a message to the worker. hangup only.",
    )
    failed_create_conversation: OnValue = _field(
        "failed-create-conversation",
        CONVERSATION_DEFAULTS["failed-create-conversation"],
        "Frontline could not create the conversation.",
    )
    internal_error: OnValue = _field(
        "internal-error", CONVERSATION_DEFAULTS["internal-error"], "Twilio internal error."
    )
    unknown: OnValue = _field(
        "unknown", CONVERSATION_DEFAULTS["unknown"], "A Result value Twilio added after this was written."
    )
    worker_initiated: OnValue = _field(
        "worker-initiated",
        CONVERSATION_DEFAULTS["worker-initiated"],
        "A worker's outbound call did not connect (any Result but session-success and "
        "invalid-conversation): a message to the worker. hangup only.",
    )


class RelayOn(_On):
    ended: OnValue = _field(
        "ended", relay_defaults(False)["ended"], "The application ended the session without HandoffData."
    )
    handoff: OnValue = _field(
        "handoff",
        relay_defaults(False)["handoff"],
        "The application ended the session with HandoffData. Default: dial when a target is "
        "configured (HandoffData may pick one by key), else voicemail.",
    )
    failed: OnValue = _field(
        "failed",
        relay_defaults(False)["failed"],
        "The session failed (ErrorCode). Default: apology, then dial when a target is configured, "
        "else voicemail.",
    )
    unknown: OnValue = _field(
        "unknown", relay_defaults(False)["unknown"], "A SessionStatus value Twilio added later."
    )


class _Outcomes(DocumentModel):
    """Settings shared by both kinds of flow."""

    say: SayOptions = Field(default_factory=SayOptions, description="<Say> voice and language.")
    voicemail: VoicemailOptions = Field(default_factory=VoicemailOptions)
    dial: DialOptions = Field(default_factory=DialOptions)
    targets: dict[TargetKey, DialAddress] = Field(
        default_factory=dict,
        description="Who may be dialled: key -> E.164 number, client:<identity> or sip:<uri>. The only "
        "addresses a hand-off can reach (HandoffData may name a key, never an address).",
    )
    default_target: TargetKey | None = Field(
        None, description="Key of `targets` dialled when none is named (default: the only target)."
    )

    @classmethod
    def _defaults(cls, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("on")
        if given is None:
            given = {}
        if not isinstance(given, dict):
            return data  # let field validation name the problem
        merged: dict[str, Any] = {}
        for key, default in cls._defaults(data).items():
            value = given.get(key, {})
            if isinstance(value, str):
                value = {"then": value}
            merged[key] = {**default, **value} if isinstance(value, dict) else value
        merged.update({key: value for key, value in given.items() if key not in merged})
        return {**data, "on": merged}

    @property
    def fallback_target(self) -> str | None:
        """`defaultTarget`, or the only target when there is exactly one."""
        if self.default_target:
            return self.default_target
        return next(iter(self.targets)) if len(self.targets) == 1 else None

    def _check_on(self, on: _On) -> None:
        if self.default_target is not None and self.default_target not in self.targets:
            raise ValueError(f"defaultTarget: {self.default_target!r} is not a key of targets")
        for key, action in on.by_key().items():
            allowed = on.only.get(key)
            if allowed and action.then not in allowed:
                raise ValueError(f"on.{key}.then: must be {' or '.join(allowed)}, not {action.then}")
            if action.target is not None:
                if action.then != "dial":
                    raise ValueError(f"on.{key}.target: only used with then=dial")
                if action.target not in self.targets:
                    raise ValueError(f"on.{key}.target: {action.target!r} is not a key of targets")
            if action.then == "dial" and action.target is None and self.fallback_target is None:
                raise ValueError(
                    f"on.{key}.then=dial needs a target: set on.{key}.target or defaultTarget "
                    "(with exactly one target, that one is the default)"
                )


class ConversationOutcomes(_Outcomes):
    """`outcomes` of a `conversation` flow: what follows `<Connect><Conversation>`."""

    on: ConversationOn = Field(default_factory=ConversationOn, description="Outcome -> what to do.")

    @classmethod
    def _defaults(cls, _data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return CONVERSATION_DEFAULTS

    @model_validator(mode="after")
    def _consistent(self) -> ConversationOutcomes:
        self._check_on(self.on)
        return self


class RelayOutcomes(_Outcomes):
    """`outcomes` of a `relay` flow: what follows `<Connect><ConversationRelay>`."""

    on: RelayOn = Field(default_factory=RelayOn, description="Outcome -> what to do.")
    transcribe_handoff: StrictBool = Field(
        True,
        description="When the flow uses Conversation Orchestrator (conversationId or "
        "conversationConfiguration), start <Transcription> with it before dialling a human, so the "
        "AI and human parts of the call live in one conversation.",
    )

    @classmethod
    def _defaults(cls, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        targets = data.get("targets")
        default = data.get("defaultTarget")
        has_target = bool(default) or (isinstance(targets, dict) and len(targets) == 1)
        return relay_defaults(has_target)

    @model_validator(mode="after")
    def _consistent(self) -> RelayOutcomes:
        self._check_on(self.on)
        return self
