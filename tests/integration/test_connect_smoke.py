"""A first end-to-end check of the connect and fallback handlers under moto."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

from voicedev.twilio_signing import DEV_ACCOUNT_SID, SAMPLE_API_DOMAIN, http_api_event, random_sid

URL = f"https://{SAMPLE_API_DOMAIN}/voice/connect"


def body(response: dict) -> str:
    text = response["body"]
    return base64.b64decode(text).decode() if response.get("isBase64Encoded") else text


def test_signed_connect_answers_conversation_twiml_and_records_the_session(aws, invoke) -> None:
    call_sid = random_sid("CA")
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": call_sid,
        "From": "+15550109999",
        "To": "+15550100001",
        "Direction": "inbound",
        "CallStatus": "ringing",
    }

    response = invoke("connect", http_api_event("POST", URL, params))

    assert response["statusCode"] == 200, body(response)
    root = ElementTree.fromstring(body(response))
    conversation = root.find("./Connect/Conversation")
    assert conversation is not None
    items = aws.items()
    assert [item["CallSid"] for item in items] == [call_sid]


def test_unsigned_connect_is_refused(aws, invoke) -> None:
    params = {"AccountSid": DEV_ACCOUNT_SID, "CallSid": random_sid("CA"), "To": "+15550100001"}

    response = invoke("connect", http_api_event("POST", URL, params, token=None))

    assert response["statusCode"] == 403
    assert aws.items() == []
