"""Powertools Logger, Metrics and Tracer shared by every function, and the names they use.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (set in template.yaml Globals)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
# Subsegments for what these functions call: botocore (DynamoDB, SQS, S3, Secrets Manager, SSM).
# Powertools' default, the X-Ray SDK's patch_all(), also patches requests, sqlite3 and the database
# drivers, none of which is used here, and imports `requests` at every cold start to do so (about
# 35 ms; docs/benchmarks.md). http.client stays unpatched, as patch_all() leaves it.
TRACED_MODULES = ("botocore",)
tracer = Tracer(patch_modules=TRACED_MODULES)

__all__ = [
    "MetricName",
    "MetricUnit",
    "count",
    "log_safe",
    "logger",
    "mask_phone",
    "metrics",
    "reduced",
    "tracer",
]


class MetricName:
    REJECTED_SIGNATURE = "RejectedSignature"
    REJECTED_ACCOUNT = "RejectedAccount"
    BAD_REQUEST = "BadRequest"
    AUTH_TOKEN_UNAVAILABLE = "AuthTokenUnavailable"  # noqa: S105 - a metric name
    CALL_ANSWERED = "CallAnswered"
    SESSION_WRITE_FAILED = "SessionWriteFailed"
    FALLBACK_ANSWERED = "FallbackAnswered"
    CONFIG_UNAVAILABLE = "ConfigUnavailable"
    # Status and recording callbacks (one count per delivery, then what came of it).
    STATUS_CALLBACK = "StatusCallback"
    STATUS_EVENT_STORED = "StatusEventStored"
    RECORDING_CALLBACK = "RecordingCallback"
    DUPLICATE_CALLBACK = "DuplicateCallback"
    CONFLICTING_CALLBACK = "ConflictingCallback"
    OUT_OF_ORDER_CALLBACK = "OutOfOrderCallback"
    UNKNOWN_VALUE = "UnknownValue"
    RECORDING_QUEUED = "RecordingQueued"
    RECORDING_ABSENT = "RecordingAbsent"
    RECORDING_FAILED = "RecordingFailed"
    RECORDING_QUEUE_BUSY = "RecordingQueueBusy"
    RECORDING_QUEUE_FAILED = "RecordingQueueFailed"
    RECORDING_MARK_FAILED = "RecordingMarkFailed"
    CALLBACK_STORAGE_FAILED = "CallbackStorageFailed"
    # A callback named a session that belongs to another call: refused, nothing written.
    SESSION_MISMATCH = "SessionMismatch"
    # A callback without `session` started a session of its own (no session found for its call).
    CALLBACK_SESSION_STARTED = "CallbackSessionStarted"
    # An event's raw parameters were over their byte budget and were stored truncated.
    RAW_TRUNCATED = "RawTruncated"
    # Action requests (/voice/action): one count per request, then what came of it.
    ACTION_REQUEST = "ActionRequest"
    ACTION_UNKNOWN_VALUE = "ActionUnknownValue"
    ACTION_UNRECOGNISED = "ActionUnrecognised"
    ACTION_REPLAYED = "ActionReplayed"
    ACTION_LOOP_GUARD = "ActionLoopGuard"
    ACTION_WRITE_FAILED = "ActionWriteFailed"
    ACTION_SESSION_READ_FAILED = "ActionSessionReadFailed"
    CONVERSATION_FAILED = "ConversationFailed"
    NO_WORKER_ASSIGNED = "NoWorkerAssigned"
    RELAY_SESSION_FAILED = "RelaySessionFailed"
    HANDOFF_DIALED = "HandoffDialed"
    HANDOFF_TARGET_REFUSED = "HandoffTargetRefused"
    HANDOFF_DATA_INVALID = "HandoffDataInvalid"
    VOICEMAIL_OFFERED = "VoicemailOffered"
    VOICEMAIL_LEFT = "VoicemailLeft"
    DIAL_INCOMPLETE = "DialIncomplete"

    # The recording archiver: one outcome per RecordingsQueue message.
    RECORDING_ARCHIVED = "RecordingArchived"
    RECORDING_ALREADY_ARCHIVED = "RecordingAlreadyArchived"
    RECORDING_ARCHIVE_FAILED = "RecordingArchiveFailed"
    RECORDING_MESSAGE_INVALID = "RecordingMessageInvalid"
    RECORDING_MEDIA_NOT_FOUND = "RecordingMediaNotFound"
    RECORDING_MEDIA_HOST_REFUSED = "RecordingMediaHostRefused"
    RECORDING_MEDIA_UNAVAILABLE = "RecordingMediaUnavailable"
    RECORDING_MEDIA_UNAUTHORIZED = "RecordingMediaUnauthorized"
    RECORDING_ARCHIVE_STORE_FAILED = "RecordingArchiveStoreFailed"
    RECORDING_ARCHIVE_NOT_RECORDED = "RecordingArchiveNotRecorded"
    RECORDING_DELETED_FROM_TWILIO = "RecordingDeletedFromTwilio"


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


_PHONE = re.compile(r"^(\+?\d{0,4})\d+(\d{2})$")


def mask_phone(value: str | None) -> str | None:
    """`+15551234567` -> `+155*******67`. Clients (`client:alice`) and SIP URIs keep their scheme only."""
    if not value:
        return value
    if ":" in value:
        return value.split(":", 1)[0] + ":***"
    match = _PHONE.match(value)
    if not match:
        return "***"
    head, tail = match.groups()
    return f"{head}{'*' * (len(value) - len(head) - len(tail))}{tail}"


# What a value we did not choose may look like to be logged as is: a word, the shape of Twilio's
# enumerated values (`in-progress`, `dialed-call-incomplete`) and of JSON keys (`reason`). At most
# three digits: a phone number has seven or more, a card number thirteen or more.
_SAFE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_MAX_SAFE_DIGITS = 3


def reduced(value: str) -> str:
    """Its length and a short hash: enough to tell two values apart or to find one, nothing more."""
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]
    return f"<{len(value)} chars #{digest}>"


def log_safe(value: object) -> str:
    """A caller-influenced value (an unknown enum value, a HandoffData key) fit for a log line:
    kept when it is a plain word, reduced otherwise (`call-forwarded-to-+15557654321` would put a
    number in the logs)."""
    text = str(value)
    if _SAFE_WORD.fullmatch(text) and sum(char.isdigit() for char in text) <= _MAX_SAFE_DIGITS:
        return text
    return reduced(text)


def report_unknown_values(unknown: Mapping[str, str], message: str) -> None:
    """Each enumerated value this version does not know yet (stored as received): counted, and
    logged reduced, since a value like `call-forwarded-to-+1555...` carries caller data."""
    for name, value in unknown.items():
        count(MetricName.UNKNOWN_VALUE)
        # stacklevel: the log line's `location` names the route's function, as when it logged itself.
        logger.warning(message, extra={"field": name, "value": log_safe(value)}, stacklevel=3)
