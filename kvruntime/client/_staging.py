"""``Staging``: the base of ``Transaction`` that holds its buffered writes, ``set``'s hot path.

A transaction of many sets spends most of its client time in ``tx.set``. Where
built, ``Staging`` is ``_cstaging.c``'s (issue 12): its ``set`` is a C method
that, on the hot path, stores the pair with one dict store and no Python frame.
``StagingPy`` is the reference and the fallback where the extension is not built
(``HAVE_C``); both behave alike:

- they hold ``_writes`` (raw key -> raw value, None for a delete), ``_ttls``
  (raw key -> TTL in ms, for the writes that have one) and ``_raw_open`` (the
  codecs are raw bytes both ways and the block is still open), all three set
  by the subclass; the dicts are exact dicts;
- ``set(key, value, *, ttl=None)`` with ``ttl`` None, ``_raw_open`` set, no TTL
  staged and ``key`` and ``value`` exactly bytes stores ``_writes[key] = value``;
- any other call is handed, arguments as given, to ``self._set``, the
  subclass's full logic (checks, codecs, TTLs, the errors of a bad call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

try:
    from ._cstaging import Staging as _CStaging
except ImportError:  # not built (no compiler at install): the Python staging alone
    _CStaging = None  # type: ignore[assignment,misc]

__all__ = ["HAVE_C", "Staging", "StagingPy"]

K = TypeVar("K")
V = TypeVar("V")

#: Whether the compiled staging is in use (``_cstaging.c``).
HAVE_C: Final = _CStaging is not None


class StagingPy(Generic[K, V]):
    """The reference: ``Staging`` in Python."""

    __slots__ = ("_raw_open", "_ttls", "_writes")

    def __init__(self) -> None:
        self._writes: dict[bytes, bytes | None] = {}
        self._ttls: dict[bytes, int] = {}
        self._raw_open = False

    def set(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Buffer a write of ``value`` at ``key``; it is applied when the block ends.

        With ``ttl`` (seconds) the key expires that long after it is staged, at
        the block's end; without, any expiry it had is cleared.
        """
        if ttl is None and self._raw_open and not self._ttls and type(key) is bytes is type(value):
            # mypy does not narrow K and V by ``type(x) is``
            self._writes[key] = value  # type: ignore[index,assignment]
            return
        self._set(key, value, ttl=ttl)

    def _set(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """``set`` off its hot path: the subclass's."""
        raise NotImplementedError


if TYPE_CHECKING:
    Staging = StagingPy
else:
    Staging: Any = StagingPy if _CStaging is None else _CStaging
