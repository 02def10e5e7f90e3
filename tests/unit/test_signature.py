"""X-Twilio-Signature and account checks, run as the middleware runs them: read the event, build
the URL Twilio signed, verify. Every signature here is computed with twilio's
`RequestValidator.compute_signature` for an explicit URL, so each test shows what was signed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from twilio.request_validator import RequestValidator
from voice_webhooks.edge.auth_tokens import AuthTokens
from voice_webhooks.edge.public_urls import signed_url
from voice_webhooks.edge.request import WebhookRequest, read_webhook
from voice_webhooks.edge.signature import verify_request
from voice_webhooks.errors import AccountRejected, ConfigurationError, MalformedRequest, SignatureRejected
from voicedev.sample_events import CALLER, CONVERSATION_NUMBER, call_params
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, SAMPLE_API_DOMAIN, http_api_event

DOMAIN = SAMPLE_API_DOMAIN
CONNECT_URL = f"https://{DOMAIN}/voice/connect"
STATUS_URL = f"https://{DOMAIN}/voice/status?session=CA5a-0123456789abcdef"
SECONDARY_TOKEN = "secondary_token_during_rotation"
OTHER_TOKEN = "some_other_accounts_token"
ACCOUNTS = frozenset({DEV_ACCOUNT_SID})
PARAMS = dict(call_params())
PRIMARY_ONLY = AuthTokens(DEV_AUTH_TOKEN)


class MultiParams(dict[str, str]):
    """Repeated names for compute_signature, the way a web framework's MultiDict offers them."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        super().__init__(self._pairs)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def compute(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]] = (), token: str = DEV_AUTH_TOKEN
) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return str(RequestValidator(token).compute_signature(url, MultiParams(pairs)))


def check(
    event: dict[str, Any],
    *,
    tokens: AuthTokens = PRIMARY_ONLY,
    accounts: frozenset[str] = ACCOUNTS,
    public_base_url: str | None = None,
) -> WebhookRequest:
    proxy = APIGatewayProxyEventV2(event)
    request = read_webhook(proxy)
    verify_request(request, signed_url(proxy, public_base_url), tokens, accounts)
    return request


def post(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], signature: str | None, **kw: Any
) -> dict[str, Any]:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return http_api_event("POST", url, pairs, token=None, signature=signature, **kw)


def get(url: str, signature: str | None, **kw: Any) -> dict[str, Any]:
    """A GET to exactly `url` (its query string already holds every parameter)."""
    return http_api_event("GET", url, token=None, signature=signature, **kw)


# --- POST ---------------------------------------------------------------------------------


def test_valid_post_with_base64_body_is_accepted() -> None:
    # Given Twilio's POST, form body base64-encoded as HTTP API delivers it
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS))
    assert event["isBase64Encoded"] is True

    # When checked, Then it passes and the parameters are Twilio's
    request = check(event)
    assert request.params["From"] == CALLER
    assert request.params["To"] == CONVERSATION_NUMBER


def test_valid_post_with_plain_body_is_accepted() -> None:
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS), base64_body=False)
    assert event["isBase64Encoded"] is False

    assert check(event).params["CallSid"] == PARAMS["CallSid"]


def test_blank_values_are_part_of_the_signature() -> None:
    # Given a body with blank fields (FromCity=), signed as Twilio signs: blanks included
    assert PARAMS["FromCity"] == ""
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS))

    # Then it passes and the blank field is kept
    assert check(event).params["FromCity"] == ""


def test_signature_that_dropped_blank_values_is_refused() -> None:
    # A signer that drops blank fields computed something Twilio never sends
    without_blanks = {name: value for name, value in PARAMS.items() if value}
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, without_blanks))

    with pytest.raises(SignatureRejected):
        check(event)


def test_post_signature_covers_the_query_string_of_the_callback_url() -> None:
    # Given a callback POST to a URL carrying our session parameter
    event = post(STATUS_URL, PARAMS, compute(STATUS_URL, PARAMS))

    request = check(event)
    assert request.session_id == "CA5a-0123456789abcdef"

    # And the same body, signed for the URL without the session, is refused
    no_session = post(STATUS_URL, PARAMS, compute(f"https://{DOMAIN}/voice/status", PARAMS))
    with pytest.raises(SignatureRejected):
        check(no_session)


@pytest.mark.parametrize(
    ("name", "value"),
    [("To", "+15550100002"), ("AccountSid", "AC" + "1" * 32), ("FromCity", "PARIS"), ("Extra", "added")],
)
def test_tampered_parameter_is_refused(name: str, value: str) -> None:
    # Given a signature for the genuine parameters
    signature = compute(CONNECT_URL, PARAMS)

    # When one parameter is changed (or one added) after signing
    tampered = {**PARAMS, name: value}

    # Then the request is refused
    with pytest.raises(SignatureRejected):
        check(post(CONNECT_URL, tampered, signature))


def test_removed_parameter_is_refused() -> None:
    signature = compute(CONNECT_URL, PARAMS)
    fewer = {name: value for name, value in PARAMS.items() if name != "Direction"}

    with pytest.raises(SignatureRejected):
        check(post(CONNECT_URL, fewer, signature))


# --- GET ----------------------------------------------------------------------------------


def test_get_with_twilio_params_appended_to_an_existing_query_is_accepted() -> None:
    # Given a callback URL with our session parameter, to which Twilio appended its own
    # parameters: after ours, not sorted, spaces as `+`, blank values kept
    url = (
        f"{STATUS_URL}&AccountSid={DEV_ACCOUNT_SID}&CallSid={PARAMS['CallSid']}&Zeta=last&Alpha=first"
        f"&CallerName=John+Smith&From=%2B15550109999&FromCity=&SequenceNumber=1"
    )

    # When signed for that exact URL (GET: no body parameters)
    request = check(get(url, compute(url)), public_base_url=None)

    # Then it passes, and the parameters are read from the query string
    assert request.session_id == "CA5a-0123456789abcdef"
    assert request.params["CallerName"] == "John Smith"
    assert request.params["From"] == CALLER
    assert request.params["FromCity"] == ""
    assert request.form == {}


def test_get_signed_over_a_rebuilt_query_is_refused() -> None:
    # Given the parameters Twilio appended, unsorted
    appended = [("Zeta", "last"), ("AccountSid", DEV_ACCOUNT_SID), ("CallerName", "John Smith")]
    url = f"{STATUS_URL}&{urlencode(appended)}"

    # When the signature is over a query rebuilt in another order (what a parsed dict gives)
    rebuilt = f"{STATUS_URL}&{urlencode(sorted(appended))}"

    # Then it does not match the URL Twilio requested
    with pytest.raises(SignatureRejected):
        check(get(url, compute(rebuilt)))


def test_get_signed_with_body_style_params_is_refused() -> None:
    # GET parameters are part of the URL; signing them as POST fields gives another signature
    url = f"{CONNECT_URL}?{urlencode(PARAMS)}"

    with pytest.raises(SignatureRejected):
        check(get(url, compute(CONNECT_URL, PARAMS)))


# --- URL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signed_for",
    [
        f"https://{DOMAIN}/voice/action",  # another route
        f"http://{DOMAIN}/voice/connect",  # http instead of https
        "https://other.execute-api.us-east-1.amazonaws.com/voice/connect",  # another API
        f"https://{DOMAIN}/prod/voice/connect",  # a stage the request did not go through
        f"https://{DOMAIN}/voice/connect?session=x",  # a query the request did not carry
    ],
)
def test_signature_for_another_url_is_refused(signed_for: str) -> None:
    event = post(CONNECT_URL, PARAMS, compute(signed_for, PARAMS))

    with pytest.raises(SignatureRejected):
        check(event)


def test_default_port_does_not_matter() -> None:
    # Twilio's validator tries the URL with and without :443
    event = post(CONNECT_URL, PARAMS, compute(f"https://{DOMAIN}:443/voice/connect", PARAMS))

    assert check(event).params["CallSid"] == PARAMS["CallSid"]


def test_named_stage_in_raw_path_is_part_of_the_signed_url() -> None:
    # Given a request through the `prod` stage: rawPath keeps the stage, the route does not
    url = f"https://{DOMAIN}/prod/voice/connect"
    event = post(url, PARAMS, compute(url, PARAMS), route="/voice/connect")
    event["requestContext"]["stage"] = "prod"

    # Then the URL with the stage is the one checked
    assert check(event).params["CallSid"] == PARAMS["CallSid"]

    # And a signature for the URL without the stage is refused
    event["headers"]["x-twilio-signature"] = compute(CONNECT_URL, PARAMS)
    with pytest.raises(SignatureRejected):
        check(event)


def test_public_base_url_signature_for_the_public_url_is_accepted() -> None:
    # Given a custom domain with base path `/twilio` in front of the API: the mapping key never
    # reaches the function, so the operator sets PUBLIC_BASE_URL
    public_base = "https://voice.example.com/twilio"
    public_url = f"{public_base}/voice/connect"
    event = post("https://voice.example.com/voice/connect", PARAMS, compute(public_url, PARAMS))

    # Then the signature for the public URL is accepted
    assert check(event, public_base_url=public_base).params["CallSid"] == PARAMS["CallSid"]


def test_public_base_url_signature_for_the_execute_api_url_is_refused() -> None:
    # Given PUBLIC_BASE_URL is set, a request signed for the execute-api URL (the number still
    # points at the default endpoint) is refused: one URL rule, no guessing
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS))

    with pytest.raises(SignatureRejected):
        check(event, public_base_url="https://voice.example.com/twilio")


# --- header and tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_header_is_refused(signature: str | None) -> None:
    event = post(CONNECT_URL, PARAMS, signature)
    if signature is not None:
        event["headers"]["x-twilio-signature"] = signature

    with pytest.raises(SignatureRejected, match="missing"):
        check(event)


def test_header_name_is_case_insensitive() -> None:
    event = post(
        CONNECT_URL, PARAMS, None, extra_headers={"X-Twilio-Signature": compute(CONNECT_URL, PARAMS)}
    )

    assert check(event).params["CallSid"] == PARAMS["CallSid"]


def test_secondary_token_is_accepted_during_a_rotation() -> None:
    # Given the secret holds both tokens
    tokens = AuthTokens(primary=DEV_AUTH_TOKEN, secondary=SECONDARY_TOKEN)

    # Then a request signed with either passes
    for token in (DEV_AUTH_TOKEN, SECONDARY_TOKEN):
        event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS, token))
        assert check(event, tokens=tokens).params["CallSid"] == PARAMS["CallSid"]

    # And one signed with any other token does not
    with pytest.raises(SignatureRejected):
        check(post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS, OTHER_TOKEN)), tokens=tokens)


def test_primary_only_refuses_the_secondary_token() -> None:
    # Given no rotation is in progress, a signature with the (old or future) other token fails
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS, SECONDARY_TOKEN))

    with pytest.raises(SignatureRejected):
        check(event, tokens=AuthTokens(primary=DEV_AUTH_TOKEN))


# --- account --------------------------------------------------------------------------------------


def test_signed_request_from_an_account_not_allowed_is_refused() -> None:
    # Given a request correctly signed with that account's token (sub-accounts sign with theirs)
    other = {**PARAMS, "AccountSid": "AC" + "9" * 32}
    event = post(CONNECT_URL, other, compute(CONNECT_URL, other, OTHER_TOKEN))

    # Then it is refused on the account, even though the signature holds
    with pytest.raises(AccountRejected):
        check(event, tokens=AuthTokens(primary=DEV_AUTH_TOKEN, secondary=OTHER_TOKEN))


def test_signed_request_without_account_sid_is_refused() -> None:
    params = {name: value for name, value in PARAMS.items() if name != "AccountSid"}
    event = post(CONNECT_URL, params, compute(CONNECT_URL, params))

    with pytest.raises(AccountRejected):
        check(event)


def test_several_accounts_can_be_allowed() -> None:
    sub_account = "AC" + "2" * 32
    params = {**PARAMS, "AccountSid": sub_account}
    event = post(CONNECT_URL, params, compute(CONNECT_URL, params))

    assert (
        check(event, accounts=frozenset({DEV_ACCOUNT_SID, sub_account})).params["AccountSid"] == sub_account
    )


def test_empty_allowlist_is_a_configuration_error_not_a_refusal() -> None:
    event = post(CONNECT_URL, PARAMS, compute(CONNECT_URL, PARAMS))

    with pytest.raises(ConfigurationError, match="ALLOWED_ACCOUNT_SIDS"):
        check(event, accounts=frozenset())


# --- repeated names ---------------------------------------------------------------------------


def test_repeated_name_with_different_values_is_400_once_signed() -> None:
    # Given a signed body that sends `To` twice with different values
    pairs = [*PARAMS.items(), ("To", "+15550100002")]
    event = post(CONNECT_URL, pairs, compute(CONNECT_URL, pairs))

    # Then it is malformed (which value is meant would be a guess)
    with pytest.raises(MalformedRequest, match="To"):
        check(event)


def test_repeated_name_without_valid_signature_is_403_not_400() -> None:
    # The signature is checked first: an unsigned request learns nothing about the parameters
    pairs = [*PARAMS.items(), ("To", "+15550100002")]
    event = post(CONNECT_URL, pairs, compute(CONNECT_URL, PARAMS))

    with pytest.raises(SignatureRejected):
        check(event)


def test_repeated_account_sid_cannot_smuggle_an_allowed_account() -> None:
    pairs = [("AccountSid", "AC" + "9" * 32), *PARAMS.items()]
    event = post(CONNECT_URL, pairs, compute(CONNECT_URL, pairs))

    with pytest.raises(MalformedRequest, match="AccountSid"):
        check(event)


def test_repeated_session_in_a_get_query_is_400_once_signed() -> None:
    url = f"{STATUS_URL}&session=another&AccountSid={DEV_ACCOUNT_SID}"

    with pytest.raises(MalformedRequest, match="session"):
        check(get(url, compute(url)))


def test_repeated_name_with_the_same_value_is_accepted() -> None:
    pairs = [*PARAMS.items(), ("To", PARAMS["To"])]
    event = post(CONNECT_URL, pairs, compute(CONNECT_URL, pairs))

    assert check(event).params["To"] == PARAMS["To"]
