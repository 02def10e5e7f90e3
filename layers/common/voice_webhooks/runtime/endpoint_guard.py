"""AWS_ENDPOINT_URL may only name a development endpoint.

boto3 sends every AWS call (DynamoDB, SQS, S3, Secrets Manager, SSM) to AWS_ENDPOINT_URL when it
is set. The template sets it from LocalAwsEndpoint, empty in a deployed stack, for `sam local`
against a moto server (docs/sam-local.md); the local mode sets it to its loopback moto server.
A value naming any other host would send the auth token lookups and the call data elsewhere, so
the functions refuse it at cold start, whatever the template's AllowedPattern let through: plain
http (moto speaks nothing else) to a loopback address or a private (RFC 1918) bridge address."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

VARIABLE = "AWS_ENDPOINT_URL"


class EndpointNotAllowed(RuntimeError):
    """AWS_ENDPOINT_URL names a host outside loopback and the private bridge ranges."""


def _allowed_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name could resolve anywhere
    if address.is_loopback:
        return True
    private_v4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    return address.version == 4 and any(address in ipaddress.ip_network(net) for net in private_v4)


def check_endpoint_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The development endpoint, None when unset or blank; EndpointNotAllowed otherwise."""
    value = (os.environ if environ is None else environ).get(VARIABLE, "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        _ = parts.port  # ValueError on a malformed port
    except ValueError as exc:
        raise EndpointNotAllowed(f"setting {VARIABLE} is not a URL") from exc
    if parts.scheme != "http" or not _allowed_host(host) or parts.path not in ("", "/"):
        raise EndpointNotAllowed(
            f"setting {VARIABLE} must be empty in a deployed stack; for development it may only be "
            "http://<loopback or private bridge address>:<port> (LocalAwsEndpoint, docs/sam-local.md)"
        )
    return value
