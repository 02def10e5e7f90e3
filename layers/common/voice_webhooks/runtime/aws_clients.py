"""boto3 clients, built on first use and cached (never at import time).

boto3 reads AWS_ENDPOINT_URL itself, which is how the local mode points every client at the
embedded moto server.

Every client, Powertools Parameters' included (edge/auth_tokens.py, flows/loader.py), comes from
boto3's default session: each extra session loads botocore's data files and registers its
handlers anew, which costs a cold start about 30 ms (docs/benchmarks.md)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from voice_webhooks.runtime.endpoint_guard import check_endpoint_url

# The webhook functions have a 10 s Lambda timeout inside Twilio's 15 s: the worst case here
# (2 attempts x (1 s connect + 2 s read) + backoff) must stay well inside it, so that a hanging
# DynamoDB or SQS still lets a TwiML route answer TwiML and an event route answer 5xx in time.
# DynamoDB and SQS answer in milliseconds; Twilio's own retry does the rest.
MAX_ATTEMPTS = 2
_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
)


def session() -> Any:
    """boto3's default session (the one `boto3.client()` uses), created on first use."""
    if boto3.DEFAULT_SESSION is None:
        # Before any client exists: a non-development AWS_ENDPOINT_URL never gets a request.
        check_endpoint_url()
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


@cache
def dynamodb_client() -> Any:
    """The low-level DynamoDB client EventsTable access uses (storage/dynamo.py): cheaper to
    build than the resource API (never used here), and its answers are the wire format the
    storage layer maps."""
    return session().client("dynamodb", config=_CONFIG)


@cache
def sqs() -> Any:
    return session().client("sqs", config=_CONFIG)


# The recording archiver has 60 s per batch: S3 parts of 8 MiB may take longer than a webhook's
# budget, and a retried part costs less than a failed message.
_S3_CONFIG = Config(connect_timeout=2, read_timeout=15, retries={"mode": "standard", "total_max_attempts": 3})


@cache
def s3() -> Any:
    return session().client("s3", config=_S3_CONFIG)
