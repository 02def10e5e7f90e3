"""The correlation id the edge's handlers log: `handler.request_id` reads the value Powertools'
`correlation_id_path` (a JMESPath search on every invocation) would, for any event."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.jmespath_utils import query
from voice_webhooks.edge.handler import request_id

EVENTS: list[Any] = [
    {"requestContext": {"requestId": "5c7ee2074b65853f", "http": {"method": "POST"}}},
    {"requestContext": {"requestId": "Xyz123=", "routeKey": "$connect", "connectionId": "c1"}},
    {"requestContext": {"requestId": None}},
    {"requestContext": {"requestId": 42}},
    {"requestContext": {"requestId": ""}},
    {"requestContext": {}},
    {"requestContext": None},
    {"requestContext": "not a mapping"},
    {"requestContext": ["requestId"]},
    {"requestcontext": {"requestId": "case matters"}},
    {},
    [],
    None,
    "requestContext",
]


@pytest.mark.parametrize("event", EVENTS, ids=[repr(event)[:40] for event in EVENTS])
@pytest.mark.parametrize("path", [correlation_paths.API_GATEWAY_HTTP, correlation_paths.API_GATEWAY_REST])
def test_request_id_is_what_the_jmespath_path_reads(event: Any, path: str) -> None:
    assert request_id(event) == query(data=event, envelope=path)
    assert type(request_id(event)) is type(query(data=event, envelope=path))


def test_request_id_reads_the_request_id() -> None:
    assert request_id(EVENTS[0]) == "5c7ee2074b65853f"
