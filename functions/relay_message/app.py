"""WebSocket route $default of the relay API: see voice_webhooks.relay.handlers (docs/relay-agent.md)."""

from voice_webhooks.edge.handler import websocket_handler
from voice_webhooks.relay.handlers import handle_message, preload_message
from voice_webhooks.runtime.settings import RelayMessageSettings

lambda_handler = websocket_handler(RelayMessageSettings, handle_message, posts=True, preload=preload_message)
