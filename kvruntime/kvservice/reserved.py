"""The reserved keyspace: kv's own records, stored in each db beside its data.

kv keeps records about a db's data in the db itself (a key's expiry
deadline, the change log, per-db settings), so that they are written in the
*same* atomic ``Store.write`` batch as the data they describe, on every
engine (LevelDB's WriteBatch, the memory engine, Redis Cluster's EVAL),
without a new engine API: a crash never shows one without the other.

They live at the top of the key space: every key starting with
``RESERVED`` (eight 0xff bytes) is kv's, never a user's. As no key sorts
above a run of 0xff bytes except its extensions, the region
``[RESERVED, inf)`` is exactly the keys starting with it, so:

- ``is_reserved(key)`` is one comparison, ``key >= RESERVED`` (the hot Set
  and Delete path pays one bytes compare);
- a range is kept off kv's records by clamping its stop to ``RESERVED``
  (``clamp_stop``): no scan, DeleteRange or prefix form sees or deletes one.

Layout: after ``RESERVED``, one byte names the kind of record (table below);
each kind's own layout follows it. A kind is reserved here once, even when
another module owns its records.

| sub-prefix | record | owner |
|---|---|---|
| ``l`` + seq (8 bytes, big-endian) | one change of the change log | watch (issue 14) |
| ``s`` | the last seq given | watch (issue 14) |
| ``x`` + key | the key's expiry deadline | expiry (issue 14) |
| ``X`` + deadline + key | the expiry index, in deadline order | expiry (issue 14) |
| ``c`` | the db's settings | expiry (issue 14) |

Invariants:
1. No user write path (set, delete, batches, transactions, increment,
   compare-and-swap) writes a reserved key: each answers ``KeyReserved``.
2. No user read sees one: Get and GetMany answer it as absent, Exists as
   False; scans and DeleteRange never reach one (``clamp_stop``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHANGE_LOG",
    "DEADLINE",
    "EXPIRY_INDEX",
    "LAST_SEQ",
    "RESERVED",
    "SETTINGS",
    "clamp_stop",
    "is_reserved",
]

#: The first key of kv's own region; every key starting with it is kv's.
RESERVED: Final = b"\xff" * 8

#: The change log: ``CHANGE_LOG + seq.to_bytes(8, "big")`` -> one change.
CHANGE_LOG: Final = RESERVED + b"l"
#: The last seq given to a change of this db.
LAST_SEQ: Final = RESERVED + b"s"
#: ``DEADLINE + key`` -> the key's expiry deadline.
DEADLINE: Final = RESERVED + b"x"
#: ``EXPIRY_INDEX + deadline + key`` -> empty: the keys in the order they expire.
EXPIRY_INDEX: Final = RESERVED + b"X"
#: The db's settings.
SETTINGS: Final = RESERVED + b"c"


def is_reserved(key: bytes) -> bool:
    """Whether ``key`` is kv's own (starts with ``RESERVED``): one comparison."""
    return key >= RESERVED


def clamp_stop(stop: bytes | None) -> bytes:
    """The exclusive stop of a range, lowered to ``RESERVED`` so that it ends
    before kv's records (``None``, the open end, becomes ``RESERVED``)."""
    return RESERVED if stop is None or stop > RESERVED else stop
