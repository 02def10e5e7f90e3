"""Package size: the built layer and each function, zipped (deflate, as `sam package` uploads them)
and unzipped (what counts against Lambda's 250 MB limit), and what the layer's bundled AWS SDK
weighs (the python3.13 runtime provides boto3 too).

The build is `.aws-sam/build` when it is fresh (every function of the template built, and the
built copies of our sources and of layers/common/requirements.txt identical to the working
tree's); otherwise `make build` runs first."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from voicedev.bench.report import Section, Table
from voicedev.bench.stats import format_bytes
from voicedev.template_resources import PROJECT_ROOT, load_template, resources_of_type

BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
LAYER = "CommonLayer"
REQUIREMENTS = PROJECT_ROOT / "layers" / "common" / "requirements.txt"
# What the Lambda python3.13 runtime provides itself (boto3 and its own dependencies).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Markers evaluated for the layer's platform: the runtime's Python on Linux arm64.
MARKER_ENVIRONMENT = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


class SizeError(RuntimeError):
    pass


@dataclass
class Artifact:
    name: str
    files: int = 0
    unzipped: int = 0
    zipped: int = 0
    by_file: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(unzipped, zipped) bytes of each file, by path relative to the artifact's root."""


def measure(root: Path, name: str) -> Artifact:
    """Zip `root` in memory, as a deployment package; every file's sizes."""
    artifact = Artifact(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            archive.write(path, relative)
            info = archive.getinfo(relative)
            artifact.by_file[relative] = (info.file_size, info.compress_size)
            artifact.files += 1
            artifact.unzipped += info.file_size
    artifact.zipped = len(buffer.getvalue())
    return artifact


# --- distributions in the layer ------------------------------------------------------------------


@dataclass
class Distribution:
    name: str
    version: str
    requires: list[Requirement]
    files: set[str]


def _metadata(text: str) -> tuple[str, str, list[Requirement]]:
    name = version = ""
    requires = []
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
        elif key == "Requires-Dist":
            requires.append(Requirement(value.strip()))
    return name, version, requires


def distributions(site: Path) -> dict[str, Distribution]:
    """Every `*.dist-info` under `site`, with the files its RECORD lists (relative to `site`)."""
    found: dict[str, Distribution] = {}
    for info in sorted(site.glob("*.dist-info")):
        name, version, requires = _metadata((info / "METADATA").read_text(encoding="utf-8", errors="replace"))
        files = set()
        record = info / "RECORD"
        if record.exists():
            for line in record.read_text(encoding="utf-8").splitlines():
                path = line.split(",", 1)[0]
                if path and not path.startswith(".."):
                    files.add(os.path.normpath(path).replace(os.sep, "/"))
        files.update(p.relative_to(site).as_posix() for p in info.rglob("*") if p.is_file())
        found[canonicalize_name(name)] = Distribution(name, version, requires, files)
    return found


def closure(roots: Iterable[Requirement], dists: Mapping[str, Distribution]) -> set[str]:
    """The distributions `roots` need, following Requires-Dist with the extras asked for."""
    needed: set[str] = set()
    pending: list[tuple[Requirement, str]] = [(root, "") for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(
            {**MARKER_ENVIRONMENT, "extra": extra}
        ):
            continue
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen or name not in dists:
            continue
        seen.add(key)
        needed.add(name)
        for child in dists[name].requires:
            for wanted in ("", *sorted(requirement.extras)):
                pending.append((child, wanted))
    return needed


def read_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [Requirement(line) for line in lines if line]


def share(artifact: Artifact, files: Iterable[str], prefix: str = "python/") -> tuple[int, int]:
    """(unzipped, zipped) bytes of these files inside the artifact."""
    unzipped = zipped = 0
    for relative in files:
        file_unzipped, file_zipped = artifact.by_file.get(prefix + relative, (0, 0))
        unzipped += file_unzipped
        zipped += file_zipped
    return unzipped, zipped


# --- the build --------------------------------------------------------------------------------------


def _function_dirs(template: Mapping[str, Any]) -> dict[str, Path]:
    functions = resources_of_type("AWS::Serverless::Function", dict(template))
    return {name: PROJECT_ROOT / props["CodeUri"] for name, props in functions.items()}


def stale_reasons(template: Mapping[str, Any] | None = None, build: Path = BUILD_DIR) -> list[str]:
    """Why `build` does not hold what the working tree would build (empty: it is fresh)."""
    template = template or load_template()
    reasons = []
    layer_python = build / LAYER / "python"
    if not layer_python.is_dir():
        shown = build.relative_to(PROJECT_ROOT) if build.is_relative_to(PROJECT_ROOT) else build
        return [f"{shown} has no {LAYER}"]
    sources = [
        (path, layer_python / path.relative_to(PROJECT_ROOT / "layers" / "common"))
        for path in sorted((PROJECT_ROOT / "layers" / "common").rglob("*.py"))
    ]
    if (build / LAYER / "python" / "requirements.txt").exists():
        sources.append((REQUIREMENTS, layer_python / "requirements.txt"))
    for name, code in _function_dirs(template).items():
        if not (build / name).is_dir():
            reasons.append(f"{name} is not built")
            continue
        sources += [(path, build / name / path.relative_to(code)) for path in sorted(code.rglob("*.py"))]
    for source, built in sources:
        if "__pycache__" in source.parts:
            continue
        if not built.exists() or built.read_bytes() != source.read_bytes():
            reasons.append(f"{source.relative_to(PROJECT_ROOT)} changed since the build")
    return reasons


def ensure_build(progress: Any = print) -> str:
    """Returns how the build was obtained (for the report)."""
    reasons = stale_reasons()
    if not reasons:
        return "`.aws-sam/build` reused: every built source matches the working tree"
    progress(f"size: building ({reasons[0]}{' ...' if len(reasons) > 1 else ''})")
    command = ["make", "build"]  # the project's own target, with `make` from PATH as a developer runs it
    completed = subprocess.run(  # noqa: S603
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=1800
    )
    if completed.returncode != 0:
        tail = " | ".join((completed.stdout + completed.stderr).strip().splitlines()[-4:])
        raise SizeError(f"`make build` failed: {tail}")
    left = stale_reasons()
    if left:
        raise SizeError(f"the build is still stale after `make build`: {left[0]}")
    return f"built now with `make build` ({reasons[0]})"


# --- the section ------------------------------------------------------------------------------------


@dataclass
class SizeReport:
    how: str
    artifacts: list[Artifact]
    layer_python_dists: dict[str, Distribution]
    rows_by_dist: list[tuple[str, int, int]]
    sdk_only: tuple[int, int, list[str]]
    runtime_provided: tuple[int, int, list[str]]
    never_imported: tuple[int, int, list[str]] | None = None
    """Distributions no function imported in the cold-start runs (when those ran)."""
    unused_twilio_rest: tuple[int, int] | None = None


def top_level_names(dist: Distribution) -> set[str]:
    """The importable names a distribution installs (`pkg/...` or `module.py` at the top)."""
    names = set()
    for path in dist.files:
        first = path.split("/", 1)[0]
        if first.endswith((".dist-info", ".data")) or first == "__pycache__" or first.startswith(".."):
            continue
        if "/" in path or first.endswith((".py", ".so", ".pyd")):
            names.add(first.split(".", 1)[0] if "/" not in path else first)
    return names


def never_imported(report: SizeReport, imported: set[str]) -> tuple[int, int, list[str]]:
    """(unzipped, zipped, names) of the layer's distributions none of whose top-level names is in
    `imported` (top-level module names seen in the functions' processes)."""
    layer = report.artifacts[0]
    names = sorted(
        name for name, dist in report.layer_python_dists.items() if not (top_level_names(dist) & imported)
    )
    files: set[str] = set()
    for name in names:
        files |= report.layer_python_dists[name].files
    return (*share(layer, files), names)


def measure_build(
    how: str, template: Mapping[str, Any] | None = None, imported: set[str] | None = None
) -> SizeReport:
    template = template or load_template()
    layer = measure(BUILD_DIR / LAYER, LAYER)
    artifacts = [layer] + [measure(BUILD_DIR / name, name) for name in sorted(_function_dirs(template))]
    site = BUILD_DIR / LAYER / "python"
    dists = distributions(site)
    rows = []
    for dist in dists.values():
        unzipped, zipped = share(layer, dist.files)
        rows.append((f"{dist.name} {dist.version}", unzipped, zipped))
    rows.sort(key=lambda row: -row[1])
    requirements = read_requirements()
    everything = closure(requirements, dists)
    without_boto3 = closure([r for r in requirements if canonicalize_name(r.name) != "boto3"], dists)
    sdk_only = sorted(everything - without_boto3)
    runtime = sorted(name for name in everything if name in {canonicalize_name(n) for n in RUNTIME_PROVIDED})

    def total(names: list[str]) -> tuple[int, int]:
        files: set[str] = set()
        for name in names:
            files |= dists[name].files
        return share(layer, files)

    report = SizeReport(
        how=how,
        artifacts=artifacts,
        layer_python_dists=dists,
        rows_by_dist=rows,
        sdk_only=(*total(sdk_only), sdk_only),
        runtime_provided=(*total(runtime), runtime),
    )
    if imported:
        report.never_imported = never_imported(report, imported)
        if "twilio" in dists and "twilio.rest" not in imported:
            rest = {path for path in dists["twilio"].files if path.startswith("twilio/rest/")}
            report.unused_twilio_rest = share(layer, rest)
    return report


TRIM_REPORT = BUILD_DIR.parent / "layer-trim.json"


def _trim_note(path: Path = TRIM_REPORT) -> str | None:
    """What `make build`'s layer trim (voicedev.layer_trim) left out, when it wrote its report."""
    try:
        trim = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    left_out = ", ".join(
        f"{reason} {format_bytes(size)}" for reason, size in sorted(trim["by_reason"].items())
    )
    return (
        f"Trimmed by `make build` (devtools/voicedev/layer_trim.py, before `.pyc` compilation): "
        f"{trim['files_before']} -> {trim['files_after']} files, {format_bytes(trim['bytes_before'])} -> "
        f"{format_bytes(trim['bytes_after'])} unzipped; left out: {left_out}."
    )


def section(report: SizeReport, top: int = 12) -> Section:
    layer = report.artifacts[0]
    functions = report.artifacts[1:]
    artifacts = Table(
        ("artifact", "files", "unzipped", "zipped"),
        tuple(
            (
                artifact.name,
                str(artifact.files),
                format_bytes(artifact.unzipped),
                format_bytes(artifact.zipped),
            )
            for artifact in report.artifacts
        ),
    )
    heaviest = Table(
        ("in the layer", "unzipped", "zipped"),
        tuple(
            (name, format_bytes(unzipped), format_bytes(zipped))
            for name, unzipped, zipped in report.rows_by_dist[:top]
        ),
    )
    sdk_unzipped, sdk_zipped, sdk_names = report.sdk_only
    rt_unzipped, rt_zipped, rt_names = report.runtime_provided
    biggest_function = max((artifact.unzipped for artifact in functions), default=0)
    notes = [
        f"Build: {report.how}.",
        f"Layer + largest function unzipped: {format_bytes(layer.unzipped + biggest_function)} of Lambda's "
        f"{format_bytes(LAMBDA_UNZIPPED_LIMIT)} limit.",
        f"Dropping `boto3` from the layer's requirements removes only what nothing else needs "
        f"({', '.join(sdk_names) or 'nothing'}): {format_bytes(sdk_unzipped)} unzipped, "
        f"{format_bytes(sdk_zipped)} zipped; botocore stays, since aws-xray-sdk (Powertools' tracer "
        "extra) requires it.",
        f"Everything the python3.13 runtime already provides ({', '.join(rt_names)}): "
        f"{format_bytes(rt_unzipped)} unzipped, {format_bytes(rt_zipped)} zipped, if excluded from the layer "
        "altogether.",
    ]
    trimmed = _trim_note()
    if trimmed:
        notes.append(trimmed)
    if report.never_imported is not None:
        unzipped, zipped, names = report.never_imported
        notes.append(
            f"Never imported by any function in the cold-start runs: {', '.join(names) or 'nothing'} "
            f"({format_bytes(unzipped)} unzipped, {format_bytes(zipped)} zipped)."
        )
    if report.unused_twilio_rest is not None:
        unzipped, zipped = report.unused_twilio_rest
        notes.append(
            f"`twilio/rest` (twilio's REST API client; the handlers use only its TwiML and RequestValidator) "
            f"is never imported either: {format_bytes(unzipped)} unzipped, {format_bytes(zipped)} zipped."
        )
    return Section(
        title="Package size",
        intro="Deployment packages as `sam build` leaves them (arm64, python3.13), zipped with deflate.",
        tables=[artifacts, heaviest],
        notes=notes,
    )
