"""The open-db budget drawn from the process's file limit, and the kv under a low limit.

The limit is per process, so everything that sets it runs in a child
interpreter (``_CHILD`` below), started with the limit the test names.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from kvruntime.storage.file_budget import FDS_PER_DB, open_db_budget

# --- the budget (pure) -------------------------------------------------------------


def test_the_budget_leaves_leveldb_and_the_process_their_share() -> None:
    for limit in (256, 1024, 4096, 20_000, 1_048_576):
        budget = open_db_budget(limit)
        assert budget >= 1
        # LevelDB keeps up to a fifth of the limit for table files; the rest
        # of the process needs some more; the open dbs get the remainder.
        assert budget * FDS_PER_DB + limit // 5 < limit


def test_the_budget_grows_with_the_limit_and_a_thousand_dbs_fit_in_20000() -> None:
    budgets = [open_db_budget(limit) for limit in (256, 1024, 4096, 20_000)]
    assert budgets == sorted(budgets)
    assert budgets[0] < budgets[-1]
    assert open_db_budget(20_000) >= 2000


def test_a_tiny_limit_still_allows_one_db() -> None:
    assert open_db_budget(16) == 1
    assert open_db_budget(0) == 1


# --- a child interpreter with a set limit ------------------------------------------

_CHILD = r"""
import json, os, resource, sys
from pathlib import Path
import anyio
from kvruntime import KvConfig, Runtime, kv
from tests.conftest import run_as
from tests.internals import kv_of

home, count, passes, max_open = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = KvConfig() if max_open == "default" else KvConfig(max_open_dbs=int(max_open))

async def main():
    out = {}
    async with Runtime(home=Path(home), config=config) as rt:
        out["soft_after_start"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        out["budget"] = kv_of(rt).dbs.open_budget
        async def body(ctx):
            handles = [await kv.open(ctx, ctx.package_id, f"db-{i}") for i in range(count)]
            most_fds = 0
            for p in range(passes):
                for i, db in enumerate(handles):
                    await db.set(b"k%d" % p, b"v%d-%d" % (i, p))
                most_fds = max(most_fds, len(os.listdir("/proc/self/fd")))
            wrong = 0
            for i, db in enumerate(handles):
                for p in range(passes):
                    if await db.get(b"k%d" % p) != b"v%d-%d" % (i, p):
                        wrong += 1
            return most_fds, wrong
        out["most_fds"], out["wrong"] = await run_as(rt, "main:app:pub.os", body)
        out["open_now"] = kv_of(rt).dbs.open_count
    print(json.dumps(out))

anyio.run(main)
"""


def _child(
    home: Path, limit: tuple[int, int], count: int, passes: int, max_open: str = "default"
) -> dict[str, int]:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(home), str(count), str(passes), max_open],
        preexec_fn=set_limit,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_runtime_raises_the_soft_limit_to_the_hard_one(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 512:
        pytest.fail(f"this test needs a hard file limit of at least 512, the machine has {hard}")
    out = _child(tmp_path / "home", (256, 512), count=3, passes=1)
    assert out["soft_after_start"] == 512
    assert out["budget"] == open_db_budget(512)
    assert out["wrong"] == 0


def test_more_dbs_than_the_limit_allows_are_served_through_the_lru(tmp_path: Path) -> None:
    # 256 descriptors allow some 40 open dbs; 60 dbs, written twice round
    # robin, each write reopening its db: every write lands, nothing runs out
    # of descriptors, and the dbs open at the end stay in the budget.
    out = _child(tmp_path / "home", (256, 256), count=60, passes=2)
    assert out["soft_after_start"] == 256
    assert 1 <= out["budget"] < 60
    assert out["wrong"] == 0
    assert out["open_now"] <= out["budget"]
    assert out["most_fds"] < 256


def test_a_configured_max_open_dbs_above_the_budget_is_held_to_it(tmp_path: Path) -> None:
    out = _child(tmp_path / "home", (256, 256), count=60, passes=1, max_open="10000")
    assert out["budget"] == open_db_budget(256)
    assert out["wrong"] == 0
    assert out["open_now"] <= out["budget"]


def test_a_configured_max_open_dbs_below_the_budget_is_kept(tmp_path: Path) -> None:
    out = _child(tmp_path / "home", (1024, 1024), count=12, passes=2, max_open="5")
    assert out["budget"] == 5
    assert out["open_now"] <= 5
    assert out["wrong"] == 0
