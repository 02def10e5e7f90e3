"""WebSocket route $connect of the relay API: see voice_webhooks.relay.handlers (docs/relay-agent.md)."""

from voice_webhooks.edge.handler import websocket_handler
from voice_webhooks.relay.handlers import handle_connect, preload_connect
from voice_webhooks.runtime.settings import RelayConnectSettings

lambda_handler = websocket_handler(
    RelayConnectSettings, handle_connect, verifies_signatures=True, preload=preload_connect
)
