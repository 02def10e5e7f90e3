"""Bounded sessions (slow): one session with 1,000 recordings and 1,000 action requests still stores
and queues its next recording, because no item of a session grows with what the session did
(docs/data-model.md, "Bounded items"). Before, every recording and action request went into the
one session item: four recordings with long URLs made the fifth fail, and after that an ordinary
completed recording was answered 503 on every retry and never queued."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.conditions import Key
from voice_webhooks.edge import routes
from voicedev.twilio_signing import random_sid

from tests.integration.callback_helpers import deliver, fixture, open_session, session_url
from tests.integration.test_item_sizes import item_size
from tests.reliability.ledger import LEDGER, SLOW_TIMEOUT

COMPLETED: dict[str, str] = fixture("recording_callbacks.json")["conversation"]["completed"]
CALL = COMPLETED["CallSid"]
ACTIONS = [
    fixture(f"action/{name}.json")["params"]
    for name in ("conversation-session-success", "voicemail-recorded")
]
LONG_URL = "https://api.twilio.com/" + "x" * (2048 - len("https://api.twilio.com/"))
RECORDINGS = ACTION_REQUESTS = 1_000


def all_items(aws: Any, session_id: str) -> list[dict[str, Any]]:
    """Every item of the session (a Query returns at most 1 MB per page)."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "KeyConditionExpression": Key("SessionId").eq(session_id),
        "ConsistentRead": True,
    }
    while True:
        page = aws.table.query(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def recording(**changes: str) -> dict[str, str]:
    return {**COMPLETED, "RecordingSid": random_sid("RE"), "RecordingUrl": LONG_URL, **changes}


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
def test_a_session_with_1000_recordings_and_1000_action_requests_still_queues_the_next_one(
    aws: Any, invoke: Any
) -> None:
    # Given a session with 1,000 recordings (each at the RecordingUrl cap, in-progress and
    # completed: 1,000 messages queued) and 1,000 action requests (repeats and different ones)
    session = open_session(invoke, CALL)
    answers = []
    for _ in range(RECORDINGS):
        params = recording()
        answers.append(
            deliver(invoke, "recording", session.recording_url, {**params, "RecordingStatus": "in-progress"})
        )
        answers.append(deliver(invoke, "recording", session.recording_url, params))
    action_url = session_url(routes.ACTION, session.session_id)
    action_answers = [
        invoke("action", _action_event(action_url, {**ACTIONS[i % 2], "CallSid": CALL, "Digits": str(i)}))[
            "statusCode"
        ]
        for i in range(ACTION_REQUESTS)
    ]
    assert answers == [204] * (2 * RECORDINGS)
    assert action_answers == [200] * ACTION_REQUESTS

    # When the next recording completes
    last = recording(RecordingUrl=COMPLETED["RecordingUrl"])
    assert deliver(invoke, "recording", session.recording_url, last) == 204

    # Then it is stored and queued, and every item of the session is still small
    item = aws.item(session.session_id, f"recording#{last['RecordingSid']}")
    assert item["Status"] == "completed"
    assert item["QueueMessageId"]
    items = all_items(aws, session.session_id)
    kinds = {key: sum(1 for i in items if i["ItemKey"].startswith(key)) for key in ("recording#", "action#")}
    assert kinds == {"recording#": RECORDINGS + 1, "action#": 2}
    largest = max(item_size(i) for i in items)
    assert largest < 8 * 1024
    queued = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_urls["RecordingsQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert int(queued) == RECORDINGS + 1
    LEDGER.add(
        "bounded",
        sessions=1,
        recordings=RECORDINGS + 1,
        action_requests=ACTION_REQUESTS,
        largest_item_bytes=largest,
        queued=int(queued),
    )


def _action_event(url: str, params: dict[str, str]) -> dict[str, Any]:
    from voicedev.twilio_signing import http_api_event

    return http_api_event("POST", url, params)
