"""RecordingsBucket: streaming uploads and the HEAD that makes archiving idempotent.

Uploads go through `upload_fileobj`, which reads the stream in parts (multipart above the
threshold) and never holds the whole recording in memory. An S3 object only appears once its
upload is complete, so an object under a recording's key is a whole recording."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from voice_webhooks.runtime.aws_clients import s3

# Metadata key (x-amz-meta-media-bytes): the size the media host announced, when it did.
MEDIA_BYTES: Final = "media-bytes"
_PART_BYTES: Final = 8 * 1024 * 1024
# At most this many parts in memory at once: 2 x 8 MiB, whatever the recording's length.
_TRANSFER: Final = TransferConfig(
    multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES, max_concurrency=2
)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ArchiveStoreError(Exception):
    """S3 failed: the message is retried."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str | None
    metadata: Mapping[str, str]

    @property
    def complete(self) -> bool:
        """Holds the whole recording: its size is the one the media host announced (objects
        written without an announced size are complete by S3's all-or-nothing uploads)."""
        announced = self.metadata.get(MEDIA_BYTES)
        return announced is None or (announced.isdigit() and int(announced) == self.size)


class ArchiveStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def head(self, key: str) -> StoredObject | None:
        """The object under `key`, or None. (A 404 needs s3:ListBucket: without it S3 says 403.)"""
        try:
            response = s3().head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise ArchiveStoreError(f"S3 HEAD failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveStoreError(f"S3 unreachable (HEAD): {type(exc).__name__}") from exc
        return StoredObject(
            key=key,
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            metadata=dict(response.get("Metadata") or {}),
        )

    def upload(self, stream: Readable, key: str, *, content_type: str, metadata: Mapping[str, str]) -> None:
        """Stream `stream` to `key`. Errors reading the stream propagate as they are (the caller
        knows what they mean); S3's become ArchiveStoreError. A failed multipart upload is
        aborted by s3transfer (and by the bucket's lifecycle rule, should that fail too)."""
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata)}
        try:
            s3().upload_fileobj(stream, self.bucket, key, ExtraArgs=extra, Config=_TRANSFER)
        except ClientError as exc:
            raise ArchiveStoreError(f"S3 upload failed: {_code(exc)}") from exc
        except S3UploadFailedError as exc:
            raise ArchiveStoreError("S3 upload failed") from exc
        except BotoCoreError as exc:
            raise ArchiveStoreError(f"S3 unreachable (upload): {type(exc).__name__}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "unknown")


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
