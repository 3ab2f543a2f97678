"""``Kv``: a handle on one db, as process_lib's ``Kv<K, V>``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Generic, TypeVar, overload

import attrs

from protocol.blobs import (
    decode_optional_values,
    decode_scan_page,
    encode_cas,
    encode_items,
    encode_keys,
    encode_writes,
)
from protocol.codec import DecodeError, decode_response, encode_request
from protocol.ids import Address, PackageId
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    Capabilities,
    CapabilitiesResponse,
    Commit,
    CompareAndSwap,
    Delete,
    DeleteMany,
    DeleteRange,
    DeleteRangeResponse,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetMany,
    GetManyResponse,
    GetResponse,
    Increment,
    IncrementResponse,
    KvAction,
    KvRequest,
    KvResponse,
    OkResponse,
    Revoke,
    Rollback,
    Scan,
    ScanResponse,
    Set,
    SetMany,
    TxExists,
    TxGet,
    TxGetMany,
    WriteBatch,
)
from protocol.messages import KeyTooLarge as KeyTooLargeError
from protocol.messages import ValueTooLarge as ValueTooLargeError
from protocol.prefix import DbRequestEncoder

from ..config import KvConfig
from ..kv_process import KV_PROCESS_ID, kv_capability
from ..process import ProcessContext, Target
from ._transaction import Transaction
from .codecs import BytesCodec, Codec
from .errors import (
    KeyNotFound,
    KeyTooLarge,
    KvError,
    TransactionConflict,
    UnexpectedResponse,
    ValueTooLarge,
    check_batch_sizes,
    raise_kv_error,
)

__all__ = ["Kv", "Page", "Transaction", "request"]

K = TypeVar("K")
V = TypeVar("V")
K2 = TypeVar("K2")
V2 = TypeVar("V2")
D = TypeVar("D")
T = TypeVar("T")

_MISSING: Any = object()
#: Largest value the store accepts by default; a handle may be told otherwise.
DEFAULT_MAX_VALUE_BYTES = KvConfig().max_value_bytes
#: Longest key the store accepts by default; a handle may be told otherwise.
DEFAULT_MAX_KEY_BYTES = KvConfig().max_key_bytes
#: Most writes the store accepts in one batch by default (``max_batch_items``).
DEFAULT_MAX_BATCH_ITEMS = KvConfig().max_batch_items


async def request(
    ctx: ProcessContext,
    package_id: PackageId,
    db: str,
    action: KvAction,
    *,
    blob: bytes | None = None,
    timeout: float,
) -> tuple[KvResponse, bytes | None]:
    """Send one KvRequest to kv:distro:sys; return the response and its blob.

    An ``Err`` response is raised as the client exception of its variant.
    """
    body = encode_request(KvRequest(package_id=package_id, db=db, action=action))
    return await _exchange(ctx, _kv_address(ctx), body, blob, timeout)


def _kv_address(ctx: ProcessContext) -> Address:
    return Address(node=ctx.our.node, process=KV_PROCESS_ID)


async def _exchange(
    ctx: ProcessContext, target: Address, body: bytes, blob: bytes | None, timeout: float
) -> tuple[KvResponse, bytes | None]:
    message = await ctx.send_and_await_response(target, body, blob=blob, timeout=timeout)
    response = decode_response(message.body)
    if isinstance(response, ErrResponse):
        raise_kv_error(response.error, message.blob)
    return response, message.blob


@attrs.frozen(kw_only=True)
class Page(Generic[K, V]):
    """One page of a scan: its entries in order, and the cursor that resumes after them.

    ``items`` holds ``(key, value)``; the value is None when the page was
    asked with ``keys_only``. ``cursor`` is the raw last key, or None when
    the scan is done. Pass it back as ``cursor=`` to continue strictly after
    it (strictly before it, in reverse).
    """

    items: list[tuple[K, V | None]]
    cursor: bytes | None


class Kv(Generic[K, V]):
    """An opened db. Keys and values go through codecs (raw bytes by default).

    Limits are checked here too, before anything is sent, as the server
    would (key first, then value): a key longer than ``max_key_bytes``
    raises KeyTooLarge, a value (bytes, or gathered chunks) longer than
    ``max_value_bytes`` ValueTooLarge. Both default to KvConfig's defaults;
    a runtime configured with other limits wants them passed to ``kv.open``.
    """

    __slots__ = (
        "_ctx",
        "_db",
        "_encoder",
        "_key",
        "_max_key",
        "_max_value",
        "_package_id",
        "_raw",
        "_target",
        "_timeout",
        "_value",
    )

    def __init__(
        self,
        ctx: ProcessContext,
        package_id: PackageId,
        db: str,
        *,
        timeout: float,
        key_codec: Codec[K],
        value_codec: Codec[V],
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        self._ctx = ctx
        self._package_id = package_id
        self._db = db
        self._timeout = timeout
        self._key = key_codec
        self._value = value_codec
        self._max_value = max_value_bytes
        self._max_key = max_key_bytes
        #: Raw bytes both ways: batches skip the per-item codec calls.
        self._raw = isinstance(key_codec, BytesCodec) and isinstance(value_codec, BytesCodec)
        self._encoder = DbRequestEncoder(package_id, db)
        self._target = _kv_address(ctx)

    @property
    def package_id(self) -> PackageId:
        """The package owning the db."""
        return self._package_id

    @property
    def db(self) -> str:
        """The db's name."""
        return self._db

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

    def _key_bytes(self, key: K) -> bytes:
        """``key`` encoded, or KeyTooLarge past the limit."""
        raw = self._key.encode(key)
        if len(raw) > self._max_key:
            raise KeyTooLarge(KeyTooLargeError(size=len(raw), max=self._max_key))
        return raw

    def _value_bytes(self, value: V) -> bytes:
        """``value`` encoded, or ValueTooLarge past the limit."""
        raw = self._value.encode(value)
        if len(raw) > self._max_value:
            raise ValueTooLarge(ValueTooLargeError(size=len(raw), max=self._max_value))
        return raw

    async def _call(
        self, action: KvAction, blob: bytes | None = None
    ) -> tuple[KvResponse, bytes | None]:
        body = self._encoder.encode(action)
        return await _exchange(self._ctx, self._target, body, blob, self._timeout)

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
        action: KvAction = Get(key=raw) if tx_id is None else TxGet(key=raw, tx_id=tx_id)
        try:
            response, blob = await self._call(action)
        except KeyNotFound:
            if default is _MISSING:
                raise
            return default
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(_unexpected(response))
        return self._value.decode(blob)

    async def get_stream(self, key: K, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The stored bytes of ``key`` in chunks (the WASI ``stream<u8>`` shape)."""
        response, blob = await self._call(Get(key=self._key_bytes(key)))
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(_unexpected(response))
        return _chunks(blob, chunk_size)

    async def set(
        self, key: K, value: V | AsyncIterable[bytes], *, tx_id: int | None = None
    ) -> None:
        """Store ``value`` at ``key`` (staged in ``tx_id`` when given).

        ``value`` may be an async iterable of byte chunks; they are gathered up
        to the value-size limit. Past the key or value limit KeyTooLarge or
        ValueTooLarge is raised and nothing is sent.
        """
        raw = self._key_bytes(key)
        if isinstance(value, AsyncIterable):
            blob = await self._gather(value)
        else:
            blob = self._value_bytes(value)
        await self._call(Set(key=raw, tx_id=tx_id), blob)

    async def delete(self, key: K, *, tx_id: int | None = None) -> None:
        """Delete ``key`` (a missing key is fine); staged in ``tx_id`` when given."""
        await self._call(Delete(key=self._key_bytes(key), tx_id=tx_id))

    async def exists(self, key: K, *, tx_id: int | None = None) -> bool:
        """Whether ``key`` is present (inside transaction ``tx_id`` when given)."""
        raw = self._key_bytes(key)
        action: KvAction = Exists(key=raw) if tx_id is None else TxExists(key=raw, tx_id=tx_id)
        response, _ = await self._call(action)
        if not isinstance(response, ExistsResponse):
            raise UnexpectedResponse(_unexpected(response))
        return response.exists

    async def begin_tx(self) -> int:
        """Begin a transaction on this db; return its id."""
        response, _ = await self._call(BeginTx())
        if not isinstance(response, BeginTxResponse):
            raise UnexpectedResponse(_unexpected(response))
        return response.tx_id

    async def commit_tx(self, tx_id: int) -> None:
        """Apply every write staged in ``tx_id`` at once."""
        response, _ = await self._call(Commit(tx_id=tx_id))
        if not isinstance(response, OkResponse):
            raise UnexpectedResponse(_unexpected(response))

    async def rollback_tx(self, tx_id: int) -> None:
        """Abandon ``tx_id``: nothing it staged is applied."""
        _expect(OkResponse, (await self._call(Rollback(tx_id=tx_id)))[0])

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

    async def write_batch(self, ops: Mapping[K, V | None] | Iterable[tuple[K, V | None]]) -> None:
        """Apply sets and deletes (a None value deletes) in one atomic batch.

        All land or none do; a key given twice takes its last op. An empty
        batch sends nothing.
        """
        pairs = list(ops.items() if isinstance(ops, Mapping) else ops)
        raw: list[tuple[bytes, bytes | None]]
        if self._raw:  # bytes as they are; kv checks every entry (MalformedRequest)
            raw = pairs
        else:
            kenc, venc = self._key.encode, self._value.encode
            raw = [(kenc(k), None if v is None else venc(v)) for k, v in pairs]
        if raw:
            check_batch_sizes(
                map(itemgetter(0), raw),
                (v for _, v in raw if v is not None),
                self._max_key,
                self._max_value,
            )
            await self._call(WriteBatch(tx_id=None, count=len(raw)), encode_writes(raw))

    # --- scans -------------------------------------------------------------------------

    async def list_page(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        keys_only: bool = False,
        limit: int | None = None,
        cursor: bytes | None = None,
        tx_id: int | None = None,
    ) -> Page[K, V]:
        """One page of entries in key order (descending when ``reverse``).

        The range is the keys starting with ``prefix`` (bytes, or text as
        UTF-8), or ``start <= key < end`` (keys through the key codec); not
        both. The server bounds the page (by default 1000 entries and 4 MiB)
        whatever ``limit`` asks. ``cursor`` is a previous page's cursor.
        """
        action = Scan(
            prefix=_raw_prefix(prefix, start, end),
            start=None if start is None else self._key_bytes(start),
            end=None if end is None else self._key_bytes(end),
            reverse=reverse,
            keys_only=keys_only,
            limit=limit,
            cursor=cursor,
            tx_id=tx_id,
        )
        response, blob = await self._call(action)
        response = _expect(ScanResponse, response)
        try:
            raw = decode_scan_page(blob or b"", response.count, keys_only=keys_only)
        except DecodeError as exc:
            raise UnexpectedResponse(f"kv:distro:sys sent a malformed page: {exc}") from exc
        if self._raw:
            return Page(items=raw, cursor=response.cursor)  # type: ignore[arg-type]
        key, value = self._key.decode, self._value.decode
        items = [(key(k), None if v is None else value(v)) for k, v in raw]
        return Page(items=items, cursor=response.cursor)

    async def scan(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        page_size: int | None = None,
        tx_id: int | None = None,
    ) -> AsyncIterator[tuple[K, V]]:
        """Every ``(key, value)`` in the range, pulled one page at a time as you iterate.

        Memory holds one page, not the db. Keys written or deleted while you
        iterate may or may not be seen; a key present throughout is seen once.
        """
        cursor: bytes | None = None
        while True:
            page = await self.list_page(
                prefix=prefix,
                start=start,
                end=end,
                reverse=reverse,
                limit=page_size,
                cursor=cursor,
                tx_id=tx_id,
            )
            for key, value in page.items:
                assert value is not None  # a page with values
                yield key, value
            if page.cursor is None:
                return
            cursor = page.cursor

    async def keys(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        page_size: int | None = None,
        tx_id: int | None = None,
    ) -> AsyncIterator[K]:
        """Every key in the range (no values sent), pulled one page at a time."""
        cursor: bytes | None = None
        while True:
            page = await self.list_page(
                prefix=prefix,
                start=start,
                end=end,
                reverse=reverse,
                keys_only=True,
                limit=page_size,
                cursor=cursor,
                tx_id=tx_id,
            )
            for key, _ in page.items:
                yield key
            if page.cursor is None:
                return
            cursor = page.cursor

    async def delete_range(
        self, *, prefix: bytes | str | None = None, start: K | None = None, end: K | None = None
    ) -> int:
        """Delete every key under ``prefix`` or in ``start <= key < end`` atomically; how many went.

        With no bounds at all, every key of the db goes.
        """
        action = DeleteRange(
            prefix=_raw_prefix(prefix, start, end),
            start=None if start is None else self._key_bytes(start),
            end=None if end is None else self._key_bytes(end),
        )
        return _expect(DeleteRangeResponse, (await self._call(action))[0]).count

    # --- batches -----------------------------------------------------------------------

    async def get_many(self, keys: Iterable[K], *, tx_id: int | None = None) -> list[V | None]:
        """The values of ``keys`` in one request, aligned with them; None for a missing key.

        With ``tx_id``, read inside that transaction as ``get`` does: its staged
        writes first, then the committed data (checked for conflicts at commit).
        """
        raw = [self._key.encode(key) for key in keys]
        if not raw:
            return []
        check_batch_sizes(raw, (), self._max_key, self._max_value)
        action: KvAction = (
            GetMany(count=len(raw)) if tx_id is None else TxGetMany(count=len(raw), tx_id=tx_id)
        )
        response, blob = await self._call(action, encode_keys(raw))
        response = _expect(GetManyResponse, response)
        try:
            values = decode_optional_values(blob or b"", response.count)
        except DecodeError as exc:
            raise UnexpectedResponse(f"kv:distro:sys sent malformed values: {exc}") from exc
        if len(values) != len(raw):
            raise UnexpectedResponse(f"asked {len(raw)} keys, got {len(values)} values")
        decode = self._value.decode
        return [None if value is None else decode(value) for value in values]

    async def set_many(self, items: Mapping[K, V] | Iterable[tuple[K, V]]) -> None:
        """Write every pair in one atomic batch: all land or none do.

        A key given twice takes its last value. An empty batch sends nothing.
        """
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if self._raw:  # bytes as they are; kv checks every entry (MalformedRequest)
            raw = pairs
        else:
            kenc, venc = self._key.encode, self._value.encode
            raw = [(kenc(k), venc(v)) for k, v in pairs]
        check_batch_sizes(
            map(itemgetter(0), raw), map(itemgetter(1), raw), self._max_key, self._max_value
        )
        if raw:
            await self._call(SetMany(count=len(raw)), encode_items(raw))

    async def delete_many(self, keys: Iterable[K]) -> None:
        """Delete every key in one atomic batch (missing keys are fine)."""
        raw = [self._key.encode(key) for key in keys]
        check_batch_sizes(raw, (), self._max_key, self._max_value)
        if raw:
            await self._call(DeleteMany(count=len(raw)), encode_keys(raw))

    # --- atomics -----------------------------------------------------------------------

    async def increment(self, key: K, delta: int = 1) -> int:
        """Add ``delta`` to the counter at ``key`` atomically and return the new value.

        The counter is a signed 64-bit integer stored as ASCII decimal (``get``
        reads ``b"42"``); a missing key counts from 0. A value that is not such
        an integer raises NotAnInteger, a result outside int64 IntegerOverflow;
        either way nothing changes.
        """
        action = Increment(key=self._key_bytes(key), delta=delta)
        return _expect(IncrementResponse, (await self._call(action))[0]).value

    async def compare_and_swap(self, key: K, expected: V | None, new: V | None) -> None:
        """Set ``key`` to ``new`` if it now holds ``expected``, atomically.

        ``expected=None`` means the key must be absent; ``new=None`` deletes
        it. Otherwise raises CasMismatch, whose ``.current`` is the stored
        bytes (None when absent), and nothing changes.
        """
        raw = self._key_bytes(key)
        expected_raw = None if expected is None else self._value.encode(expected)
        blob = encode_cas(expected_raw, None if new is None else self._value_bytes(new))
        await self._call(CompareAndSwap(key=raw), blob)

    # --- access control ----------------------------------------------------------------

    async def revoke(self, target: Target) -> None:
        """Take this db's read and write capabilities from the process at ``target``.

        Only a process of the owning package may; others get MismatchingPackageId.
        """
        process = self._ctx.resolve(target).process
        _expect(OkResponse, (await self._call(Revoke(process=process)))[0])

    async def capabilities(self) -> list[str]:
        """The kinds (``"read"``, ``"write"``) of capability this process holds on the db.

        Asked of the kv process; holding none raises NoReadCap.
        """
        held = _expect(CapabilitiesResponse, (await self._call(Capabilities()))[0])
        return [kind for kind, has in (("read", held.read), ("write", held.write)) if has]

    async def share(self, target: Target, *, write: bool = False) -> None:
        """Grant the process at ``target`` read access to this db (and write, if ``write``).

        Takes effect at once; raises CapabilityNotHeld unless this process
        holds the capabilities it shares.
        """
        node = self._ctx.our.node
        caps = [kv_capability(node, "read", self._package_id, self._db)]
        if write:
            caps.append(kv_capability(node, "write", self._package_id, self._db))
        self._ctx.share_capabilities(target, caps)

    async def _gather(self, chunks: AsyncIterable[bytes]) -> bytes:
        limit, size, parts = self._max_value, 0, []
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ValueTooLarge(ValueTooLargeError(size=size, max=limit))
            parts.append(bytes(chunk))
        return b"".join(parts)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def _unexpected(response: KvResponse) -> str:
    return f"kv:distro:sys answered {response!r}"


R = TypeVar("R", bound=KvResponse)


def _expect(kind: type[R], response: KvResponse) -> R:
    if not isinstance(response, kind):
        raise UnexpectedResponse(_unexpected(response))
    return response


def _raw_prefix(prefix: bytes | str | None, start: object, end: object) -> bytes | None:
    if prefix is None:
        return None
    if start is not None or end is not None:
        raise ValueError("give a prefix or start/end, not both")
    return prefix.encode("utf-8") if isinstance(prefix, str) else bytes(prefix)
