"""`make build SAM_BUILD_FLAGS=--use-container`: `sam build` in a build container, offline too.

`sam build --use-container` runs `lambda-builders <request>` in `public.ecr.aws/sam/build-<runtime>:
latest-<arch>` (samcli/local/docker/lambda_build_container.py): it needs that executable, the
runtime's python with pip, and an index pip can reach from inside the container. Here:

1. Docker: the reachable daemon, else the private dockerd of `make sam-local` (stopped at the end).
2. The build image: the real one when it can be pulled, else a stand-in: the runtime stand-in
   (voicedev.sam_local.image) plus pip, setuptools, wheel and aws-lambda-builders at the version
   the pinned SAM CLI ships (the request's protocol must match), tagged with the real name.
3. The wheels: this host's pip (its own index configuration) downloads the layer's pinned
   requirements for python3.13 and the target architecture into .aws-sam/wheelhouse-<arch>, served
   on the Docker bridge address only; pip in the container uses nothing else (PIP_NO_INDEX), so a
   container without internet access (the private daemon's) builds the same layer.
4. `sam build --use-container --skip-pull-image` with those, into .aws-sam/build as `make build`.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from voicedev.sam_local.docker_daemon import Docker, DockerError, ensure_docker
from voicedev.sam_local.image import (
    PYTHON_VERSION,
    STAND_IN_LABEL,
    ImageError,
    _pip_platforms,
    _pip_target,
    ensure_image,
    image_name,
    lambda_arch,
)
from voicedev.template_resources import PROJECT_ROOT

SAM = Path(os.environ.get("SAM", PROJECT_ROOT / ".tools" / "sam" / "bin" / "sam"))
REQUIREMENTS = PROJECT_ROOT / "layers" / "common" / "requirements.txt"
# Where Debian's python3.13 looks for packages nobody installed with apt.
SITE = f"/usr/local/lib/python{PYTHON_VERSION}/dist-packages"
LAMBDA_BUILDERS = f"""#!/usr/bin/python{PYTHON_VERSION}
import sys
from aws_lambda_builders.__main__ import main
sys.exit(main())
"""


def build_image_name(arch: str) -> str:
    """The image SAM runs `lambda-builders` in (LambdaBuildContainer._get_image)."""
    return f"public.ecr.aws/sam/build-python{PYTHON_VERSION}:latest-{arch}"


def lambda_builders_version(sam: Path = SAM) -> str:
    """aws-lambda-builders as bundled with the pinned SAM CLI: its protocol is what SAM speaks."""
    found = sorted((sam.parent.parent / "lib").glob("python*/site-packages/aws_lambda_builders-*.dist-info"))
    if not found:
        raise ImageError(f"no aws_lambda_builders next to {sam}: run `make sam-cli`")
    return found[-1].name.removeprefix("aws_lambda_builders-").removesuffix(".dist-info")


def build_stand_in_build_image(docker: Docker, arch: str, builders: str) -> None:
    base = image_name(arch)
    with tempfile.TemporaryDirectory(prefix="voice-build-image-") as tmp:
        context = Path(tmp)
        packages = ["pip", "setuptools", "wheel", f"aws-lambda-builders=={builders}"]
        _pip_target(arch, context / "site", packages)
        (context / "lambda-builders").write_text(LAMBDA_BUILDERS, encoding="utf-8")
        (context / "lambda-builders").chmod(0o755)
        (context / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"COPY site/ {SITE}/\n"
            "COPY lambda-builders /usr/local/bin/lambda-builders\n"
            f"LABEL {STAND_IN_LABEL}=build-debian-python{PYTHON_VERSION}-lambda-builders-{builders}\n",
            encoding="utf-8",
        )
        cmd = [*docker.cli(), "build", "--quiet", "--tag", build_image_name(arch), str(context)]
        print(f"  $ {' '.join(cmd)}", flush=True)
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ImageError(f"docker build of the build image failed: {result.stderr.strip()[-500:]}")


def ensure_build_image(docker: Docker, arch: str, *, rebuild: bool = False, try_pull: bool = True) -> str:
    name = build_image_name(arch)
    if not rebuild and docker.image_exists(name):
        kind = "stand-in" if docker.image_label(name, STAND_IN_LABEL) else "real"
        return f"{name} ({kind}, cached)"
    if try_pull and not rebuild and docker.pull(name):
        return f"{name} (real, pulled)"
    print(f"{name} cannot be pulled here: building the documented stand-in", flush=True)
    ensure_image(docker, arch, rebuild=rebuild, try_pull=False)
    build_stand_in_build_image(docker, arch, lambda_builders_version())
    return f"{name} (stand-in, built)"


def download_wheels(arch: str, wheelhouse: Path) -> None:
    """The layer's pinned requirements as wheels for the Lambda python and `arch`."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in _pip_platforms(arch) for arg in ("--platform", p)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(wheelhouse),
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        *platforms,
        # The build also installs these into a virtual environment of its own.
        "-r",
        str(REQUIREMENTS),
        "pip",
        "setuptools",
        "wheel",
    ]
    print(f"  $ pip download -r {REQUIREMENTS.relative_to(PROJECT_ROOT)} -> {wheelhouse}", flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise ImageError("pip download of the layer's wheels failed")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(directory: Path, host: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sam_build_command(
    arch: str, index_url: str, index_host: str, extra: Sequence[str], sam: Path = SAM
) -> list[str]:
    pip_env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": index_url, "PIP_TRUSTED_HOST": index_host}
    return [
        str(sam),
        "build",
        "--template",
        "template.yaml",
        "--use-container",
        "--skip-pull-image",
        "--build-image",
        build_image_name(arch),
        *[arg for name, value in pip_env.items() for arg in ("--container-env-var", f"{name}={value}")],
        "--parameter-overrides",
        f"Architecture={arch}",
        *[arg for arg in extra if arg != "--use-container"],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make build SAM_BUILD_FLAGS=--use-container", description=__doc__)
    parser.add_argument("--arch", default=lambda_arch(), choices=("x86_64", "arm64"))
    parser.add_argument("--rebuild-image", action="store_true")
    parser.add_argument("--no-pull", action="store_true")
    args, extra = parser.parse_known_args(argv)
    docker: Docker | None = None
    server: http.server.ThreadingHTTPServer | None = None
    try:
        docker = ensure_docker()
        pull = not args.no_pull
        obtained = ensure_build_image(docker, args.arch, rebuild=args.rebuild_image, try_pull=pull)
        print(f"build image: {obtained}", flush=True)
        wheelhouse = PROJECT_ROOT / ".aws-sam" / f"wheelhouse-{args.arch}"
        download_wheels(args.arch, wheelhouse)
        gateway = docker.bridge_gateway()
        # Bound to the bridge address only: the build containers reach it, nothing beyond this host.
        server = serve(wheelhouse, gateway)
        url = f"http://{gateway}:{server.server_address[1]}/"
        cmd = sam_build_command(args.arch, url, gateway, extra)
        print(f"$ {' '.join(cmd)}", flush=True)
        env = {**docker.env(), "SAM_CLI_TELEMETRY": "0"}
        return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, check=False).returncode
    except (DockerError, ImageError) as exc:
        print(f"make build (container): {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.shutdown()
        if docker is not None:
            docker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
