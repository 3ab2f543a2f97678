"""One module per workload; each builds its data and turns a driver's timing into an Outcome.

A workload's ``prepare(sizes, round)`` builds the data of one round (the
same for every system); ``run(driver, data)`` measures one system on it.
Workloads that read (``get_*``) use the keys their writing partner stored
earlier in the same round, so every read hits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ..data import Sizes
from ..systems import Driver, Footprint

__all__ = ["Outcome", "Workload"]

D = TypeVar("D")


@attrs.frozen(kw_only=True)
class Outcome:
    """One system on one round of one workload."""

    #: Operations done (pairs written or read).
    ops: int
    seconds: float
    #: Per-operation latencies in nanoseconds, for the latency workload.
    latencies_ns: Sequence[int] = ()
    #: What the system's store held after the round (many-dbs workloads, when it tells).
    footprint: Footprint | None = None


@attrs.frozen(kw_only=True)
class Workload(Generic[D]):
    """A named measurement every system runs on the same data."""

    key: str
    title: str
    prepare: Callable[[Sizes, int], D]
    run: Callable[[Driver, D], Awaitable[Outcome]]
    #: The group of the chart it belongs to.
    group: str = "throughput"
    #: The workload whose writes this one reads in the same round (it runs first).
    reads_from: str | None = None


AnyWorkload = Workload[Any]
