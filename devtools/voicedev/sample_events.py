"""The sample events in `events/`: HTTP API (payload v2) events as API Gateway would hand them to a
function, for `sam local invoke <Function> -e events/<name>.json --env-vars events/env.json`.

Each event is signed with the documented development token (`DEV_AUTH_TOKEN`) for the URL it
carries (`https://SAMPLE_API_DOMAIN/voice/...`, with `?session=` on callback routes), exactly as
Twilio signs: the deployed stack or the local mode accepts it when its auth token secret holds the
development token and ALLOWED_ACCOUNT_SIDS holds DEV_ACCOUNT_SID.

The files are generated, never edited: `make events` rewrites them from `CASES`, and
tests/integration/test_sample_events.py fails when they are stale. Adding a case is one entry in
`CASES`; the test then checks its signature and invokes its handler under moto, expecting
`status`. Generation is deterministic (fixed SIDs, request ids derived from the case name).

Each event stands on its own: a callback case carries its own session id (derived from its name),
so that invoking the events one after another against one table (`make sam-local`) gives each the
answer its name promises, never "out of sequence" because another event used the session first.
Beside each event, `<name>.expected.json` says what it must answer and change
(voicedev.sample_expectations); the in-process test and `make sam-local` both check it."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from voice_webhooks.edge import routes
from voice_webhooks.edge.public_urls import SESSION_PARAM

from voicedev import sample_expectations, template_resources
from voicedev.twilio_signing import (
    DEV_ACCOUNT_SID,
    SAMPLE_API_DOMAIN,
    dumps,
    http_api_event,
    sign,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = PROJECT_ROOT / "events"
ENV_FILE = "env.json"

# Fixed identities, so that regenerating gives the same bytes. 555-01xx numbers are fictional.
SAMPLE_CALL_SID = "CA" + "5a" * 16
OTHER_ACCOUNT_SID = "AC" + "99" * 16
CALLER = "+15550109999"
CONVERSATION_NUMBER = "+15550100001"  # `frontline` (conversation) in config/flows.example.json
RELAY_NUMBER = "+15550100002"  # `assistant` (relay)
UNMAPPED_NUMBER = "+15550100099"  # not in `numbers`: the `default` flow answers


def call_params(to: str = CONVERSATION_NUMBER, **extra: str) -> tuple[tuple[str, str], ...]:
    """The parameters of Twilio's voice webhook for an inbound call, in Twilio's order, blank
    geographic fields included (Twilio signs them), then `extra` (added or replacing)."""
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": SAMPLE_CALL_SID,
        "CallStatus": "ringing",
        "Called": to,
        "CalledCity": "",
        "CalledCountry": "US",
        "CalledState": "",
        "CalledZip": "",
        "Caller": CALLER,
        "CallerCity": "",
        "CallerCountry": "US",
        "CallerState": "",
        "CallerZip": "",
        "Direction": "inbound",
        "From": CALLER,
        "FromCity": "",
        "FromCountry": "US",
        "FromState": "",
        "FromZip": "",
        "To": to,
        "ToCity": "",
        "ToCountry": "US",
        "ToState": "",
        "ToZip": "",
    }
    params.update(extra)
    return tuple(params.items())


Signing = Literal["signed", "unsigned", "tampered"]


@dataclass(frozen=True)
class SampleCase:
    """One sample event: `events/<name>.json`."""

    name: str
    route: str
    status: int
    """The HTTP status its handler must answer (checked by test_sample_events.py)."""
    description: str
    params: tuple[tuple[str, str], ...]
    method: Literal["GET", "POST"] = "POST"
    session: bool = False
    """Callback routes: the URL carries `?session=<its session_id>`, as the connect TwiML writes it."""
    signing: Signing = "signed"
    """`unsigned`: no X-Twilio-Signature header. `tampered`: signed, then `tamper` applied."""
    tamper: Mapping[str, str] = field(default_factory=dict)
    session_flow: str | None = None
    """When the handler needs the session opened by the connect webhook: the flow of that session.
    The test writes the session item (`sample_session_item`) before invoking."""

    @property
    def file_name(self) -> str:
        return f"{self.name}.json"

    @property
    def expected_file_name(self) -> str:
        return f"{self.name}.expected.json"

    @property
    def session_id(self) -> str:
        """This case's own session (as connect mints them: `<CallSid>-<16 hex>`), so that no
        other sample event has used it first."""
        return f"{SAMPLE_CALL_SID}-{hashlib.sha256(self.name.encode()).hexdigest()[16:32]}"

    @property
    def signed(self) -> bool:
        """Whether the event carries a valid signature for what it contains."""
        return self.signing == "signed"

    @property
    def url(self) -> str:
        """The URL Twilio requests, before it appends a GET's parameters."""
        base = f"https://{SAMPLE_API_DOMAIN}{self.route}"
        return f"{base}?{urlencode({SESSION_PARAM: self.session_id})}" if self.session else base

    def _signature(self) -> str | None:
        if self.signing == "unsigned":
            return None
        if self.method == "POST":
            return sign(self.url, self.params)
        separator = "&" if "?" in self.url else "?"
        return sign(f"{self.url}{separator}{urlencode(self.params)}")

    def event(self) -> dict[str, Any]:
        signature = self._signature()
        params = [(name, self.tamper.get(name, value)) for name, value in self.params]
        event = http_api_event(
            self.method, self.url, params, token=None, signature=signature, route=self.route
        )
        # Deterministic in place of http_api_event's random request id.
        request_id = hashlib.sha256(self.name.encode()).hexdigest()[:16]
        event["requestContext"]["requestId"] = request_id
        return event


# Status and recording callbacks of the sample session, shaped like the reference pages
# (twiml-voice-conversation.md: "Request to the statusCallback URL", "Request to recordingStatusCallback").
SAMPLE_CONVERSATION_SID = "CH" + "3c" * 16
SAMPLE_DIAL_CALL_SID = "CA" + "6b" * 16
SAMPLE_RECORDING_SID = "RE" + "7e" * 16
SAMPLE_VOICEMAIL_SID = "RE" + "8f" * 16
_STATUS_TIMES = {
    1: "Sat, 7 May 2022 00:58:19 +0000",
    2: "Sat, 7 May 2022 00:58:20 +0000",
    3: "Sat, 7 May 2022 00:58:27 +0000",
    4: "Sat, 7 May 2022 01:04:02 +0000",
}


def status_params(status: str, sequence_number: int, **extra: str) -> tuple[tuple[str, str], ...]:
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "ConversationSid": SAMPLE_CONVERSATION_SID,
        "DialCallSid": SAMPLE_DIAL_CALL_SID,
        "WorkerInitiated": "false",
        "Status": status,
        "SequenceNumber": str(sequence_number),
        "Timestamp": _STATUS_TIMES.get(sequence_number, _STATUS_TIMES[4]),
        "CallbackSource": "voice-conversation-service",
    }
    params.update(extra)
    return tuple((name, value) for name, value in params.items() if value != "<omit>")


# Call-progress status callbacks (twilio-facts.md, "call-progress events"): the number's "Call
# status changes" URL (no `session`), an outbound call's StatusCallback, a hand-off leg's.
SAMPLE_OUTBOUND_CALL_SID = "CA" + "9c" * 16
SAMPLE_LEG_CALL_SID = "CA" + "6b" * 16
_PROGRESS_TIMES = {
    "initiated": "Sat, 7 May 2022 01:00:01 +0000",
    "ringing": "Sat, 7 May 2022 01:00:02 +0000",
    "in-progress": "Sat, 7 May 2022 01:00:07 +0000",
    "completed": "Sat, 7 May 2022 01:04:02 +0000",
}


def call_progress_params(
    call_status: str, sequence_number: int, call_sid: str = SAMPLE_CALL_SID, **extra: str
) -> tuple[tuple[str, str], ...]:
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": call_status,
        "Direction": "inbound",
        "From": CALLER,
        "To": RELAY_NUMBER,
        "Caller": CALLER,
        "Called": RELAY_NUMBER,
        "Timestamp": _PROGRESS_TIMES.get(call_status, _PROGRESS_TIMES["completed"]),
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence_number),
    }
    if call_status == "completed":
        params.update(CallDuration="235", Duration="4")
    params.update(extra)
    return tuple((name, value) for name, value in params.items() if value != "<omit>")


def outbound_params(call_status: str, sequence_number: int) -> tuple[tuple[str, str], ...]:
    return call_progress_params(
        call_status,
        sequence_number,
        SAMPLE_OUTBOUND_CALL_SID,
        Direction="outbound-api",
        From=RELAY_NUMBER,
        To=CALLER,
        Caller=RELAY_NUMBER,
        Called=CALLER,
    )


def leg_params(call_status: str, sequence_number: int) -> tuple[tuple[str, str], ...]:
    return call_progress_params(
        call_status,
        sequence_number,
        SAMPLE_LEG_CALL_SID,
        ParentCallSid=SAMPLE_CALL_SID,
        Direction="outbound-dial",
        From=RELAY_NUMBER,
        To="+15550100100",
        Caller=RELAY_NUMBER,
        Called="+15550100100",
    )


CALL_PROGRESS_CASES = (
    SampleCase(
        name="status-call-progress-inbound-completed",
        route=routes.STATUS,
        status=204,
        description=(
            "The number's 'Call status changes' callback (no ?session=): the relay call completed. "
            "Stored in the call's connect session, found by its CallSid; the session's CallStatus "
            "moves to completed."
        ),
        params=call_progress_params("completed", 0),
        session_flow="assistant",
    ),
    *(
        SampleCase(
            name=f"status-call-progress-outbound-{name}",
            route=routes.STATUS,
            status=204,
            description=(
                f"An outbound call's StatusCallback: {status} (#{sequence}). No connect session: the "
                "call gets a session of its own, `<CallSid>` (Origin callback)."
            ),
            params=outbound_params(status, sequence),
        )
        for name, status, sequence in (
            ("ringing", "ringing", 0),
            ("answered", "in-progress", 1),
            ("completed", "completed", 2),
        )
    ),
    SampleCase(
        name="status-call-progress-dialled-leg",
        route=routes.STATUS,
        status=204,
        description=(
            "The hand-off <Dial><Number statusCallback>: the dialled leg answered (ParentCallSid = "
            "the session's call). Its own stream in the same session, latest on its leg# item."
        ),
        params=leg_params("in-progress", 2),
        session=True,
        session_flow="assistant",
    ),
    SampleCase(
        name="status-other-calls-session",
        route=routes.STATUS,
        status=403,
        description="A signed callback of another call naming this session: refused, nothing written.",
        params=outbound_params("completed", 2),
        session=True,
        session_flow="assistant",
    ),
)


def recording_params(
    status: str, recording_sid: str = SAMPLE_RECORDING_SID, source: str = "DialVerb", **extra: str
) -> tuple[tuple[str, str], ...]:
    params = {
        "AccountSid": DEV_ACCOUNT_SID,
        "CallSid": SAMPLE_CALL_SID,
        "RecordingSid": recording_sid,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{recording_sid}",
        "RecordingStatus": status,
        "RecordingChannels": "2" if source == "DialVerb" else "1",
        "RecordingSource": source,
        "RecordingStartTime": "Sat, 07 May 2022 00:58:27 +0000",
    }
    if status == "completed":
        params["RecordingDuration"] = "335" if source == "DialVerb" else "14"
    params.update(extra)
    return tuple((name, value) for name, value in params.items() if value != "<omit>")


# /voice/action: the <Connect action> after <Conversation> and <ConversationRelay>, and the
# requests our voicemail <Record> and hand-off <Dial> make (docs/action-routing.md).
SAMPLE_RELAY_SESSION_ID = "VX" + "4d" * 16


def conversation_action_params(result: str, **extra: str) -> tuple[tuple[str, str], ...]:
    fields = {"CallStatus": "in-progress", "Result": result, "WorkerInitiated": "false"}
    return call_params(CONVERSATION_NUMBER, **{**fields, **extra})


def relay_action_params(session_status: str, **extra: str) -> tuple[tuple[str, str], ...]:
    fields = {
        "CallStatus": "in-progress",
        "SessionId": SAMPLE_RELAY_SESSION_ID,
        "SessionStatus": session_status,
    }
    return call_params(RELAY_NUMBER, **{**fields, **extra})


ACTION_CASES: tuple[SampleCase, ...] = (
    SampleCase(
        name="action-conversation-no-answer",
        route=routes.ACTION,
        status=200,
        description="The worker did not answer (dialed-call-incomplete, no-answer): voicemail TwiML.",
        params=conversation_action_params(
            "dialed-call-incomplete",
            DialCallStatus="no-answer",
            DialCallSid=SAMPLE_DIAL_CALL_SID,
            DialCallDuration="0",
        ),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="action-conversation-session-success",
        route=routes.ACTION,
        status=200,
        description="Customer and worker talked, one hung up (session-success): <Hangup/>.",
        params=conversation_action_params(
            "session-success",
            DialCallStatus="completed",
            DialCallSid=SAMPLE_DIAL_CALL_SID,
            DialCallDuration="335",
            RecordingSid=SAMPLE_RECORDING_SID,
            RecordingDuration="335",
        ),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="action-conversation-get",
        route=routes.ACTION,
        method="GET",
        status=200,
        description="<Connect method=GET>: no-other-participants, parameters in the query string.",
        params=conversation_action_params("no-other-participants"),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="action-voicemail-recorded",
        route=routes.ACTION,
        status=200,
        description="The voicemail <Record action> (RecordingSid, no Result): thanks, then <Hangup/>.",
        params=call_params(
            CONVERSATION_NUMBER,
            CallStatus="in-progress",
            RecordingSid=SAMPLE_VOICEMAIL_SID,
            RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/"
            f"{SAMPLE_VOICEMAIL_SID}",
            RecordingDuration="14",
            Digits="#",
        ),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="action-relay-completed",
        route=routes.ACTION,
        status=200,
        description="ConversationRelay session completed (caller hung up): empty <Response/>.",
        params=relay_action_params("completed", SessionDuration="35", CallStatus="completed"),
        session=True,
        session_flow="assistant",
    ),
    SampleCase(
        name="action-relay-handoff",
        route=routes.ACTION,
        status=200,
        description='The AI application ended the session with HandoffData {"target": "sales"}: <Dial>.',
        params=relay_action_params(
            "ended", SessionDuration="25", HandoffData='{"reason": "wants a quote", "target": "sales"}'
        ),
        session=True,
        session_flow="assistant",
    ),
    SampleCase(
        name="action-relay-failed",
        route=routes.ACTION,
        status=200,
        description="ConversationRelay session failed (ErrorCode 39001): apology, then the default target.",
        params=relay_action_params(
            "failed",
            SessionDuration="10",
            ErrorCode="39001",
            ErrorMessage="Network connection to WebSocket server failed.",
        ),
        session=True,
        session_flow="assistant",
    ),
    SampleCase(
        name="action-unsigned",
        route=routes.ACTION,
        status=403,
        description="An action request without X-Twilio-Signature: refused, nothing written.",
        params=conversation_action_params("session-success"),
        session=True,
        signing="unsigned",
    ),
)


CASES: tuple[SampleCase, ...] = (
    SampleCase(
        name="connect-conversation",
        route=routes.CONNECT,
        status=200,
        description="Signed POST for the conversation number: <Connect><Conversation> TwiML.",
        params=call_params(CONVERSATION_NUMBER),
    ),
    SampleCase(
        name="connect-relay",
        route=routes.CONNECT,
        status=200,
        description="Signed POST for the relay number: <Connect><ConversationRelay> TwiML.",
        params=call_params(RELAY_NUMBER),
    ),
    SampleCase(
        name="connect-default-flow",
        route=routes.CONNECT,
        status=200,
        description="Signed POST for a number not in `numbers`: the `default` flow answers.",
        params=call_params(UNMAPPED_NUMBER),
    ),
    SampleCase(
        name="connect-get",
        route=routes.CONNECT,
        method="GET",
        status=200,
        description="Signed GET (voice URL method GET): every parameter in the query string.",
        params=call_params(CONVERSATION_NUMBER),
    ),
    SampleCase(
        name="connect-unsigned",
        route=routes.CONNECT,
        status=403,
        description="No X-Twilio-Signature header: refused, nothing written.",
        params=call_params(CONVERSATION_NUMBER),
        signing="unsigned",
    ),
    SampleCase(
        name="connect-tampered",
        route=routes.CONNECT,
        status=403,
        description="Signed, then `To` changed: the signature no longer matches.",
        params=call_params(CONVERSATION_NUMBER),
        signing="tampered",
        tamper={"To": RELAY_NUMBER},
    ),
    SampleCase(
        name="connect-other-account",
        route=routes.CONNECT,
        status=403,
        description="Validly signed, but for an AccountSid not in ALLOWED_ACCOUNT_SIDS.",
        params=call_params(CONVERSATION_NUMBER, AccountSid=OTHER_ACCOUNT_SID),
    ),
    SampleCase(
        name="fallback",
        route=routes.FALLBACK,
        status=200,
        description="Twilio's fallback request after the voice URL failed: apology TwiML.",
        params=call_params(
            CONVERSATION_NUMBER, ErrorCode="11200", ErrorUrl=f"https://{SAMPLE_API_DOMAIN}{routes.CONNECT}"
        ),
    ),
    SampleCase(
        name="fallback-unsigned",
        route=routes.FALLBACK,
        status=403,
        description="Fallback request without a signature: refused like every route.",
        params=call_params(CONVERSATION_NUMBER, ErrorCode="11200"),
        signing="unsigned",
    ),
    SampleCase(
        name="status-call-answered",
        route=routes.STATUS,
        status=204,
        description="Status event 3 (call-answered): stored once, the session moves forward.",
        params=status_params("call-answered", 3),
        session=True,
    ),
    SampleCase(
        name="status-call-completed-get",
        route=routes.STATUS,
        method="GET",
        status=204,
        description="statusCallbackMethod=GET: event 4 (call-completed), parameters in the query string.",
        params=status_params("call-completed", 4),
        session=True,
    ),
    SampleCase(
        name="status-missing-sequence-number",
        route=routes.STATUS,
        status=400,
        description="A status event without SequenceNumber: refused, nothing written.",
        params=status_params("call-ringing", 2, SequenceNumber="<omit>"),
        session=True,
    ),
    SampleCase(
        name="status-unsigned",
        route=routes.STATUS,
        status=403,
        description="A status event without X-Twilio-Signature: refused, nothing written.",
        params=status_params("call-initiated", 1),
        session=True,
        signing="unsigned",
    ),
    SampleCase(
        name="recording-in-progress",
        route=routes.RECORDING,
        status=204,
        description="The <Conversation record> recording started: state in-progress, nothing queued.",
        params=recording_params("in-progress"),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="recording-completed",
        route=routes.RECORDING,
        status=204,
        description="The <Conversation record> recording completed: one message to RecordingsQueue.",
        params=recording_params("completed"),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="recording-voicemail-completed-get",
        route=routes.RECORDING,
        method="GET",
        status=204,
        description="recordingStatusCallbackMethod=GET: the voicemail <Record> completed; queued.",
        params=recording_params("completed", SAMPLE_VOICEMAIL_SID, "RecordVerb"),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="recording-absent",
        route=routes.RECORDING,
        status=204,
        description="The voicemail was too short (error 16101): recorded as absent, never queued.",
        params=recording_params(
            "absent", SAMPLE_VOICEMAIL_SID, "RecordVerb", RecordingDuration="0", ErrorCode="16101"
        ),
        session=True,
        session_flow="frontline",
    ),
    SampleCase(
        name="recording-missing-status",
        route=routes.RECORDING,
        status=400,
        description="A recording callback without RecordingStatus: refused, nothing written or queued.",
        params=recording_params("completed", RecordingStatus="<omit>"),
        session=True,
    ),
    *CALL_PROGRESS_CASES,
    *ACTION_CASES,
)


def case_named(name: str) -> SampleCase:
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(name)


# Placeholders only: the real values are the user's (docs/security.md, "Sample events"). SAM
# overrides only variables the template declares, so every name here is one it declares.
ENV_PLACEHOLDERS: dict[str, str] = {
    "TWILIO_AUTH_TOKEN_SECRET": "REPLACE_WITH_ARN_OF_A_SECRET_HOLDING_THE_DEVELOPMENT_TOKEN",
    "ALLOWED_ACCOUNT_SIDS": DEV_ACCOUNT_SID,
    "EVENTS_TABLE_NAME": "REPLACE_WITH_EVENTS_TABLE_NAME",
    "RECORDINGS_QUEUE_URL": "REPLACE_WITH_RECORDINGS_QUEUE_URL",
    "FLOW_CONFIG": "ssm:/twilio-voice-webhooks/flows",
}


def sample_session_item(case: SampleCase, flow_kind: str, now: datetime | None = None) -> dict[str, Any]:
    """The session item (`ItemKey` `session`) the connect webhook would have written for the call
    a callback case belongs to (a dialled leg's: its parent call's)."""
    from voice_webhooks.storage.dynamo import expires_at
    from voice_webhooks.storage.sessions import SessionItem

    if case.session_flow is None:
        raise ValueError(f"case {case.name} declares no session_flow")
    params = dict(case.params)
    created = now or datetime.now(UTC)
    return SessionItem(
        session_id=case.session_id,
        call_sid=params.get("CallSid", SAMPLE_CALL_SID),
        account_sid=params.get("AccountSid", DEV_ACCOUNT_SID),
        from_=params.get("From"),
        to=params.get("To"),
        direction=params.get("Direction"),
        flow=case.session_flow,
        flow_kind=flow_kind,
        created_at=created.isoformat(),
        expires_at=expires_at(created, 90),
    ).to_item()


def seed_items(case: SampleCase, flows: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What must be in EventsTable before the event (its prior step), for the flows document
    `flows` (config/flows.example.json's content): the session the connect webhook opened."""
    if case.session_flow is None:
        return []
    return [sample_session_item(case, flows["flows"][case.session_flow]["kind"])]


def seed_description(case: SampleCase) -> str | None:
    if case.session_flow is None:
        return None
    return f"the session the connect webhook opened (flow {case.session_flow})"


def function_for(case: SampleCase, template: dict[str, Any] | None = None) -> str:
    """The logical id of the function the template routes the case's path to."""
    matches = {
        route.function for route in template_resources.http_api_routes(template) if route.path == case.route
    }
    if len(matches) != 1:
        raise ValueError(f"template.yaml routes {case.route} to {sorted(matches)}, not one function")
    return matches.pop()


def expected(case: SampleCase, template: dict[str, Any] | None = None) -> sample_expectations.Expected:
    return sample_expectations.expected_for(
        case.name, function_for(case, template), case.description, seed_description(case), case.status
    )


def render_all(cases: Sequence[SampleCase] = CASES) -> dict[str, str]:
    """File name -> content, for every case (its event and its expected answer) and env.json."""
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates or ENV_FILE.removesuffix(".json") in names:
        raise ValueError(f"sample case names must be unique and not 'env': {duplicates or ['env']}")
    template = template_resources.load_template()
    files = {case.file_name: dumps(case.event()) for case in cases}
    files |= {case.expected_file_name: sample_expectations.dumps(expected(case, template)) for case in cases}
    files[ENV_FILE] = dumps({"Parameters": ENV_PLACEHOLDERS})
    return files


SECURITY_DOC = PROJECT_ROOT / "docs" / "security.md"
DOC_BEGIN = "<!-- sample-events:begin (make events writes this table) -->"
DOC_END = "<!-- sample-events:end -->"


def docs_table(cases: Sequence[SampleCase] = CASES) -> str:
    """The table of docs/security.md#sample-events: every event, its function, its expected answer."""
    template = template_resources.load_template()
    lines = [
        "| Event | Function | Needs first | Expected answer (effects) | What it is |",
        "| --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        promise = expected(case, template)
        lines.append(
            f"| `{case.file_name}` | {promise.function} | {promise.seed or '-'} | "
            f"`{promise.summary()}` | {case.description.replace('|', '/').replace('<', '&lt;')} |"
        )
    return "\n".join(lines)


def with_docs_table(text: str, table: str) -> str:
    """`text` (docs/security.md) with the generated table between its markers."""
    begin, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{SECURITY_DOC.name} lacks the markers {DOC_BEGIN!r} ... {DOC_END!r}")
    return text[: begin + len(DOC_BEGIN)] + "\n" + table + "\n" + text[end:]


def stale_files(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Files of `directory` that differ from `files`, are missing, or are not generated."""
    present = {path.name for path in directory.glob("*.json")}
    differing = [
        name
        for name, text in files.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted(set(differing) | (present - set(files)))


def write(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Write every file; remove .json files that no case generates. Returns what changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale_files(directory, files)
    for name in changed:
        path = directory / name
        if name in files:
            path.write_text(files[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the signed sample events in events/.")
    parser.add_argument("--dir", type=Path, default=EVENTS_DIR, help=f"target directory ({EVENTS_DIR})")
    parser.add_argument("--check", action="store_true", help="fail if the directory is stale; write nothing")
    args = parser.parse_args(argv)
    files = render_all()
    doc = SECURITY_DOC.read_text(encoding="utf-8")
    current_doc = with_docs_table(doc, docs_table())
    if args.check:
        stale = stale_files(args.dir, files)
        for name in stale:
            print(f"stale: {args.dir / name}", file=sys.stderr)
        if doc != current_doc:
            print(f"stale: {SECURITY_DOC} (the sample events table)", file=sys.stderr)
        return 1 if stale or doc != current_doc else 0
    for name in write(args.dir, files):
        print(f"{'wrote' if name in files else 'removed'} {args.dir / name}")
    if doc != current_doc:
        SECURITY_DOC.write_text(current_doc, encoding="utf-8")
        print(f"wrote the sample events table of {SECURITY_DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
