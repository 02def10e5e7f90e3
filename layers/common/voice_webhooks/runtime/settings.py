"""Runtime settings, read from the environment once (lazily, so tests control them)."""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from voice_webhooks.errors import ConfigurationError


def _split_words(value: object) -> object:
    if isinstance(value, str):
        return frozenset(word for word in value.replace(",", " ").split() if word)
    return value


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


OptionalStr = Annotated[str | None, BeforeValidator(_blank_to_none)]

# Twilio connection overrides appended as a URL fragment to every callback URL we hand out.
# Fragments never reach the server, so they do not affect signatures. rc=3: up to three retries;
# rp=all: retry every failure, including 5xx and timeouts (the syntax twilio-facts.md documents).
# Retrying a 4xx is wasted but harmless; our writes are idempotent, so retries never double work.
DEFAULT_CONNECTION_OVERRIDES = "rc=3&rp=all"


class Settings(BaseModel):
    """Every setting the functions read. Names are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    auth_token_secret: OptionalStr = Field(
        None,
        alias="TWILIO_AUTH_TOKEN_SECRET",
        description="Secrets Manager secret (ARN or name) holding the Twilio auth token(s).",
    )
    allowed_account_sids: Annotated[frozenset[str], BeforeValidator(_split_words)] = Field(
        frozenset(),
        alias="ALLOWED_ACCOUNT_SIDS",
        description="AccountSids whose requests are accepted (comma or space separated).",
    )
    events_table_name: OptionalStr = Field(None, alias="EVENTS_TABLE_NAME")
    recordings_queue_url: OptionalStr = Field(None, alias="RECORDINGS_QUEUE_URL")
    flow_config: OptionalStr = Field(
        None, alias="FLOW_CONFIG", description="Call-flow document: a file path or ssm:/parameter-name."
    )
    public_base_url: OptionalStr = Field(
        None,
        alias="PUBLIC_BASE_URL",
        description="Public base URL (custom domain, tunnel, local mode). Unset: derived from the request.",
    )
    connection_overrides: str = Field(DEFAULT_CONNECTION_OVERRIDES, alias="CALLBACK_CONNECTION_OVERRIDES")
    event_ttl_days: int = Field(90, alias="EVENT_TTL_DAYS", ge=1)
    cache_max_age_seconds: int = Field(300, alias="PARAMETERS_MAX_AGE", ge=0)
    # The recording archiver (RecordingArchiverFunction; docs/operations.md).
    recordings_bucket_name: OptionalStr = Field(None, alias="RECORDINGS_BUCKET_NAME")
    recording_format: Literal["wav", "mp3"] = Field(
        "wav", alias="RECORDING_FORMAT", description="Media format fetched from Twilio and archived."
    )
    recording_media_origins: Annotated[frozenset[str], BeforeValidator(_split_words)] = Field(
        frozenset({"https://api.twilio.com"}),
        alias="RECORDING_MEDIA_ORIGINS",
        description="Origins (scheme://host[:port], *.host allowed) the archiver may fetch media from.",
    )
    recording_download_secret: OptionalStr = Field(
        None,
        alias="RECORDING_DOWNLOAD_SECRET",
        description="Secret with an API key for media downloads; unset: AccountSid + the auth token.",
    )
    delete_recordings_after_archive: bool = Field(False, alias="DELETE_RECORDINGS_AFTER_ARCHIVE")

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            alias = type(self).model_fields[name].alias
            raise ConfigurationError(f"setting {alias} is required by this function but not set")
        return str(value)


@cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
