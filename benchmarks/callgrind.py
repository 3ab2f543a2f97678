"""``python -m benchmarks.callgrind``: instructions per awaited round trip, under callgrind.

Wall time on a shared machine moves by a third between runs; instruction
counts repeat to within a few hundred. Each figure runs one workload twice in
a child interpreter under ``valgrind --tool=callgrind``, with N and 3N
awaited operations per sender, and divides the difference by 2N senders x
operations: start-up, imports and warm-up cancel out. uvloop when installed
(as ``make bench``), else asyncio; ``PYTHONHASHSEED=0`` for repeatable runs.

    python -m benchmarks.callgrind                 # get and set, 1 and 64 senders
    python -m benchmarks.callgrind --ops 500 --only get:1
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
PACKAGE = "bench:callgrind:bench.os"


async def _child(op: str, senders: int, ops: int, home: str) -> None:
    """Run ``ops`` awaited ``op`` calls in each of ``senders`` processes."""
    import anyio

    from kvruntime import Main, ProcessContext, Runtime, kv

    key, value = b"k" * 16, b"v" * 100

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
            else:
                for _ in range(ops):
                    await db.set(key, value)

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


def _run_child(op: str, senders: int, ops: int) -> None:
    import anyio

    if op not in ("get", "set", *TTL_OPS):
        raise ValueError(f"unknown operation {op!r}: get, set, getttl or setttl")
    with tempfile.TemporaryDirectory() as home:
        backend_options = {}
        try:
            import uvloop  # noqa: F401

            backend_options = {"use_uvloop": True}
        except ImportError:
            pass
        anyio.run(_child, op, senders, ops, home, backend_options=backend_options)


def _instructions(op: str, senders: int, ops: int) -> int:
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
            f"{op}:{senders}:{ops}",
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        op, senders, ops = args.child.split(":")
        _run_child(op, int(senders), int(ops))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    for workload in args.only.split(","):
        op, senders_text = workload.split(":")
        senders = int(senders_text)
        ops = args.ops if senders == 1 else max(1, args.ops // 10)
        low = _instructions(op, senders, ops)
        high = _instructions(op, senders, 3 * ops)
        per = (high - low) / (2 * ops * senders)
        print(f"{op}, {senders} sender(s): {per / 1000:.1f}k instructions per round trip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
