"""The rounds: every workload on every system, interleaved, then the memory run.

Round 0 is the warm-up and is not counted. In each round every workload
builds its data once and runs it on each system in turn; the systems' order
rotates from round to round, so that machine noise (two shared cores here)
falls on all of them alike. A system that does not start, a workload it has
no form for, and a workload that fails are each recorded with the reason.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from .data import Sizes
from .results import Cell, SystemInfo, summarise
from .systems import Driver, DriverFactory, Missing, Unsupported
from .systems.kvruntime_client import KvruntimeDriver
from .systems.limit import LimitDriver
from .systems.pykka_actor import PykkaDriver
from .systems.redis_server import RedisDriver
from .systems.sqlite import SqliteDriver
from .workloads import AnyWorkload
from .workloads.batch import SET_MANY
from .workloads.concurrent import GET_CONC, SET_CONC
from .workloads.databases import databases
from .workloads.latency import GET_LATENCY
from .workloads.scan import SCAN, SCAN_PAGES, scan_data
from .workloads.sequential import GET_SEQ, SET_SEQ
from .workloads.transaction import TRANSACTION, TRANSACTION_AWAITED

__all__ = ["SYSTEMS", "Run", "run", "workloads"]

#: Every system, the limit first and kvruntime second (the table's order).
SYSTEMS: tuple[tuple[str, DriverFactory], ...] = (
    ("plyvel", LimitDriver),
    ("kvruntime", KvruntimeDriver),
    ("pykka", PykkaDriver),
    ("redis", RedisDriver),
    ("sqlite", SqliteDriver),
)

Progress = Callable[[str], None]


def workloads(sizes: Sizes) -> list[AnyWorkload]:
    """The workloads of a run, in the table's order."""
    fixed: list[AnyWorkload] = [
        SET_SEQ,
        GET_SEQ,
        GET_LATENCY,
        SET_CONC,
        GET_CONC,
        SET_MANY,
        TRANSACTION,
        TRANSACTION_AWAITED,
        SCAN,
        SCAN_PAGES,
    ]
    return fixed + [databases(count) for count in sizes.db_counts]


@attrs.define
class _Tally:
    samples: list[tuple[int, float, Sequence[int]]] = attrs.Factory(list)
    error: str | None = None
    failed: bool = False
    footprint: tuple[int, int] | None = None


@attrs.frozen(kw_only=True)
class Run:
    """Everything measured."""

    systems: list[SystemInfo]
    cells: list[Cell]
    memory: dict[str, Any] | None
    memory_error: str | None
    #: Whether a workload failed (raised something other than Unsupported).
    failed: bool


async def _start(
    stack: contextlib.AsyncExitStack, workdir: Path, progress: Progress
) -> tuple[dict[str, Driver], list[SystemInfo]]:
    drivers: dict[str, Driver] = {}
    infos = []
    for name, factory in SYSTEMS:
        driver = factory(workdir / name)
        try:
            drivers[name] = await stack.enter_async_context(driver)
        except Missing as exc:
            infos.append(SystemInfo(name=name, how=driver.how, missing=str(exc)))
            progress(f"{name}: MISSING ({exc})")
            continue
        except Exception as exc:  # a peer that breaks is reported, not fatal
            infos.append(SystemInfo(name=name, how=driver.how, missing=f"failed to start: {exc!r}"))
            progress(f"{name}: MISSING (failed to start: {exc!r})")
            continue
        infos.append(SystemInfo(name=name, how=driver.how))
        progress(f"{name}: started")
    return drivers, infos


async def _measure(
    sizes: Sizes,
    drivers: dict[str, Driver],
    infos: list[SystemInfo],
    progress: Progress,
    only: frozenset[str] | None,
    loop: str,
) -> tuple[list[Cell], bool]:
    plan = _plan(workloads(sizes), only)
    tallies = {(w.key, info.name): _Tally() for w in plan for info in infos}
    for info in infos:
        if info.missing is not None:
            for w in plan:
                tallies[w.key, info.name].error = info.missing
    if SCAN in plan:
        scan = scan_data(sizes)
        for name, driver in drivers.items():
            try:
                await driver.load_scan(scan)
            except Unsupported as exc:
                for w in (SCAN, SCAN_PAGES):
                    if w in plan:
                        tallies[w.key, name].error = str(exc)
    names = list(drivers)
    for round_ in range(sizes.rounds + 1):
        label = "warm-up" if round_ == 0 else f"round {round_}/{sizes.rounds}"
        label = f"{loop} {label}" if loop else label
        order = names[round_ % len(names) :] + names[: round_ % len(names)] if names else []
        for w in plan:
            data = w.prepare(sizes, round_)
            for name in order:
                tally = tallies[w.key, name]
                if tally.error is not None:
                    continue
                try:
                    outcome = await w.run(drivers[name], data)
                except Unsupported as exc:
                    tally.error = str(exc)
                    progress(f"[{label}] {w.key:<12} {name:<10} unsupported: {exc}")
                    continue
                except Exception as exc:
                    tally.error, tally.failed = f"failed: {exc!r}", True
                    progress(f"[{label}] {w.key:<12} {name:<10} FAILED: {exc!r}")
                    continue
                if round_ > 0:
                    tally.samples.append((outcome.ops, outcome.seconds, outcome.latencies_ns))
                    if (held := outcome.footprint) is not None:
                        tally.footprint = (held.descriptors, held.rss_growth_bytes)
                rate = outcome.ops / outcome.seconds
                progress(f"[{label}] {w.key:<12} {name:<10} {rate:>12,.0f} ops/s")
    cells = [
        summarise(
            workload=w.key,
            title=w.title,
            system=info.name,
            group=w.group,
            samples=tallies[w.key, info.name].samples,
            error=tallies[w.key, info.name].error,
            loop=loop,
            footprint=tallies[w.key, info.name].footprint,
        )
        for w in plan
        for info in infos
    ]
    return cells, any(t.failed for t in tallies.values())


def _plan(every: list[AnyWorkload], only: frozenset[str] | None) -> list[AnyWorkload]:
    """The workloads to run, in the table's order: ``only`` and the ones they read from."""
    if only is None:
        return every
    wanted = set(only) | {w.reads_from for w in every if w.key in only and w.reads_from}
    return [w for w in every if w.key in wanted]


async def _memory(sizes: Sizes, progress: Progress) -> tuple[dict[str, Any] | None, str | None]:
    progress(
        f"memory: {sizes.memory_keys:,} keys, then {sizes.memory_requests:,} unawaited requests"
    )
    command = [
        sys.executable,
        "-m",
        "benchmarks.workloads.memory",
        "--keys",
        str(sizes.memory_keys),
        "--requests",
        str(sizes.memory_requests),
    ]
    try:
        done = await anyio.run_process(command, check=False)
    except OSError as exc:
        return None, f"failed: {exc!r}"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return None, f"failed (exit {done.returncode}): {' / '.join(tail)}"
    result: dict[str, Any] = json.loads(done.stdout)
    progress(
        f"memory: keys +{result['keys']['rss_growth_bytes'] / 1e6:.1f} MB;"
        f" fire {result['fire']['ok']:,}/{result['fire']['requests']:,} Ok"
    )
    return result, None


async def run(
    sizes: Sizes,
    progress: Progress,
    only: frozenset[str] | None = None,
    *,
    loop: str = "",
    memory_run: bool = True,
) -> Run:
    """Start the systems, measure every workload, run the memory child; stop everything.

    ``only`` names the workloads to run, for a focused look: they run with the
    ones whose writes they read, and without the memory run. ``loop`` names
    the event loop this runs on (recorded in every cell); ``memory_run`` False
    leaves the memory child out (a run on both loops does it once).
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kvbench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            drivers, infos = await _start(stack, Path(tmp), progress)
            cells, failed = await _measure(sizes, drivers, infos, progress, only, loop)
    memory: dict[str, Any] | None
    memory_error: str | None
    if only is not None:
        memory, memory_error = None, "not measured (--only)"
    elif memory_run:
        memory, memory_error = await _memory(sizes, progress)
    else:
        memory, memory_error = None, "not measured in this run"
    progress(f"done in {time.perf_counter() - t0:.0f} s")
    return Run(
        systems=infos,
        cells=cells,
        memory=memory,
        memory_error=memory_error,
        failed=failed or (only is None and memory_run and memory_error is not None),
    )
