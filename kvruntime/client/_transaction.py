"""``Transaction``: a pipelined transaction, as redis's MULTI/EXEC pipeline.

::

    async with db.transaction() as tx:
        balance = int(await tx.get(b"alice", b"0"))   # read through the server
        tx.set(b"alice", b"%d" % (balance - 5))        # buffered here
        tx.delete(b"pending:alice")                    # buffered here
    # on leaving the block: one request applies every write, or none

Invariants:
1. Writes are buffered in this process (a later write of a key replaces an
   earlier one) and reach the server only when the block ends cleanly.
2. Reads see the buffer first (read your writes). A read of a key not in the
   buffer goes to a server transaction, begun on the first such read, so the
   server remembers it for the optimistic conflict check.
3. A clean exit is one request when it can be: no server transaction ->
   ``WriteBatch(tx_id=nil)``, applied atomically like ``set_many``; a server
   transaction -> ``CommitBatch`` (stage + commit, conflict-checked). Only a
   buffer larger than ``max_batch_items`` is split: its first chunks are staged
   with ``WriteBatch(tx_id)`` and the last one commits.
4. An exception in the block discards the buffer and rolls the server
   transaction back (a cancellation leaves it to expire on the server). A
   refused commit other than a conflict (which ends it on the server) is
   rolled back too. Either way nothing of the transaction is applied.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, overload

from protocol.blobs import encode_writes
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    CommitBatch,
    ExistsResponse,
    GetResponse,
    KvAction,
    KvResponse,
    OkResponse,
    Rollback,
    SetExpiring,
    TxExists,
    TxGet,
    WriteBatch,
)
from protocol.messages import KeyNotFound as KeyNotFoundError

from ._checks import encoded, ttl_ms, writes_blob
from ._staging import Staging
from .codecs import BytesCodec, Codec
from .errors import KeyNotFound, KvError, TransactionConflict, UnexpectedResponse, check_pair_sizes

__all__ = ["Call", "Transaction"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

#: Sends one action (with its blob) on the transaction's db; raises the KvError it gets.
Call = Callable[[KvAction, bytes | None], Awaitable[tuple[KvResponse, bytes | None]]]

_MISSING: Any = object()
_EMPTY_WRITES: Final = encode_writes([])


class _State(enum.Enum):
    OPEN = "open"
    DONE = "done"


class Transaction(Staging[K, V], Generic[K, V]):
    """Writes buffered here and sent in one request at the end (see the module's invariants).

    Made by ``Kv.transaction()``; use it as ``async with db.transaction() as tx``.
    """

    # The buffer (_writes, _ttls) and _raw_open are the base's: ``set`` is
    # ``Staging``'s, compiled where built, with ``_set`` below off its hot path.
    __slots__ = (
        "_call",
        "_key",
        "_max_batch",
        "_max_key",
        "_max_value",
        "_state",
        "_tx_id",
        "_value",
    )

    def __init__(
        self,
        call: Call,
        key_codec: Codec[K],
        value_codec: Codec[V],
        *,
        max_batch_items: int,
        max_key_bytes: int,
        max_value_bytes: int,
    ) -> None:
        if max_batch_items < 1:
            raise ValueError("max_batch_items must be at least 1")
        super().__init__()  # an empty buffer: _writes, and _ttls, the TTL (ms) of each
        # buffered write that has one (issue 14)
        self._call = call
        self._key = key_codec
        self._value = value_codec
        self._max_batch = max_batch_items
        self._max_key = max_key_bytes
        self._max_value = max_value_bytes
        self._tx_id: int | None = None
        self._state = _State.OPEN
        #: Raw bytes both ways and the block still open: ``set``'s one flag on its
        #: hot path, where exact bytes are buffered as given, without codec calls;
        #: anything else goes through ``encoded`` (bytes-like converted, the rest
        #: a TypeError at the ``set`` that gave it).
        self._raw_open = isinstance(key_codec, BytesCodec) and isinstance(value_codec, BytesCodec)

    @property
    def tx_id(self) -> int | None:
        """The server transaction's id, once a read began one; None before."""
        return self._tx_id

    def __len__(self) -> int:
        """How many writes are buffered (one per key)."""
        return len(self._writes)

    # --- writes: buffered ---------------------------------------------------------------

    # ``set(key, value, *, ttl=None)``: the base's (``Staging``), which stores exact
    # bytes itself while ``_raw_open`` and no TTL is staged, and calls this otherwise.

    def _set(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """``set`` off its hot path (see ``set``)."""
        if ttl is not None:
            self._check_open()
            raw = encoded(self._key, key, "key")
            ms = ttl_ms(ttl)
            self._writes[raw] = encoded(self._value, value, "value")
            self._ttls[raw] = ms
            return
        if self._ttls:
            self._ttls.pop(encoded(self._key, key, "key"), None)
        if type(key) is bytes is type(value) and self._raw_open:
            # Raw bytes with a TTL staged: no codec calls (mypy does not narrow K
            # and V by ``type(x) is``).
            self._writes[key] = value  # type: ignore[index,assignment]
            return
        self._check_open()
        self._writes[encoded(self._key, key, "key")] = encoded(self._value, value, "value")

    def delete(self, key: K) -> None:
        """Buffer a delete of ``key`` (a missing key is fine)."""
        self._check_open()
        raw = encoded(self._key, key, "key")
        self._writes[raw] = None
        self._ttls.pop(raw, None)

    # --- reads: the buffer, then the server transaction ----------------------------------

    @overload
    async def get(self, key: K) -> V: ...
    @overload
    async def get(self, key: K, default: D) -> V | D: ...
    async def get(self, key: K, default: Any = _MISSING) -> Any:
        """The value of ``key`` as this transaction sees it; ``default`` or KeyNotFound if none.

        A key written in this transaction reads its buffered value (deleted:
        missing). Any other key is read inside the server transaction, and
        the commit fails with TransactionConflict if another writer changes
        it before then.
        """
        self._check_open()
        raw = encoded(self._key, key, "key")
        if raw in self._writes:
            value = self._writes[raw]
        else:
            tx_id = await self._server_tx()
            try:
                response, value = await self._call(TxGet(key=raw, tx_id=tx_id), None)
            except KeyNotFound:
                value = None
            else:
                if not isinstance(response, GetResponse) or value is None:
                    raise UnexpectedResponse(f"kv:distro:sys answered {response!r}")
        if value is not None:
            return self._value.decode(value)
        if default is _MISSING:
            raise KeyNotFound(KeyNotFoundError())
        return default

    async def exists(self, key: K) -> bool:
        """Whether ``key`` is present as this transaction sees it (read as ``get`` is)."""
        self._check_open()
        raw = encoded(self._key, key, "key")
        if raw in self._writes:
            return self._writes[raw] is not None
        tx_id = await self._server_tx()
        response, _ = await self._call(TxExists(key=raw, tx_id=tx_id), None)
        if not isinstance(response, ExistsResponse):
            raise UnexpectedResponse(f"kv:distro:sys answered {response!r}")
        return response.exists

    # --- the block ------------------------------------------------------------------------

    async def __aenter__(self) -> Transaction[K, V]:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._check_open()
        self._state = _State.DONE
        self._raw_open = False
        writes, self._writes = self._writes, {}
        ttls, self._ttls = self._ttls, {}
        if exc is not None:
            if isinstance(exc, Exception):  # not on cancellation: no await then
                await self._rollback()
            return
        try:
            # Sizes as kv would judge them, before anything is sent (a refusal here
            # rolls the server transaction back like any refused commit).
            ops = list(writes.items())
            if not ttls and self._tx_id is None and len(ops) <= self._max_batch:
                if ops:  # one atomic batch, checked as it is packed; no server transaction
                    count, blob = writes_blob(ops, self._max_key, self._max_value)
                    await self._ok(WriteBatch(tx_id=None, count=count), blob)
                return
            check_pair_sizes(ops, self._max_key, self._max_value)  # more than one request
            if ttls:  # staged one by one in the server transaction, then committed
                ops = await self._stage_expiring(ops, ttls)
            await self._commit(ops)
        except TransactionConflict:
            raise  # the server ended the transaction, applying nothing
        except Exception:
            await self._rollback()  # e.g. TransactionTooLarge leaves it open
            raise

    async def _commit(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        """Commit ``writes`` through the server transaction, in batches of at most
        ``max_batch`` (the last one with the commit)."""
        chunk = self._max_batch
        tx_id = await self._server_tx()
        last = max(0, len(writes) - chunk)
        for start in range(0, last, chunk):
            part = writes[start : min(start + chunk, last)]
            await self._ok(WriteBatch(tx_id=tx_id, count=len(part)), encode_writes(part))
        tail = writes[last:]
        blob = encode_writes(tail) if tail else _EMPTY_WRITES
        await self._ok(CommitBatch(tx_id=tx_id, count=len(tail)), blob)

    async def _stage_expiring(
        self, ops: list[tuple[bytes, bytes | None]], ttls: dict[bytes, int]
    ) -> list[tuple[bytes, bytes | None]]:
        """Stage the writes with a TTL (``SetExpiring``) in the server transaction;
        the other writes, left to commit."""
        tx_id = await self._server_tx()
        rest: list[tuple[bytes, bytes | None]] = []
        for key, value in ops:
            if key in ttls and value is not None:
                await self._ok(SetExpiring(key=key, tx_id=tx_id, ttl_ms=ttls[key]), value)
            else:
                rest.append((key, value))
        return rest

    async def _rollback(self) -> None:
        if self._tx_id is not None:
            with contextlib.suppress(KvError):  # NoTx: it ended (expired) already
                await self._ok(Rollback(tx_id=self._tx_id), None)

    async def _server_tx(self) -> int:
        if self._tx_id is None:
            response, _ = await self._call(BeginTx(), None)
            if not isinstance(response, BeginTxResponse):
                raise UnexpectedResponse(f"kv:distro:sys answered {response!r}")
            self._tx_id = response.tx_id
        return self._tx_id

    async def _ok(self, action: KvAction, blob: bytes | None) -> None:
        response, _ = await self._call(action, blob)
        if not isinstance(response, OkResponse):
            raise UnexpectedResponse(f"kv:distro:sys answered {response!r}")

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise RuntimeError("this transaction has ended; begin another with db.transaction()")
