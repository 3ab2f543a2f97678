"""The change-feed lag run (benchmarks/watch_lag.py): its arithmetic, and a
bounded run that keeps up and one that cannot (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.watch_lag import BATCH, LagRun, measure, report
from kvruntime import KvConfig


def _run(lags: list[int], *, compacted_at: int | None = None) -> LagRun:
    return LagRun(
        compacted_at=compacted_at,
        changes=100_000,
        samples=[(i * 0.05, lag) for i, lag in enumerate(lags)],
        write_seconds=2.0,
        catch_up_seconds=0.01,
        window=256,
    )


def test_a_flat_lag_does_not_grow_and_a_climbing_one_does() -> None:
    assert not _run([0, 1000, 0, 1000, 0, 1000, 0, 1000, 0, 1000]).grows
    assert _run([100 * i * i for i in range(20)]).grows
    assert "does not grow" in report(_run([0] * 10))[2]
    assert "GROWS" in report(_run([1000 * i for i in range(30)]))[2]


def test_a_watcher_past_the_retained_log_is_reported_as_failed() -> None:
    (line,) = report(_run([5, 50_000, 100_001], compacted_at=1234))
    assert line.startswith("FAILED")
    assert "1,234 of 100,000" in line
    assert "100,001" in line


@pytest.mark.anyio
async def test_a_bounded_run_keeps_up_with_the_default_window(tmp_path: Path) -> None:
    run = await measure(tmp_path, 5 * BATCH)
    assert run.compacted_at is None
    assert run.changes == 5 * BATCH
    assert all(lag <= run.changes for lag in run.lags)


@pytest.mark.anyio
async def test_a_window_far_below_the_writers_batch_falls_behind(tmp_path: Path) -> None:
    config = KvConfig(watch_window_items=1, watch_log_entries=BATCH)
    run = await measure(tmp_path, 20 * BATCH, config)
    assert run.compacted_at is not None
    assert run.compacted_at < 20 * BATCH
