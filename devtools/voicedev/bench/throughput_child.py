"""`python -m voicedev.bench.throughput_child CALLS CONCURRENCY RESULT.json`: the local throughput
run in its own interpreter (see voicedev.bench.throughput)."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    from voicedev.bench.throughput import measure_in_process, to_json

    calls, concurrency, result_path = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    result = measure_in_process(calls, concurrency)
    result_path.write_text(to_json(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
