"""Lambda SnapStart runtime hooks (docs/deploy.md#snapstart), registered once per process by
`register()` when the runtime provides `snapshot_restore_py` (Lambda's Python runtimes do; tests and
the local mode do not, and then nothing happens).

Before the snapshot (once per published version, at deployment): the AWS clients this function
uses are created and its first reads are made (auth token, flow configuration), so that botocore's
models, endpoint rules and request serialisers, Powertools' providers and pydantic's validators are
in the snapshot, not in the first request of every restored environment.

After each restore: what must be unique or fresh is made again. `random` is reseeded (ids come
from `secrets`/`uuid4`, which read the OS at each call, but a library's `random` must not repeat
across environments restored from one snapshot); the cached token and configuration are
forgotten, so a snapshot never serves a value older than its TTL; pooled connections are closed
(they were opened before the snapshot, possibly days ago); then the token and configuration are
read again in two threads, which the first request waits for (`settle()`).

A function that never verifies a signature (the relay's `$default` and `$disconnect`: Globals give
them the secret's name, not the right to read it) registers with `auth_token=False`, and a function
whose clients are not the ones above names them in `warm` (the relay's storage client and its
`@connections` client): each step creates a client before the snapshot, and after restore its
connections are closed like the others'.

Every hook failure is logged and swallowed: a snapshot without a warm cache is slower, never
broken, and the request path reports a missing secret or parameter as it always does."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from voice_webhooks.runtime import aws_clients
from voice_webhooks.runtime.observability import logger, metrics

_registered = False
WarmStep = tuple[str, Callable[[], object]]
"""What it warms (for the log when it fails), and the step: it returns the client it made, or None."""
_reads_auth_token = True
_warm_steps: tuple[WarmStep, ...] = ()
_snapshot_clients: list[Any] = []
"""The clients the warm steps made before the snapshot: their connections are closed after restore."""


def register(*, auth_token: bool = True, warm: Sequence[WarmStep] = ()) -> bool:
    """Register the hooks (once); False when this runtime has no SnapStart hooks library.

    `auth_token=False`: this function never reads the auth token (nor does its init-phase prefetch);
    `warm`: more clients to create before the snapshot (module doc)."""
    global _registered, _reads_auth_token, _warm_steps  # one registration per process
    if _registered:
        return True
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found, unused-ignore]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    _reads_auth_token, _warm_steps = auth_token, tuple(warm)
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    _registered = True
    return True


_prefetch: threading.Thread | None = None
PREFETCH_WAIT_S = 1.0
"""How long a first request waits for the init-phase reads before making its own: they take tens
of milliseconds; a dependency that hangs costs the request this much more than before (well inside
Lambda's 10 s and Twilio's 15 s)."""


def prefetch(*, restored: bool = False, auth_token: bool | None = None) -> bool:
    """On an on-demand cold start, read the auth token and the flow configuration during the init
    phase, side by side in two threads (each is a network round trip, on Lambda a TLS handshake to
    its own endpoint); the first request then finds them cached (`settle()` waits for them).

    Errors are left to the request: a failed read here is dropped without a log or a metric, and
    the request reads again and answers as it always does. Nothing is read where Lambda did not say
    `on-demand` (tests, the local mode; SnapStart, whose hooks do it before the snapshot), except
    `restored`: after a SnapStart restore, the same reads start again from the after-restore hook.
    `auth_token=False`: no token read (default: as registered)."""
    global _prefetch
    if not restored and (
        _prefetch is not None or os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "on-demand"
    ):
        return False
    try:
        reads = _prefetch_reads(_reads_auth_token if auth_token is None else auth_token)
    except Exception:  # missing settings, a provider that changed: the request will say
        return False
    if not reads:
        return False

    def run() -> None:
        workers = [threading.Thread(target=_quietly, args=(read,), daemon=True) for read in reads[1:]]
        for worker in workers:
            worker.start()
        _quietly(reads[0])
        for worker in workers:
            worker.join(PREFETCH_WAIT_S)

    _prefetch = threading.Thread(target=run, name="init-prefetch", daemon=True)
    _prefetch.start()
    return True


def settle() -> None:
    """Wait (a bounded time) for the init-phase reads, so the first request does not repeat them."""
    thread = _prefetch
    if thread is not None and thread.is_alive():
        thread.join(PREFETCH_WAIT_S)


def _quietly(read: Callable[[], object]) -> None:
    # Deferred: the request reads again, and logs and counts the failure as it always does.
    with contextlib.suppress(Exception):
        read()


def _prefetch_reads(auth_token: bool) -> list[Callable[[], object]]:
    """The provider reads the request path makes, with their clients created here, in the main
    thread (creating clients from one boto3 session is not thread-safe; using them is)."""
    from voice_webhooks.edge import auth_tokens

    # The function's settings model was validated at import (edge.handler); only these are read.
    max_age = _max_age()
    reads: list[Callable[[], object]] = []
    aws_clients.session()
    secret_id = os.environ.get("TWILIO_AUTH_TOKEN_SECRET", "").strip() if auth_token else ""
    if secret_id:
        secrets = auth_tokens.secrets_provider()
        reads.append(lambda: secrets.get(secret_id, max_age=max_age))
    source = os.environ.get("FLOW_CONFIG", "").strip()
    if source.startswith("ssm:"):
        # Imported only here: the functions without a flow configuration never build its models.
        from voice_webhooks.flows import loader

        ssm = loader.ssm_provider()
        name = source.removeprefix(loader.SSM_PREFIX)
        reads.append(lambda: ssm.get(name, max_age=max_age, decrypt=True))
    return reads


def _attempt(what: str, work: Callable[[], object]) -> None:
    try:
        work()
    except Exception as exc:  # a hook must never fail the snapshot or the restore
        logger.warning("SnapStart hook step skipped", extra={"step": what, "error_type": type(exc).__name__})


def before_snapshot() -> None:
    """Create this function's clients and make its first reads (from its environment)."""
    aws_clients.session()
    if os.environ.get("EVENTS_TABLE_NAME"):
        # The client storage/dynamo.py uses: the first request finds it made.
        _attempt("dynamodb", aws_clients.dynamodb_client)
    if os.environ.get("RECORDINGS_QUEUE_URL"):
        _attempt("sqs", aws_clients.sqs)
    if os.environ.get("RECORDINGS_BUCKET_NAME"):
        _attempt("s3", aws_clients.s3)
    for what, step in _warm_steps:
        _attempt(what, partial(_keep_client, step))
    try:
        if _reads_auth_token and os.environ.get("TWILIO_AUTH_TOKEN_SECRET"):
            _attempt("auth token", _read_auth_tokens)
        if os.environ.get("FLOW_CONFIG"):
            _attempt("flow config", _read_flow_config)
    finally:
        # A read that failed here counted a metric: it belongs to no invocation.
        metrics.clear_metrics()


def _keep_client(step: Callable[[], object]) -> None:
    client = step()
    if client is not None:
        _snapshot_clients.append(client)


def _max_age() -> int:
    try:
        return int(os.environ.get("PARAMETERS_MAX_AGE", "300"))
    except ValueError:
        return 300


def _read_auth_tokens() -> object:
    from voice_webhooks.edge.auth_tokens import load_auth_tokens

    return load_auth_tokens(os.environ["TWILIO_AUTH_TOKEN_SECRET"].strip(), _max_age())


def _read_flow_config() -> object:
    from voice_webhooks.flows.loader import load_flow_config

    return load_flow_config(os.environ["FLOW_CONFIG"].strip(), _max_age())


def _providers() -> list[Any]:
    """The Parameters providers the handlers made so far (module-level, built on first use)."""
    from voice_webhooks.edge import auth_tokens

    made = [auth_tokens.secrets_provider()] if auth_tokens.secrets_provider.cache_info().currsize else []
    loader = sys.modules.get("voice_webhooks.flows.loader")
    if loader is not None and loader.ssm_provider.cache_info().currsize:
        made.append(loader.ssm_provider())
    return made


def after_restore() -> None:
    """Make unique and fresh again what the snapshot holds."""
    random.seed()  # from os.urandom
    _attempt("cached parameters", forget_cached_parameters)
    _attempt("connections", close_connections)
    # Read them again now, side by side, rather than one after the other in the first request.
    _attempt("reads", lambda: prefetch(restored=True))


def forget_cached_parameters() -> None:
    """Forget every cached value of Powertools' providers (the token, the flow configuration),
    keeping the providers and their clients (`parameters.clear_caches()` would drop those too)."""
    for provider in _providers():
        provider.clear_cache()


def _known_clients() -> Iterator[Any]:
    for provider in _providers():
        client = getattr(provider, "client", None)
        if client is not None:
            yield client
    for name in ("dynamodb_client", "sqs", "s3"):
        factory = getattr(aws_clients, name, None)
        info = getattr(factory, "cache_info", None)
        if factory is None or info is None or info().currsize == 0:
            continue  # never created: nothing to close (and nothing to create now)
        made = factory()
        yield made
    yield from _snapshot_clients


def close_connections() -> int:
    """Close the connection pools of the clients this process made; returns how many clients.
    botocore opens new connections on the next request."""
    closed = 0
    for client in _known_clients():
        session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        if session is not None:
            session.close()
            closed += 1
    return closed
