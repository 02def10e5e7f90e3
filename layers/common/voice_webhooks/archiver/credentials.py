"""The Basic-auth credentials the archiver sends to Twilio's media host, from Secrets Manager
through Powertools Parameters (cached for PARAMETERS_MAX_AGE seconds).

Two shapes, chosen by RECORDING_DOWNLOAD_SECRET:
- unset (default): the auth-token secret every function already reads, with the message's
  AccountSid as the username; the secondary token is tried after a 401 during a rotation.
- set: a secret holding an API key, `{"apiKeySid": "SK...", "apiKeySecret": "..."}`. A restricted
  key that may only read (and, with deletion on, delete) recordings keeps the account's auth token
  out of the archiver altogether."""

from __future__ import annotations

import json

from voice_webhooks.archiver.download import BasicCredentials
from voice_webhooks.archiver.settings import ArchiverSettings
from voice_webhooks.edge.auth_tokens import load_auth_tokens, read_secret_text
from voice_webhooks.errors import DependencyUnavailable
from voice_webhooks.runtime.observability import MetricName, count, logger


class CredentialsUnavailable(DependencyUnavailable):
    """The secret cannot be read or has the wrong shape: the message is retried."""


def parse_api_key_secret(raw: str | bytes) -> BasicCredentials:
    """`{"apiKeySid": "SK...", "apiKeySecret": "..."}`. Errors never quote the secret."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("the download secret is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the download secret is not a JSON object")
    sid = str(document.get("apiKeySid") or "").strip()
    secret = str(document.get("apiKeySecret") or "").strip()
    if not sid.startswith("SK") or not secret:
        raise ValueError("the download secret needs apiKeySid (SK...) and apiKeySecret")
    return BasicCredentials(sid, secret)


class CredentialSource:
    def __init__(self, settings: ArchiverSettings) -> None:
        self.settings = settings

    @property
    def kind(self) -> str:
        return "api-key" if self.settings.recording_download_secret else "auth-token"

    def for_account(self, account_sid: str) -> tuple[BasicCredentials, ...]:
        """Credentials to try, in order."""
        if not self.settings.recording_download_secret:
            tokens = load_auth_tokens(self.settings.auth_token_secret, self.settings.cache_max_age_seconds)
            return tuple(BasicCredentials(account_sid, token) for token in tokens.all())
        try:
            raw = read_secret_text(
                self.settings.recording_download_secret, self.settings.cache_max_age_seconds
            )
            return (parse_api_key_secret(raw),)
        except Exception as exc:
            logger.error("Recording download secret unavailable", extra={"error_type": type(exc).__name__})
            count(MetricName.AUTH_TOKEN_UNAVAILABLE)
            raise CredentialsUnavailable("recording download credentials unavailable") from exc
