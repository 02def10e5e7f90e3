"""Loading the call-flow document named by FLOW_CONFIG from a file (SSM: tests/integration/
test_flow_config_ssm.py): validated once, warnings logged at cold start, problems raised as
ConfigurationError naming the field."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import load_flow_config
from voice_webhooks.runtime.observability import logger

FIXTURES = Path(__file__).parent / "fixtures" / "flow_config"


def settings_for(source: str | Path) -> tuple[str, int]:
    """(FLOW_CONFIG, PARAMETERS_MAX_AGE) as the functions pass them."""
    return str(source), 300


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Powertools logger's JSON records, read back as dicts."""
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_a_valid_file_is_loaded(tmp_path: Path) -> None:
    # Given FLOW_CONFIG naming a valid file
    path = tmp_path / "flows.json"
    shutil.copy(FIXTURES / "minimal_both_kinds.json", path)

    # When the functions load it
    config = load_flow_config(*settings_for(path))

    # Then they get the validated document
    assert config.flow_name_for("+15550100002") == "assistant"


def test_the_document_is_parsed_once_per_content(tmp_path: Path) -> None:
    # Given a loaded file
    path = tmp_path / "flows.json"
    shutil.copy(FIXTURES / "minimal_both_kinds.json", path)
    first = load_flow_config(*settings_for(path))

    # When it is loaded again unchanged, and then after an edit
    again = load_flow_config(*settings_for(path))
    document = json.loads(path.read_text())
    document["default"] = "assistant"
    path.write_text(json.dumps(document))
    edited = load_flow_config(*settings_for(path))

    # Then the unchanged text gives the same parsed object, the edited one a new one
    assert again is first
    assert edited.default == "assistant"


def test_a_broken_file_raises_configuration_error_naming_each_field() -> None:
    # Given FLOW_CONFIG naming a document with three problems
    # When it is loaded
    with pytest.raises(ConfigurationError) as raised:
        load_flow_config(*settings_for(FIXTURES / "broken.json"))

    # Then the error names the source and each field (the connect route maps it to 500)
    assert raised.value.problems == [
        "flows.frontline.serviceInstanceSid: must be a Frontline Conversation Service SID: "
        "IS followed by 32 hex digits",
        "flows.assistant.url: must be your WebSocket server's URL, starting with wss://",
        "flows.assistant.interruptSensitivity: must be 'low', 'medium' or 'high' (got \"loud\")",
    ]
    assert str(raised.value).startswith(f"{FIXTURES / 'broken.json'}: flows.frontline.serviceInstanceSid: ")


def test_a_missing_file_raises_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigurationError, match=f"cannot read flow config file {missing}: No such file"):
        load_flow_config(*settings_for(missing))


def test_warnings_are_logged_once_at_cold_start(logs: Any) -> None:
    # Given a valid document with a setting Twilio ignores
    settings = settings_for(FIXTURES / "with_warnings.json")

    # When it is loaded twice (a cold start, then a warm invocation)
    load_flow_config(*settings)
    load_flow_config(*settings)

    # Then one WARNING record names the field and the source
    records = [record for record in logs() if record["message"] == "Flow config warning"]
    assert len(records) == 1
    assert records[0]["level"] == "WARNING"
    assert records[0]["source"] == str(FIXTURES / "with_warnings.json")
    assert records[0]["warning"].startswith("flows.assistant.conversationConfiguration: ignored for routing")
