"""The dump format (version 1): JSON lines, keys and values in base64.

A dump is UTF-8 text, one JSON object per line (``\\n`` ends every line):

1. a header: ``{"format": "kvruntime-dump", "version": 1, "package": "name:publisher",
   "db": "name"}`` (package and db say where it came from; ``load`` may
   target another db);
2. one record per entry, in key order: ``{"k": base64, "v": base64}`` with
   standard base64 (RFC 4648 section 4, with padding); an empty value is ``""``;
3. a trailer: ``{"end": {"count": N}}`` where N is the number of records, so
   a truncated file is detected.

Readers reject a line that is not exactly one of these shapes, an unknown
``format``, or a ``version`` other than 1. Later versions will change the
version number; version 1 stays readable as described here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Final, TypeAlias

import attrs

__all__ = [
    "FORMAT",
    "VERSION",
    "DumpFormatError",
    "End",
    "Header",
    "Line",
    "Record",
    "end_line",
    "header_line",
    "parse_line",
    "record_line",
]

FORMAT: Final = "kvruntime-dump"
VERSION: Final = 1


class DumpFormatError(ValueError):
    """A line does not follow the dump format."""


@attrs.frozen(kw_only=True)
class Header:
    """The first line: where the dump came from."""

    package: str
    db: str


@attrs.frozen(kw_only=True)
class Record:
    """One entry."""

    key: bytes
    value: bytes


@attrs.frozen(kw_only=True)
class End:
    """The last line: how many records came before it."""

    count: int


Line: TypeAlias = Header | Record | End


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("ascii") + b"\n"


def header_line(package: str, db: str) -> bytes:
    """The header line, newline included."""
    return _dumps({"format": FORMAT, "version": VERSION, "package": package, "db": db})


def record_line(key: bytes, value: bytes) -> bytes:
    """One record line, newline included."""
    return b'{"k":"' + base64.b64encode(key) + b'","v":"' + base64.b64encode(value) + b'"}\n'


def end_line(count: int) -> bytes:
    """The trailer line, newline included."""
    return _dumps({"end": {"count": count}})


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise DumpFormatError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DumpFormatError(f"{what} is not base64: {exc}") from None


def parse_line(line: bytes) -> Line:
    """The value of one line (its newline may be present); DumpFormatError if malformed."""
    try:
        text = line.decode("utf-8")  # json.loads would guess UTF-16 or UTF-32 from the bytes
    except UnicodeDecodeError as exc:
        raise DumpFormatError(f"not UTF-8 text: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpFormatError(f"not JSON: {exc}") from None
    except RecursionError:
        raise DumpFormatError("not a dump line: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise DumpFormatError("not a JSON object")
    keys = set(doc)
    if keys == {"k", "v"}:
        return Record(key=_b64(doc["k"], "k"), value=_b64(doc["v"], "v"))
    if keys == {"end"}:
        end = doc["end"]
        count = end.get("count") if isinstance(end, dict) and set(end) == {"count"} else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise DumpFormatError('the trailer is {"end": {"count": N}}')
        return End(count=count)
    if keys == {"format", "version", "package", "db"}:
        if doc["format"] != FORMAT:
            raise DumpFormatError(f"not a kvruntime dump (format {doc['format']!r})")
        if doc["version"] != VERSION:
            raise DumpFormatError(
                f"dump format version {doc['version']!r} is not supported (this reads {VERSION})"
            )
        package, db = doc["package"], doc["db"]
        if not isinstance(package, str) or not isinstance(db, str):
            raise DumpFormatError("header package and db are strings")
        return Header(package=package, db=db)
    raise DumpFormatError(f"unexpected fields {sorted(keys)}")
