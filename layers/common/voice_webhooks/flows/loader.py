"""Load and validate the call-flow document from FLOW_CONFIG: a file path, or `ssm:/name` (an SSM
parameter read through Powertools Parameters and cached for PARAMETERS_MAX_AGE seconds)."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path

from aws_lambda_powertools.utilities import parameters
from pydantic import ValidationError

from voice_webhooks.errors import ConfigurationError
from voice_webhooks.flows.messages import describe_errors
from voice_webhooks.flows.model import FlowConfig
from voice_webhooks.runtime import aws_clients
from voice_webhooks.runtime.observability import logger, mask_phone

SSM_PREFIX = "ssm:"


def format_errors(error: ValidationError, *, mask_numbers: bool = False) -> list[str]:
    """One line per problem, each naming the field by its path in the document."""
    return describe_errors(error, mask_phone if mask_numbers else None)


def parse_flow_config(
    text: str, source: str = "flow config", *, mask_numbers: bool = False
) -> tuple[FlowConfig, list[str]]:
    """Validate a document; returns it with its warnings. Raises ConfigurationError whose `problems`
    name each field. `mask_numbers` hides phone numbers in the messages (they end up in logs)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid JSON ({exc})") from exc
    try:
        config = FlowConfig.model_validate(document)
    except ValidationError as exc:
        problems = format_errors(exc, mask_numbers=mask_numbers)
        raise ConfigurationError(f"{source}: " + "; ".join(problems), problems) from exc
    return config, config.warnings()


@lru_cache(maxsize=4)
def _parsed(text: str, source: str) -> FlowConfig:
    # Keyed by the text: a changed SSM value is parsed (and its warnings logged) once, when it changes.
    config, warnings_found = parse_flow_config(text, source, mask_numbers=True)
    for warning in warnings_found:
        logger.warning("Flow config warning", extra={"source": source, "warning": warning})
    return config


@cache
def ssm_provider() -> parameters.SSMProvider:
    """One SSM provider per process, from the shared boto3 session. Made on first use, not at
    import: the provider builds its boto3 client when constructed."""
    return parameters.SSMProvider(boto3_session=aws_clients.session())


def read_flow_config_text(source: str, max_age: int) -> str:
    if source.startswith(SSM_PREFIX):
        name = source.removeprefix(SSM_PREFIX)
        try:
            # decrypt: the document may be kept in a SecureString; harmless for a String.
            return str(ssm_provider().get(name, max_age=max_age, decrypt=True))
        except parameters.exceptions.GetParameterError as exc:
            raise ConfigurationError(f"cannot read flow config {source}: {exc}") from exc
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read flow config file {source}: {exc.strerror}") from exc


def load_flow_config(source: str, max_age: int) -> FlowConfig:
    """The validated document named by FLOW_CONFIG (`source`), read at most every `max_age`
    seconds. Raises ConfigurationError (500 on the route)."""
    return _parsed(read_flow_config_text(source, max_age), source)
