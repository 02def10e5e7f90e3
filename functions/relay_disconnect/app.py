"""WebSocket route $disconnect of the relay API: see voice_webhooks.relay.handlers (docs/relay-agent.md)."""

from voice_webhooks.edge.handler import websocket_handler
from voice_webhooks.relay.handlers import handle_disconnect
from voice_webhooks.runtime.settings import RelayDisconnectSettings

lambda_handler = websocket_handler(RelayDisconnectSettings, handle_disconnect)
