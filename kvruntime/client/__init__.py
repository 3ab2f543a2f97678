"""The kv client: what a process uses to keep data in kv:distro:sys.

Three shapes, as in the WASI key-value proposal's SDKs::

    db = await kv.open(ctx, ctx.package_id, "birthdays")   # a handle
    await db.set(b"alice", b"1990-04-01")

    await kv.set(ctx, "birthdays", b"bob", b"1985-12-24")  # a label per call

    stores = kv.stores(ctx)                                 # attribute access
    await stores.birthdays.get(b"bob")

Every KvError arrives as one exception per variant under ``KvError``.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from protocol.ids import PackageId
from protocol.messages import Open, RemoveDb

from ..process import ProcessContext
from ._core import DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES
from ._exchange import request
from ._handle import Kv
from ._scans import Page
from ._transaction import Transaction
from .codecs import BYTES, JSON, MSGPACK, BytesCodec, Codec, JsonCodec, MsgpackCodec, Utf8Codec
from .errors import (
    AddCapFailed,
    AnswerTooLarge,
    BatchTooLarge,
    CasMismatch,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    KvError,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWriteCap,
    RemoteNotAllowed,
    TooManyTransactions,
    TransactionConflict,
    TransactionTooLarge,
    UnexpectedResponse,
    ValueTooLarge,
)

__all__ = [
    "BYTES",
    "JSON",
    "MSGPACK",
    "AddCapFailed",
    "AnswerTooLarge",
    "BatchTooLarge",
    "BytesCodec",
    "CasMismatch",
    "Codec",
    "IntegerOverflow",
    "IoError",
    "JsonCodec",
    "KeyNotFound",
    "KeyTooLarge",
    "Kv",
    "KvError",
    "LevelDbError",
    "MalformedRequest",
    "MismatchingPackageId",
    "MsgpackCodec",
    "NoDb",
    "NoReadCap",
    "NoTx",
    "NoWriteCap",
    "NotAnInteger",
    "Page",
    "RemoteNotAllowed",
    "Stores",
    "TooManyTransactions",
    "Transaction",
    "TransactionConflict",
    "TransactionTooLarge",
    "UnexpectedResponse",
    "Utf8Codec",
    "ValueTooLarge",
    "delete",
    "exists",
    "get",
    "handle",
    "open",
    "remove_db",
    "set",
    "stores",
]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")
_MISSING: Any = object()
_HANDLES = "kvruntime.client.handles"


def _package(package_id: PackageId | str) -> PackageId:
    return package_id if isinstance(package_id, PackageId) else PackageId.parse(package_id)


@overload
async def open(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    timeout: float = 5.0,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[bytes, bytes]: ...
@overload
async def open(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    timeout: float = 5.0,
    key_codec: Codec[K],
    value_codec: Codec[V],
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[K, V]: ...
async def open(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    timeout: float = 5.0,
    key_codec: Codec[Any] = BYTES,
    value_codec: Codec[Any] = BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[Any, Any]:
    """Open (creating if missing) ``db`` of ``package_id``, which must be this process's package.

    Grants this process read and write capabilities on it. To use a db
    another package shared with you, build ``Kv`` with ``kv.handle``.
    ``max_value_bytes`` and ``max_key_bytes`` are checked before sending
    (ValueTooLarge / KeyTooLarge); their defaults are KvConfig's.
    """
    pkg = _package(package_id)
    await request(ctx, pkg, db, Open(), timeout=timeout)
    return Kv(
        ctx,
        pkg,
        db,
        timeout=timeout,
        key_codec=key_codec,
        value_codec=value_codec,
        max_value_bytes=max_value_bytes,
        max_key_bytes=max_key_bytes,
    )


def handle(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    timeout: float = 5.0,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[bytes, bytes]:
    """A handle on a db without opening it: for a db another package shared with you."""
    return Kv(
        ctx,
        _package(package_id),
        db,
        timeout=timeout,
        key_codec=BYTES,
        value_codec=BYTES,
        max_value_bytes=max_value_bytes,
        max_key_bytes=max_key_bytes,
    )


async def remove_db(
    ctx: ProcessContext, package_id: PackageId | str, db: str, *, timeout: float = 5.0
) -> None:
    """Delete ``db`` of ``package_id`` (this process's package) with its data and capabilities."""
    pkg = _package(package_id)
    await request(ctx, pkg, db, RemoveDb(), timeout=timeout)
    ctx.extensions.get(_HANDLES, {}).pop(db, None)


async def _labelled(ctx: ProcessContext, label: str) -> Kv[bytes, bytes]:
    handles: dict[str, Kv[bytes, bytes]] = ctx.extensions.setdefault(_HANDLES, {})
    db = handles.get(label)
    if db is None:
        db = await open(ctx, ctx.package_id, label)
        handles[label] = db
    return db


@overload
async def get(ctx: ProcessContext, label: str, key: bytes) -> bytes: ...
@overload
async def get(ctx: ProcessContext, label: str, key: bytes, default: D) -> bytes | D: ...
async def get(ctx: ProcessContext, label: str, key: bytes, default: Any = _MISSING) -> Any:
    """The value of ``key`` in this package's db ``label`` (opened on first use)."""
    db = await _labelled(ctx, label)
    if default is _MISSING:
        return await db.get(key)
    return await db.get(key, default)


async def set(ctx: ProcessContext, label: str, key: bytes, value: bytes) -> None:
    """Store ``value`` at ``key`` in this package's db ``label`` (opened on first use)."""
    await (await _labelled(ctx, label)).set(key, value)


async def delete(ctx: ProcessContext, label: str, key: bytes) -> None:
    """Delete ``key`` from this package's db ``label`` (opened on first use)."""
    await (await _labelled(ctx, label)).delete(key)


async def exists(ctx: ProcessContext, label: str, key: bytes) -> bool:
    """Whether ``key`` is in this package's db ``label`` (opened on first use)."""
    return await (await _labelled(ctx, label)).exists(key)


class _LazyStore:
    """This package's db ``label``, opened on first use."""

    __slots__ = ("_ctx", "_label")

    def __init__(self, ctx: ProcessContext, label: str) -> None:
        self._ctx = ctx
        self._label = label

    async def get(self, key: bytes, default: Any = _MISSING) -> Any:
        """As ``Kv.get``."""
        return await get(self._ctx, self._label, key, default)

    async def set(self, key: bytes, value: bytes) -> None:
        """As ``Kv.set``."""
        await set(self._ctx, self._label, key, value)

    async def delete(self, key: bytes) -> None:
        """As ``Kv.delete``."""
        await delete(self._ctx, self._label, key)

    async def exists(self, key: bytes) -> bool:
        """As ``Kv.exists``."""
        return await exists(self._ctx, self._label, key)

    async def handle(self) -> Kv[bytes, bytes]:
        """The opened handle, for everything else (transactions, sharing, ...)."""
        return await _labelled(self._ctx, self._label)


class Stores:
    """This package's dbs by attribute (``stores.birthdays``) or item (``stores["my-db"]``)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: ProcessContext) -> None:
        self._ctx = ctx

    def __getattr__(self, label: str) -> _LazyStore:
        if label.startswith("__"):
            raise AttributeError(label)
        return _LazyStore(self._ctx, label)

    def __getitem__(self, label: str) -> _LazyStore:
        return _LazyStore(self._ctx, label)


def stores(ctx: ProcessContext) -> Stores:
    """This package's dbs by attribute: ``await kv.stores(ctx).birthdays.get(key)``."""
    return Stores(ctx)
