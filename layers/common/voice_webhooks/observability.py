"""Powertools Logger, Metrics and Tracer shared by every function, and the names they use.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (set in template.yaml Globals)."""

from __future__ import annotations

import re

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
tracer = Tracer()

__all__ = ["MetricName", "MetricUnit", "count", "logger", "mask_phone", "metrics", "tracer"]


class MetricName:
    REJECTED_SIGNATURE = "RejectedSignature"
    REJECTED_ACCOUNT = "RejectedAccount"
    BAD_REQUEST = "BadRequest"
    AUTH_TOKEN_UNAVAILABLE = "AuthTokenUnavailable"  # noqa: S105 - a metric name
    CALL_ANSWERED = "CallAnswered"
    SESSION_WRITE_FAILED = "SessionWriteFailed"
    FALLBACK_ANSWERED = "FallbackAnswered"
    CONFIG_UNAVAILABLE = "ConfigUnavailable"


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


_PHONE = re.compile(r"^(\+?\d{0,4})\d+(\d{2})$")


def mask_phone(value: str | None) -> str | None:
    """`+15551234567` -> `+155*******67`. Clients (`client:alice`) and SIP URIs keep their scheme only."""
    if not value:
        return value
    if ":" in value:
        return value.split(":", 1)[0] + ":***"
    match = _PHONE.match(value)
    if not match:
        return "***"
    head, tail = match.groups()
    return f"{head}{'*' * (len(value) - len(head) - len(tail))}{tail}"
