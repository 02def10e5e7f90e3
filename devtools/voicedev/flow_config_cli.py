"""`voice-webhooks-validate-config FILE...`: check call-flow documents and print what to fix, one
problem per line naming the field. Exit status 1 when a file is invalid.

`--write-schema PATH` regenerates the committed JSON Schema (`make schema`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.loader import parse_flow_config
from voice_webhooks.flows.model import FlowConfig

SCHEMA_PATH = "schema/flow-config.schema.json"
SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"


class _DocumentSchema(GenerateJsonSchema):
    """The schema of the document as a person writes it: an optional key is left out, never null
    (the model rejects null), and titles would only repeat the key."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002 - pydantic's signature
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default", ...) is None:
            del generated["default"]
        return generated


def _keys_must_match(node: Any) -> None:
    """pydantic renders a dict whose keys have a pattern as `patternProperties`, which lets keys
    that do not match through unchecked; the model rejects them, so the schema must too."""
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            ((pattern, value),) = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = value
        for child in node.values():
            _keys_must_match(child)
    elif isinstance(node, list):
        for child in node:
            _keys_must_match(child)


def json_schema() -> str:
    schema = FlowConfig.model_json_schema(by_alias=True, schema_generator=_DocumentSchema)
    _keys_must_match(schema)
    for definition in schema.get("$defs", {}).values():
        definition.pop("title", None)
    schema["$schema"] = SCHEMA_DRAFT
    schema["title"] = "Twilio voice webhooks call-flow configuration"
    schema["description"] = (
        "Which TwiML each called number gets. Generated from voice_webhooks.flows.model by `make schema`; "
        "cross-field rules (trim needs recording, multi languages, flow names resolving) are checked "
        "by `voice-webhooks-validate-config`. See docs/configuration.md."
    )
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_file(path: Path) -> tuple[bool, list[str]]:
    """(valid, report lines) for one document."""
    try:
        config, warnings_found = parse_flow_config(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        return False, [f"{path}: cannot read: {exc.strerror}"]
    except ConfigurationError as exc:
        lines = [f"{path}: INVALID ({_count(len(exc.problems), 'problem')})"]
        lines += [f"  error: {problem}" for problem in exc.problems]
        return False, lines
    summary = (
        f"{_count(len(config.flows), 'flow')}, {_count(len(config.numbers), 'number')}, "
        f"default {config.default!r}"
    )
    return True, [f"{path}: OK ({summary})"] + [f"  warning: {warning}" for warning in warnings_found]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="voice-webhooks-validate-config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", type=Path, help="call-flow JSON documents to check")
    parser.add_argument(
        "--write-schema", type=Path, metavar="PATH", help=f"write the JSON Schema ({SCHEMA_PATH})"
    )
    args = parser.parse_args(argv)
    if not args.files and not args.write_schema:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give at least one FILE to check", file=sys.stderr)
        return 2
    if args.write_schema:
        args.write_schema.write_text(json_schema(), encoding="utf-8")
        print(f"wrote {args.write_schema}")
    status = 0
    for path in args.files:
        valid, lines = check_file(path)
        print("\n".join(lines))
        status = status if valid else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
