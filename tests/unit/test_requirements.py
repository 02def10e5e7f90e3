"""The layer SAM builds must contain exactly the runtime dependencies pyproject.toml pins, which are
the ones the tests run against."""

from __future__ import annotations

import re
from importlib.metadata import version

from voicedev import requirements

REQUIREMENTS_TXT = requirements.ROOT / "layers" / "common" / "requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[\w,.-]+\])?==(?P<version>[\w.+-]+)$")


def _requirement_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_layer_requirements_match_pyproject() -> None:
    # Given the committed layer requirements and the ones pyproject.toml implies
    committed = REQUIREMENTS_TXT.read_text(encoding="utf-8")
    expected = requirements.render()

    # Then they are the same file
    assert committed == expected, (
        "layers/common/requirements.txt is stale: run `make requirements` and commit the result"
    )


def test_every_runtime_dependency_is_pinned_to_one_version() -> None:
    # Then every Lambda deployment installs the same versions, whatever day it is built
    lines = _requirement_lines(requirements.render())

    assert lines, "no runtime dependencies found in pyproject.toml"
    unpinned = [line for line in lines if not PIN.match(line)]
    assert not unpinned, f"pin these with ==: {unpinned}"


def test_tests_run_against_the_pinned_versions() -> None:
    # Given the pins the layer is built from
    pins = {m["name"]: m["version"] for m in map(PIN.match, _requirement_lines(requirements.render())) if m}

    # Then the development environment has exactly those installed (else `make venv` is out of date)
    installed = {name: version(name) for name in pins}
    assert installed == pins
