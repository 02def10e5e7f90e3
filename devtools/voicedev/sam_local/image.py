"""The Lambda base image `sam local` runs the functions in.

Where the real `public.ecr.aws/lambda/python:3.13-<arch>` can be pulled, it is used. Otherwise (no
container registry, as on the CI machines) a stand-in is built offline from Debian packages and
PyPI only, and tagged with the real image's name so that `sam local ... --skip-pull-image` uses it:

- a Debian trixie root file system (`mmdebstrap` from the Debian mirror this machine's apt uses),
  with Debian's python3.13 (the Lambda runtime's version), linked at /var/lang/bin/python3.13;
- `awslambdaric` (the Lambda runtime interface client AWS ships in its images) in /var/runtime;
- an AWS-style /var/runtime/bootstrap (what the emulator starts) and /lambda-entrypoint.sh.

SAM adds the Runtime Interface Emulator it bundles (samcli/local/rapid/) and the layers on top, as
it does on the real image. The stand-in is not Amazon Linux: what it proves is the template, the
handlers, the layer and SAM's own event building; docs/sam-local.md says what it does not prove.
It is built once and kept (the tag is the cache); `--rebuild-image` builds it again."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
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

DEB_ARCHES: Mapping[str, str] = {"x86_64": "amd64", "arm64": "arm64"}
# What the runtime needs beyond Debian's essential set: python3.13 (with its full stdlib), the CA
# bundle, and the C++ runtime awslambdaric's native client links against (without it awslambdaric
# falls back to no client at all and every invoke fails with "'NoneType' object has no attribute
# 'next'").
PACKAGES = (f"python{PYTHON_VERSION}", "ca-certificates", "libstdc++6")
# dpkg never writes these (licences stay): nobody reads them in a function.
DPKG_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)
# The .debs of the last build, per Debian architecture: a rebuild downloads only what changed.
CACHE_ROOT = Path(os.environ.get("VOICE_IMAGE_CACHE", "/var/cache/voice-lambda-image"))
BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")

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


def _run_timed(cmd: list[str]) -> None:
    """Run `cmd`, printing its `I:`/`W:`/`E:` lines with the seconds since it started, so that a CI
    log shows where the time goes (apt-get update, download, extract, install)."""
    print(f"  $ {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    last: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        last = [*last[-9:], line]
        if line[:2] in ("I:", "W:", "E:"):
            print(f"    [{time.monotonic() - started:5.1f} s] {line}", flush=True)
    if process.wait() != 0:
        raise ImageError(f"{cmd[0]} failed (exit {process.returncode}):\n    " + "\n    ".join(last))


def _pip_platforms(arch: str) -> list[str]:
    machine = "x86_64" if arch == "x86_64" else "aarch64"
    return [f"manylinux2014_{machine}", f"manylinux_2_17_{machine}", f"manylinux_2_28_{machine}"]


def deb_arch(arch: str) -> str:
    return DEB_ARCHES[arch]


def emulation_problem(arch: str, binfmt: Path = BINFMT_MISC) -> str | None:
    """Why this host cannot run `arch` binaries (None when it can: its own architecture, or
    qemu-user registered with binfmt_misc and the F flag, which containers need because the
    interpreter is opened when it is registered, not looked up inside the container)."""
    if arch == lambda_arch():
        return None
    qemu = f"qemu-{'aarch64' if arch == 'arm64' else 'x86_64'}"
    entry = binfmt / qemu
    if not (binfmt / "status").exists():
        return (
            f"binfmt_misc is not mounted at {binfmt} (mount -t binfmt_misc binfmt_misc {binfmt}; "
            "a container without CAP_SYS_ADMIN cannot)"
        )
    if not entry.exists():
        return f"no {qemu} in {binfmt} (apt-get install -y qemu-user-static binfmt-support)"
    text = entry.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("enabled"):
        return f"{entry} is disabled"
    flags = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), ""
    )
    if "F" not in flags:
        return f"{entry} lacks the F flag (containers cannot reach its interpreter): flags {flags or 'none'}"
    return None


def mmdebstrap_command(arch: str, rootfs: Path, mirror: str, cache: Path) -> list[str]:
    """The root file system: Debian's essential set (a shell, coreutils, dpkg: what SAM's derived
    image runs, `mv`/`chmod`/`cp`) plus python3.13 and ca-certificates. mmdebstrap rather than
    debootstrap (half the time here, docs/sam-local.md): apt downloads in one pipelined stream
    instead of one request per package, dpkg skips fsync and the docs, man pages and locales, and
    the .debs are kept in `cache` for the next build."""
    return [
        "mmdebstrap",
        "--variant=essential",
        f"--architectures={deb_arch(arch)}",
        f"--include={','.join(PACKAGES)}",
        *[f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES],
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=force-unsafe-io",
        '--aptopt=Acquire::Languages "none"',
        # The downloaded .debs outlive the build (apt checks them against the index before use).
        "--skip=download/empty",
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives",
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        DEBIAN_SUITE,
        str(rootfs),
        mirror,
    ]


def build_stand_in(docker: Docker, arch: str, workdir: Path | None = None) -> None:
    """Build the stand-in image for `arch` and tag it: the host's own architecture natively, the
    other one through qemu-user (binfmt_misc) when this host has it registered."""
    problem = emulation_problem(arch)
    if problem:
        raise ImageError(f"this host cannot run {arch} binaries: {problem}")
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed (apt-get install -y mmdebstrap)")
    mirror = debian_mirror()
    cache = CACHE_ROOT / deb_arch(arch)
    cache.mkdir(parents=True, exist_ok=True)
    timings: list[str] = []
    started = mark = time.monotonic()

    def timed(name: str) -> None:
        nonlocal mark
        timings.append(f"{name} {time.monotonic() - mark:.0f} s")
        mark = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="voice-lambda-image-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"building the stand-in {image_name(arch)} from {mirror} ({DEBIAN_SUITE}) and PyPI", flush=True)
        _run_timed(mmdebstrap_command(arch, rootfs, mirror, cache))
        timed("mmdebstrap")
        add_runtime(rootfs, arch)
        timed("pip")
        import_rootfs(docker, rootfs, arch)
        timed("docker import")
    print(f"stand-in built in {time.monotonic() - started:.0f} s ({', '.join(timings)})", flush=True)


def add_runtime(rootfs: Path, arch: str) -> None:
    """What makes a Debian root file system the Lambda runtime's: awslambdaric, the bootstrap,
    the entry point and the paths the real image has."""
    runtime = rootfs / "var" / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    _pip_target(arch, runtime, [AWSLAMBDARIC])
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


def import_rootfs(docker: Docker, rootfs: Path, arch: str) -> None:
    changes = [f"ENV {name}={value}" for name, value in IMAGE_ENV.items()]
    changes += [
        "WORKDIR /var/task",
        'ENTRYPOINT ["/lambda-entrypoint.sh"]',
        f"LABEL {STAND_IN_LABEL}=debian-{DEBIAN_SUITE}-python{PYTHON_VERSION}",
    ]
    if arch == lambda_arch():
        _import(docker, rootfs, arch, changes, image_name(arch))
    else:
        # `docker import --platform` is ignored by Debian's docker 20.10 (the image says amd64, and
        # SAM's `docker build --platform linux/arm64` on it then fails): an image archive whose
        # config names the architecture, loaded with `docker load`, says what it holds.
        _load(docker, rootfs, arch, image_name(arch))


def image_config(arch: str, diff_id: str) -> dict[str, object]:
    """The image config (OCI/Docker image spec) of the stand-in: the real image's ENV, WORKDIR and
    ENTRYPOINT, the stand-in label, and the architecture in Docker's (Debian's) naming."""
    return {
        "architecture": deb_arch(arch),
        "os": "linux",
        "config": {
            "Env": [f"{name}={value}" for name, value in IMAGE_ENV.items()],
            "WorkingDir": "/var/task",
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Labels": {STAND_IN_LABEL: f"debian-{DEBIAN_SUITE}-python{PYTHON_VERSION}"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }


def _load(docker: Docker, rootfs: Path, arch: str, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="voice-lambda-archive-", dir=rootfs.parent) as tmp:
        archive = Path(tmp)
        layer = archive / "layer.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(layer), "."])
        digest = hashlib.sha256()
        with layer.open("rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
        config = json.dumps(image_config(arch, f"sha256:{digest.hexdigest()}")).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        (archive / config_name).write_bytes(config)
        manifest = [{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]
        (archive / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        tar = subprocess.Popen(["tar", "-C", str(archive), "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            _run([*docker.cli(), "load", "--quiet"], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()


def _pip_target(arch: str, target: Path, requirements: Sequence[str]) -> None:
    """Wheels for the Lambda python and `arch` (never built here), installed into `target`."""
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
            str(target),
            "--python-version",
            PYTHON_VERSION,
            "--only-binary=:all:",
            *platforms,
            *requirements,
        ]
    )


def _import(docker: Docker, rootfs: Path, arch: str, changes: Sequence[str], name: str) -> None:
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
                f"linux/{deb_arch(arch)}",
                *change_args,
                "-",
                name,
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
