"""``KvCore``: the state of a ``Kv`` handle, its limit checks and its one way to call.

The mixins that hold groups of ``Kv``'s methods (``_scans``, ``_batches``,
``_access``) build on it; only this class has slots, so ``Kv`` keeps one
slotted layout whatever the order of its bases.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable
from typing import Generic, TypeVar

from protocol.ids import IdError, PackageId, validate_db_name
from protocol.limits import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES
from protocol.messages import KeyTooLarge as KeyTooLargeError
from protocol.messages import KvAction, KvResponse
from protocol.messages import ValueTooLarge as ValueTooLargeError
from protocol.prefix import DbRequestEncoder

from ..kernel.message import Response
from ..kernel.process import ProcessContext
from ._checks import as_bytes, encoded
from ._exchange import exchange, kv_address
from .codecs import BytesCodec, Codec
from .errors import KeyTooLarge, ValueTooLarge

__all__ = [
    "DEFAULT_MAX_BATCH_ITEMS",
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "K",
    "KvCore",
    "V",
]

K = TypeVar("K")
V = TypeVar("V")


class KvCore(Generic[K, V]):
    """A db handle's state: where requests go, its codecs and its limits."""

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
        if not isinstance(package_id, PackageId):
            raise IdError(f"a db's package is a PackageId, got {type(package_id).__name__}")
        self._ctx = ctx
        self._package_id = package_id
        self._db = validate_db_name(db)
        self._timeout = timeout
        self._key = key_codec
        self._value = value_codec
        self._max_value = max_value_bytes
        self._max_key = max_key_bytes
        #: Raw bytes both ways: batches skip the per-item codec calls.
        self._raw = isinstance(key_codec, BytesCodec) and isinstance(value_codec, BytesCodec)
        self._encoder = DbRequestEncoder(package_id, db)
        self._target = kv_address(ctx)

    @property
    def package_id(self) -> PackageId:
        """The package owning the db."""
        return self._package_id

    @property
    def db(self) -> str:
        """The db's name."""
        return self._db

    def _key_bytes(self, key: K, what: str = "key") -> bytes:
        """``key`` encoded, or KeyTooLarge past the limit (TypeError, naming ``what``,
        for a raw key that is not bytes-like: see ``_checks``)."""
        # The hot path: one type test (a bytes subclass goes the long way, measured
        # as the bytes it holds). mypy does not narrow a TypeVar by ``type(x) is``.
        raw: bytes = (
            key  # type: ignore[assignment]
            if type(key) is bytes and self._raw
            else encoded(self._key, key, what)
        )
        if len(raw) > self._max_key:
            raise KeyTooLarge(KeyTooLargeError(size=len(raw), max=self._max_key))
        return raw

    def _value_bytes(self, value: V, what: str = "value") -> bytes:
        """``value`` encoded, or ValueTooLarge past the limit (TypeError as ``_key_bytes``)."""
        raw: bytes = (
            value  # type: ignore[assignment]
            if type(value) is bytes and self._raw
            else encoded(self._value, value, what)
        )
        if len(raw) > self._max_value:
            raise ValueTooLarge(ValueTooLargeError(size=len(raw), max=self._max_value))
        return raw

    async def _call(
        self, action: KvAction, blob: bytes | None = None
    ) -> tuple[KvResponse, bytes | None]:
        body = self._encoder.encode(action)
        return await exchange(self._ctx, self._target, body, blob, self._timeout)

    def _send(self, body: bytes, blob: bytes | None = None) -> Awaitable[Response]:
        """Send a body the encoder already wrote (its hot-action methods); await it
        for the raw answer, which the caller reads at once if it is the expected
        one (see ``protocol.hot``) and else hands to ``answer``. (Not a coroutine
        itself: one frame less for every resumption of the caller.)"""
        return self._ctx.send_and_await_response(
            self._target, body, blob=blob, timeout=self._timeout
        )

    async def _gather(self, chunks: AsyncIterable[bytes]) -> bytes:
        limit, size = self._max_value, 0
        parts: list[bytes] = []
        async for chunk in chunks:
            raw = as_bytes(chunk, f"value chunk {len(parts)}")
            size += len(raw)
            if size > limit:
                raise ValueTooLarge(ValueTooLargeError(size=size, max=limit))
            parts.append(raw)
        return b"".join(parts)
