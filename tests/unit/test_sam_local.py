"""The pieces of `make sam-local` that decide without Docker: which Debian mirror and image name,
how an answer is compared with its expected file, and that boto3 clients refuse a non-local
AWS_ENDPOINT_URL before any request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from voice_webhooks.runtime import aws_clients, endpoint_guard
from voicedev import sample_expectations
from voicedev.handler_caches import reset_handler_caches
from voicedev.sam_local import image
from voicedev.sam_local.run import Row, render

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
"""
SECURITY = """Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
"""


def test_the_debian_mirror_is_the_one_apt_uses_not_the_security_archive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)

    # Given apt sources in deb822 and in one-line form, the security archive first
    assert image.debian_mirror({"a": SECURITY, "b": DEB822}) == "http://mirror.example.org/debian"
    one_line = "deb [signed-by=/k.gpg] http://one.example.org/debian/ trixie main\n"
    assert image.debian_mirror({"sources.list": one_line}) == "http://one.example.org/debian"

    # And with no Debian archive configured, the error says how to name one
    with pytest.raises(image.ImageError, match="DEBIAN_MIRROR"):
        image.debian_mirror({"x": "deb https://packages.example.com/apt stable main\n"})


def test_debian_mirror_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBIAN_MIRROR", "http://local.example/debian/")

    assert image.debian_mirror({"b": DEB822}) == "http://local.example/debian"


def test_the_stand_in_carries_the_name_sam_looks_for() -> None:
    assert image.image_name("x86_64") == "public.ecr.aws/lambda/python:3.13-x86_64"
    assert image.image_name("arm64") == "public.ecr.aws/lambda/python:3.13-arm64"
    assert image.lambda_arch("amd64") == "x86_64"
    assert image.lambda_arch("aarch64") == "arm64"
    with pytest.raises(image.ImageError):
        image.lambda_arch("riscv64")
    # The bootstrap starts the runtime interface client with the handler, layers on sys.path
    assert "-m awslambdaric" in image.BOOTSTRAP
    assert "/opt/python" in image.BOOTSTRAP


def test_the_root_file_system_is_the_essential_set_plus_python_for_the_lambda_architecture(
    tmp_path: Path,
) -> None:
    # When the arm64 stand-in's root file system is asked for
    cmd = image.mmdebstrap_command("arm64", tmp_path / "rootfs", "http://m.example/debian", tmp_path / "debs")

    # Then mmdebstrap builds Debian's essential set (sh, coreutils: what SAM's derived image runs)
    # with python3.13, the CA bundle and the C++ runtime awslambdaric's client needs, for Debian's
    # name of the architecture
    assert cmd[0] == "mmdebstrap"
    assert "--variant=essential" in cmd
    assert "--architectures=arm64" in cmd
    assert "--include=python3.13,ca-certificates,libstdc++6" in cmd
    assert cmd[-3:] == ["trixie", str(tmp_path / "rootfs"), "http://m.example/debian"]
    # And dpkg leaves out the docs (not the licences), and the .debs are kept for the next build
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in cmd
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in cmd
    assert f"--setup-hook=sync-in {tmp_path / 'debs'} /var/cache/apt/archives" in cmd
    assert f"--customize-hook=sync-out /var/cache/apt/archives {tmp_path / 'debs'}" in cmd
    assert "--architectures=amd64" in image.mmdebstrap_command(
        "x86_64", tmp_path, "http://m/debian", tmp_path
    )


def test_the_foreign_stand_in_says_which_architecture_it_holds() -> None:
    # When the arm64 stand-in's image config is written (docker load, not docker import)
    config = image.image_config("arm64", "sha256:" + "0" * 64)

    # Then Docker sees an arm64 image with the real image's entry point, workdir and env
    assert config["architecture"] == "arm64"
    assert config["os"] == "linux"
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}
    settings: Any = config["config"]
    assert settings["Entrypoint"] == ["/lambda-entrypoint.sh"]
    assert settings["WorkingDir"] == "/var/task"
    assert "LAMBDA_TASK_ROOT=/var/task" in settings["Env"]
    assert image.STAND_IN_LABEL in settings["Labels"]


def _binfmt(root: Path, flags: str | None, state: str = "enabled") -> Path:
    (root / "status").write_text("enabled\n")
    if flags is not None:
        (root / "qemu-aarch64").write_text(
            f"{state}\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n"
        )
    return root


def test_a_foreign_architecture_needs_qemu_registered_with_the_fix_binary_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image.platform, "machine", lambda: "x86_64")

    # The host's own architecture needs nothing
    assert image.emulation_problem("x86_64", tmp_path / "absent") is None
    # binfmt_misc not mounted, qemu not registered, disabled, or without F: each says why
    assert "not mounted" in str(image.emulation_problem("arm64", tmp_path / "absent"))
    assert "qemu-user-static" in str(image.emulation_problem("arm64", _binfmt(tmp_path, None)))
    assert "disabled" in str(image.emulation_problem("arm64", _binfmt(tmp_path, "PF", "disabled")))
    assert "lacks the F flag" in str(image.emulation_problem("arm64", _binfmt(tmp_path, "P")))
    # Registered with F (Debian's qemu-user-static): containers can run arm64 binaries
    assert image.emulation_problem("arm64", _binfmt(tmp_path, "PF")) is None


def _expected(**answer: Any) -> sample_expectations.Expected:
    return sample_expectations.Expected(
        event="x.json",
        function="ActionFunction",
        description="d",
        answer=sample_expectations.ExpectedAnswer(**answer),
        effects=sample_expectations.ExpectedEffects(table_changed=True, queued=0),
    )


def _twiml_response(body: str, status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "text/xml"}, "body": body}


def test_an_answer_matching_its_expected_file_has_no_differences() -> None:
    expected = _expected(status=200, twiml=["Say", "Dial/Number"], body_contains=["sorry"])
    body = (
        '<?xml version="1.0"?><Response><Say>sorry</Say><Dial><Number>+15550100100</Number></Dial></Response>'
    )

    assert sample_expectations.differences(expected, _twiml_response(body), changed=True, queued=0) == []


def test_every_kind_of_difference_is_reported() -> None:
    expected = _expected(status=200, twiml=["Say", "Dial/Number"], body_contains=["sorry"])

    # When the answer is a Hangup with another status, no table change and a queued message
    got = sample_expectations.differences(
        expected, _twiml_response("<Response><Hangup/></Response>", status=500), changed=False, queued=1
    )

    # Then each difference is named
    assert got == [
        "status 500, expected 200",
        "TwiML <Hangup>, expected <Say Dial/Number>",
        "body lacks 'sorry'",
        "EventsTable unchanged",
        "1 message(s) queued, expected 0",
    ]
    # And a text answer where TwiML was promised is not TwiML
    text = {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hello"}
    problems = sample_expectations.differences(expected, text, changed=True, queued=0)
    assert "Content-Type text/plain, expected text/xml" in problems
    assert any(problem.startswith("body is not TwiML") for problem in problems)


def test_every_sample_case_has_a_promise_and_no_promise_is_orphaned() -> None:
    from voicedev.sample_events import CASES

    assert {case.name for case in CASES} == set(sample_expectations.PROMISES)


def test_the_table_shows_expected_and_got_and_lists_failures() -> None:
    rows = [
        Row("event", "fallback", "200 <Say Hangup>", "200 <Say Hangup>"),
        Row("event", "action-relay-failed", "200 <Say Dial/Number>", "200 <Hangup>", ["TwiML <Hangup>"]),
    ]

    table = render(rows)

    assert "event or scenario" in table
    assert "FAIL action-relay-failed: TwiML <Hangup>" in table
    assert table.endswith("1 of 2 as expected")


@pytest.fixture
def fresh_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    reset_handler_caches()


@pytest.mark.usefixtures("fresh_session")
def test_clients_refuse_a_non_local_endpoint_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given AWS_ENDPOINT_URL naming a public host (a LocalAwsEndpoint that slipped into a stack)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://203.0.113.7:5005")

    # When a function builds its first client, Then it refuses, naming the setting
    with pytest.raises(endpoint_guard.EndpointNotAllowed, match="AWS_ENDPOINT_URL"):
        aws_clients.sqs()


@pytest.mark.usefixtures("fresh_session")
def test_clients_accept_a_bridge_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://172.31.250.1:5005")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    assert aws_clients.sqs().meta.endpoint_url == "http://172.31.250.1:5005"


def test_the_build_container_gets_the_wheels_from_this_host_only(tmp_path: Path) -> None:
    from voicedev.sam_local import build_container

    # When `make build SAM_BUILD_FLAGS="--use-container --debug"` asks for the arm64 build
    cmd = build_container.sam_build_command(
        "arm64", "http://172.31.250.1:4000/", "172.31.250.1", ["--use-container", "--debug"], tmp_path / "sam"
    )

    # Then SAM builds in the image it names for arm64 (samcli LambdaBuildContainer), never pulled
    assert build_container.build_image_name("arm64") == "public.ecr.aws/sam/build-python3.13:latest-arm64"
    assert cmd[:2] == [str(tmp_path / "sam"), "build"]
    assert cmd.count("--use-container") == 1
    assert "--skip-pull-image" in cmd
    assert cmd[cmd.index("--build-image") + 1] == "public.ecr.aws/sam/build-python3.13:latest-arm64"
    # And pip in the container uses the served wheelhouse and no index
    env_vars = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--container-env-var"]
    assert env_vars == [
        "PIP_NO_INDEX=1",
        "PIP_FIND_LINKS=http://172.31.250.1:4000/",
        "PIP_TRUSTED_HOST=172.31.250.1",
    ]
    assert cmd[cmd.index("--parameter-overrides") + 1] == "Architecture=arm64"
    assert cmd[-1] == "--debug"


def test_lambda_builders_in_the_build_image_matches_the_pinned_sam_cli(tmp_path: Path) -> None:
    from voicedev.sam_local import build_container

    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "aws_lambda_builders-1.67.0.dist-info").mkdir(parents=True)
    (tmp_path / "bin").mkdir()

    assert build_container.lambda_builders_version(tmp_path / "bin" / "sam") == "1.67.0"
    with pytest.raises(image.ImageError, match="make sam-cli"):
        build_container.lambda_builders_version(tmp_path / "nowhere" / "bin" / "sam")


def test_under_emulation_only_the_built_templates_function_timeouts_grow() -> None:
    from voicedev.sam_local.run import emulated_timeouts

    built = (
        "Globals:\n  Function:\n    Timeout: 10\n"
        "Resources:\n  Q:\n    Properties:\n      VisibilityTimeout: 360\n"
    )

    # When the arm64 run on an x86_64 host adapts the built template
    adapted = emulated_timeouts(built)

    # Then functions get ten times their Timeout, and nothing else changes
    assert "    Timeout: 100\n" in adapted
    assert "VisibilityTimeout: 360" in adapted
    assert adapted.replace("Timeout: 100", "Timeout: 10") == built
