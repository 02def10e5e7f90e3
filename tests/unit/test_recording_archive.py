"""The archiver's rules that need no network: which media origins are allowed, which messages are
acted on, the object key and metadata, when an object counts as archived, the download secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from voice_webhooks.archiver.archive import (
    InvalidMessage,
    archive_key,
    object_metadata,
    parse_message,
    recording_resource_url,
)
from voice_webhooks.archiver.credentials import parse_api_key_secret
from voice_webhooks.archiver.download import BasicCredentials, MediaOrigins, parse_origin
from voice_webhooks.archiver.settings import ArchiverSettings
from voice_webhooks.archiver.store import StoredObject
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.queues.recording_messages import SCHEMA, RecordingMessage

ACCOUNT = "AC" + "0" * 32
CALL = "CA" + "1" * 32
SID = "RE" + "a" * 32
URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}"
# The variables the archiver cannot start without.
REQUIRED = {"RECORDINGS_BUCKET_NAME": "recordings", "TWILIO_AUTH_TOKEN_SECRET": "twilio/auth-token"}


def body(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "deduplicationId": SID,
        "sessionId": f"{CALL}-0123456789abcdef",
        "accountSid": ACCOUNT,
        "callSid": CALL,
        "recordingSid": SID,
        "recordingUrl": URL,
        "durationSeconds": 14,
        "channels": 1,
        "source": "RecordVerb",
        "kind": "voicemail",
        "conversationSid": None,
        "flow": "frontline",
        "startedAt": "2022-05-07T01:04:05Z",
        "completedAt": "2022-05-07T01:04:30Z",
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not ...}


def message(**changes: Any) -> RecordingMessage:
    return parse_message(json.dumps(body(**changes)))


# --- the allowlist --------------------------------------------------------------------------------


def test_the_default_allows_twilio_api_over_https_only() -> None:
    # Given the default setting
    origins = MediaOrigins.parse(ArchiverSettings.model_validate(REQUIRED).recording_media_origins)

    # Then only https://api.twilio.com (port 443) is allowed
    assert origins.allows(URL + ".wav")
    assert origins.allows("https://api.twilio.com:443/x")
    for refused in (
        "http://api.twilio.com/2010-04-01/x.wav",  # plain http
        "https://api.twilio.com:8443/x",  # another port
        "https://api.twilio.com.evil.example/x",  # a suffix trick
        "https://evilapi.twilio.com/x",
        "https://user:pass@api.twilio.com/x",  # credentials in the URL
        "ftp://api.twilio.com/x",
        "not a url",
    ):
        assert not origins.allows(refused), refused


def test_a_wildcard_allows_subdomains_but_not_the_domain_or_lookalikes() -> None:
    origins = MediaOrigins.parse(["https://*.twilio.com"])

    assert origins.allows("https://api.dublin.ie1.twilio.com/x")
    assert origins.allows("https://api.twilio.com/x")
    assert not origins.allows("https://twilio.com/x")
    assert not origins.allows("https://eviltwilio.com/x")


def test_http_is_accepted_for_loopback_hosts_only() -> None:
    origins = MediaOrigins.parse(["http://127.0.0.1:8080", "http://localhost:9000"])

    assert origins.allows("http://127.0.0.1:8080/a")
    assert origins.allows("http://localhost:9000/a")
    assert not origins.allows("http://127.0.0.1:8081/a")
    assert not origins.allows("https://127.0.0.1:8080/a")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://api.twilio.com", "loopback"),
        ("http://10.0.0.5:8080", "loopback"),
        ("https://api.twilio.com/2010-04-01", "origin only"),
        ("https://api.twilio.com?x=1", "origin only"),
        ("https://u:p@api.twilio.com", "origin only"),
        ("api.twilio.com", "scheme://host"),
        ("https://api.*.com", "wildcard"),
        ("https://*.*.twilio.com", "wildcard"),
        ("https://api.twilio.com:99999", "port"),
    ],
)
def test_a_bad_origin_is_a_configuration_error_naming_it(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as raised:
        parse_origin(value)
    assert "RECORDING_MEDIA_ORIGINS" in str(raised.value)


def test_an_empty_origin_list_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        MediaOrigins.parse([" "])


def test_settings_read_the_archiver_variables() -> None:
    settings = ArchiverSettings.model_validate(
        {
            **REQUIRED,
            "RECORDING_MEDIA_ORIGINS": "https://api.twilio.com, http://127.0.0.1:5000",
            "RECORDING_FORMAT": "mp3",
            "DELETE_RECORDINGS_AFTER_ARCHIVE": "true",
        }
    )

    assert settings.recording_media_origins == {"https://api.twilio.com", "http://127.0.0.1:5000"}
    assert settings.recording_format == "mp3"
    assert settings.delete_recordings_after_archive is True
    assert ArchiverSettings.model_validate(REQUIRED).delete_recordings_after_archive is False
    with pytest.raises(ValueError, match="RECORDING_FORMAT"):
        ArchiverSettings.model_validate({**REQUIRED, "RECORDING_FORMAT": "ogg"})


def test_the_archiver_cannot_start_without_its_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from voice_webhooks.runtime.settings import load_settings

    monkeypatch.setenv("TWILIO_AUTH_TOKEN_SECRET", "twilio/auth-token")
    monkeypatch.delenv("RECORDINGS_BUCKET_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="RECORDINGS_BUCKET_NAME is required by this function"):
        load_settings(ArchiverSettings)


# --- messages -------------------------------------------------------------------------------------


def test_a_queue_message_is_read_with_the_queue_model() -> None:
    parsed = message()

    assert (parsed.account_sid, parsed.call_sid, parsed.recording_sid) == (ACCOUNT, CALL, SID)
    assert parsed.completed_at == datetime(2022, 5, 7, 1, 4, 30, tzinfo=UTC)


def test_fields_added_to_v1_later_are_ignored() -> None:
    assert message(transcriptSid="GT123").recording_sid == SID


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps(body(sessionId=...)), "sessionId"),
        (json.dumps(body(schema="twilio-voice-webhooks.recording.v2")), "schema"),
        (json.dumps(body(completedAt="yesterday")), "completedAt"),
        (json.dumps(body(accountSid="AC123")), "accountSid"),
        (json.dumps(body(recordingSid="../../etc")), "recordingSid"),
        (json.dumps(body(callSid="CA/../x")), "callSid"),
    ],
)
def test_a_message_the_archiver_cannot_act_on_is_invalid(text: str, problem: str) -> None:
    with pytest.raises(InvalidMessage, match=problem):
        parse_message(text)


def test_the_recording_url_must_name_the_recording() -> None:
    assert recording_resource_url(message()) == URL
    other = URL.replace(SID, "RE" + "b" * 32)
    for url in (other, URL + ".wav", URL + "?x=1", URL + "/Transcriptions"):
        with pytest.raises(InvalidMessage, match="recordingUrl"):
            recording_resource_url(message(recordingUrl=url))


# --- the object -----------------------------------------------------------------------------------


def test_the_key_is_account_utc_date_call_recording() -> None:
    # Given a recording completed at 23:30 in New York on May 6th (03:30 UTC on May 7th)
    new_york = timezone(timedelta(hours=-4))
    parsed = message(completedAt=datetime(2022, 5, 6, 23, 30, tzinfo=new_york).isoformat())

    # Then the key uses the UTC date, and is the same for every delivery of the message
    assert archive_key(parsed, "wav") == f"{ACCOUNT}/2022/05/07/{CALL}/{SID}.wav"
    assert archive_key(message(completedAt="2022-05-07T03:30:00Z"), "wav") == archive_key(parsed, "wav")
    assert archive_key(message(callSid=None), "mp3") == f"{ACCOUNT}/2022/05/07/no-call/{SID}.mp3"


def test_metadata_names_the_call_session_and_recording() -> None:
    parsed = message(conversationSid="CH" + "2" * 32)

    assert object_metadata(parsed, 16044) == {
        "account-sid": ACCOUNT,
        "call-sid": CALL,
        "session-id": f"{CALL}-0123456789abcdef",
        "recording-sid": SID,
        "duration-seconds": "14",
        "channels": "1",
        "source": "RecordVerb",
        "kind": "voicemail",
        "conversation-sid": "CH" + "2" * 32,
        "completed-at": "2022-05-07T01:04:30Z",
        "media-bytes": "16044",
    }
    assert "media-bytes" not in object_metadata(parsed, None)
    assert "call-sid" not in object_metadata(message(callSid=None), None)


def test_an_object_is_complete_when_its_size_is_the_announced_one() -> None:
    def stored(size: int, metadata: dict[str, str]) -> StoredObject:
        return StoredObject("k", size, "audio/x-wav", metadata)

    assert stored(100, {"media-bytes": "100"}).complete
    assert not stored(99, {"media-bytes": "100"}).complete
    assert not stored(100, {"media-bytes": "garbage"}).complete
    # Written without an announced size: S3 only shows whole uploads
    assert stored(100, {}).complete


# --- credentials ----------------------------------------------------------------------------------


def test_the_api_key_secret_shape() -> None:
    credentials = parse_api_key_secret('{"apiKeySid": "SK123", "apiKeySecret": "s3cr3t"}')

    assert credentials == BasicCredentials("SK123", "s3cr3t")
    assert credentials.header() == "Basic U0sxMjM6czNjcjN0"
    assert "s3cr3t" not in repr(credentials)
    for bad in ("s3cr3t", "[]", '{"apiKeySid": "AC1", "apiKeySecret": "x"}', '{"apiKeySid": "SK1"}'):
        with pytest.raises(ValueError, match="secret") as raised:
            parse_api_key_secret(bad)
        assert "s3cr3t" not in str(raised.value)
