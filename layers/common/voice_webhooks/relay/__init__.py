"""The ConversationRelay agent endpoint: WebSocket handshake, frames, agents, turns (docs/relay-agent.md)."""


def reset_relay_caches() -> None:
    """Forget cached relay settings and clients (tests switch environments between cases)."""
    from voice_webhooks.relay import bedrock, connections, settings
    from voice_webhooks.storage import relay_store

    settings.relay_settings.cache_clear()
    connections.reset_clients()
    bedrock.bedrock_client.cache_clear()
    relay_store.reset_client()
