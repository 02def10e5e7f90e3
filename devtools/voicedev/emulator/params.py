"""The parameters Twilio sends, built the way Twilio builds them: ordered name/value pairs, blank
values kept (Twilio signs `FromCity=`), times in RFC 2822."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

API_VERSION = "2010-04-01"
TWILIO_API_BASE = "https://api.twilio.com/2010-04-01"
RECORDINGS_API = TWILIO_API_BASE + "/Accounts/{account}/Recordings/{recording}"
CALLBACK_SOURCE = "voice-conversation-service"
# CallbackSource of call-progress status callbacks (the number's "Call status changes" URL, a
# <Dial> noun's statusCallback, an outbound call's StatusCallback).
CALL_PROGRESS_SOURCE = "call-progress-events"
# StatusCallbackEvent names and the CallStatus each one reports.
CALL_PROGRESS_STATUS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}
# Emulated calls are recognisable in a real table: the CallSid (hence the SessionId, which starts
# with it) begins with this prefix, and the customer's number is Twilio's magic test number.
EMULATED_CALL_SID_PREFIX = "CA00000000"
TEST_CUSTOMER_NUMBER = "+15005550006"

Pairs = list[tuple[str, str]]


def sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def emulated_call_sid() -> str:
    return EMULATED_CALL_SID_PREFIX + secrets.token_hex(16)[len(EMULATED_CALL_SID_PREFIX) - 2 :]


def rfc2822(moment: datetime) -> str:
    """`Sat, 07 May 2022 00:58:19 +0000`: what Twilio puts in `Timestamp`."""
    return format_datetime(moment.replace(microsecond=0))


def recording_url(account_sid: str, recording_sid: str, api_base: str | None = None) -> str:
    """Twilio's RecordingUrl; `api_base` replaces `https://api.twilio.com/2010-04-01` (the local
    mode's fake media host, so that the recording archiver can fetch what the emulator records)."""
    if api_base:
        return f"{api_base.rstrip('/')}/Accounts/{account_sid}/Recordings/{recording_sid}"
    return RECORDINGS_API.format(account=account_sid, recording=recording_sid)


def _geo(prefix: str, country: str) -> Pairs:
    # Fictional 555 numbers have no city or state: Twilio sends the names with blank values.
    return [
        (f"{prefix}City", ""),
        (f"{prefix}Country", country),
        (f"{prefix}State", ""),
        (f"{prefix}Zip", ""),
    ]


@dataclass(frozen=True)
class CallIdentity:
    """The call as Twilio describes it in every TwiML request (its standard parameters)."""

    account_sid: str
    call_sid: str
    from_: str
    to: str
    direction: str = "inbound"
    country: str = "US"

    def call_progress(
        self,
        call_status: str,
        sequence_number: int,
        timestamp: str,
        *,
        duration: int | None = None,
        parent_call_sid: str | None = None,
    ) -> Pairs:
        """A call-progress status callback: the standard parameters, then the event's own."""
        pairs = self.standard(call_status)
        if parent_call_sid:
            pairs.append(("ParentCallSid", parent_call_sid))
        pairs += [
            ("CallbackSource", CALL_PROGRESS_SOURCE),
            ("SequenceNumber", str(sequence_number)),
            ("Timestamp", timestamp),
        ]
        if duration is not None:
            # Duration: billed minutes, rounded up (Twilio's call-progress parameters).
            pairs += [("CallDuration", str(duration)), ("Duration", str(max(1, -(-duration // 60))))]
        return pairs

    def standard(self, call_status: str) -> Pairs:
        """Twilio's standard voice request parameters, in the order Twilio sends them."""
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.call_sid),
            ("CallStatus", call_status),
            ("Called", self.to),
            *_geo("Called", self.country),
            ("Caller", self.from_),
            *_geo("Caller", self.country),
            ("Direction", self.direction),
            ("From", self.from_),
            *_geo("From", self.country),
            ("To", self.to),
            *_geo("To", self.country),
        ]
