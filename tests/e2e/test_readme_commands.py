"""The README's commands, run as shown against the real `make local`: every fenced bash block that
talks to the local mode (127.0.0.1 outside a comment) runs in bash from the project root, with the
documented ports replaced by the test instance's free ones, and prints what its comments promise.
A block nobody added an expectation for fails, so a new example cannot go unchecked."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import pytest
from voicedev.local_client import twilio_request
from voicedev.twilio_signing import sign

from tests.e2e.conftest import ROOT, LocalModeProcess, command_environment, connect_params

README = ROOT / "README.md"
FENCED_BASH = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def local_blocks(markdown: str) -> list[str]:
    """The bash blocks that reach the local mode, outside comments."""
    return [
        block
        for block in FENCED_BASH.findall(markdown)
        if any("127.0.0.1" in line.split("#", 1)[0] for line in block.splitlines())
    ]


def run_block(block: str, local: LocalModeProcess) -> subprocess.CompletedProcess[str]:
    script = block.replace("127.0.0.1:3000", f"127.0.0.1:{local.api_port}").replace(
        "127.0.0.1:5005", f"127.0.0.1:{local.aws_port}"
    )
    return subprocess.run(  # noqa: S603 - the README's own commands
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=ROOT,
        env=command_environment({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def signed_connect_example(out: list[str]) -> None:
    # The signed request (with a blank field) gets the conversation TwiML; the unsigned one 403
    assert len(out) == 2, out
    assert out[0].startswith("<?xml") and "<Connect" in out[0] and "<Conversation" in out[0], out[0]
    assert out[1] == "403"


def signed_get_example(out: list[str]) -> None:
    # The same request as a signed GET gets the same TwiML
    assert len(out) == 1, out
    assert out[0].startswith("<?xml") and "<Conversation" in out[0], out[0]


def inspect_example(out: list[str]) -> None:
    # The table holds the session the signing example opened; the queue endpoint answers JSON
    text = "\n".join(out)
    assert '"Items"' in text and "CA0123456789abcdef0123456789abcdef" in text, text
    assert out[-1].startswith('{"queues": {'), out[-1]


EXPECTATIONS: dict[str, Callable[[list[str]], None]] = {
    "URL=http://127.0.0.1:3000/voice/connect": signed_connect_example,
    'GET_URL="$URL?$BODY"': signed_get_example,
    "export AWS_ACCESS_KEY_ID=local": inspect_example,
}
LOCAL_MODE_DOC = ROOT / "docs" / "local-mode.md"


def test_the_readme_shows_the_signing_example_with_a_blank_field() -> None:
    blocks = local_blocks(README.read_text(encoding="utf-8"))
    assert any("FromCity=&" in block or "FromCity='" in block for block in blocks)
    assert any("keep_blank_values=True" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(local_blocks(README.read_text(encoding="utf-8")))))
def test_every_readme_command_for_the_local_mode_runs_as_shown(
    index: int, local_mode: LocalModeProcess
) -> None:
    # Given the README's block, and the local mode running
    block = local_blocks(README.read_text(encoding="utf-8"))[index]
    expectation = next((check for start, check in EXPECTATIONS.items() if block.startswith(start)), None)
    assert expectation is not None, f"no expectation for this README block:\n{block}"

    # When it runs as shown
    result = run_block(block, local_mode)

    # Then it succeeds and prints what the README says
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    expectation(result.stdout.splitlines())


def test_signatures_are_checked_against_the_public_url_whatever_host_the_request_names(
    local_mode: LocalModeProcess,
) -> None:
    # Given a connect request (docs/local-mode.md, "Send a signed request")
    params = connect_params("+15550100001")
    path = "/voice/connect"
    localhost_url = f"http://localhost:{local_mode.api_port}{path}"

    # When it is signed for 127.0.0.1 (the banner's public URL) but sent to localhost
    sent_to_localhost = twilio_request(
        "POST", localhost_url, params, token=None, signature=sign(local_mode.url(path), params)
    )
    # And when it is signed for the localhost URL it is sent to
    signed_for_localhost = twilio_request("POST", localhost_url, params)

    # Then only the signature computed for localhost is refused
    assert sent_to_localhost.status == 200, sent_to_localhost.body
    assert signed_for_localhost.status == 403


def simulate_block(markdown: str) -> list[str]:
    """The commands of the README's "Play whole calls" block, comments dropped."""
    block = next(block for block in FENCED_BASH.findall(markdown) if block.startswith("make simulate"))
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_play_whole_calls_commands_run_in_order(local_mode: LocalModeProcess) -> None:
    # Given the README's emulator commands, the local mode running (ports as a newcomer sets them)
    commands = simulate_block(README.read_text(encoding="utf-8"))
    assert [command.split()[:2] for command in commands][-1] == ["make", "timeline"]
    env = command_environment(
        {"LOCAL_API_PORT": str(local_mode.api_port), "LOCAL_AWS_PORT": str(local_mode.aws_port)}
    )
    call_sid = ""
    for command in commands:
        # When each runs in order (the timeline's placeholder is the first call's CallSid)
        command = command.replace("<CallSid or session id>", call_sid)
        result = subprocess.run(  # noqa: S603 - the README's own commands
            ["bash", "-c", command],  # noqa: S607
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

        # Then it succeeds, without a traceback, and says what it did
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr, command
        if "--list" in command:
            assert "worker-answers" in result.stdout
        elif command.startswith("make simulate"):
            assert "PASS" in result.stdout and "FAIL" not in result.stdout, command
        else:
            assert f"Session {call_sid}-" in result.stdout
        if not call_sid:
            call_sid = re.findall(r"\bcall (CA[0-9a-f]{32})\b", result.stdout)[0]


def test_the_local_mode_docs_commands_run_in_one_terminal(
    local_mode_factory: Callable[..., LocalModeProcess],
) -> None:
    # Given docs/local-mode.md's blocks for a running local mode, run one after the other in one
    # shell as a reader would (the GET example reuses the POST example's variables)
    blocks = [
        block
        for block in FENCED_BASH.findall(LOCAL_MODE_DOC.read_text(encoding="utf-8"))
        if block in local_blocks(LOCAL_MODE_DOC.read_text(encoding="utf-8")) or "$URL" in block
    ]
    checks = [
        next((c for start, c in EXPECTATIONS.items() if block.startswith(start)), None) for block in blocks
    ]
    assert None not in checks, "a docs/local-mode.md block has no expectation"
    assert len(blocks) >= 3
    if shutil.which("aws") is None:  # the inspect example needs the AWS CLI
        blocks, checks = blocks[:-1], checks[:-1]
    local = local_mode_factory()  # its own instance: the example receives from its queue
    marker = "=== next block ==="
    script = f"\necho '{marker}'\n".join(blocks)

    # When they run
    result = run_block(script, local)

    # Then each prints what the page says
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = result.stdout.split(marker + "\n")
    assert len(outputs) == len(blocks)
    for check, output in zip(checks, outputs, strict=True):
        assert check is not None
        check(output.splitlines())
