"""Reading profiles for docs/benchmarks.md: `-X importtime` lines, the heaviest imports, import
time by package (a standard-library module counted with whoever imported it), and cProfile's
top entries."""

from __future__ import annotations

import cProfile
from pathlib import Path

import pytest
from voicedev.bench.profiling import (
    OTHER,
    STARTUP,
    heaviest_imports,
    import_breakdown,
    package_of,
    parse_importtime,
    top_entries,
)

FIXTURE = Path(__file__).parent / "fixtures" / "bench" / "importtime.txt"


def imports() -> list:  # type: ignore[type-arg]
    return parse_importtime(FIXTURE.read_text(encoding="utf-8"))


def test_importtime_lines_are_parsed_with_their_nesting_and_other_lines_ignored() -> None:
    found = imports()

    assert [entry.module for entry in found][:3] == ["_io", "site", "asyncio.events"]
    assert len(found) == 11
    asyncio = next(entry for entry in found if entry.module == "asyncio")
    assert (asyncio.self_us, asyncio.cumulative_us, asyncio.depth) == (2000, 5000, 2)


def test_the_heaviest_imports_by_own_time_and_by_cumulative_time() -> None:
    by_self = [entry.module for entry in heaviest_imports(imports(), 3)]
    by_cumulative = [entry.module for entry in heaviest_imports(imports(), 2, by="cumulative")]

    assert by_self == ["voice_webhooks.flows.model", "botocore.client", "pydantic"]
    assert by_cumulative == ["voice_webhooks.flows.model", "pydantic"]
    with pytest.raises(ValueError, match="by must be"):
        heaviest_imports(imports(), by="total")


def test_import_time_goes_to_packages_and_the_standard_library_to_whoever_imported_it() -> None:
    breakdown = import_breakdown(imports())

    # asyncio (standard library) was imported by Powertools' event handler: Powertools' cost
    assert breakdown["Powertools"] == pytest.approx((1000 + 2000 + 3000) / 1000)
    assert breakdown["pydantic"] == pytest.approx(9.0)
    assert breakdown["AWS SDK"] == pytest.approx(7.5)
    assert breakdown["ours"] == pytest.approx(8.0)
    # the interpreter's own start, and a standard-library module imported directly
    assert breakdown[STARTUP] == pytest.approx(1.02)
    assert breakdown[OTHER] == pytest.approx(0.2)
    # every microsecond is counted exactly once
    assert sum(breakdown.values()) == pytest.approx(sum(entry.self_us for entry in imports()) / 1000)


def test_profile_entries_belong_to_packages_our_code_or_the_standard_library() -> None:
    root = "/work/project"
    assert package_of("/x/.venv/lib/python3.11/site-packages/botocore/client.py", "f", root) == "botocore"
    assert package_of("/work/project/layers/common/voice_webhooks/edge/signature.py", "f", root) == (
        "ours: voice_webhooks"
    )
    assert package_of("/work/project/functions/connect/app.py", "f", root) == "ours: functions"
    assert package_of("/usr/lib/python3.11/json/decoder.py", "f", root) == "standard library"
    assert package_of("~", "<built-in method marshal.loads>", root) == "import: reading .pyc"
    assert package_of("~", "<method 'recv_into' of '_socket.socket' objects>", root) == "network"


def _work() -> int:
    return sum(_square(value) for value in range(2000))


def _square(value: int) -> int:
    return value * value


def test_top_entries_list_the_profiled_functions_without_the_import_machinery(tmp_path: Path) -> None:
    # Given a real profile of a small piece of work
    profile = cProfile.Profile()
    profile.runcall(_work)
    path = tmp_path / "work.prof"
    profile.dump_stats(str(path))

    # When its top entries are listed by cumulative and by own time
    cumulative = top_entries(path, 5, root=str(Path(__file__).parent))
    own = top_entries(path, 5, by="own", divide_by=2)

    # Then the work's functions are there, with their call counts
    assert "test_bench_profiling.py" in cumulative
    assert "(_work)" in cumulative
    assert "2000  " in own and "(_square)" in own
    assert own.splitlines()[0].endswith("function (ms/req)")
    assert "frozen importlib" not in cumulative
    # only what is defined under the root, when asked
    ours = top_entries(path, 5, root=str(Path(__file__).parent), ours_only=True)
    assert "(_work)" in ours
    assert "built-in" not in ours
    with pytest.raises(ValueError, match="by must be"):
        top_entries(path, by="total")
