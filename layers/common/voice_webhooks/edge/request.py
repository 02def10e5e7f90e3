"""Turn an HTTP API (payload v2) event into a `WebhookRequest`, refusing what Twilio never sends.

Checks run cheapest first, and nothing here reads a dependency: method (405), content type of a
POST (415), size (413), signature header present (403), body and query decodable (400). The
signature itself is checked next, by `signature.verify_request` (see docs/security.md).

What counts as malformed (400) follows the WHATWG `application/x-www-form-urlencoded` parser, which
is what Twilio's encoder produces, with strict decoding:
- refused: a body that is not valid base64 when `isBase64Encoded`, any raw byte outside ASCII
  (Twilio percent-encodes everything), a `%` not followed by two hex digits, percent-escapes that
  do not decode to UTF-8. None of these has one right reading, so guessing one is not an option.
- accepted: empty fields (`a=1&&b=2`, a leading or trailing `&`) are skipped, a field without `=`
  is a name with a blank value, only the first `=` separates (`a=b=c` is `a` = `b=c`), `+` is a
  space. These shapes have exactly one reading, and the signature is computed over the parsed
  parameters, so accepting them can never let an unsigned value in; refusing them could only
  refuse a request Twilio signed (an operator's hand-written callback URL such as `?debug&x=1`).
A name sent twice with different values is ambiguous too, but that is answered (400) only after
the signature passed, by `signature.verify_request`: an unsigned request learns nothing."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from voice_webhooks.edge.public_urls import SESSION_PARAM, api_base_url, signed_url
from voice_webhooks.errors import (
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    SignatureRejected,
    UnsupportedMediaType,
)

ALLOWED_METHODS = ("GET", "POST")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Form bodies are percent-encoded ASCII; the escapes decode as UTF-8, so no other charset makes sense.
ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})
SIGNATURE_HEADER = "X-Twilio-Signature"
# Present when a Webhooks Rule signed the request with its SharedKey (edge/signature.py).
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
# Twilio's voice callbacks are a few KB at most; HandoffData is the largest field we accept.
MAX_BODY_BYTES = 64 * 1024
MAX_QUERY_BYTES = 64 * 1024
# Far above the session ids we mint (51 characters), well below DynamoDB's 2048-byte key limit.
MAX_SESSION_ID_BYTES = 256
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class FormParams(dict[str, str]):
    """Received parameters as twilio's RequestValidator expects them: `getall` (and `getlist`)
    returns every value of a repeated name, so the signature is computed over exactly what was
    sent."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)
        super().__init__(self.pairs)
        # The validator asks for every name's values: grouped once here rather than a scan of all
        # pairs per name (quadratic in the number of parameters).
        self._values: dict[str, list[str]] = {}
        for key, value in self.pairs:
            self._values.setdefault(key, []).append(value)

    def getall(self, name: str) -> list[str]:
        """What twilio's validator tries first: without it, it asks `getall`, catches the
        AttributeError and asks `getlist`, for every name of every request (about 40% of the time
        a signature over Twilio's 27 usual parameters takes)."""
        return list(self._values.get(name, ()))

    getlist = getall

    def repeated_names(self) -> list[str]:
        """Names sent more than once with different values (ambiguous input)."""
        # Asked on every request: a name sent once (nearly all) is passed over without copying its
        # values into a list and a set.
        values = self._values
        return sorted(name for name in self if len(values.get(name, ())) > 1 and len(set(values[name])) > 1)


@dataclass(frozen=True)
class WebhookRequest:
    """One Twilio request as received: what the routes need, and nothing of API Gateway's event.

    Built by `read_webhook`; the edge verifies it (signature, account, session) before any route
    sees it, so a route's request is always one Twilio signed."""

    method: str
    signature: str = field(repr=False)
    query: FormParams
    form: FormParams
    """Body parameters for POST; empty for GET (Twilio puts everything in the query string)."""
    signature_settings: str | None = None
    """`X-Twilio-Webhooks-Signature-Settings` when a Webhooks Rule signed with a SharedKey."""
    url: str = ""
    """The URL Twilio signed (PUBLIC_BASE_URL or the event's, plus the raw query string)."""
    base_url: str = ""
    """Where Twilio reaches this API: the base of the callback URLs we hand out."""

    @property
    def params(self) -> FormParams:
        """Twilio's parameters, wherever the method put them."""
        return self.form if self.method == "POST" else self.query

    @property
    def twilio_params(self) -> dict[str, str]:
        """Twilio's parameters as signed. For a GET, Twilio appends its parameters to the query of
        our URL, so our own `session` parameter is dropped from them."""
        params = dict(self.params)
        if self.method == "GET":
            params.pop(SESSION_PARAM, None)
        return params

    @property
    def session_param(self) -> str | None:
        return self.query.get(SESSION_PARAM) or None

    @property
    def session_id(self) -> str | None:
        """The session a callback belongs to: our `session` query parameter; for URLs configured by
        hand without it, the CallSid (the documented derivation). None when neither is there."""
        return self.session_param or self.params.get("CallSid") or None

    def callback_session_id(self) -> str:
        """`session_id`, refused (400) when missing, or too long for an id of ours: as a DynamoDB
        key it would fail every write (a 5xx, retried by Twilio to no end)."""
        if self.session_param and not SESSION_ID.fullmatch(self.session_param):
            raise MalformedRequest(f"{SESSION_PARAM}: not a session id of this service")
        session_id = self.session_id
        if not session_id:
            raise MalformedRequest(
                f"no session: the URL has no `{SESSION_PARAM}` parameter and there is no CallSid"
            )
        return session_id

    def ambiguous_names(self) -> list[str]:
        """Names repeated with different values in the query string or in the body: which one is
        meant (our `session`, Twilio's `AccountSid`) would be a guess."""
        return sorted(set(self.query.repeated_names()) | set(self.form.repeated_names()))


# `<CallSid>` (a session a callback started) or `<CallSid>-<16 hex>` (minted by connect): anything
# else in `session` is no id of ours (docs/data-model.md).
SESSION_ID = re.compile(r"^CA[0-9a-fA-F]{32}(-[0-9a-f]{16})?$")


def parse_form(text: str, what: str = "form body") -> FormParams:
    """Parse `application/x-www-form-urlencoded` text (a body or a raw query string); see the
    module docstring for what is refused."""
    if not text:
        return FormParams(())
    if not text.isascii():
        raise MalformedRequest(f"{what} must be URL-encoded ASCII")
    if _BAD_ESCAPE.search(text):
        raise MalformedRequest(f"{what} has a % not followed by two hex digits")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"{what} does not decode to UTF-8") from exc
    return FormParams(pairs)


def content_type_is_form(header: str | None) -> bool:
    """`application/x-www-form-urlencoded`, optionally with a UTF-8 (or ASCII) charset."""
    media_type, _, parameters = (header or "").partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ACCEPTED_CHARSETS:
            return False
    return True


def _decoded_size(body: str) -> int:
    """Bytes a base64 text decodes to, computed without decoding it (four characters carry three
    bytes, minus the padding)."""
    return len(body) * 3 // 4 - body[-2:].count("=")


def _check_sizes(event: APIGatewayProxyEventV2, method: str) -> None:
    if len(event.raw_query_string) > MAX_QUERY_BYTES:
        raise PayloadTooLarge(f"query string over {MAX_QUERY_BYTES} bytes")
    if method != "POST":
        return
    body = event.body or ""
    # A non-base64 body of more characters than the limit has at least that many bytes.
    size = _decoded_size(body) if event.is_base64_encoded else len(body)
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body over {MAX_BODY_BYTES} bytes")


def _body_text(event: APIGatewayProxyEventV2) -> str:
    body = event.body or ""
    if not event.is_base64_encoded:
        return body
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRequest("body is not valid base64") from exc
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("form body must be URL-encoded ASCII") from exc


def read_webhook(event: APIGatewayProxyEventV2, public_base_url: str | None = None) -> WebhookRequest:
    """The request, or the refusal for its shape (see the module docstring). `public_base_url` is
    PUBLIC_BASE_URL (validated by the settings), or None to derive the URLs from the event."""
    method = event.request_context.http.method.upper()
    if method not in ALLOWED_METHODS:
        raise MethodNotAllowed(f"method {method} not allowed; use GET or POST")
    # Built once (each access to the event's `headers` makes a new case-insensitive copy): a POST
    # needs it for its content type, before the size check; a GET only after that check.
    headers = event.headers if method == "POST" else None
    if headers is not None and not content_type_is_form(headers.get("content-type")):
        raise UnsupportedMediaType(f"content type must be {FORM_CONTENT_TYPE} (UTF-8)")
    _check_sizes(event, method)
    if headers is None:
        headers = event.headers

    signature = headers.get(SIGNATURE_HEADER) or ""
    if not signature:
        raise SignatureRejected("missing X-Twilio-Signature header")

    # A GET's body (Twilio never sends one) is ignored: nothing in it is signed.
    form = parse_form(_body_text(event), "form body") if method == "POST" else FormParams(())
    return WebhookRequest(
        method=method,
        signature=signature,
        query=parse_form(event.raw_query_string, "query string"),
        form=form,
        signature_settings=headers.get(SIGNATURE_SETTINGS_HEADER),
        url=signed_url(event, public_base_url),
        base_url=api_base_url(event, public_base_url),
    )
