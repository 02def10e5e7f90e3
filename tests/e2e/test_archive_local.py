"""The recording archiver in the real `LOCAL_ARCHIVER=1 make local`: a call played by the emulator
(against the local API, with RecordingUrls on the local mode's fake media host) ends with its
completed recording as a WAV object in the local bucket, and that object's key on the session item.
Then `make simulate`, as a newcomer runs it, does the same without being told where the media is."""

from __future__ import annotations

import io
import subprocess
import time
import wave
from collections.abc import Callable
from typing import Any

import pytest
from voicedev.emulator.engine import EmulatorConfig, run_call
from voicedev.emulator.scenarios import get
from voicedev.twilio_signing import DEV_ACCOUNT_SID

from tests.e2e.conftest import ROOT, LocalModeProcess, command_environment, free_port, make_executable

BUCKET = "recordingsbucket"  # the local mode names buckets after their logical id, lower case
ARCHIVE_SECONDS = 20


def session_item(local: LocalModeProcess, session_id: str) -> dict[str, Any]:
    """The session item, with the session's `recording#` items beside it as `Recordings`."""
    items = local.items_of_session(session_id)
    [item] = [i for i in items if i["ItemKey"] == "session"]
    recordings = {str(i["RecordingSid"]): i for i in items if str(i["ItemKey"]).startswith("recording#")}
    return {**item, "Recordings": recordings}


def wait_for_archives(local: LocalModeProcess, session_id: str) -> dict[str, dict[str, Any]]:
    """The session's completed recordings, once each has its ArchiveKey (the poller is async)."""
    deadline = time.monotonic() + ARCHIVE_SECONDS
    while True:
        recordings = session_item(local, session_id).get("Recordings", {})
        completed = {sid: e for sid, e in recordings.items() if e["Status"] == "completed"}
        if completed and all("ArchiveKey" in entry for entry in completed.values()):
            return completed
        if time.monotonic() > deadline:
            raise AssertionError(f"not archived within {ARCHIVE_SECONDS} s: {recordings}\n{local.output()}")
        time.sleep(0.2)


@pytest.fixture
def archiving_local(local_mode_factory: Callable[..., LocalModeProcess]) -> tuple[LocalModeProcess, int]:
    media_port = free_port()
    local = local_mode_factory(LOCAL_ARCHIVER="1", LOCAL_MEDIA_PORT=str(media_port))
    return local, media_port


def test_a_completed_recording_ends_up_in_the_local_bucket_with_its_key_on_the_session(
    archiving_local: tuple[LocalModeProcess, int],
) -> None:
    # Given the local mode with its archiver, which says where its fake media host listens
    local, media_port = archiving_local
    media_api_base = f"http://127.0.0.1:{media_port}/2010-04-01"
    local.wait_for_line(rf"media host\s+{media_api_base}\b")
    local.wait_for_line(r"archiver\s+RecordingArchiverFunction: polls RecordingsQueue, batches of 5")

    # When a caller leaves a voicemail (a completed <Record> recording), played by the emulator
    config = EmulatorConfig(base_url=local.api_url, media_api_base=media_api_base)
    result = run_call(config, get("no-answer-voicemail"), seed=5)
    assert result.ok, result.problems
    (session_id,) = result.session_ids

    # Then the recording is archived: its key, bucket, size and time are on the session item
    [(sid, entry)] = wait_for_archives(local, session_id).items()
    assert entry["Url"] == f"{media_api_base}/Accounts/{DEV_ACCOUNT_SID}/Recordings/{sid}"
    assert entry["ArchiveBucket"] == BUCKET
    key = entry["ArchiveKey"]
    assert key.startswith(f"{DEV_ACCOUNT_SID}/") and key.endswith(f"/{result.call_sid}/{sid}.wav")
    assert entry["ArchivedAt"] >= entry["QueuedAt"]

    # And the object in the local bucket is a playable WAV with the recording's metadata
    stored = local.client("s3").get_object(Bucket=BUCKET, Key=key)
    body = stored["Body"].read()
    assert len(body) == int(entry["ArchiveBytes"])
    with wave.open(io.BytesIO(body)) as audio:
        assert (audio.getframerate(), audio.getsampwidth()) == (8000, 2)
        assert audio.getnframes() > 0
    assert stored["ContentType"] == "audio/x-wav"
    assert stored["Metadata"]["session-id"] == session_id
    assert stored["Metadata"]["call-sid"] == result.call_sid
    assert stored["Metadata"]["kind"] == "voicemail"

    # And the message left the queue (deleted after success), with one line in the terminal
    attributes = local.client("sqs").get_queue_attributes(
        QueueUrl=f"{local.aws_endpoint}/123456789012/RecordingsQueue",
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    local.wait_for_line(r"archiver: 1 message, 1 done")


def test_make_simulate_against_the_archiving_local_mode_gets_its_recordings_archived(
    archiving_local: tuple[LocalModeProcess, int],
) -> None:
    # Given the archiving local mode, and `make simulate` run with the same ports in its environment
    local, media_port = archiving_local
    env = command_environment(
        {
            "LOCAL_API_PORT": str(local.api_port),
            "LOCAL_AWS_PORT": str(local.aws_port),
            "LOCAL_MEDIA_PORT": str(media_port),
        }
    )

    # When a Frontline call with a worker is simulated (its <Conversation> recording completes)
    command = [make_executable(), "--no-print-directory", "simulate", "SCENARIO=worker-answers"]
    simulated = subprocess.run(  # noqa: S603 - make from PATH, our own target
        [*command, "ARGS=--seed 3 --no-timeline"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the call passes, and its recording ends up archived
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    call_sid = next(
        word for word in simulated.stdout.split() if word.startswith("CA00000000") and len(word) == 34
    )
    [session_id] = {item["SessionId"] for item in local.items_of_call(call_sid)}
    [entry] = wait_for_archives(local, session_id).values()
    head = local.client("s3").head_object(Bucket=BUCKET, Key=entry["ArchiveKey"])
    assert head["Metadata"]["kind"] == "conversation"
    assert head["Metadata"]["channels"] == "2"
