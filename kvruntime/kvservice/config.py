"""Limits and knobs of the kv process, with their defaults."""

from __future__ import annotations

from protocol.limits import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES
from protocol.variant import Variant, frozen_value

__all__ = ["KvConfig"]

KiB = 1024
MiB = 1024 * KiB


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class KvConfig(Variant):
    """Configuration of kv:distro:sys. Every bound answers a typed error when reached."""

    #: Longest key accepted (``KeyTooLarge`` above it).
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    #: Longest value accepted (``ValueTooLarge`` above it).
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: Open transactions one sender may hold (``TooManyTransactions`` above it).
    max_transactions_per_sender: int = 64
    #: Bytes one transaction may stage (``TransactionTooLarge`` above it).
    max_transaction_bytes: int = 64 * MiB
    #: Seconds a transaction may sit unused before it expires.
    transaction_idle_seconds: float = 300.0
    #: Databases kept open at once (least recently used closed, reopened on
    #: demand). None: as many as the process's file limit allows, the soft limit
    #: raised to the hard one at start (``storage/file_budget.py``); a number is
    #: held to that budget too, so the kv never runs out of descriptors.
    max_open_dbs: int | None = None
    #: Requests the kv mailbox holds before senders wait (backpressure).
    mailbox_capacity: int = 1024
    #: Requests served in one batch (one LevelDB write batch for their plain writes).
    max_batch: int = 256
    #: Entries in one scan page, whatever the client asks (the page's upper bound).
    max_scan_items: int = 1000
    #: Bytes of keys and values in one scan page; a page stops before passing it
    #: (a page always holds at least one entry, so one value may exceed it).
    max_scan_bytes: int = 4 * MiB
    #: Bytes of values one GetMany / TxGetMany answer may hold (``AnswerTooLarge``
    #: above it); keep it at least ``max_value_bytes`` so that one value always fits.
    max_answer_bytes: int = 64 * MiB
    #: Bytes all open transactions of the node may stage together
    #: (``TransactionTooLarge`` with this ``max`` above it).
    max_staged_bytes_total: int = 1024 * MiB
    #: Keys in one GetMany / SetMany / DeleteMany (``BatchTooLarge`` above it).
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS
    #: fsync every write batch (survives power loss, at a cost; see the README).
    sync_writes: bool = False
    #: Seconds between two steps of the expired-key sweeper (keys with a TTL).
    expiry_sweep_seconds: float = 1.0
    #: Expired keys one sweeper step deletes at most, over every db.
    expiry_sweep_keys: int = 1000
    # --- change feeds (issue 14; kvservice/feeds.py) ---
    #: Changes a db's log retains (the oldest trimmed past it, in the same batch).
    watch_log_entries: int = 100_000
    #: Bytes of change records a db's log retains (keys and values of its records).
    watch_log_bytes: int = 64 * MiB
    #: Watches one process may hold at once (``TooManyWatches`` above it).
    max_watches_per_process: int = 64
    #: Watches the node holds at once (``TooManyWatches`` above it).
    max_watches: int = 10_000
    #: Changes in one pushed answer: the window a watcher's acknowledgement opens.
    #: As many as one batch may write (``max_batch_items``' default): a watcher
    #: gets at most one window per flush of the writer's, so a smaller window
    #: falls behind a writer of large batches for good (benchmarks/watch_lag.py).
    watch_window_items: int = DEFAULT_MAX_BATCH_ITEMS
    #: Bytes of keys and values in one pushed answer (one change always fits).
    watch_window_bytes: int = 1 * MiB
    #: Seconds a watch may go without asking for changes before a new watch may
    #: take its place at a bound (its process is presumed gone).
    watch_idle_seconds: float = 120.0
