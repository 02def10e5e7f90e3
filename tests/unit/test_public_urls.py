"""The URL Twilio signed and the callback URLs we hand it: derived from the event, or from
PUBLIC_BASE_URL when the operator sets it."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from voice_webhooks.edge.public_urls import api_base_url, callback_url, route_path, signed_url
from voice_webhooks.errors import ConfigurationError
from voicedev.twilio_signing import SAMPLE_API_DOMAIN, http_api_event

DOMAIN = SAMPLE_API_DOMAIN


def event(url: str, *, route: str = "/voice/connect", stage: str = "$default") -> APIGatewayProxyEventV2:
    raw: dict[str, Any] = http_api_event("GET", url, route=route)
    raw["requestContext"]["stage"] = stage
    return APIGatewayProxyEventV2(raw)


def test_route_path_is_the_matched_route_without_the_stage() -> None:
    # Given a request to a named stage
    request = event(f"https://{DOMAIN}/prod/voice/connect", stage="prod")

    # Then the route is the template's path, and the raw path keeps the stage
    assert route_path(request) == "/voice/connect"
    assert request.raw_path == "/prod/voice/connect"


def test_route_path_falls_back_to_the_raw_path_for_the_default_route() -> None:
    raw = http_api_event("POST", f"https://{DOMAIN}/voice/connect")
    raw["routeKey"] = "$default"

    assert route_path(APIGatewayProxyEventV2(raw)) == "/voice/connect"


@pytest.mark.parametrize(
    ("url", "stage", "expected"),
    [
        (f"https://{DOMAIN}/voice/connect", "$default", f"https://{DOMAIN}"),
        (f"https://{DOMAIN}/prod/voice/connect", "prod", f"https://{DOMAIN}/prod"),
    ],
)
def test_api_base_url_is_derived_from_domain_and_stage(url: str, stage: str, expected: str) -> None:
    assert api_base_url(event(url, stage=stage), None) == expected


def test_public_base_url_wins_over_the_derived_one_without_its_trailing_slash() -> None:
    request = event(f"https://{DOMAIN}/voice/connect")

    assert api_base_url(request, "https://voice.example.com/twilio/") == "https://voice.example.com/twilio"


def test_signed_url_keeps_the_raw_query_string_byte_for_byte() -> None:
    # Given a query Twilio extended: our parameter first, its own after, unsorted, `+` for spaces
    raw_query = "session=CA1-ab&Zeta=1&CallerName=John+Smith&From=%2B15550109999&FromCity=&Alpha=2"
    request = event(f"https://{DOMAIN}/voice/status?{raw_query}", route="/voice/status")

    # Then the URL checked is exactly what was requested, never rebuilt from parsed values
    assert signed_url(request, None) == f"https://{DOMAIN}/voice/status?{raw_query}"


def test_signed_url_has_no_question_mark_without_a_query() -> None:
    assert signed_url(event(f"https://{DOMAIN}/voice/connect"), None) == f"https://{DOMAIN}/voice/connect"


def test_signed_url_keeps_a_named_stage() -> None:
    request = event(f"https://{DOMAIN}/prod/voice/connect?session=x", stage="prod")

    assert signed_url(request, None) == f"https://{DOMAIN}/prod/voice/connect?session=x"


def test_signed_url_with_public_base_url_is_that_base_plus_route_plus_raw_query() -> None:
    # Given a custom domain whose base-path mapping (`/twilio`) never reaches the function
    request = event("https://voice.example.com/voice/action?session=a+b", route="/voice/action")

    # Then the URL is the operator's public base, the route and the query as received
    expected = "https://voice.example.com/twilio/voice/action?session=a+b"
    assert signed_url(request, "https://voice.example.com/twilio") == expected


@pytest.mark.parametrize(
    "public_base_url",
    [
        "voice.example.com/twilio",  # no scheme
        "ftp://voice.example.com",
        "https://",  # no host
        "https://voice.example.com/twilio?x=1",
        "https://voice.example.com/twilio#rc=3",
    ],
)
def test_unusable_public_base_url_is_a_configuration_error(public_base_url: str) -> None:
    request = event(f"https://{DOMAIN}/voice/connect")

    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        signed_url(request, public_base_url)
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        api_base_url(request, public_base_url)


def test_callback_url_names_the_session_and_carries_the_overrides_in_the_fragment() -> None:
    url = callback_url(f"https://{DOMAIN}", "/voice/status", "CA1-ab/c&d", "rc=3&rp=all")

    # The session id is percent-encoded; the fragment is Twilio's, never sent to us
    assert url == f"https://{DOMAIN}/voice/status?session=CA1-ab%2Fc%26d#rc=3&rp=all"


def test_callback_url_without_overrides_has_no_fragment() -> None:
    assert (
        callback_url(f"https://{DOMAIN}", "/voice/action", "s1")
        == f"https://{DOMAIN}/voice/action?session=s1"
    )
