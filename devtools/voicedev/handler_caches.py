"""Forget what the handlers cache per process (settings, boto3 clients, secrets, SSM values, the
parsed flow document). Development-only: tests, the local mode and the tools switch environments
and endpoints between runs; Lambda never does, so the shared package has no such function."""

from __future__ import annotations


def reset_handler_caches() -> None:
    from voice_webhooks.edge.auth_tokens import _parse_cached, secrets_provider
    from voice_webhooks.flows.loader import _parsed, ssm_provider
    from voice_webhooks.runtime import aws_clients
    from voice_webhooks.runtime.settings import load_settings

    load_settings.cache_clear()
    for factory in (
        aws_clients.dynamodb_client,
        aws_clients.sqs,
        aws_clients.s3,
    ):
        factory.cache_clear()
    # The providers keep their values and their client (its endpoint): drop both.
    for provider_factory in (secrets_provider, ssm_provider):
        if provider_factory.cache_info().currsize:
            provider_factory().clear_cache()
        provider_factory.cache_clear()
    _parsed.cache_clear()
    _parse_cached.cache_clear()


def handler_providers() -> dict[str, object]:
    """The Parameters providers the handlers made so far, by service (for client instrumentation)."""
    from voice_webhooks.edge.auth_tokens import secrets_provider
    from voice_webhooks.flows.loader import ssm_provider

    providers: dict[str, object] = {}
    if secrets_provider.cache_info().currsize:
        providers["secrets"] = secrets_provider()
    if ssm_provider.cache_info().currsize:
        providers["ssm"] = ssm_provider()
    return providers
