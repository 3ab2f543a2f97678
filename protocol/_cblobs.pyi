"""Types of ``_cblobs.c``: the batch blobs and scan pages of ``blobs.py``, in C."""

from typing import Any

def decode_items(data: object, count: int, /) -> list[tuple[bytes, bytes]] | None:
    """The pairs of a ``[[bin, bin], ...]`` blob of ``count`` entries, or None if refused."""

def decode_writes(data: object, count: int, /) -> list[tuple[bytes, bytes | None]] | None:
    """The ops of a ``[[bin, bin | nil], ...]`` blob of ``count`` entries, or None."""

def encode_items(pairs: list[Any], max_key: int, max_value: int, /) -> bytes | None:
    """The blob of exact ``(bytes, bytes)`` tuples within the limits, else None."""

def encode_writes(writes: list[Any], max_key: int, max_value: int, /) -> bytes | None:
    """``encode_items``, where a value may be None."""

def ops_fit(ops: list[Any], max_key: int, max_value: int, reserved: bytes, /) -> bool:
    """Every op an exact (bytes key < reserved within max_key, bytes value within
    max_value or None) tuple."""

def decode_scan_page(
    data: object, count: int, keys_only: bool, /
) -> list[tuple[bytes, bytes | None]] | None:
    """The ``count`` entries of a flat page blob, or None if the reference would refuse it."""
