"""The handlers' environment in the local mode, derived from template.yaml.

Every function's `Environment.Variables` (and the `Globals`) are resolved the way CloudFormation
would for a stack built from parameter defaults, with the template's resources standing for the
local ones (`!Ref EventsTable` is the moto table, `!GetAtt RecordingsQueue.Arn` the moto queue).
All functions share one process locally, so they share one environment: the union of theirs.

Precedence, lowest first: the template's values; the developer's own environment (to try another
`EVENT_TTL_DAYS` or `POWERTOOLS_LOG_LEVEL` without editing the template); then values the local
mode must own: AWS plumbing pointing at moto, anything naming a resource, and the local settings
(secret, accepted account, flow config file, public base URL)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicedev.local_aws import ACCOUNT_ID, DUMMY_CREDENTIALS, LocalResources
from voicedev.local_settings import LocalSettings


class Unresolvable(ValueError):
    """A template value that needs something the local mode does not have (a parameter without
    default, a resource it does not emulate)."""


class _NoValue:
    """`!Ref AWS::NoValue`: the variable is left out."""


NO_VALUE = _NoValue()

# Cleared so that nothing in the developer's shell sends a handler to real AWS or another endpoint.
_AWS_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
_AWS_CLEARED_PREFIXES = ("AWS_ENDPOINT_URL_",)


@dataclass
class HandlerEnvironment:
    """The variables to set and to remove, and what could not be resolved (shown at start)."""

    values: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class TemplateResolver:
    """Resolves the intrinsic functions environment variables use: Ref, GetAtt, Sub, Join, If."""

    def __init__(self, template: Mapping[str, Any], resources: LocalResources) -> None:
        self.template = template
        self.region = resources.region
        self.parameters = {
            name: spec["Default"]
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        self.parameter_types = {
            name: spec.get("Type", "String") for name, spec in template.get("Parameters", {}).items()
        }
        self.refs: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        for name, table in resources.tables.items():
            self.refs[name] = table
            self.arns[name] = resources.table_arn(name)
        for name, url in resources.queue_urls.items():
            self.refs[name] = url
            self.arns[name] = resources.queue_arn(name)
        for name, bucket in resources.bucket_names.items():
            self.refs[name] = bucket
            self.arns[name] = f"arn:aws:s3:::{bucket}"
        self.pseudo: dict[str, str | _NoValue] = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
            "AWS::NoValue": NO_VALUE,
        }
        #: Names of the resources a resolved value referred to (the caller locks those variables).
        self.touched_resources: set[str] = set()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return value if isinstance(value, str) else str(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict) and len(value) == 1:
            (function, argument), *_ = value.items()
            handlers: dict[str, Callable[[Any], Any]] = {
                "Ref": self._ref,
                "Fn::GetAtt": self._get_att,
                "Fn::Sub": self._sub,
                "Fn::Join": self._join,
                "Fn::If": self._if,
            }
            handler = handlers.get(function)
            if handler is not None:
                return handler(argument)
        raise Unresolvable(f"unsupported template value {value!r}")

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            default = self.parameters[name]
            if self.parameter_types.get(name) == "CommaDelimitedList":
                return [part.strip() for part in str(default).split(",")] if str(default) else []
            return self.resolve(default)
        if name in self.refs:
            self.touched_resources.add(name)
            return self.refs[name]
        if name in self.parameter_types:
            raise Unresolvable(f"parameter {name} has no default")
        raise Unresolvable(f"resource {name} is not emulated locally")

    def _get_att(self, argument: Any) -> str:
        name, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        if attribute == "Arn" and name in self.arns:
            self.touched_resources.add(name)
            return self.arns[name]
        if attribute == "QueueUrl" and name in self.refs:
            self.touched_resources.add(name)
            return self.refs[name]
        raise Unresolvable(f"attribute {name}.{attribute} is not emulated locally")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local = {name: self.resolve(item) for name, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in local:
                return str(local[expression])
            if "." in expression:
                return self._get_att(expression)
            resolved = self._ref(expression)
            if isinstance(resolved, _NoValue | list):
                raise Unresolvable(f"${{{expression}}} is not a string")
            return str(resolved)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        resolved = self.resolve(items)
        flat: list[str] = []
        for item in resolved:
            flat.extend(item if isinstance(item, list) else [item])
        return str(delimiter).join(flat)

    def _if(self, argument: list[Any]) -> Any:
        condition, if_true, if_false = argument
        return self.resolve(if_true if self.condition(condition) else if_false)

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise Unresolvable(f"condition {name} is not defined")
        return self._evaluate(conditions[name])

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            (function, argument), *_ = expression.items()
            if function == "Condition":
                return self.condition(argument)
            if function == "Fn::Equals":
                left, right = (self.resolve(part) for part in argument)
                return bool(left == right)
            if function == "Fn::Not":
                return not self._evaluate(argument[0])
            if function == "Fn::And":
                return all(self._evaluate(part) for part in argument)
            if function == "Fn::Or":
                return any(self._evaluate(part) for part in argument)
        raise Unresolvable(f"unsupported condition {expression!r}")


def _function_variables(template: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    globals_ = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    result = [("Globals", dict(globals_))]
    for name, resource in sorted(template.get("Resources", {}).items()):
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        result.append((name, dict(variables)))
    return result


def aws_isolation(region: str, current: Mapping[str, str] | None = None) -> HandlerEnvironment:
    """The AWS settings of this process that keep every SDK call (the handlers' and moto's own) away
    from the developer's profiles and real endpoints. Applied before the moto server starts."""
    current = os.environ if current is None else current
    return HandlerEnvironment(
        values={
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            # No profile file may add an endpoint or credentials of its own.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        },
        removed=sorted(
            name for name in current if name in _AWS_CLEARED or name.startswith(_AWS_CLEARED_PREFIXES)
        ),
    )


def local_overrides(
    settings: LocalSettings, resources: LocalResources, public_base_url: str
) -> dict[str, str]:
    """What the local mode owns, whatever the template or the developer's shell says."""
    return {
        **aws_isolation(resources.region, {}).values,
        "AWS_ENDPOINT_URL": resources.endpoint_url,
        "TWILIO_AUTH_TOKEN_SECRET": resources.secret_arn,
        "ALLOWED_ACCOUNT_SIDS": settings.account_sid,
        "FLOW_CONFIG": str(settings.flow_config),
        "PUBLIC_BASE_URL": public_base_url,
        # There is no X-Ray daemon on a laptop.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


# Defaults the developer may change; chosen for a readable terminal.
LOCAL_DEFAULTS = {
    # One EMF document per request drowns the request lines; set it to false to see the metrics.
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def handler_environment(
    template: Mapping[str, Any],
    settings: LocalSettings,
    resources: LocalResources,
    public_base_url: str,
    current: Mapping[str, str] | None = None,
    extra_overrides: Mapping[str, str] | None = None,
) -> HandlerEnvironment:
    """`extra_overrides`: more values the local mode owns (the local WebSocket API's URLs)."""
    current = os.environ if current is None else current
    resolver = TemplateResolver(template, resources)
    result = HandlerEnvironment()
    overrides = {**local_overrides(settings, resources, public_base_url), **(extra_overrides or {})}
    from_template: dict[str, str] = {}
    owners: dict[str, str] = {}
    locked: set[str] = set()
    for owner, variables in _function_variables(template):
        for name, raw in variables.items():
            resolver.touched_resources.clear()
            try:
                value = resolver.resolve(raw)
            except Unresolvable as exc:
                if name not in overrides:
                    result.notes.append(f"{name} ({owner}) not set: {exc}")
                continue
            if isinstance(value, _NoValue):
                continue
            if isinstance(value, list):
                value = ",".join(value)
            if resolver.touched_resources:
                locked.add(name)
            previous = from_template.get(name)
            # Globals are overridden by a function's own value, as SAM does.
            if previous is not None and previous != value and owners[name] != "Globals":
                result.notes.append(
                    f"{name}: {owner} and {owners[name]} differ; both run in one process here, "
                    f"using {owners[name]}'s value"
                )
                continue
            from_template[name] = str(value)
            owners[name] = owner

    for name, value in {**LOCAL_DEFAULTS, **from_template}.items():
        if name in locked or name in overrides:
            result.values[name] = value
        else:
            result.values[name] = current.get(name, value)
    result.values.update(overrides)
    result.removed = aws_isolation(resources.region, current).removed
    return result
