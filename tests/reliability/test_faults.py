"""Faults: DynamoDB and SQS failing at every call every route makes, and deliveries racing each other.

A whole voicemail call (plans.full_session: connect, status events with a late one and a repeat,
two recordings, the action requests) is played once cleanly; the DynamoDB and SQS calls each
delivery made are its fault points, found by the tap, not listed by hand, so a new write is covered
the day it is added. Then the call is played again, once per fault point and fault kind, with that
one call failing:

- the first attempt only (the SDK's retry must absorb it: Twilio sees nothing), or every attempt
  (the call raises: an event route answers 5xx and Twilio's retry must finish the work; a TwiML route
  still answers the same TwiML);
- as throttling, a 5xx, an unreachable endpoint, or a lost answer to a request that was applied.

Afterwards the session must hold exactly what the clean call stored, and the queue exactly its
messages. The exceptions are the documented trade-offs, each expected exactly (`Expectation`):
a TwiML route answers instead of failing, so a write it could not make is given up; a recording
whose send succeeded but whose "queued" mark failed stays marked as being queued; a send whose
answer was lost may have gone out twice (identical bodies: consumers dedupe on recordingSid).

Races: the same call, with a second delivery (a Twilio duplicate, or the neighbouring callback) run
in a second Lambda instance just before each call of a delivery: conditional checks, claims and
first-delivery-wins must leave the same state, with every delivery answered 2xx once Twilio retried."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from voice_webhooks.calls.action_requests import classify
from voice_webhooks.edge import routes
from voicedev.twilio_signing import http_api_event

from tests.reliability.conftest import Moto
from tests.reliability.harness import (
    BASE_URL,
    PRESENT,
    TWILIO_RETRIES,
    TWIML_ROUTES,
    Answer,
    AwsCall,
    Callback,
    Fault,
    FaultKind,
    LambdaEnvironment,
    Snapshot,
    compare,
    connect_params,
    deliver,
    in_message_order,
    session_from_twiml,
    snapshot,
)
from tests.reliability.ledger import LEDGER, SLOW_TIMEOUT
from tests.reliability.plans import full_session

CALL_SID = "CA" + "f" * 32
# QueueAttempts counts the claims made to queue a recording: a claim that failed is an attempt.
IGNORED = frozenset({"QueueAttempts"})
# What the connect route's session write holds that no later callback writes again (the callbacks
# restore SessionCallSid, AccountSid and CreatedAt, and the action request From, To, Direction and
# Flow: it carries the same call identity). The session is then one a callback started.
CONNECT_ONLY = ("FlowKind",)


@dataclass
class StepRun:
    number: int
    label: str
    route: str
    callback: Callback | None
    calls: tuple[AwsCall, ...]
    answers: list[Answer]
    injected: int = 0

    @property
    def first(self) -> Answer:
        return self.answers[0]

    @property
    def final(self) -> Answer:
        return self.answers[-1]


@dataclass
class Played:
    session_id: str
    steps: list[StepRun] = field(default_factory=list)
    racer_answers: list[Answer] = field(default_factory=list)


@dataclass(frozen=True)
class Race:
    step: int
    call: int
    racer: Callback


def play(
    moto: Moto,
    plan: Sequence[Callback],
    *,
    fault: tuple[int, Fault] | None = None,
    race: Race | None = None,
) -> Played:
    """Connect, then every callback of `plan` in order, each retried as Twilio retries a failure.
    `fault`: (step, fault) fails one call of that step's first delivery. `race`: runs `racer` in the
    other Lambda instance just before call `race.call` of step `race.step`."""
    tap = moto.tap
    with tap.watching(fault=fault[1] if fault and fault[0] == 0 else None) as calls:
        answer = moto.env.send(
            routes.CONNECT, http_api_event("POST", f"{BASE_URL}{routes.CONNECT}", connect_params(CALL_SID))
        )
    session = session_from_twiml(answer, CALL_SID)
    played = Played(session.session_id)
    played.steps.append(
        StepRun(0, "connect", routes.CONNECT, None, tuple(calls), [answer], len(tap.injected))
    )

    for number, callback in enumerate(plan, start=1):
        before = {}
        if race is not None and race.step == number:
            racer = race.racer
            before[race.call] = lambda racer=racer: played.racer_answers.append(
                deliver(moto.other_env, session, racer)
            )
        with tap.watching(fault=fault[1] if fault and fault[0] == number else None, before=before) as calls:
            answers = [deliver(moto.env, session, callback)]
        run = StepRun(
            number, callback.label, callback.route, callback, tuple(calls), answers, len(tap.injected)
        )
        _retry_as_twilio(moto.env, session, callback, answers)
        if race is not None and race.step == number:
            _retry_as_twilio(moto.env, session, race.racer, played.racer_answers)
        played.steps.append(run)
    return played


def _retry_as_twilio(env: LambdaEnvironment, session: Any, callback: Callback, answers: list[Answer]) -> None:
    while answers and not answers[-1].ok and len(answers) <= TWILIO_RETRIES:
        answers.append(deliver(env, session, callback))


def same_twiml(answer: Answer, session_id: str, reference: Answer, reference_session: str) -> bool:
    answer.twiml()
    return answer.body.replace(session_id, "<session>") == reference.body.replace(
        reference_session, "<session>"
    )


# ---------------------------------------------------------------------------------------------------
# What a fault may change, exactly


@dataclass
class Expectation:
    snapshot: Snapshot
    resent_messages: int = 0
    """Extra copies of a message whose send was applied but whose answer was lost."""
    busy_steps: frozenset[int] = frozenset()
    """Later steps answered 503 (another delivery's claim still leased) after Twilio's retries."""
    given_up: str | None = None
    """What a documented trade-off gave up, for the report."""


def mark_call(step: StepRun) -> AwsCall | None:
    """The update that records a recording as queued: the first UpdateItem after the SendMessage."""
    sent = next((call.index for call in step.calls if call.operation == "SendMessage"), None)
    if sent is None:
        return None
    return next((call for call in step.calls if call.index > sent and call.operation == "UpdateItem"), None)


def expectation(
    reference: Played, clean: Snapshot, step: StepRun, call: AwsCall, fault: Fault
) -> Expectation:
    expected = Snapshot(
        items=copy.deepcopy(clean.items), messages=copy.deepcopy(clean.messages), raw_messages=[]
    )
    given_up_write = fault.every_attempt and fault.kind is not FaultKind.RESPONSE_LOST and call.is_write
    if call.operation == "SendMessage" and fault.kind is FaultKind.RESPONSE_LOST:
        # Each lost answer was a message sent: the SDK (or Twilio's retry) sends it again.
        attempts = 2 if fault.every_attempt else 1
        return Expectation(expected, resent_messages=attempts, given_up=None)
    if given_up_write and step.route == routes.CONNECT:
        # The caller got the TwiML; the session item is written by the later callbacks, and the
        # <Connect action> request (before the recordings complete in full_session) restores the
        # call's identity and flow, so the queue messages still name the flow.
        session = expected.items["session"]
        for name in CONNECT_ONLY:
            session.pop(name, None)
        session["Origin"] = "callback"
        return Expectation(expected, given_up="connect: " + ", ".join(CONNECT_ONLY))
    if given_up_write and step.route == routes.ACTION:
        assert step.callback is not None
        attribute = f"action#{classify(dict(step.callback.params)).value}"
        # Given up unless Twilio's other delivery of the same request (a repeat) wrote it.
        repeated = any(
            other.callback == step.callback for other in reference.steps if other.number != step.number
        )
        if not repeated:
            expected.items.pop(attribute, None)
            return Expectation(expected, given_up=f"action: {attribute}")
        return Expectation(expected)
    if given_up_write and mark_call(step) == call:
        # The message is out, so the route answered 204 (a retry would send it again); the recording
        # stays claimed, unmarked, until its lease ends (docs/queue-messages.md).
        assert step.callback is not None
        sid = str(step.callback.value("RecordingSid"))
        entry = expected.items[f"recording#{sid}"]
        entry.pop("QueuedAt")
        entry.pop("QueueMessageId")
        entry["QueueLeaseUntil"] = PRESENT
        busy = frozenset(
            later.number
            for later in reference.steps
            if later.number > step.number
            and later.route == routes.RECORDING
            and later.callback is not None
            and later.callback.value("RecordingSid") == sid
        )
        return Expectation(expected, busy_steps=busy, given_up="recording: the queued mark")
    return Expectation(expected)


def check_case(
    moto: Moto, reference: Played, clean: Snapshot, step: StepRun, call: AwsCall, fault: Fault
) -> list[str]:
    """Play the call with `fault` at `call` of `step`; return what went wrong (nothing, normally)."""
    played = play(moto, full_session(CALL_SID), fault=(step.number, fault))
    faulted = played.steps[step.number]
    expect = expectation(reference, clean, step, call, fault)
    problems: list[str] = []
    if not faulted.injected:
        problems.append("the fault was not injected (the call sequence changed?)")

    # The answer Twilio got for the faulted delivery
    if step.route in TWIML_ROUTES:
        if not same_twiml(faulted.first, played.session_id, step.first, reference.session_id):
            problems.append(f"TwiML answer differs: {faulted.first.status} {faulted.first.body[:120]}")
    elif not fault.every_attempt and not faulted.first.ok:
        problems.append(f"the SDK's retry should have absorbed it; Twilio got {faulted.first.status}")
    elif fault.every_attempt:
        # The mark comes after the send: the message is out, so the route answers 204 whatever failed.
        wanted = 204 if mark_call(step) == call else 503
        if faulted.first.status != wanted:
            problems.append(f"expected {wanted} (503: Twilio retries), got {faulted.first.status}")
    for run in played.steps:
        if run.number in expect.busy_steps:
            if run.final.status != 503:
                problems.append(f"step {run.number} ({run.label}): expected 503 busy, got {run.final.status}")
        elif not run.final.ok:
            problems.append(
                f"step {run.number} ({run.label}) still {run.final.status} after Twilio's retries"
            )

    # What is stored and queued
    actual = snapshot(moto.table, moto.mailbox, played.session_id, ignore=IGNORED)
    resent = 0
    if expect.resent_messages:
        bodies = [message.raw_body for message in actual.raw_messages]
        distinct = in_message_order(dict(m) for m in {repr(m): m for m in actual.messages}.values())
        resent = len(actual.messages) - len(distinct)
        if resent != expect.resent_messages:
            problems.append(f"expected {expect.resent_messages} resent message(s), found {resent}")
        if len(set(bodies)) != len(clean.messages):
            problems.append("a resent message differs from the first send (consumers could not dedupe it)")
        actual = Snapshot(items=actual.items, messages=distinct, raw_messages=actual.raw_messages)
    found = compare(expect.snapshot, actual)
    problems.extend(found)
    LEDGER.add(
        "faults",
        cases=1,
        attempts_failed=faulted.injected,
        **{f"kind_{fault.kind}": 1, f"route_{step.route.rsplit('/', 1)[1]}": 1},
        sdk_absorbed=not fault.every_attempt,
        twilio_retried=len(faulted.answers) > 1,
        exact=not expect.given_up and not expect.resent_messages and not found,
        given_up_by_design=bool(expect.given_up),
        resent_identical_messages=resent,
        lost=sum(1 for line in found if "missing" in line),
        doubled=sum(1 for line in found if "unexpected" in line),
        failed=bool(problems),
    )
    return [f"{step.label} / call {call.index} {call} / {fault}: {problem}" for problem in problems]


# ---------------------------------------------------------------------------------------------------
# The tests


@pytest.fixture
def clean_call(moto: Moto) -> tuple[Played, Snapshot]:
    """The call played without a fault: the reference, and the fault points (its calls)."""
    played = play(moto, full_session(CALL_SID))
    for run in played.steps:
        assert [answer.status for answer in run.answers] == [run.first.status], run.label
        assert run.first.ok, f"{run.label}: {run.first.status} {run.first.body}"
    clean = snapshot(moto.table, moto.mailbox, played.session_id, ignore=IGNORED)
    assert len(clean.messages) == 2  # the conversation recording and the voicemail, once each
    return played, clean


def fault_points(reference: Played) -> Iterator[tuple[StepRun, AwsCall]]:
    for step in reference.steps:
        for call in step.calls:
            yield step, call


COMBINATIONS = [(kind, every) for every in (False, True) for kind in FaultKind]


def run_fault_cases(moto: Moto, clean_call: tuple[Played, Snapshot], *, exhaustive: bool) -> None:
    reference, clean = clean_call
    points = list(fault_points(reference))
    # Every route makes calls, and every write the call makes is a fault point.
    assert {step.route for step, _ in points} == {
        routes.CONNECT,
        routes.ACTION,
        routes.STATUS,
        routes.RECORDING,
    }
    assert sum(1 for _, call in points if call.is_write) >= 20
    # The fallback route touches neither: there is nothing of it to fail.
    fallback = {**connect_params(CALL_SID), "ErrorCode": "11200", "ErrorUrl": f"{BASE_URL}{routes.CONNECT}"}
    with moto.tap.watching() as calls:
        moto.env.send(
            routes.FALLBACK, http_api_event("POST", f"{BASE_URL}{routes.FALLBACK}", fallback)
        ).twiml()
    assert calls == []
    rotation = itertools.cycle(COMBINATIONS)
    problems: list[str] = []
    for step, call in points:
        combinations = COMBINATIONS if exhaustive else [next(rotation)]
        for kind, every in combinations:
            problems += check_case(moto, reference, clean, step, call, Fault(call.index, kind, every))
    LEDGER.at_least(
        "faults", fault_points=len(points), write_points=sum(1 for _, call in points if call.is_write)
    )
    assert not problems, "\n".join(problems)


def test_a_fault_at_any_aws_call_of_a_call_leaves_the_same_state_once_twilio_retried(
    moto: Moto, clean_call: tuple[Played, Snapshot]
) -> None:
    # Given the clean call's fault points, When each fails once (kinds and attempts rotating),
    # Then every delivery ends 2xx, TwiML routes answer the same TwiML, and the state is the clean one
    run_fault_cases(moto, clean_call, exhaustive=False)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
def test_every_fault_kind_at_every_aws_call_of_a_call_leaves_the_same_state(
    moto: Moto, clean_call: tuple[Played, Snapshot]
) -> None:
    run_fault_cases(moto, clean_call, exhaustive=True)


def racers(plan: Sequence[Callback], step: StepRun, exhaustive: bool) -> list[Callback]:
    """Who may arrive while `step` runs: Twilio's duplicate of it, and (exhaustive) its neighbour of
    the same kind: the next status event, the other state of the same recording."""
    assert step.callback is not None
    found = [step.callback]
    if exhaustive and step.route != routes.ACTION:
        for other in plan:
            if other.route != step.route or other == step.callback:
                continue
            same_recording = other.value("RecordingSid") == step.callback.value("RecordingSid")
            if (step.route == routes.RECORDING and same_recording) or (
                step.route == routes.STATUS
                and int(str(other.value("SequenceNumber")))
                == int(str(step.callback.value("SequenceNumber"))) + 1
            ):
                found.append(other)
    return list(dict.fromkeys(found))


def run_race_cases(moto: Moto, clean_call: tuple[Played, Snapshot], *, exhaustive: bool) -> None:
    reference, clean = clean_call
    plan = full_session(CALL_SID)
    problems: list[str] = []
    cases = 0
    for step in reference.steps[1:]:  # a repeated connect webhook opens a new session by design
        for racer in racers(plan, step, exhaustive):
            for call in range(1, len(step.calls) + 1):
                cases += 1
                played = play(moto, plan, race=Race(step.number, call, racer))
                where = f"{racer.label} racing {step.label} before its call {call} ({step.calls[call - 1]})"
                if not played.racer_answers:
                    problems.append(f"{where}: the race did not happen")
                late = [run for run in played.steps if not run.final.ok]
                if late or (played.racer_answers and not played.racer_answers[-1].ok):
                    problems.append(f"{where}: not 2xx after Twilio's retries")
                found = compare(clean, snapshot(moto.table, moto.mailbox, played.session_id, ignore=IGNORED))
                problems += [f"{where}: {line}" for line in found]
                LEDGER.add(
                    "races",
                    cases=1,
                    retried=sum(len(run.answers) - 1 for run in played.steps)
                    + max(0, len(played.racer_answers) - 1),
                    lost=sum(1 for line in found if "missing" in line),
                    doubled=sum(1 for line in found if "unexpected" in line),
                    failed=bool(found),
                )
    assert cases >= 25
    assert not problems, "\n".join(problems)


# The racing delivery runs inside the other's invocation, and Powertools' metrics are one object per
# process: the inner invocation publishes both, the outer one finds nothing left to publish.
RACE_WARNING = "ignore:No application metrics to publish:UserWarning"


@pytest.mark.filterwarnings(RACE_WARNING)
def test_a_duplicate_racing_any_delivery_at_any_aws_call_leaves_the_same_state(
    moto: Moto, clean_call: tuple[Played, Snapshot]
) -> None:
    # Given Twilio's duplicate of a delivery arriving in a second Lambda instance just before each
    # of that delivery's AWS calls, Then both end 2xx (after retries) and the state is the clean one
    run_race_cases(moto, clean_call, exhaustive=False)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
@pytest.mark.filterwarnings(RACE_WARNING)
def test_any_two_related_deliveries_racing_at_any_aws_call_leave_the_same_state(
    moto: Moto, clean_call: tuple[Played, Snapshot]
) -> None:
    run_race_cases(moto, clean_call, exhaustive=True)


@pytest.mark.parametrize("every_attempt", [False, True], ids=["sdk-retries", "twilio-retries"])
def test_a_claim_applied_whose_answer_was_lost_still_queues_the_recording_once(
    moto: Moto, clean_call: tuple[Played, Snapshot], every_attempt: bool
) -> None:
    # Regression (found by this suite): the claim that reserves a completed recording for sending
    # was applied but its answer lost. The SDK's retry then failed the claim's condition on its own
    # lease and answered 503, and so did each of Twilio's retries until the lease ended: the
    # recording was never queued. Now the claim id tells our own claim apart, and a failed claim
    # gives its lease back.
    reference, clean = clean_call
    step = next(run for run in reference.steps if any(call.operation == "SendMessage" for call in run.calls))
    send = next(call for call in step.calls if call.operation == "SendMessage")
    # The claim: the last update before the send (the session item is read between them)
    claim = [call for call in step.calls if call.index < send.index and call.operation == "UpdateItem"][-1]

    problems = check_case(
        moto, reference, clean, step, claim, Fault(claim.index, FaultKind.RESPONSE_LOST, every_attempt)
    )

    assert problems == []
