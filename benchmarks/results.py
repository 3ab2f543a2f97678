"""What a run found, as plain values: one Cell per (workload, system)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .stats import median, ops_per_second, percentile

__all__ = ["LIMIT", "OURS", "Cell", "SystemInfo", "summarise"]

#: The system every ratio is taken against, and the one under test.
LIMIT = "plyvel"
OURS = "kvruntime"


@attrs.frozen(kw_only=True)
class SystemInfo:
    """A system of the run: how it runs here, or why it is missing."""

    name: str
    how: str
    #: Why it could not be started (None when it ran).
    missing: str | None = None


@attrs.frozen(kw_only=True)
class Cell:
    """One system on one workload, summarised over the counted rounds."""

    workload: str
    title: str
    system: str
    group: str = "throughput"
    #: The event loop the round ran on ("uvloop" or "asyncio"; "" when not recorded).
    loop: str = ""
    #: Throughput of each counted round (warm-up excluded).
    rounds: tuple[float, ...] = ()
    #: Medians over the rounds of each round's p50 and p99 latency (latency workload).
    p50_ns: float | None = None
    p99_ns: float | None = None
    #: Why there is no figure (missing system, unsupported, failed).
    error: str | None = None
    #: After the last counted round (many-dbs workloads, systems that tell): descriptors
    #: open under the store's folder and this process's RSS growth since it started.
    descriptors: int | None = None
    rss_growth_bytes: int | None = None

    @property
    def ops_per_s(self) -> float | None:
        """The median throughput, or None without rounds."""
        return median(self.rounds) if self.rounds else None


def summarise(
    *,
    workload: str,
    title: str,
    system: str,
    group: str,
    samples: Sequence[tuple[int, float, Sequence[int]]],
    error: str | None,
    loop: str = "",
    footprint: tuple[int, int] | None = None,
) -> Cell:
    """A Cell from per-round (ops, seconds, latencies) samples."""
    rounds = tuple(ops_per_second(ops, seconds) for ops, seconds, _ in samples)
    with_latency = [lat for _, _, lat in samples if lat]
    p50 = median([percentile(lat, 50) for lat in with_latency]) if with_latency else None
    p99 = median([percentile(lat, 99) for lat in with_latency]) if with_latency else None
    return Cell(
        workload=workload,
        title=title,
        system=system,
        group=group,
        loop=loop,
        rounds=rounds,
        p50_ns=p50,
        p99_ns=p99,
        error=error if not rounds else None,
        descriptors=None if footprint is None else footprint[0],
        rss_growth_bytes=None if footprint is None else footprint[1],
    )
