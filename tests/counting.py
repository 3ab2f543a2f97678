"""Work counted instead of timed: keys that count the comparisons made on them.

A test that an algorithm is not quadratic asserts how many comparisons it
made (repeatable on any machine), never how long it took.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ComparisonCounter"]


@attrs.define
class ComparisonCounter:
    """Makes keys (``key(b"...")``) whose ordering comparisons add to ``count``."""

    count: int = 0
    _kind: type[bytes] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        counter = self

        class CountedKey(bytes):
            __slots__ = ()

            def __lt__(self, other: Any) -> bool:
                counter.count += 1
                return bytes.__lt__(self, other)

            def __le__(self, other: Any) -> bool:
                counter.count += 1
                return bytes.__le__(self, other)

            def __gt__(self, other: Any) -> bool:
                counter.count += 1
                return bytes.__gt__(self, other)

            def __ge__(self, other: Any) -> bool:
                counter.count += 1
                return bytes.__ge__(self, other)

            __hash__ = bytes.__hash__

        self._kind = CountedKey

    def key(self, raw: bytes) -> bytes:
        """``raw`` as a key whose comparisons are counted."""
        return self._kind(raw)
