"""The tables (Markdown, so the README can show them as printed) and the JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .results import LIMIT, OURS, Cell, SystemInfo
from .stats import ratio
from .targets import Verdict

__all__ = [
    "document",
    "format_results",
    "format_summary",
    "format_targets",
    "markdown_table",
    "write_json",
]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table whose columns are padded to line up in a terminal."""
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, the header {len(header)}")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _speed(cell: Cell) -> float | None:
    """The figure ratios compare: throughput, or 1/p50 for the latency workload."""
    if cell.group == "latency":
        return None if cell.p50_ns is None else 1e9 / cell.p50_ns
    return cell.ops_per_s


def _by_workload_then_loop(cells: Sequence[Cell]) -> list[Cell]:
    """The cells with each workload's loops side by side (first-seen order kept)."""
    workloads = {w: i for i, w in enumerate(dict.fromkeys(c.workload for c in cells))}
    loops = {lp: i for i, lp in enumerate(dict.fromkeys(c.loop for c in cells))}
    return sorted(cells, key=lambda c: (workloads[c.workload], loops[c.loop]))


def _loop_column(cells: Sequence[Cell]) -> bool:
    return any(c.loop for c in cells)


def format_results(cells: Sequence[Cell]) -> str:
    """One row per (workload, loop, system): ops/s, µs/op, p50/p99, ratio to plyvel and kvruntime.

    Ratios are speed ratios (higher is faster), taken on the same event loop;
    for the latency row they compare p50 latencies. A cell without a figure
    shows why. The loop column appears when the cells name their loop.
    """
    by_key = {(c.workload, c.system, c.loop): c for c in cells}
    with_loop = _loop_column(cells)
    rows = []
    for cell in _by_workload_then_loop(cells):
        head = [cell.title, *([cell.loop] if with_loop else []), cell.system]
        if cell.error is not None and cell.ops_per_s is None:
            rows.append([*head, f"missing: {cell.error}", "", "", "", "", ""])
            continue
        speed = _speed(cell)
        limit = by_key.get((cell.workload, LIMIT, cell.loop))
        ours = by_key.get((cell.workload, OURS, cell.loop))
        latency = cell.group == "latency"
        rows.append(
            [
                *head,
                "-" if latency else _num(cell.ops_per_s),
                "-" if latency or speed is None else _num(1e6 / speed, 1),
                _num(None if cell.p50_ns is None else cell.p50_ns / 1e3, 1),
                _num(None if cell.p99_ns is None else cell.p99_ns / 1e3, 1),
                _times(ratio(speed, _speed(limit) if limit else None)),
                _times(ratio(speed, _speed(ours) if ours else None)),
            ]
        )
    header = [
        "workload",
        *(["loop"] if with_loop else []),
        "system",
        "ops/s",
        "µs/op",
        "p50 µs",
        "p99 µs",
        "vs plyvel",
        "vs kvruntime",
    ]
    return markdown_table(header, rows)


def format_summary(cells: Sequence[Cell]) -> str:
    """One row per workload and loop, one column per system (ops/s; p50 µs for latency)."""
    systems = list(dict.fromkeys(c.system for c in cells))
    ordered = _by_workload_then_loop(cells)
    rows_of = list(dict.fromkeys((c.workload, c.title, c.group, c.loop) for c in ordered))
    by_key = {(c.workload, c.system, c.loop): c for c in cells}
    with_loop = _loop_column(cells)
    rows = []
    for workload, title, group, loop in rows_of:
        row = [title + (" (p50 µs)" if group == "latency" else ""), *([loop] if with_loop else [])]
        for system in systems:
            cell = by_key.get((workload, system, loop))
            if cell is None or (cell.ops_per_s is None and cell.p50_ns is None):
                row.append("missing")
            elif group == "latency":
                row.append(_num(None if cell.p50_ns is None else cell.p50_ns / 1e3, 1))
            else:
                row.append(_num(cell.ops_per_s))
        ours, limit = by_key.get((workload, OURS, loop)), by_key.get((workload, LIMIT, loop))
        row.append(_times(ratio(_speed(ours), _speed(limit)) if ours and limit else None))
        rows.append(row)
    header = ["workload", *(["loop"] if with_loop else []), *systems, "kvruntime / plyvel"]
    return markdown_table(header, rows)


def format_targets(verdicts: Sequence[Verdict]) -> str:
    """The issue's targets with the measured ratio and PASS / MISS / n/a."""
    rows = [[v.target, v.measured, v.verdict] for v in verdicts]
    return markdown_table(["target", "measured", "verdict"], rows)


def document(
    *,
    machine: Mapping[str, Any],
    sizes: Mapping[str, Any],
    systems: Sequence[SystemInfo],
    cells: Sequence[Cell],
    verdicts: Sequence[Verdict],
    memory: Mapping[str, Any] | None,
    memory_error: str | None,
) -> dict[str, Any]:
    """The JSON-ready record of a run."""
    return {
        "machine": dict(machine),
        "sizes": dict(sizes),
        "systems": [attrs.asdict(s) for s in systems],
        "results": [
            {**attrs.asdict(c), "rounds_ops_per_s": list(c.rounds), "ops_per_s": c.ops_per_s}
            for c in cells
        ],
        "targets": [attrs.asdict(v) for v in verdicts],
        "memory": dict(memory) if memory is not None else None,
        "memory_error": memory_error,
    }


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as indented JSON at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
