"""The sizes of a run and the data every system gets: 16-byte keys, 100-byte values."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import attrs

__all__ = ["KEY_BYTES", "VALUE_BYTES", "Dataset", "Sizes", "keys", "values"]

KEY_BYTES = 16
VALUE_BYTES = 100
#: Distinct values cycled through, so LevelDB's block compression sees no repeats in a block.
_VALUE_POOL = 1024


@attrs.frozen(kw_only=True)
class Sizes:
    """How much one run does. ``full()`` is ``make bench``; ``quick()`` is ~20x smaller."""

    rounds: int
    sequential_ops: int
    concurrent_senders: int
    concurrent_ops_per_sender: int
    batch_size: int
    batches: int
    tx_size: int
    txs: int
    scan_keys: int
    latency_ops: int
    db_counts: tuple[int, ...]
    multi_db_ops: int
    memory_keys: int
    memory_requests: int

    @classmethod
    def full(cls) -> Sizes:
        """The sizes of ``make bench``."""
        return cls(
            rounds=5,
            sequential_ops=10_000,
            concurrent_senders=64,
            concurrent_ops_per_sender=200,
            batch_size=1000,
            batches=10,
            tx_size=100,
            txs=40,
            scan_keys=100_000,
            latency_ops=5_000,
            db_counts=(1, 10, 100, 1000, 10_000),
            multi_db_ops=5_000,
            memory_keys=1_000_000,
            memory_requests=200_000,
        )

    @classmethod
    def quick(cls) -> Sizes:
        """The sizes of ``make bench-quick``: every path runs, counts ~20x smaller."""
        return cls(
            rounds=2,
            sequential_ops=500,
            concurrent_senders=64,
            concurrent_ops_per_sender=10,
            batch_size=1000,
            batches=1,
            tx_size=100,
            txs=2,
            scan_keys=5_000,
            latency_ops=250,
            db_counts=(1, 10, 100),
            multi_db_ops=300,
            memory_keys=50_000,
            memory_requests=10_000,
        )


def keys(count: int, *, salt: str) -> list[bytes]:
    """``count`` distinct 16-byte keys in hash order (not sorted), the same for every system."""
    seed = salt.encode()
    return [
        hashlib.blake2b(i.to_bytes(8, "big"), digest_size=KEY_BYTES, key=seed).digest()
        for i in range(count)
    ]


def values(count: int) -> list[bytes]:
    """``count`` 100-byte values, cycling through a fixed pool of random ones."""
    rng = random.Random(4)
    pool = [rng.randbytes(VALUE_BYTES) for _ in range(_VALUE_POOL)]
    return [pool[i % _VALUE_POOL] for i in range(count)]


@attrs.frozen(kw_only=True)
class Dataset:
    """Keys and values of one workload round: aligned lists."""

    keys: Sequence[bytes]
    values: Sequence[bytes]

    @classmethod
    def make(cls, count: int, *, salt: str) -> Dataset:
        """``count`` fresh key/value pairs (a different ``salt`` gives different keys)."""
        return cls(keys=keys(count, salt=salt), values=values(count))

    def __len__(self) -> int:
        return len(self.keys)

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The pairs as a list."""
        return list(zip(self.keys, self.values, strict=True))

    def chunks(self, size: int) -> list[Dataset]:
        """The data cut into consecutive pieces of ``size`` (the last may be shorter)."""
        return [
            Dataset(keys=self.keys[i : i + size], values=self.values[i : i + size])
            for i in range(0, len(self.keys), size)
        ]

    def split(self, parts: int) -> list[Dataset]:
        """The data dealt into ``parts`` interleaved shares (one per concurrent sender)."""
        return [
            Dataset(keys=self.keys[i::parts], values=self.values[i::parts]) for i in range(parts)
        ]
