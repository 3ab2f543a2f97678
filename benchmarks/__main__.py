"""``python -m benchmarks [--quick] [--out DIR] [--loop L]``: run, print tables, write JSON, PNG.

By default the whole run happens twice, once on uvloop and once on plain
asyncio (what ``anyio.run(main)`` gives a user), one after the other in this
process; every ratio compares systems measured on the same loop, and the
tables print each workload's row for both loops side by side.
"""

from __future__ import annotations

import argparse
import functools
import resource
import signal
import sys
from pathlib import Path

import anyio
import attrs

from .chart import draw
from .data import Sizes
from .machine import load_average, machine_info
from .report import document, format_results, format_summary, format_targets, write_json
from .results import Cell
from .runner import Run, run, workloads
from .targets import evaluate


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _workload_keys() -> list[str]:
    return [w.key for w in workloads(Sizes.full())]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _raise_open_files_limit() -> None:
    # 1000 LevelDBs open at once (the limit's multi-db run) need a few thousand descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _interrupt_on_sigterm() -> None:
    # So that a stopped run still stops its redis-server and removes its scratch folder.
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a workload failed (not for a missing peer)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~20x smaller counts (CI)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write latest.json and latest.png (default: benchmarks/results;"
        " with --only, nothing is written unless --out is given)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: frozenset(text.split(",")),
        default=None,
        metavar="WORKLOAD[,...]",
        help="run only these workloads (and those whose writes they read), no memory run:"
        f" {', '.join(_workload_keys())}",
    )
    parser.add_argument(
        "--loop",
        choices=("both", "uvloop", "asyncio"),
        default="both" if _has_uvloop() else "asyncio",
        help="event loop of every async system: each in turn, or one"
        " (default: both when uvloop is installed)",
    )
    args = parser.parse_args(argv)
    if args.only is not None and (unknown := args.only - set(_workload_keys())):
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    _raise_open_files_limit()
    _interrupt_on_sigterm()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    machine = machine_info()
    _progress(
        f"machine: {machine['cpu_model']}, {machine['nproc']} cores, Python {machine['python']}"
    )
    loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]
    machine["event_loops"] = loops
    runs: list[Run] = []
    for i, loop in enumerate(loops):
        _progress(f"event loop: {loop} (the same for every async system)")
        runs.append(
            anyio.run(
                functools.partial(
                    run, sizes, _progress, args.only, loop=loop, memory_run=i == len(loops) - 1
                ),
                backend_options={"use_uvloop": loop == "uvloop"},
            )
        )
    result = _merge(runs)
    machine["load_average_at_end"] = load_average()
    verdicts = evaluate(result.cells, result.memory, result.memory_error)

    mode = "quick" if args.quick else "full"
    print(f"\n## Results ({mode} run, medians of {sizes.rounds} rounds)\n")
    print(format_results(result.cells))
    print("\n## Summary (ops/s; ratios are speeds, higher is faster)\n")
    print(format_summary(result.cells))
    print()
    for info in result.systems:
        status = f"MISSING: {info.missing}" if info.missing else info.how
        print(f"- {info.name}: {status}")
    print("\n## Targets\n")
    print(format_targets(verdicts))
    if args.quick:
        print("\n(quick run: counts ~20x smaller; verdicts are indicative only)")

    doc = document(
        machine=machine,
        sizes={"mode": "quick" if args.quick else "full", **attrs.asdict(sizes)},
        systems=result.systems,
        cells=result.cells,
        verdicts=verdicts,
        memory=result.memory,
        memory_error=result.memory_error,
    )
    out: Path | None = args.out
    if out is None and args.only is None:
        out = Path("benchmarks/results")
    if out is not None:
        write_json(out / "latest.json", doc)
        charts = []
        for i, loop in enumerate(loops):
            chart = out / ("latest.png" if i == 0 else f"latest-{loop}.png")
            draw(chart, [c for c in result.cells if c.loop == loop], machine, sizes)
            charts.append(str(chart))
        _progress(f"wrote {out / 'latest.json'} and {', '.join(charts)}")
    return 1 if result.failed else 0


def _merge(runs: list[Run]) -> Run:
    """One Run of the runs on each loop: their cells together, the last one's memory."""
    cells: list[Cell] = [cell for r in runs for cell in r.cells]
    systems = {info.name: info for r in reversed(runs) for info in r.systems}
    return Run(
        systems=[systems[info.name] for info in runs[0].systems],
        cells=cells,
        memory=runs[-1].memory,
        memory_error=runs[-1].memory_error,
        failed=any(r.failed for r in runs),
    )


if __name__ == "__main__":
    sys.exit(main())
