"""`os.environ` changed for a block only: the tools that run handlers in their own process (cost,
the benchmarks, the local reconciler run) point them at moto or a local API for one measurement
and leave the process as they found it. No imports beyond the standard library: cost and the
benchmarks time the handlers' first imports in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` for the block; afterwards each name has its old value again, or none."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
