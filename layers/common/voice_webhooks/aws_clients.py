"""boto3 clients, built on first use and cached (never at import time).

boto3 reads AWS_ENDPOINT_URL itself, which is how the local mode points every client at the
embedded moto server."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Lambda has 15 s (Twilio's limit) to answer: fail fast and let Twilio's retry do the rest.
_CONFIG = Config(connect_timeout=2, read_timeout=4, retries={"mode": "standard", "total_max_attempts": 3})


@cache
def dynamodb() -> Any:
    return boto3.resource("dynamodb", config=_CONFIG)


@cache
def sqs() -> Any:
    return boto3.client("sqs", config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    for factory in (dynamodb, sqs):
        factory.cache_clear()
