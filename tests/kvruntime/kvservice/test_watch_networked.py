"""Change feeds on a networked engine (Redis Cluster), where the conformance
suite does not reach: a write whose commit fails.

The master of the db's slot refuses writes meanwhile (``min-replicas-to-write``
above its replicas), so the commit fails for certain and nothing of it lands,
neither the data nor its change record. The kv process then drops the db's
log state and reads it again from the cluster: the failed write's change is
never pushed to a watcher, nor read from the log, and its seq is given to the
next write that lands (log and data agree).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.storage.localcluster import LocalCluster
from protocol.ids import PackageId
from tests.conftest import run_as
from tests.internals import redis_key_of
from tests.kvruntime.kvservice.test_ttl_networked import refusing_writes

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")


async def _next(changes: kv.Changes[bytes, bytes]) -> kv.Change[bytes, bytes]:
    with anyio.fail_after(10):
        return await changes.__anext__()


async def test_a_failed_commit_logs_nothing_and_its_seq_goes_to_the_next_write(
    redis_storage: str, redis_cluster: LocalCluster, home: Path
) -> None:
    async with Runtime(home=home, storage=redis_storage) as rt:

        async def body(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "main")
            async with db.watch() as changes:
                await db.set(b"a", b"1")
                first = await _next(changes)
                with (
                    refusing_writes(redis_cluster, redis_key_of(rt, PKG, "main")),
                    pytest.raises(kv.IoError, match="NOREPLICAS"),
                ):
                    await db.set(b"b", b"2")
                await db.set(b"c", b"3")
                after = await _next(changes)  # pushed live: never the failed "b"
            assert (first.key, after.key) == (b"a", b"c")
            assert after.seq == first.seq + 1
            async with db.watch(since=first.seq - 1) as again:  # read from the log
                got = [await _next(again), await _next(again)]
            assert [(c.seq, c.key, c.value) for c in got] == [
                (first.seq, b"a", b"1"),
                (after.seq, b"c", b"3"),
            ]
            assert await db.get(b"b", None) is None

        await run_as(rt, APP, body)
