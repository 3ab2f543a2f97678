"""Fixtures of the reliability tests (the figures they report: ``figures.py``)."""

from __future__ import annotations

import pytest

from tests.reliability.figures import Figures, figures_of

__all__ = ["Figures"]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """The session's figures, to add to."""
    return figures_of(request.config)
