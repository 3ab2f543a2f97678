"""How many LevelDBs this process may keep open: a budget drawn from its file limit.

A server raises its soft ``RLIMIT_NOFILE`` to the hard limit at start (the
soft one is often 1024 while the hard one allows far more), then sizes its
caches of open files to what the limit allows; Hyperware's fd_manager does
the same for its LevelDBs. ``open_db_budget`` is that sizing, pure.

What one open LevelDB holds (measured with plyvel 1.5.1 / LevelDB 1.22):
``FDS_PER_DB`` descriptors (LOCK, the info LOG, the write-ahead log and the
MANIFEST) and about 36 KiB of memory while its memtable is small. Its table
files are memory-mapped, up to 1000 maps per process, after which LevelDB
keeps a descriptor open per table file up to a fifth of the soft limit (read
when the first db opens, so the limit is raised before that). The budget
leaves LevelDB that fifth, and leaves the rest of the process (sockets,
pipes, logs, the dbs being opened in worker threads before the least
recently used are closed) a tenth plus 64.

Invariants: the budget is at least 1 for any limit; budget x FDS_PER_DB
plus LevelDB's fifth plus the headroom is at most the limit whenever the
limit allows one db at all.
"""

from __future__ import annotations

import resource
from typing import Final

__all__ = ["FDS_PER_DB", "open_db_budget", "raise_open_files_limit"]

#: Descriptors one open LevelDB holds (LOCK, LOG, its log file, MANIFEST).
FDS_PER_DB: Final = 4

#: What the budget assumes of an unlimited soft limit (the kernel's usual nr_open).
_UNLIMITED: Final = 1_048_576


def open_db_budget(soft_limit: int) -> int:
    """How many LevelDBs may be open at once under ``soft_limit`` descriptors (at least 1)."""
    leveldb_tables = soft_limit // 5
    headroom = 64 + soft_limit // 10
    return max(1, (soft_limit - leveldb_tables - headroom) // FDS_PER_DB)


def raise_open_files_limit() -> int:
    """Raise this process's soft file limit to its hard limit; the soft limit now.

    Never lowers it, and changes nothing if the system refuses.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and soft != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open
            pass
    return _UNLIMITED if soft == resource.RLIM_INFINITY else int(soft)
