"""The fallback URL's answer: static, so it works when every dependency is down."""

from __future__ import annotations

from functools import cache

from twilio.twiml.voice_response import VoiceResponse

APOLOGY = "We are sorry, we cannot take your call right now. Please try again later. Goodbye."


@cache
def apology_twiml() -> str:
    response = VoiceResponse()
    response.say(APOLOGY)
    response.hangup()
    return str(response)
