"""docs/cost.md: its tables are what devtools/voicedev/cost.py computes from the figures it shows and
the prices written once in PRICES; and the arithmetic of a few lines, by hand."""

from __future__ import annotations

import dataclasses

import pytest
from voicedev import cost
from voicedev.cost import DOC, FunctionFigures, Measured, RelayMeasured


def measured(**changes: object) -> Measured:
    figures = Measured(
        how="by hand",
        calls=10,
        functions={
            "ConnectFunction": FunctionFigures(1, 10.2, 12.0, 512, 400),
            "StatusFunction": FunctionFigures(4, 5.0, 6.0, 1024, 300),
        },
        api_requests_per_call=5,
        dynamodb_write_units_per_call=10,
        dynamodb_read_units_per_call=1,
        dynamodb_bytes_per_call=2000,
        sqs_requests_per_call=3,
        s3_put_requests_per_call=1,
        s3_get_requests_per_call=2,
        recording_bytes_per_call=1_000_000,
        log_bytes_per_call=5000,
        custom_metric_names=["A", "B"],
    )
    return dataclasses.replace(figures, **changes)  # type: ignore[arg-type]


def line(lines: list[cost.Line], service: str, starts: str) -> float:
    [found] = [item for item in lines if item.service == service and item.what.startswith(starts)]
    return found.usd_per_1000_calls


def test_the_doc_tables_are_the_ones_its_figures_and_the_current_prices_give() -> None:
    # Given the figures docs/cost.md was generated from
    text = DOC.read_text(encoding="utf-8")
    figures = cost.measured_from_doc(text)

    # Then its generated section is exactly what the script renders from them today
    assert cost.generated_section(figures) in text, "docs/cost.md is stale: run `make cost`"
    # And the figures are a real measurement of the typical call, with every function it invokes
    assert figures.calls >= 10
    assert set(figures.functions) == {
        "ConnectFunction",
        "StatusFunction",
        "RecordingFunction",
        "ActionFunction",
        "RecordingArchiverFunction",
    }
    # Four <Conversation> events and the call's own call-progress `completed` (number status URL)
    assert figures.functions["StatusFunction"].invocations_per_call == 5
    assert figures.recording_bytes_per_call == 300 * 2 * 16_000


def test_per_call_lines_multiply_figures_by_prices() -> None:
    lines = cost.per_1000_calls(measured(), retention_days=90, log_retention_days=30)
    prices = cost.PRICES

    # 5 invocations per call
    assert line(lines, "Lambda", "5 invocations") == pytest.approx(1000 * 5 * prices["lambda_per_request"])
    # billed per started millisecond: 11 ms at 0.5 GB, and 4 x 5 ms at 1 GB
    gb_s = (11 * 0.5 + 4 * 5 * 1.0) / 1000
    assert line(lines, "Lambda", "25.5 GB-s") == pytest.approx(1000 * gb_s * prices["lambda_gb_second_arm64"])
    cold_gb_s = cost.ASSUMPTIONS["cold_start_share"] * (400 * 0.5 + 4 * 300 * 1.0) / 1000
    assert line(lines, "Lambda", "cold starts") == pytest.approx(
        1000 * cold_gb_s * prices["lambda_gb_second_arm64"]
    )
    assert line(lines, "API Gateway (HTTP API)", "5 requests") == pytest.approx(
        1000 * 5 * prices["http_api_per_request"]
    )
    assert line(lines, "DynamoDB (on-demand)", "write") == pytest.approx(
        1000 * 10 * prices["dynamodb_per_write_request_unit"]
    )
    # 2 MB of items kept three months (the ByCallSid index projects a few attributes: not counted)
    assert line(lines, "DynamoDB (on-demand)", "storage") == pytest.approx(
        0.002 * prices["dynamodb_storage_gb_month"] * 3
    )
    assert line(lines, "S3", "first month") == pytest.approx(1.0 * prices["s3_standard_gb_month"])
    assert line(lines, "S3", "each month") == pytest.approx(1.0 * prices["s3_glacier_ir_gb_month"])
    assert [item.later for item in lines if item.service == "S3"] == [False, False, True, True]


def test_fixed_costs_count_the_template_alarm_metrics() -> None:
    fixed = cost.fixed_monthly(measured())

    # DLQ 1 + backlog 1 + errors and throttles 10 functions each + API 5xx rate 2 + signatures 1
    # + relay integration/execution errors 2 + reconciler recovered 2 + reconciler API failures 2
    assert line(fixed, "CloudWatch", "31 alarm metrics") == pytest.approx(
        31 * cost.PRICES["alarm_metric_month"]
    )
    assert line(fixed, "CloudWatch", "2 custom metrics") == pytest.approx(
        2 * cost.PRICES["custom_metric_month"]
    )


def test_money_keeps_two_significant_digits_below_a_dollar() -> None:
    assert [cost._money(value) for value in (12.345, 0.35, 0.0072, 0.000126, 0)] == [
        "$12.35",
        "$0.35",
        "$0.0072",
        "$0.00013",
        "$0",
    ]


def test_item_sizes_follow_dynamodb_rules() -> None:
    # names and string values in UTF-8 bytes; numbers about half their digits
    assert cost._item_bytes({"SessionId": "abc", "SequenceNumber": 12}) == 3 + 9 + 3 + 14 + 2


def test_only_writes_touching_the_index_attributes_are_charged_for_the_index() -> None:
    from voicedev.cost import _writes_index

    # Given the template's indexes of session items (ByCallSid, ByReconcileDue)
    # When a session is created, both are written
    assert _writes_index("PutItem", {"Item": {}}) == 2
    # And when its status moves, both show it (both project LatestStatus)
    assert _writes_index("UpdateItem", {"UpdateExpression": "SET LatestStatus = :status"}) == 2
    # And a final status removing it from the reconciler's index writes that one
    assert _writes_index("UpdateItem", {"UpdateExpression": "REMOVE ReconcileShard, ReconcileAt"}) == 1
    assert (
        _writes_index(
            "UpdateItem",
            {"UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "LatestSequenceNumber"}},
        )
        == 1
    )
    # But an identity fill of attributes no index holds writes the table alone
    assert (
        _writes_index(
            "UpdateItem", {"UpdateExpression": "SET #a = :a", "ExpressionAttributeNames": {"#a": "From"}}
        )
        == 0
    )


# --- the relay agent, per minute of conversation ---------------------------------------------------


def relay_measured(**changes: object) -> RelayMeasured:
    figures = RelayMeasured(
        how="by hand",
        conversations=2,
        turns=60,
        memory_mb=512,
        turn_median_ms=10.0,
        turn_p90_ms=14.0,
        turn_aws_requests=30,
        turn_messages_out=12,
        turn_write_units=4,
        turn_read_units=14,
        turn_log_bytes=400,
        conversation_invocations=3,
        conversation_ms=20.0,
        conversation_aws_requests=8,
        conversation_write_units=8,
        conversation_read_units=2,
        conversation_log_bytes=1500,
    )
    return dataclasses.replace(figures, **changes)  # type: ignore[arg-type]


def test_the_relay_section_is_what_its_figures_and_the_current_prices_give() -> None:
    # Given the relay figures docs/cost.md was generated from
    text = DOC.read_text(encoding="utf-8")
    figures = cost.relay_from_doc(text)

    # Then its section is exactly what the script renders from them today
    assert cost.relay_section(figures) in text, "docs/cost.md is stale: run `make cost`"
    # And they are a real run of the scripted agent: every token of the hours answer posted,
    # the prompt and the reply stored, one consistent read of the interrupt marker per token
    assert figures.turns >= 30
    assert figures.turn_messages_out == len(cost_answer_words())
    assert figures.turn_write_units >= 4
    assert figures.turn_read_units >= figures.turn_messages_out
    # And docs/relay-agent.md points here instead of keeping figures of its own
    relay_doc = (DOC.parent / "relay-agent.md").read_text(encoding="utf-8")
    assert "cost.md#the-relay-agent-per-minute-of-conversation" in relay_doc
    assert "$0.000" not in relay_doc


def cost_answer_words() -> list[str]:
    import json

    flows = json.loads((cost.PROJECT_ROOT / "config" / "flows.example.json").read_text())
    [hours] = [i for i in flows["flows"]["concierge"]["agent"]["intents"] if i["name"] == "hours"]
    return str(hours["answer"]).split()


def test_a_minute_of_conversation_multiplies_the_figures_by_prices() -> None:
    # Given 6 turns a minute and conversations of 5 minutes (the assumptions), 5 ms per AWS request
    a = cost.RELAY_ASSUMPTIONS
    assert (a["turns_per_minute"], a["minutes_per_conversation"], a["aws_request_ms"]) == (6, 5, 5)
    lines = cost.relay_minute(relay_measured(), log_retention_days=30)
    prices = cost.PRICES

    # Then 1,000 minutes are 6 x (1 + 12) messages and the setup frame (a fifth per minute) each
    messages = 6 * 13 + 0.2
    assert line(lines, "API Gateway (WebSocket)", "78.2 messages") == pytest.approx(
        1000 * messages * prices["websocket_per_message"]
    )
    assert line(lines, "API Gateway (WebSocket)", "1 connection minute") == pytest.approx(
        1000 * prices["websocket_per_connection_minute"]
    )
    # and 6 turns plus a fifth of the handshake, setup and close: 6.6 invocations a minute
    assert line(lines, "Lambda", "6.6 invocations") == pytest.approx(
        1000 * 6.6 * prices["lambda_per_request"]
    )
    # each turn billed 10 ms + 30 requests x 5 ms = 160 ms, the conversation's 20 + 8 x 5 ms over 5 minutes
    gb_s = (6 * 160 + 60 / 5) / 1000 * 0.5
    assert line(lines, "Lambda", f"{gb_s * 1000:.1f} GB-s") == pytest.approx(
        1000 * gb_s * prices["lambda_gb_second_arm64"]
    )
    assert line(lines, "DynamoDB (on-demand)", "write") == pytest.approx(
        1000 * (6 * 4 + 8 / 5) * prices["dynamodb_per_write_request_unit"]
    )
    assert line(lines, "DynamoDB (on-demand)", "read") == pytest.approx(
        1000 * (6 * 14 + 2 / 5) * prices["dynamodb_per_read_request_unit"]
    )
    assert line(lines, "X-Ray", "6.6 traces") == pytest.approx(1000 * 6.6 * prices["xray_per_trace"])


@pytest.mark.slow
def test_measuring_the_relay_counts_what_each_turn_does() -> None:
    # When one conversation of three turns is measured (after the uncounted warm-up one)
    figures = cost.measure_relay(conversations=1, turns=3)

    # Then each turn posted every word of the hours answer, numbered and claimed the prompt frame,
    # numbered the reply and stored both (five writes of 1 KB: the relay item no longer grows), and
    # read the interrupt marker once per token plus the connection (the scripted agent asks for no
    # history: no query)
    assert figures.turns == 3
    assert figures.turn_messages_out == len(cost_answer_words())
    assert figures.turn_write_units == 5
    assert figures.turn_read_units >= figures.turn_messages_out
    assert figures.turn_aws_requests == 5 + figures.turn_messages_out + 13
    # And the handshake wrote its two items in a transaction (2 units each), and three invocations ran
    assert figures.conversation_write_units >= 4
    assert figures.conversation_invocations == 3
    assert figures.turn_median_ms > 0
