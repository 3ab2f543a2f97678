"""The batch side of ``Kv``: many keys in one request, all or nothing for writes.

On a raw-bytes handle the pairs go as they are (no per-item codec calls)
once a few C-level passes found them well formed (``_checks``: otherwise
bytes-like entries are converted, anything else is a TypeError naming it);
sizes are checked here before anything is sent, as the server would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protocol.blobs import decode_optional_values, encode_keys
from protocol.codec import DecodeError
from protocol.messages import (
    DeleteMany,
    GetMany,
    GetManyResponse,
    KvAction,
    OkResponse,
    SetMany,
    SetManyExpiring,
    TxGetMany,
    WriteBatch,
)

from ._checks import pairs_blob, raw_keys, ttl_ms, writes_blob
from ._core import K, KvCore, V
from ._exchange import expect
from .codecs import BytesCodec, Codec
from .errors import UnexpectedResponse, check_batch_sizes

__all__ = ["KvBatches"]


class KvBatches(KvCore[K, V]):
    """``Kv``'s batch reads and writes."""

    __slots__ = ()

    async def get_many(self, keys: Iterable[K], *, tx_id: int | None = None) -> list[V | None]:
        """The values of ``keys`` in one request, aligned with them; None for a missing key.

        With ``tx_id``, read inside that transaction as ``get`` does: its staged
        writes first, then the committed data (checked for conflicts at commit).
        """
        raw = self._raw_keys(keys)
        if not raw:
            return []
        check_batch_sizes(raw, (), self._max_key, self._max_value)
        action: KvAction = (
            GetMany(count=len(raw)) if tx_id is None else TxGetMany(count=len(raw), tx_id=tx_id)
        )
        response, blob = await self._call(action, encode_keys(raw))
        response = expect(GetManyResponse, response)
        try:
            values = decode_optional_values(blob or b"", response.count)
        except DecodeError as exc:
            raise UnexpectedResponse(f"kv:distro:sys sent malformed values: {exc}") from exc
        if len(values) != len(raw):
            raise UnexpectedResponse(f"asked {len(raw)} keys, got {len(values)} values")
        decode = self._value.decode
        return [None if value is None else decode(value) for value in values]

    async def set_many(
        self, items: Mapping[K, V] | Iterable[tuple[K, V]], *, ttl: float | None = None
    ) -> None:
        """Write every pair in one atomic batch: all land or none do.

        A key given twice takes its last value. An empty batch sends nothing.
        With ``ttl`` (seconds) every key expires that long from now; without,
        any expiry they had is cleared.
        """
        ms = None if ttl is None else ttl_ms(ttl)
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if not self._raw:
            kenc, venc = _encoder(self._key), _encoder(self._value)
            pairs = [(kenc(k), venc(v)) for k, v in pairs]
        count, blob = pairs_blob(pairs, self._max_key, self._max_value)
        if count:
            action: KvAction = (
                SetMany(count=count) if ms is None else SetManyExpiring(count=count, ttl_ms=ms)
            )
            expect(OkResponse, (await self._call(action, blob))[0])

    async def delete_many(self, keys: Iterable[K]) -> None:
        """Delete every key in one atomic batch (missing keys are fine)."""
        raw = self._raw_keys(keys)
        check_batch_sizes(raw, (), self._max_key, self._max_value)
        if raw:
            expect(OkResponse, (await self._call(DeleteMany(count=len(raw)), encode_keys(raw)))[0])

    async def write_batch(self, ops: Mapping[K, V | None] | Iterable[tuple[K, V | None]]) -> None:
        """Apply sets and deletes (a None value deletes) in one atomic batch.

        All land or none do; a key given twice takes its last op. An empty
        batch sends nothing.
        """
        pairs = list(ops.items() if isinstance(ops, Mapping) else ops)
        if not self._raw:
            kenc, venc = _encoder(self._key), _encoder(self._value)
            pairs = [(kenc(k), None if v is None else venc(v)) for k, v in pairs]
        count, blob = writes_blob(pairs, self._max_key, self._max_value)
        if count:
            expect(OkResponse, (await self._call(WriteBatch(tx_id=None, count=count), blob))[0])

    def _raw_keys(self, keys: Iterable[K]) -> list[bytes]:
        """``keys`` encoded and checked (a raw key codec: as they are, in one pass)."""
        if isinstance(self._key, BytesCodec):
            return raw_keys(list(keys))
        return raw_keys([self._key.encode(key) for key in keys])


def _as_is(value: Any) -> Any:
    return value


def _encoder(codec: Codec[Any]) -> Callable[[Any], Any]:
    """``codec.encode``, or for BytesCodec nothing: ``pairs_blob`` checks the entries."""
    return _as_is if isinstance(codec, BytesCodec) else codec.encode
