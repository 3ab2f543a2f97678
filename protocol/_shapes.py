"""DecodeError and the shape checkers the decoders are built from (codec.py's Rule 2).

Each checker takes a decoded value and where it sits (for the message) and
returns the value narrowed to its type, or raises DecodeError: ``_struct``
for a map with an exact field set, ``_bin``/``_str``/``_bool``/``_uint``/
``_int64`` for scalars (bin vs str, a uint is a non-bool int), ``_tagged``
for an externally tagged variant, ``_package_id``/``_db_name`` for the
identifiers. ``_strict_map`` is the ``object_pairs_hook`` that refuses a
repeated key. Nothing here catches anything: turning what escapes into
DecodeError is codec.py's boundary (Rule 1).

DecodeError is defined here, where it is first raised, and re-exported by
``protocol.codec`` (its public home, which it names as its ``__module__``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from .ids import PackageId, validate_db_name

__all__ = ["DecodeError"]

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
_SHORT: Final = 40  # characters of a foreign value quoted in an error message

T = TypeVar("T")


class DecodeError(ValueError):
    """Bytes or text that are not a valid encoding of the expected message."""


DecodeError.__module__ = "protocol.codec"  # where users import it from (as trio does)


def _strict_map(pairs: list[tuple[object, object]]) -> dict[object, object]:
    """The ``object_pairs_hook`` of msgpack and json: a dict, unless a key repeats."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[object] = set()
        for key, _ in pairs:
            if key in seen:
                raise DecodeError(f"duplicate map key {_short(key)}")
            seen.add(key)
    return result


def _kind(value: object, *, sized: bool = False) -> str:
    """The msgpack/JSON family of a decoded value (with its length if ``sized``)."""
    if sized and isinstance(value, tuple | list | dict):
        return f"{_kind(value)} of {len(value)}"
    match value:
        case None:
            return "nil"
        case bool():
            return "bool"
        case int():
            return "int"
        case float():
            return "float"
        case str():
            return "str"
        case bytes():
            return "bin"
        case tuple() | list():
            return "array"
        case dict():
            return "map"
        case _:
            return "ext type"  # msgpack's Timestamp, the one ext it decodes itself


def _short(value: object) -> str:
    """A bounded quotation of a foreign str or bytes, else just its kind."""
    text = repr(value) if isinstance(value, str | bytes) else _kind(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _struct(value: object, what: str, names: frozenset[str]) -> dict[object, object]:
    """A map whose keys are exactly ``names`` (any order)."""
    if type(value) is not dict:
        raise DecodeError(f"{what}: expected a map, got {_kind(value)}")
    if value.keys() != names:
        problems = []
        if missing := sorted(names - value.keys()):
            problems.append(f"missing field {', '.join(missing)}")
        if extra := [_short(key) for key in value if key not in names]:
            problems.append(f"unexpected field {', '.join(extra)}")
        raise DecodeError(f"{what}: {'; '.join(problems)}")
    return value


def _bin(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{what}: expected bin, got {_kind(value)}")
    return value


def _str(value: object, what: str) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what}: expected str, got {_kind(value)}")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{what}: expected bool, got {_kind(value)}")
    return value


def _uint(value: object, what: str) -> int:
    # ``type(...) is int`` keeps bool out; msgpack cannot carry more than u64.
    if type(value) is not int:
        raise DecodeError(f"{what}: expected uint, got {_kind(value)}")
    if value < 0:
        raise DecodeError(f"{what}: expected uint, got negative int")
    return value


def _optional_uint(value: object, what: str) -> int | None:
    return None if value is None else _uint(value, what)


def _int64(value: object, what: str) -> int:
    if type(value) is not int:
        raise DecodeError(f"{what}: expected int, got {_kind(value)}")
    if not _I64_MIN <= value <= _I64_MAX:
        raise DecodeError(f"{what}: expected an int64, got an int outside -2**63..2**63-1")
    return value


def _optional_bin(value: object, what: str) -> bytes | None:
    return None if value is None else _bin(value, what)


@functools.lru_cache(maxsize=1024)
def _cached_package_id(package_name: str, publisher_node: str) -> PackageId:
    return PackageId(package_name=package_name, publisher_node=publisher_node)


_PACKAGE_ID_FIELDS: Final = frozenset(("package_name", "publisher_node"))


def _package_id(value: object, what: str = "PackageId") -> PackageId:
    # ``what`` is taken (and not needed: the fields name themselves) so that
    # this is a checker of the same signature as the others.
    fields = _struct(value, "PackageId", _PACKAGE_ID_FIELDS)
    return _cached_package_id(
        _str(fields["package_name"], "PackageId.package_name"),
        _str(fields["publisher_node"], "PackageId.publisher_node"),
    )


_cached_db_name: Final = functools.lru_cache(maxsize=1024)(validate_db_name)


def _db_name(value: object, what: str = "db") -> str:
    return _cached_db_name(_str(value, what))


def _tagged(
    value: object,
    what: str,
    units: Mapping[str, T],
    payloads: Mapping[str, Callable[[object], T]],
) -> T:
    """An externally tagged variant: a str for a unit, a one-entry map otherwise."""
    if type(value) is str:
        unit = units.get(value)
        if unit is not None:
            return unit
        if value in payloads:
            raise DecodeError(f"{what} {value} needs a payload")
        raise DecodeError(f"unknown {what} tag {_short(value)}")
    if type(value) is dict:
        if len(value) != 1:
            raise DecodeError(f"{what}: a tagged map has one entry, got {len(value)}")
        ((tag, payload),) = value.items()
        parse = payloads.get(tag)
        if parse is not None:
            return parse(payload)
        if tag in units:
            raise DecodeError(f"{what} {tag} takes no payload")
        raise DecodeError(f"unknown {what} tag {_short(tag)}")
    raise DecodeError(f"{what}: expected a str or a one-entry map, got {_kind(value)}")


# --- Byte strings as arrays of numbers (the ARRAY and JSON forms) ---------------------

_U64_MAX: Final = 2**64 - 1


def _byte_array(value: object, what: str) -> bytes:
    """A byte string written as an array of ints 0..255 (serde's ``Vec<u8>``)."""
    if type(value) is not tuple and type(value) is not list:
        raise DecodeError(f"{what}: expected an array of bytes, got {_kind(value)}")
    # ``bytes()`` takes any int 0..255, bools included (they are ints): the
    # type check keeps bools (and floats, strs, nil) out.
    if value and set(map(type, value)) != {int}:
        odd = next(item for item in value if type(item) is not int)
        raise DecodeError(f"{what}: a byte is an int in 0..255, got {_kind(odd)}")
    try:
        return bytes(value)
    except ValueError as exc:
        raise DecodeError(f"{what}: a byte is an int in 0..255, got one outside") from exc


def _optional_byte_array(value: object, what: str) -> bytes | None:
    return None if value is None else _byte_array(value, what)


def _uint64(value: object, what: str) -> int:
    """A uint that JSON may write past u64: checked against 2**64-1 too."""
    number = _uint(value, what)
    if number > _U64_MAX:
        raise DecodeError(f"{what}: expected a u64, got an int over 2**64-1")
    return number


def _optional_uint64(value: object, what: str) -> int | None:
    return None if value is None else _uint64(value, what)
