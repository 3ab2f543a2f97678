"""``python -m benchmarks.callgrind``: instructions per awaited round trip, under callgrind.

Wall time on a shared machine moves by a third between runs; instruction
counts repeat to within a few hundred. Each figure runs one workload twice in
a child interpreter under ``valgrind --tool=callgrind``, with N and 3N
awaited operations per sender, and divides the difference by 2N senders x
operations: start-up, imports and warm-up cancel out. uvloop when installed
(as ``make bench``), else asyncio; ``--loop asyncio`` measures plain asyncio.
``PYTHONHASHSEED=0`` for repeatable runs. ``set_many`` is a batch of
``BATCH`` pairs per operation, ``scan`` a page of ``BATCH`` entries read
with ``db.scan_pages``, ``scan_entries`` the same page read entry by entry
with ``db.scan`` (its figure also per entry), ``transaction`` the bench's pipelined transaction
of ``TX_SETS`` sets and its commit (the figure is per operation, not per pair).

    python -m benchmarks.callgrind                 # get and set, 1 and 64 senders
    python -m benchmarks.callgrind --ops 500 --only get:1 --loop asyncio
    python -m benchmarks.callgrind --ops 50 --only set_many:1,scan:1,transaction:1
    python -m benchmarks.callgrind --ops 50 --only scan:1,scan_entries:1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WORKLOADS = ("get:1", "set:1", "get:64", "set:64")
#: Also measurable (``--only getttl:1,setttl:1``): the same on a key with a TTL
#: (issue 14), so the db's expiry index is in use.
TTL_OPS = ("getttl", "setttl")
OPS = ("get", "set", "set_many", "scan", "scan_entries", "transaction", *TTL_OPS)
PACKAGE = "bench:callgrind:bench.os"
#: Pairs per set_many, entries per scanned page.
BATCH = 1000
#: Sets per transaction (the bench's ``transaction`` workload).
TX_SETS = 100


async def _child(op: str, senders: int, ops: int, home: str) -> None:
    """Run ``ops`` awaited ``op`` calls in each of ``senders`` processes."""
    import anyio

    from kvruntime import Main, ProcessContext, Runtime, kv

    key, value = b"k" * 16, b"v" * 100
    batch = [(i.to_bytes(16, "big"), value) for i in range(BATCH)]

    def sender(index: int) -> Main:
        async def main(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, ctx.package_id, "db")
            ttl = 3600.0 if op in TTL_OPS else None
            await db.set(key, value, ttl=ttl)
            if op in ("get", "getttl"):
                for _ in range(ops):
                    await db.get(key)
            elif op == "setttl":
                for _ in range(ops):
                    await db.set(key, value, ttl=ttl)
            elif op == "set":
                for _ in range(ops):
                    await db.set(key, value)
            elif op == "set_many":
                for _ in range(ops):
                    await db.set_many(batch)
            elif op == "transaction":  # as benchmarks/systems: db.transaction(), 100 sets
                for _ in range(ops):
                    async with db.transaction() as tx:
                        put = tx.set
                        for pair_key, pair_value in batch[:TX_SETS]:
                            put(pair_key, pair_value)
            elif op == "scan_entries":  # as the bench's scan: one entry per await
                await db.delete(key)
                await db.set_many(batch)
                for _ in range(ops):
                    read = 0
                    async for _pair in db.scan(page_size=BATCH):
                        read += 1
                    assert read == BATCH
            else:
                await db.delete(key)
                await db.set_many(batch)
                for _ in range(ops):
                    async for page in db.scan_pages(page_size=BATCH):
                        assert len(page.items) == BATCH

        return main

    async with Runtime(home=home) as rt:
        handles = [
            await rt.spawn(
                f"s{i}:callgrind:bench.os", sender(i), request_capabilities=["kv:distro:sys"]
            )
            for i in range(senders)
        ]
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(handle.wait)


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _run_child(op: str, senders: int, ops: int, loop: str) -> None:
    import anyio

    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}: one of {', '.join(OPS)}")
    with tempfile.TemporaryDirectory() as home:
        backend_options = {"use_uvloop": loop == "uvloop"}
        anyio.run(_child, op, senders, ops, home, backend_options=backend_options)


def _instructions(op: str, senders: int, ops: int, loop: str) -> int:
    with tempfile.TemporaryDirectory() as out:
        out_file = Path(out) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            "-m",
            "benchmarks.callgrind",
            "--child",
            f"{op}:{senders}:{ops}:{loop}",
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        match = re.search(r"^summary:\s+(\d+)", out_file.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("callgrind wrote no summary")
        return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    """Print instructions per round trip for each workload."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.callgrind", description=__doc__)
    parser.add_argument("--ops", type=int, default=1000, help="N, per sender (64 senders: N/10)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="e.g. get:1,set:64")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=_default_loop())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        op, senders, ops, *loop = args.child.split(":")
        _run_child(op, int(senders), int(ops), loop[0] if loop else args.loop)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    for workload in args.only.split(","):
        op, senders_text = workload.split(":")
        senders = int(senders_text)
        ops = args.ops if senders == 1 else max(1, args.ops // 10)
        low = _instructions(op, senders, ops, args.loop)
        high = _instructions(op, senders, 3 * ops, args.loop)
        per = (high - low) / (2 * ops * senders)
        print(
            f"{op}, {senders} sender(s), {args.loop}: {per / 1000:.1f}k instructions per round trip"
            + (f" ({per / BATCH:.0f} per entry)" if op in ("scan", "scan_entries") else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
