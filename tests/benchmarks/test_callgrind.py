"""``python -m benchmarks.callgrind``: its workload runs (valgrind itself is not needed here)."""

from __future__ import annotations

import pytest

from benchmarks.callgrind import main


@pytest.mark.parametrize(
    "workload",
    [
        "get:1:3",
        "set:4:2",
        "get:2:3:asyncio",
        "set_many:1:2:asyncio",
        "scan:1:2",
        "scan_entries:1:2",
        "transaction:1:2",
    ],
)
def test_the_measured_workload_runs(workload: str) -> None:
    assert main(["--child", workload]) == 0


def test_an_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        main(["--child", "nope:1:1"])
