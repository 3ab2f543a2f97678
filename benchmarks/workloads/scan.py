"""A scan of every pair of a 100k-key store (loaded once, before the rounds)."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["SCAN", "scan_data"]


def scan_data(sizes: Sizes) -> Dataset:
    """The pairs of the scan store."""
    return Dataset.make(sizes.scan_keys, salt="scan")


def _data(sizes: Sizes, round_: int) -> int:
    return sizes.scan_keys


async def _run(driver: Driver, expected: int) -> Outcome:
    seconds, seen = await driver.scan()
    if seen != expected:
        raise AssertionError(f"{driver.name}: the scan saw {seen} pairs, expected {expected}")
    return Outcome(ops=seen, seconds=seconds)


SCAN = Workload(key="scan", title="scan of 100k keys (pairs/s)", prepare=_data, run=_run)
