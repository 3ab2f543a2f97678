"""The issue's targets and their verdicts on one run (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .results import LIMIT, OURS, Cell
from .stats import ratio

__all__ = ["MEMORY_KEYS_LIMIT_BYTES", "RatioTarget", "Verdict", "evaluate", "ratio_targets"]

MEMORY_KEYS_LIMIT_BYTES = 150 * 1000 * 1000


@attrs.frozen(kw_only=True)
class RatioTarget:
    """kvruntime's throughput on ``workload`` must reach ``at_least`` x ``versus``'s."""

    workload: str
    versus: str
    at_least: float


@attrs.frozen(kw_only=True)
class Verdict:
    """One line of the targets table."""

    target: str
    measured: str
    #: "PASS", "MISS" or "n/a".
    verdict: str


def ratio_targets() -> list[RatioTarget]:
    """The issue's ratio targets, in its order."""
    out = []
    for workload, limit in (("set_seq", 0.12), ("get_seq", 0.10)):
        out.append(RatioTarget(workload=workload, versus=LIMIT, at_least=limit))
        out.append(RatioTarget(workload=workload, versus="pykka", at_least=1.5))
        out.append(RatioTarget(workload=workload, versus="redis", at_least=4.0))
    out += [
        RatioTarget(workload="set_conc", versus=LIMIT, at_least=0.25),
        RatioTarget(workload="get_conc", versus=LIMIT, at_least=0.25),
        RatioTarget(workload="set_many", versus=LIMIT, at_least=0.6),
        RatioTarget(workload="transaction", versus=LIMIT, at_least=0.5),
        RatioTarget(workload="scan", versus=LIMIT, at_least=0.5),
    ]
    return out


def _ratio_verdict(target: RatioTarget, cells: Mapping[tuple[str, str], Cell]) -> Verdict:
    label = f"{target.workload}: kvruntime ≥ {target.at_least:g} x {target.versus}"
    ours, theirs = cells.get((target.workload, OURS)), cells.get((target.workload, target.versus))
    for who, cell in ((OURS, ours), (target.versus, theirs)):
        if cell is None or cell.ops_per_s is None:
            why = cell.error if cell is not None and cell.error else "not measured"
            measured = why if why.startswith(f"{who}:") else f"{who}: {why}"
            return Verdict(target=label, measured=measured, verdict="n/a")
    assert ours is not None
    assert theirs is not None
    got = ratio(ours.ops_per_s, theirs.ops_per_s)
    assert got is not None
    return Verdict(
        target=label,
        measured=f"{got:.3f} x",
        verdict="PASS" if got >= target.at_least else "MISS",
    )


def _memory_verdicts(memory: Mapping[str, Any] | None, error: str | None) -> list[Verdict]:
    keys_label = "memory: 1M keys written, runtime RSS grows ≤ 150 MB"
    fire_label = "memory: 200k unawaited requests, bounded RSS, nothing lost"
    if memory is None:
        why = error or "not measured"
        return [
            Verdict(target=label, measured=why, verdict="n/a") for label in (keys_label, fire_label)
        ]
    keys, fire = memory["keys"], memory["fire"]
    growth = keys["rss_growth_bytes"]
    keys_verdict = Verdict(
        target=keys_label,
        measured=f"{growth / 1e6:.1f} MB over {keys['keys']:,} keys",
        verdict="PASS" if growth <= MEMORY_KEYS_LIMIT_BYTES else "MISS",
    )
    bound = fire["inflight_limit"] + fire["process_mailbox_capacity"]
    admitted = fire["kv_mailbox_capacity"] + bound
    rss_allowed = keys["rss_peak_growth_bytes"] + admitted * fire["per_message_bytes"]
    lost = fire["requests"] - fire["ok"]
    bounded = fire["max_in_flight"] <= bound
    rss_bounded = fire["rss_peak_growth_bytes"] <= rss_allowed
    fire_verdict = Verdict(
        target=fire_label,
        measured=(
            f"{fire['ok']:,}/{fire['requests']:,} answered Ok;"
            f" most sent-not-received {fire['max_in_flight']:,}"
            f" (bound {bound:,} = in-flight limit + process mailbox);"
            f" RSS peak +{fire['rss_peak_growth_bytes'] / 1e6:.1f} MB"
            f" (allowed {rss_allowed / 1e6:.1f} MB = awaited run's peak"
            f" + {admitted:,} messages x {fire['per_message_bytes']:,} B)"
        ),
        verdict="PASS" if lost == 0 and bounded and rss_bounded else "MISS",
    )
    return [keys_verdict, fire_verdict]


def evaluate(
    cells: Sequence[Cell], memory: Mapping[str, Any] | None, memory_error: str | None = None
) -> list[Verdict]:
    """Every target's verdict on this run."""
    by_key = {(cell.workload, cell.system): cell for cell in cells}
    verdicts = [_ratio_verdict(target, by_key) for target in ratio_targets()]
    return verdicts + _memory_verdicts(memory, memory_error)
