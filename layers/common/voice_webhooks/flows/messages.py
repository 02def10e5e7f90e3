"""What the call-flow document's validation says: one line per problem, naming the field by its
path (`flows.assistant.url: ...`), unknown keys with a did-you-mean, and pydantic's wording turned
into sentences a person can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

FLOW_KINDS = ("conversation", "relay")
Loc = tuple[str | int, ...]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Rule violations with their location. Raising a ValidationError from inside a validator makes
# pydantic prefix each location with the path of the model being validated, so a rule found in a
# <Language> comes out as `flows.<name>.<kind>.languages.<i>.<field>`.


class Problems:
    def __init__(self, title: str) -> None:
        self.title = title
        self.details: list[InitErrorDetails] = []

    def add(self, loc: Loc, message: str, value: object = None) -> None:
        # The message goes through the context: a `{` in a user's value must not be a template field.
        error = PydanticCustomError("flow_rule", "{message}", {"message": message})
        self.details.append(InitErrorDetails(type=error, loc=loc, input=value))

    def locations(self) -> list[Loc]:
        return [tuple(detail["loc"]) for detail in self.details if "loc" in detail]

    def extend(self, error: ValidationError, skip: set[Any] = frozenset()) -> None:  # type: ignore[assignment]
        """Add another validation's errors (their wording, type and context kept), except those
        on a top-level key in `skip` (already reported, e.g. a null that is also "required")."""
        for item in error.errors():
            loc = tuple(item["loc"])
            if loc and loc[0] in skip:
                continue
            context = {
                name: value
                for name, value in (item.get("ctx") or {}).items()
                if isinstance(value, str | int | float | bool)
            }
            kind = PydanticCustomError(item["type"], "{message}", {**context, "message": item["msg"]})
            self.details.append(InitErrorDetails(type=kind, loc=loc, input=item.get("input")))

    def raise_if_any(self) -> None:
        if self.details:
            raise ValidationError.from_exception_data(self.title, self.details)


def validate_reporting_all(
    data: object,
    allowed: Iterable[str],
    what: str,
    title: str,
    handler: Callable[[object], T],
    more: Callable[[dict[Any, Any]], Problems] | None = None,
) -> T:
    """Validate `data` with `handler` (pydantic's), reporting every problem in one run.

    Unknown keys (typos must not pass silently) and nulls are reported on their own key, and the
    rest of the object is still validated without them, so a typo does not hide a bad value next
    to it. `more` adds problems found on the raw data (names that must resolve) that pydantic would
    only check once everything else is valid."""
    if not isinstance(data, dict):
        return handler(data)
    known = sorted(allowed)
    problems = more(data) if more is not None else Problems(title)
    problems.title = title
    reported = {loc[0] for loc in problems.locations()}
    cleaned = {}
    for key, value in data.items():
        if key not in known:
            problems.add((key,), _unknown_key_message(str(key), known, what), value)
        elif value is None:
            problems.add((key,), "must not be null: leave the key out to use the default", value)
        else:
            cleaned[key] = value
            continue
        reported.add(key)
    if not problems.details:
        return handler(data)
    try:
        handler(cleaned)
    except ValidationError as exc:
        problems.extend(exc, skip=reported)
    problems.raise_if_any()
    raise AssertionError("unreachable: problems were found")  # pragma: no cover


def _unknown_key_message(key: str, known: list[str], what: str) -> str:
    if key == "$schema":
        return (
            'unknown key: "$schema" is not part of the document; associate '
            "schema/flow-config.schema.json in your editor instead (docs/configuration.md)"
        )
    by_lower = {name.lower(): name for name in known}
    guess = by_lower.get(key.lower()) or by_lower.get(to_camel(key).lower())
    if guess is None:
        import difflib  # only a document with an unknown key pays for it

        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        guess = close[0] if close else None
    if guess is not None:
        return f"unknown key for {what}; did you mean {guess!r}?"
    return f"unknown key for {what}; allowed keys: {', '.join(known)}"


# ---------------------------------------------------------------------------------------------------
# Error messages

_PHONE_IN_TEXT = re.compile(r"\+\d{6,15}")


def describe_errors(error: ValidationError, mask: Callable[[str], str | None] | None = None) -> list[str]:
    """One line per problem, `path.to.field: what is wrong`. `mask` hides phone numbers (logs)."""
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        # pydantic puts the discriminator value after the flow name: flows.<name>.<kind>.<field>
        if len(loc) >= 3 and loc[0] == "flows" and loc[2] in FLOW_KINDS:
            del loc[2]
        loc = [part for part in loc if part != "[key]"]
        if item["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc.append("kind")
        message = _message(item["type"], item["msg"], item.get("ctx") or {}, item.get("input"), loc)
        line = f"{path_of(loc)}: {message}" if loc else message
        if mask is not None:
            line = _PHONE_IN_TEXT.sub(lambda m: mask(m.group()) or "***", line)
        lines.append(line)
    return lines


def path_of(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) if part != "" else '""' for part in loc)


# Errors about a value's type or choice: the message says what was given.
_SHOW_INPUT = {"literal_error", "int_type", "bool_type", "string_type", "greater_than_equal", "enum"}


def _message(kind: str, message: str, ctx: dict[str, Any], value: object, loc: list[Any]) -> str:
    kinds = " or ".join(FLOW_KINDS)
    if kind == "union_tag_not_found":
        return f"is required: {kinds}"
    if kind == "union_tag_invalid":
        return f"must be {kinds} (got {json.dumps(ctx.get('tag'))})"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object" if loc else "the document must be a JSON object"
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    if kind in _SHOW_INPUT and isinstance(value, str | int | float | bool) and len(str(value)) <= 80:
        message += f" (got {json.dumps(value)})"
    return message
