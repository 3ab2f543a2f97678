"""``Kv``: a handle on one db, as process_lib's ``Kv<K, V>``.

``Kv`` is one class for users; its methods live in small modules by idea:
single-key reads and writes, atomics and transactions here; range reads and
deletes in ``_scans``, batches in ``_batches``, access control in ``_access``;
its state, limit checks and request plumbing in ``_core`` and ``_exchange``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, overload

from protocol.blobs import encode_cas
from protocol.hot import is_get_response, is_ok
from protocol.messages import (  # keys with a TTL (issue 14)
    BeginTx,
    BeginTxResponse,
    Commit,
    CompareAndSwap,
    Delete,
    ExistsResponse,
    Expire,
    GetResponse,
    Increment,
    IncrementResponse,
    OkResponse,
    Persist,
    Rollback,
    Set,
    SetExpiring,
    SetTtlPolicy,
    Ttl,
    TtlResponse,
    TxExists,
    TxGet,
)

from ._access import KvAccess
from ._batches import KvBatches
from ._checks import encoded, ttl_ms
from ._core import DEFAULT_MAX_BATCH_ITEMS, K, V
from ._exchange import answer, expect, unexpected
from ._scans import KvScans
from ._transaction import Transaction
from ._watch import KvWatch
from .codecs import Codec
from .errors import KeyNotFound, KvError, TransactionConflict, UnexpectedResponse

__all__ = ["Kv"]

K2 = TypeVar("K2")
V2 = TypeVar("V2")
D = TypeVar("D")
T = TypeVar("T")

_MISSING: Any = object()


class Kv(KvScans[K, V], KvBatches[K, V], KvAccess[K, V], KvWatch[K, V]):
    """An opened db. Keys and values go through codecs (raw bytes by default).

    Limits are checked here too, before anything is sent, as the server
    would (key first, then value): a key longer than ``max_key_bytes``
    raises KeyTooLarge, a value (bytes, or gathered chunks) longer than
    ``max_value_bytes`` ValueTooLarge. Both default to KvConfig's defaults;
    a runtime configured with other limits wants them passed to ``kv.open``.
    """

    __slots__ = ()  # the slots are KvCore's

    def typed(self, key_codec: Codec[K2], value_codec: Codec[V2]) -> Kv[K2, V2]:
        """The same db seen through other codecs."""
        return Kv(
            self._ctx,
            self._package_id,
            self._db,
            timeout=self._timeout,
            key_codec=key_codec,
            value_codec=value_codec,
            max_value_bytes=self._max_value,
            max_key_bytes=self._max_key,
        )

    @overload
    async def get(self, key: K, *, tx_id: int | None = None) -> V: ...
    @overload
    async def get(self, key: K, default: D, *, tx_id: int | None = None) -> V | D: ...
    async def get(self, key: K, default: Any = _MISSING, *, tx_id: int | None = None) -> Any:
        """The value of ``key``; ``default`` if given and the key is missing, else KeyNotFound.

        With ``tx_id``, read inside that transaction: its staged writes first,
        then the committed data (the read is checked for conflicts at commit).
        """
        raw = self._key_bytes(key)
        try:
            if tx_id is None:
                message = await self._send(self._encoder.get(raw))
                if message.blob is not None and is_get_response(message.body):
                    return self._value.decode(message.blob)
                response, blob = answer(message)
            else:
                response, blob = await self._call(TxGet(key=raw, tx_id=tx_id))
        except KeyNotFound:
            if default is _MISSING:
                raise
            return default
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(unexpected(response))
        return self._value.decode(blob)

    async def get_stream(self, key: K, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The stored bytes of ``key`` in chunks (the WASI ``stream<u8>`` shape)."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        response, blob = answer(await self._send(self._encoder.get(self._key_bytes(key))))
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(unexpected(response))
        return _chunks(blob, chunk_size)

    async def set(
        self,
        key: K,
        value: V | AsyncIterable[bytes],
        *,
        tx_id: int | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store ``value`` at ``key`` (staged in ``tx_id`` when given).

        ``value`` may be an async iterable of byte chunks; they are gathered up
        to the value-size limit. Past the key or value limit KeyTooLarge or
        ValueTooLarge is raised and nothing is sent. With ``ttl`` (seconds) the
        key expires that long from now; without, any expiry it had is cleared.
        """
        raw = self._key_bytes(key)
        ms = None if ttl is None else ttl_ms(ttl)
        if type(value) is not bytes and isinstance(value, AsyncIterable):
            blob = await self._gather(value)
        else:
            blob = self._value_bytes(value)
        if ms is not None:
            action = SetExpiring(key=raw, tx_id=tx_id, ttl_ms=ms)
            expect(OkResponse, (await self._call(action, blob))[0])
        elif tx_id is None:
            message = await self._send(self._encoder.set(raw), blob)
            if not is_ok(message.body):
                expect(OkResponse, answer(message)[0])
        else:
            expect(OkResponse, (await self._call(Set(key=raw, tx_id=tx_id), blob))[0])

    async def delete(self, key: K, *, tx_id: int | None = None) -> None:
        """Delete ``key`` (a missing key is fine); staged in ``tx_id`` when given."""
        raw = self._key_bytes(key)
        if tx_id is None:
            message = await self._send(self._encoder.delete(raw))
            if not is_ok(message.body):
                expect(OkResponse, answer(message)[0])
        else:
            expect(OkResponse, (await self._call(Delete(key=raw, tx_id=tx_id)))[0])

    async def exists(self, key: K, *, tx_id: int | None = None) -> bool:
        """Whether ``key`` is present (inside transaction ``tx_id`` when given)."""
        raw = self._key_bytes(key)
        if tx_id is None:
            response, _ = answer(await self._send(self._encoder.exists(raw)))
        else:
            response, _ = await self._call(TxExists(key=raw, tx_id=tx_id))
        if not isinstance(response, ExistsResponse):
            raise UnexpectedResponse(unexpected(response))
        return response.exists

    # --- keys with a TTL (issue 14) ---------------------------------------------------

    async def expire(self, key: K, seconds: float) -> None:
        """Make the present ``key`` expire ``seconds`` from now; KeyNotFound if absent."""
        action = Expire(key=self._key_bytes(key), ttl_ms=ttl_ms(seconds, "seconds"))
        expect(OkResponse, (await self._call(action))[0])

    async def persist(self, key: K) -> None:
        """Take the expiry off the present ``key`` (none is fine); KeyNotFound if absent."""
        expect(OkResponse, (await self._call(Persist(key=self._key_bytes(key))))[0])

    async def ttl(self, key: K) -> float | None:
        """The seconds the present ``key`` has left; None if it never expires.

        KeyNotFound if it is absent (an expired key is absent).
        """
        response, _ = await self._call(Ttl(key=self._key_bytes(key)))
        if not isinstance(response, TtlResponse):
            raise UnexpectedResponse(unexpected(response))
        return None if response.ttl_ms is None else response.ttl_ms / 1000

    async def set_ttl_policy(self, *, enabled: bool = True, max_ttl: float | None = None) -> None:
        """This db's TTL settings, kept with its data: whether keys may have a TTL
        (else TtlDisabled, and disabling takes every expiry off), and the longest
        one allowed in seconds (TtlTooLarge past it; None: no maximum)."""
        limit = None if max_ttl is None else ttl_ms(max_ttl, "max_ttl")
        expect(OkResponse, (await self._call(SetTtlPolicy(enabled=enabled, max_ttl_ms=limit)))[0])

    async def begin_tx(self) -> int:
        """Begin a transaction on this db; return its id."""
        response, _ = await self._call(BeginTx())
        if not isinstance(response, BeginTxResponse):
            raise UnexpectedResponse(unexpected(response))
        return response.tx_id

    async def commit_tx(self, tx_id: int) -> None:
        """Apply every write staged in ``tx_id`` at once."""
        response, _ = await self._call(Commit(tx_id=tx_id))
        if not isinstance(response, OkResponse):
            raise UnexpectedResponse(unexpected(response))

    async def rollback_tx(self, tx_id: int) -> None:
        """Abandon ``tx_id``: nothing it staged is applied."""
        expect(OkResponse, (await self._call(Rollback(tx_id=tx_id)))[0])

    async def transact(self, fn: Callable[[int], Awaitable[T]], *, retries: int = 3) -> T:
        """Run ``fn(tx_id)`` in a new transaction and commit it; return what ``fn`` returned.

        When the commit raises TransactionConflict (a key ``fn`` read inside
        the transaction changed meanwhile; nothing was applied), the whole
        transaction is run again, up to ``retries`` more times, and then the
        conflict is re-raised. If ``fn`` raises, the transaction is rolled back.
        """
        attempt = 0
        while True:
            tx_id = await self.begin_tx()
            try:
                result = await fn(tx_id)
            except Exception:
                with contextlib.suppress(KvError):
                    await self.rollback_tx(tx_id)
                raise
            try:
                await self.commit_tx(tx_id)
            except TransactionConflict:
                if attempt >= retries:
                    raise
                attempt += 1
                continue
            return result

    # --- pipelined transactions ---------------------------------------------------------

    def transaction(self, *, max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS) -> Transaction[K, V]:
        """A pipelined transaction: ``async with db.transaction() as tx: ...``.

        ``tx.set``/``tx.delete`` buffer writes here; ``await tx.get``/``tx.exists``
        read the buffer first, then the committed data inside a server
        transaction (begun on the first such read, and conflict-checked at
        commit). A clean exit applies every write in one request (atomically,
        as ``set_many``, when nothing was read; else a conflict-checked
        commit, which raises TransactionConflict and applies nothing if a key
        read changed). An exception in the block applies nothing. A buffer of
        more than ``max_batch_items`` writes (the server's batch limit) is
        sent in several requests and still commits atomically.
        """
        return Transaction(
            self._call,
            self._key,
            self._value,
            max_batch_items=max_batch_items,
            max_key_bytes=self._max_key,
            max_value_bytes=self._max_value,
        )

    async def transact_batched(
        self, fn: Callable[[Transaction[K, V]], Awaitable[T]], *, retries: int = 3
    ) -> T:
        """``transact`` for the pipelined form: run ``fn(tx)`` in ``db.transaction()``.

        On TransactionConflict the whole of ``fn`` runs again in a new
        transaction, up to ``retries`` more times, then the conflict is
        re-raised. If ``fn`` raises, nothing is applied.
        """
        attempt = 0
        while True:
            try:
                async with self.transaction() as tx:
                    result = await fn(tx)
            except TransactionConflict:
                if attempt >= retries:
                    raise
                attempt += 1
                continue
            return result

    # --- atomics -----------------------------------------------------------------------

    async def increment(self, key: K, delta: int = 1) -> int:
        """Add ``delta`` to the counter at ``key`` atomically and return the new value.

        The counter is a signed 64-bit integer stored as ASCII decimal (``get``
        reads ``b"42"``); a missing key counts from 0. A value that is not such
        an integer raises NotAnInteger, a result outside int64 IntegerOverflow;
        either way nothing changes.
        """
        action = Increment(key=self._key_bytes(key), delta=delta)
        return expect(IncrementResponse, (await self._call(action))[0]).value

    async def compare_and_swap(self, key: K, expected: V | None, new: V | None) -> None:
        """Set ``key`` to ``new`` if it now holds ``expected``, atomically.

        ``expected=None`` means the key must be absent; ``new=None`` deletes
        it. Otherwise raises CasMismatch, whose ``.current`` is the stored
        bytes (None when absent), and nothing changes.
        """
        raw = self._key_bytes(key)
        expected_raw = None if expected is None else encoded(self._value, expected, "expected")
        blob = encode_cas(expected_raw, None if new is None else self._value_bytes(new, "new"))
        expect(OkResponse, (await self._call(CompareAndSwap(key=raw), blob))[0])


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])
