"""Render the `<Connect>` TwiML for a flow with twilio-python."""

from __future__ import annotations

from dataclasses import dataclass

from twilio.twiml.voice_response import Connect, VoiceResponse

from voice_webhooks.flow_config import (
    CONVERSATION_STATUS_EVENTS,
    ConversationFlow,
    RelayFlow,
)

DEFAULT_RECORDING_EVENTS = "in-progress completed absent"
DEFAULT_STATUS_EVENTS = " ".join(CONVERSATION_STATUS_EVENTS)


@dataclass(frozen=True)
class CallbackUrls:
    """Callback URLs pointing back at this API, each naming the session."""

    action: str
    status: str
    recording: str


def _connect(response: VoiceResponse, flow: ConversationFlow | RelayFlow, urls: CallbackUrls) -> Connect:
    return response.connect(action=flow.action or urls.action, method=flow.method or "POST")


def render_conversation(flow: ConversationFlow, urls: CallbackUrls) -> str:
    """`<Connect action method><Conversation .../></Connect>`. Our callbacks are filled in where the
    flow does not set them; the event lists are always written (the reference page contradicts
    itself on their defaults)."""
    response = VoiceResponse()
    attributes = flow.twiml_attributes()
    attributes.setdefault("statusCallback", urls.status)
    attributes.setdefault("statusCallbackMethod", "POST")
    attributes.setdefault("statusCallbackEvent", DEFAULT_STATUS_EVENTS)
    if flow.records:
        attributes.setdefault("recordingStatusCallback", urls.recording)
        attributes.setdefault("recordingStatusCallbackMethod", "POST")
        attributes.setdefault("recordingStatusCallbackEvent", DEFAULT_RECORDING_EVENTS)
    _connect(response, flow, urls).conversation(**attributes)
    return str(response)


def render_relay(flow: RelayFlow, urls: CallbackUrls) -> str:
    """`<Connect action method><ConversationRelay ...><Language/>...<Parameter/>...`."""
    response = VoiceResponse()
    attributes = flow.twiml_attributes()
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
