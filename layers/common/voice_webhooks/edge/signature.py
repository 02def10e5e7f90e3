"""Twilio request signature and account checks, shared by every route (order: docs/security.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

from voice_webhooks.edge.auth_tokens import AuthTokens
from voice_webhooks.edge.request import FormParams, WebhookRequest
from voice_webhooks.errors import AccountRejected, ConfigurationError, MalformedRequest, SignatureRejected
from voice_webhooks.runtime.observability import logger


def signature_is_valid(url: str, params: FormParams, signature: str, tokens: AuthTokens) -> bool:
    """True when any configured token (primary, or secondary during a rotation) produced it.

    `params` must be a mapping (never the raw body text): given a string, twilio's validator
    switches to its JSON-body mode, where a `bodySHA256` query parameter decides."""
    return any(RequestValidator(token).validate(url, params, signature) for token in tokens.all())


def _without_query(url: str) -> str:
    # A GET's query carries Twilio's parameters (phone numbers): log scheme, host and path only.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def verify_request(
    request: WebhookRequest, url: str, tokens: AuthTokens, allowed_accounts: frozenset[str]
) -> None:
    """Raise unless Twilio signed this exact request for one of our accounts.

    Order: signature (403), then ambiguous repeated names (400), then the account (403): the
    account is read from the parameters only once they are known to be signed and unambiguous."""
    if not allowed_accounts:
        raise ConfigurationError("setting ALLOWED_ACCOUNT_SIDS is empty: no account could be accepted")
    # GET: everything is in the URL; POST: the URL plus the form parameters.
    if not signature_is_valid(url, request.form, request.signature, tokens):
        # The URL we checked against is what an operator needs when PUBLIC_BASE_URL is wrong.
        logger.warning(
            "Rejected request: bad signature",
            extra={"method": request.method, "checked_url": _without_query(url)},
        )
        raise SignatureRejected("invalid X-Twilio-Signature")
    ambiguous = request.ambiguous_names()
    if ambiguous:
        raise MalformedRequest(f"parameter sent more than once with different values: {ambiguous[0]}")
    account_sid = request.params.get("AccountSid", "")
    if account_sid not in allowed_accounts:
        logger.warning("Rejected request: account not allowed", extra={"account_sid": account_sid[:40]})
        raise AccountRejected("account not allowed")
