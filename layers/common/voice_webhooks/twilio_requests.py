"""Pydantic models of what Twilio sends us. Parsed once at the edge; unknown fields are accepted
and kept (Twilio adds parameters without notice)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from voice_webhooks.errors import MalformedRequest

CallSid = Annotated[str, StringConstraints(pattern=r"^CA[0-9a-fA-F]{32}$")]
AccountSid = Annotated[str, StringConstraints(pattern=r"^AC[0-9a-fA-F]{32}$")]


class TwilioRequest(BaseModel):
    """Twilio's standard voice request parameters, under Twilio's names."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    account_sid: AccountSid = Field(alias="AccountSid")
    call_sid: CallSid = Field(alias="CallSid")
    from_: str | None = Field(None, alias="From")
    to: str | None = Field(None, alias="To")
    direction: str | None = Field(None, alias="Direction")
    call_status: str | None = Field(None, alias="CallStatus")
    application_sid: str | None = Field(None, alias="ApplicationSid")
    api_version: str | None = Field(None, alias="ApiVersion")
    caller: str | None = Field(None, alias="Caller")
    called: str | None = Field(None, alias="Called")


class ConnectRequest(TwilioRequest):
    """The request for the connect TwiML (the number's voice URL)."""


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_params(model: type[ModelT], params: Mapping[str, str]) -> ModelT:
    """Validate Twilio's parameters; a missing or invalid field is a 400 naming it."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "request"
        raise MalformedRequest(f"{field}: {first['msg']}") from exc
