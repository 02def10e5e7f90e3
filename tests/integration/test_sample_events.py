"""Every file in events/ is a generated, current, correctly signed sample that its handler answers
as the expected answer beside it says (events/<name>.expected.json: status, TwiML or body, effects),
each on its own session (devtools/voicedev/sample_events.py; `make sam-local` checks the same
files through the real SAM CLI)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator
from voicedev import sample_expectations, template_resources
from voicedev.sample_events import (
    CASES,
    ENV_FILE,
    SECURITY_DOC,
    case_named,
    docs_table,
    render_all,
    seed_items,
    with_docs_table,
    write,
)
from voicedev.twilio_signing import DEV_AUTH_TOKEN

from tests.conftest import EVENTS_DIR, EXAMPLE_FLOWS

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
EXPECTED_SUFFIX = ".expected.json"
EVENT_FILES = sorted(
    path
    for path in EVENTS_DIR.glob("*.json")
    if path.name != ENV_FILE and not path.name.endswith(EXPECTED_SUFFIX)
)


class MultiParams(dict[str, str]):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        super().__init__(pairs)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def signature_is_valid(event: dict[str, Any]) -> bool:
    """Validate as Twilio documents it, from the event alone: the URL it carries, and the form
    parameters of a POST."""
    context = event["requestContext"]
    url = f"https://{context['domainName']}{event['rawPath']}"
    if event.get("rawQueryString"):
        url += "?" + event["rawQueryString"]
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    pairs = parse_qsl(body, keep_blank_values=True) if context["http"]["method"] == "POST" else []
    signature = event["headers"].get("x-twilio-signature", "")
    return bool(RequestValidator(DEV_AUTH_TOKEN).validate(url, MultiParams(pairs), signature))


def function_for(event: dict[str, Any]) -> str:
    """The function directory the template routes this event's path to."""
    path = event["routeKey"].partition(" ")[2]
    matches = {route.code_uri.name for route in template_resources.http_api_routes() if route.path == path}
    assert len(matches) == 1, f"template.yaml routes {path} to {matches}"
    return matches.pop()


def test_events_directory_holds_exactly_the_generated_files() -> None:
    # Given the case list, Then events/ has one file per case plus env.json, nothing else
    assert {path.name for path in EVENTS_DIR.glob("*.json")} == set(render_all())
    assert {path.name for path in EVENT_FILES} == {case.file_name for case in CASES}
    # And every event has its expected answer beside it
    assert {path.name for path in EVENTS_DIR.glob(f"*{EXPECTED_SUFFIX}")} == {
        case.expected_file_name for case in CASES
    }


def test_every_callback_event_has_its_own_session() -> None:
    # Given the callback events (their URL carries ?session=)
    sessions = [case.session_id for case in CASES if case.session]

    # Then no two share a session: each answers as if it were the only one (issue 13, item 5)
    assert len(sessions) == len(set(sessions))
    for case in CASES:
        if case.session:
            assert (
                f"session={case.session_id}"
                in json.loads((EVENTS_DIR / case.file_name).read_text(encoding="utf-8"))["rawQueryString"]
            )


def test_events_are_current_with_the_generator(tmp_path: Path) -> None:
    # When the generator runs into an empty directory
    write(tmp_path, render_all())

    # Then it produces byte for byte what is committed (run `make events` if this fails)
    stale = [
        path.name
        for path in sorted(tmp_path.iterdir())
        if not (EVENTS_DIR / path.name).exists() or (EVENTS_DIR / path.name).read_bytes() != path.read_bytes()
    ]
    assert stale == [], "events/ is stale: run `make events`"


def test_generation_is_deterministic() -> None:
    assert render_all() == render_all()


def test_env_file_holds_placeholders_only_and_names_the_template_declares() -> None:
    # Given env.json for `sam local invoke --env-vars`
    document = json.loads((EVENTS_DIR / ENV_FILE).read_text(encoding="utf-8"))
    variables = document["Parameters"]

    # Then no secret is in it: the token secret is a placeholder, and no value is the token
    assert variables["TWILIO_AUTH_TOKEN_SECRET"].startswith("REPLACE_WITH_")
    assert DEV_AUTH_TOKEN not in json.dumps(document)

    # And SAM will use every variable (it only overrides those the template declares)
    template = template_resources.load_template()
    declared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for props in template_resources.resources_of_type("AWS::Serverless::Function", template).values():
        declared |= set(props.get("Environment", {}).get("Variables", {}))
    assert set(variables) <= declared


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda path: path.stem)
def test_sample_event(aws: Any, invoke: Invoke, path: Path) -> None:
    # Given a sample event and the case that generated it
    event = json.loads(path.read_text(encoding="utf-8"))
    case = case_named(path.stem)

    # Then it carries a valid signature exactly when the case says it is signed
    assert signature_is_valid(event) is case.signed

    expected = sample_expectations.load((EVENTS_DIR / case.expected_file_name).read_text(encoding="utf-8"))
    # And when the callback needs the session opened by the connect webhook, it exists
    for item in seed_items(case, json.loads(EXAMPLE_FLOWS.read_text(encoding="utf-8"))):
        aws.table.put_item(Item=item)

    before = aws.items()

    # When its handler is invoked
    response = invoke(function_for(event), event)

    # Then it answers what its expected answer says (status, TwiML shape, body), with the effects
    # it says (table changed or not, messages queued)
    assert expected.function == _logical_id(function_for(event))
    problems = sample_expectations.differences(
        expected, response, changed=aws.items() != before, queued=len(aws.messages())
    )
    assert problems == [], (problems, response.get("body"))
    # And a refused request changed nothing
    if response["statusCode"] >= 400:
        assert aws.items() == before


def _logical_id(function_dir: str) -> str:
    return next(
        route.function
        for route in template_resources.http_api_routes()
        if route.code_uri.name == function_dir
    )


def test_security_doc_lists_every_event_with_its_expected_answer() -> None:
    # Given docs/security.md#sample-events
    doc = SECURITY_DOC.read_text(encoding="utf-8")

    # Then its table is the generated one (run `make events` if this fails)
    assert with_docs_table(doc, docs_table()) == doc
    # And it names every event with the answer its expected file promises
    for case in CASES:
        promise = sample_expectations.load((EVENTS_DIR / case.expected_file_name).read_text(encoding="utf-8"))
        assert f"| `{case.file_name}` | {promise.function} |" in doc
        assert f"`{promise.summary()}`" in doc
