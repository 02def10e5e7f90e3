"""No item can outgrow DynamoDB's 400 KB: the largest signed request each route accepts (a 64 KB
body, every stored field at its length cap, the rest unknown parameters) is sent through the
route under moto, and the DynamoDB size of every item written is computed by AWS's documented
rule (docs/data-model.md, "Bounded items")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from voice_webhooks.callbacks.models import MAX_ADDRESS, MAX_TEXT, MAX_URL, MAX_WORD
from voice_webhooks.edge import routes
from voice_webhooks.edge.request import MAX_BODY_BYTES
from voice_webhooks.storage.recordings import RecordingStore
from voicedev.twilio_signing import DEV_ACCOUNT_SID, http_api_event

from tests.integration.callback_helpers import BASE_URL, session_url
from tests.support import body_text

DYNAMODB_ITEM_LIMIT = 400 * 1024
CALL = "CA" + "a" * 32
LEG = "CA" + "b" * 32
SESSION = f"{CALL}-0123456789abcdef"
WORD, ADDRESS, URL, TEXT = "w" * MAX_WORD, "+" + "1" * (MAX_ADDRESS - 1), "h" * MAX_URL, "t" * MAX_TEXT
TIMESTAMP = "Sat, 7 May 2022 00:58:19 +0000"


def attribute_size(value: Any) -> int:
    """DynamoDB's size of one value: strings and binary by their bytes, numbers about one byte
    per two significant digits plus one, booleans and null one byte, lists and maps 3 bytes plus
    one byte per element plus the elements (and, for maps, their names)."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        digits = len(str(abs(Decimal(value))).replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, dict):
        return 3 + sum(
            1 + len(str(name).encode("utf-8")) + attribute_size(inner) for name, inner in value.items()
        )
    if isinstance(value, list | set | tuple):
        return 3 + sum(1 + attribute_size(inner) for inner in value)
    raise TypeError(type(value))


def item_size(item: dict[str, Any]) -> int:
    """Attribute names' bytes plus values' sizes (AWS, "Item sizes and formats")."""
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def filled(params: dict[str, str]) -> dict[str, str]:
    """`params` plus unknown parameters of about 1 KB each, up to the largest body accepted."""
    out = dict(params)
    index = 0
    while True:
        candidate = {**out, f"Added{index:04d}": "v" * 1000}
        if len(urlencode(candidate)) > MAX_BODY_BYTES:
            break
        out, index = candidate, index + 1
    rest = MAX_BODY_BYTES - len(urlencode(out)) - len("&Z=")
    if rest > 0:
        out["Z"] = "z" * rest
    assert MAX_BODY_BYTES - 16 <= len(urlencode(out)) <= MAX_BODY_BYTES
    return out


def send(invoke: Any, function: str, url: str, params: dict[str, str]) -> dict[str, Any]:
    response = invoke(function, http_api_event("POST", url, filled(params)))
    assert response["statusCode"] in (200, 204), body_text(response)
    return response


IDENTITY = {
    "AccountSid": DEV_ACCOUNT_SID,
    "CallSid": CALL,
    "From": ADDRESS,
    "To": ADDRESS,
    "Caller": ADDRESS,
    "Called": ADDRESS,
    "Direction": WORD,
    "ApiVersion": WORD,
    "ApplicationSid": WORD,
}


def test_the_largest_item_each_route_can_write_stays_far_below_400_kb(aws, invoke) -> None:
    # Given the largest signed request of each kind each route accepts
    send(invoke, "connect", f"{BASE_URL}{routes.CONNECT}", {**IDENTITY, "CallStatus": WORD})
    status_url = session_url(routes.STATUS, SESSION)
    conversation = {
        "AccountSid": DEV_ACCOUNT_SID,
        "Status": WORD,
        "SequenceNumber": str(2**31 - 1),
        "Timestamp": TIMESTAMP,
        "ConversationSid": WORD,
        "DialCallSid": WORD,
        "WorkerInitiated": "false",
        "CallbackSource": WORD,
    }
    send(invoke, "status", status_url, conversation)
    progress = {
        **IDENTITY,
        "CallStatus": WORD,
        "SequenceNumber": str(2**31 - 1),
        "Timestamp": TIMESTAMP,
        "CallbackSource": WORD,
        "CallDuration": str(10**9),
        "Duration": str(10**9),
        "ForwardedFrom": ADDRESS,
        "CallerName": ADDRESS,
    }
    send(invoke, "status", status_url, progress)
    send(invoke, "status", status_url, {**progress, "CallSid": LEG, "ParentCallSid": CALL})
    recording = {
        **IDENTITY,
        "RecordingSid": "RE" + "c" * 32,
        "RecordingStatus": "completed",
        "RecordingUrl": URL,
        "RecordingDuration": str(10**9),
        "RecordingChannels": WORD,
        "RecordingSource": WORD,
        "RecordingStartTime": TIMESTAMP,
        "ErrorCode": WORD,
    }
    send(invoke, "recording", session_url(routes.RECORDING, SESSION), recording)
    action_url = session_url(routes.ACTION, SESSION)
    send(
        invoke,
        "action",
        action_url,
        {
            **IDENTITY,
            "SessionStatus": "ended",
            "SessionId": WORD,
            "SessionDuration": str(10**9),
            "ErrorCode": WORD,
            "ErrorMessage": TEXT,
            "HandoffData": "{" + ",".join(f'"{"k" * 100}{i}": 1' for i in range(70)) + "}",
        },
    )
    common = {"DialCallSid": WORD, "DialCallDuration": str(10**9), "RecordingSid": WORD}
    common |= {"RecordingDuration": str(10**9), "RecordingUrl": URL, "Digits": TEXT}
    send(invoke, "action", action_url, {**IDENTITY, "DialCallStatus": WORD, **common})
    send(invoke, "action", action_url, {**IDENTITY, **common, "WorkerInitiated": "true"})
    # And the archiver's record of the recording (an S3 key is at most 1024 bytes)
    assert RecordingStore(aws.table_name).record_recording_archive(
        SESSION, "RE" + "c" * 32, bucket="b" * 63, key="k" * 1024, size=10**12, archived_at=TIMESTAMP
    )

    # When the size of every item written is computed
    items = aws.items()
    sizes = {(item["SessionId"], item["ItemKey"].split("#")[0]): 0 for item in items}
    for item in items:
        kind = (item["SessionId"], item["ItemKey"].split("#")[0])
        sizes[kind] = max(sizes[kind], item_size(item))

    # Then every kind of item was written, and the largest is a small fraction of the limit
    kinds = {kind for _, kind in sizes}
    assert kinds == {"session", "event", "leg", "recording", "action"}
    largest = max(sizes.values())
    assert largest < DYNAMODB_ITEM_LIMIT / 10, sizes
    # (an event's Raw is within its 16 KB budget: the biggest item is an event)
    assert max(size for (_, kind), size in sizes.items() if kind == "event") == largest
