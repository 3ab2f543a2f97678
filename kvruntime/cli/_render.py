"""Showing keys and values readably, and reading them from the command line.

Output formats (``--text``, ``--raw``, ``--hex``, ``--json``); without one,
text on a terminal and raw into a pipe or a file, as redis-cli does:

- text, one rule for every command and the explorer (``kvruntime/readable.py``),
  so ``get`` and ``scan`` show a value the same way and no two byte strings
  look alike: printable UTF-8 as itself, other text quoted with JSON escapes
  (``"line one\\nline two"``, ``"0x00ff"``), other bytes as ``0x`` hex;
- hex: lowercase hex, always;
- raw: the bytes exactly as stored (``get`` of one key writes no newline);
- json: bytes as ``{"utf8": "..."}`` when they decode as UTF-8, else
  ``{"hex": "..."}`` (the same shapes ``send`` accepts).

``--msgpack`` decodes values as MessagePack first and shows them as JSON
(bytes inside become ``{"hex": ...}``). A value that is not MessagePack is
``NotMsgpack``: the command says so instead of showing it as something else.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..readable import NotMsgpack, bytes_json, readable, unpack
from ._app import EXIT_USAGE, CliError, set_json_mode

__all__ = [
    "Format",
    "NotMsgpack",
    "bytes_json",
    "format_options",
    "parse_bytes",
    "readable",
    "render",
    "render_value_json",
    "resolve",
]

F = TypeVar("F", bound=Callable[..., Any])


class Format(enum.Enum):
    """How bytes are written to stdout."""

    TEXT = "text"
    RAW = "raw"
    HEX = "hex"
    JSON = "json"


def resolve(fmt: Format | None) -> Format:
    """The format asked for, else text on a terminal and raw otherwise."""
    if fmt is not None:
        return fmt
    return Format.TEXT if sys.stdout.isatty() else Format.RAW


def format_options(func: F) -> F:
    """``--text``/``--raw``/``--hex``/``--json`` (one of them) and ``--msgpack``."""
    options = [
        click.option(
            "--raw",
            "fmt",
            flag_value=Format.RAW,
            help="The bytes exactly as stored (the default into a pipe or file).",
        ),
        click.option("--hex", "fmt", flag_value=Format.HEX, help="Keys and values as hex."),
        click.option(
            "--json",
            "fmt",
            flag_value=Format.JSON,
            callback=set_json_mode,
            help='One JSON object per line; bytes as {"utf8": ...} or {"hex": ...}; errors too.',
        ),
        click.option(
            "--text",
            "fmt",
            flag_value=Format.TEXT,
            help="Text, quoted when it could be mistaken, 0x-hex when not UTF-8"
            " (the default on a terminal).",
        ),
        click.option(
            "--msgpack", "msgpack_values", is_flag=True, help="Decode values as MessagePack."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def render_value_json(data: bytes, *, msgpack_values: bool) -> object:
    """A value for a JSON document: decoded MessagePack if asked (NotMsgpack if not one)."""
    return unpack(data) if msgpack_values else bytes_json(data)


def render(data: bytes, fmt: Format, *, msgpack_values: bool = False) -> str:
    """``data`` as a str in format ``fmt`` (not for RAW, which writes bytes)."""
    if msgpack_values and fmt is not Format.HEX:
        return _dumps(unpack(data))
    if fmt is Format.HEX:
        return data.hex()
    if fmt is Format.JSON:
        return _dumps(bytes_json(data))
    return readable(data)


def _dumps(doc: object) -> str:
    import json  # only a command that shows JSON pays for it

    return json.dumps(doc, ensure_ascii=False)


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
