"""`LocalMode` as a library (what the call emulator builds on): started in this process on free
ports, driven over loopback HTTP, inspected through its own boto3 clients, and stopped without a
trace in this process's environment."""

from __future__ import annotations

import os
from xml.etree import ElementTree

import pytest
from voicedev.local_api import RequestRecord
from voicedev.local_client import twilio_request
from voicedev.local_mode import LocalMode
from voicedev.local_settings import LocalSettings

from tests.e2e.conftest import connect_params, port_is_open


def test_local_mode_runs_in_process_and_restores_the_environment_when_stopped() -> None:
    # Given the environment before the start
    watched = ("AWS_ENDPOINT_URL", "EVENTS_TABLE_NAME", "PUBLIC_BASE_URL")
    before = {name: os.environ.get(name) for name in watched}
    records: list[RequestRecord] = []

    # When the local mode runs in this process on free ports
    settings = LocalSettings(api_port=0, aws_port=0, ws_port=0, ws_management_port=0)
    with LocalMode(settings, on_request=records.append) as local:
        # Then its URLs and resources are known
        assert local.api_url.startswith("http://127.0.0.1:")
        assert local.aws_endpoint.startswith("http://127.0.0.1:")
        assert local.webhook_urls()["/voice/connect"] == local.api_url + "/voice/connect"
        assert os.environ["AWS_ENDPOINT_URL"] == local.aws_endpoint

        # and a signed connect is answered and recorded
        params = connect_params("+15550100001")
        answer = twilio_request("POST", local.webhook_urls()["/voice/connect"], params)
        assert answer.status == 200, answer.body
        action = ElementTree.fromstring(answer.body).find("Connect")
        assert action is not None
        assert str(action.get("action")).startswith(local.api_url + "/voice/action?session=")
        items = local.aws_client("dynamodb").scan(TableName=local.resources.table_name)["Items"]
        assert [item["SessionCallSid"]["S"] for item in items] == [params["CallSid"]]
        assert [(record.path, record.status) for record in records] == [("/voice/connect", 200)]
        api_port = local.api.port
        aws_port = int(local.aws_endpoint.rsplit(":", 1)[1])

    # Then both servers are gone and the environment is as it was
    assert not port_is_open(api_port)
    assert not port_is_open(aws_port)
    assert {name: os.environ.get(name) for name in before} == before


def test_a_process_that_imported_the_handlers_first_still_counts_its_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the shared package imported before any Lambda environment (no metric namespace yet),
    # as the bench and the emulator's library use import it
    from voice_webhooks.runtime.observability import metrics

    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.setattr(metrics, "namespace", None)

    # When the local mode starts in this process and an unsigned request (a counted refusal) comes
    settings = LocalSettings(api_port=0, aws_port=0, ws_port=0, ws_management_port=0)
    with LocalMode(settings) as local:
        answer = twilio_request(
            "POST", local.webhook_urls()["/voice/connect"], connect_params("+15550100001"), token=None
        )

    # Then it is the documented refusal, not a 500 from a metric without a namespace
    assert answer.status == 403, answer.body
