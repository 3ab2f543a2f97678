"""Which of the taken requests a round serves: fair across senders, bounded in bytes.

The kv loop serves a taken batch in *rounds*; each round ends with a flush
(one LevelDB write per db, then its answers). A batch whose blobs are no more
than ``ROUND_BYTES`` in all is one round, in arrival order (the hot path:
one pass over the blobs' sizes). A larger one is split (``fair_round``):

- Invariant 1: the requests are put in round-robin order across senders
  (by ``source.process``): every sender's first request, in the order the
  senders first appear, then every sender's second, and so on. Each sender's
  own requests keep their order.
- Invariant 2: a round is the longest prefix of that order whose blobs are no
  more than ``ROUND_BYTES`` in all, and never empty (a single larger request
  is a round of its own). The rest is served in later rounds, before anything
  taken later from the same sender (the loop keeps it first), so one sender's
  requests are still served, and answered, in the order they were accepted.

So a request taken beside a sender's pipelined big writes waits for at most
about one round of them, not for every one queued before it.
"""

from __future__ import annotations

from typing import Final, TypeVar

from protocol.ids import ProcessId

from ..kernel.message import Request, Response

__all__ = ["ROUND_BYTES", "fair_round", "split_round"]

#: The blob bytes one round serves at most (but a single larger request).
ROUND_BYTES: Final = 1 << 20

#: A taken message (the kv loop ignores a Response, but it is served in its turn).
M = TypeVar("M", bound=Request | Response)


def split_round(batch: list[M]) -> tuple[list[M], list[M]]:
    """(the round to serve now, the rest): the whole batch if its blobs fit."""
    spent = 0
    for message in batch:
        blob = message.blob
        if blob is not None:
            spent += len(blob)
    if spent <= ROUND_BYTES:
        return batch, []
    return fair_round(batch)


def fair_round(messages: list[M]) -> tuple[list[M], list[M]]:
    """(the first round of ``messages``, the rest), in round-robin order (invariants 1, 2)."""
    queues: dict[ProcessId, list[M]] = {}
    for message in messages:
        queue = queues.get(sender := message.source.process)
        if queue is None:
            queues[sender] = [message]
        else:
            queue.append(message)
    order: list[M] = []
    depth = 0
    while len(order) < len(messages):
        order.extend(queue[depth] for queue in queues.values() if depth < len(queue))
        depth += 1
    spent = 0
    for taken, message in enumerate(order):
        blob = message.blob
        size = 0 if blob is None else len(blob)
        if taken and spent + size > ROUND_BYTES:
            return order[:taken], order[taken:]
        spent += size
    return order, []
