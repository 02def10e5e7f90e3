"""`--drop`: callbacks lost for good, while what Twilio knows of the call (its final state and
recordings) is still recorded for the fake REST API the reconciler asks."""

from __future__ import annotations

from pathlib import Path

import pytest
from voicedev.emulator.engine import run_call
from voicedev.emulator.scenarios import get
from voicedev.fake_twilio_api import FakeTwilioApi, read_played_calls, record_played_calls

from tests.unit.test_emulator_engine import conversation_twiml, serve_call
from tests.unit.test_emulator_signing import ACCOUNT, TOKEN, FakeTwilioApp, config_for, fake_app

__all__ = ["fake_app"]  # the fixture, imported for pytest


def callbacks(app: FakeTwilioApp) -> int:
    return len(app.on("/voice/status")) + len(app.on("/voice/recording"))


def test_dropping_everything_sends_no_callback_but_keeps_the_call_and_its_recording(
    fake_app: FakeTwilioApp, tmp_path: Path
) -> None:
    # Given a recorded <Conversation> call whose every callback Twilio gives up on
    serve_call(fake_app, conversation_twiml())

    result = run_call(config_for(fake_app, drop=1.0), get("worker-answers"), seed=3)

    # Then no status or recording callback reached us, each one is listed as dropped
    assert callbacks(fake_app) == 0
    assert len(result.dropped) == 6  # 4 status events, recording in-progress and completed
    # And the TwiML requests still went out (Twilio never drops those: the caller waits)
    assert len(fake_app.on("/voice/action")) == 1
    # And what Twilio knows is recorded: the call completed, its recording too
    played = tmp_path / "played.jsonl"
    record_played_calls(played, [result])
    [call] = read_played_calls(played)
    assert (call["account_sid"], call["call_sid"], call["status"]) == (ACCOUNT, result.call_sid, "completed")
    assert [(r["sid"], r["status"]) for r in call["recordings"]] == [
        (made.recording_sid, "completed") for made in result.recordings
    ]


def test_a_share_of_drops_is_reproducible_from_the_seed_and_independent_of_the_other_options(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml())
    first = run_call(
        config_for(fake_app, drop=0.5, shuffle=True, duplicates=0.5), get("worker-answers"), seed=9
    )
    again = run_call(
        config_for(fake_app, drop=0.5, shuffle=True, duplicates=0.5), get("worker-answers"), seed=9
    )
    assert [label.split()[0] for label in first.dropped] == [label.split()[0] for label in again.dropped]
    assert 0 < len(first.dropped) < 6


def test_the_fake_api_serves_the_played_calls_with_twilios_auth(
    fake_app: FakeTwilioApp, tmp_path: Path
) -> None:
    import base64
    import json
    import urllib.error
    import urllib.request

    serve_call(fake_app, conversation_twiml())
    result = run_call(config_for(fake_app, drop=1.0), get("worker-answers"), seed=4)
    played = tmp_path / "played.jsonl"
    record_played_calls(played, [result])

    with FakeTwilioApi(auth_token=TOKEN) as api:
        assert api.load_played(read_played_calls(played)) == 1
        url = f"{api.origin}/2010-04-01/Accounts/{ACCOUNT}/Calls/{result.call_sid}.json"
        request = urllib.request.Request(url)  # noqa: S310 - loopback
        credentials = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            call = json.loads(answer.read())
        assert call["status"] == "completed" and "from" not in call and "to" not in call
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)  # noqa: S310 - loopback, no credentials
        assert refused.value.code == 401
