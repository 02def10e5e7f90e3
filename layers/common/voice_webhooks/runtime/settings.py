"""Settings per function, read from the environment and checked at cold start.

Each function declares the model of what it needs (`ConnectSettings`, `StatusSettings`, ...);
required fields have no default. `edge.handler` validates the model when the function's module is
imported, so a missing or invalid variable fails the cold start with one message naming it
(Lambda reports it as the init error) instead of failing requests. Field names are the
environment variable names (aliases). Reading is cached per model; `load_settings.cache_clear()`
forgets it (tests and the local mode switch environments)."""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from voice_webhooks.errors import ConfigurationError


def _split_words(value: object) -> object:
    if isinstance(value, str):
        return frozenset(word for word in value.replace(",", " ").split() if word)
    return value


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _public_base(value: str | None) -> str | None:
    """An absolute http(s) URL without query or fragment, kept without its trailing slash: anything
    else would make every signature fail with a 403 that points nowhere near the real mistake."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute http(s) URL without query or fragment")
    return value.rstrip("/")


OptionalStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
# Required: unset and blank are both "not set" (a template parameter left empty gives "").
RequiredStr = Annotated[str, BeforeValidator(_strip), Field(min_length=1)]
Words = Annotated[frozenset[str], BeforeValidator(_split_words)]
PublicBaseUrl = Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_public_base)]

# Twilio connection overrides appended as a URL fragment to every callback URL we hand out.
# Fragments never reach the server, so they do not affect signatures. rc=3: up to three retries;
# rp=all: retry every failure, including 5xx and timeouts (the syntax twilio-facts.md documents).
# Retrying a 4xx is wasted but harmless; our writes are idempotent, so retries never double work.
DEFAULT_CONNECTION_OVERRIDES = "rc=3&rp=all"


class FunctionSettings(BaseModel):
    """Base of every function's settings: frozen, other variables ignored."""

    # defer_build: a function builds the validator of its own model only (at its cold-start check,
    # load_settings), not those of every other function's model defined here.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


class WebhookSettings(FunctionSettings):
    """What the edge needs to verify a Twilio request (every webhook function)."""

    auth_token_secret: RequiredStr = Field(
        alias="TWILIO_AUTH_TOKEN_SECRET",
        description="Secrets Manager secret (ARN or name) holding the Twilio auth token(s) and shared keys.",
    )
    allowed_account_sids: Annotated[Words, Field(min_length=1)] = Field(
        alias="ALLOWED_ACCOUNT_SIDS",
        description="AccountSids whose requests are accepted (comma or space separated).",
    )
    public_base_url: PublicBaseUrl = Field(
        None,
        alias="PUBLIC_BASE_URL",
        description="Public base URL (custom domain, tunnel, local mode). Unset: derived from the request.",
    )
    cache_max_age_seconds: int = Field(300, alias="PARAMETERS_MAX_AGE", ge=0)


class FallbackSettings(WebhookSettings):
    """/voice/fallback: the edge only (no table, queue or flow document)."""


class EventSettings(WebhookSettings):
    """Routes that store what Twilio tells them in EventsTable."""

    events_table_name: RequiredStr = Field(alias="EVENTS_TABLE_NAME")
    event_ttl_days: int = Field(90, alias="EVENT_TTL_DAYS", ge=1)


class StatusSettings(EventSettings):
    """/voice/status."""


class RecordingSettings(EventSettings):
    """/voice/recording: also queues completed recordings."""

    recordings_queue_url: RequiredStr = Field(alias="RECORDINGS_QUEUE_URL")


class CallSettings(EventSettings):
    """/voice/connect and /voice/action: answer TwiML from the flow document."""

    flow_config: RequiredStr = Field(
        alias="FLOW_CONFIG", description="Call-flow document: a file path or ssm:/parameter-name."
    )
    connection_overrides: str = Field(DEFAULT_CONNECTION_OVERRIDES, alias="CALLBACK_CONNECTION_OVERRIDES")


class ConnectSettings(CallSettings):
    """/voice/connect."""


class ActionSettings(CallSettings):
    """/voice/action."""


class RelayConnectSettings(EventSettings):
    """The relay WebSocket's $connect: verifies Twilio's handshake, records the connection."""


class RelayMessageSettings(EventSettings):
    """The relay WebSocket's $default: runs the agent of the session's flow."""

    flow_config: RequiredStr = Field(
        alias="FLOW_CONFIG", description="Call-flow document: a file path or ssm:/parameter-name."
    )


class RelayDisconnectSettings(FunctionSettings):
    """The relay WebSocket's $disconnect: records the close."""

    events_table_name: RequiredStr = Field(alias="EVENTS_TABLE_NAME")


S = TypeVar("S", bound=FunctionSettings)


def _problem(model: type[FunctionSettings], error: dict[str, object]) -> str:
    location = error.get("loc") or ("?",)
    name = str(location[0]) if isinstance(location, tuple) else str(location)
    field = model.model_fields.get(name)
    variable = field.alias if field and field.alias else name
    # Required fields have a minimum length of 1: too short means unset, blank or an empty list.
    if error.get("type") in ("missing", "string_too_short", "too_short"):
        return f"{variable} is required by this function but not set"
    # Never echo the value: a misplaced secret would end up in the init error.
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{variable}: {message}"


@cache
def load_settings(model: type[S]) -> S:
    """The function's settings from the environment, validated once per process (per model).

    ConfigurationError names every variable at fault, in one message."""
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = [_problem(model, dict(error)) for error in exc.errors(include_input=False)]
        raise ConfigurationError(
            f"{model.__name__}: invalid environment: " + "; ".join(problems), problems
        ) from None
