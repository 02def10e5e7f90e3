"""`voice-webhooks-validate-config FILE`: check a call-flow document and print what to fix.
`--write-schema PATH` regenerates the committed JSON Schema (`make schema`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flow_config import FlowConfig
from voice_webhooks.flow_config_loader import parse_flow_config


def json_schema() -> str:
    schema = FlowConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Twilio voice webhooks call-flow configuration"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path, help="call-flow JSON documents to check")
    parser.add_argument("--write-schema", type=Path, metavar="PATH", help="write the JSON Schema to PATH")
    args = parser.parse_args(argv)
    if args.write_schema:
        args.write_schema.write_text(json_schema(), encoding="utf-8")
        print(f"wrote {args.write_schema}")
    status = 0
    for path in args.files:
        try:
            config, warnings_found = parse_flow_config(path.read_text(encoding="utf-8"), str(path))
        except (ConfigurationError, OSError) as exc:
            problems = exc.problems if isinstance(exc, ConfigurationError) else [str(exc)]
            print(f"{path}: INVALID", file=sys.stderr)
            for line in problems:
                print(f"  - {line}", file=sys.stderr)
            status = 1
            continue
        for warning in warnings_found:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        summary = f"{len(config.flows)} flows, {len(config.numbers)} numbers, default {config.default!r}"
        print(f"{path}: OK ({summary})")
    if not args.files and not args.write_schema:
        parser.print_usage(sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
