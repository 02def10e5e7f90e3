"""RecordingArchiverFunction under moto (S3, SQS, DynamoDB, Secrets Manager), with a loopback HTTP
server standing in for Twilio's media host.

Each recording is made the way production makes it: a call answered by the connect handler, a
signed `completed` recording callback to the recording route, the message it queued received from
RecordingsQueue, and the archiver invoked with the SQS event Lambda would build (up to BatchSize
messages). `LocalArchiver` (the local mode's event source mapping) plays SQS redeliveries: it
deletes what the handler did not report failed and makes the rest visible again at once."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from voice_webhooks.runtime import aws_clients
from voicedev import template_resources
from voicedev.local_archiver import FakeMediaHost, LocalArchiver, sqs_event
from voicedev.twilio_signing import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, random_sid

from tests.conftest import REGION, FakeLambdaContext, load_function
from tests.integration.callback_helpers import (
    Output,
    deliver,
    failing,
    fixture,
    open_session,
    skip_retry_sleep,
)

COMPLETED: dict[str, str] = fixture("recording_callbacks.json")["conversation"]["completed"]
VOICEMAIL: dict[str, str] = fixture("recording_callbacks.json")["voicemail"]["completed"]
ARCHIVER_TIMEOUT_MS = 60_000  # template.yaml: RecordingArchiverFunction Timeout


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


DEV_CREDENTIALS = basic(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)


class ArchiverContext(FakeLambdaContext):
    function_name = "RecordingArchiverFunction"
    remaining_ms = ARCHIVER_TIMEOUT_MS

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self.remaining_ms


@dataclass(frozen=True)
class Recording:
    session_id: str
    call_sid: str
    sid: str


class Archive:
    """The stack's archive side: bucket, queue, table, media host, and the archiver's handler."""

    def __init__(self, aws: Any, invoke: Any, media: FakeMediaHost) -> None:
        self.aws = aws
        self.invoke = invoke
        self.media = media
        self.s3 = boto3.client("s3", region_name=REGION)
        self.bucket = template_resources.create_buckets(self.s3)["RecordingsBucket"]
        self.queue_url = aws.queue_urls["RecordingsQueue"]
        self.queue_arn = aws.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.context = ArchiverContext()
        self._app: ModuleType | None = None
        aws.env(
            RECORDINGS_BUCKET_NAME=self.bucket,
            # Twilio's host, plus the loopback stand-in (http is accepted for loopback only).
            RECORDING_MEDIA_ORIGINS=f"https://api.twilio.com,{media.origin}",
        )

    # -- making recordings the production way ---------------------------------------------------------

    def complete_recording(
        self, host: FakeMediaHost | None = None, params: dict[str, str] | None = None
    ) -> Recording:
        """A call answered, and its recording's `completed` callback delivered (signed), with a
        RecordingUrl on `host` (default: the allowed media host)."""
        session = open_session(self.invoke)
        sid = random_sid("RE")
        callback = {
            **(params or COMPLETED),
            "AccountSid": DEV_ACCOUNT_SID,
            "CallSid": session.call_sid,
            "RecordingSid": sid,
            "RecordingUrl": (host or self.media).recording_url(DEV_ACCOUNT_SID, sid),
        }
        assert deliver(self.invoke, "recording", session.recording_url, callback) == 204
        return Recording(session.session_id, session.call_sid, sid)

    def receive(self, expected: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for _ in range(5):
            response = self.aws.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages += response.get("Messages", [])
            if len(messages) >= expected:
                break
        assert len(messages) == expected, messages
        return messages

    # -- the function ---------------------------------------------------------------------------------

    @property
    def handler(self) -> Any:
        if self._app is None:
            self._app = load_function("archiver")
        return self._app.lambda_handler

    def run(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One invocation, with the event Lambda's SQS event source builds for these messages."""
        return dict(self.handler(sqs_event(messages, self.queue_arn, REGION), self.context))

    def event_source(self) -> LocalArchiver:
        return LocalArchiver(
            sqs_client=self.aws.sqs,
            queue_url=self.queue_url,
            queue_arn=self.queue_arn,
            region=REGION,
            handler=lambda: self.handler,
            context=lambda: self.context,
            batch_size=5,
            retry_after_seconds=0,
            poll_seconds=0,
        )

    def redeliver(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """SQS delivering these messages again (their visibility timeout ended)."""
        self.aws.sqs.change_message_visibility_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for index, message in enumerate(messages)
            ],
        )
        return self.receive(len(messages))

    # -- what it left behind ----------------------------------------------------------------------

    def session_entry(self, recording: Recording) -> dict[str, Any]:
        return dict(self.aws.item(recording.session_id, f"recording#{recording.sid}") or {})

    def expected_key(self, recording: Recording, extension: str = "wav") -> str:
        completed = datetime.fromisoformat(self.session_entry(recording)["CompletedAt"]).astimezone(UTC)
        return f"{DEV_ACCOUNT_SID}/{completed:%Y/%m/%d}/{recording.call_sid}/{recording.sid}.{extension}"

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def media_requests(self, recording: Recording, method: str | None = None) -> list[Any]:
        return [
            request
            for request in self.media.requests
            if recording.sid in request.path and (method is None or request.method == method)
        ]


@pytest.fixture
def media() -> Iterator[FakeMediaHost]:
    with FakeMediaHost(auth_token=DEV_AUTH_TOKEN) as host:
        yield host


@pytest.fixture
def archive(aws: Any, invoke: Any, media: FakeMediaHost) -> Archive:
    return Archive(aws, invoke, media)


def failed_ids(result: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


# --- success ----------------------------------------------------------------------------------------


def test_a_completed_recording_is_archived_with_its_key_on_the_session(
    archive: Archive, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a completed recording queued by the recording route
    recording = archive.complete_recording()
    [message] = archive.receive(1)
    output = Output(capfd, monkeypatch)
    before = datetime.now(UTC)

    # When the archiver receives the message
    result = archive.run([message])

    # Then nothing failed, and the media Twilio serves is in the bucket under the deterministic key
    assert result == {"batchItemFailures": []}
    key = archive.expected_key(recording)
    assert archive.keys() == [key]
    stored = archive.s3.get_object(Bucket=archive.bucket, Key=key)
    body = stored["Body"].read()
    assert body == archive.media.media(recording.sid, "wav")
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    # With its content type and what a consumer of the bucket needs without the table
    assert stored["ContentType"] == "audio/x-wav"
    assert stored["Metadata"] == {
        "account-sid": DEV_ACCOUNT_SID,
        "call-sid": recording.call_sid,
        "session-id": recording.session_id,
        "recording-sid": recording.sid,
        "duration-seconds": COMPLETED["RecordingDuration"],
        "channels": COMPLETED["RecordingChannels"],
        "source": COMPLETED["RecordingSource"],
        "kind": "conversation",
        "completed-at": archive.session_entry(recording)["CompletedAt"].replace("+00:00", "Z"),
        "media-bytes": str(len(body)),
    }

    # And the session item says where it is, and since when
    entry = archive.session_entry(recording)
    assert entry["ArchiveBucket"] == archive.bucket
    assert entry["ArchiveKey"] == key
    assert entry["ArchiveBytes"] == len(body)
    archived_at = datetime.fromisoformat(entry["ArchivedAt"])
    assert before - timedelta(seconds=1) <= archived_at <= datetime.now(UTC)
    assert "DeletedFromTwilioAt" not in entry

    # And Twilio's media host was asked once, with the account's Basic credentials, for the .wav
    [request] = archive.media.requests
    assert (request.method, request.authorization) == ("GET", DEV_CREDENTIALS)
    assert request.path == f"/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{recording.sid}.wav"
    emitted = output.read()
    assert emitted.metrics["RecordingArchived"] == 1
    assert emitted.metrics["RecordingArchiveFailed"] == 0


def test_mp3_format_is_fetched_and_stored_as_mp3(archive: Archive) -> None:
    # Given the archiver configured for mp3
    archive.aws.env(RECORDING_FORMAT="mp3")
    recording = archive.complete_recording(params=VOICEMAIL)

    # When it archives the recording
    assert archive.run(archive.receive(1)) == {"batchItemFailures": []}

    # Then it fetched RecordingUrl + .mp3 and stored audio/mpeg under a .mp3 key
    key = archive.expected_key(recording, "mp3")
    stored = archive.s3.get_object(Bucket=archive.bucket, Key=key)
    assert stored["ContentType"] == "audio/mpeg"
    assert stored["Body"].read() == archive.media.media(recording.sid, "mp3")
    assert stored["Metadata"]["kind"] == "voicemail"
    assert [r.path.rsplit(".", 1)[1] for r in archive.media.requests] == ["mp3"]


def test_a_recording_larger_than_one_part_is_uploaded_in_parts(archive: Archive) -> None:
    # Given a 10-minute recording (9.6 MB at 8 kHz, 16 bit: more than one 8 MiB part)
    recording = archive.complete_recording()
    archive.media.sizes[recording.sid] = 600

    # When it is archived
    assert archive.run(archive.receive(1)) == {"batchItemFailures": []}

    # Then the object is the whole recording, written as a multipart upload of two parts
    key = archive.expected_key(recording)
    head = archive.s3.head_object(Bucket=archive.bucket, Key=key)
    assert head["ContentLength"] == len(archive.media.media(recording.sid)) > 8 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-2")
    body = archive.s3.get_object(Bucket=archive.bucket, Key=key)["Body"].read()
    assert body == archive.media.media(recording.sid)


# --- redelivery ------------------------------------------------------------------------------------


def test_a_redelivered_message_is_not_downloaded_again(
    archive: Archive, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a recording archived once
    recording = archive.complete_recording()
    [message] = archive.receive(1)
    assert archive.run([message]) == {"batchItemFailures": []}
    first = archive.session_entry(recording)
    output = Output(capfd, monkeypatch)

    # When SQS delivers the same message again (at-least-once delivery)
    [again] = archive.redeliver([message])
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    result = archive.run([again])

    # Then it succeeds without a second download: the object (same size) is already there
    assert result == {"batchItemFailures": []}
    assert len(archive.media_requests(recording, "GET")) == 1
    assert archive.keys() == [archive.expected_key(recording)]
    # And the session keeps the first archive time
    assert archive.session_entry(recording)["ArchivedAt"] == first["ArchivedAt"]
    assert archive.session_entry(recording)["ArchiveKey"] == first["ArchiveKey"]
    emitted = output.read()
    assert emitted.metrics["RecordingAlreadyArchived"] == 1
    assert emitted.metrics["RecordingArchived"] == 0


def test_an_object_of_another_size_than_announced_is_downloaded_again(archive: Archive) -> None:
    # Given an object under the recording's key whose size is not the one Twilio announced
    recording = archive.complete_recording()
    [message] = archive.receive(1)
    key = archive.expected_key(recording)
    archive.s3.put_object(Bucket=archive.bucket, Key=key, Body=b"RIFF", Metadata={"media-bytes": "16044"})

    # When the message is processed
    assert archive.run([message]) == {"batchItemFailures": []}

    # Then the recording was fetched and the object replaced by the whole media
    assert len(archive.media_requests(recording, "GET")) == 1
    body = archive.s3.get_object(Bucket=archive.bucket, Key=key)["Body"].read()
    assert body == archive.media.media(recording.sid)


# --- refusals and failures --------------------------------------------------------------------------


def test_a_host_not_on_the_allowlist_is_refused_without_any_request(
    archive: Archive, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a second media host, on another port, that the allowlist does not name
    with FakeMediaHost(auth_token=DEV_AUTH_TOKEN) as elsewhere:
        recording = archive.complete_recording(host=elsewhere)
        refused_origin = elsewhere.origin
        [message] = archive.receive(1)
        output = Output(capfd, monkeypatch)

        # When the archiver receives its message
        result = archive.run([message])

        # Then the message fails, and neither host received any request (no credentials sent)
        assert failed_ids(result) == [message["MessageId"]]
        assert elsewhere.requests == []
    assert archive.media.requests == []
    assert archive.keys() == []
    assert "ArchiveKey" not in archive.session_entry(recording)
    emitted = output.read()
    assert emitted.metrics["RecordingMediaHostRefused"] == 1
    [error] = emitted.at("ERROR")
    assert refused_origin in error["reason"]
    assert error["recording_sid"] == recording.sid


def test_twilio_404_is_logged_counted_and_the_message_reaches_the_dlq_after_the_retries(
    archive: Archive, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a recording Twilio no longer has (deleted in the console, say)
    recording = archive.complete_recording()
    archive.media.missing.add(recording.sid)
    output = Output(capfd, monkeypatch)

    # When SQS delivers its message until the redrive policy moves it (maxReceiveCount 5)
    source = archive.event_source()
    outcomes = [source.poll_once() for _ in range(6)]

    # Then each of the 5 receives failed, after which the message sits in the dead-letter queue
    assert [outcome.failed != [] for outcome in outcomes if outcome] == [True] * 5
    assert outcomes[5] is None
    [dead] = archive.aws.messages("RecordingsDeadLetterQueue")
    assert json.loads(dead["Body"])["recordingSid"] == recording.sid
    assert len(archive.media_requests(recording, "GET")) == 5
    assert archive.keys() == []
    # And each failure was logged with the recording and the status, and counted
    emitted = output.read()
    assert emitted.metrics["RecordingMediaNotFound"] == 5
    errors = emitted.at("ERROR")
    assert len(errors) == 5
    assert all("404" in log["reason"] and log["recording_sid"] == recording.sid for log in errors)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_transient_twilio_error_fails_the_message_and_the_retry_archives_it(
    archive: Archive, status: int, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Twilio's media host answers `status` once, then serves the media
    recording = archive.complete_recording()
    archive.media.failures[("GET", recording.sid)] = [status]
    [message] = archive.receive(1)
    output = Output(capfd, monkeypatch)

    # When the message is delivered, fails, and is delivered again
    first = archive.run([message])
    second = archive.run(archive.redeliver([message]))

    # Then only the first attempt failed, and the recording is archived once
    assert failed_ids(first) == [message["MessageId"]]
    assert second == {"batchItemFailures": []}
    assert [r.status for r in archive.media_requests(recording, "GET")] == [status, 200]
    assert archive.keys() == [archive.expected_key(recording)]
    assert archive.session_entry(recording)["ArchiveKey"] == archive.expected_key(recording)
    emitted = output.read()
    assert emitted.metrics["RecordingMediaUnavailable"] == 1
    assert emitted.metrics["RecordingArchived"] == 1
    [warning] = emitted.at("WARNING")
    assert str(status) in warning["reason"]


def test_a_malformed_message_fails_alone_in_a_batch_of_good_ones(
    archive: Archive, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two completed recordings queued by the route, and between them a message that is not one
    first = archive.complete_recording()
    archive.aws.sqs.send_message(
        QueueUrl=archive.queue_url,
        MessageBody=json.dumps({"schema": "twilio-voice-webhooks.recording.v1", "recordingSid": first.sid}),
    )
    second = archive.complete_recording()
    messages = archive.receive(3)
    [bad] = [m for m in messages if "sessionId" not in json.loads(m["Body"])]
    output = Output(capfd, monkeypatch)

    # When the three arrive in one batch
    result = archive.run(messages)

    # Then the batch reports exactly the malformed message as failed
    assert failed_ids(result) == [bad["MessageId"]]
    # And both good recordings are archived
    assert sorted(archive.keys()) == sorted([archive.expected_key(first), archive.expected_key(second)])
    emitted = output.read()
    assert emitted.metrics["RecordingMessageInvalid"] == 1
    assert emitted.metrics["RecordingArchived"] == 2
    [error] = emitted.at("ERROR")
    assert error["message_id"] == bad["MessageId"]
    assert "sessionId" in error["reason"]


def test_a_body_that_is_not_json_and_a_foreign_account_fail_alone(archive: Archive, aws: Any) -> None:
    # Given a good recording, a body that is not JSON, and a well-formed message for an account
    # this stack does not accept
    good = archive.complete_recording()
    [queued] = archive.receive(1)
    foreign = json.loads(queued["Body"]) | {"accountSid": "AC" + "9" * 32}
    for body in ("not json", json.dumps(foreign)):
        aws.sqs.send_message(QueueUrl=archive.queue_url, MessageBody=body)
    others = archive.receive(2)

    # When they are processed together
    result = archive.run([queued, *others])

    # Then only the two fail, no request was made for the foreign account, and the good one is archived
    assert sorted(failed_ids(result)) == sorted(m["MessageId"] for m in others)
    assert archive.keys() == [archive.expected_key(good)]
    assert [r.method for r in archive.media.requests] == ["GET"]


def test_a_message_with_fields_added_later_in_v1_is_archived(archive: Archive) -> None:
    # Given a v1 message carrying a field this consumer does not know (the schema allows additions)
    recording = archive.complete_recording()
    [message] = archive.receive(1)
    message = {**message, "Body": json.dumps(json.loads(message["Body"]) | {"transcriptSid": "GT123"})}

    # When it is processed
    result = archive.run([message])

    # Then the unknown field is ignored
    assert result == {"batchItemFailures": []}
    assert archive.keys() == [archive.expected_key(recording)]


def test_an_s3_failure_fails_the_message_and_the_retry_archives_it(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given S3 refusing the first upload
    skip_retry_sleep(monkeypatch)
    recording = archive.complete_recording()
    [message] = archive.receive(1)

    # When the message is delivered twice
    with failing(aws_clients.s3(), "PutObject", code="InternalError", status=500) as failures:
        first = archive.run([message])
    second = archive.run(archive.redeliver([message]))

    # Then the first failed, the second archived it
    assert failures == ["PutObject"]
    assert failed_ids(first) == [message["MessageId"]]
    assert second == {"batchItemFailures": []}
    assert archive.keys() == [archive.expected_key(recording)]


def test_a_dynamodb_failure_after_the_upload_is_retried_without_downloading_again(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB failing when the archiver records the key on the session
    skip_retry_sleep(monkeypatch)
    recording = archive.complete_recording()
    [message] = archive.receive(1)
    table_client = aws_clients.dynamodb_client()

    # When the message is delivered, fails, and is delivered again
    with failing(table_client, "UpdateItem", code="InternalServerError", status=500):
        first = archive.run([message])
    assert "ArchiveKey" not in archive.session_entry(recording)
    second = archive.run(archive.redeliver([message]))

    # Then the retry records the key, and the media was fetched only once
    assert failed_ids(first) == [message["MessageId"]]
    assert second == {"batchItemFailures": []}
    assert archive.session_entry(recording)["ArchiveKey"] == archive.expected_key(recording)
    assert len(archive.media_requests(recording, "GET")) == 1


def test_messages_started_too_close_to_the_timeout_fail_without_a_request(archive: Archive) -> None:
    # Given an invocation with 10 s left (less than a download may need)
    archive.complete_recording()
    [message] = archive.receive(1)
    archive.context.remaining_ms = 10_000

    # When the message is processed
    result = archive.run([message])

    # Then it fails (SQS retries it) and nothing was fetched
    assert failed_ids(result) == [message["MessageId"]]
    assert archive.media.requests == []


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_bad_origin_setting_fails_the_invocation_before_any_message(archive: Archive) -> None:
    # Given an allowlist naming a plain-http public host
    archive.aws.env(RECORDING_MEDIA_ORIGINS="http://api.twilio.com")
    archive.complete_recording()
    messages = archive.receive(1)

    # Then the invocation fails as a whole (a deployment error, alarmed on Lambda Errors)
    from voice_webhooks.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="loopback"):
        archive.run(messages)
    assert archive.media.requests == []


# --- credentials -------------------------------------------------------------------------------------


def test_during_a_token_rotation_the_secondary_token_is_tried_after_a_401(archive: Archive) -> None:
    # Given the secret holds a new primary token that Twilio does not accept yet, and the old one
    # (the callback that queues the recording is signed with the development token, before that)
    recording = archive.complete_recording()
    archive.media.auth_token = "old-token"
    archive.aws.set_auth_tokens("new-token", secondary="old-token")

    # When the archiver downloads
    assert archive.run(archive.receive(1)) == {"batchItemFailures": []}

    # Then it tried the primary, then the secondary, which Twilio accepted
    assert [(r.authorization, r.status) for r in archive.media.requests] == [
        (basic(DEV_ACCOUNT_SID, "new-token"), 401),
        (basic(DEV_ACCOUNT_SID, "old-token"), 200),
    ]
    assert archive.keys() == [archive.expected_key(recording)]


def test_an_api_key_secret_is_used_instead_of_the_auth_token(archive: Archive) -> None:
    # Given a download secret holding a (restricted) API key
    key_sid, key_secret = random_sid("SK"), "api-key-secret"
    archive.media.api_keys[key_sid] = key_secret
    arn = archive.aws.secrets.create_secret(
        Name="twilio/recordings-api-key",
        SecretString=json.dumps({"apiKeySid": key_sid, "apiKeySecret": key_secret}),
    )["ARN"]
    archive.aws.env(RECORDING_DOWNLOAD_SECRET=arn)
    recording = archive.complete_recording()

    # When the archiver downloads
    assert archive.run(archive.receive(1)) == {"batchItemFailures": []}

    # Then Twilio saw the API key, never the auth token
    assert [r.authorization for r in archive.media.requests] == [basic(key_sid, key_secret)]
    assert archive.keys() == [archive.expected_key(recording)]


def test_an_api_key_secret_of_the_wrong_shape_fails_the_message_without_a_request(archive: Archive) -> None:
    arn = archive.aws.secrets.create_secret(Name="twilio/bad", SecretString='{"apiKey": "x"}')["ARN"]
    archive.aws.env(RECORDING_DOWNLOAD_SECRET=arn)
    archive.complete_recording()
    [message] = archive.receive(1)

    assert failed_ids(archive.run([message])) == [message["MessageId"]]
    assert archive.media.requests == []


# --- deleting Twilio's copy --------------------------------------------------------------------------


def test_with_deletion_on_the_recording_is_deleted_from_twilio_once_archived(archive: Archive) -> None:
    # Given deletion after archive switched on
    archive.aws.env(DELETE_RECORDINGS_AFTER_ARCHIVE="true")
    recording = archive.complete_recording()
    [message] = archive.receive(1)

    # When the message is processed, and delivered a second time
    assert archive.run([message]) == {"batchItemFailures": []}
    entry = archive.session_entry(recording)
    assert archive.run(archive.redeliver([message])) == {"batchItemFailures": []}

    # Then the media was fetched once, then the recording deleted on Twilio with the same credentials
    requests = archive.media_requests(recording)
    assert [(r.method, r.status) for r in requests] == [("GET", 200), ("DELETE", 204), ("DELETE", 404)]
    assert requests[1].path == f"/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{recording.sid}.json"
    assert requests[1].authorization == DEV_CREDENTIALS
    # And the session records when (the redelivery's 404 "already deleted" changes nothing)
    assert entry["DeletedFromTwilioAt"] >= entry["ArchivedAt"]
    assert archive.session_entry(recording)["DeletedFromTwilioAt"] == entry["DeletedFromTwilioAt"]
    assert archive.keys() == [archive.expected_key(recording)]


def test_with_deletion_off_nothing_is_deleted_from_twilio(archive: Archive) -> None:
    # Given the default setting
    recording = archive.complete_recording()

    # When the recording is archived
    assert archive.run(archive.receive(1)) == {"batchItemFailures": []}

    # Then no DELETE reached Twilio
    assert [r.method for r in archive.media.requests] == ["GET"]
    assert "DeletedFromTwilioAt" not in archive.session_entry(recording)


def test_a_failed_delete_is_retried_and_the_archive_is_not_downloaded_again(archive: Archive) -> None:
    # Given deletion on, and Twilio failing the first DELETE
    archive.aws.env(DELETE_RECORDINGS_AFTER_ARCHIVE="true")
    recording = archive.complete_recording()
    archive.media.failures[("DELETE", recording.sid)] = [503]
    [message] = archive.receive(1)

    # When the message is delivered (the delete fails) and delivered again
    first = archive.run([message])
    key_after_first = archive.session_entry(recording).get("ArchiveKey")
    second = archive.run(archive.redeliver([message]))

    # Then the archive was recorded at once, and the retry deletes without another download
    assert failed_ids(first) == [message["MessageId"]]
    assert key_after_first == archive.expected_key(recording)
    assert second == {"batchItemFailures": []}
    assert [(r.method, r.status) for r in archive.media_requests(recording)] == [
        ("GET", 200),
        ("DELETE", 503),
        ("DELETE", 204),
    ]
    assert "DeletedFromTwilioAt" in archive.session_entry(recording)
