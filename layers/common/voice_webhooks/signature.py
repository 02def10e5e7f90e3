"""Twilio request signature and account checks, shared by every route."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from voice_webhooks.auth_tokens import AuthTokens
from voice_webhooks.errors import AccountRejected, MalformedRequest, SignatureRejected
from voice_webhooks.observability import logger
from voice_webhooks.webhook_request import FormParams, WebhookRequest


def signature_is_valid(url: str, params: FormParams, signature: str, tokens: AuthTokens) -> bool:
    """True when any configured token (primary, or secondary during a rotation) produced it."""
    return any(RequestValidator(token).validate(url, params, signature) for token in tokens.all())


def verify_request(
    request: WebhookRequest, url: str, tokens: AuthTokens, allowed_accounts: frozenset[str]
) -> None:
    """Raise unless Twilio signed this exact request for one of our accounts."""
    # GET: everything is in the URL; POST: the URL plus the form parameters.
    if not signature_is_valid(url, request.form, request.signature, tokens):
        logger.warning("Rejected request: bad signature", extra={"method": request.method})
        raise SignatureRejected("invalid X-Twilio-Signature")
    account_sid = request.params.get("AccountSid", "")
    if account_sid not in allowed_accounts:
        if not allowed_accounts:
            logger.error("ALLOWED_ACCOUNT_SIDS is empty: every request is refused")
        logger.warning("Rejected request: account not allowed", extra={"account_sid": account_sid[:40]})
        raise AccountRejected("account not allowed")
    repeated = request.params.repeated_names()
    if repeated:
        raise MalformedRequest(f"parameter sent more than once with different values: {repeated[0]}")
