"""Types of ``_cstaging.c``: a transaction's buffered writes, ``set``'s hot path in C."""

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

class Staging(Generic[K, V]):
    """``_staging.StagingPy`` in C: ``set``'s hot path is one dict store, no frame."""

    _writes: dict[bytes, bytes | None]
    _ttls: dict[bytes, int]
    _raw_open: bool
    def set(self, key: K, value: V, *, ttl: float | None = None) -> None: ...
