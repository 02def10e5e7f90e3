"""Settings of the local mode, read from the environment (see docs/local-mode.md).

Only the local mode reads these: the handlers keep reading their own settings (TWILIO_AUTH_TOKEN_SECRET,
ALLOWED_ACCOUNT_SIDS, ...), which the local mode derives from these and from template.yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from voicedev.template_resources import PROJECT_ROOT
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

# Loopback only: the local mode accepts the development token, so it must never listen on a network.
HOST = "127.0.0.1"
REGION = "us-east-1"
DEFAULT_API_PORT = 3000
DEFAULT_AWS_PORT = 5005
DEFAULT_MEDIA_PORT = 3002
DEFAULT_WS_PORT = 3001
DEFAULT_WS_MANAGEMENT_PORT = 3003
DEFAULT_FLOW_CONFIG = PROJECT_ROOT / "config" / "flows.example.json"

Port = Annotated[int, Field(ge=0, le=65535)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
QUIET_LOG_LEVEL = "WARNING"


class LocalSettingsError(ValueError):
    """A setting of the local mode is invalid; the message names the environment variable."""


class LocalSettings(BaseModel):
    """Names are the environment variable names. Port 0 picks a free port (programmatic use)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    api_port: Port = Field(DEFAULT_API_PORT, alias="LOCAL_API_PORT")
    aws_port: Port = Field(DEFAULT_AWS_PORT, alias="LOCAL_AWS_PORT")
    auth_token: str = Field(DEV_AUTH_TOKEN, alias="TWILIO_AUTH_TOKEN", min_length=1, repr=False)
    account_sid: str = Field(DEV_ACCOUNT_SID, alias="TWILIO_ACCOUNT_SID", pattern=r"^AC[0-9a-fA-F]{32}$")
    flow_config: Path = Field(DEFAULT_FLOW_CONFIG, alias="FLOW_CONFIG")
    public_base_url: str | None = Field(None, alias="PUBLIC_BASE_URL")
    # The recording archiver and its fake Twilio media host (voicedev.local_archiver); off by
    # default, since it consumes RecordingsQueue (whose messages the timeline otherwise shows).
    archiver: bool = Field(False, alias="LOCAL_ARCHIVER")
    media_port: Port = Field(DEFAULT_MEDIA_PORT, alias="LOCAL_MEDIA_PORT")
    # The handlers' log level here. Unset: POWERTOOLS_LOG_LEVEL if set, else WARNING, so that the
    # one line per request stays readable (INFO prints every handler's JSON log lines).
    log_level: LogLevel | None = Field(None, alias="LOCAL_LOG_LEVEL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    def handler_log_level(self, environ: Mapping[str, str]) -> str:
        return self.log_level or environ.get("POWERTOOLS_LOG_LEVEL", "").strip().upper() or QUIET_LOG_LEVEL

    # The WebSocket API (relay agent, voicedev.local_ws), when template.yaml has one.
    ws_port: Port = Field(DEFAULT_WS_PORT, alias="LOCAL_WS_PORT")
    ws_management_port: Port = Field(DEFAULT_WS_MANAGEMENT_PORT, alias="LOCAL_WS_MANAGEMENT_PORT")
    relay_public_url: str | None = Field(None, alias="RELAY_PUBLIC_URL")
    ws_idle_seconds: float = Field(600.0, gt=0, alias="LOCAL_WS_IDLE_SECONDS")
    ws_max_seconds: float = Field(7200.0, gt=0, alias="LOCAL_WS_MAX_SECONDS")

    @field_validator("relay_public_url")
    @classmethod
    def _relay_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError("must be a ws(s) URL such as wss://abcd.ngrok.app/relay")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @field_validator("flow_config", mode="before")
    @classmethod
    def _file_only(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith("ssm:"):
            raise ValueError("the local mode reads the flow config from a file, not from SSM")
        return value

    @field_validator("flow_config")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # The handlers read the file on each cold start: an absolute path survives any cwd.
        return value.expanduser().resolve()

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://abcd.ngrok.app")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @property
    def uses_dev_token(self) -> bool:
        return self.auth_token == DEV_AUTH_TOKEN

    def token_for_display(self) -> str:
        """The dev token is documented and shown in full; a real token never reaches a terminal log."""
        if self.uses_dev_token:
            return self.auth_token
        return f"{self.auth_token[:4]}{'*' * max(len(self.auth_token) - 4, 4)}"


def load_local_settings(environ: Mapping[str, str] | None = None) -> LocalSettings:
    """Blank values count as unset, so `PUBLIC_BASE_URL= make local` means the default."""
    source = os.environ if environ is None else environ
    values = {name: value for name, value in source.items() if value.strip()}
    try:
        return LocalSettings.model_validate(values)
    except ValidationError as exc:
        fields = LocalSettings.model_fields
        problems = []
        for error in exc.errors():
            field_name = str(error["loc"][0]) if error["loc"] else ""
            alias = fields[field_name].alias if field_name in fields else field_name
            problems.append(f"{alias}: {error['msg'].removeprefix('Value error, ')}")
        raise LocalSettingsError("; ".join(problems)) from exc
