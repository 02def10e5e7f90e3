"""The ConversationRelay agent endpoint: WebSocket handshake, frames, agents, turns (docs/relay-agent.md)."""


def reset_relay_caches() -> None:
    """Forget cached relay settings and clients (tests switch environments between cases)."""
    from voice_webhooks.relay import bedrock, connections, handlers, settings
    from voice_webhooks.storage import relay_store

    # getattr: a test may have replaced a factory with a plain function.
    for factory in (settings.relay_settings, bedrock.bedrock_client):
        clear = getattr(factory, "cache_clear", None)
        if callable(clear):
            clear()
    connections.reset_clients()
    handlers.forget_connections()
    relay_store.reset_client()
