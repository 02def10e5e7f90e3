"""The reference RecordingsQueue consumer: each completed recording's media, fetched from Twilio
with Basic auth from allowed origins only, streamed to RecordingsBucket under a deterministic key,
recorded on the session item, and (optional, off by default) deleted from Twilio once the copy is
verified. See docs/operations.md.

One message, one outcome: archived, already archived (a redelivery: nothing is downloaded again),
or a failure that raises, so that the batch reports this message alone and SQS redelivers it (and
moves it to the dead-letter queue after the redrive count)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from voice_webhooks.archiver.credentials import CredentialSource
from voice_webhooks.archiver.download import (
    MediaClient,
    MediaError,
    MediaHostRefused,
    MediaNotFound,
    MediaOrigins,
    MediaUnauthorized,
    MediaUnavailable,
)
from voice_webhooks.archiver.settings import ArchiverSettings
from voice_webhooks.archiver.store import MEDIA_BYTES, ArchiveStore, ArchiveStoreError
from voice_webhooks.errors import DependencyUnavailable, StorageError
from voice_webhooks.queues.recording_messages import RecordingMessage
from voice_webhooks.runtime.observability import MetricName, count, logger
from voice_webhooks.storage.dynamo import utc_now
from voice_webhooks.storage.recordings import RecordingStore

NO_CALL: Final = "no-call"
# A message started with less time than this left in the invocation fails at once (and is retried)
# rather than being cut off by Lambda's timeout, which would fail the whole batch.
MIN_REMAINING_MS: Final = 15_000


class InvalidMessage(ValueError):
    """Not a recording message this archiver can act on: retrying will not change that."""


class ArchiveVerificationFailed(RuntimeError):
    """The stored object is not the size that was downloaded."""


class NotEnoughTime(RuntimeError):
    """Too little of the invocation left to start another download."""


# The body's keys the model knows (camelCase aliases).
_KNOWN_KEYS: Final = frozenset(field.alias or name for name, field in RecordingMessage.model_fields.items())


def parse_message(body: str) -> RecordingMessage:
    """The queue message model, plus what the archiver builds keys and URLs from.

    Keys the model does not know are dropped first: the schema lets v1 gain optional fields
    (docs/queue-messages.md), and a consumer must not send those messages to the DLQ."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        raise InvalidMessage("the body is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidMessage("the body is not a JSON object")
    try:
        message = RecordingMessage.model_validate({k: v for k, v in document.items() if k in _KNOWN_KEYS})
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise InvalidMessage(f"not a recording message: {', '.join(fields) or 'body'}") from exc
    # The SIDs (account, call, recording) were checked by the model's types: keys and URLs are
    # built from them.
    return message


def archive_key(message: RecordingMessage, extension: str) -> str:
    """`AC.../2024/05/07/CA.../RE....wav`: account, UTC date of completion, call, recording.
    Every field comes from the message, so every delivery of one recording names one object."""
    completed = message.completed_at
    day = (completed if completed.tzinfo else completed.replace(tzinfo=UTC)).astimezone(UTC)
    call = message.call_sid or NO_CALL
    return f"{message.account_sid}/{day:%Y/%m/%d}/{call}/{message.recording_sid}.{extension}"


def recording_resource_url(message: RecordingMessage) -> str:
    """The recording's resource URL as Twilio gave it, checked to name this recording."""
    parts = urlsplit(message.recording_url)
    if parts.query or parts.fragment or not parts.path.endswith(f"/Recordings/{message.recording_sid}"):
        raise InvalidMessage("recordingUrl does not name this recording")
    return message.recording_url


def object_metadata(message: RecordingMessage, media_bytes: int | None) -> dict[str, str]:
    """S3 user metadata (x-amz-meta-*): what a consumer of the bucket needs without the table."""
    values: dict[str, Any] = {
        "account-sid": message.account_sid,
        "call-sid": message.call_sid,
        "session-id": message.session_id,
        "recording-sid": message.recording_sid,
        "duration-seconds": message.duration_seconds,
        "channels": message.channels,
        "source": message.source,
        "kind": message.kind,
        "conversation-sid": message.conversation_sid,
        # As the message body spells it (ISO 8601, `Z`).
        "completed-at": message.model_dump(mode="json", include={"completed_at"})["completed_at"],
        MEDIA_BYTES: media_bytes,
    }
    return {name: str(value) for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class ArchiveResult:
    bucket: str
    key: str
    size: int
    downloaded: bool
    """False: the object was already there (a redelivery), nothing was fetched."""
    session_recorded: bool
    deleted_from_twilio: bool


class RecordingArchiver:
    def __init__(
        self,
        *,
        store: ArchiveStore,
        media: MediaClient,
        credentials: CredentialSource,
        sessions: RecordingStore | None,
        extension: str = "wav",
        delete_after_archive: bool = False,
        allowed_accounts: Collection[str] = (),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.media = media
        self.credentials = credentials
        self.sessions = sessions
        self.extension = extension
        self.delete_after_archive = delete_after_archive
        self.allowed_accounts = frozenset(allowed_accounts)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: ArchiverSettings) -> RecordingArchiver:
        """ConfigurationError for a bad origin list or a missing bucket: a deployment problem,
        raised before any message is touched."""
        return cls(
            store=ArchiveStore(settings.recordings_bucket_name),
            media=MediaClient(MediaOrigins.parse(settings.recording_media_origins)),
            credentials=CredentialSource(settings),
            sessions=RecordingStore(settings.events_table_name) if settings.events_table_name else None,
            extension=settings.recording_format,
            delete_after_archive=settings.delete_recordings_after_archive,
            allowed_accounts=settings.allowed_account_sids,
        )

    def archive(self, message: RecordingMessage) -> ArchiveResult:
        if self.allowed_accounts and message.account_sid not in self.allowed_accounts:
            raise InvalidMessage("accountSid is not one of ALLOWED_ACCOUNT_SIDS")
        resource_url = recording_resource_url(message)
        media_url = f"{resource_url}.{self.extension}"
        # Refused before anything else happens, secrets and S3 included.
        self.media.check(media_url)
        key = archive_key(message, self.extension)

        existing = self.store.head(key)
        credentials = None
        if existing is not None and existing.complete:
            size, downloaded = existing.size, False
        else:
            credentials = self.credentials.for_account(message.account_sid)
            size = self._copy(message, media_url, key, credentials)
            downloaded = True

        session_recorded = False
        if self.sessions is not None:
            session_recorded = self.sessions.record_recording_archive(
                message.session_id,
                message.recording_sid,
                bucket=self.store.bucket,
                key=key,
                size=size,
                archived_at=self.clock().isoformat(),
            )

        deleted = False
        if self.delete_after_archive:
            credentials = credentials or self.credentials.for_account(message.account_sid)
            # `.json`: Twilio's REST resource; a 404 means an earlier delivery already deleted it.
            deleted_now = self.media.delete(f"{resource_url}.json", credentials)
            deleted = True
            if deleted_now:
                count(MetricName.RECORDING_DELETED_FROM_TWILIO)
            if self.sessions is not None and session_recorded:
                self.sessions.record_recording_deleted_from_twilio(
                    message.session_id, message.recording_sid, at=self.clock().isoformat()
                )
        return ArchiveResult(self.store.bucket, key, size, downloaded, session_recorded, deleted)

    def _copy(self, message: RecordingMessage, media_url: str, key: str, credentials: Any) -> int:
        with self.media.download(media_url, credentials) as download:
            self.store.upload(
                download.body,
                key,
                content_type=download.content_type,
                metadata=object_metadata(message, download.content_length),
            )
            read = download.body.bytes_read
            announced = download.content_length
        stored = self.store.head(key)
        if stored is None or stored.size != read or (announced is not None and announced != read):
            raise ArchiveVerificationFailed(
                f"stored {stored.size if stored else 'nothing'} bytes, read {read}, announced {announced}"
            )
        return read


# --- one SQS record -------------------------------------------------------------------------------

# Metric and log level per failure, most specific first. Everything else is counted only as a
# failed archive. All of them fail the message: SQS retries, then moves it to the DLQ.
_FAILURES: Final[tuple[tuple[type[BaseException], str | None, str], ...]] = (
    (InvalidMessage, MetricName.RECORDING_MESSAGE_INVALID, "error"),
    (MediaHostRefused, MetricName.RECORDING_MEDIA_HOST_REFUSED, "error"),
    (MediaNotFound, MetricName.RECORDING_MEDIA_NOT_FOUND, "error"),
    (MediaUnauthorized, MetricName.RECORDING_MEDIA_UNAUTHORIZED, "error"),
    (MediaUnavailable, MetricName.RECORDING_MEDIA_UNAVAILABLE, "warning"),
    (MediaError, None, "error"),
    (ArchiveStoreError, MetricName.RECORDING_ARCHIVE_STORE_FAILED, "warning"),
    (ArchiveVerificationFailed, MetricName.RECORDING_ARCHIVE_STORE_FAILED, "warning"),
    (StorageError, None, "warning"),
    (DependencyUnavailable, None, "warning"),
    (NotEnoughTime, None, "warning"),
)


def _record_keys(keys: Mapping[str, Any]) -> AbstractContextManager[None]:
    """Log keys for one message, removed when it is done (Powertools' scoped keys)."""
    return logger.append_context_keys(**{name: value for name, value in keys.items() if value is not None})


def archive_record(
    record: SQSRecord, archiver: RecordingArchiver, *, remaining_ms: int | None = None
) -> ArchiveResult:
    """Archive one queue message; raises (after logging and counting) when it must be retried."""
    with _record_keys({"message_id": record.message_id}):
        try:
            if remaining_ms is not None and remaining_ms < MIN_REMAINING_MS:
                raise NotEnoughTime(f"{remaining_ms} ms left in this invocation")
            message = parse_message(record.body)
        except Exception as exc:
            _report_failure(exc, record)
            raise
        keys = {
            "session_id": message.session_id,
            "call_sid": message.call_sid,
            "recording_sid": message.recording_sid,
        }
        with _record_keys(keys):
            try:
                result = archiver.archive(message)
            except Exception as exc:
                _report_failure(exc, record)
                raise
            fields = {
                "key": result.key,
                "bytes": result.size,
                "deleted_from_twilio": result.deleted_from_twilio,
            }
            if result.downloaded:
                count(MetricName.RECORDING_ARCHIVED)
                logger.info("Recording archived", extra=fields)
            else:
                count(MetricName.RECORDING_ALREADY_ARCHIVED)
                logger.info("Recording already archived: nothing downloaded", extra=fields)
            if not result.session_recorded and archiver.sessions is not None:
                count(MetricName.RECORDING_ARCHIVE_NOT_RECORDED)
                logger.warning("Recording archived, but the session has no entry for it", extra=fields)
            return result


def _report_failure(exc: BaseException, record: SQSRecord) -> None:
    count(MetricName.RECORDING_ARCHIVE_FAILED)
    metric, level = next(
        ((name, level) for kind, name, level in _FAILURES if isinstance(exc, kind)), (None, "error")
    )
    if metric is not None:
        count(metric)
    receives = record.attributes.approximate_receive_count
    # Reasons are ours (never a secret, never a phone number); unexpected errors get a traceback.
    extra = {"reason": str(exc), "error_type": type(exc).__name__, "receive_count": receives}
    if level == "warning":
        logger.warning("Recording not archived: will be retried", extra=extra)
    elif metric is None and not isinstance(exc, (MediaError, StorageError, DependencyUnavailable)):
        logger.exception("Recording not archived: unexpected error", extra=extra)
    else:
        logger.error("Recording not archived", extra=extra)
