"""Showing keys and values readably, and reading them from the command line.

Output formats (``--raw``, ``--hex``, ``--json``; text is the default):

- text: UTF-8 where the bytes decode to printable text, else ``0x`` and hex;
- hex: lowercase hex, always;
- raw: the bytes exactly as stored (``get`` writes no newline after them);
- json: bytes as ``{"utf8": "..."}`` when they decode as UTF-8, else
  ``{"hex": "..."}`` (the same shapes ``send`` accepts).

``--msgpack`` decodes values as MessagePack first and shows them as JSON
(bytes inside become ``{"hex": ...}``); a value that does not decode is
shown as bytes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
import msgpack

from ._app import EXIT_USAGE, CliError

__all__ = [
    "Format",
    "bytes_json",
    "format_options",
    "parse_bytes",
    "readable",
    "render",
    "render_value_json",
]

F = TypeVar("F", bound=Callable[..., Any])


class Format(enum.Enum):
    """How bytes are written to stdout."""

    TEXT = "text"
    RAW = "raw"
    HEX = "hex"
    JSON = "json"


def format_options(func: F) -> F:
    """``--raw``/``--hex``/``--json`` (one of them) and ``--msgpack``."""
    options = [
        click.option(
            "--raw", "fmt", flag_value=Format.RAW, help="Write the bytes exactly as stored."
        ),
        click.option("--hex", "fmt", flag_value=Format.HEX, help="Write keys and values as hex."),
        click.option(
            "--json",
            "fmt",
            flag_value=Format.JSON,
            help='One JSON object per line; bytes as {"utf8": ...} or {"hex": ...}.',
        ),
        click.option(
            "--text",
            "fmt",
            flag_value=Format.TEXT,
            default=True,
            help="UTF-8 text where it decodes, 0x-prefixed hex otherwise (default).",
        ),
        click.option(
            "--msgpack", "msgpack_values", is_flag=True, help="Decode values as MessagePack."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def readable(data: bytes, *, one_line: bool = False) -> str:
    """``data`` as text if it is printable UTF-8 (newlines and tabs allowed unless ``one_line``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    allowed = "" if one_line else "\n\t\r"
    if all(c.isprintable() or c in allowed for c in text):
        return text
    return "0x" + data.hex()


def bytes_json(data: bytes) -> dict[str, str]:
    """``{"utf8": text}`` when ``data`` is UTF-8, else ``{"hex": ...}``."""
    try:
        return {"utf8": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else json.dumps(_jsonable(k)): _jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "hex": value.data.hex()}
    return value


def _unpack(data: bytes) -> tuple[bool, object]:
    try:
        return True, _jsonable(msgpack.unpackb(data, raw=False, strict_map_key=False))
    except Exception:  # msgpack raises several unrelated types for bad input
        return False, None


def render_value_json(data: bytes, *, msgpack_values: bool) -> object:
    """A value for a JSON document: decoded MessagePack if asked and possible, else bytes."""
    if msgpack_values:
        ok, value = _unpack(data)
        if ok:
            return value
    return bytes_json(data)


def render(data: bytes, fmt: Format, *, msgpack_values: bool = False, one_line: bool) -> str:
    """``data`` as a str in format ``fmt`` (not for RAW, which writes bytes)."""
    if msgpack_values and fmt is not Format.HEX:
        ok, value = _unpack(data)
        if ok:
            return json.dumps(value, ensure_ascii=False)
    if fmt is Format.HEX:
        return data.hex()
    if fmt is Format.JSON:
        return json.dumps(bytes_json(data), ensure_ascii=False)
    return readable(data, one_line=one_line)


def parse_bytes(text: str, *, is_hex: bool, what: str) -> bytes:
    """A command-line argument as bytes: UTF-8 text, or hex when ``is_hex``."""
    if not is_hex:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise CliError(f"{what} is not valid UTF-8 (use hex)", EXIT_USAGE) from None
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise CliError(f"{what} is not hex: {text!r}", EXIT_USAGE) from None
