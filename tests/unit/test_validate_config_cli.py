"""`voice-webhooks-validate-config FILE...`: OK, or each problem on its own line naming the field,
warnings too; exit status 1 when any file is invalid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from voicedev.flow_config_cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "flow_config"
BROKEN = FIXTURES / "broken.json"
WITH_WARNINGS = FIXTURES / "with_warnings.json"
EXAMPLE = ROOT / "config" / "flows.example.json"


def test_a_valid_file_prints_ok_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the committed example / When it is checked
    status = main([str(EXAMPLE)])

    # Then the command says OK and exits 0
    out = capsys.readouterr().out
    assert status == 0
    assert out == f"{EXAMPLE}: OK (3 flows, 3 numbers, default 'frontline')\n"


def test_an_invalid_file_prints_each_problem_on_its_own_line_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a document with three problems / When it is checked
    status = main([str(BROKEN)])

    # Then one line per problem names the field, and the exit status is 1
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines == [
        f"{BROKEN}: INVALID (3 problems)",
        "  error: flows.frontline.serviceInstanceSid: must be a Frontline Conversation Service SID: "
        "IS followed by 32 hex digits",
        "  error: flows.assistant.url: must be your WebSocket server's URL, starting with wss://",
        "  error: flows.assistant.interruptSensitivity: must be 'low', 'medium' or 'high' (got \"loud\")",
    ]


def test_warnings_are_printed_under_ok_and_do_not_fail(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a valid document with both conversationId and conversationConfiguration
    # When it is checked
    status = main([str(WITH_WARNINGS)])

    # Then it is OK, with the warning naming the field Twilio ignores
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == f"{WITH_WARNINGS}: OK (1 flow, 0 numbers, default 'assistant')"
    assert lines[1:] == [
        "  warning: flows.assistant.conversationConfiguration: ignored for routing: conversationId is "
        "also set and takes precedence (the configuration's grouping rules are bypassed)"
    ]


def test_several_files_are_each_reported_and_any_invalid_one_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a valid file, an invalid one and a valid one / When they are checked together
    status = main([str(EXAMPLE), str(BROKEN), str(WITH_WARNINGS)])

    # Then all three are reported and the exit status is 1
    out = capsys.readouterr().out
    assert status == 1
    assert f"{EXAMPLE}: OK" in out
    assert f"{BROKEN}: INVALID" in out
    assert f"{WITH_WARNINGS}: OK" in out


def test_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert main([str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing}: cannot read: No such file or directory\n"


def test_invalid_json_fails_with_the_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flows.json"
    path.write_text('{"default": "a",}')
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: INVALID (1 problem)\n  error: {path}: not valid JSON (")
    assert "line 1 column 17" in out


def test_no_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "give at least one FILE" in capsys.readouterr().err


def test_the_console_script_checks_files_like_main() -> None:
    # Given the installed console script (what `make validate-config FILE=...` runs)
    script = Path(sys.executable).with_name("voice-webhooks-validate-config")

    # When it checks an invalid and a valid file
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(script), str(BROKEN), str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )

    # Then it prints each problem naming the field, the valid file's OK, and exits 1
    assert result.returncode == 1, result.stderr
    assert (
        "  error: flows.assistant.url: must be your WebSocket server's URL, starting with wss://"
        in result.stdout
    )
    assert f"{EXAMPLE}: OK (3 flows, 3 numbers, default 'frontline')" in result.stdout


def test_every_problem_of_a_file_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a document with a typo in a key, a relay URL that is not wss:// next to it, a number
    # mapped to a flow that does not exist, and a null (issue 13: they surfaced one fix at a time)
    path = tmp_path / "flows.json"
    path.write_text(
        '{"default": "assistant", "numbers": {"+15550100001": "missing"},'
        ' "flows": {"assistant": {"kind": "relay", "url": "https://agent.example.com/ws",'
        ' "welcomeGreting": "Hi", "language": null},'
        ' "support": {"kind": "conversation", "serviceInstanceSid": "IS123", "recrod": "true"}}}',
        encoding="utf-8",
    )

    # When it is checked once
    status = main([str(path)])

    # Then every problem is on its own line, in the one run
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0] == f"{path}: INVALID (6 problems)"
    problems = sorted(line.strip().removeprefix("error: ").split(": ", 1)[0] for line in lines[1:])
    assert problems == [
        "flows.assistant.language",
        "flows.assistant.url",
        "flows.assistant.welcomeGreting",
        "flows.support.recrod",
        "flows.support.serviceInstanceSid",
        "numbers.+15550100001",
    ]
    assert "did you mean 'welcomeGreeting'?" in "\n".join(lines)
    assert "did you mean 'record'?" in "\n".join(lines)
