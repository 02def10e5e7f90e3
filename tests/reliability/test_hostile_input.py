"""Hostile input against every route: bodies, headers, methods, query strings and content types.

- Unsigned (no signature, a made-up one, or one Twilio made for other content): always a 4xx with a
  reason, never a 5xx, and not one DynamoDB or SQS write (the tap sees every call; the table and the
  queue are compared before and after as well).
- Signed by the account's token over whatever the request carries, however odd: never a 5xx; a 400
  or 403 comes with a reason and writes nothing; a 2xx is a TwiML document (connect, action,
  fallback) or an empty 204 (status, recording).
- The classic cases, one by one, with the answer docs/security.md gives each: empty body, `a=b=c`,
  `&&`, percent-encoding errors, non-UTF-8 bytes, huge values, repeated names, a SequenceNumber of
  `0`, `-1`, `1e3`, `99999999999999999999`. (`&&` and `a=b=c` have one reading under the WHATWG form
  rules and are accepted; a signed request carrying them is answered like any other.)"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from voice_webhooks.edge import routes
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, SAMPLE_API_DOMAIN, random_sid, sign

from tests.reliability.conftest import RELIABILITY, Moto
from tests.reliability.harness import (
    FUNCTIONS,
    TWIML_ROUTES,
    Answer,
    Session,
    connect_params,
    open_session,
    writes,
)
from tests.reliability.ledger import LEDGER, SLOW_TIMEOUT
from tests.reliability.plans import action_params, recording_template, status_template

ROUTES = tuple(FUNCTIONS)
FORM = "application/x-www-form-urlencoded"
OTHER_ACCOUNT = "AC" + "1" * 32
OTHER_TOKEN = "not_the_token_twilio_signs_with"


@dataclass(frozen=True)
class RawRequest:
    """An HTTP API (payload v2) event, built byte by byte: nothing is fixed up on the way."""

    route: str
    method: str = "POST"
    query: str = ""
    body: bytes | str | None = b""
    base64_body: bool = True
    content_type: str | None = f"{FORM}; charset=utf-8"
    signature: str | None = "<valid>"
    """`<valid>`: signed with the account's token over the URL and the form as the parser reads it;
    None: no header at all; anything else is sent as is."""
    headers: Mapping[str, str] = field(default_factory=dict)
    not_base64: bool = False
    """Send `body` as text while the event says it is base64."""

    @property
    def url(self) -> str:
        return f"https://{SAMPLE_API_DOMAIN}{self.route}" + (f"?{self.query}" if self.query else "")

    def signed_pairs(self) -> list[tuple[str, str]]:
        if self.method.upper() != "POST":
            return []
        text = self.body.decode("latin-1") if isinstance(self.body, bytes) else self.body or ""
        return parse_qsl(text, keep_blank_values=True)

    def event(self, token: str = DEV_AUTH_TOKEN) -> dict[str, Any]:
        headers = {"host": SAMPLE_API_DOMAIN, "user-agent": "TwilioProxy/1.1"}
        if self.content_type is not None:
            headers["content-type"] = self.content_type
        if self.signature == "<valid>":
            headers["x-twilio-signature"] = sign(self.url, self.signed_pairs(), token)
        elif self.signature is not None:
            headers["x-twilio-signature"] = self.signature
        # API Gateway hands header names lowercased, repeated ones joined with commas.
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": f"ANY {self.route}",
            "rawPath": self.route,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": SAMPLE_API_DOMAIN.split(".")[0],
                "domainName": SAMPLE_API_DOMAIN,
                "domainPrefix": SAMPLE_API_DOMAIN.split(".")[0],
                "http": {
                    "method": self.method,
                    "path": self.route,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "198.51.100.7",
                    "userAgent": "TwilioProxy/1.1",
                },
                "requestId": "hostile",
                "routeKey": f"ANY {self.route}",
                "stage": "$default",
                "time": "21/Nov/2026:03:00:00 +0000",
                "timeEpoch": 1795143600000,
            },
            "isBase64Encoded": self.base64_body and self.body is not None,
        }
        if self.body is not None:
            raw = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
            if self.not_base64:
                event["body"], event["isBase64Encoded"] = raw.decode("utf-8", "replace"), True
            elif self.base64_body:
                event["body"] = base64.b64encode(raw).decode()
            else:
                event["body"] = raw.decode("utf-8", "replace")
        return event


def signature_is_valid(request: RawRequest, token: str = DEV_AUTH_TOKEN) -> bool:
    """Whether the request, as the product's parser reads it, carries the account's signature."""
    event = request.event()
    signature = event["headers"].get("x-twilio-signature")
    if not signature:
        return False
    try:
        pairs = parse_qsl(
            base64.b64decode(event.get("body") or "").decode("ascii")
            if event["isBase64Encoded"]
            else event.get("body") or "",
            keep_blank_values=True,
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError):
        return False
    grouped: dict[str, list[str]] = {}
    for name, value in pairs if request.method.upper() == "POST" else []:
        grouped.setdefault(name, []).append(value)

    class Multi(dict[str, str]):
        def getlist(self, name: str) -> list[str]:
            return grouped[name]

    params = Multi({name: values[0] for name, values in grouped.items()})
    return bool(RequestValidator(token).validate(request.url, params, signature))


def valid_params(route: str, session: Session) -> dict[str, str]:
    """What Twilio sends to `route` for `session`."""
    if route == routes.ACTION:
        return {**action_params("conversation-session-success"), "CallSid": session.call_sid}
    if route == routes.STATUS:
        return status_template()
    if route == routes.RECORDING:
        return {**recording_template("conversation", "completed"), "CallSid": session.call_sid}
    params = connect_params(session.call_sid)
    if route == routes.FALLBACK:
        params.update(ErrorCode="11200", ErrorUrl=f"https://{SAMPLE_API_DOMAIN}{routes.CONNECT}")
    return params


def session_query(route: str, session: Session) -> str:
    return "" if route in (routes.CONNECT, routes.FALLBACK) else f"session={session.session_id}"


def success_status(route: str) -> int:
    return 200 if route in TWIML_ROUTES else 204


@dataclass
class Outcome:
    answer: Answer
    writes: int


def send(moto: Moto, request: RawRequest, token: str = DEV_AUTH_TOKEN) -> Outcome:
    with moto.tap.watching() as calls:
        answer = moto.env.send(request.route, request.event(token))
    return Outcome(answer, len(writes(calls)))


def check_answer(request: RawRequest, outcome: Outcome) -> list[str]:
    """What holds for every request: no 5xx; a refusal says why and writes nothing; a success is the
    route's kind of answer."""
    answer = outcome.answer
    problems = []
    if answer.status >= 500:
        problems.append(f"5xx: {answer.status} {answer.body[:200]}")
    elif answer.status >= 400:
        if not answer.body.strip():
            problems.append(f"{answer.status} without a reason")
        if outcome.writes:
            problems.append(f"{answer.status} after {outcome.writes} write(s)")
    elif request.route in TWIML_ROUTES:
        try:
            answer.twiml()
        except AssertionError as exc:
            problems.append(f"not TwiML: {exc}")
    elif answer.status != 204:
        problems.append(f"event route answered {answer.status}, not 204")
    return problems


# ---------------------------------------------------------------------------------------------------
# Strategies

KNOWN_NAMES = sorted(
    {
        *connect_params("CA" + "0" * 32),
        *action_params("conversation-session-success"),
        *action_params("relay-ended-handoff"),
        *status_template(),
        *recording_template("voicemail", "absent"),
        "SessionStatus",
        "HandoffData",
        "DialCallStatus",
        "session",
    }
)
HOSTILE_VALUES = [
    "",
    " ",
    "0",
    "-1",
    "1e3",
    "99999999999999999999",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: str.isdigit() says yes
    "+5",
    "00005",
    "true",
    "TRUE",
    "null",
    "{}",
    '{"target": "+15551234567"}',
    '{"target": "sales"}',
    "<Say>injected</Say>",
    "]]><Hangup/>",
    "\x00",
    "\r\n",
    "\u202e",
    "\U0001f600",
    "%",
    "a=b=c",
    "&",
    "A" * 5000,
    "Sat, 7 May 2022 00:58:19 +0000",
    "Sat, 7 May 2022 00:58:19",
    "not a date",
    "CA" + "0" * 32,
    DEV_ACCOUNT_SID,
    OTHER_ACCOUNT,
    "RE" + "z" * 32,
    "completed",
    "in-progress",
    "session-success",
]
values = st.one_of(st.sampled_from(HOSTILE_VALUES), st.text(max_size=30))
names = st.one_of(st.sampled_from(KNOWN_NAMES), st.text(min_size=0, max_size=12))
METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "post", "get", "TRACE", "CONNECT", ""]
CONTENT_TYPES = [
    None,
    FORM,
    f"{FORM}; charset=utf-8",
    f'{FORM}; charset="UTF-8"',
    f"{FORM}; charset=latin-1",
    f"{FORM};charset=utf-16",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "",
    ";;;",
]
RAW_FRAGMENTS = [
    "",
    "&&",
    "&a=b=c",
    "&flag",
    "&=x",
    "&+=+",
    "&%20=%20",
    "&",
    "&&&AccountSid=" + DEV_ACCOUNT_SID,
]


@st.composite
def form_texts(draw: st.DrawFn) -> str:
    """Form-ish text: encoded pairs with raw fragments, or arbitrary text."""
    if draw(st.booleans()):
        pairs = draw(st.lists(st.tuples(names, values), max_size=6))
        return urlencode(pairs) + draw(st.sampled_from(RAW_FRAGMENTS))
    return draw(st.text(max_size=80))


@st.composite
def unsigned_requests(draw: st.DrawFn, sessions: Sequence[Session]) -> RawRequest:
    route = draw(st.sampled_from(ROUTES))
    session = draw(st.sampled_from(sessions))
    query = draw(st.sampled_from(["", session_query(route, session)]))
    extra_query = draw(st.one_of(st.just(""), form_texts()))
    query = "&".join(part for part in (query, extra_query) if part)
    kind = draw(st.sampled_from(["form", "valid-form", "bytes", "text", "none"]))
    body: bytes | str | None
    if kind == "form":
        body = draw(form_texts())
    elif kind == "valid-form":
        body = urlencode(valid_params(route, session)) + draw(st.sampled_from(RAW_FRAGMENTS))
    elif kind == "bytes":
        body = draw(st.binary(max_size=120))
    elif kind == "text":
        body = draw(st.text(max_size=80))
    else:
        body = None
    return RawRequest(
        route=route,
        method=draw(st.sampled_from(METHODS)),
        query=query,
        body=body,
        base64_body=draw(st.booleans()),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        signature=draw(
            st.one_of(
                st.none(),
                st.just(""),
                st.text(max_size=40),
                st.just("<valid>"),  # made with the wrong token below, or for other content
            )
        ),
        headers=draw(
            st.dictionaries(
                st.sampled_from(
                    ["x-twilio-signature", "content-type", "x-forwarded-for", "i-twilio-idempotency-token"]
                ),
                st.text(max_size=20),
                max_size=2,
            )
        ),
    )


@st.composite
def signed_requests(draw: st.DrawFn, sessions: Sequence[Session]) -> RawRequest:
    route = draw(st.sampled_from(ROUTES))
    session = draw(st.sampled_from(sessions))
    method = draw(st.sampled_from(["POST", "GET"]))
    pairs = list(valid_params(route, session).items())
    for _ in range(draw(st.integers(0, 4))):
        operation = draw(st.sampled_from(["set", "drop", "repeat", "add"]))
        if operation == "set" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(values))
        elif operation == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif operation == "repeat" and pairs:
            name, value = pairs[draw(st.integers(0, len(pairs) - 1))]
            pairs.append((name, draw(st.one_of(st.just(value), values))))
        else:
            pairs.append((draw(names), draw(values)))
    session_param = draw(
        st.sampled_from(
            [
                session_query(route, session),
                "",
                f"session={session.session_id}&session={session.session_id}",
                f"session={session.session_id}&session=other",
                "session=",
                "session=" + quote("CA" + "0" * 32 + "-\u00e9\U0001f600"),
                "session=" + "s" * 3000,
                "session=" + quote(" ".join(["x"] * 10)),
            ]
        )
    )
    encoded = urlencode(pairs) + draw(st.sampled_from(RAW_FRAGMENTS))
    if method == "GET":
        query = "&".join(part for part in (session_param, encoded) if part)
        return RawRequest(route=route, method="GET", query=query, body=None, content_type=None)
    return RawRequest(
        route=route, method="POST", query=session_param, body=encoded, base64_body=draw(st.booleans())
    )


def counted(request: RawRequest, section: str) -> None:
    LEDGER.add("hostile", **{"inputs": 1, section: 1, f"route_{request.route.rsplit('/', 1)[1]}": 1})


# ---------------------------------------------------------------------------------------------------
# Fuzz tests


def open_sessions(moto: Moto, count: int = 3) -> list[Session]:
    return [open_session(moto.env, "CA" + f"{index:032x}") for index in range(1, count + 1)]


def run_unsigned(moto: Moto, examples: int) -> None:
    sessions = open_sessions(moto)
    table_before = sorted(map(repr, moto.table_items()))
    messages_before = moto.mailbox.total()

    @settings(RELIABILITY, max_examples=examples)
    @given(request=unsigned_requests(sessions), wrong_token=st.booleans())
    def unsigned_request_is_refused(request: RawRequest, wrong_token: bool) -> None:
        token = OTHER_TOKEN if request.signature == "<valid>" and wrong_token else DEV_AUTH_TOKEN
        if request.signature == "<valid>" and not wrong_token:
            # Twilio's signature for other content: the same request with one byte more in the query.
            request = RawRequest(
                **{**request.__dict__, "signature": sign(request.url + "x", request.signed_pairs())}
            )
        assume(not signature_is_valid(request) or token == OTHER_TOKEN)
        outcome = send(moto, request, token)
        counted(request, "unsigned")
        problems = check_answer(request, outcome)
        if outcome.answer.ok:
            problems.append(f"an unsigned request was answered {outcome.answer.status}")
        if outcome.writes:
            problems.append(f"an unsigned request made {outcome.writes} write(s)")
        LEDGER.add("hostile", server_errors=outcome.answer.status >= 500, unsigned_writes=outcome.writes)
        assert not problems, f"{request}: {problems}"

    unsigned_request_is_refused()
    # Not one item or message more than the sessions the test opened.
    assert sorted(map(repr, moto.table_items())) == table_before
    assert moto.mailbox.total() == messages_before


def run_signed(moto: Moto, examples: int) -> None:
    sessions = open_sessions(moto)

    @settings(RELIABILITY, max_examples=examples)
    @given(request=signed_requests(sessions))
    def signed_request_is_answered(request: RawRequest) -> None:
        outcome = send(moto, request)
        counted(request, "signed")
        problems = check_answer(request, outcome)
        status = outcome.answer.status
        if status not in (200, 204, 400, 403):
            problems.append(f"unexpected status {status}")
        # A signed request is refused (403) for one of two documented reasons (docs/security.md):
        # its account is not allowed, or its `?session=` belongs to another call.
        other_account = status == 403 and "account" in outcome.answer.body
        other_session = status == 403 and "session belongs to another call" in outcome.answer.body
        if status == 403 and not (other_account or other_session):
            problems.append(
                f"a signed request refused for something else than its account or its session: "
                f"{outcome.answer.body}"
            )
        LEDGER.add(
            "hostile",
            server_errors=status >= 500,
            signed_accepted=200 <= status < 300,
            signed_malformed_400=status == 400,
            signed_other_account_403=other_account,
            signed_other_session_403=other_session,
        )
        assert not problems, f"{request}: {problems}"

    signed_request_is_answered()


def test_unsigned_hostile_requests_get_a_4xx_and_write_nothing(moto: Moto) -> None:
    # Given three open sessions, When hypothesis's unsigned or forged requests hit every route,
    # Then each gets a 4xx with a reason, and the table and queue are as they were
    run_unsigned(moto, examples=300)


def test_signed_hostile_requests_never_get_a_5xx_and_refusals_write_nothing(moto: Moto) -> None:
    # Given three open sessions, When hypothesis's signed but odd requests hit every route,
    # Then none gets a 5xx, refusals say why and write nothing, successes are the route's answer
    run_signed(moto, examples=300)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
def test_unsigned_hostile_requests_thousands(moto: Moto) -> None:
    run_unsigned(moto, examples=3000)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
def test_signed_hostile_requests_thousands(moto: Moto) -> None:
    run_signed(moto, examples=3000)


# ---------------------------------------------------------------------------------------------------
# The classic cases, each with its documented answer


@dataclass(frozen=True)
class Classic:
    name: str
    build: Callable[[str, Session], RawRequest]
    expect: Callable[[str], int]
    """Route -> the status docs/security.md gives this request."""
    reason: str = ""
    """A word the refusal's reason must contain."""
    stored_raw: Callable[[dict[str, str]], dict[str, str]] | None = None
    """For the status route: the `Raw` the event item must hold, from the route's valid params."""


def post(route: str, session: Session, body: bytes | str, **changes: Any) -> RawRequest:
    return RawRequest(**{"route": route, "query": session_query(route, session), "body": body, **changes})


def form(route: str, session: Session, **overrides: str) -> str:
    return urlencode({**valid_params(route, session), **overrides})


def ok(route: str) -> int:
    return success_status(route)


def refused(status: int) -> Callable[[str], int]:
    return lambda _route: status


def sequence_refused(route: str) -> int:
    # Only status callbacks have a SequenceNumber; elsewhere it is one more parameter, kept.
    return 400 if route == routes.STATUS else ok(route)


def huge_session(route: str) -> int:
    # connect and fallback take no session (none is in their URLs).
    return ok(route) if route in (routes.CONNECT, routes.FALLBACK) else 400


CLASSICS = [
    Classic("empty body, signed", lambda r, s: post(r, s, b""), refused(403), "account"),
    Classic("empty body, unsigned", lambda r, s: post(r, s, b"", signature=None), refused(403), "signature"),
    Classic(
        "a=b=c",
        lambda r, s: post(r, s, form(r, s) + "&a=b=c"),
        ok,
        stored_raw=lambda v: {**v, "a": "b=c"},
    ),
    Classic("&& around the fields", lambda r, s: post(r, s, "&&" + form(r, s) + "&&"), ok, stored_raw=dict),
    Classic(
        "a name without =",
        lambda r, s: post(r, s, form(r, s) + "&flag"),
        ok,
        stored_raw=lambda v: {**v, "flag": ""},
    ),
    Classic("%zz", lambda r, s: post(r, s, form(r, s) + "&x=%zz"), refused(400), "%"),
    Classic("%4 (one hex digit)", lambda r, s: post(r, s, form(r, s) + "&x=%4"), refused(400), "%"),
    Classic("trailing %", lambda r, s: post(r, s, form(r, s) + "%"), refused(400), "%"),
    Classic(
        "%zz in the query of a GET",
        lambda r, s: RawRequest(
            route=r,
            method="GET",
            query=session_query(r, s) + "&" + form(r, s) + "&x=%zz",
            body=None,
            content_type=None,
        ),
        refused(400),
        "%",
    ),
    Classic(
        "raw byte 0xff", lambda r, s: post(r, s, form(r, s).encode() + b"&x=\xff"), refused(400), "ASCII"
    ),
    Classic("%ff (not UTF-8)", lambda r, s: post(r, s, form(r, s) + "&x=%ff"), refused(400), "UTF-8"),
    Classic(
        "overlong UTF-8 %C0%AF", lambda r, s: post(r, s, form(r, s) + "&x=%C0%AF"), refused(400), "UTF-8"
    ),
    Classic(
        "raw non-ASCII text body",
        lambda r, s: post(r, s, form(r, s) + "&x=\u00e9", base64_body=False),
        refused(400),
        "ASCII",
    ),
    Classic(
        "body flagged base64 but not base64",
        lambda r, s: post(r, s, "!!" + form(r, s), not_base64=True),
        refused(400),
        "base64",
    ),
    Classic(
        "body over 64 KiB", lambda r, s: post(r, s, form(r, s) + "&Pad=" + "a" * 70_000), refused(413), "over"
    ),
    Classic(
        "query over 64 KiB",
        lambda r, s: post(r, s, form(r, s), query=session_query(r, s) + "&pad=" + "a" * 70_000),
        refused(413),
        "over",
    ),
    Classic(
        "a 60 KB value",
        lambda r, s: post(r, s, form(r, s, CallerCity="a" * 60_000)),
        ok,
        # Over the event's Raw budget (16 KB): accepted, the parameter left out of Raw, the item
        # marked RawTruncated (docs/data-model.md, "Bounded items").
        stored_raw=lambda v: dict(v),
    ),
    Classic(
        "a 3000-character session id",
        lambda r, s: post(r, s, form(r, s), query="session=" + "s" * 3000),
        huge_session,
        "session",
    ),
    Classic(
        "repeated name, same value",
        lambda r, s: post(r, s, form(r, s) + "&AccountSid=" + DEV_ACCOUNT_SID),
        ok,
        stored_raw=dict,
    ),
    Classic(
        "repeated name, another value",
        lambda r, s: post(r, s, form(r, s) + "&AccountSid=" + OTHER_ACCOUNT),
        refused(400),
        "more than once",
    ),
    Classic(
        "repeated session, another value",
        lambda r, s: post(r, s, form(r, s), query=session_query(r, s) + "&session=other"),
        huge_session,  # the same answers: refused where a session is read, ignored elsewhere
        "",
    ),
    Classic(
        "SequenceNumber 0",
        lambda r, s: post(r, s, form(r, s, SequenceNumber="0")),
        sequence_refused,
        "SequenceNumber",
    ),
    Classic(
        "SequenceNumber -1",
        lambda r, s: post(r, s, form(r, s, SequenceNumber="-1")),
        sequence_refused,
        "SequenceNumber",
    ),
    Classic(
        "SequenceNumber 1e3",
        lambda r, s: post(r, s, form(r, s, SequenceNumber="1e3")),
        sequence_refused,
        "SequenceNumber",
    ),
    Classic(
        "SequenceNumber 99999999999999999999",
        lambda r, s: post(r, s, form(r, s, SequenceNumber="99999999999999999999")),
        sequence_refused,
        "SequenceNumber",
    ),
    Classic(
        "SequenceNumber blank",
        lambda r, s: post(r, s, form(r, s, SequenceNumber="")),
        sequence_refused,
        "SequenceNumber",
    ),
    Classic(
        "content type JSON",
        lambda r, s: post(r, s, form(r, s), content_type="application/json"),
        refused(415),
        "content type",
    ),
    Classic(
        "charset latin-1",
        lambda r, s: post(r, s, form(r, s), content_type=f"{FORM}; charset=latin-1"),
        refused(415),
        "content type",
    ),
    Classic(
        "no content type",
        lambda r, s: post(r, s, form(r, s), content_type=None),
        refused(415),
        "content type",
    ),
    Classic("method PUT", lambda r, s: post(r, s, form(r, s), method="PUT"), refused(405), "method"),
    Classic("method DELETE", lambda r, s: post(r, s, form(r, s), method="DELETE"), refused(405), "method"),
]


def test_the_classic_hostile_inputs_get_their_documented_answer_on_every_route(moto: Moto) -> None:
    problems: list[str] = []
    for case in CLASSICS:
        for route in ROUTES:
            # Given a fresh session (so that what a case stores is its own)
            session = open_session(moto.env, random_sid("CA"))
            request = case.build(route, session)
            # When the request arrives
            outcome = send(moto, request)
            counted(request, "classic")
            # Then it gets the answer docs/security.md gives it, with a reason for a refusal
            where = f"{case.name} -> {route}"
            answer, expected = outcome.answer, case.expect(route)
            problems += [f"{where}: {problem}" for problem in check_answer(request, outcome)]
            if answer.status != expected:
                problems.append(f"{where}: expected {expected}, got {answer.status} {answer.body[:120]}")
            elif answer.status >= 400 and case.reason.lower() not in answer.body.lower():
                problems.append(f"{where}: reason {answer.body!r} does not mention {case.reason!r}")
            if case.stored_raw is not None and route == routes.STATUS and answer.ok:
                # and what was accepted is stored exactly as the form rules read it
                params = valid_params(route, session)
                item_key = f"event#conversation#{int(params['SequenceNumber']):010d}"
                key = {"SessionId": session.session_id, "ItemKey": item_key}
                item = moto.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
                if item.get("Raw") != case.stored_raw(params):
                    problems.append(f"{where}: stored Raw {str(item.get('Raw'))[:200]}")
            LEDGER.add("hostile", server_errors=answer.status >= 500)
    assert not problems, "\n".join(problems)


def test_a_session_parameter_is_refused_unless_it_is_one_of_our_ids(moto: Moto) -> None:
    # Regression (found by this suite): a signed callback whose `session` is longer than DynamoDB
    # accepts for a key (2048 bytes) failed every write with a ValidationException: a 503 that Twilio
    # retried, for a request that can never succeed. Now `session` must be an id this service mints
    # (`<CallSid>` or `<CallSid>-<16 hex>`, docs/data-model.md), else a 400 naming it.
    session = open_session(moto.env, random_sid("CA"))
    for route in (routes.STATUS, routes.RECORDING, routes.ACTION):
        body = form(route, session)
        for value, expected in (
            (session.session_id, success_status(route)),
            (session.call_sid, success_status(route)),
            ("s" * 256, 400),
            (quote("\u00e9" * 128), 400),
            (session.session_id + "0", 400),
            (session.session_id.upper(), 400),
        ):
            outcome = send(moto, post(route, session, body, query=f"session={value}"))
            assert outcome.answer.status == expected, (route, value[:20], outcome.answer.body)
            if expected == 400:
                assert outcome.writes == 0
                assert "session" in outcome.answer.body
