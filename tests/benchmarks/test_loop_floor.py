"""The loop floor script (benchmarks/loop_floor.py) completes its round trips on both loops."""

from __future__ import annotations

import pytest

from benchmarks.loop_floor import main


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_round_trips_complete(loop: str) -> None:
    assert main([loop, "200"]) == 0


def test_an_unknown_count_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        main(["asyncio", "many"])
