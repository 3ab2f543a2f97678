"""The chart: one unit per axis, a legend for p50/p99, and labels with the run's own counts."""

from __future__ import annotations

from pathlib import Path

from benchmarks.chart import draw, figure, panels
from benchmarks.data import Sizes
from benchmarks.results import Cell

SYSTEMS = ("kvruntime", "plyvel", "redis")
TITLES = {
    "set_seq": "sequential set, 1 sender",
    "set_many": "set_many of 1000 (pairs/s)",
    "scan": "scan of 100k keys (pairs/s)",
    "transaction": "tx of 100 sets + commit (sets/s)",
}


def _cells() -> list[Cell]:
    cells = [
        Cell(workload=w, title=t, system=s, rounds=(1000.0,))
        for w, t in TITLES.items()
        for s in SYSTEMS
    ]
    cells += [
        Cell(
            workload="get_latency",
            title="sequential get latency",
            system=s,
            group="latency",
            rounds=(1.0,),
            p50_ns=1000.0,
            p99_ns=5000.0,
        )
        for s in SYSTEMS
    ]
    return cells


def test_each_axis_counts_one_unit() -> None:
    units = {p.unit: [w for w, _ in p.workloads] for p in panels(_cells(), Sizes.quick())}
    assert units == {
        "ops/s": ["set_seq"],
        "pairs/s": ["set_many", "scan"],
        "sets/s": ["transaction"],
    }


def test_a_quick_run_is_labelled_with_its_own_counts() -> None:
    labels = {w: name for p in panels(_cells(), Sizes.quick()) for w, name in p.workloads}
    assert labels["scan"] == "scan of 5k keys"
    full = {w: name for p in panels(_cells(), Sizes.full()) for w, name in p.workloads}
    assert full["scan"] == "scan of 100k keys"
    fig = figure(_cells(), {}, Sizes.quick())
    texts = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert "scan of 5k keys" in texts
    assert not any("100k" in t for t in texts)
    assert any("1 to 100 databases" in ax.get_title() for ax in fig.axes)


def test_latency_bars_use_the_systems_colours_and_have_a_legend(tmp_path: Path) -> None:
    fig = figure(_cells(), {}, Sizes.quick())
    (lat,) = [ax for ax in fig.axes if "latency" in ax.get_title()]
    legend = lat.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["p50 (plain)", "p99 (hatched)"]
    colours = [p.get_facecolor() for p in lat.patches]
    assert colours[0] == colours[1]  # p50 and p99 of one system: its colour
    assert colours[0] != colours[2]  # the next system: another
    draw(tmp_path / "chart.png", _cells(), {}, Sizes.quick())
    assert (tmp_path / "chart.png").stat().st_size > 1000
