"""`make bench`'s table reads each figure by name from its command's JSON: a renamed key would show
as "null ... MISS" only when someone runs the benchmarks. This keeps the names in step."""

from __future__ import annotations

import importlib
import inspect

import pytest

from integrations.management.commands.bench_all import BENCHMARKS

MODULES = {
    "bench_ingest": "crmsync.management.commands.bench_ingest",
    "bench_pages": "crmsync.management.commands.bench_pages",
    "bench_sync": "integrations.management.commands.bench_sync",
    "bench_latency": "integrations.management.commands.bench_latency",
    "bench_change_detection": "integrations.management.commands.bench_change_detection",
}


@pytest.mark.parametrize(
    ("name", "args", "figures"), [(b[0], b[1], b[3]) for b in BENCHMARKS], ids=[b[0] for b in BENCHMARKS]
)
def test_every_figure_is_a_key_its_command_prints(name, args, figures):
    source = inspect.getsource(importlib.import_module(MODULES[args[0]]))
    for figure, _target, _passes in figures:
        assert f'"{figure}"' in source, f"{name}: {args[0]} prints no {figure!r}"


def test_every_benchmark_command_is_known_here():
    assert {b[1][0] for b in BENCHMARKS} <= set(MODULES)
