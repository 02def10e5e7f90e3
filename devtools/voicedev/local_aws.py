"""The embedded AWS endpoint of the local mode: a moto server on 127.0.0.1 holding the template's
table, queues and buckets (created from template.yaml's own definitions) and the auth token secret."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session

from voicedev import template_resources
from voicedev.local_settings import HOST, REGION

EVENTS_TABLE = "EventsTable"
ACCOUNT_ID = "123456789012"  # moto's default account
AUTH_TOKEN_SECRET_NAME = "twilio/auth-token"  # noqa: S105 - a name; README's deploy step uses the same
# moto accepts any credentials; fixed dummies keep a developer's real ones out of every request.
DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


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
        from moto.server import ThreadedMotoServer

        # Werkzeug logs every AWS call at INFO; the local mode prints its own request lines instead.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        _ensure_free(self.requested_port, self.host)
        server = ThreadedMotoServer(ip_address=self.host, port=self.requested_port, verbose=False)
        server.start()
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
