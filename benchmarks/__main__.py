"""``python -m benchmarks [--quick] [--out DIR]``: run, print the tables, write JSON and PNG."""

from __future__ import annotations

import argparse
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
from .runner import run, workloads
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
        choices=("uvloop", "asyncio"),
        default="uvloop" if _has_uvloop() else "asyncio",
        help="event loop of every async system in the run (default: uvloop when installed)",
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
    machine["event_loop"] = args.loop
    _progress(f"event loop: {args.loop} (the same for every async system)")
    result = anyio.run(
        run, sizes, _progress, args.only, backend_options={"use_uvloop": args.loop == "uvloop"}
    )
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
        draw(out / "latest.png", result.cells, machine, sizes)
        _progress(f"wrote {out / 'latest.json'} and {out / 'latest.png'}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
