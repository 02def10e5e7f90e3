"""`signature.validator_accepts` answers exactly what twilio's `RequestValidator.validate` answers,
computing one HMAC where `validate` computes two.

Every expected signature is made with twilio's own `compute_signature` for an explicit URL, and
every verdict is checked twice: against the answer written in the test, and against `validate`
itself for the same arguments."""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator
from voice_webhooks.edge import signature
from voice_webhooks.edge.request import FormParams
from voice_webhooks.edge.signature import validator_accepts
from voicedev.sample_events import call_params
from voicedev.twilio_signing import DEV_AUTH_TOKEN, SAMPLE_API_DOMAIN

TOKEN = DEV_AUTH_TOKEN
WITHOUT_PORT = f"https://{SAMPLE_API_DOMAIN}/voice/fallback"
WITH_PORT = f"https://{SAMPLE_API_DOMAIN}:443/voice/fallback"
LOCAL = "http://127.0.0.1:3000/voice/fallback"
OTHER_HOST = "voice.example.com"
PARAMS = FormParams(call_params())


def sign(url: str, params: Any = PARAMS, token: str = TOKEN, algorithm: str | None = None) -> str:
    return str(RequestValidator(token).compute_signature(url, params, algorithm))


@pytest.fixture
def hmacs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs `compute_signature` was asked to sign (one HMAC each), counted from here on."""
    signed: list[str] = []
    original = RequestValidator.compute_signature

    def counting(self: RequestValidator, uri: str, params: Any, algorithm: str | None = None) -> Any:
        signed.append(uri)
        return original(self, uri, params, algorithm)

    monkeypatch.setattr(RequestValidator, "compute_signature", counting)
    return signed


def both(url: str, params: Any, signature_: str, token: str = TOKEN, algorithm: str | None = None) -> bool:
    """The verdict of `validator_accepts`, after checking that `validate` gives the same one."""
    validator = RequestValidator(token)
    ours = validator_accepts(validator, url, params, signature_, algorithm)
    assert ours is validator.validate(url, params, signature_, algorithm)
    return ours


@pytest.mark.parametrize(
    ("received", "signed_for"),
    [
        pytest.param(WITHOUT_PORT, WITHOUT_PORT, id="without-port-as-received"),
        pytest.param(WITH_PORT, WITH_PORT, id="with-port-as-received"),
        pytest.param(LOCAL, LOCAL, id="local"),
    ],
)
def test_a_signature_of_the_url_as_received_is_accepted_with_one_hmac(
    received: str, signed_for: str, hmacs: list[str]
) -> None:
    expected = sign(signed_for)
    hmacs.clear()

    assert validator_accepts(RequestValidator(TOKEN), received, PARAMS, expected) is True

    assert hmacs == [signed_for]
    assert RequestValidator(TOKEN).validate(received, PARAMS, expected) is True


@pytest.mark.parametrize(
    ("received", "signed_for"),
    [
        pytest.param(WITHOUT_PORT, WITH_PORT, id="received-without-port-signed-with"),
        pytest.param(WITH_PORT, WITHOUT_PORT, id="received-with-port-signed-without"),
        pytest.param(
            f"http://{OTHER_HOST}/voice/fallback", f"http://{OTHER_HOST}:80/voice/fallback", id="http-80"
        ),
        pytest.param(LOCAL, "http://127.0.0.1/voice/fallback", id="local-signed-without"),
    ],
)
def test_a_signature_of_the_other_url_form_is_accepted_with_a_second_hmac(
    received: str, signed_for: str, hmacs: list[str]
) -> None:
    expected = sign(signed_for)
    hmacs.clear()

    assert both(received, PARAMS, expected) is True

    # ours (the form as received first, the other one second), then validate's two
    assert hmacs[:2] == [received, signed_for]
    assert len(hmacs) == 4


@pytest.mark.parametrize(
    ("received", "signature_"),
    [
        pytest.param(WITHOUT_PORT, sign(WITHOUT_PORT.replace("fallback", "connect")), id="another-route"),
        pytest.param(WITHOUT_PORT, sign(WITH_PORT.replace(":443", ":8443")), id="another-port"),
        pytest.param(WITH_PORT, sign(WITHOUT_PORT, token="another_accounts_token"), id="another-token"),
        pytest.param(
            WITHOUT_PORT, sign(WITHOUT_PORT, FormParams([*PARAMS.pairs, ("Extra", "1")])), id="params"
        ),
        pytest.param(WITHOUT_PORT, sign(WITHOUT_PORT, algorithm=HMAC_SHA256), id="another-algorithm"),
        pytest.param(WITHOUT_PORT, "", id="empty"),
        pytest.param(WITHOUT_PORT, sign(WITHOUT_PORT)[:-2] + "==", id="truncated"),
    ],
)
def test_a_signature_of_neither_form_is_refused(received: str, signature_: str, hmacs: list[str]) -> None:
    hmacs.clear()

    assert both(received, PARAMS, signature_) is False

    assert len(hmacs) == 4  # validate's two and ours: nothing is refused on the first form alone


def test_the_shared_key_algorithm_is_passed_through() -> None:
    expected = sign(WITHOUT_PORT, algorithm=HMAC_SHA256)

    assert both(WITHOUT_PORT, PARAMS, expected, algorithm=HMAC_SHA256) is True
    assert both(WITHOUT_PORT, PARAMS, expected, algorithm="hmac_sha256") is True  # validate upper-cases it
    assert both(WITHOUT_PORT, PARAMS, expected) is False  # SHA-1 by default


def test_an_algorithm_twilio_does_not_know_goes_to_validate(hmacs: list[str]) -> None:
    # validate refuses it (and logs a warning) without computing anything; compute_signature raises
    expected = sign(WITHOUT_PORT)
    hmacs.clear()

    assert both(WITHOUT_PORT, PARAMS, expected, algorithm="HMAC_MD5") is False

    assert hmacs == []


def test_body_sha256_is_ignored_for_form_params_as_validate_ignores_it() -> None:
    # bodySHA256 only counts in validate's JSON-body mode (params given as the body text)
    url = WITHOUT_PORT + "?bodySHA256=" + "0" * 64
    assert both(url, PARAMS, sign(url)) is True
    assert both(url, PARAMS, sign(WITHOUT_PORT)) is False


def test_a_json_body_with_body_sha256_goes_to_validate() -> None:
    body = '{"CallSid": "CA0123"}'
    good = WITHOUT_PORT + "?bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    bad = WITHOUT_PORT + "?bodySHA256=" + "0" * 64
    params = cast(FormParams, body)  # what validate takes in its JSON-body mode

    assert both(good, params, sign(good, {})) is True
    assert both(bad, params, sign(bad, {})) is False


def test_a_port_that_is_not_a_number_raises_as_in_validate() -> None:
    url = f"https://{SAMPLE_API_DOMAIN}:https/voice/fallback"
    with pytest.raises(ValueError, match="Port") as ours:
        validator_accepts(RequestValidator(TOKEN), url, PARAMS, "x")
    with pytest.raises(ValueError, match="Port") as theirs:
        RequestValidator(TOKEN).validate(url, PARAMS, "x")
    assert str(ours.value) == str(theirs.value)


def test_the_url_forms_are_cached_per_url() -> None:
    signature._url_forms.cache_clear()
    for _ in range(3):
        validator_accepts(RequestValidator(TOKEN), WITHOUT_PORT, PARAMS, sign(WITHOUT_PORT))

    assert signature._url_forms.cache_info().misses == 1
    assert signature._url_forms.cache_info().hits == 2


# --- any URL, parameters, signature and token -------------------------------------------------

names = st.sampled_from(["CallSid", "AccountSid", "From", "To", "Digits", "session", "a", ""])
values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
hosts = st.sampled_from([SAMPLE_API_DOMAIN, "127.0.0.1", "voice.example.com", "[::1]"])
ports = st.sampled_from(["", ":443", ":80", ":3000", ":0"])
paths = st.sampled_from(["/voice/status", "/prod/voice/fallback", "/", ""])
queries = st.sampled_from(["", "?session=CA1-00ff", "?a=1&a=2", "?bodySHA256=abc", "?", "?x=%20#frag"])
tokens = st.sampled_from([TOKEN, "secondary_token_during_rotation"])
algorithms = st.sampled_from([None, HMAC_SHA1, HMAC_SHA256, "hmac_sha1", "HMAC_MD5"])


Case = tuple[str, Any, str, str, str | None]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    scheme = draw(st.sampled_from(["https", "http"]))
    host, port, path, query = draw(hosts), draw(ports), draw(paths), draw(queries)
    url = f"{scheme}://{host}{port}{path}{query}"
    pairs = draw(st.lists(st.tuples(names, values), max_size=6))
    # Ours (getall/getlist), a plain dict (validate's last resort), or none at all (a GET's body)
    params = draw(st.sampled_from([FormParams(pairs), dict(pairs), None]))
    token, algorithm = draw(tokens), draw(algorithms)
    # Signed for the URL with or without the port, for another URL, by another token, or garbage
    other_port = ":443" if port != ":443" else ""
    signed_for = draw(st.sampled_from([url, f"{scheme}://{host}{other_port}{path}{query}", url + "x"]))
    signer_algorithm = algorithm if algorithm in (None, HMAC_SHA1, HMAC_SHA256) else None
    signed = draw(
        st.sampled_from(
            [
                sign(signed_for, params, draw(tokens), signer_algorithm),
                sign(signed_for, params, token, signer_algorithm),
                draw(st.text(max_size=30)),
            ]
        )
    )
    return url, params, signed, token, algorithm


@settings(max_examples=400, deadline=None)
@given(cases())
def test_validator_accepts_answers_as_validate_does(case: Case) -> None:
    url, params, signed, token, algorithm = case
    validator = RequestValidator(token)

    accepted = validator_accepts(validator, url, params, signed, algorithm)

    assert accepted is validator.validate(url, params, signed, algorithm)
    event(f"accepted: {accepted}")  # both kinds of answer are drawn (--hypothesis-show-statistics)
