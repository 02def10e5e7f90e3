"""The three WebSocket routes (`$connect`, `$default`, `$disconnect`), as API Gateway's WebSocket
Lambda proxy events (RELAY.md). The functions in functions/relay_*/app.py only call these.

Answers: `$connect` 200 accepts, 403/400 refuse (nothing written), 500/503 refuse when our side
cannot verify or record the connection (Twilio then reports the session failed, and the action
route reconnects). `$default` answers 200 for every frame we handled or ignored on purpose (a
hostile frame is counted, not an error) and 500 when storage failed, so IntegrationError alarms."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from voice_webhooks.errors import (
    ConfigurationError,
    DependencyUnavailable,
    SignatureRejected,
    StorageError,
    WebhookError,
)
from voice_webhooks.relay import connections
from voice_webhooks.relay.metrics import RelayMetric
from voice_webhooks.relay.settings import relay_settings
from voice_webhooks.runtime.observability import MetricName, count, logger
from voice_webhooks.runtime.settings import (
    RelayConnectSettings,
    RelayDisconnectSettings,
    RelayMessageSettings,
)
from voice_webhooks.storage.relay_store import AlreadyConnected, Connection, RelayStore, UnknownConnection

Answer = dict[str, Any]
OK: Answer = {"statusCode": 200}

# The connections this container has read: (table, connection id) -> Connection. A connection's
# session and attempt never change, so an `interrupt` uses a known one and goes straight to its
# marker write (the reply it stops is streaming meanwhile, one marker read per token). Other frames
# read the item: its Flow may be set by `setup` after the container first saw the connection.
_KNOWN_CONNECTIONS: dict[tuple[str, str], Connection] = {}
_KNOWN_CONNECTIONS_MAX = 1024
_known_lock = threading.Lock()


def _remember(key: tuple[str, str], connection: Connection) -> None:
    with _known_lock:
        _KNOWN_CONNECTIONS.pop(key, None)
        _KNOWN_CONNECTIONS[key] = connection
        while len(_KNOWN_CONNECTIONS) > _KNOWN_CONNECTIONS_MAX:
            _KNOWN_CONNECTIONS.pop(next(iter(_KNOWN_CONNECTIONS)))


def forget_connections() -> None:
    with _known_lock:
        _KNOWN_CONNECTIONS.clear()


def _refuse(status: int, reason: str) -> Answer:
    return {"statusCode": status, "body": reason}


def _context(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, dict) else {}


def _store(table_name: str) -> RelayStore:
    return RelayStore(table_name)


# --- $connect ------------------------------------------------------------------------------------


# Each route imports what only it uses: the three functions share this module, and $disconnect's
# cold start must not build the flow, frame and signature machinery of the other two.


def preload_connect() -> None:
    """Before a SnapStart snapshot: the modules `handle_connect` imports on its first request."""
    import voice_webhooks.edge.auth_tokens
    import voice_webhooks.relay.handshake  # noqa: F401


def preload_message() -> None:
    """Before a SnapStart snapshot: the modules `handle_message` imports on its first request."""
    import voice_webhooks.flows.loader
    import voice_webhooks.relay.conversation
    import voice_webhooks.relay.frames  # noqa: F401


def handle_connect(event: dict[str, Any], settings: RelayConnectSettings) -> Answer:
    from voice_webhooks.edge.auth_tokens import load_auth_tokens
    from voice_webhooks.relay.handshake import (
        SIGNATURE_HEADER,
        check_signature,
        header,
        read_handshake,
        signed_url,
    )

    context = _context(event)
    query = event.get("queryStringParameters") or {}
    try:
        signature = header(event.get("headers"), SIGNATURE_HEADER)
        if not signature:
            raise SignatureRejected("missing X-Twilio-Signature header")
        tokens = load_auth_tokens(settings.auth_token_secret, settings.cache_max_age_seconds)
        check_signature(signed_url(context, query, relay_settings().public_url), signature, tokens)
        handshake = read_handshake(query)
    except WebhookError as error:
        count(MetricName.REJECTED_SIGNATURE if error.status == 403 else MetricName.BAD_REQUEST)
        logger.info("Refused relay handshake", extra={"status": int(error.status), "reason": error.reason})
        return _refuse(int(error.status), error.reason)
    except ConfigurationError as error:
        count(MetricName.CONFIG_UNAVAILABLE)
        logger.error("Configuration error", extra={"reason": str(error)})
        return _refuse(500, "service misconfigured")
    logger.append_keys(session_id=handshake.session_id, attempt=handshake.attempt)

    store = _store(settings.events_table_name)
    now = datetime.now(UTC)
    try:
        session = store.session(handshake.session_id) or {}
        flow = session.get("Flow")
        store.open_connection(
            Connection(
                str(context.get("connectionId")),
                handshake.session_id,
                handshake.attempt,
                flow if isinstance(flow, str) else None,
            ),
            connected_at=now.isoformat(),
            expires_at=int((now + timedelta(days=settings.event_ttl_days)).timestamp()),
            connection_expires_at=int(
                (now + timedelta(hours=relay_settings().connection_ttl_hours)).timestamp()
            ),
        )
    except AlreadyConnected:
        # The signature covers the URL only: a second upgrade with it is a replay, not Twilio.
        count(RelayMetric.HANDSHAKE_REPLAYED)
        logger.warning("Refused relay handshake: this session's attempt is already connected")
        return _refuse(403, "session attempt already connected")
    except StorageError as exc:
        count(RelayMetric.STORAGE_FAILED)
        logger.error("Relay connection not recorded: refusing it", extra={"reason": str(exc)})
        return _refuse(503, "temporarily unavailable")
    count(RelayMetric.HANDSHAKE_ACCEPTED)
    logger.info("Relay connection accepted", extra={"flow": flow})
    return OK


# --- $default ------------------------------------------------------------------------------------


def handle_message(event: dict[str, Any], settings: RelayMessageSettings) -> Answer:
    from voice_webhooks.flows.loader import load_flow_config
    from voice_webhooks.relay.conversation import Conversation
    from voice_webhooks.relay.frames import FrameRejected, InterruptFrame, parse_frame

    context = _context(event)
    connection_id = str(context.get("connectionId") or "")
    try:
        frame = parse_frame(event.get("body") if isinstance(event.get("body"), str) else None)
    except FrameRejected as rejected:
        count(RelayMetric.FRAME_REJECTED)
        logger.warning("Relay frame ignored", extra={"reason": rejected.reason})
        return OK
    store = RelayStore(settings.events_table_name)
    try:
        key = (settings.events_table_name, connection_id)
        connection = _KNOWN_CONNECTIONS.get(key) if isinstance(frame, InterruptFrame) else None
        if connection is None:
            connection = store.connection(connection_id)
            if connection is None:
                raise UnknownConnection(connection_id)
            _remember(key, connection)
        logger.append_keys(session_id=connection.session_id, attempt=connection.attempt)
        conversation = Conversation(
            store=store,
            poster=connections.management_api(context),
            connection=connection,
            load_config=lambda: load_flow_config(settings.flow_config, settings.cache_max_age_seconds),
            allowed_accounts=settings.allowed_account_sids,
            ttl_days=settings.event_ttl_days,
        )
        # Twilio does not resend frames, but a redelivered invocation carries the same messageId.
        # Without an id (never from API Gateway), the frame cannot be recognised again: a fresh one.
        message_id = str(context.get("messageId") or context.get("requestId") or "") or secrets.token_hex(8)
        conversation.handle(frame, message_id)
    except UnknownConnection:
        count(RelayMetric.UNKNOWN_CONNECTION)
        logger.warning("Frame on a connection that was never accepted: ignored", extra={"frame": frame.type})
        return OK
    except (StorageError, DependencyUnavailable) as exc:
        count(RelayMetric.STORAGE_FAILED)
        logger.error(
            "Relay frame not handled: storage failed", extra={"frame": frame.type, "reason": str(exc)}
        )
        return _refuse(500, "storage failed")
    except connections.PostFailed as exc:
        count(RelayMetric.POST_FAILED)
        logger.error(
            "Relay frame not handled: @connections failed", extra={"frame": frame.type, "reason": str(exc)}
        )
        return _refuse(500, "post failed")
    except ConfigurationError as exc:
        count(MetricName.CONFIG_UNAVAILABLE)
        logger.error("Configuration error", extra={"reason": str(exc)})
        return _refuse(500, "service misconfigured")
    return OK


# --- $disconnect ---------------------------------------------------------------------------------


def handle_disconnect(event: dict[str, Any], settings: RelayDisconnectSettings) -> Answer:
    context = _context(event)
    store = _store(settings.events_table_name)
    with _known_lock:
        _KNOWN_CONNECTIONS.pop((settings.events_table_name, str(context.get("connectionId") or "")), None)
    try:
        connection = store.connection(str(context.get("connectionId") or ""))
        if connection is None:
            # A refused handshake also ends in $disconnect: nothing was recorded, nothing to update.
            logger.info(
                "Disconnect of a connection that was never accepted: nothing recorded",
                extra={"status_code": context.get("disconnectStatusCode")},
            )
            return OK
        logger.append_keys(session_id=connection.session_id, attempt=connection.attempt)
        code = context.get("disconnectStatusCode")
        store.update_connection(
            connection,
            {
                "DisconnectedAt": datetime.now(UTC).isoformat(),
                "DisconnectStatusCode": int(code) if isinstance(code, int) else None,
                "DisconnectReason": str(context.get("disconnectReason") or "")[:200],
            },
        )
    except StorageError as exc:
        count(RelayMetric.STORAGE_FAILED)
        logger.error("Disconnect not recorded", extra={"reason": str(exc)})
        return _refuse(500, "storage failed")
    except Exception as exc:
        logger.warning("Disconnect of an unrecorded connection", extra={"error_type": type(exc).__name__})
    logger.info("Relay connection closed", extra={"status_code": context.get("disconnectStatusCode")})
    return OK
