"""Generate (or check) layers/common/requirements.txt from pyproject.toml's [project].dependencies,
so the runtime pins have one source of truth. `make requirements` writes it; a unit test checks it."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "# Generated from pyproject.toml [project].dependencies by `make requirements`. Do not edit.\n"
    "# SAM installs these into the CommonLayer (BuildMethod python3.13, arm64).\n"
)


def render(pyproject: Path = ROOT / "pyproject.toml") -> str:
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return HEADER + "".join(f"{dependency}\n" for dependency in sorted(dependencies, key=str.lower))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, metavar="PATH", help="write the requirements file")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
