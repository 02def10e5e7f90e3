"""Leave out of the built CommonLayer what no function ever imports (run by `make build`).

    python -m voicedev.layer_trim .aws-sam/build/CommonLayer/python [--report FILE]
    python -m voicedev.layer_trim --check DIR     # only list what should not be there

`sam build` installs layers/common/requirements.txt whole: twilio's REST client and the HTTP stack
only it uses (aiohttp, requests, PyJWT...), and botocore's models of some 400 AWS services. The
handlers use twilio's TwiML and RequestValidator only, and call a handful of AWS services, so the
layer shipped about 31 MB zipped (80 MB unzipped) where 10 MB is what runs. The rules below are
explicit lists (what is kept, what is dropped), so a new dependency or a new AWS service is a
visible one-line change here; tests/unit/test_layer_trim.py checks the lists against the code and,
marked slow, that every function still imports from a trimmed install.

The versions pinned in requirements.txt are untouched: only files are removed, and each kept
distribution's RECORD is rewritten to list what is left (so `importlib.metadata` and the
benchmark's size attribution stay right)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# AWS services whose botocore model stays (botocore/data/<service>/). The functions call DynamoDB,
# SQS, S3, Secrets Manager and SSM; the X-Ray SDK's sampler may call xray; sts for credentials
# set-ups outside Lambda's own; API Gateway Management and Bedrock Runtime for the relay work
# that is coming. Any other `boto3.client(name)` fails with UnknownServiceError: add it here.
KEEP_AWS_SERVICES = (
    "apigatewaymanagementapi",
    "bedrock-runtime",
    "dynamodb",
    "s3",
    "secretsmanager",
    "sqs",
    "ssm",
    "sts",
    "xray",
)

# Distributions installed only because twilio's REST client needs them (twilio's Requires-Dist and
# what those need in turn, minus what a kept distribution also requires). Never imported.
DROP_DISTRIBUTIONS = (
    "aiohappyeyeballs",
    "aiohttp",
    "aiohttp-retry",
    "aiosignal",
    "attrs",
    "charset-normalizer",
    "frozenlist",
    "idna",
    "multidict",
    "propcache",
    "pyjwt",
    "requests",
    "yarl",
)

# Inside twilio, what stays: the TwiML builders and the signature validator (with the package's
# __init__). rest/, http/, base/, jwt/, credential/ and auth_strategy/ are the REST client.
KEEP_TWILIO = ("twilio/__init__.py", "twilio/request_validator.py", "twilio/twiml/")

# Paths (relative to the layer's python/ directory) never imported at run time.
DROP_PATH_PREFIXES = (
    "certifi/tests/",
    "wrapt-stubs/",  # type stubs shipped inside wrapt's distribution
    "requirements.txt",  # copied by sam build from layers/common/
)
DROP_SUFFIXES = (".pyi",)


@dataclass
class TrimReport:
    files_before: int = 0
    bytes_before: int = 0
    files_after: int = 0
    bytes_after: int = 0
    dropped_distributions: list[str] = field(default_factory=list)
    dropped_services: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """Bytes (unzipped) left out, by rule."""


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _dist_infos(site: Path) -> dict[str, Path]:
    found = {}
    for info in site.glob("*.dist-info"):
        name = ""
        for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Name:"):
                name = line.partition(":")[2].strip()
                break
            if not line.strip():
                break
        found[_canonical(name or info.name.split("-", 1)[0])] = info
    return found


def _record_paths(info: Path) -> list[str]:
    record = info / "RECORD"
    if not record.exists():
        return []
    return [line.split(",", 1)[0] for line in record.read_text(encoding="utf-8").splitlines() if line]


def _kept_twilio(relative: str, parts: list[str]) -> bool:
    if any(relative == keep or relative.startswith(keep) for keep in KEEP_TWILIO):
        return True
    # The compiled copies of the kept top-level modules stay with them.
    return parts[1] == "__pycache__" and parts[-1].split(".")[0] in ("__init__", "request_validator")


def _reason(relative: str, dropped_files: dict[str, str]) -> str | None:
    """Why this file (path relative to python/) is left out, or None to keep it."""
    if relative in dropped_files:
        return dropped_files[relative]
    parts = relative.split("/")
    if parts[0] == "twilio" and len(parts) > 1 and not _kept_twilio(relative, parts):
        return "twilio REST client"
    if parts[0] == "botocore" and len(parts) > 3 and parts[1] == "data" and parts[2] not in KEEP_AWS_SERVICES:
        return "botocore models of unused services"
    if parts[0] == "boto3" and len(parts) > 3 and parts[1] == "data" and parts[2] not in KEEP_AWS_SERVICES:
        return "boto3 resource models of unused services"
    if any(relative.startswith(prefix) for prefix in DROP_PATH_PREFIXES):
        return "tests, stubs and build leftovers"
    if relative.endswith(DROP_SUFFIXES):
        return "tests, stubs and build leftovers"
    return None


def _dropped_distribution_files(site: Path, infos: dict[str, Path]) -> dict[str, str]:
    files: dict[str, str] = {}
    for name in DROP_DISTRIBUTIONS:
        info = infos.get(name)
        if info is None:
            continue
        tops = set()
        for path in _record_paths(info):
            relative = Path(path).as_posix()
            if relative.startswith(".."):
                continue
            files[relative] = "packages only twilio's REST client uses"
            if "/" in relative and not relative.split("/", 1)[0].endswith((".dist-info", ".data")):
                tops.add(relative.split("/", 1)[0])
        # Whole packages, their compiled copies too (compileall's .pyc are in no RECORD).
        for top in tops:
            for found in (site / top).rglob("*"):
                files[found.relative_to(site).as_posix()] = "packages only twilio's REST client uses"
        for found in info.rglob("*"):
            files[found.relative_to(site).as_posix()] = "packages only twilio's REST client uses"
    return files


def plan(site: Path) -> dict[str, str]:
    """Every file under `site` to leave out, with its reason (nothing is removed)."""
    infos = _dist_infos(site)
    dropped_files = _dropped_distribution_files(site, infos)
    result = {}
    for path in site.rglob("*"):
        if path.is_file() or path.is_symlink():
            relative = path.relative_to(site).as_posix()
            reason = _reason(relative, dropped_files)
            if reason is not None:
                result[relative] = reason
    return result


def _record_line(site: Path, relative: str) -> str:
    data = (site / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def _rewrite_records(site: Path) -> None:
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        if not record.exists():
            continue
        kept = []
        for line in record.read_text(encoding="utf-8").splitlines():
            path = line.split(",", 1)[0]
            if path and (path.startswith("..") or (site / path).exists() or path.endswith("RECORD")):
                kept.append(line)
        record.write_text("\n".join(kept) + "\n", encoding="utf-8")


def _remove_empty_dirs(site: Path) -> None:
    for path in sorted((p for p in site.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(path.iterdir()):
            path.rmdir()


def trim(site: Path) -> TrimReport:
    """Remove every planned file from `site` (the layer's python/ directory)."""
    if not (site / "botocore").is_dir():
        raise SystemExit(f"{site}: no botocore here; expected the layer's python/ directory")
    report = TrimReport()
    files = [path for path in site.rglob("*") if path.is_file()]
    report.files_before = len(files)
    report.bytes_before = sum(path.stat().st_size for path in files)
    infos = _dist_infos(site)
    report.dropped_distributions = sorted(name for name in DROP_DISTRIBUTIONS if name in infos)
    data = site / "botocore" / "data"
    report.dropped_services = sum(
        1 for path in data.iterdir() if path.is_dir() and path.name not in KEEP_AWS_SERVICES
    )
    for relative, reason in plan(site).items():
        path = site / relative
        report.by_reason[reason] = report.by_reason.get(reason, 0) + path.stat().st_size
        path.unlink()
    for name in report.dropped_distributions:
        shutil.rmtree(infos[name], ignore_errors=True)
    _remove_empty_dirs(site)
    _rewrite_records(site)
    files = [path for path in site.rglob("*") if path.is_file()]
    report.files_after = len(files)
    report.bytes_after = sum(path.stat().st_size for path in files)
    return report


def problems(site: Path) -> list[str]:
    """What a trimmed layer should not hold (empty: it is as trimmed as the rules say)."""
    found = sorted(plan(site).items())
    return [f"{relative} ({reason})" for relative, reason in found]


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicedev.layer_trim", description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, help="the layer's python/ directory")
    parser.add_argument("--check", action="store_true", help="only list what should not be there")
    parser.add_argument("--report", type=Path, help="write what was left out as JSON here")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.check:
        left = problems(args.site)
        for line in left[:50]:
            print(line)
        if len(left) > 50:
            print(f"... and {len(left) - 50} more")
        return 1 if left else 0
    report = trim(args.site)
    print(
        f"trimmed the layer: {report.files_before} -> {report.files_after} files, "
        f"{_mib(report.bytes_before)} -> {_mib(report.bytes_after)} unzipped "
        f"({len(report.dropped_distributions)} distributions, "
        f"{report.dropped_services} AWS service models left out)"
    )
    if args.report:
        args.report.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
