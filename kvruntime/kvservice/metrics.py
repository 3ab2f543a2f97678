"""What kv:distro:sys has served, counted for ``/metrics`` (Prometheus text format).

``KvMetrics`` is the one recorder: it owns the counts, what they mean, and the
series a scrape builds from them. The kv loop records into it inline, with
no call per flush: as it takes a batch, one ``batch_sizes`` increment; as it
sends a flush's answers (``KvProcess._send``), per answer one ``ok_counts``
increment (Ok) or a ``failed`` call (an error), and ``latency`` for an answer
that waited behind long work; per flush, ``latency_counts`` and
``latency_total`` for the answers of the batch it ends, and the flush's
``bytes_written`` and ``bytes_read``. Each outbox entry carries its action's
type and the moment its serving began (the batch it came in, or, for a
request that waited behind long work, when it first did), so the loop reads
the clock once per batch and once per flush. On that path the recorder is
plain ints, lists and dicts; ``prometheus_client`` is imported, and the series
are built, only when ``registry()`` is read (a scrape).

Invariants:
1. No global state: each KvProcess has its own recorder, and ``registry()``
   is a ``CollectorRegistry`` of its own (prometheus_client's default
   ``REGISTRY`` is never used), so two runtimes never mix their numbers.
2. Bounded: every map is keyed by action and result types, a fixed set.
3. Read-only from outside: a scrape reads copies; nothing it does changes
   what kv serves. Gauges are read through callables the runtime supplies.
4. Exact: latency slot k counts latencies under 2**k microseconds, slot
   ``latency_slot(nanoseconds)`` (what the loop computes inline); sums are
   ints (nanoseconds, bytes), divided only when a scrape builds the series.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from protocol.messages import KvError, OkResponse
from protocol.variant import Variant, frozen_value

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "KvMetrics"]

#: Latency buckets: bucket k counts latencies under 2**k microseconds (1 us .. 4.2 s),
#: slot ``latency_slot(nanoseconds)`` (no search, no float, on the hot path).
_LATENCY_SLOTS: Final = 64
LATENCY_BUCKETS: Final = tuple(2**k / 1e6 for k in range(23))
#: Upper bounds of the batch-size histogram's buckets (messages per batch).
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: The action of a request that could not be decoded.
UNDECODED: Final = "Undecoded"


def latency_slot(nanoseconds: int) -> int:
    """The slot of ``latency_counts`` a latency of ``nanoseconds`` falls in: k is the
    first with ``nanoseconds // 1000 < 2**k`` (the loop computes it inline)."""
    return (nanoseconds // 1000).bit_length()


def _histogram(
    name: str, doc: str, bounds: tuple[float, ...], counts: list[int], total: float
) -> Any:
    """A histogram family: ``counts[i]`` is what fell in bucket i of ``bounds`` (the
    last: above them all), not cumulative; ``total`` their sum."""
    from prometheus_client.core import HistogramMetricFamily

    cumulative, running = [], 0
    for bound, count in zip((*map(repr, bounds), "+Inf"), counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], cumulative, total)
    return family


class KvMetrics:
    """The recorder of one kv process (see the module's invariants).

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "_errors",
        "batch_sizes",
        "bytes_read",
        "bytes_written",
        "clock",
        "counters",
        "gauges",
        "latency_counts",
        "latency_total",
        "ok_counts",
    )

    #: Nanoseconds, monotonic, fine-grained: latency is measured with it.
    clock: Callable[[], int]
    #: Read at scrape time: the gauges' current values (set by the runtime).
    gauges: dict[str, Callable[[], float]]
    #: Read at scrape time: counters kept elsewhere (the change feeds'), by name:
    #: a total, or counts by the value of one label (``_COUNTER_DOCS``).
    counters: dict[str, Callable[[], float | dict[str, int]]]
    #: Bytes of values written (blobs of requests answered Ok) and read (blobs
    #: answered, errors' included: CasMismatch carries one); the loop adds each
    #: flush's.
    bytes_written: int
    bytes_read: int
    #: Requests answered Ok, by action type (None: not decoded); the loop adds one
    #: per Ok answer as it sends it.
    ok_counts: defaultdict[type | None, int]
    #: Requests answered an error, by (action type or None, error type).
    _errors: dict[tuple[type | None, type], int]
    #: Latency counts by ``latency_slot``, and their sum in nanoseconds (invariant 4).
    latency_counts: list[int]
    latency_total: int
    #: Batches taken from the mailbox, by size (bucketed at scrape time); the loop
    #: adds one as it takes each.
    batch_sizes: defaultdict[int, int]

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self.gauges = {}
        self.counters = {}
        self.bytes_written = 0
        self.bytes_read = 0
        self.ok_counts = defaultdict(int)
        self._errors = {}
        self.latency_counts = [0] * _LATENCY_SLOTS
        self.latency_total = 0
        self.batch_sizes = defaultdict(int)

    def latency(self, nanoseconds: int) -> None:
        """An answer left ``nanoseconds`` after its serving began (one that waited
        behind long work: the others are recorded by the loop, a flush at a time)."""
        self.latency_counts[latency_slot(nanoseconds)] += 1
        self.latency_total += nanoseconds

    def failed(self, action: type | None, error: KvError) -> None:
        """A request of ``action`` was answered ``error``."""
        key = (action, type(error))
        self._errors[key] = self._errors.get(key, 0) + 1

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """Requests answered so far, by (action, result): "Ok" or the error's name."""
        named: dict[tuple[str, str], int] = {}
        ok = [((action, OkResponse), n) for action, n in self.ok_counts.items()]
        counted = ok + list(self._errors.items())
        for (action, result), count in counted:
            key = (
                UNDECODED if action is None else action.__name__,
                "Ok" if result is OkResponse else result.__name__,
            )
            named[key] = named.get(key, 0) + count
        return named

    def registry(self) -> CollectorRegistry:
        """A new registry of its own whose every scrape reads this recorder (invariant 1)."""
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(metrics=self))
        return registry

    def _latency_slots(self) -> list[int]:
        """The latency counts per bucket of LATENCY_BUCKETS, then the rest (+Inf)."""
        counts = self.latency_counts
        return [*counts[: len(LATENCY_BUCKETS)], sum(counts[len(LATENCY_BUCKETS) :])]

    def _batch_counts(self) -> list[int]:
        counts = [0] * (len(BATCH_BUCKETS) + 1)
        for size, n in self.batch_sizes.items():
            counts[bisect_left(BATCH_BUCKETS, size)] += n
        return counts

    def families(self) -> list[Any]:
        """The ``kvruntime_*`` metric families, as of now."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        requests = CounterMetricFamily(
            "kvruntime_requests",
            "Requests kv:distro:sys answered, by action and result (Ok or the error).",
            labels=["action", "result"],
        )
        for (action, result), count in sorted(self.requests.items()):
            requests.add_metric([action, result], count)
        families: list[Any] = [
            requests,
            _histogram(
                "kvruntime_request_latency_seconds",
                "Seconds from a request's decoding to its answer leaving kv:distro:sys.",
                LATENCY_BUCKETS,
                self._latency_slots(),
                self.latency_total / 1e9,
            ),
            _histogram(
                "kvruntime_batch_size",
                "Messages kv:distro:sys took from its mailbox at once.",
                BATCH_BUCKETS,
                self._batch_counts(),
                float(sum(size * n for size, n in self.batch_sizes.items())),
            ),
            CounterMetricFamily(
                "kvruntime_written_bytes",
                "Bytes of values in requests answered Ok (Set, staged Set, ...).",
                value=self.bytes_written,
            ),
            CounterMetricFamily(
                "kvruntime_read_bytes",
                "Bytes of values in answers (Get, Scan, ...).",
                value=self.bytes_read,
            ),
        ]
        for name, read in sorted(self.gauges.items()):
            families.append(GaugeMetricFamily(f"kvruntime_{name}", _GAUGE_DOCS[name], value=read()))
        for name, read_counter in sorted(self.counters.items()):
            doc, label = _COUNTER_DOCS[name]
            got = read_counter()
            if isinstance(got, dict):
                family = CounterMetricFamily(f"kvruntime_{name}", doc, labels=[label or "kind"])
                for value, n in sorted(got.items()):
                    family.add_metric([value], n)
            else:
                family = CounterMetricFamily(f"kvruntime_{name}", doc, value=got)
            families.append(family)
        return families


#: What each gauge the runtime may supply means.
_GAUGE_DOCS: Final = {
    "open_dbs": "Dbs open in the storage engine.",
    "open_transactions": "Transactions open in kv:distro:sys.",
    "mailbox_depth": "Messages waiting in kv:distro:sys's mailbox.",
    "watches": "Watches open in kv:distro:sys (change feeds).",
}

#: What each counter the runtime may supply means, and its label (None: a total).
_COUNTER_DOCS: Final[dict[str, tuple[str, str | None]]] = {
    "watch_changes_logged": ("Changes written into the dbs' change logs.", None),
    "watch_changes_delivered": ("Changes sent to watchers (each watcher counts).", None),
    "watches_ended": (
        "Watches ended, by reason: unwatched, idle, compacted, db_removed, access_revoked.",
        "reason",
    ),
}


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class _Collector(Variant):
    """A prometheus_client collector over one recorder."""

    metrics: KvMetrics

    def collect(self) -> Any:
        return iter(self.metrics.families())
