"""Load and validate the call-flow document from FLOW_CONFIG: a file path, or `ssm:/name` (an SSM
parameter read through Powertools Parameters and cached for PARAMETERS_MAX_AGE seconds)."""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

from aws_lambda_powertools.utilities import parameters
from pydantic import ValidationError

from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flow_config import FlowConfig, FlowConfigWarning
from voice_webhooks.observability import logger
from voice_webhooks.settings import Settings

SSM_PREFIX = "ssm:"


def format_errors(error: ValidationError) -> list[str]:
    """One line per problem, each naming the field by its path in the document."""
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _is_union_tag(part: object) -> bool:
    # pydantic puts the discriminator value ("conversation"/"relay") in the error path.
    return part in ("conversation", "relay", "function-after[_names_resolve(), FlowConfig]")


def parse_flow_config(text: str, source: str = "flow config") -> tuple[FlowConfig, list[str]]:
    """Validate a document; returns it with any warnings. Raises ConfigurationError naming fields."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid JSON ({exc})") from exc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FlowConfigWarning)
        try:
            config = FlowConfig.model_validate(document)
        except ValidationError as exc:
            problems = format_errors(exc)
            raise ConfigurationError(f"{source}: " + "; ".join(problems), problems) from exc
    return config, [str(w.message) for w in caught if issubclass(w.category, FlowConfigWarning)]


@lru_cache(maxsize=4)
def _parsed(text: str, source: str) -> FlowConfig:
    config, warnings_found = parse_flow_config(text, source)
    for warning in warnings_found:
        logger.warning("Flow config warning", extra={"source": source, "warning": warning})
    return config


def read_flow_config_text(source: str, max_age: int) -> str:
    if source.startswith(SSM_PREFIX):
        try:
            return str(parameters.get_parameter(source.removeprefix(SSM_PREFIX), max_age=max_age))
        except Exception as exc:
            raise ConfigurationError(f"cannot read flow config {source}: {type(exc).__name__}") from exc
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read flow config file {source}: {exc.strerror}") from exc


def load_flow_config(settings: Settings) -> FlowConfig:
    source = settings.require("flow_config")
    return _parsed(read_flow_config_text(source, settings.cache_max_age_seconds), source)
