"""The embedded AWS endpoint of the local mode: a moto server on 127.0.0.1 holding the template's
table, queues and buckets (created from template.yaml's own definitions) and the auth token secret."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session

from voicedev import template_resources
from voicedev.local_settings import HOST, REGION

EVENTS_TABLE = "EventsTable"
ACCOUNT_ID = "123456789012"  # moto's default account
AUTH_TOKEN_SECRET_NAME = "twilio/auth-token"  # noqa: S105 - a name, local only (deploy.md's is namespaced)
# moto accepts any credentials; fixed dummies keep a developer's real ones out of every request.
DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
# GET on the embedded endpoint: every message held by each queue, read from moto's state without
# receiving it (SQS itself cannot look without receiving, and each receive ages a message toward
# its queue's maxReceiveCount). The local mode's timelines read this instead of ReceiveMessage.
QUEUE_MESSAGES_PATH = "/_voicedev/queue-messages"


class LocalAwsError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalResources:
    """What the handlers use, by the names the template gives them."""

    endpoint_url: str
    region: str
    tables: dict[str, str]
    queue_urls: dict[str, str]
    bucket_names: dict[str, str]
    secret_arn: str = field(repr=False)

    def queue_arn(self, logical_id: str) -> str:
        return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{self.queue_urls[logical_id].rsplit('/', 1)[-1]}"

    @property
    def table_name(self) -> str:
        """The events table (the template's only table today)."""
        return self.tables.get(EVENTS_TABLE, next(iter(self.tables.values()), ""))

    def table_arn(self, logical_id: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{self.tables[logical_id]}"


def _ensure_free(port: int, host: str = HOST) -> None:
    """ThreadedMotoServer.start() waits forever when its bind fails: fail fast with a clear message."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise LocalAwsError(
            f"port {port} on {host} is in use ({exc.strerror}); set LOCAL_AWS_PORT to a free port"
        ) from exc
    finally:
        probe.close()


def queue_messages(region: str) -> dict[str, list[dict[str, Any]]]:
    """Queue name -> its messages (visible, in flight or delayed), shaped like ReceiveMessage's
    `Messages` entries, from moto's in-process backend. Receives nothing, changes nothing."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[ACCOUNT_ID][region]
    result: dict[str, list[dict[str, Any]]] = {}
    for name, queue in list(backend.queues.items()):
        result[name] = [
            {
                "MessageId": message.id,
                "Body": message.body,
                "MessageAttributes": message.message_attributes,
                "Attributes": {
                    "ApproximateReceiveCount": str(message.approximate_receive_count),
                    "SentTimestamp": str(message.sent_timestamp or 0),
                },
            }
            for message in list(queue._messages)  # every message, not only the visible ones
        ]
    return result


def _with_queue_messages(app: Any, region: str) -> Callable[..., Iterable[bytes]]:
    """moto's WSGI app, DynamoDB one request at a time, plus QUEUE_MESSAGES_PATH.

    moto's DynamoDB is not thread-safe: concurrent writes to one item (the relay frames of a call,
    each in its own invocation) fail inside moto with "dictionary changed size during iteration"
    after the write was applied, and the SDK's retry then fails its condition. DynamoDB applies
    each request atomically; serialising them gives the handlers that behaviour. (Only DynamoDB:
    an SQS long poll waits inside moto and must not hold up the rest.)"""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == QUEUE_MESSAGES_PATH and environ.get("REQUEST_METHOD") == "GET":
            body = json.dumps({"queues": queue_messages(region)}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            result: Iterable[bytes] = app(environ, start_response)
            return result
        with lock:
            # The body is read inside the lock: moto may build it lazily from its state.
            return list(app(environ, start_response))

    return wrapped


class EmbeddedAws:
    """A moto server in this process, on loopback (or, for `sam local`, on the Docker bridge
    address only: `host`)."""

    def __init__(self, port: int, region: str = REGION, host: str = HOST) -> None:
        self.requested_port = port
        self.region = region
        self.host = host
        self._server: Any = None
        self._port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise LocalAwsError("the embedded AWS endpoint is not running")
        return f"http://{self.host}:{self._port}"

    def start(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend
        from moto.server import ThreadedMotoServer

        # moto keeps its resources in this process's backends, which outlive a server: a second
        # local mode in one process (the bench, a tool) starts as empty as the first.
        moto_api_backend.reset()

        # Werkzeug logs every AWS call at INFO; the local mode prints its own request lines instead.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        _ensure_free(self.requested_port, self.host)
        server = ThreadedMotoServer(ip_address=self.host, port=self.requested_port, verbose=False)
        server.start()
        # Nothing has called the endpoint yet (its port was just taken): wrap the app before use.
        wsgi_server = server._server
        assert wsgi_server is not None
        wsgi_server.app = _with_queue_messages(wsgi_server.app, self.region)
        self._server = server
        self._port = int(server.get_host_and_port()[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for the embedded endpoint, whatever AWS_PROFILE or ~/.aws say."""
        isolated = botocore.session.Session(
            session_vars={
                # (config file key, environment variable, default, conversion): no source but the default.
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        session = boto3.session.Session(
            botocore_session=isolated, region_name=self.region, **DUMMY_CREDENTIALS
        )
        return session.client(service, endpoint_url=self.endpoint_url)

    def provision(self, auth_token: str) -> LocalResources:
        """The template's table, queues and buckets, and the secret holding the auth token."""
        dynamodb = self.client("dynamodb")
        tables = {
            logical_id: template_resources.create_table(dynamodb, logical_id)
            for logical_id in template_resources.resources_of_type("AWS::DynamoDB::Table")
        }
        queue_urls = template_resources.create_queues(self.client("sqs"))
        bucket_names = template_resources.create_buckets(self.client("s3"))
        secret = self.client("secretsmanager").create_secret(
            Name=AUTH_TOKEN_SECRET_NAME,
            SecretString=auth_token,
            Description="Twilio auth token for the local mode",
        )
        return LocalResources(
            endpoint_url=self.endpoint_url,
            region=self.region,
            tables=tables,
            queue_urls=queue_urls,
            bucket_names=bucket_names,
            secret_arn=str(secret["ARN"]),
        )
