"""Turn an HTTP API (payload v2) event into a `WebhookRequest`, refusing what Twilio never sends.

Checks run cheapest first and before anything is written: method (405), size (413), content type
(415), signature header present (403), body decodable (400)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from voice_webhooks.errors import (
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    SignatureRejected,
    UnsupportedMediaType,
)
from voice_webhooks.public_urls import SESSION_PARAM

ALLOWED_METHODS = ("GET", "POST")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio's voice callbacks are a few KB at most; HandoffData is the largest field we accept.
MAX_BODY_BYTES = 64 * 1024


class FormParams(dict[str, str]):
    """Received parameters as twilio's RequestValidator expects them: `getlist` returns every value
    of a repeated name, so the signature is computed over exactly what was sent."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)
        super().__init__(self.pairs)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def repeated_names(self) -> list[str]:
        """Names sent more than once with different values (ambiguous input)."""
        return sorted(name for name in set(self) if len(set(self.getlist(name))) > 1)


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    signature: str = field(repr=False)
    query: FormParams
    form: FormParams
    """Body parameters for POST; empty for GET (Twilio puts everything in the query string)."""

    @property
    def params(self) -> FormParams:
        """Twilio's parameters, wherever the method put them."""
        return self.form if self.method == "POST" else self.query

    @property
    def session_id(self) -> str | None:
        return self.query.get(SESSION_PARAM) or None


def _parse_form(text: str, what: str) -> FormParams:
    if not text:
        return FormParams(())
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict"
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"malformed {what}") from exc
    return FormParams(pairs)


def _body_bytes(event: APIGatewayProxyEventV2) -> bytes:
    body = event.body or ""
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise PayloadTooLarge(f"body over {MAX_BODY_BYTES} bytes")
    if event.is_base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedRequest("body is not valid base64") from exc
    else:
        raw = body.encode("utf-8", errors="surrogateescape")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body over {MAX_BODY_BYTES} bytes")
    return raw


def read_webhook(event: APIGatewayProxyEventV2) -> WebhookRequest:
    method = event.request_context.http.method.upper()
    if method not in ALLOWED_METHODS:
        raise MethodNotAllowed(f"method {method} not allowed; use GET or POST")

    if len(event.raw_query_string) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"query string over {MAX_BODY_BYTES} bytes")
    raw_body = _body_bytes(event) if method == "POST" else b""
    if method == "POST":
        content_type = (event.headers.get("content-type") or "").split(";")[0]
        if content_type.strip().lower() != FORM_CONTENT_TYPE:
            raise UnsupportedMediaType(f"content type must be {FORM_CONTENT_TYPE}")

    signature = event.headers.get(SIGNATURE_HEADER) or ""
    if not signature:
        raise SignatureRejected("missing X-Twilio-Signature header")

    try:
        body_text = raw_body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("form body must be URL-encoded ASCII") from exc
    return WebhookRequest(
        method=method,
        signature=signature,
        query=_parse_form(event.raw_query_string, "query string"),
        form=_parse_form(body_text, "form body"),
    )
