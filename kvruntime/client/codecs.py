"""Codecs for typed views of a db (process_lib's ``Kv<K, V>``): raw bytes by default."""

from __future__ import annotations

import json
from typing import Any, Generic, Protocol, TypeVar

import msgpack

__all__ = [
    "BYTES",
    "JSON",
    "MSGPACK",
    "BytesCodec",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "Utf8Codec",
]

T = TypeVar("T")


class Codec(Protocol[T]):
    """Turns a value into the bytes stored in LevelDB, and back."""

    def encode(self, value: T) -> bytes:
        """The stored bytes of ``value``."""
        ...

    def decode(self, data: bytes) -> T:
        """The value stored as ``data``."""
        ...


class BytesCodec:
    """Raw bytes, stored as they are."""

    def encode(self, value: bytes) -> bytes:
        """Return ``value`` (bytes-like values become bytes); anything else is TypeError.

        (``bytes(5)`` would give five NUL bytes: an int is refused, not misread.)
        """
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise TypeError(
            f"BytesCodec encodes bytes, bytearray or memoryview, got {type(value).__name__}"
        )

    def decode(self, data: bytes) -> bytes:
        """Return ``data``."""
        return data


class Utf8Codec:
    """Text, stored as UTF-8."""

    def encode(self, value: str) -> bytes:
        """UTF-8 bytes of ``value``."""
        return value.encode("utf-8")

    def decode(self, data: bytes) -> str:
        """The text in ``data``."""
        return data.decode("utf-8")


class JsonCodec(Generic[T]):
    """JSON values, stored as compact UTF-8 JSON (keys sorted, so equal values give equal keys)."""

    def encode(self, value: T) -> bytes:
        """Compact JSON bytes of ``value``."""
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def decode(self, data: bytes) -> T:
        """The JSON value in ``data``."""
        result: T = json.loads(data)
        return result


class MsgpackCodec(Generic[T]):
    """Values stored as MessagePack (``use_bin_type=True``)."""

    def encode(self, value: T) -> bytes:
        """MessagePack bytes of ``value``."""
        data: bytes = msgpack.packb(value, use_bin_type=True)
        return data

    def decode(self, data: bytes) -> T:
        """The value in ``data``."""
        result: T = msgpack.unpackb(data, raw=False)
        return result


BYTES = BytesCodec()
JSON: JsonCodec[Any] = JsonCodec()
MSGPACK: MsgpackCodec[Any] = MsgpackCodec()
