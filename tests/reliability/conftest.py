"""Fixtures of the reliability tests, and the figures they report.

Each test adds what it tried to ``figures`` (kills survived, writes
verified, requests fuzzed, attacks tried, peak RSS under flood...); the
session prints the totals at the end of the run, after pytest's own summary,
so ``make test`` and ``make soak`` both show them.
"""

from __future__ import annotations

from collections import Counter

import pytest

__all__ = ["Figures"]


class Figures:
    """Counters and maxima gathered over one pytest session."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.peaks: dict[str, float] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        self.counts[name] += amount

    def peak(self, name: str, value: float) -> None:
        """Keep the largest ``value`` seen under ``name``."""
        self.peaks[name] = max(value, self.peaks.get(name, value))

    def lines(self) -> list[str]:
        """The summary, one figure a line."""
        out = [f"{name}: {count}" for name, count in sorted(self.counts.items())]
        out += [f"{name}: {value:g}" for name, value in sorted(self.peaks.items())]
        return out


_KEY = pytest.StashKey[Figures]()


def _figures_of(config: pytest.Config) -> Figures:
    if _KEY not in config.stash:
        config.stash[_KEY] = Figures()
    return config.stash[_KEY]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """The session's figures, to add to."""
    return _figures_of(request.config)


# Under pytest-xdist (`make test` runs ``-n``) each worker gathers its own
# figures and hands them to the controller when it ends, which prints the sum.
_WORKER_KEY = "kvruntime_figures"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker: hand this worker's figures to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        mine = _figures_of(session.config)
        workeroutput[_WORKER_KEY] = {"counts": dict(mine.counts), "peaks": mine.peaks}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In the xdist controller: add a finished worker's figures to the session's."""
    output = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    config = getattr(node, "config", None)
    if output is None or config is None:
        return
    figures = _figures_of(config)
    figures.counts.update(output["counts"])
    for name, value in output["peaks"].items():
        figures.peak(name, value)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the reliability figures of this run, if any test gathered some."""
    lines = _figures_of(config).lines()
    if lines:
        terminalreporter.section("reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
