"""What /voice/action answers, as typed next steps, rendered to TwiML with twilio-python.

The routing (calls/action_decisions.py) decides a `NextStep`; this module only turns it into TwiML. Every
callback URL it writes comes from `ActionUrls`, which name the session, so the requests that the
voicemail `<Record>` and a hand-off `<Dial>` make when they end come back to this API and are
recognised there (never the current document URL, which would loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twilio.twiml.voice_response import Dial, VoiceResponse

from voice_webhooks.flows.outcomes import DialOptions, SayOptions, VoicemailOptions, dial_target_kind

# Written explicitly: the reference page contradicts itself on the default (twilio-facts.md).
RECORDING_STATUS_EVENTS = "in-progress completed absent"
# The dialled leg's call-progress events we ask for (space-separated: twilio-python does not join
# lists). Without a list Twilio sends only `completed`.
DIAL_STATUS_EVENTS = "initiated ringing answered completed"


@dataclass(frozen=True)
class ActionUrls:
    """Callback URLs of this API for the session (connection overrides in the fragment)."""

    action: str
    recording: str
    status: str | None = None
    """/voice/status for the session: the dialled leg of a hand-off reports its status there."""


@dataclass(frozen=True)
class Transcription:
    """`<Start><Transcription>` into the Conversation Orchestrator conversation of the session."""

    conversation_id: str | None = None
    conversation_configuration: str | None = None

    def __post_init__(self) -> None:
        if not (self.conversation_id or self.conversation_configuration):
            raise ValueError("a Transcription needs conversationId or conversationConfiguration")


@dataclass(frozen=True)
class EmptyResponse:
    """`<Response/>`: the caller is gone, there is nothing left to say."""

    kind: Literal["empty"] = "empty"


@dataclass(frozen=True)
class HangUp:
    """An optional message, then `<Hangup/>`."""

    message: str | None = None
    kind: Literal["hangup"] = "hangup"


@dataclass(frozen=True)
class TakeVoicemail:
    """An optional message, the prompt, `<Record>` with callbacks to this API, then the words for
    an empty recording (Twilio skips the action request then and runs the next verb) and `<Hangup/>`."""

    options: VoicemailOptions
    message: str | None = None
    kind: Literal["voicemail"] = "voicemail"


@dataclass(frozen=True)
class DialTarget:
    """Optional `<Start><Transcription>`, an optional message, then `<Dial action>` to one address
    of the flow's `targets`."""

    target: str
    address: str
    options: DialOptions
    message: str | None = None
    transcription: Transcription | None = None
    kind: Literal["dial"] = "dial"


NextStep = EmptyResponse | HangUp | TakeVoicemail | DialTarget


def _say(response: VoiceResponse, text: str | None, say: SayOptions) -> None:
    if text:
        response.say(text, voice=say.voice, language=say.language)


def _voicemail(response: VoiceResponse, step: TakeVoicemail, urls: ActionUrls, say: SayOptions) -> None:
    options = step.options
    _say(response, step.message, say)
    _say(response, options.prompt, say)
    response.record(
        action=urls.action,
        method="POST",
        max_length=options.max_length,
        timeout=options.timeout,
        play_beep=options.play_beep,
        finish_on_key=options.finish_on_key,
        trim=options.trim,
        recording_status_callback=urls.recording,
        recording_status_callback_method="POST",
        recording_status_callback_event=RECORDING_STATUS_EVENTS,
    )
    _say(response, options.no_message, say)
    response.hangup()


def _dial(response: VoiceResponse, step: DialTarget, urls: ActionUrls, say: SayOptions) -> None:
    if step.transcription is not None:
        # conversationId takes precedence over conversationConfiguration: send only the one that counts.
        ref = step.transcription
        attributes: dict[str, str | None] = (
            {"conversationId": ref.conversation_id}
            if ref.conversation_id
            else {"conversationConfiguration": ref.conversation_configuration}
        )
        response.start().transcription(**attributes)
    _say(response, step.message, say)
    options = step.options
    dial: Dial = response.dial(
        action=urls.action,
        method="POST",
        timeout=options.timeout,
        caller_id=options.caller_id,
        time_limit=options.time_limit,
        answer_on_bridge=options.answer_on_bridge,
    )
    # The leg's own call-progress events, into the same session (a stream of its own there).
    leg_status: dict[str, str] = (
        {
            "status_callback": urls.status,
            "status_callback_event": DIAL_STATUS_EVENTS,
            "status_callback_method": "POST",
        }
        if urls.status
        else {}
    )
    kind = dial_target_kind(step.address)
    if kind == "number":
        dial.number(step.address, **leg_status)
    elif kind == "client":
        dial.client(identity=step.address.removeprefix("client:"), **leg_status)
    else:
        dial.sip(step.address, **leg_status)


def render_action(step: NextStep, urls: ActionUrls, say: SayOptions) -> str:
    response = VoiceResponse()
    if isinstance(step, HangUp):
        _say(response, step.message, say)
        response.hangup()
    elif isinstance(step, TakeVoicemail):
        _voicemail(response, step, urls, say)
    elif isinstance(step, DialTarget):
        _dial(response, step, urls, say)
    return str(response)
