"""The chart of a run (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend is chosen first

from .results import Cell

__all__ = ["draw"]


def draw(path: Path, cells: Sequence[Cell], machine: Mapping[str, object]) -> None:
    """Throughput per workload, get latency, and throughput over the db count."""
    systems = list(dict.fromkeys(c.system for c in cells))
    by_key = {(c.workload, c.system): c for c in cells}
    throughput = list(
        dict.fromkeys((c.workload, c.title) for c in cells if c.group == "throughput")
    )
    databases = list(dict.fromkeys(c.workload for c in cells if c.group == "databases"))

    fig, (bars, lat, dbs) = plt.subplots(
        3, 1, figsize=(12, 14), gridspec_kw={"height_ratios": [3, 1.4, 1.6]}
    )
    width = 0.8 / max(len(systems), 1)
    for i, system in enumerate(systems):
        heights = []
        for workload, _ in throughput:
            cell = by_key.get((workload, system))
            heights.append(cell.ops_per_s if cell and cell.ops_per_s else 0.0)
        xs = [j + i * width for j in range(len(throughput))]
        bars.bar(xs, heights, width=width, label=system)
    bars.set_xticks([j + 0.4 - width / 2 for j in range(len(throughput))])
    bars.set_xticklabels([title for _, title in throughput], rotation=20, ha="right", fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("ops/s (log; missing = no bar)")
    bars.legend(fontsize=8)
    bars.set_title(
        f"kvruntime vs the limit (plyvel) and peers — {machine.get('cpu_model')},"
        f" {machine.get('nproc')} cores, Python {machine.get('python')}",
        fontsize=10,
    )

    for i, system in enumerate(systems):
        cell = by_key.get(("get_latency", system))
        if cell is None or cell.p50_ns is None or cell.p99_ns is None:
            continue
        lat.bar([i - 0.2], [cell.p50_ns / 1e3], width=0.4, color="tab:blue")
        lat.bar([i + 0.2], [cell.p99_ns / 1e3], width=0.4, color="tab:orange")
    lat.set_xticks(range(len(systems)))
    lat.set_xticklabels(systems)
    lat.set_yscale("log")
    lat.set_ylabel("µs (blue p50, orange p99)")
    lat.set_title("sequential get latency", fontsize=10)

    for system in systems:
        points = []
        for workload in databases:
            cell = by_key.get((workload, system))
            if cell is not None and cell.ops_per_s:
                points.append((int(workload.split("_")[1]), cell.ops_per_s))
        if points:
            dbs.plot(*zip(*points, strict=True), marker="o", label=system)
    dbs.set_xscale("log")
    dbs.set_yscale("log")
    dbs.set_xlabel("databases written round-robin")
    dbs.set_ylabel("sets/s")
    if dbs.get_lines():  # a run with --only may have measured none of these
        dbs.legend(fontsize=8)
    dbs.set_title("throughput from 1 to 1000 databases", fontsize=10)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
