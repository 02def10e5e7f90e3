"""The reconciler's settings, read from the environment once (at cold start), each named by its
environment variable. Defaults and limits are explained in docs/reconciliation.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError

from voice_webhooks.archiver.download import MediaOrigins
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.runtime.settings import FunctionSettings

ORIGINS_VARIABLE = "TWILIO_API_ORIGINS"


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(",", " ").split() if part.strip())
    return value


class ReconcileSettings(FunctionSettings):
    """ReconcilerFunction's settings, checked at cold start by the edge (edge.handler)."""

    events_table_name: str = Field(alias="EVENTS_TABLE_NAME", min_length=1)
    recordings_queue_url: str = Field(alias="RECORDINGS_QUEUE_URL", min_length=1)
    auth_token_secret: str = Field(alias="TWILIO_AUTH_TOKEN_SECRET", min_length=1)
    event_ttl_days: int = Field(90, alias="EVENT_TTL_DAYS", ge=1)
    cache_max_age_seconds: int = Field(300, alias="PARAMETERS_MAX_AGE", ge=0)
    grace_minutes: int = Field(15, alias="RECONCILE_GRACE_MINUTES", ge=0, le=24 * 60)
    max_sessions: int = Field(200, alias="RECONCILE_MAX_SESSIONS", ge=1, le=5_000)
    max_requests: int = Field(500, alias="RECONCILE_MAX_REQUESTS", ge=2, le=20_000)
    concurrency: int = Field(4, alias="RECONCILE_CONCURRENCY", ge=1, le=16)
    max_attempts: int = Field(12, alias="RECONCILE_MAX_ATTEMPTS", ge=1, le=100)
    backoff_base_seconds: int = Field(300, alias="RECONCILE_BACKOFF_BASE_SECONDS", ge=1)
    backoff_cap_seconds: int = Field(7_200, alias="RECONCILE_BACKOFF_CAP_SECONDS", ge=1)
    api_base_url: str = Field("https://api.twilio.com", alias="TWILIO_API_BASE_URL")
    api_origins: Annotated[tuple[str, ...], BeforeValidator(_split)] = Field(
        ("https://api.twilio.com",), alias=ORIGINS_VARIABLE
    )

    def origins(self) -> MediaOrigins:
        """The archiver's allowlist rules, under this variable's name."""
        try:
            return MediaOrigins.parse(self.api_origins)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc).replace("RECORDING_MEDIA_ORIGINS", ORIGINS_VARIABLE)) from exc


def load_settings(environ: Mapping[str, str] | None = None) -> ReconcileSettings:
    """One clear message naming the variable when a setting is missing or invalid."""
    try:
        return ReconcileSettings.model_validate(dict(os.environ if environ is None else environ))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(f"reconciler setting {name}: {first['msg']}") from exc


@cache
def get_settings() -> ReconcileSettings:
    return load_settings()
