"""The reconciler's rules that need no AWS: backoff, Retry-After, the rate gate, and the template's
schedule, index, grants and alarms."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from voice_webhooks.reconcile.reconciler import Policy, ReconcileMetric
from voice_webhooks.reconcile.twilio_api import RateGate, RunStopped, retry_after_seconds
from voicedev.template_resources import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = Policy(backoff_base=timedelta(minutes=5), backoff_cap=timedelta(hours=2))
    delays = [policy.backoff(attempts).total_seconds() / 60 for attempts in range(8)]
    assert delays == [5, 10, 20, 40, 80, 120, 120, 120]


def test_the_default_limit_outlasts_a_four_hour_call() -> None:
    # Twilio's default call time limit is 4 hours: the reconciler must not give up on a live call
    policy = Policy()
    waited = policy.grace + sum((policy.backoff(n) for n in range(policy.max_attempts - 1)), timedelta())
    assert waited > timedelta(hours=4)
    assert waited < timedelta(days=1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 1.0), (None, 30.0), ("soon", 30.0), ("-3", 30.0), ("nan", 30.0), ("86400", 900.0)],
)
def test_retry_after_is_read_as_seconds_within_bounds(header: str | None, seconds: float) -> None:
    assert retry_after_seconds(header) == seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_gate_waits_out_a_429_then_lets_requests_through() -> None:
    clock = FakeClock()
    gate = RateGate(max_requests=10, deadline=200.0, clock=clock, sleep=clock.sleep)
    gate.acquire()
    gate.close_for(7)
    gate.acquire()
    assert clock.slept == [7.0] and gate.requests == 2 and gate.throttled == 1


def test_the_gate_stops_the_run_when_the_pause_outlasts_it() -> None:
    clock = FakeClock()
    gate = RateGate(max_requests=10, deadline=150.0, clock=clock, sleep=clock.sleep)
    gate.close_for(60)
    with pytest.raises(RunStopped, match="beyond the end of the run"):
        gate.acquire()
    assert clock.slept == []


def test_the_gate_spends_a_budget_of_requests() -> None:
    clock = FakeClock()
    gate = RateGate(max_requests=2, deadline=150.0, clock=clock, sleep=clock.sleep)
    gate.acquire()
    gate.acquire()
    with pytest.raises(RunStopped, match="budget"):
        gate.acquire()


def test_no_request_starts_after_the_deadline() -> None:
    clock = FakeClock()
    gate = RateGate(max_requests=5, deadline=99.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(RunStopped, match="deadline"):
        gate.acquire()


# --- template ------------------------------------------------------------------------------------


def test_the_due_index_is_sparse_on_the_shard_and_sorted_by_due_time() -> None:
    props = RESOURCES["EventsTable"]["Properties"]
    [index] = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "ByReconcileDue"]
    assert index["KeySchema"] == [
        {"AttributeName": "ReconcileShard", "KeyType": "HASH"},
        {"AttributeName": "ReconcileAt", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": [
            "SessionCallSid",
            "AccountSid",
            "FlowKind",
            "CreatedAt",
            "CallStatus",
            "LatestStatus",
            "ReconcileAttempts",
        ],
    }


def test_the_reconciler_runs_on_a_configurable_schedule_and_stops_before_the_next_run() -> None:
    function = RESOURCES["ReconcilerFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert TEMPLATE["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    # 5 minutes between runs; a run lasts at most its timeout
    assert function["Timeout"] < 300


def test_the_alarms_read_the_metrics_the_reconciler_emits() -> None:
    def metric_names(alarm: str) -> set[str]:
        return {
            query["MetricStat"]["Metric"]["MetricName"]
            for query in RESOURCES[alarm]["Properties"]["Metrics"]
            if "MetricStat" in query
        }

    assert metric_names("ReconcileRecoveredAlarm") == {
        ReconcileMetric.SESSIONS_RECONCILED,
        ReconcileMetric.RECORDINGS_RECOVERED,
    }
    assert metric_names("ReconcileApiFailuresAlarm") == {
        ReconcileMetric.API_FAILURES,
        ReconcileMetric.GAVE_UP,
    }
    threshold = RESOURCES["ReconcileRecoveredAlarm"]["Properties"]["Threshold"]
    assert threshold == {"Ref": "ReconcileRecoveredAlarmThreshold"}
    assert TEMPLATE["Parameters"]["ReconcileRecoveredAlarmThreshold"]["Default"] == 1


# --- cost ----------------------------------------------------------------------------------------


def test_the_cost_doc_has_the_reconciler_for_a_healthy_day_and_a_day_with_an_outage() -> None:
    from voicedev import cost

    # Given the reconciler figures docs/cost.md was generated from
    text = cost.DOC.read_text(encoding="utf-8")
    figures = cost.reconciler_from_doc(text)

    # Then its section is what the script renders from them with today's prices
    assert cost.reconciler_section(figures) in text, "docs/cost.md is stale: run `make cost`"
    # And a healthy day settles nothing from the API but checks every call's recordings once (one
    # request each, plus one per long call deferred), while an outage hour's calls cost two
    # Twilio requests each instead of one
    healthy = cost.reconciler_day(figures, 0.0)
    outage = cost.reconciler_day(figures, 1 / 24)
    assert healthy["sessions_reconciled"] == 0
    assert healthy["twilio_requests"] == pytest.approx(1000 + 1000 * 0.02)
    assert outage["sessions_reconciled"] == pytest.approx(1000 / 24)
    assert outage["twilio_requests"] - healthy["twilio_requests"] == pytest.approx(1000 / 24)
    assert figures.twilio_requests_per_session == 2


def test_a_next_page_on_another_origin_is_refused_without_a_request() -> None:
    from typing import Any

    from voice_webhooks.archiver.download import BasicCredentials, MediaOrigins
    from voice_webhooks.reconcile.twilio_api import ApiError, TwilioRestClient

    account, call = "AC" + "0" * 32, "CA" + "1" * 32
    requested: list[str] = []

    class Scripted(TwilioRestClient):
        def _request(self, url: str, credential: BasicCredentials) -> tuple[int, Any, bytes]:
            requested.append(url)
            page = {"recordings": [], "next_page_uri": "https://evil.example/2010-04-01/steal.json"}
            return 200, {}, json.dumps(page).encode()

    gate = RateGate(max_requests=10, deadline=float("inf"))
    client = Scripted("https://api.twilio.com", MediaOrigins.parse(["https://api.twilio.com"]), gate)
    with pytest.raises(ApiError, match="another origin"):
        client.list_recordings(account, call, [BasicCredentials(account, "token")])
    assert len(requested) == 1 and requested[0].startswith("https://api.twilio.com/")


def test_sids_are_checked_before_they_become_a_path() -> None:
    from voice_webhooks.archiver.download import BasicCredentials, MediaOrigins
    from voice_webhooks.reconcile.twilio_api import ApiError, TwilioRestClient

    gate = RateGate(max_requests=10, deadline=float("inf"))
    client = TwilioRestClient("https://api.twilio.com", MediaOrigins.parse(["https://api.twilio.com"]), gate)
    with pytest.raises(ApiError, match="not a valid"):
        client.fetch_call("AC" + "0" * 32, "CA../../Accounts", [BasicCredentials("x", "y")])
    assert gate.requests == 0
