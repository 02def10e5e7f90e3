"""What `read_webhook` refuses before any signature work: 405, 415, 413, 403 (no header), 400, in
that order, and what it accepts as well-formed (see the module docstring for the rule)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from voice_webhooks.edge.request import MAX_BODY_BYTES, MAX_QUERY_BYTES, WebhookRequest, read_webhook
from voice_webhooks.errors import (
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    SignatureRejected,
    UnsupportedMediaType,
    WebhookError,
)
from voicedev.twilio_signing import SAMPLE_API_DOMAIN, http_api_event

URL = f"https://{SAMPLE_API_DOMAIN}/voice/connect"
SIGNATURE = "c2lnbmF0dXJlIG5vdCBjaGVja2VkIGhlcmU="  # read_webhook only checks that one is present


def raw_event(
    method: str = "POST",
    body: str | None = "AccountSid=AC1&To=%2B15550100001",
    *,
    base64_body: bool = True,
    content_type: str | None = "application/x-www-form-urlencoded",
    signature: str | None = SIGNATURE,
    query: str = "",
) -> dict[str, Any]:
    """An event whose body and query are exactly the given text (not re-encoded)."""
    url = f"{URL}?{query}" if query else URL
    event: dict[str, Any] = http_api_event(
        "POST" if method == "POST" else "GET", url, token=None, signature=signature, content_type=content_type
    )
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    elif base64_body:
        event["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = False
    return event


def read(event: dict[str, Any]) -> WebhookRequest:
    return read_webhook(APIGatewayProxyEventV2(event))


def b64_event(raw: bytes) -> dict[str, Any]:
    event = raw_event(body="")
    event["body"] = base64.b64encode(raw).decode()
    return event


# --- 405 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND"])
def test_methods_other_than_get_and_post_are_405(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        read(raw_event(method, signature=None, content_type="application/json", body="\x00"))
    assert refused.value.status == 405


# --- 415 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencodedx",
    ],
)
def test_post_with_another_content_type_is_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        read(raw_event(content_type=content_type))
    assert refused.value.status == 415


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-Urlencoded;charset=UTF-8",
        'application/x-www-form-urlencoded; charset="utf-8"',
    ],
)
def test_form_content_type_is_accepted_with_or_without_utf8_charset(content_type: str) -> None:
    assert read(raw_event(content_type=content_type)).params["To"] == "+15550100001"


def test_form_content_type_with_another_charset_is_415() -> None:
    # Percent-escapes are decoded as UTF-8; a Latin-1 body would be read wrongly
    with pytest.raises(UnsupportedMediaType):
        read(raw_event(content_type="application/x-www-form-urlencoded; charset=iso-8859-1"))


def test_get_needs_no_content_type() -> None:
    request = read(raw_event("GET", body=None, content_type=None, query="AccountSid=AC1&To=%2B1555"))

    assert request.params == {"AccountSid": "AC1", "To": "+1555"}


# --- 413 ----------------------------------------------------------------------------------


def test_plain_body_over_the_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        read(raw_event(body="a=" + "x" * (MAX_BODY_BYTES - 1), base64_body=False))
    assert refused.value.status == 413


def test_base64_body_decoding_to_more_than_the_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        read(raw_event(body="a=" + "x" * (MAX_BODY_BYTES - 1)))


def test_base64_body_at_the_limit_is_accepted_although_its_encoding_is_longer() -> None:
    # Given a body of exactly the limit: base64 makes it a third longer on the wire
    body = "a=" + "x" * (MAX_BODY_BYTES - 2)
    event = raw_event(body=body)
    assert len(event["body"]) > MAX_BODY_BYTES

    # Then the limit applies to the decoded bytes
    assert len(read(event).params["a"]) == MAX_BODY_BYTES - 2


def test_query_string_over_the_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        read(raw_event("GET", body=None, query="a=" + "x" * MAX_QUERY_BYTES))


# --- 403: no signature header ---------------------------------------------------------------


def test_missing_signature_header_is_403_before_the_body_is_decoded() -> None:
    with pytest.raises(SignatureRejected) as refused:
        read(raw_event(body="%zz", signature=None))
    assert refused.value.status == 403


# --- 400: malformed -----------------------------------------------------------------------------


def test_body_that_is_not_base64_is_400() -> None:
    event = raw_event()
    event["body"] = "not base64!"

    with pytest.raises(MalformedRequest, match="base64"):
        read(event)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"a=caf\xc3\xa9", "ASCII"),  # raw UTF-8: Twilio percent-encodes it
        (b"a=\xff", "ASCII"),  # not even UTF-8
        (b"a=%ff", "UTF-8"),  # escape of a byte that is not UTF-8
        (b"a=%C3", "UTF-8"),  # truncated UTF-8 sequence
        (b"a=%zz", "%"),  # not an escape
        (b"a=%4", "%"),  # half an escape
        (b"a=1&b=%", "%"),  # a lone % at the end
    ],
)
def test_undecodable_base64_body_is_400(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedRequest, match=reason) as refused:
        read(b64_event(raw))
    assert refused.value.status == 400


@pytest.mark.parametrize("body", ["a=café", "a=\ud800", "a=\U0001f600", "a=\x80"])
def test_non_ascii_plain_body_is_400(body: str) -> None:
    # Including lone surrogates, which JSON events can carry and UTF-8 cannot encode
    with pytest.raises(MalformedRequest, match="ASCII"):
        read(raw_event(body=body, base64_body=False))


@pytest.mark.parametrize("query", ["session=%zz", "session=%ff", "session=caf\u00e9"])
def test_undecodable_query_string_is_400(query: str) -> None:
    with pytest.raises(MalformedRequest, match="query string"):
        read(raw_event(query=query))


# --- accepted shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a=b=c", [("a", "b=c")]),  # only the first = separates
        ("a=1&&b=2", [("a", "1"), ("b", "2")]),  # empty fields are skipped
        ("&a=1&", [("a", "1")]),
        ("flag&a=1", [("flag", ""), ("a", "1")]),  # a name without = has a blank value
        ("FromCity=&a=+x%20y%2B", [("FromCity", ""), ("a", " x y+")]),  # + is a space, %2B a plus
        ("a=%E2%9C%93", [("a", "\u2713")]),  # percent-encoded UTF-8
        ("", []),
    ],
)
def test_unambiguous_form_shapes_are_accepted(body: str, expected: list[tuple[str, str]]) -> None:
    assert list(read(raw_event(body=body)).form.pairs) == expected


def test_get_body_is_ignored() -> None:
    # Twilio never sends one, and nothing in it would be signed
    event = raw_event("GET", body="%zz", content_type=None, query="a=1")

    assert read(event).params == {"a": "1"}


def test_post_reads_twilio_parameters_from_the_body_and_the_session_from_the_query() -> None:
    request = read(raw_event(body="AccountSid=AC1&CallSid=CA1", query="session=CA1-ab"))

    assert request.params == {"AccountSid": "AC1", "CallSid": "CA1"}
    assert request.session_id == "CA1-ab"


CALL = "CA" + "1" * 32
SIGNED = "AccountSid=AC1&CallSid=" + CALL + "&Status=call-answered"


def test_twilio_parameters_of_a_get_callback_leave_out_our_session_parameter() -> None:
    # Given the same callback delivered by GET (all in the query) and by POST (session in the query)
    get = read(raw_event("GET", body=None, content_type=None, query=f"session=abc&{SIGNED}"))
    post = read(raw_event(body=SIGNED, query="session=abc"))

    # Then Twilio's parameters are the same either way, without our own `session`
    expected = {"AccountSid": "AC1", "CallSid": CALL, "Status": "call-answered"}
    assert get.twilio_params == expected
    assert post.twilio_params == expected


def test_the_session_comes_from_the_url_then_from_the_call_sid_else_the_request_is_malformed() -> None:
    from_url = f"{CALL}-0123456789abcdef"

    assert read(raw_event(body=SIGNED, query=f"session={from_url}")).callback_session_id() == from_url
    assert read(raw_event(body=SIGNED)).callback_session_id() == CALL
    with pytest.raises(MalformedRequest):
        read(raw_event(body="AccountSid=AC1", query="session=")).callback_session_id()
    with pytest.raises(MalformedRequest):
        read(raw_event(body=SIGNED, query="session=not-ours")).callback_session_id()


# --- order -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_kwargs", "expected"),
    [
        # a PUT that is also unsigned, oversized and of the wrong type: 405 first
        (
            {
                "method": "PUT",
                "content_type": "text/plain",
                "signature": None,
                "body": "x" * (MAX_BODY_BYTES + 1),
            },
            405,
        ),
        # wrong type, oversized, unsigned: 415 next
        ({"content_type": "text/plain", "signature": None, "body": "x" * (MAX_BODY_BYTES + 1)}, 415),
        # oversized and unsigned: 413
        ({"signature": None, "body": "x" * (MAX_BODY_BYTES + 1)}, 413),
        # unsigned and malformed: 403
        ({"signature": None, "body": "a=%zz"}, 403),
        # signed but malformed: 400
        ({"body": "a=%zz"}, 400),
    ],
)
def test_checks_run_in_order(event_kwargs: dict[str, Any], expected: int) -> None:
    with pytest.raises(WebhookError) as refused:
        read(raw_event(**event_kwargs))
    assert refused.value.status == expected
