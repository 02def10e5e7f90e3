"""API Gateway WebSocket Lambda proxy events of the relay API (RELAY.md), as Twilio's
ConversationRelay would cause them: a signed `$connect`, one `$default` per frame, `$disconnect`.
Shared by the tests and by `python -m voicedev.relay_events` (writes events/relay/*.json)."""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, sign

SAMPLE_RELAY_API_ID = "ws123example"
SAMPLE_RELAY_DOMAIN = f"{SAMPLE_RELAY_API_ID}.execute-api.us-east-1.amazonaws.com"
STAGE = "relay"
SAMPLE_CALL_SID = "CA" + "7b" * 16
SAMPLE_SESSION_ID = f"{SAMPLE_CALL_SID}-00112233aabbccdd"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "relay"
_ids = itertools.count(1)


def relay_url(session_id: str, attempt: int = 1, domain: str = SAMPLE_RELAY_DOMAIN) -> str:
    return f"wss://{domain}/{STAGE}?{urlencode({'session': session_id, 'attempt': str(attempt)})}"


def _context(route: str, event_type: str, connection_id: str, domain: str, **extra: Any) -> dict[str, Any]:
    return {
        "routeKey": route,
        "eventType": event_type,
        "connectionId": connection_id,
        "domainName": domain,
        "stage": STAGE,
        "apiId": domain.split(".", 1)[0],
        "requestId": f"req-{next(_ids):08d}",
        "connectedAt": 1795143600000,
        "requestTimeEpoch": 1795143600000,
        "identity": {"sourceIp": "127.0.0.1"},
        **extra,
    }


def connect_event(
    session_id: str = SAMPLE_SESSION_ID,
    attempt: int = 1,
    *,
    connection_id: str = "conn-0001",
    token: str | None = DEV_AUTH_TOKEN,
    signature: str | None = None,
    query: Mapping[str, str] | None = None,
    domain: str = SAMPLE_RELAY_DOMAIN,
) -> dict[str, Any]:
    """`$connect` for Twilio opening `<relay url>?session=&attempt=`, signed with `token` (None: unsigned)."""
    params = dict(query) if query is not None else {"session": session_id, "attempt": str(attempt)}
    url = f"wss://{domain}/{STAGE}" + (f"?{urlencode(params)}" if params else "")
    headers = {"Host": domain, "User-Agent": "Twilio.TmeWs/1.0", "Sec-WebSocket-Version": "13"}
    if signature is None and token is not None:
        signature = sign(url, (), token)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return {
        "requestContext": _context("$connect", "CONNECT", connection_id, domain),
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": params or None,
        "multiValueQueryStringParameters": {name: [value] for name, value in params.items()} or None,
        "isBase64Encoded": False,
    }


def message_event(
    frame: Mapping[str, Any] | str,
    *,
    connection_id: str = "conn-0001",
    message_id: str | None = None,
    domain: str = SAMPLE_RELAY_DOMAIN,
) -> dict[str, Any]:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    return {
        "requestContext": _context(
            "$default", "MESSAGE", connection_id, domain, messageId=message_id or secrets.token_hex(8)
        ),
        "body": body,
        "isBase64Encoded": False,
    }


def disconnect_event(
    *, connection_id: str = "conn-0001", status_code: int = 1000, domain: str = SAMPLE_RELAY_DOMAIN
) -> dict[str, Any]:
    return {
        "requestContext": _context(
            "$disconnect",
            "DISCONNECT",
            connection_id,
            domain,
            disconnectStatusCode=status_code,
            disconnectReason="Client closed the connection",
        ),
        "headers": {"Host": domain},
        "isBase64Encoded": False,
    }


def setup_frame(
    call_sid: str = SAMPLE_CALL_SID, account_sid: str = DEV_ACCOUNT_SID, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "setup",
        "sessionId": "VX" + "0" * 32,
        "callSid": call_sid,
        "parentCallSid": "",
        "accountSid": account_sid,
        "from": "+15550109999",
        "to": "+15550100002",
        "direction": "inbound",
        "callType": "PSTN",
        "callStatus": "IN-PROGRESS",
        "customParameters": {},
        **extra,
    }


def prompt_frame(text: str, last: bool = True, lang: str = "en-US") -> dict[str, Any]:
    return {"type": "prompt", "voicePrompt": text, "lang": lang, "last": last}


def interrupt_frame(heard: str, duration_ms: int = 900) -> dict[str, Any]:
    return {"type": "interrupt", "utteranceUntilInterrupt": heard, "durationUntilInterruptMs": duration_ms}


def dtmf_frame(digit: str) -> dict[str, Any]:
    return {"type": "dtmf", "digit": digit}


def samples() -> dict[str, dict[str, Any]]:
    return {
        "connect-signed.json": connect_event(),
        "connect-unsigned.json": connect_event(token=None),
        "message-setup.json": message_event(setup_frame(), message_id="msg-setup"),
        "message-prompt.json": message_event(
            prompt_frame("What are your opening hours?"), message_id="msg-prompt"
        ),
        "message-interrupt.json": message_event(
            interrupt_frame("We are open from"), message_id="msg-interrupt"
        ),
        "message-dtmf.json": message_event(dtmf_frame("0"), message_id="msg-dtmf"),
        "disconnect.json": disconnect_event(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the relay API's sample events to events/relay/.")
    parser.add_argument("--dir", type=Path, default=EVENTS_DIR)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, event in samples().items():
        (args.dir / name).write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
