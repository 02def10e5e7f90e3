"""Webhooks Rules signatures (X-Twilio-Webhooks-Signature-Settings, HMAC-SHA256 with a SharedKey).

The expected signatures are computed here with hmac/hashlib from Twilio's documented recipe
(URL + the POST parameters sorted by name, each name followed by its value), independently of
both our code and twilio-python's validator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from voice_webhooks.edge.auth_tokens import AuthTokens, parse_secret
from voice_webhooks.edge.request import read_webhook
from voice_webhooks.edge.signature import verify_request
from voice_webhooks.errors import SignatureRejected
from voicedev.sample_events import call_params
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, SAMPLE_API_DOMAIN, http_api_event

URL = f"https://{SAMPLE_API_DOMAIN}/voice/connect"
KEY_ID = "webhooks_sharedkey_0123456789abcdef"
SHARED_KEY = "shk_3f9a1c7e5b2d4f6081a3c5e7"
NEXT_KEY = "shk_next_9b8a7c6d5e4f3a2b1c0d"
ACCOUNTS = frozenset({DEV_ACCOUNT_SID})
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def independent_signature(key: str, url: str, params: dict[str, str], digest: Any = hashlib.sha256) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), digest).digest()).decode()


def tokens(*keys: str) -> AuthTokens:
    return AuthTokens(primary=DEV_AUTH_TOKEN, shared_keys=MappingProxyType({KEY_ID: keys}))


def event(
    params: dict[str, str], signature: str, settings: str | None, method: str = "POST"
) -> dict[str, Any]:
    headers = {SETTINGS_HEADER: settings} if settings is not None else {}
    return http_api_event(method, URL, params, signature=signature, extra_headers=headers)


def verify(raw: dict[str, Any], keys: AuthTokens) -> None:
    request = read_webhook(APIGatewayProxyEventV2(raw))
    verify_request(request, request.url, keys, ACCOUNTS)


def test_a_known_vector_matches_the_recipe() -> None:
    # A fixed vector, so that the recipe itself cannot drift: computed once with `openssl dgst
    # -sha256 -hmac key` over "https://example.com/hookA1B2".
    assert independent_signature("key", "https://example.com/hook", {"A": "1", "B": "2"}) == (
        base64.b64encode(hmac.new(b"key", b"https://example.com/hookA1B2", hashlib.sha256).digest()).decode()
    )
    assert len(base64.b64decode(independent_signature("key", URL, {}))) == 32  # SHA-256, not SHA-1


def test_a_request_signed_with_the_shared_key_is_accepted() -> None:
    params = dict(call_params())
    signature = independent_signature(SHARED_KEY, URL, params)

    verify(event(params, signature, f"key={KEY_ID},algorithm=HMAC_SHA256"), tokens(SHARED_KEY))


def test_a_get_signed_with_the_shared_key_is_accepted() -> None:
    params = dict(call_params())
    url = URL + "?" + urlencode(params)
    raw = http_api_event(
        "GET",
        url,
        signature=independent_signature(SHARED_KEY, url, {}),
        extra_headers={SETTINGS_HEADER: f"algorithm=HMAC_SHA256, key={KEY_ID}"},
    )

    verify(raw, tokens(SHARED_KEY))


def test_both_keys_of_a_rotation_are_accepted() -> None:
    params = dict(call_params())
    for key in (SHARED_KEY, NEXT_KEY):
        raw = event(params, independent_signature(key, URL, params), f"key={KEY_ID},algorithm=HMAC_SHA256")
        verify(raw, tokens(SHARED_KEY, NEXT_KEY))


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ("key=webhooks_sharedkey_unknown,algorithm=HMAC_SHA256", "a key id we hold no key for"),
        (f"key={KEY_ID},algorithm=HMAC_SHA512", "an algorithm we do not allow"),
        (f"key={KEY_ID},algorithm=HMAC_SHA1", "SHA-1 with a shared key"),
        (f"key={KEY_ID}", "no algorithm"),
        ("algorithm=HMAC_SHA256", "no key id"),
        ("", "an empty header"),
        (f"key={KEY_ID},algorithm=HMAC_SHA256,key=other", "a repeated part"),
    ],
)
def test_anything_else_in_the_settings_header_is_403(settings: str, why: str) -> None:
    params = dict(call_params())
    digest = hashlib.sha1 if "SHA1" in settings else hashlib.sha256
    raw = event(params, independent_signature(SHARED_KEY, URL, params, digest), settings)

    with pytest.raises(SignatureRejected):
        verify(raw, tokens(SHARED_KEY))


def test_the_shared_key_signature_is_not_accepted_without_the_header() -> None:
    # Without the header the auth token signs (SHA-1): a SHA-256 shared-key signature is wrong
    params = dict(call_params())
    with pytest.raises(SignatureRejected):
        verify(event(params, independent_signature(SHARED_KEY, URL, params), None), tokens(SHARED_KEY))


def test_without_the_header_the_auth_token_signs_with_sha1() -> None:
    params = dict(call_params())
    verify(
        event(params, independent_signature(DEV_AUTH_TOKEN, URL, params, hashlib.sha1), None),
        tokens(SHARED_KEY),
    )


def test_the_auth_token_cannot_stand_in_for_a_shared_key() -> None:
    # A header naming a key id makes the auth token irrelevant, whatever the hash
    params = dict(call_params())
    for digest in (hashlib.sha1, hashlib.sha256):
        raw = event(
            params,
            independent_signature(DEV_AUTH_TOKEN, URL, params, digest),
            f"key={KEY_ID},algorithm=HMAC_SHA256",
        )
        with pytest.raises(SignatureRejected):
            verify(raw, tokens(SHARED_KEY))


def test_a_tampered_parameter_fails_the_shared_key_signature() -> None:
    params = dict(call_params())
    signature = independent_signature(SHARED_KEY, URL, params)
    with pytest.raises(SignatureRejected):
        verify(
            event({**params, "To": "+15550100002"}, signature, f"key={KEY_ID},algorithm=HMAC_SHA256"),
            tokens(SHARED_KEY),
        )


# --- the secret ------------------------------------------------------------------------------------


def test_the_secret_holds_shared_keys_by_id_one_or_two_each() -> None:
    parsed = parse_secret('{"authToken": "tok", "sharedKeys": {"a": "k1", "b": ["k2", "k3"]}}')
    assert parsed.shared_keys_for("a") == ("k1",)
    assert parsed.shared_keys_for("b") == ("k2", "k3")
    assert parsed.shared_keys_for("c") == ()


@pytest.mark.parametrize(
    "shared_keys",
    ['["k1"]', '{"a": ["k1", "k2", "k3"]}', '{"a": []}', '{"a": 5}', '{"a": ""}'],
)
def test_a_malformed_shared_keys_entry_is_refused_without_quoting_a_key(shared_keys: str) -> None:
    with pytest.raises(ValueError, match="sharedKeys") as failure:
        parse_secret('{"authToken": "tok", "sharedKeys": ' + shared_keys + "}")
    assert "k1" not in str(failure.value) and "k2" not in str(failure.value)
