"""The kv client: what a process uses to keep data in kv:distro:sys.

Three shapes, as in the WASI key-value proposal's SDKs::

    db = await kv.open(ctx, ctx.package_id, "birthdays")   # a handle
    await db.set(b"alice", b"1990-04-01")

    await kv.set(ctx, "birthdays", b"bob", b"1985-12-24")  # a label per call

    stores = kv.stores(ctx)                                 # attribute access
    await stores.birthdays.get(b"bob")

Which calls create a db: ``kv.open`` (it sends Open, which creates the db if
missing and grants this process read and write; with ``create=False`` a
missing db is NoDb and nothing is made), and through a label
``kv.set`` / ``stores.<label>.set`` and ``stores.<label>.handle()``, which
open the label's db on first use. Reads and deletes through a label
(``kv.get``, ``kv.exists``, ``kv.delete``, ``stores.<label>.get`` /
``.exists`` / ``.delete``) never create one: on a db that does not exist
they raise ``NoDb`` and leave nothing on disk (a db another process of the
package created is opened for them). ``kv.handle`` sends nothing; its
calls on a missing db raise ``NoDb``.

The errors a process may catch are one family, exported here and from
``kvruntime``:

- ``KvError``: kv answered an error; one subclass per protocol variant
  (``NoDb``, ``KeyNotFound``, ``NoReadCap``, ``NoWriteCap``, ``KeyTooLarge``,
  ``ValueTooLarge``, ``TransactionConflict``, ``CasMismatch``, ...), with the
  protocol value as ``.error``. ``KeyTooLarge`` / ``ValueTooLarge`` are also
  raised before sending, as kv would answer them.
- ``UnexpectedResponse``: kv answered with the wrong kind (a protocol bug).
- ``SendError`` (``.kind`` a ``SendErrorKind``): the request was not
  delivered or not answered in time.
- ``CapabilityNotHeld``: ``share`` of a capability this process lacks.
- ``IdError`` (a ValueError): a package id, process id or address, or a db
  name that breaks the protocol's grammar (a lone surrogate included),
  raised before sending.

Local misuse is a builtin, raised before sending: ``TypeError`` for a key,
value, prefix or cursor that is not bytes, bytearray or memoryview (the
message names the argument and the type got) or a codec whose ``encode``
gives no bytes; ``ValueError`` for a prefix with start/end or a number
outside its wire range (``tx_id``, ``delta``, ``limit``). A codec raises
its own errors (``UnicodeEncodeError`` from ``Utf8Codec``, say).
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from protocol.ids import IdError, PackageId, validate_db_name
from protocol.messages import Open, RemoveDb

from ..kernel.errors import CapabilityNotHeld, SendError, SendErrorKind
from ..kernel.process import ProcessContext
from ._checks import as_bytes
from ._core import DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES
from ._exchange import request
from ._handle import Kv
from ._scans import Page
from ._transaction import Transaction
from ._watch import Change, Changes  # change feeds (issue 14)
from .codecs import BYTES, JSON, MSGPACK, BytesCodec, Codec, JsonCodec, MsgpackCodec, Utf8Codec
from .errors import (
    AddCapFailed,
    AnswerTooLarge,
    BatchTooLarge,
    CasMismatch,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyReserved,
    KeyTooLarge,
    KvError,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWatch,
    NoWriteCap,
    RemoteNotAllowed,
    TooManyTransactions,
    TooManyWatches,
    TransactionConflict,
    TransactionTooLarge,
    TtlDisabled,
    TtlTooLarge,
    UnexpectedResponse,
    ValueTooLarge,
    WatchCompacted,
    WatchEnded,
)

__all__ = [
    "BYTES",
    "JSON",
    "MSGPACK",
    "AddCapFailed",
    "AnswerTooLarge",
    "BatchTooLarge",
    "BytesCodec",
    "CapabilityNotHeld",
    "CasMismatch",
    "Change",
    "Changes",
    "Codec",
    "IdError",
    "IntegerOverflow",
    "IoError",
    "JsonCodec",
    "KeyNotFound",
    "KeyReserved",
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
    "NoWatch",
    "NoWriteCap",
    "NotAnInteger",
    "Page",
    "RemoteNotAllowed",
    "SendError",
    "SendErrorKind",
    "Stores",
    "TooManyTransactions",
    "TooManyWatches",
    "Transaction",
    "TransactionConflict",
    "TransactionTooLarge",
    "TtlDisabled",
    "TtlTooLarge",
    "UnexpectedResponse",
    "Utf8Codec",
    "ValueTooLarge",
    "WatchCompacted",
    "WatchEnded",
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
#: The timeout of the label forms' requests (``kv.handle``'s default).
_LABEL_TIMEOUT = 5.0


def _package(package_id: PackageId | str) -> PackageId:
    return package_id if isinstance(package_id, PackageId) else PackageId.parse(package_id)


@overload
async def open(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    create: bool = True,
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
    create: bool = True,
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
    create: bool = True,
    timeout: float = 5.0,
    key_codec: Codec[Any] = BYTES,
    value_codec: Codec[Any] = BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[Any, Any]:
    """Open ``db`` of ``package_id``, which must be this process's package.

    Grants this process read and write capabilities on it. A missing db is
    created, unless ``create=False``: then it is NoDb, and nothing is made
    (see ``_open``). To use a db another package shared with you, build
    ``Kv`` with ``kv.handle``.
    ``max_value_bytes`` and ``max_key_bytes`` are checked before sending
    (ValueTooLarge / KeyTooLarge); their defaults are KvConfig's.
    """
    opened = Kv(  # checks the name and id before anything is sent
        ctx,
        _package(package_id),
        db,
        timeout=timeout,
        key_codec=key_codec,
        value_codec=value_codec,
        max_value_bytes=max_value_bytes,
        max_key_bytes=max_key_bytes,
    )
    await _open(ctx, opened, create=create, timeout=timeout)
    return opened


def handle(
    ctx: ProcessContext,
    package_id: PackageId | str,
    db: str,
    *,
    timeout: float = 5.0,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> Kv[bytes, bytes]:
    """A handle on a db without opening it: for a db another package shared with you.

    Sends nothing (a db that does not exist answers its first call with NoDb,
    or NoReadCap/NoWriteCap for another package); a bad package id or db name
    is IdError here.
    """
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
    validate_db_name(db)
    await request(ctx, pkg, db, RemoveDb(), timeout=timeout)
    ctx.extensions.get(_HANDLES, {}).pop(db, None)


async def _open(ctx: ProcessContext, db: Kv[Any, Any], *, create: bool, timeout: float) -> None:
    """Send Open for ``db``; if not ``create``, only for a db that exists.

    Whether it exists a Capabilities request tells without creating
    anything: NoDb (raised) for a db that does not exist; the kinds held
    when this process holds both, so nothing more is sent; otherwise
    (another process of the package created it) Open grants them. (Open
    itself would create: a RemoveDb by another process of the package
    between the two requests leaves a new, empty db; kv has no "open if it
    exists" action.)
    """
    if create or await _held(db) != ["read", "write"]:
        await request(ctx, db.package_id, db.db, Open(), timeout=timeout)


async def _labelled(ctx: ProcessContext, label: str, *, create: bool) -> Kv[bytes, bytes]:
    """This package's db ``label``, as a handle cached in ``ctx``, opened by ``_open``.

    Nothing is cached for a db that ``_open`` found missing (NoDb).
    """
    handles: dict[str, Kv[bytes, bytes]] = ctx.extensions.setdefault(_HANDLES, {})
    db = handles.get(label)
    if db is None:
        db = handle(ctx, ctx.package_id, label)
        await _open(ctx, db, create=create, timeout=_LABEL_TIMEOUT)
        handles[label] = db
    return db


async def _held(db: Kv[Any, Any]) -> list[str]:
    """The kinds of ``db``'s capabilities this process holds; NoDb if there is no such db."""
    try:
        return await db.capabilities()
    except NoReadCap:  # it exists (NoDb comes first for this package), none held
        return []


def _key(key: bytes) -> bytes:
    return key if type(key) is bytes else as_bytes(key, "key")


@overload
async def get(ctx: ProcessContext, label: str, key: bytes) -> bytes: ...
@overload
async def get(ctx: ProcessContext, label: str, key: bytes, default: D) -> bytes | D: ...
async def get(ctx: ProcessContext, label: str, key: bytes, default: Any = _MISSING) -> Any:
    """The value of ``key`` in this package's db ``label``; NoDb if there is no such db."""
    key = _key(key)
    db = await _labelled(ctx, label, create=False)
    if default is _MISSING:
        return await db.get(key)
    return await db.get(key, default)


async def set(ctx: ProcessContext, label: str, key: bytes, value: bytes) -> None:
    """Store ``value`` at ``key`` in this package's db ``label`` (created on first use)."""
    key = _key(key)
    if type(value) is not bytes:
        value = as_bytes(value, "value")
    await (await _labelled(ctx, label, create=True)).set(key, value)


async def delete(ctx: ProcessContext, label: str, key: bytes) -> None:
    """Delete ``key`` from this package's db ``label``; NoDb if there is no such db."""
    key = _key(key)
    await (await _labelled(ctx, label, create=False)).delete(key)


async def exists(ctx: ProcessContext, label: str, key: bytes) -> bool:
    """Whether ``key`` is in this package's db ``label``; NoDb if there is no such db."""
    key = _key(key)
    return await (await _labelled(ctx, label, create=False)).exists(key)


class _LazyStore:
    """This package's db ``label``: reads and deletes never create it, ``set``/``handle`` do."""

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
        """The opened handle, for everything else (transactions, sharing, ...).

        Opens the db as ``kv.open`` does, creating it if missing.
        """
        return await _labelled(self._ctx, self._label, create=True)


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
