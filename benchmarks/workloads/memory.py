"""Memory of the runtime: RSS growth over 1M keys written, and under 200k unawaited requests.

Runs in a fresh interpreter (``python -m benchmarks.workloads.memory``) so
that nothing else the benchmark allocated counts; prints one JSON object.
The runtime and the sending process share that interpreter, so the figures
are the runtime's plus one small client. Keys are made on the fly (a list
of 1M keys would itself weigh ~60 MB).

1. *keys*: 16 tasks of one process set 1M distinct keys, each set awaited;
   RSS growth = RSS after minus RSS after a warm-up (target ≤ 150 MB).
2. *fire*: one process fires 200k sets with ``ctx.send(...,
   expects_response=...)`` without awaiting them while a second task of it
   receives and counts the responses. ``send`` waits once ``inflight_limit``
   answers are pending, so what is queued anywhere should stay within the
   mailbox bounds. Checked: every response arrived and was Ok; the most
   sent-but-not-yet-received never passed ``inflight_limit`` + the process
   mailbox's capacity (the bound ``kvruntime._mailbox`` states); and the
   RSS peak stayed within the awaited run's peak (LevelDB's memtable and
   cache fill the same way in both) plus ``PER_MESSAGE_BYTES`` for each
   message the mailbox bounds admit.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import anyio

from kvruntime import ProcessContext, Runtime, kv
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, Address
from protocol.messages import KvRequest, OkResponse, Set

from ..data import values
from ..machine import rss_bytes

__all__ = ["PER_MESSAGE_BYTES", "measure"]

#: A generous allowance for one queued request or response (key, 100-byte blob, objects).
PER_MESSAGE_BYTES = 4096
_WRITERS = 16
_SAMPLE_EVERY = 1000


def _key(i: int, salt: bytes) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16, key=salt).digest()


async def _write_keys(ctx: ProcessContext, count: int) -> dict[str, float]:
    pool = values(1024)
    db = await kv.open(ctx, ctx.package_id, "memory")
    for i in range(1000):  # warm-up: db open, caches, code paths
        await db.set(_key(i, b"warm"), pool[i % 1024])
    gc.collect()
    base = rss_bytes()
    peak = base
    t0 = time.perf_counter()

    async def writer(start: int) -> None:
        nonlocal peak
        for i in range(start, count, _WRITERS):
            await db.set(_key(i, b"mem"), pool[i % 1024])
            if i % (_SAMPLE_EVERY * _WRITERS) == start:
                peak = max(peak, rss_bytes())

    async with anyio.create_task_group() as tg:
        for start in range(_WRITERS):
            tg.start_soon(writer, start)
    seconds = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()
    return {
        "keys": count,
        "seconds": seconds,
        "rss_base_bytes": base,
        "rss_after_bytes": after,
        "rss_growth_bytes": after - base,
        "rss_peak_growth_bytes": max(peak, after) - base,
    }


async def _fire(ctx: ProcessContext, rt: Runtime, count: int) -> dict[str, float]:
    pool = values(1024)
    await kv.open(ctx, ctx.package_id, "fire")  # grants the capabilities; the rest is raw
    target = Address(node=ctx.our.node, process=KV_PROCESS_ID)
    pid = ctx.package_id
    gc.collect()
    base = rss_bytes()
    samples: list[tuple[int, int]] = []
    received = ok = 0
    max_in_flight = 0
    done = anyio.Event()

    async def receiver() -> None:
        nonlocal received, ok
        while received < count:
            message = await ctx.receive()
            received += 1
            if isinstance(decode_response(message.body), OkResponse):
                ok += 1
        done.set()

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(receiver)
        for i in range(count):
            body = encode_request(
                KvRequest(package_id=pid, db="fire", action=Set(key=_key(i, b"fire"), tx_id=None))
            )
            await ctx.send(target, body, blob=pool[i % 1024], expects_response=60.0)
            max_in_flight = max(max_in_flight, i + 1 - received)
            if i % _SAMPLE_EVERY == 0:
                samples.append((i, rss_bytes()))
        with anyio.fail_after(120):
            await done.wait()
    seconds = time.perf_counter() - t0
    samples.append((count, rss_bytes()))
    quarter = next(rss for i, rss in samples if i >= count // 4)
    peak = max(rss for _, rss in samples)
    return {
        "requests": count,
        "seconds": seconds,
        "responses": received,
        "ok": ok,
        "max_in_flight": max_in_flight,
        "inflight_limit": rt.inflight_limit,
        "kv_mailbox_capacity": rt.config.mailbox_capacity,
        "process_mailbox_capacity": rt.mailbox_capacity,
        "rss_base_bytes": base,
        "rss_peak_growth_bytes": peak - base,
        "rss_growth_after_first_quarter_bytes": peak - quarter,
        "per_message_bytes": PER_MESSAGE_BYTES,
    }


async def measure(keys: int, requests: int) -> dict[str, dict[str, float]]:
    """Both memory runs on a fresh runtime in a temporary home."""
    with tempfile.TemporaryDirectory(prefix="kvbench-mem-") as tmp:
        async with Runtime(home=Path(tmp)) as rt:
            out: dict[str, dict[str, float]] = {}

            async def main(ctx: ProcessContext) -> None:
                out["keys"] = await _write_keys(ctx, keys)
                out["fire"] = await _fire(ctx, rt, requests)

            handle = await rt.spawn(
                "memory:bench:bench.os", main, request_capabilities=["kv:distro:sys"]
            )
            await handle.wait()
            return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child interpreter: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    args = parser.parse_args(argv)
    result = anyio.run(measure, args.keys, args.requests)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
