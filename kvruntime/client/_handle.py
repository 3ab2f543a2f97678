"""``Kv``: a handle on one db, as process_lib's ``Kv<K, V>``."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Generic, TypeVar, overload

from protocol.codec import decode_response, encode_request
from protocol.ids import Address, PackageId
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    Commit,
    Delete,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetResponse,
    KvAction,
    KvRequest,
    KvResponse,
    OkResponse,
    Set,
)
from protocol.messages import ValueTooLarge as ValueTooLargeError
from protocol.prefix import DbRequestEncoder

from ..config import KvConfig
from ..kv_process import KV_PROCESS_ID, kv_capability
from ..process import ProcessContext, Target
from .codecs import Codec
from .errors import KeyNotFound, UnexpectedResponse, ValueTooLarge, raise_kv_error

__all__ = ["Kv", "request"]

K = TypeVar("K")
V = TypeVar("V")
K2 = TypeVar("K2")
V2 = TypeVar("V2")
D = TypeVar("D")

_MISSING: Any = object()
#: Largest value the store accepts by default; a handle may be told otherwise.
DEFAULT_MAX_VALUE_BYTES = KvConfig().max_value_bytes


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
        raise_kv_error(response.error)
    return response, message.blob


class Kv(Generic[K, V]):
    """An opened db. Keys and values go through codecs (raw bytes by default)."""

    __slots__ = (
        "_ctx",
        "_db",
        "_encoder",
        "_key",
        "_max_value",
        "_package_id",
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
    ) -> None:
        self._ctx = ctx
        self._package_id = package_id
        self._db = db
        self._timeout = timeout
        self._key = key_codec
        self._value = value_codec
        self._max_value = max_value_bytes
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
        )

    async def _call(
        self, action: KvAction, blob: bytes | None = None
    ) -> tuple[KvResponse, bytes | None]:
        body = self._encoder.encode(action)
        return await _exchange(self._ctx, self._target, body, blob, self._timeout)

    @overload
    async def get(self, key: K) -> V: ...
    @overload
    async def get(self, key: K, default: D) -> V | D: ...
    async def get(self, key: K, default: Any = _MISSING) -> Any:
        """The value of ``key``; ``default`` if given and the key is missing, else KeyNotFound."""
        try:
            response, blob = await self._call(Get(key=self._key.encode(key)))
        except KeyNotFound:
            if default is _MISSING:
                raise
            return default
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(_unexpected(response))
        return self._value.decode(blob)

    async def get_stream(self, key: K, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The stored bytes of ``key`` in chunks (the WASI ``stream<u8>`` shape)."""
        response, blob = await self._call(Get(key=self._key.encode(key)))
        if not isinstance(response, GetResponse) or blob is None:
            raise UnexpectedResponse(_unexpected(response))
        return _chunks(blob, chunk_size)

    async def set(
        self, key: K, value: V | AsyncIterable[bytes], *, tx_id: int | None = None
    ) -> None:
        """Store ``value`` at ``key`` (staged in ``tx_id`` when given).

        ``value`` may be an async iterable of byte chunks; they are gathered up
        to the value-size limit, past which ValueTooLarge is raised and
        nothing is sent.
        """
        if isinstance(value, AsyncIterable):
            blob = await self._gather(value)
        else:
            blob = self._value.encode(value)
        await self._call(Set(key=self._key.encode(key), tx_id=tx_id), blob)

    async def delete(self, key: K, *, tx_id: int | None = None) -> None:
        """Delete ``key`` (a missing key is fine); staged in ``tx_id`` when given."""
        await self._call(Delete(key=self._key.encode(key), tx_id=tx_id))

    async def exists(self, key: K) -> bool:
        """Whether ``key`` is present."""
        response, _ = await self._call(Exists(key=self._key.encode(key)))
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
