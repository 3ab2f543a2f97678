"""The recorder's counts are exact: latency buckets, sums and byte counts, from the
outside (requests through the client), with the recorder's clock injected.

The kv loop records a flush's counts inline (``kvservice/metrics.py``); a clock
that moves a fixed step at each read makes every answer's latency known: the
loop reads it once when a batch begins and once when its answers leave.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import attrs
import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.kvservice.metrics import LATENCY_BUCKETS, latency_slot
from protocol.ids import PackageId
from tests.conftest import run_as
from tests.internals import kv_of

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("app:pub.os")
SENDERS, GETS = 8, 5
VALUE = b"v" * 37


@attrs.define
class StepClock:
    """Nanoseconds that move ``step`` at each read."""

    step: int
    now: int = 0

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def _sample(rt: Runtime, name: str, labels: dict[str, str] | None = None) -> float:
    name = name.replace("_below", "_bucket")  # the bucket below the one under test
    value = kv_of(rt).metrics.registry().get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_a_latency_falls_in_the_first_bucket_above_it() -> None:
    for nanoseconds, bucket in [
        (0, 0),
        (999, 0),
        (1000, 1),
        (1999, 1),
        (2000, 2),
        (2**22 * 1000, 23),
    ]:
        assert latency_slot(nanoseconds) == bucket
        assert bucket == len(LATENCY_BUCKETS) or nanoseconds < LATENCY_BUCKETS[bucket] * 1e9


#: Latencies at the edges of buckets, and the bucket each belongs to (its ``le``).
STEPS = [(700, "1e-06"), (1999, "2e-06"), (2000, "4e-06"), (1_000_000, "0.001024")]


@pytest.mark.parametrize(("step", "bucket"), STEPS)
async def test_each_answer_counts_once_in_its_bucket_with_exact_sums(
    home: Path, step: int, bucket: str
) -> None:
    async def prepare(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", VALUE)

    async def sender(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        for _ in range(GETS):
            assert await db.get(b"k") == VALUE

    async with Runtime(home=home) as rt:
        await run_as(rt, "main:app:pub.os", prepare)
        latency = "kvruntime_request_latency_seconds"
        slot = latency_slot(step)
        below = {"le": repr(LATENCY_BUCKETS[slot - 1])} if slot else None
        before = {
            name: _sample(rt, name, labels)
            for name, labels in [
                (f"{latency}_count", None),
                (f"{latency}_sum", None),
                (f"{latency}_bucket", {"le": bucket}),
                (f"{latency}_below", below),
                ("kvruntime_requests_total", {"action": "Get", "result": "Ok"}),
                ("kvruntime_read_bytes_total", None),
                ("kvruntime_written_bytes_total", None),
                ("kvruntime_batch_size_sum", None),
            ]
        }
        kv_of(rt).metrics.clock = StepClock(step)
        async with anyio.create_task_group() as tg:
            for i in range(SENDERS):
                tg.start_soon(run_as, rt, f"s{i}:app:pub.os", sender)
        answered = SENDERS * (GETS + 1)  # each sender's Open, then its gets
        assert _sample(rt, f"{latency}_count") - before[f"{latency}_count"] == answered
        # Every one of them in the bucket above `step` (cumulative: and in every later one).
        if below is not None:  # none in the bucket below
            assert _sample(rt, f"{latency}_bucket", below) == before[f"{latency}_below"]
        got = _sample(rt, f"{latency}_bucket", {"le": bucket})
        assert got - before[f"{latency}_bucket"] == answered
        assert _sample(rt, f"{latency}_sum") - before[f"{latency}_sum"] == pytest.approx(
            answered * step / 1e9, rel=1e-9
        )
        gets = _sample(rt, "kvruntime_requests_total", {"action": "Get", "result": "Ok"})
        assert gets - before["kvruntime_requests_total"] == SENDERS * GETS
        read = _sample(rt, "kvruntime_read_bytes_total") - before["kvruntime_read_bytes_total"]
        assert read == SENDERS * GETS * len(VALUE)
        assert (
            _sample(rt, "kvruntime_written_bytes_total") == before["kvruntime_written_bytes_total"]
        )
        batched = _sample(rt, "kvruntime_batch_size_sum") - before["kvruntime_batch_size_sum"]
        assert batched == answered  # every request was in exactly one batch
