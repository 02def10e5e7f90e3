"""Reading profiles: `python -X importtime` output and cProfile stats, reduced to their top entries
(the part docs/benchmarks.md quotes when a goal is missed)."""

from __future__ import annotations

import io
import pstats
import re
from dataclasses import dataclass
from pathlib import Path

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


@dataclass(frozen=True)
class ImportTime:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    """Nesting level under the import that triggered it (0: imported by the measured code itself)."""


def parse_importtime(stderr: str) -> list[ImportTime]:
    """The `import time:` lines of `python -X importtime` (other stderr lines are ignored)."""
    found = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            found.append(ImportTime(module, int(self_us), int(cumulative_us), len(indent) // 2))
    return found


def heaviest_imports(imports: list[ImportTime], count: int = 5, *, by: str = "self") -> list[ImportTime]:
    """The `count` imports that cost most by their own body (`self`: where the time really goes)
    or with everything they imported (`cumulative`)."""
    if by not in ("self", "cumulative"):
        raise ValueError("by must be 'self' or 'cumulative'")
    key = (lambda item: item.self_us) if by == "self" else (lambda item: item.cumulative_us)
    return sorted(imports, key=key, reverse=True)[:count]


# Frames that only say "an import happened" or "a function was called": they top every cumulative
# listing and explain nothing.
_NOISE = re.compile(
    r"<frozen importlib|<built-in method builtins.exec>|<built-in method builtins.__import__>"
    r"|\{built-in method builtins.exec\}|\{built-in method builtins.__import__\}|<string>:1\(<module>\)"
    r"|cold_child\.py"
)


def top_entries(
    stats_path: Path,
    count: int = 15,
    *,
    root: str = "",
    by: str = "cumulative",
    divide_by: int = 1,
    ours_only: bool = False,
) -> str:
    """cProfile's top entries by `cumulative` or `own` time (per request with `divide_by`), import
    machinery left out, paths shortened; `ours_only`: only functions defined under `root` (where
    our code spends its time, libraries' included)."""
    if by not in ("cumulative", "own"):
        raise ValueError("by must be 'cumulative' or 'own'")
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    rows = []
    for function, (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        filename, line, name = function
        where = f"{filename}:{line}({name})" if filename != "~" else name
        ours = filename.startswith(root.rstrip("/") + "/") and "/site-packages/" not in filename
        if _NOISE.search(where) or (ours_only and not ours):
            continue
        key = cumulative if by == "cumulative" else own
        rows.append((key, cumulative, own, calls, shorten(where, root)))
    rows.sort(key=lambda row: -row[0])
    unit = "ms" if divide_by == 1 else "ms/req"
    lines = [f"{'cumulative':>12}  {'own':>12}  {'calls':>7}  function ({unit})"]
    lines += [
        f"{cumulative * 1000 / divide_by:12.3f}  {own * 1000 / divide_by:12.3f}  {calls:>7}  {where}"
        for _, cumulative, own, calls, where in rows[:count]
    ]
    return "\n".join(lines)


def shorten(where: str, root: str = "") -> str:
    """Drop the interpreter's and the virtualenv's prefixes from a profile location."""
    where = re.sub(r"^.*/site-packages/", "", where)
    where = re.sub(r"^.*/lib/python3\.\d+/", "", where)
    if root:
        where = where.replace(root.rstrip("/") + "/", "")
    return where


_BUILTIN_GROUPS = (
    ("marshal.loads", "import: reading .pyc"),
    ("builtins.compile", "import: compiling"),
    ("_imp.", "import: extension modules"),
    ("posix.", "file system"),
    ("_io.", "file system"),
    ("socket", "network"),
    ("select", "network"),
    ("_ssl", "network"),
)


def package_of(filename: str, function: str, root: str = "") -> str:
    """Who a profile entry's own time belongs to: an installed package, our code, the standard
    library or a kind of built-in."""
    if filename == "~":
        for marker, group in _BUILTIN_GROUPS:
            if marker in function:
                return group
        return "other built-ins"
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if root and filename.startswith(root.rstrip("/") + "/"):
        relative = filename[len(root.rstrip("/")) + 1 :]
        if relative.startswith("functions/"):
            return "ours: functions"
        parts = relative.split("/")
        # layers/common/<package>/<subpackage>/<module>.py: the package, not the subpackage.
        return "ours: " + (parts[2] if parts[:2] == ["layers", "common"] and len(parts) > 3 else parts[-2])
    if filename.startswith("<frozen"):
        return "import machinery"
    return "standard library"


def own_time_by_package(stats_path: Path, *, root: str = "", divide_by: int = 1) -> dict[str, float]:
    """Milliseconds of own time per package (`package_of`), divided by `divide_by` (requests)."""
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    totals: dict[str, float] = {}
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = package_of(filename, name, root)
        totals[key] = totals.get(key, 0.0) + own * 1000 / divide_by
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


IMPORT_GROUPS: dict[str, tuple[str, ...]] = {
    "AWS SDK": ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six"),
    "Powertools": ("aws_lambda_powertools",),
    "pydantic": ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection"),
    "X-Ray SDK": ("aws_xray_sdk", "wrapt"),
    "twilio": ("twilio",),
    "ours": ("voice_webhooks", "app"),
}
STARTUP = "interpreter start-up"
OTHER = "other"


def _group_of(module: str) -> str | None:
    top = module.split(".")[0]
    for group, packages in IMPORT_GROUPS.items():
        if top in packages:
            return group
    return None


def import_breakdown(imports: list[ImportTime]) -> dict[str, float]:
    """Milliseconds of import time per group (`IMPORT_GROUPS`): each module's own time goes to its
    package's group; a standard-library module's to the group of the package that imported it
    (asyncio imported by Powertools is Powertools' cost). Modules imported directly at the top
    (the interpreter's start, the benchmark's own) go to `interpreter start-up` or `other`.

    `imports` must be in `-X importtime` order (children before their parent)."""
    import sys

    groups: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for entry in reversed(imports):  # parents first
        while stack and stack[-1][0] >= entry.depth:
            stack.pop()
        own = _group_of(entry.module)
        if own is None:
            if stack:
                own = stack[-1][1]
            elif entry.module.split(".")[0] in (
                "site",
                "encodings",
                "_distutils_hack",
            ) or entry.module.startswith("__editable__"):
                own = STARTUP
            elif entry.module.split(".")[0] in sys.stdlib_module_names:
                own = OTHER
            else:
                own = OTHER
        stack.append((entry.depth, own))
        groups[own] = groups.get(own, 0.0) + entry.self_us / 1000
    return groups
