"""The batch side of ``Kv``: many keys in one request, all or nothing for writes.

On a raw-bytes handle the pairs go as they are (no per-item codec calls);
sizes are checked here before anything is sent, as the server would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from protocol.blobs import decode_optional_values, encode_items, encode_keys, encode_writes
from protocol.codec import DecodeError
from protocol.messages import (
    DeleteMany,
    GetMany,
    GetManyResponse,
    KvAction,
    SetMany,
    TxGetMany,
    WriteBatch,
)

from ._core import K, KvCore, V
from ._exchange import expect
from .errors import UnexpectedResponse, check_batch_sizes, check_pair_sizes

__all__ = ["KvBatches"]


class KvBatches(KvCore[K, V]):
    """``Kv``'s batch reads and writes."""

    __slots__ = ()

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
        response = expect(GetManyResponse, response)
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
        check_pair_sizes(raw, self._max_key, self._max_value)
        if raw:
            await self._call(SetMany(count=len(raw)), encode_items(raw))

    async def delete_many(self, keys: Iterable[K]) -> None:
        """Delete every key in one atomic batch (missing keys are fine)."""
        raw = [self._key.encode(key) for key in keys]
        check_batch_sizes(raw, (), self._max_key, self._max_value)
        if raw:
            await self._call(DeleteMany(count=len(raw)), encode_keys(raw))

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
            check_pair_sizes(raw, self._max_key, self._max_value)
            await self._call(WriteBatch(tx_id=None, count=len(raw)), encode_writes(raw))
