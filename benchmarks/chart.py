"""The chart of a run (PNG, matplotlib's Agg backend: no display needed).

Rules the chart keeps (issue 15):

1. One unit per axis: throughput workloads are grouped by what they count
   (ops/s, pairs/s, sets/s, the unit a title ends with), one panel each.
2. Colours name systems only. The latency panel draws p50 and p99 as two
   bars per system in the system's colour, told apart by hatching, with a
   legend for both.
3. A label states what was measured: counts in titles (the scan's keys)
   come from the run's ``Sizes``, so a quick run does not claim a full
   run's counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend is chosen first
from matplotlib.patches import Patch

from .results import Cell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .data import Sizes

__all__ = ["Panel", "draw", "figure", "label", "panels"]

_UNIT = re.compile(r"\s*\((\w+/s)\)$")


@attrs.frozen(kw_only=True)
class Panel:
    """Throughput workloads counted in one unit: (workload key, label) in order."""

    unit: str
    workloads: tuple[tuple[str, str], ...]


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def label(cell: Cell, sizes: Sizes | None) -> str:
    """The workload's title without its unit, with the counts this run measured."""
    title = _UNIT.sub("", cell.title)
    if sizes is not None and cell.workload in ("scan", "scan_pages"):
        title = title.replace("100k", _count(sizes.scan_keys))
    return title


def panels(cells: Sequence[Cell], sizes: Sizes | None) -> list[Panel]:
    """The throughput panels, one per unit (rule 1), in the order the units first appear."""
    by_unit: dict[str, dict[str, str]] = {}
    for cell in cells:
        if cell.group != "throughput":
            continue
        found = _UNIT.search(cell.title)
        unit = found.group(1) if found else "ops/s"
        by_unit.setdefault(unit, {}).setdefault(cell.workload, label(cell, sizes))
    return [Panel(unit=u, workloads=tuple(w.items())) for u, w in by_unit.items()]


def figure(
    cells: Sequence[Cell], machine: Mapping[str, object], sizes: Sizes | None = None
) -> Figure:
    """The chart as a matplotlib Figure (``draw`` saves it)."""
    systems = list(dict.fromkeys(c.system for c in cells))
    colour = {s: f"C{i % 10}" for i, s in enumerate(systems)}
    by_key = {(c.workload, c.system): c for c in cells}
    throughput = panels(cells, sizes) or [Panel(unit="ops/s", workloads=())]
    databases = list(dict.fromkeys(c.workload for c in cells if c.group == "databases"))

    fig = plt.figure(figsize=(13, 14))
    grid = fig.add_gridspec(
        3,
        len(throughput),
        height_ratios=[3, 1.4, 1.6],
        width_ratios=[max(len(p.workloads), 1) for p in throughput],
    )
    width = 0.8 / max(len(systems), 1)
    for column, panel in enumerate(throughput):
        bars = fig.add_subplot(grid[0, column])
        for i, system in enumerate(systems):
            heights = []
            for workload, _ in panel.workloads:
                cell = by_key.get((workload, system))
                heights.append(cell.ops_per_s if cell and cell.ops_per_s else 0.0)
            xs = [j + i * width for j in range(len(panel.workloads))]
            bars.bar(xs, heights, width=width, label=system, color=colour[system])
        bars.set_xticks([j + 0.4 - width / 2 for j in range(len(panel.workloads))])
        bars.set_xticklabels(
            [name for _, name in panel.workloads], rotation=20, ha="right", fontsize=8
        )
        bars.set_yscale("log")
        bars.set_ylabel(f"{panel.unit} (log; missing = no bar)")
        if column == 0:
            bars.legend(fontsize=8)
    fig.suptitle(
        f"kvruntime vs the limit (plyvel) and peers — {machine.get('cpu_model')},"
        f" {machine.get('nproc')} cores, Python {machine.get('python')}",
        fontsize=10,
    )

    lat = fig.add_subplot(grid[1, :])
    for i, system in enumerate(systems):
        cell = by_key.get(("get_latency", system))
        if cell is None or cell.p50_ns is None or cell.p99_ns is None:
            continue
        lat.bar([i - 0.2], [cell.p50_ns / 1e3], width=0.4, color=colour[system])
        lat.bar(
            [i + 0.2],
            [cell.p99_ns / 1e3],
            width=0.4,
            color=colour[system],
            hatch="//",
            edgecolor="black",
        )
    lat.set_xticks(range(len(systems)))
    lat.set_xticklabels(systems)
    lat.set_yscale("log")
    lat.set_ylabel("µs (log)")
    lat.legend(
        handles=[
            Patch(facecolor="white", edgecolor="black", label="p50 (plain)"),
            Patch(facecolor="white", edgecolor="black", hatch="//", label="p99 (hatched)"),
        ],
        fontsize=8,
    )
    lat.set_title("sequential get latency, per system", fontsize=10)

    dbs = fig.add_subplot(grid[2, :])
    for system in systems:
        points = []
        for workload in databases:
            cell = by_key.get((workload, system))
            if cell is not None and cell.ops_per_s:
                points.append((int(workload.split("_")[1]), cell.ops_per_s))
        if points:
            dbs.plot(*zip(*points, strict=True), marker="o", label=system, color=colour[system])
    dbs.set_xscale("log")
    dbs.set_yscale("log")
    dbs.set_xlabel("databases written round-robin")
    dbs.set_ylabel("sets/s")
    if dbs.get_lines():  # a run with --only may have measured none of these
        dbs.legend(fontsize=8)
    counts = sizes.db_counts if sizes is not None else (1, 1000)
    dbs.set_title(f"throughput from {counts[0]} to {counts[-1]} databases", fontsize=10)
    fig.tight_layout()
    return fig


def draw(
    path: Path,
    cells: Sequence[Cell],
    machine: Mapping[str, object],
    sizes: Sizes | None = None,
) -> None:
    """Throughput per unit, get latency, and throughput over the db count, as a PNG."""
    fig = figure(cells, machine, sizes)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
