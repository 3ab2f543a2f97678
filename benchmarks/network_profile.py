"""Where a remote request's time goes: ``python -m benchmarks.network_profile``.

The rows of ``benchmarks.network`` (raw nats-py, remote echo, remote get),
sequential and 64 in flight, each run under cProfile after a warm-up, with
both nodes and the raw sides in this process. Self time (cProfile's
``tottime``) is summed by where the code lives and printed in µs per
request, beside each row's wall time per request without the profiler:

- ``nats-py``: the client library (parser, publish, flush, subscriptions);
- ``transport``: the network half of the kernel (``nats_transport``,
  ``session``, ``envelope``, ``wire``, ``inflight``);
- ``bus``: the local kernel (``bus``, ``process``, ``mailbox``, ...);
- ``kv client`` / ``kv service`` / ``storage`` / ``protocol``: bob's own kv
  round trip that a remote get adds (its store process asking kv:distro:sys);
- ``event loop``: asyncio, anyio and uvloop's Python parts;
- ``C calls``: built-ins (msgpack, BLAKE2b, socket writes, ...).

cProfile slows Python code several times and C code hardly at all, so the
µs are shares of the work, not the speed; the difference between the get
and echo rows is what bob's own kv round trip costs beyond the network.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import anyio

from kvruntime import ProcessContext

from .network import IN_FLIGHT, Ask, _has_uvloop, _timed, two_nodes

__all__ = ["main"]

_PACKAGE = "bench:bench.os"
_CATEGORIES = (
    ("/nats/", "nats-py"),
    ("kvruntime/kernel/nats_transport", "transport"),
    ("kvruntime/kernel/session", "transport"),
    ("kvruntime/kernel/envelope", "transport"),
    ("kvruntime/kernel/wire", "transport"),
    ("kvruntime/kernel/inflight", "transport"),
    ("kvruntime/kernel/", "bus"),
    ("kvruntime/client/", "kv client"),
    ("kvruntime/kvservice/", "kv service"),
    ("kvruntime/storage/", "storage"),
    ("/protocol/", "protocol"),
    ("/asyncio/", "event loop"),
    ("/anyio/", "event loop"),
    ("/uvloop/", "event loop"),
    ("benchmarks/", "benchmark"),
)
_ORDER = (
    "nats-py",
    "transport",
    "bus",
    "kv client",
    "kv service",
    "storage",
    "protocol",
    "event loop",
    "C calls",
    "benchmark",
    "other",
)


def _category(filename: str) -> str:
    if filename == "~" or filename.startswith("<"):
        return "C calls"
    for fragment, name in _CATEGORIES:
        if fragment in filename:
            return name
    return "other"


def _by_category(profile: cProfile.Profile) -> dict[str, float]:
    """Seconds of self time per category."""
    stats = pstats.Stats(profile)
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, _), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[_category(filename)] += row[2]  # tottime
    return totals


def _top(profile: cProfile.Profile, count: int, requests: int) -> list[tuple[float, str]]:
    """The ``count`` functions with the most self time, in µs per request."""
    stats = pstats.Stats(profile)
    rows = [
        (row[2] / requests * 1e6, f"{Path(filename).name}:{line} {name}")
        for (filename, line, name), row in stats.stats.items()  # type: ignore[attr-defined]
    ]
    return sorted(rows, reverse=True)[:count]


async def _run(count: int, folder: Path, top: int) -> None:
    report: list[tuple[str, float, dict[str, float], list[tuple[float, str]]]] = []
    async with two_nodes(folder) as (alice, _, raw):

        async def client(ctx: ProcessContext) -> None:
            def ask(target: str) -> Ask:
                async def send(body: bytes) -> bytes:
                    return (await ctx.send_and_await_response(target, body, timeout=10)).body

                return send

            echo, store = ask(f"bob.os@echo:{_PACKAGE}"), ask(f"bob.os@store:{_PACKAGE}")
            keys_ = [b"k%07d" % i for i in range(count)]
            await _timed(store, [b"s" + key for key in keys_], IN_FLIGHT)
            bodies = {
                "raw": [b"x" * 100] * count,
                "echo": [b"x" * 100] * count,
                "get": [b"g" + key for key in keys_],
            }
            asks = {"raw": raw, "echo": echo, "get": store}
            for depth, label in ((1, "sequential"), (IN_FLIGHT, f"{IN_FLIGHT} in flight")):
                for what in ("raw", "echo", "get"):
                    await _timed(asks[what], bodies[what], depth)  # warm-up
                    wall = await _timed(asks[what], bodies[what], depth)
                    profile = cProfile.Profile()
                    profile.enable()
                    await _timed(asks[what], bodies[what], depth)
                    profile.disable()
                    report.append(
                        (
                            f"{what}, {label}",
                            wall / count,
                            _by_category(profile),
                            _top(profile, top, count),
                        )
                    )

        handle = await alice.spawn(f"client:{_PACKAGE}", client)
        await handle.wait()
    _print(report, count)


def _print(
    report: list[tuple[str, float, dict[str, float], list[tuple[float, str]]]], count: int
) -> None:
    print(f"\n## Self time per request under cProfile, µs ({count} requests a row)\n")
    names = [name for name, _, _, _ in report]
    print(f"{'where':<16}" + "".join(f"{name:>20}" for name in names))
    wall = "".join(f"{seconds * 1e6:>20.1f}" for _, seconds, _, _ in report)
    print(f"{'wall, unprofiled':<16}" + wall)
    for category in _ORDER:
        cells = [totals.get(category, 0.0) / count * 1e6 for _, _, totals, _ in report]
        if any(cell >= 0.05 for cell in cells):
            print(f"{category:<16}" + "".join(f"{cell:>20.1f}" for cell in cells))
    total = "".join(f"{sum(totals.values()) / count * 1e6:>20.1f}" for _, _, totals, _ in report)
    print(f"{'total profiled':<16}" + total)
    for name, _, _, top in report:
        print(f"\n### {name}: most self time, µs per request\n")
        for micros, where in top:
            print(f"{micros:>8.1f}  {where}")


def main(argv: list[str] | None = None) -> int:
    """Profile the network rows and print where their time goes."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.network_profile", description=__doc__
    )
    parser.add_argument("--count", type=int, default=2048, help="requests per row")
    parser.add_argument("--top", type=int, default=12, help="functions listed per row")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if _has_uvloop() else "asyncio",
        help="event loop of both sides (default: uvloop when installed, as make bench)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kvbench-netprof-") as tmp:
        t0 = time.perf_counter()
        anyio.run(
            _run,
            args.count,
            Path(tmp),
            args.top,
            backend_options={"use_uvloop": args.loop == "uvloop"},
        )
        print(f"\n(event loop: {args.loop}; {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
