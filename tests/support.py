"""Helpers shared by the test layers: reading what a handler answered and what it emitted."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

Calls = list[tuple[str, str]]
"""AWS API calls as (service, operation), recorded by the `aws_calls` fixture."""


def body_text(response: Mapping[str, Any]) -> str:
    """An API Gateway response's body as text, decoded when the handler base64-encoded it."""
    text = str(response.get("body") or "")
    return base64.b64decode(text).decode() if response.get("isBase64Encoded") else text


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Metric name -> total, from the EMF documents Powertools prints to stdout."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    values if isinstance(values, list) else [values]
                )
    return totals


def deployed_environment(logical_id: str) -> dict[str, str]:
    """A function's variables as CloudFormation resolves them from template.yaml (what its
    settings model checks at import), resources named as a stack names them, and the two
    parameters without a default given values."""
    from voicedev.bench.environment import function_environment
    from voicedev.bench.warm import stack_resources
    from voicedev.template_resources import load_template
    from voicedev.twilio_signing import DEV_ACCOUNT_SID

    template = load_template()
    env = function_environment(template, stack_resources(template), logical_id)
    # AuthTokenSecretArn and AllowedAccountSids have no default: function_environment leaves
    # their variables out, as a deployment must give them.
    env.setdefault("TWILIO_AUTH_TOKEN_SECRET", "arn:aws:secretsmanager:us-east-1:123456789012:secret:AbCdEf")
    env.setdefault("ALLOWED_ACCOUNT_SIDS", DEV_ACCOUNT_SID)
    return env


class ConverseStream(dict[str, Any]):
    """A ConverseStream event stream for botocore's Stubber: validated as an (empty) structure when
    the response is added, then iterated as the events the real EventStream yields."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events
        self.armed = False

    def __iter__(self) -> Iterator[Any]:
        return iter(self.events if self.armed else ())
