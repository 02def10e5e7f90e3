"""Relay faults: every DynamoDB call a conversation makes, and `post_to_connection`, failing in turn.

A conversation (setup, a prompt, a key press, an interrupt, a hand-off prompt) is played once
cleanly; the DynamoDB calls each frame made are its fault points, found by a tap, not listed by
hand. Then it is played again once per fault point with that call failing on every attempt (the
SDK's own retry is spent). API Gateway never redelivers a WebSocket frame, so the contract is not
"a retry completes the work" but: no invocation raises (each answers 200, or 500 for the
IntegrationError alarm), the frames after the fault are handled as in the clean run (the session
goes on), and what is stored is a subset of the clean run's turns, each at most once, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from voicedev.relay_events import dtmf_frame, interrupt_frame, prompt_frame, setup_frame

from tests.integration import relay_helpers
from tests.integration.relay_helpers import Relay

relay = relay_helpers.relay  # the fixture

CONVERSATION: list[tuple[str, dict[str, Any]]] = [
    ("m-setup", setup_frame()),
    ("m-hours", prompt_frame("What are your hours?")),
    ("m-dtmf", dtmf_frame("1")),
    ("m-interrupt", interrupt_frame("We are open")),
    ("m-agent", prompt_frame("agent please")),
]
VOLATILE = {"EventTime", "ExpiresAt", "ConnectedAt", "SetupAt"}


@dataclass
class Tap:
    """Counts DynamoDB calls; fails the `fail_at`-th one (on every attempt) when set."""

    fail_at: int | None = None
    calls: list[str] = field(default_factory=list)
    paused: bool = False
    """The test's own reads (what was stored) are neither counted nor failed."""

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = BaseClient._make_api_call
        tap = self

        def tapped(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if client.meta.service_model.service_name == "dynamodb" and not tap.paused:
                tap.calls.append(operation)
                if tap.fail_at is not None and len(tap.calls) == tap.fail_at:
                    raise ClientError(
                        {"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation
                    )
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", tapped)


def play(relay: Relay) -> list[int]:
    statuses = [relay.connect()["statusCode"]]
    for message_id, frame in CONVERSATION:
        statuses.append(relay.send(frame, message_id=message_id)["statusCode"])
    return statuses


def turns(relay: Relay, tap: Tap) -> list[dict[str, Any]]:
    tap.paused = True
    try:
        return [{k: v for k, v in turn.items() if k not in VOLATILE} for turn in relay.turns()]
    finally:
        tap.paused = False


@pytest.fixture
def clean(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Relay, Tap, list[dict[str, Any]]]:
    # Played once per fault point (about a hundred times): the agent's pace would only add waiting.
    relay.aws.env(FLOW_CONFIG=str(relay_helpers.unpaced_flows(tmp_path)))
    tap = Tap()
    tap.install(monkeypatch)
    statuses = play(relay)
    assert statuses == [200] * (len(CONVERSATION) + 1)
    return relay, tap, turns(relay, tap)


def reset(relay: Relay, tap: Tap) -> None:
    tap.paused = True
    client = relay.client
    for item in client.scan(TableName=relay.table_name)["Items"]:
        if item["ItemKey"]["S"] != "session":
            client.delete_item(
                TableName=relay.table_name, Key={"SessionId": item["SessionId"], "ItemKey": item["ItemKey"]}
            )
    relay.recorder.posted.clear()
    relay.recorder.closed.clear()
    tap.paused = False


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_dynamodb_fault_leaves_a_consistent_conversation(
    clean: tuple[Relay, Tap, list[dict[str, Any]]],
) -> None:
    relay, tap, expected = clean
    points = len(tap.calls)
    assert points >= 20  # every frame reads and writes: the tap sees them all

    for fault in range(1, points + 1):
        # Given a fresh table and the fault-th DynamoDB call failing on every attempt
        reset(relay, tap)
        tap.calls.clear()
        tap.fail_at = fault

        # When the whole conversation is played
        statuses = play(relay)

        # Then no invocation raised: each answered, 200 or (storage failed) 500 / 503 at $connect
        assert all(status in (200, 500, 503) for status in statuses), (fault, statuses)
        stored = turns(relay, tap)
        keys = [turn["ItemKey"] for turn in stored]
        # And every stored turn is one of the clean run's kinds, at most once, in order
        assert keys == sorted(set(keys)), (fault, keys)
        assert len(stored) <= len(expected) + 1, (fault, stored)
        clean_kinds = [(turn["Role"], turn["Kind"]) for turn in expected]
        kinds = [(turn["Role"], turn["Kind"]) for turn in stored]
        assert all(kind in clean_kinds for kind in kinds), (fault, kinds)
        if statuses[0] == 200 and statuses[-1] == 200:
            # And the session went on: the last frame (the hand-off) was answered
            assert relay.recorder.frames("end"), (fault, tap.calls[fault - 1])
    tap.fail_at = None


@pytest.mark.parametrize("gone_after", [0, 1, 5, 12])
def test_a_connection_gone_at_any_token_ends_each_reply_cleanly(relay: Relay, gone_after: int) -> None:
    # Given the caller's socket closes after `gone_after` frames
    relay.recorder.gone_after = gone_after

    # When the conversation goes on regardless (Twilio's frames were already in flight)
    statuses = play(relay)

    # Then every invocation answered 200 and nothing beyond the gone point was sent
    assert statuses == [200] * (len(CONVERSATION) + 1)
    assert len(relay.recorder.posted) == gone_after
    gone = [turn for turn in relay.turns() if turn.get("ConnectionGone")]
    assert gone, "the reply cut short says so"


def test_a_failing_management_api_is_counted_and_the_session_goes_on(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voice_webhooks.relay import connections

    # Given @connections fails for the first reply only
    original = relay.recorder.post
    failures = iter([True])

    def flaky(connection_id: str, data: str) -> None:
        if next(failures, False):
            raise connections.PostFailed("InternalServerError")
        original(connection_id, data)

    monkeypatch.setattr(relay.recorder, "post", flaky)

    # When the conversation is played
    statuses = play(relay)

    # Then the failed reply is stored as not sent, and the later frames are answered
    assert statuses == [200] * (len(CONVERSATION) + 1)
    replies = [turn for turn in relay.turns() if turn["Kind"] == "reply"]
    assert replies[0]["Tokens"] == 0 and all(turn["Tokens"] > 0 for turn in replies[1:])
    assert relay.recorder.frames("end")
