"""The emulator plays Twilio's part: which requests a call produces, with which parameters, in
which order, and what it reports, against a loopback server answering canned TwiML."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import parsedate_to_datetime

from voicedev.emulator.engine import run_call
from voicedev.emulator.scenarios import Expect, get

from tests.unit.test_emulator_signing import ACCOUNT, TOKEN, FakeTwilioApp, Received, config_for, fake_app

__all__ = ["fake_app"]  # the fixture, imported for pytest

HANGUP = "<Response><Hangup/></Response>"


def conversation_twiml(**attributes: str) -> str:
    attrs = {
        "serviceInstanceSid": "IS00000000000000000000000000000000",
        "statusCallback": "/voice/status?session=s1#rc=3&amp;rp=all",
        "statusCallbackEvent": "call-initiated call-ringing call-answered call-completed",
        "record": "record-from-answer-dual",
        "recordingStatusCallback": "/voice/recording?session=s1",
        "recordingStatusCallbackEvent": "in-progress completed absent",
        **attributes,
    }
    rendered = " ".join(f'{name}="{value}"' for name, value in attrs.items() if value != "")
    connect = '<Connect action="/voice/action?session=s1">'
    return f"<Response>{connect}<Conversation {rendered}/></Connect></Response>"


VOICEMAIL = (
    "<Response><Say>Please leave a message.</Say>"
    '<Record action="/voice/action?session=s1" maxLength="120"'
    ' recordingStatusCallback="/voice/recording?session=s1"'
    ' recordingStatusCallbackEvent="in-progress completed absent"/>'
    '<Say>No message.</Say><Redirect method="GET">/after-silence</Redirect></Response>'
)


def serve_call(app: FakeTwilioApp, connect: str, action: object = HANGUP) -> None:
    app.routes.update(
        {"/voice/connect": connect, "/voice/action": action, "/voice/status": 204, "/voice/recording": 204}  # type: ignore[dict-item]
    )


def conversation_events(app: FakeTwilioApp) -> list[Received]:
    """The <Conversation statusCallback> requests (call-progress events share /voice/status)."""
    return [r for r in app.on("/voice/status") if r.params.get("CallbackSource") != "call-progress-events"]


def call_events(app: FakeTwilioApp) -> list[Received]:
    return [r for r in app.on("/voice/status") if r.params.get("CallbackSource") == "call-progress-events"]


def statuses(app: FakeTwilioApp) -> list[tuple[int, str]]:
    return [(int(r.params["SequenceNumber"]), r.params["Status"]) for r in conversation_events(app)]


# --- <Conversation> ------------------------------------------------------------------------------------


def test_status_callbacks_carry_exactly_the_reference_fields_numbered_from_one_in_event_order(
    fake_app: FakeTwilioApp,
) -> None:
    # Given a <Conversation> subscribed to all four events
    serve_call(fake_app, conversation_twiml())

    # When a worker answers
    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    # Then four status callbacks, 1..4 in the order the events happened
    assert result.ok, result.problems
    assert statuses(fake_app) == [
        (1, "call-initiated"),
        (2, "call-ringing"),
        (3, "call-answered"),
        (4, "call-completed"),
    ]
    first = conversation_events(fake_app)[0].params
    assert set(first) == {
        "AccountSid",
        "ConversationSid",
        "DialCallSid",
        "WorkerInitiated",
        "Status",
        "SequenceNumber",
        "Timestamp",
        "CallbackSource",
    }
    assert first["AccountSid"] == ACCOUNT
    assert first["CallbackSource"] == "voice-conversation-service"
    assert first["WorkerInitiated"] == "false"
    assert first["ConversationSid"].startswith("CH") and len(first["ConversationSid"]) == 34
    # And Timestamps are RFC 2822 in UTC, moving forward with the sequence (+1 s, +2 s, +8 s, +68 s)
    moments = [parsedate_to_datetime(r.params["Timestamp"]) for r in conversation_events(fake_app)]
    assert all(moment.utcoffset() == timedelta(0) for moment in moments)
    offsets = [(moment - result.started_at).total_seconds() for moment in moments]
    assert offsets == [1, 2, 8, 68]
    # And one DialCallSid and ConversationSid for the whole leg
    assert len({r.params["DialCallSid"] for r in conversation_events(fake_app)}) == 1
    assert len({r.params["ConversationSid"] for r in conversation_events(fake_app)}) == 1


def test_only_the_subscribed_events_are_sent_and_numbered(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml(statusCallbackEvent="call-answered call-completed"))

    run_call(config_for(fake_app), get("worker-answers"), seed=1)

    assert statuses(fake_app) == [(1, "call-answered"), (2, "call-completed")]


def test_without_status_callback_event_twilio_sends_call_completed_only(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml(statusCallbackEvent=""))

    run_call(config_for(fake_app), get("busy"), seed=1)

    assert statuses(fake_app) == [(1, "call-completed")]


def test_no_call_leg_means_no_status_callbacks_and_an_action_without_dial_fields(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml(routingAssignmentTimeout="7"), action=HANGUP)

    result = run_call(config_for(fake_app), get("no-worker-assigned"), seed=1)

    assert statuses(fake_app) == []
    (action,) = fake_app.on("/voice/action")
    assert action.params["Result"] == "no-other-participants"
    assert "DialCallStatus" not in action.params and "RecordingSid" not in action.params
    # Twilio waited routingAssignmentTimeout before giving up
    assert result.exchanges[-1].t == 7


def test_the_action_request_reports_the_leg_and_the_recording_it_made(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())

    run_call(config_for(fake_app), get("worker-answers"), seed=1)

    (action,) = fake_app.on("/voice/action")
    params = action.params
    assert params["Result"] == "session-success"
    assert params["WorkerInitiated"] == "false"
    assert params["DialCallStatus"] == "completed"
    assert params["DialCallDuration"] == "60"
    assert params["DialCallSid"] == conversation_events(fake_app)[0].params["DialCallSid"]
    assert params["CallStatus"] == "in-progress"  # the worker hung up; the caller is still there
    recordings = fake_app.on("/voice/recording")
    assert params["RecordingSid"] == recordings[0].params["RecordingSid"]
    assert params["RecordingUrl"] == (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{params['RecordingSid']}"
    )
    assert params["RecordingDuration"] == "60"


def test_recording_callbacks_follow_the_subscribed_events_with_twilios_fields(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml())

    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    in_progress, completed = fake_app.on("/voice/recording")
    assert in_progress.params["RecordingStatus"] == "in-progress"
    assert "RecordingDuration" not in in_progress.params
    assert completed.params["RecordingStatus"] == "completed"
    assert completed.params["RecordingDuration"] == "60"
    for request in (in_progress, completed):
        assert request.params["CallSid"] == result.call_sid
        assert request.params["RecordingChannels"] == "2"
        assert request.params["RecordingSource"] == "DialVerb"
        assert request.params["RecordingSid"].startswith("RE")
        parsedate_to_datetime(request.params["RecordingStartTime"])
    # The completed callback comes after the action request (processing takes a moment)
    assert [r.path for r in fake_app.received][-2:] == ["/voice/action", "/voice/recording"]


def test_recording_callbacks_are_only_sent_for_listed_events_and_only_with_a_url(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml(recordingStatusCallbackEvent=""))
    run_call(config_for(fake_app), get("worker-answers"), seed=1)
    assert [r.params["RecordingStatus"] for r in fake_app.on("/voice/recording")] == ["completed"]

    fake_app.received.clear()
    serve_call(fake_app, conversation_twiml(recordingStatusCallback=""))
    run_call(config_for(fake_app), get("worker-answers"), seed=1)
    assert fake_app.on("/voice/recording") == []
    assert "RecordingSid" in fake_app.on("/voice/action")[0].params


def test_an_absent_recording_is_reported_absent_with_no_duration(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())

    result = run_call(config_for(fake_app), get("recording-absent"), seed=1)

    assert [r.params["RecordingStatus"] for r in fake_app.on("/voice/recording")] == ["in-progress", "absent"]
    assert fake_app.on("/voice/recording")[1].params["RecordingDuration"] == "0"
    assert [recording.final_status for recording in result.recordings] == ["absent"]


def test_no_answer_waits_for_inbound_timeout(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml(inboundTimeout="20"), action=HANGUP)

    result = run_call(config_for(fake_app), get("no-answer-voicemail"), seed=1)

    assert statuses(fake_app) == [(1, "call-initiated"), (2, "call-ringing"), (3, "call-completed")]
    (action,) = fake_app.on("/voice/action")
    assert (action.params["Result"], action.params["DialCallStatus"]) == (
        "dialed-call-incomplete",
        "no-answer",
    )
    assert [e.t for e in result.exchanges if e.kind == "action"] == [21]
    # And the example configuration would have taken a voicemail: a difference, not a failure
    assert result.ok
    assert result.differences and "voicemail" in result.differences[0]


def test_strict_mode_fails_on_a_difference_from_the_example_configuration(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml(), action=HANGUP)

    result = run_call(config_for(fake_app, strict=True), get("busy"), seed=1)

    assert not result.ok
    assert any("expected voicemail" in problem for problem in result.problems)


# --- voicemail ------------------------------------------------------------------------------------------


def test_a_voicemail_record_leads_to_its_recording_callbacks_and_its_action(fake_app: FakeTwilioApp) -> None:
    # Given an action answer with a voicemail, whose own action answer says thanks and hangs up
    def action(request: Received) -> tuple[int, str, str]:
        if "RecordingSid" in request.params and "Result" not in request.params:
            return 200, "text/xml", "<Response><Say>Thanks</Say><Hangup/></Response>"
        return 200, "text/xml", VOICEMAIL

    serve_call(fake_app, conversation_twiml(), action=action)

    # When nobody answers and the caller leaves a message
    result = run_call(config_for(fake_app, strict=True), get("no-answer-voicemail"), seed=1)

    # Then the recording's callbacks and the Record's action request, which carries no Result
    assert result.ok, result.problems
    voicemail = fake_app.on("/voice/recording")
    assert [r.params["RecordingStatus"] for r in voicemail] == ["in-progress", "completed"]
    assert {r.params["RecordingSource"] for r in voicemail} == {"RecordVerb"}
    assert {r.params["RecordingChannels"] for r in voicemail} == {"1"}
    first_action, record_action = fake_app.on("/voice/action")
    assert first_action.params["Result"] == "dialed-call-incomplete"
    params = record_action.params
    assert "Result" not in params
    assert params["RecordingSid"] == voicemail[0].params["RecordingSid"]
    assert params["RecordingDuration"] == "12"
    assert params["RecordingUrl"].endswith(params["RecordingSid"])
    assert params["Digits"] == "#"
    assert voicemail[-1].params["RecordingDuration"] == "12"
    # And the path after the recording (the Redirect) was never taken
    assert fake_app.on("/after-silence") == []


def test_a_silent_caller_makes_no_action_request_and_twilio_runs_the_next_verb(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml(), action=VOICEMAIL)
    fake_app.routes["/after-silence"] = HANGUP

    result = run_call(config_for(fake_app), get("voicemail-silence"), seed=1)

    assert result.ok, result.problems
    assert len(fake_app.on("/voice/action")) == 1
    assert [r.params["RecordingStatus"] for r in fake_app.on("/voice/recording")] == ["in-progress", "absent"]
    (after,) = fake_app.on("/after-silence")
    assert after.method == "GET"
    assert "caller hears: 'No message.'" in result.log


def test_a_voicemail_that_answers_with_another_record_is_a_loop(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml(), action=VOICEMAIL)

    result = run_call(config_for(fake_app), get("no-answer-voicemail"), seed=1)

    assert not result.ok
    assert any("must end the call" in problem or "loop" in problem for problem in result.problems)
    assert len(fake_app.on("/voice/action")) <= 10


def test_an_answer_that_redirects_forever_is_stopped_and_reported(fake_app: FakeTwilioApp) -> None:
    serve_call(
        fake_app, conversation_twiml(), action="<Response><Redirect>/voice/action</Redirect></Response>"
    )

    result = run_call(config_for(fake_app, max_documents=5), get("worker-answers"), seed=1)

    assert any("more than 5 TwiML documents" in problem for problem in result.problems)
    assert len(fake_app.on("/voice/action")) == 4  # connect + 4 answers = 5 documents


# --- ConversationRelay and <Dial> ------------------------------------------------------------------------

RELAY = (
    '<Response><Connect action="/voice/action?session=r1"><ConversationRelay url="wss://agent.example/ws"/>'
    "</Connect></Response>"
)


def test_relay_action_requests_carry_the_session_fields(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, RELAY, action="<Response><Hangup/></Response>")

    run_call(config_for(fake_app), get("ai-failed"), seed=1)

    (action,) = fake_app.on("/voice/action")
    params = action.params
    assert params["SessionId"].startswith("VX") and len(params["SessionId"]) == 34
    assert (params["SessionStatus"], params["SessionDuration"]) == ("failed", "10")
    assert (params["ErrorCode"], params["ErrorMessage"]) == (
        "39001",
        "Network connection to WebSocket server failed.",
    )
    assert params["To"] == "+15550100002"
    assert "HandoffData" not in params


def test_a_handoff_sends_handoff_data_and_follows_the_dial_action(fake_app: FakeTwilioApp) -> None:
    def action(request: Received) -> tuple[int, str, str]:
        if "DialCallStatus" in request.params:
            return 200, "text/xml", HANGUP
        return (
            200,
            "text/xml",
            (
                '<Response><Start><Transcription conversationId="c1"/></Start><Say>Hold on</Say>'
                '<Dial action="/voice/action?session=r1"><Number>+15550100100</Number></Dial></Response>'
            ),
        )

    serve_call(fake_app, RELAY, action=action)

    result = run_call(config_for(fake_app, strict=True), get("ai-handoff"), seed=1)

    assert result.ok, result.problems
    handoff, dialled = fake_app.on("/voice/action")
    assert handoff.params["SessionStatus"] == "ended"
    assert json.loads(handoff.params["HandoffData"])["target"] == "support"
    assert dialled.params["DialCallStatus"] == "completed"
    assert dialled.params["DialCallDuration"] == "45"
    assert any("<Start><Transcription> conversationId=c1" in str(item) for item in result.log)


def test_handoff_data_can_be_overridden(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, RELAY)

    run_call(config_for(fake_app, handoff_data={"target": "sales"}), get("ai-handoff"), seed=1)

    assert json.loads(fake_app.on("/voice/action")[0].params["HandoffData"]) == {"target": "sales"}


def test_when_the_caller_hung_up_twilio_does_not_run_the_answer(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, RELAY, action="<Response><Redirect>/never</Redirect></Response>")

    result = run_call(config_for(fake_app), get("ai-completed"), seed=1)

    (action,) = fake_app.on("/voice/action")
    assert action.params["CallStatus"] == "completed"
    assert fake_app.on("/never") == []
    # And the product's promise for this case (an empty answer) is checked whatever the config
    assert any("expected an empty <Response/>" in problem for problem in result.problems)


def test_a_noun_other_than_the_scenarios_is_a_failure(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, RELAY)

    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    assert any("expects <Conversation>" in problem for problem in result.problems)
    assert fake_app.on("/voice/action") == []


def test_refused_requests_are_failures(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())
    fake_app.routes["/voice/status"] = 403

    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    # Then each refused callback is one failure, after Twilio's retries (rc=3, rp=all retries a 4xx too)
    assert not result.ok
    assert sum("status #" in problem and "403" in problem for problem in result.problems) == 4
    assert len(conversation_events(fake_app)) == 16


def test_a_connect_answer_that_is_not_twiml_ends_the_call(fake_app: FakeTwilioApp) -> None:
    fake_app.routes["/voice/connect"] = lambda request: (200, "application/json", "{}")

    result = run_call(config_for(fake_app), get("worker-answers"), seed=1)

    assert any("not TwiML" in problem for problem in result.problems)
    assert any("not XML" in problem for problem in result.problems)
    assert len(fake_app.received) == 1


# --- reordering and duplicates ------------------------------------------------------------------------


def delivery(app: FakeTwilioApp) -> list[tuple[str, str]]:
    return [
        (r.path, r.params.get("SequenceNumber") or r.params.get("RecordingStatus") or "")
        for r in app.received
        if r.path in ("/voice/status", "/voice/recording")
    ]


def test_shuffled_deliveries_are_reproducible_from_the_seed(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())
    orders = []
    for _ in range(2):
        fake_app.received.clear()
        run_call(config_for(fake_app, shuffle=True), get("worker-answers"), seed=1234)
        orders.append(delivery(fake_app))

    assert orders[0] == orders[1]
    # The same callbacks, once each, whatever the order
    assert sorted(orders[0]) == sorted(
        [("/voice/status", str(n)) for n in range(1, 5)]
        + [("/voice/recording", "in-progress"), ("/voice/recording", "completed")]
    )


def test_shuffling_changes_the_order_for_some_seed_and_never_loses_a_callback(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml())
    in_order = None
    shuffled = []
    for seed in range(6):
        fake_app.received.clear()
        run_call(config_for(fake_app, shuffle=seed > 0), get("worker-answers"), seed=seed)
        if seed == 0:
            in_order = delivery(fake_app)
        else:
            shuffled.append(delivery(fake_app))
    assert in_order is not None
    assert any(order != in_order for order in shuffled)
    assert all(sorted(order) == sorted(in_order) for order in shuffled)


def test_duplicates_are_redelivered_later_with_the_same_token_and_body(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())

    result = run_call(config_for(fake_app, duplicates=1.0, shuffle=True), get("worker-answers"), seed=9)

    assert result.ok, result.problems
    events = [r for r in fake_app.received if r.path in ("/voice/status", "/voice/recording")]
    assert len(events) == 12  # 4 status + 2 recording callbacks, each twice
    by_token: dict[str, list[Received]] = {}
    for request in events:
        by_token.setdefault(request.headers["i-twilio-idempotency-token"], []).append(request)
    assert len(by_token) == 6
    for copies in by_token.values():
        first, second = copies
        assert (first.body, first.signature) == (second.body, second.signature)
    assert sum(exchange.duplicate for exchange in result.exchanges) == 6
    # Each copy comes after its original
    for token, copies in by_token.items():
        positions = [
            index for index, r in enumerate(events) if r.headers["i-twilio-idempotency-token"] == token
        ]
        assert copies[0] is events[positions[0]]


def test_twiml_requests_are_never_reordered_or_duplicated(fake_app: FakeTwilioApp) -> None:
    serve_call(fake_app, conversation_twiml())

    run_call(config_for(fake_app, duplicates=1.0, shuffle=True), get("worker-answers"), seed=3)

    assert len(fake_app.on("/voice/connect")) == 1
    assert len(fake_app.on("/voice/action")) == 1
    # Every status callback due before the action request is delivered before it
    paths = [r.path for r in fake_app.received]
    action_at = paths.index("/voice/action")
    assert paths[:action_at].count("/voice/status") == 8


def test_scenarios_cover_every_case_the_product_handles() -> None:
    from voicedev.emulator.scenarios import SCENARIOS

    names = [scenario.name for scenario in SCENARIOS]
    assert len(names) == len(set(names))
    results = {scenario.conversation.result for scenario in SCENARIOS if scenario.conversation}
    assert results >= {
        "session-success",
        "dialed-call-incomplete",
        "no-other-participants",
        "no-existing-conversation",
        "invalid-conversation",
    }
    relay = {scenario.relay.session_status for scenario in SCENARIOS if scenario.relay}
    assert relay == {"completed", "ended", "failed"}
    assert get("ai-completed").expect is Expect.EMPTY
    assert TOKEN  # the fake server's token is not the development one


# --- call-progress events (the number's status URL, and dialled legs) ------------------------------------

CALL_PROGRESS_FIELDS = {"CallSid", "CallStatus", "CallbackSource", "SequenceNumber", "Timestamp"}


def test_an_inbound_call_sends_twilios_default_call_progress_event_to_the_number_status_url(
    fake_app: FakeTwilioApp,
) -> None:
    # Given the number's "Call status changes" URL is this API's /voice/status (typed by hand)
    serve_call(fake_app, conversation_twiml())

    # When an inbound call is answered and ends
    result = run_call(config_for(fake_app, call_status=True), get("worker-answers"), seed=1)

    # Then Twilio's default for a number, `completed` only, numbered from 0, with no session
    assert result.ok, result.problems
    (event,) = call_events(fake_app)
    assert event.target == "/voice/status"
    assert set(event.params) >= CALL_PROGRESS_FIELDS
    assert (event.params["SequenceNumber"], event.params["CallStatus"]) == ("0", "completed")
    assert event.params["CallSid"] == result.call_sid
    assert int(event.params["CallDuration"]) > 60
    assert "ParentCallSid" not in event.params
    # And it goes out when the call ends, after the session's action request
    assert fake_app.received.index(event) > fake_app.received.index(fake_app.on("/voice/action")[-1])
    assert [item.stream for item in result.call_events] == [f"call:{result.call_sid}"]


def test_an_outbound_call_reports_initiated_and_ringing_before_its_twiml_is_fetched(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml())

    result = run_call(config_for(fake_app, call_status=True), get("worker-invalid-conversation"), seed=1)

    sent = [(r.params["SequenceNumber"], r.params["CallStatus"]) for r in call_events(fake_app)]
    assert sent == [("0", "initiated"), ("1", "ringing"), ("2", "in-progress"), ("3", "completed")]
    # initiated and ringing go out before the connect request (no session exists yet)
    connect = fake_app.received.index(fake_app.on("/voice/connect")[0])
    assert [r.params["CallStatus"] for r in fake_app.received[:connect]][:2] == ["initiated", "ringing"]
    assert result.ok, result.problems


def test_a_dialled_leg_reports_its_own_stream_to_the_nouns_status_callback(fake_app: FakeTwilioApp) -> None:
    def action(request: Received) -> tuple[int, str, str]:
        if "DialCallStatus" in request.params:
            return 200, "text/xml", HANGUP
        noun = (
            '<Number statusCallback="/voice/status?session=r1#rc=3&amp;rp=all" statusCallbackMethod="POST"'
            ' statusCallbackEvent="initiated ringing answered completed">+15550100100</Number>'
        )
        return 200, "text/xml", f'<Response><Dial action="/voice/action?session=r1">{noun}</Dial></Response>'

    serve_call(fake_app, RELAY, action=action)

    result = run_call(config_for(fake_app, call_status=False), get("ai-handoff"), seed=1)

    assert result.ok, result.problems
    legs = call_events(fake_app)
    assert [(r.params["SequenceNumber"], r.params["CallStatus"]) for r in legs] == [
        ("0", "initiated"),
        ("1", "ringing"),
        ("2", "in-progress"),
        ("3", "completed"),
    ]
    assert {r.target for r in legs} == {"/voice/status?session=r1"}
    dialled = fake_app.on("/voice/action")[-1]
    assert {r.params["CallSid"] for r in legs} == {dialled.params["DialCallSid"]}
    assert {r.params["ParentCallSid"] for r in legs} == {result.call_sid}
    assert legs[-1].params["CallDuration"] == dialled.params["DialCallDuration"]


def test_call_progress_events_are_shuffled_and_duplicated_like_the_other_callbacks(
    fake_app: FakeTwilioApp,
) -> None:
    serve_call(fake_app, conversation_twiml())

    config = config_for(fake_app, call_status=True, duplicates=1.0, shuffle=True)
    run_call(config, get("worker-invalid-conversation"), seed=3)

    tokens = [r.headers.get("i-twilio-idempotency-token") for r in call_events(fake_app)]
    assert len(tokens) == 8 and len(set(tokens)) == 4
