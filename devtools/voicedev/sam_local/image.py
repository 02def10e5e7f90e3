"""The Lambda base image `sam local` runs the functions in.

Where the real `public.ecr.aws/lambda/python:3.13-<arch>` can be pulled, it is used. Otherwise (no
container registry, as on the CI machines) a stand-in is built offline from Debian packages and
PyPI only, and tagged with the real image's name so that `sam local ... --skip-pull-image` uses it:

- a Debian trixie root file system (`debootstrap` from the Debian mirror this machine's apt uses),
  with Debian's python3.13 (the Lambda runtime's version), linked at /var/lang/bin/python3.13;
- `awslambdaric` (the Lambda runtime interface client AWS ships in its images) in /var/runtime;
- an AWS-style /var/runtime/bootstrap (what the emulator starts) and /lambda-entrypoint.sh.

SAM adds the Runtime Interface Emulator it bundles (samcli/local/rapid/) and the layers on top, as
it does on the real image. The stand-in is not Amazon Linux: what it proves is the template, the
handlers, the layer and SAM's own event building; docs/sam-local.md says what it does not prove.
It is built once and kept (the tag is the cache); `--rebuild-image` builds it again."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from voicedev.sam_local.docker_daemon import Docker

PYTHON_VERSION = "3.13"
DEBIAN_SUITE = "trixie"  # its python3 is 3.13
AWSLAMBDARIC = "awslambdaric==4.2.2"
STAND_IN_LABEL = "org.twilio-voice-webhooks.stand-in"
# Mirrors what the real images set (their Dockerfiles' ENV and WORKDIR).
IMAGE_ENV: Mapping[str, str] = {
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin",
    "LD_LIBRARY_PATH": ":".join(("/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib"))
    + ":/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}

# The emulator (RIE) runs this with _HANDLER set. The sys.path order is the managed runtime's:
# the function, then the layers (/opt/python...), then the runtime's own packages.
BOOTSTRAP = f"""#!/bin/sh
# Stand-in for the AWS Lambda python{PYTHON_VERSION} runtime bootstrap (devtools/voicedev/sam_local/image.py).
export AWS_EXECUTION_ENV=AWS_Lambda_python{PYTHON_VERSION}
LAYERS="/opt/python/lib/python{PYTHON_VERSION}/site-packages:/opt/python"
export PYTHONPATH="/var/task:$LAYERS:/var/runtime${{PYTHONPATH:+:$PYTHONPATH}}"
cd "${{LAMBDA_TASK_ROOT:-/var/task}}"
handler="${{_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}}"
if [ -n "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  exec "$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python{PYTHON_VERSION} -m awslambdaric "$handler"
fi
exec /var/lang/bin/python{PYTHON_VERSION} -m awslambdaric "$handler"
"""

# The real image's entry point: under the emulator when run outside Lambda, else the bootstrap.
ENTRYPOINT = """#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"""

# Trimmed from the root file system: documentation and caches nobody reads in a function.
_PRUNE = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
)


class ImageError(RuntimeError):
    pass


def lambda_arch(machine: str | None = None) -> str:
    """The Lambda architecture this host runs natively (x86_64 or arm64)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise ImageError(f"no Lambda architecture for this machine ({machine})")


def image_name(arch: str) -> str:
    """The base image name SAM looks for (samcli LambdaImage: public.ecr.aws/lambda/<runtime>-<arch>)."""
    return f"public.ecr.aws/lambda/python:{PYTHON_VERSION}-{arch}"


_URI_LINE = re.compile(r"^\s*(?:URIs:\s*(?P<uris>.+)|deb\s+(?:\[[^]]*\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+))")


def debian_mirror(sources: Mapping[str, str] | None = None) -> str:
    """The Debian archive URL apt is configured with on this machine (not the security archive),
    from /etc/apt/sources.list and /etc/apt/sources.list.d/*; DEBIAN_MIRROR overrides it."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"].rstrip("/")
    if sources is None:
        paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
        sources = {str(p): p.read_text(encoding="utf-8", errors="replace") for p in paths if p.is_file()}
    for text in sources.values():
        for line in text.splitlines():
            match = _URI_LINE.match(line)
            if not match:
                continue
            for uri in (match.group("uris") or match.group("uri") or "").split():
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    raise ImageError("no Debian archive in /etc/apt/sources.list*: set DEBIAN_MIRROR=http://<mirror>/debian")


def _run(cmd: list[str], **kwargs: object) -> None:
    print(f"  $ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise ImageError(f"{cmd[0]} failed (exit {result.returncode})")


def _pip_platforms(arch: str) -> list[str]:
    machine = "x86_64" if arch == "x86_64" else "aarch64"
    return [f"manylinux2014_{machine}", f"manylinux_2_17_{machine}", f"manylinux_2_28_{machine}"]


def build_stand_in(docker: Docker, arch: str, workdir: Path | None = None) -> None:
    """Build the stand-in image for `arch` (the host's own: nothing is emulated) and tag it."""
    if arch != lambda_arch():
        raise ImageError(
            f"the stand-in image is built for this host's architecture ({lambda_arch()}), not {arch}"
        )
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install -y debootstrap)")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="voice-lambda-image-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"building the stand-in {image_name(arch)} from {mirror} ({DEBIAN_SUITE}) and PyPI", flush=True)
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include=python{PYTHON_VERSION},ca-certificates",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            stdout=subprocess.DEVNULL,
        )
        runtime = rootfs / "var" / "runtime"
        runtime.mkdir(parents=True, exist_ok=True)
        platforms = [arg for p in _pip_platforms(arch) for arg in ("--platform", p)]
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(runtime),
                "--python-version",
                PYTHON_VERSION,
                "--only-binary=:all:",
                *platforms,
                AWSLAMBDARIC,
            ]
        )
        (runtime / "bootstrap").write_text(BOOTSTRAP, encoding="utf-8")
        (runtime / "bootstrap").chmod(0o755)
        (rootfs / "lambda-entrypoint.sh").write_text(ENTRYPOINT, encoding="utf-8")
        (rootfs / "lambda-entrypoint.sh").chmod(0o755)
        lang_bin = rootfs / "var" / "lang" / "bin"
        lang_bin.mkdir(parents=True, exist_ok=True)
        for name in (f"python{PYTHON_VERSION}", "python3", "python"):
            (lang_bin / name).symlink_to(f"/usr/bin/python{PYTHON_VERSION}")
        for directory in ("var/task", "opt"):
            (rootfs / directory).mkdir(parents=True, exist_ok=True)
        for relative in _PRUNE:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
        changes = [f"ENV {name}={value}" for name, value in IMAGE_ENV.items()]
        changes += [
            "WORKDIR /var/task",
            'ENTRYPOINT ["/lambda-entrypoint.sh"]',
            f"LABEL {STAND_IN_LABEL}=debian-{DEBIAN_SUITE}-python{PYTHON_VERSION}",
        ]
        change_args = [arg for change in changes for arg in ("--change", change)]
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE
        )
        try:
            _run(
                [
                    *docker.cli(),
                    "import",
                    "--platform",
                    f"linux/{'amd64' if arch == 'x86_64' else 'arm64'}",
                    *change_args,
                    "-",
                    image_name(arch),
                ],
                stdin=tar.stdout,
                stdout=subprocess.DEVNULL,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            raise ImageError(f"tar of the root file system failed (exit {tar.returncode})")


def ensure_image(docker: Docker, arch: str, *, rebuild: bool = False, try_pull: bool = True) -> str:
    """Make `image_name(arch)` present: the cached one, else the real one pulled, else the stand-in
    built. Returns how it was obtained (for the report)."""
    name = image_name(arch)
    if not rebuild and docker.image_exists(name):
        kind = "stand-in" if docker.image_label(name, STAND_IN_LABEL) else "real"
        return f"{name} ({kind}, cached)"
    if try_pull and not rebuild:
        print(f"pulling {name} ...", flush=True)
        if docker.pull(name):
            return f"{name} (real, pulled)"
        print(f"{name} cannot be pulled here: building the documented stand-in", flush=True)
    build_stand_in(docker, arch)
    return f"{name} (stand-in, built)"
