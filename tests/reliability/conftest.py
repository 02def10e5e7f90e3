"""Fixtures of the reliability suite, and the run summary (tests/reliability/ledger.py).

Everything here runs in `make test`; the heavier runs are marked `slow` (`make test-fast` skips
them, CI runs them)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import AwsResources
from tests.reliability.harness import AwsTap, LambdaEnvironment, Mailbox
from tests.reliability.ledger import LEDGER

# No example database (nothing written into the tree; a failure prints its reproduction blob) and
# no deadline (a delivery is a whole handler invocation under moto, and the machine may be busy).
RELIABILITY = settings(
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Outcomes and durations of this directory's tests, split by the `slow` marker."""
    slow = "slow" in report.keywords
    if report.when == "call" or report.outcome != "passed":
        LEDGER.test_finished(slow=slow, outcome=report.outcome, seconds=report.duration)
    else:
        LEDGER.seconds["slow" if slow else "fast"] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A run of tests that count nothing (the report's own) leaves the last summary alone.
    if LEDGER.ran and LEDGER.sections:
        LEDGER.write()


class Moto:
    """The template's resources in moto, with the views the reliability tests need."""

    def __init__(self, aws: AwsResources, tap: AwsTap) -> None:
        self.aws = aws
        self.tap = tap
        self.table: Any = aws.table
        self.mailbox = Mailbox(aws.sqs, aws.queue_urls["RecordingsQueue"])
        self.env = LambdaEnvironment()
        self.other_env = LambdaEnvironment()
        """A second warm instance of every function, for deliveries that overlap another one."""

    def table_items(self) -> list[dict[str, Any]]:
        return list(self.table.scan(ConsistentRead=True)["Items"])


@pytest.fixture
def moto(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> Moto:
    return Moto(aws, AwsTap().install(monkeypatch))
