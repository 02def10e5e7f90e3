"""The relay latency's floor: a $default handler that answers every frame with one `text` token
through @connections at once (one boto3 post, nothing parsed or stored). Through the local
WebSocket API this is the cost of the path itself: the frame's event, the invocation, the post and
the frame back."""

from __future__ import annotations

import os
from typing import Any

import boto3

_TOKEN = b'{"type":"text","token":"Hi","last":true}'
_client: Any = None


def lambda_handler(event: dict[str, Any], _context: object) -> dict[str, int]:
    global _client
    if _client is None:  # created once per execution environment, as handlers do
        _client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=os.environ["RELAY_MANAGEMENT_ENDPOINT"],
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        )
    if event["requestContext"]["routeKey"] == "$default":
        _client.post_to_connection(ConnectionId=event["requestContext"]["connectionId"], Data=_TOKEN)
    return {"statusCode": 200}
