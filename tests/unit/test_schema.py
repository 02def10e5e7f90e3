"""The committed JSON Schema (schema/flow-config.schema.json): generated from the model, never
stale, and in step with the validator for everything a schema can express."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

# jsonschema comes with the pinned dev tools (cfn-lint's aws-sam-translator, moto's openapi
# validators require it): no extra dependency.
import jsonschema  # type: ignore[import-untyped]
import pytest
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import parse_flow_config
from voicedev.flow_config_cli import json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "flow-config.schema.json"
FIXTURES = Path(__file__).parent / "fixtures" / "flow_config"
VALID_DOCUMENTS = [
    *sorted((ROOT / "config").glob("flows*.example.json")),
    FIXTURES / "minimal_both_kinds.json",
    FIXTURES / "conversation_all_attributes.json",
    FIXTURES / "relay_all_attributes.json",
    FIXTURES / "with_warnings.json",
]
BASE = json.loads((FIXTURES / "minimal_both_kinds.json").read_text())
# Keys that are ours rather than TwiML attributes but belong to the TwiML the flow renders.
RENDERING_KEYS = {"kind", "action", "method", "languages", "parameters"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_up_to_date() -> None:
    # Given the model as it is now / When its schema is generated
    generated = json_schema()

    # Then it is exactly the committed file
    assert SCHEMA_FILE.read_text() == generated, (
        f"{SCHEMA_FILE.relative_to(ROOT)} is stale: run `make schema`"
    )


def test_schema_declares_its_draft(validator: jsonschema.Draft202012Validator) -> None:
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", VALID_DOCUMENTS, ids=lambda path: path.name)
def test_documents_the_validator_accepts_match_the_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    # Given a document validate-config accepts
    document = json.loads(path.read_text())
    parse_flow_config(path.read_text())

    # When it is checked against the JSON Schema / Then there is no error
    assert [error.message for error in validator.iter_errors(document)] == []


def with_changes(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(BASE)
    for path, value in edits:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return document


RELAY = ("flows", "assistant")
CONV = ("flows", "frontline")

ACCEPTED_SPELLINGS = {
    "record true": with_changes(((*CONV, "record"), True)),
    "record 'false'": with_changes(((*CONV, "record"), "false")),
    "interruptible false": with_changes(((*RELAY, "interruptible"), False)),
    "lower-case provider": with_changes(((*RELAY, "ttsProvider"), "amazon")),
    "events as a string": with_changes(((*CONV, "statusCallbackEvent"), "call-ringing  call-completed")),
    "events as a list": with_changes(((*CONV, "statusCallbackEvent"), ["call-ringing"])),
    "hints as a string": with_changes(((*RELAY, "hints"), "Twilio, Code Exchange")),
    "debug as a list": with_changes(((*RELAY, "debug"), ["tokens-played"])),
}


@pytest.mark.parametrize("document", ACCEPTED_SPELLINGS.values(), ids=ACCEPTED_SPELLINGS.keys())
def test_documented_aliases_and_spellings_are_accepted_by_both(
    document: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    parse_flow_config(json.dumps(document))
    assert [error.message for error in validator.iter_errors(document)] == []


REJECTED = {
    "unknown top-level key": with_changes((("$schema",), "./schema/flow-config.schema.json")),
    "unknown flow key": with_changes(((*CONV, "serviceInstanceSID"), "IS00000000000000000000000000000000")),
    "unknown <Language> key": with_changes(((*RELAY, "languages"), [{"code": "en-US", "lang": "x"}])),
    "<Language> without code": with_changes(((*RELAY, "languages"), [{"voice": "x"}])),
    "number not E.164": with_changes((("numbers", "5550100"), "frontline")),
    "flow name with a dot": with_changes((("flows", "a.b"), BASE["flows"]["frontline"])),
    "missing kind": with_changes(((*CONV,), {"serviceInstanceSid": "IS00000000000000000000000000000000"})),
    "bad service SID": with_changes(((*CONV, "serviceInstanceSid"), "IS123")),
    "integer as a string": with_changes(((*CONV, "inboundTimeout"), "10")),
    "boolean as a string": with_changes(((*RELAY, "dtmfDetection"), "true")),
    "record value": with_changes(((*CONV, "record"), "always")),
    "event word": with_changes(((*CONV, "statusCallbackEvent"), "call-ended")),
    "relay url not wss": with_changes(((*RELAY, "url"), "https://agent.example.com")),
    "recording callback relative": with_changes(((*CONV, "recordingStatusCallback"), "/rec")),
    "interruptSensitivity": with_changes(((*RELAY, "interruptSensitivity"), "loud")),
    "debug word": with_changes(((*RELAY, "debug"), "verbose")),
    "null value": with_changes(((*RELAY, "voice"), None)),
}


@pytest.mark.parametrize("document", REJECTED.values(), ids=REJECTED.keys())
def test_shape_errors_are_rejected_by_both(
    document: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    # Given a document with a mistake a schema can express
    # When it is checked both ways / Then both refuse it
    with pytest.raises(ConfigurationError):
        parse_flow_config(json.dumps(document))
    assert list(validator.iter_errors(document)) != []


def test_every_flow_key_is_documented() -> None:
    # Given the keys each kind of flow and <Language> accept (TwiML attributes and the keys that
    # shape the rendered TwiML)
    definitions = json.loads(SCHEMA_FILE.read_text())["$defs"]
    keys = {
        key
        for name in ("ConversationFlow", "RelayFlow", "RelayLanguage")
        for key, spec in definitions[name]["properties"].items()
        if key in RENDERING_KEYS or not spec.get("x-not-twiml-attribute")
    }

    # When docs/configuration.md is read / Then each key is described there
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert sorted(key for key in keys if f"`{key}`" not in docs) == []
