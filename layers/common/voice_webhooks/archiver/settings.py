"""RecordingArchiverFunction's settings (docs/operations.md), checked at cold start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voice_webhooks.runtime.settings import FunctionSettings, OptionalStr, RequiredStr, Words


class ArchiverSettings(FunctionSettings):
    recordings_bucket_name: RequiredStr = Field(alias="RECORDINGS_BUCKET_NAME")
    auth_token_secret: RequiredStr = Field(
        alias="TWILIO_AUTH_TOKEN_SECRET",
        description="The auth-token secret: media downloads use AccountSid + the auth token by default.",
    )
    allowed_account_sids: Words = Field(
        frozenset(),
        alias="ALLOWED_ACCOUNT_SIDS",
        description="Messages for other accounts are refused (empty: any account).",
    )
    events_table_name: OptionalStr = Field(None, alias="EVENTS_TABLE_NAME")
    recording_format: Literal["wav", "mp3"] = Field(
        "wav", alias="RECORDING_FORMAT", description="Media format fetched from Twilio and archived."
    )
    recording_media_origins: Words = Field(
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
    cache_max_age_seconds: int = Field(300, alias="PARAMETERS_MAX_AGE", ge=0)
