"""A scan of every pair of a 100k-key store (loaded once, before the rounds).

Two rows: ``scan``, each system's per-entry iterator (kvruntime: ``async
for`` over ``db.scan()``), and ``scan_pages``, a page at a time where the
system has such a form (``PageScanner``: kvruntime's ``db.scan_pages()``);
the others run their one scan form again there, so the row compares
kvruntime's page-wise read against each peer's own scan.
"""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver, PageScanner
from . import Outcome, Workload

__all__ = ["SCAN", "SCAN_PAGES", "scan_data"]


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


async def _run_pages(driver: Driver, expected: int) -> Outcome:
    if not isinstance(driver, PageScanner):
        return await _run(driver, expected)
    seconds, seen = await driver.scan_pages()
    if seen != expected:
        raise AssertionError(f"{driver.name}: the scan saw {seen} pairs, expected {expected}")
    return Outcome(ops=seen, seconds=seconds)


SCAN = Workload(key="scan", title="scan of 100k keys (pairs/s)", prepare=_data, run=_run)
SCAN_PAGES = Workload(
    key="scan_pages",
    title="scan of 100k keys, page-wise (pairs/s)",
    prepare=_data,
    run=_run_pages,
    reads_from="scan",
)
