"""Twilio request signature and account checks, shared by every route (order: docs/security.md).

Two kinds of signature, chosen by the `X-Twilio-Webhooks-Signature-Settings` header:
- absent: HMAC-SHA1 with the account's auth token (primary, or secondary during a rotation).
- `key=<id>,algorithm=HMAC_SHA256`: a Webhooks Rule signed with its SharedKey. The key comes from
  our secret under that id (never from the request), and the algorithm is taken from the header
  only when it is one we allow. An unknown key id, an algorithm we do not allow, a header without
  a key id, or a key id we hold no key for are all 403, like a bad signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse, urlsplit

from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, add_port, compare, remove_port

from voice_webhooks.edge.auth_tokens import AuthTokens
from voice_webhooks.edge.request import FormParams, WebhookRequest
from voice_webhooks.errors import AccountRejected, ConfigurationError, MalformedRequest, SignatureRejected
from voice_webhooks.runtime.observability import logger, reduced

# HMAC-SHA1 is what the auth token signs with; a SharedKey is only accepted with SHA-256.
SHARED_KEY_ALGORITHMS = frozenset({HMAC_SHA256})
# The algorithms twilio's validator knows (its compute_signature raises for any other).
_VALIDATORS = frozenset({HMAC_SHA1, HMAC_SHA256})


@dataclass(frozen=True)
class SharedKeySettings:
    key_id: str
    algorithm: str


def parse_signature_settings(header: str) -> SharedKeySettings:
    """`key=<id>,algorithm=<name>` (names case-sensitive as Twilio sends them, any order, spaces
    around parts ignored). 403 when a part is missing, repeated or unknown."""
    parts: dict[str, str] = {}
    for part in header.split(","):
        name, separator, value = part.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not value or name in parts or name not in ("key", "algorithm"):
            raise SignatureRejected("invalid X-Twilio-Webhooks-Signature-Settings header")
        parts[name] = value
    if "key" not in parts:
        raise SignatureRejected("X-Twilio-Webhooks-Signature-Settings names no key")
    if parts.get("algorithm") not in SHARED_KEY_ALGORITHMS:
        raise SignatureRejected("signature algorithm not accepted")
    return SharedKeySettings(key_id=parts["key"], algorithm=parts["algorithm"])


def validator_accepts(
    validator: RequestValidator,
    url: str,
    params: Mapping[str, str] | str | None,
    signature: str,
    algorithm: str | None = None,
) -> bool:
    """Exactly `validator.validate(url, params, signature, algorithm)`, with one HMAC where it
    computes two (tests/unit/test_signature_equivalence.py holds the two to the same answers).

    `validate` signs the URL both without and with its port (`:443`/`:80`; Twilio is not consistent
    about the default port) and accepts either; both HMACs are computed on every request. Here the
    form the URL arrived in is tried first, which is the one Twilio signed in the common case, and
    the other only when that one does not match: same accepted set, same refused set. Its
    `bodySHA256` check (a parse of the URL's query on every request) applies only when `params` is
    the raw body text of a JSON request; ours is always a mapping, so that parse is skipped. The
    cases `validate` treats apart (no `params`, body text, an algorithm twilio does not know, for
    which it logs a warning) go to `validate` itself."""
    if params is None or isinstance(params, str) or (algorithm or HMAC_SHA1).upper() not in _VALIDATORS:
        return bool(validator.validate(url, params, signature, algorithm))
    first, second = _url_forms(url)
    return bool(
        compare(validator.compute_signature(first, params, algorithm), signature)
        or compare(validator.compute_signature(second, params, algorithm), signature)
    )


@lru_cache(maxsize=32)
def _url_forms(url: str) -> tuple[str, str]:
    """The URL as `validate` signs it with and without its port, the form it arrived in first.
    Cached: a function's URL is the same on every request (the fallback's) or for every request
    of a call (the callbacks' `session`), so parsing and rebuilding it each time gave the same
    answer again."""
    parsed = urlparse(url)
    # Both built first, in validate's order: a URL whose port is not a number raises as it does
    # there (and, raising, is not cached).
    with_port, without_port = add_port(parsed), remove_port(parsed)
    return (with_port, without_port) if parsed.port else (without_port, with_port)


def signature_is_valid(url: str, params: FormParams, signature: str, tokens: AuthTokens) -> bool:
    """True when any configured token (primary, or secondary during a rotation) produced it.

    `params` must be a mapping (never the raw body text): given a string, twilio's validator
    switches to its JSON-body mode, where a `bodySHA256` query parameter decides."""
    return any(validator_accepts(RequestValidator(token), url, params, signature) for token in tokens.all())


def shared_key_signature_is_valid(
    url: str, params: FormParams, signature: str, keys: tuple[str, ...], algorithm: str
) -> bool:
    """True when any of the key id's keys (two during a rotation) produced it with `algorithm`."""
    return any(validator_accepts(RequestValidator(key), url, params, signature, algorithm) for key in keys)


def _without_query(url: str) -> str:
    # A GET's query carries Twilio's parameters (phone numbers): log scheme, host and path only.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _check_signature(request: WebhookRequest, url: str, tokens: AuthTokens) -> None:
    # GET: everything is in the URL; POST: the URL plus the form parameters.
    if request.signature_settings is None:
        valid, scheme = signature_is_valid(url, request.form, request.signature, tokens), "auth-token"
    else:
        settings = parse_signature_settings(request.signature_settings)
        keys = tokens.shared_keys_for(settings.key_id)
        if not keys:
            # The id came with the request: logged reduced, it tells an operator which rule to add.
            logger.warning(
                "Rejected request: no shared key for the signing key id",
                extra={"method": request.method, "key_id": reduced(settings.key_id)},
            )
            raise SignatureRejected("unknown signing key")
        valid = shared_key_signature_is_valid(url, request.form, request.signature, keys, settings.algorithm)
        scheme = "shared-key"
    if not valid:
        # The URL we checked against is what an operator needs when PUBLIC_BASE_URL is wrong.
        logger.warning(
            "Rejected request: bad signature",
            extra={"method": request.method, "checked_url": _without_query(url), "scheme": scheme},
        )
        raise SignatureRejected("invalid X-Twilio-Signature")


def verify_request(
    request: WebhookRequest, url: str, tokens: AuthTokens, allowed_accounts: frozenset[str]
) -> None:
    """Raise unless Twilio signed this exact request for one of our accounts.

    Order: signature (403), then ambiguous repeated names (400), then the account (403): the
    account is read from the parameters only once they are known to be signed and unambiguous."""
    if not allowed_accounts:
        raise ConfigurationError("setting ALLOWED_ACCOUNT_SIDS is empty: no account could be accepted")
    _check_signature(request, url, tokens)
    ambiguous = request.ambiguous_names()
    if ambiguous:
        raise MalformedRequest(f"parameter sent more than once with different values: {ambiguous[0]}")
    account_sid = request.params.get("AccountSid", "")
    if account_sid not in allowed_accounts:
        logger.warning("Rejected request: account not allowed", extra={"account_sid": account_sid[:40]})
        raise AccountRejected("account not allowed")
