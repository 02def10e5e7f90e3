"""Ordering and duplicates, property-based: Twilio sends a session's status and recording callbacks
as separate requests that may arrive in any order and more than once, by POST or GET, and retries
action requests. Whatever the schedule, the session must end with the same stored items, the same
session state and the same RecordingsQueue messages as when every callback arrives once, in order.

A hypothesis state machine draws a session (status events, recordings, the chain of action requests)
and then a schedule: which callback arrives next, by which method, which action request is repeated.
At the end, every callback not yet delivered arrives once, and a second session of the same call gets
everything once, in order: the two must hold the same facts (times aside: `harness.snapshot`).

One field is order-dependent by design (docs/queue-messages.md): a message's `conversationSid` is
the session's ConversationSid *if a status callback brought it before the recording completed*,
else null. The machine tracks exactly that, and expects exactly that."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from voice_webhooks.edge import routes

from tests.reliability.conftest import RELIABILITY, Moto
from tests.reliability.harness import (
    Callback,
    Snapshot,
    compare,
    deliver,
    in_message_order,
    open_session,
    snapshot,
)
from tests.reliability.ledger import LEDGER, SLOW_TIMEOUT
from tests.reliability.plans import (
    ACTION_CHAINS,
    CALL_STATUSES,
    OPTIONAL_STATUS_FIELDS,
    STATUSES,
    RecordingPlan,
    SessionPlan,
    action_chain,
    call_progress_event,
    status_event,
    status_template,
)

CONVERSATION_SID = status_template()["ConversationSid"]
DIAL_CALL_SID = status_template()["DialCallSid"]
STARTED = datetime(2026, 5, 7, 0, 58, 19, tzinfo=UTC)
# A value Twilio may add later: stored as received, ordered by SequenceNumber like the others.
LATER_STATUS = "call-transferred"


def sid(prefix: str) -> st.SearchStrategy[str]:
    return st.binary(min_size=16, max_size=16).map(lambda raw: prefix + raw.hex())


@st.composite
def session_plans(draw: st.DrawFn) -> SessionPlan:
    call_sid = draw(sid("CA"))
    dial_call_sid = draw(st.sampled_from([DIAL_CALL_SID, ""]))
    worker_initiated = draw(st.sampled_from(["false", "true"]))
    events: list[Callback] = []
    sequence = 0
    for status in draw(st.lists(st.sampled_from((*STATUSES, LATER_STATUS)), max_size=5)):
        sequence += draw(st.integers(1, 3))  # Twilio's numbers only grow; gaps are allowed
        omit = draw(st.frozensets(st.sampled_from([f for f in OPTIONAL_STATUS_FIELDS if f != "Timestamp"])))
        stamped = draw(st.booleans())
        events.append(
            status_event(
                sequence,
                status,
                conversation_sid=CONVERSATION_SID,
                dial_call_sid=dial_call_sid,
                worker_initiated=worker_initiated,
                timestamp=STARTED + timedelta(seconds=sequence) if stamped else None,
                omit=omit,
            )
        )
    # Call-progress streams beside the <Conversation> one: the session's own call (from 0) and, for
    # a hand-off, the dialled leg (its own CallSid, ParentCallSid the session's call).
    leg_sid = draw(sid("CA").filter(lambda leg: leg != call_sid))  # a leg is another call
    for stream_sid, parent in ((call_sid, None), (leg_sid, call_sid)):
        statuses = draw(st.lists(st.sampled_from(CALL_STATUSES), max_size=4, unique=True))
        for number, call_status in enumerate(sorted(statuses, key=CALL_STATUSES.index)):
            stamped = draw(st.booleans())
            events.append(
                call_progress_event(
                    number,
                    call_status,
                    call_sid=stream_sid,
                    parent_call_sid=parent,
                    timestamp=STARTED + timedelta(seconds=number) if stamped else None,
                )
            )
    recordings = draw(
        st.lists(
            st.builds(
                RecordingPlan,
                sid=sid("RE"),
                source=st.sampled_from(["DialVerb", "RecordVerb"]),
                final=st.sampled_from(["completed", "completed", "absent", "failed"]),
                in_progress=st.booleans(),
                duration=st.integers(1, 600),
            ),
            max_size=2,
            unique_by=lambda recording: recording.sid,
        )
    )
    voicemail = next((recording for recording in recordings if recording.source == "RecordVerb"), None)
    chain = draw(st.sampled_from(sorted(ACTION_CHAINS)))
    return SessionPlan(
        call_sid=call_sid,
        conversation_sid=CONVERSATION_SID,
        status_events=tuple(events),
        recordings=tuple(recordings),
        actions=action_chain(chain, call_sid, voicemail),
    )


class Deliveries(RuleBasedStateMachine):
    """One session, one schedule. `moto` is set by the test that runs the machine."""

    moto: Moto

    def __init__(self) -> None:
        super().__init__()
        self.plan: SessionPlan | None = None
        self.healthy = True

    @initialize(plan=session_plans())
    def open_the_session(self, plan: SessionPlan) -> None:
        self.plan = plan
        self.session = open_session(self.moto.env, plan.call_sid)
        self.sent: Counter[str] = Counter()
        self.first_order: list[str] = []
        self.actions_answered = 0
        self.action_answers: list[str] = []
        self.conversation_known = False
        self.completed_after_conversation: dict[str, bool] = {}
        self.gets = 0

    # -- rules -------------------------------------------------------------------------------------

    @precondition(lambda self: self.plan is not None and bool(self.plan.asynchronous))
    @rule(data=st.data())
    def a_callback_arrives(self, data: st.DataObject) -> None:
        assert self.plan is not None
        callbacks = self.plan.asynchronous
        index = data.draw(st.integers(0, len(callbacks) - 1), label="callback")
        method = data.draw(st.sampled_from(["POST", "GET"]), label="method")
        self._callback(callbacks[index], method)

    @precondition(lambda self: self.plan is not None and self.actions_answered < len(self.plan.actions))
    @rule()
    def the_next_action_request_arrives(self) -> None:
        assert self.plan is not None
        self._action(self.actions_answered)
        self.actions_answered += 1

    @precondition(lambda self: self.plan is not None and self.actions_answered > 0)
    @rule(data=st.data())
    def an_action_request_arrives_again(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.actions_answered - 1), label="action")
        self._action(index)

    # -- deliveries --------------------------------------------------------------------------------

    def _callback(self, callback: Callback, method: str) -> None:
        self.healthy = False
        answer = deliver(self.moto.env, self.session, callback, method)
        assert answer.status == 204, f"{callback.label} by {method}: {answer.status} {answer.body}"
        self._count(callback, method)
        if callback.route == routes.STATUS and callback.value("ConversationSid"):
            self.conversation_known = True
        if callback.route == routes.RECORDING and callback.value("RecordingStatus") == "completed":
            # Queued by the first delivery that finds it completed: this one, the first time.
            self.completed_after_conversation.setdefault(
                str(callback.value("RecordingSid")), self.conversation_known
            )
        self.healthy = True

    def _action(self, index: int) -> None:
        assert self.plan is not None
        self.healthy = False
        callback = self.plan.actions[index]
        answer = deliver(self.moto.env, self.session, callback)
        answer.twiml()  # an action request is always answered with TwiML
        if index == len(self.action_answers):
            self.action_answers.append(answer.body)
        elif index == self.actions_answered - 1:
            # A repeated request for the step just answered gets the same answer (docs/action-routing.md).
            assert answer.body == self.action_answers[index], callback.label
        self._count(callback, "POST")
        self.healthy = True

    def _count(self, callback: Callback, method: str) -> None:
        if not self.sent[callback.label]:
            self.first_order.append(callback.label)
        self.sent[callback.label] += 1
        self.gets += method == "GET"

    # -- the end -----------------------------------------------------------------------------------

    def teardown(self) -> None:
        if self.plan is None or not self.healthy:
            return  # a rule failed: hypothesis reports that failure
        plan = self.plan
        for callback in plan.asynchronous:
            if not self.sent[callback.label]:
                self._callback(callback, "POST")
        while self.actions_answered < len(plan.actions):
            self.the_next_action_request_arrives()

        scheduled = snapshot(self.moto.table, self.moto.mailbox, self.session.session_id)
        reference = self._in_order_once(plan)
        expected = Snapshot(
            items=reference.items, messages=self._expected_messages(reference), raw_messages=[]
        )
        problems = compare(expected, scheduled)
        LEDGER.add(
            "ordering",
            examples=1,
            deliveries=sum(self.sent.values()),
            duplicate_deliveries=sum(self.sent.values()) - len(self.sent),
            get_deliveries=self.gets,
            reordered_examples=self.first_order != [callback.label for callback in plan.in_order()],
            items_compared=len(reference.items),
            messages_compared=len(reference.messages),
            differences=len(problems),
        )
        assert not problems, "\n".join(problems)

    def _in_order_once(self, plan: SessionPlan) -> Snapshot:
        session = open_session(self.moto.env, plan.call_sid)
        for callback in plan.in_order():
            answer = deliver(self.moto.env, session, callback)
            assert answer.ok, f"in order: {callback.label}: {answer.status} {answer.body}"
        return snapshot(self.moto.table, self.moto.mailbox, session.session_id)

    def _expected_messages(self, reference: Snapshot) -> list[dict[str, Any]]:
        expected = []
        for message in reference.messages:
            body = dict(message["body"])
            if not self.completed_after_conversation.get(body["recordingSid"], True):
                body["conversationSid"] = None
            expected.append({**message, "body": body})
        return in_message_order(expected)


def run_machine(moto: Moto, examples: int) -> None:
    machine = type("DeliveriesUnderMoto", (Deliveries,), {"moto": moto})
    before = LEDGER.count("ordering", "examples")
    run_state_machine_as_test(
        machine, settings=settings(RELIABILITY, max_examples=examples, stateful_step_count=30)
    )
    # Hypothesis ran (and compared) as many sessions as asked, not fewer.
    assert LEDGER.count("ordering", "examples") - before >= examples


def test_any_order_and_any_repeat_of_a_sessions_callbacks_stores_what_in_order_delivery_stores(
    moto: Moto,
) -> None:
    # Given sessions drawn by hypothesis, each delivered on a drawn schedule (reordered, repeated,
    # POST or GET), When each is compared with the same call delivered once in order,
    # Then items, session state and queue messages are the same (checked in teardown)
    run_machine(moto, examples=20)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT)
def test_any_order_and_any_repeat_stores_what_in_order_delivery_stores_many_sessions(moto: Moto) -> None:
    run_machine(moto, examples=150)
