"""The benchmark's tables, summaries and target verdicts, on made-up figures."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.data import Dataset, Sizes
from benchmarks.report import format_results, format_summary, format_targets, markdown_table
from benchmarks.results import Cell, summarise
from benchmarks.targets import REPORTED_FOOTPRINTS, evaluate, ratio_targets


def _cell(workload: str, system: str, *rounds: float, **kw: Any) -> Cell:
    return Cell(workload=workload, title=workload, system=system, rounds=rounds, **kw)


def test_markdown_table_pads_columns() -> None:
    table = markdown_table(["a", "bb"], [["xxx", "y"]])
    assert table.splitlines() == ["| a   | bb |", "|-----|----|", "| xxx | y  |"]


def test_markdown_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["only one"]])


def test_summarise_takes_medians_over_rounds() -> None:
    cell = summarise(
        workload="get_latency",
        title="t",
        system="s",
        group="latency",
        samples=[(4, 1.0, [10, 20, 30, 40]), (4, 2.0, [10, 10, 10, 90]), (4, 4.0, [1, 2, 3, 4])],
        error=None,
    )
    assert cell.rounds == (4.0, 2.0, 1.0)
    assert cell.ops_per_s == 2.0
    assert cell.p50_ns == 10  # p50 of each round: 20, 10, 2
    assert cell.p99_ns == 40  # p99 of each round: 40, 90, 4


def test_summarise_keeps_the_reason_when_nothing_ran() -> None:
    cell = summarise(workload="w", title="t", system="s", group="g", samples=[], error="why")
    assert cell.ops_per_s is None
    assert cell.error == "why"


def test_results_table_shows_ratios_to_the_limit_and_to_kvruntime() -> None:
    cells = [
        _cell("set_seq", "plyvel", 100_000.0),
        _cell("set_seq", "kvruntime", 20_000.0),
        _cell("set_seq", "redis", 5_000.0),
        _cell("set_seq", "sqlite", error="sqlite: missing because of reasons"),
    ]
    lines = format_results(cells).splitlines()
    redis = next(line for line in lines if "| redis" in line)
    assert "5,000" in redis
    assert "200.0" in redis  # µs/op
    assert "0.05x" in redis  # vs plyvel
    assert "0.25x" in redis  # vs kvruntime
    kvruntime = next(line for line in lines if "| kvruntime" in line)
    assert "0.20x" in kvruntime
    assert "1.00x" in kvruntime
    assert "missing: sqlite: missing because of reasons" in next(
        line for line in lines if "| sqlite" in line
    )


def test_summary_has_a_column_per_system_and_the_ratio_to_the_limit() -> None:
    cells = [
        _cell("set_seq", "plyvel", 100_000.0),
        _cell("set_seq", "kvruntime", 20_000.0),
        _cell("set_seq", "redis", error="not on PATH"),
        _cell("get_latency", "plyvel", 1.0, group="latency", p50_ns=1_000.0),
        _cell("get_latency", "kvruntime", 1.0, group="latency", p50_ns=4_000.0),
        _cell("get_latency", "redis", error="not on PATH"),
    ]
    lines = format_summary(cells).splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "workload",
        "plyvel",
        "kvruntime",
        "redis",
        "kvruntime / plyvel",
    ]
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == [
        "set_seq",
        "100,000",
        "20,000",
        "missing",
        "0.20x",
    ]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == [
        "get_latency (p50 µs)",
        "1.0",
        "4.0",
        "missing",
        "0.25x",
    ]


def test_latency_rows_compare_p50() -> None:
    cells = [
        _cell("get_latency", "plyvel", 1.0, group="latency", p50_ns=1_000.0, p99_ns=2_000.0),
        _cell("get_latency", "kvruntime", 1.0, group="latency", p50_ns=10_000.0, p99_ns=50_000.0),
    ]
    row = format_results(cells).splitlines()[-1]
    assert "10.0" in row
    assert "50.0" in row
    assert "0.10x" in row


def _memory(growth: int, ok: int, in_flight: int, fire_peak: int = 25_000_000) -> dict[str, Any]:
    return {
        "keys": {
            "keys": 1_000_000,
            "rss_growth_bytes": growth,
            "rss_peak_growth_bytes": 20_000_000,
        },
        "fire": {
            "requests": 200_000,
            "ok": ok,
            "max_in_flight": in_flight,
            "inflight_limit": 1024,
            "kv_mailbox_capacity": 1024,
            "process_mailbox_capacity": 256,
            "rss_peak_growth_bytes": fire_peak,
            "rss_growth_after_first_quarter_bytes": 1_000_000,
            "per_message_bytes": 4096,
        },
    }


def test_targets_pass_miss_and_not_measured() -> None:
    cells = [
        _cell("set_seq", "plyvel", 100_000.0),
        _cell("set_seq", "kvruntime", 13_000.0),  # 0.13 >= 0.12: PASS
        _cell("set_seq", "pykka", 10_000.0),  # 1.3 < 1.5: MISS
        _cell("set_many", "kvruntime", error="not available yet"),
    ]
    verdicts = evaluate(cells, _memory(100_000_000, 200_000, 1000))
    by_target = {v.target: v for v in verdicts}
    assert len(verdicts) == len(ratio_targets()) + len(REPORTED_FOOTPRINTS) + 2
    assert by_target["set_seq: kvruntime ≥ 0.12 x plyvel"].verdict == "PASS"
    assert by_target["set_seq: kvruntime ≥ 0.12 x plyvel"].measured == "0.130 x"
    assert by_target["set_seq: kvruntime ≥ 1.5 x pykka"].verdict == "MISS"
    assert by_target["set_seq: kvruntime ≥ 4 x redis"].verdict == "n/a"
    many = by_target["set_many: kvruntime ≥ 0.7 x plyvel"]
    assert many.verdict == "n/a"
    assert "not available yet" in many.measured
    assert [v.verdict for v in verdicts[-2:]] == ["PASS", "PASS"]
    assert "| PASS" in format_targets(verdicts)


def test_each_target_is_judged_on_each_loop_against_that_loops_peer() -> None:
    cells = [
        _cell("get_conc", "plyvel", 100_000.0, loop="uvloop"),
        _cell("get_conc", "kvruntime", 21_000.0, loop="uvloop"),  # 0.21 >= 0.2
        _cell("get_conc", "plyvel", 50_000.0, loop="asyncio"),
        _cell("get_conc", "kvruntime", 9_000.0, loop="asyncio"),  # 0.18 < 0.2
    ]
    by_target = {v.target: v for v in evaluate(cells, None)}
    assert by_target["get_conc on uvloop: kvruntime ≥ 0.2 x plyvel"].measured == "0.210 x"
    assert by_target["get_conc on uvloop: kvruntime ≥ 0.2 x plyvel"].verdict == "PASS"
    assert by_target["get_conc on asyncio: kvruntime ≥ 0.2 x plyvel"].measured == "0.180 x"
    assert by_target["get_conc on asyncio: kvruntime ≥ 0.2 x plyvel"].verdict == "MISS"
    per_loop = len(ratio_targets()) + len(REPORTED_FOOTPRINTS)
    assert len(by_target) == 2 * per_loop + 2


def test_issue_12s_targets_are_declared_once_each() -> None:
    declared = [(t.workload, t.versus) for t in ratio_targets()]
    assert len(declared) == len(set(declared))
    wanted = {
        ("set_many", "pykka"): 1.0,
        ("set_many", "plyvel"): 0.7,
        ("transaction", "plyvel"): 0.7,
        ("scan", "pykka"): 1.0,
        ("scan", "sqlite"): 1.0,
        ("scan", "plyvel"): 0.6,
        ("scan_pages", "pykka"): 1.0,
        ("scan_pages", "sqlite"): 1.0,
        ("scan_pages", "plyvel"): 0.6,
        ("dbs_1000", "pykka"): 1.0,
        ("get_conc", "plyvel"): 0.2,
        ("set_seq", "plyvel"): 0.12,
        ("get_seq", "plyvel"): 0.10,
    }
    got = {(t.workload, t.versus): t.at_least for t in ratio_targets() if t.issue == 12}
    assert got == wanted


def test_the_many_db_row_reports_descriptors_and_rss() -> None:
    cells = [
        _cell("dbs_10000", "kvruntime", 400.0, descriptors=4004, rss_growth_bytes=52_000_000),
    ]
    verdict = next(v for v in evaluate(cells, None) if v.target.startswith("dbs_10000"))
    assert verdict.verdict == "reported"
    assert verdict.measured == (
        "400 ops/s; 4,004 descriptors open under its home, RSS +52.0 MB since its runtime started"
    )


def test_tables_print_each_workload_on_both_loops_side_by_side() -> None:
    cells = [
        _cell("set_seq", "plyvel", 100_000.0, loop="uvloop"),
        _cell("set_seq", "kvruntime", 20_000.0, loop="uvloop"),
        _cell("scan", "plyvel", 1_000_000.0, loop="uvloop"),
        _cell("scan", "kvruntime", 500_000.0, loop="uvloop"),
        _cell("set_seq", "plyvel", 100_000.0, loop="asyncio"),
        _cell("set_seq", "kvruntime", 10_000.0, loop="asyncio"),
        _cell("scan", "plyvel", 1_000_000.0, loop="asyncio"),
        _cell("scan", "kvruntime", 250_000.0, loop="asyncio"),
    ]
    rows = [
        [c.strip() for c in line.split("|")[1:-1]] for line in format_summary(cells).splitlines()
    ]
    assert rows[0] == ["workload", "loop", "plyvel", "kvruntime", "kvruntime / plyvel"]
    assert [(r[0], r[1], r[-1]) for r in rows[2:]] == [
        ("set_seq", "uvloop", "0.20x"),
        ("set_seq", "asyncio", "0.10x"),
        ("scan", "uvloop", "0.50x"),
        ("scan", "asyncio", "0.25x"),
    ]
    results = format_results(cells).splitlines()
    asyncio_kv = next(line for line in results if "asyncio" in line and "| kvruntime" in line)
    assert "0.10x" in asyncio_kv  # against plyvel on the same loop


def test_memory_targets_miss_on_growth_loss_or_unbounded_queue() -> None:
    assert evaluate([], _memory(151_000_000, 200_000, 10))[-2].verdict == "MISS"
    assert evaluate([], _memory(1, 199_999, 10))[-1].verdict == "MISS"
    assert evaluate([], _memory(1, 200_000, 5000))[-1].verdict == "MISS"
    # allowed: 20 MB awaited peak + (1024 + 1024 + 256) x 4096 B = 29.4 MB
    assert evaluate([], _memory(1, 200_000, 10, fire_peak=29_000_000))[-1].verdict == "PASS"
    assert evaluate([], _memory(1, 200_000, 10, fire_peak=30_000_000))[-1].verdict == "MISS"
    missing = evaluate([], None, "failed (exit 1)")
    assert [v.verdict for v in missing[-2:]] == ["n/a", "n/a"]
    assert missing[-1].measured == "failed (exit 1)"


def test_data_is_the_same_for_every_caller_and_sized_right() -> None:
    a, b = Dataset.make(100, salt="x"), Dataset.make(100, salt="x")
    assert a.keys == b.keys
    assert Dataset.make(100, salt="y").keys != a.keys
    assert {len(k) for k in a.keys} == {16}
    assert {len(v) for v in a.values} == {100}
    assert len(set(a.keys)) == 100
    shares = a.split(8)
    assert sum(len(s) for s in shares) == 100
    assert sorted(k for s in shares for k in s.keys) == sorted(a.keys)
    assert [len(c) for c in a.chunks(30)] == [30, 30, 30, 10]


def test_quick_sizes_are_about_twenty_times_smaller() -> None:
    full, quick = Sizes.full(), Sizes.quick()
    assert full.sequential_ops / quick.sequential_ops == 20
    assert full.memory_keys / quick.memory_keys == 20
    assert full.memory_requests / quick.memory_requests == 20
    assert quick.rounds >= 2
