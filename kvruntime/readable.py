"""Bytes shown to people, unambiguously: the text form of a key or value, and
a value unpacked from MessagePack for JSON. Pure; shared by the command line
(``cli/_render.py``, its formats and options) and the explorer page.

The text form, one rule everywhere, so that no two byte strings look alike:
printable UTF-8 is itself, unless it starts with ``0x`` or ``"`` (which the
two other forms start with); other UTF-8 (a newline, a control character)
and text starting with ``0x`` or ``"`` is a quoted string with JSON escapes;
bytes that are not UTF-8 are ``0x`` and lowercase hex.
"""

from __future__ import annotations

__all__ = ["NotMsgpack", "bytes_json", "readable", "unpack"]


class NotMsgpack(ValueError):
    """``--msgpack`` was asked of a value that does not decode as one MessagePack object."""


def _escape(char: str) -> str:
    match char:
        case '"':
            return '\\"'
        case "\\":
            return "\\\\"
        case "\n":
            return "\\n"
        case "\t":
            return "\\t"
        case "\r":
            return "\\r"
        case _ if char.isprintable():
            return char
        case _ if ord(char) <= 0xFFFF:
            return f"\\u{ord(char):04x}"
        case _:
            return f"\\U{ord(char):08x}"


def readable(data: bytes) -> str:
    """``data`` in the text form: as is, quoted with escapes, or ``0x`` hex (see above)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    if text.isprintable() and not text.startswith(("0x", '"')):
        return text
    return '"' + "".join(map(_escape, text)) + '"'


def bytes_json(data: bytes) -> dict[str, str]:
    """``{"utf8": text}`` when ``data`` is UTF-8, else ``{"hex": ...}``."""
    try:
        return {"utf8": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def _jsonable(value: object) -> object:
    import json  # like msgpack: only when a value is shown as JSON

    import msgpack

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


def unpack(data: bytes) -> object:
    """``data`` decoded as MessagePack, for JSON; NotMsgpack if it is not."""
    import msgpack

    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except msgpack.ExtraData:
        raise NotMsgpack("not MessagePack: bytes left after the first object") from None
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise NotMsgpack(f"not MessagePack: {exc or type(exc).__name__}") from None
    return _jsonable(value)
