"""Render the `<Connect>` TwiML for a flow with twilio-python.

The flow's attributes are written as configured (explicit values always win); what the flow leaves
out and this API needs is filled in: `<Connect action method>` pointing at /voice/action, and for
`<Conversation>` the status callback (all four events) and, when recording, the recording status
callback (`in-progress completed absent`).

Our event lists go only with our URLs: a flow that sets its own `statusCallback` or
`recordingStatusCallback` gets its own lists or Twilio's defaults, never events it did not ask for.
Twilio's status default (`call-completed`) is left to Twilio; the recording one is written
(`completed`, the prose's value) because the reference page contradicts itself on it
(twilio-facts.md: never rely on that default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twilio.twiml.voice_response import Connect, VoiceResponse

from voice_webhooks.flows.model import ConversationFlow, RelayFlow
from voice_webhooks.flows.values import CONVERSATION_STATUS_EVENTS, RECORDING_STATUS_EVENTS

DEFAULT_METHOD = "POST"
DEFAULT_STATUS_EVENTS = " ".join(CONVERSATION_STATUS_EVENTS)
DEFAULT_RECORDING_EVENTS = " ".join(RECORDING_STATUS_EVENTS)
TWILIO_RECORDING_EVENTS = "completed"


@dataclass(frozen=True)
class CallbackUrls:
    """Callback URLs pointing back at this API, each naming the session."""

    action: str
    status: str
    recording: str
    relay: str | None = None
    """This stack's relay WebSocket URL for the session, used by a relay flow without `url`."""


def _connect(response: VoiceResponse, flow: ConversationFlow | RelayFlow, urls: CallbackUrls) -> Connect:
    return response.connect(action=flow.action or urls.action, method=flow.method or DEFAULT_METHOD)


def _our_callback(attributes: dict[str, Any], name: str, url: str, events: str) -> None:
    """`name` points at this API, with our events, unless the flow set its own URL (then only
    its own events); the method is POST unless the flow says otherwise."""
    if name not in attributes:
        attributes[name] = url
        attributes.setdefault(f"{name}Event", events)
    attributes.setdefault(f"{name}Method", DEFAULT_METHOD)


def render_conversation(flow: ConversationFlow, urls: CallbackUrls) -> str:
    """`<Response><Connect action method><Conversation .../></Connect></Response>`."""
    response = VoiceResponse()
    attributes = flow.twiml_attributes()
    _our_callback(attributes, "statusCallback", urls.status, DEFAULT_STATUS_EVENTS)
    if flow.records:
        _our_callback(attributes, "recordingStatusCallback", urls.recording, DEFAULT_RECORDING_EVENTS)
        attributes.setdefault("recordingStatusCallbackEvent", TWILIO_RECORDING_EVENTS)
    _connect(response, flow, urls).conversation(**attributes)
    return str(response)


def render_relay(flow: RelayFlow, urls: CallbackUrls) -> str:
    """`<Response><Connect action method><ConversationRelay ...><Language/>...<Parameter/>...`."""
    response = VoiceResponse()
    attributes = flow.twiml_attributes()
    if flow.url is None:
        attributes["url"] = urls.relay
    relay = _connect(response, flow, urls).conversation_relay(**attributes)
    for language in flow.languages:
        relay.language(**language.twiml_attributes())
    for name, value in flow.parameters.items():
        relay.parameter(name=name, value=value)
    return str(response)


def render_connect(flow: ConversationFlow | RelayFlow, urls: CallbackUrls) -> str:
    if isinstance(flow, ConversationFlow):
        return render_conversation(flow, urls)
    return render_relay(flow, urls)
