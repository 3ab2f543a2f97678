"""The vocabulary each message class declares its wire shape in (its ``WIRE``).

Every KvAction, KvResponse and KvError class says once, beside its fields,
how it travels (PROTOCOL.md's externally tagged forms, fields in the order
PROTOCOL.md lists them):

- ``UNIT``: the bare tag, ``"Open"``;
- ``newtype(key=Field.BIN)``: the tag around one value, ``{"Get": key}``;
- ``struct(key=Field.BIN, tx_id=Field.OPTIONAL_UINT)``: the tag around a map
  of the named fields, in this order, ``{"Set": {"key": .., "tx_id": ..}}``;
- ``array(package_id=Field.PACKAGE_ID, db=Field.DB)``: the tag around an
  array of the fields, ``{"NoDb": [{..}, db]}``.

A ``Field`` names what a position holds, which fixes both its msgpack form
and its check. ``_schema.py`` compiles the encoders and the strict decoders
from these declarations, ``hot.py`` its byte templates from those encoders,
and ``golden.py`` its meaning readers from the same declarations; nothing
else restates a shape. A new variant is a class with ``TAG`` and ``WIRE``,
added to its union: the tables follow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

from .variant import Variant, variant

__all__ = [
    "UNIT",
    "Array",
    "Field",
    "Newtype",
    "Struct",
    "Unit",
    "WireShape",
    "array",
    "declaration",
    "newtype",
    "prefix_excludes_range",
    "struct",
]


class Field(enum.Enum):
    """What one position of a wire shape holds."""

    BIN = "bin"  #: bytes, a msgpack bin
    OPTIONAL_BIN = "bin | nil"
    UINT = "uint"  #: an int in 0..2**64-1
    OPTIONAL_UINT = "uint | nil"
    INT64 = "int64"  #: an int in -2**63..2**63-1
    BOOL = "bool"
    TEXT = "str"  #: free text (an error's message), sent as valid UTF-8
    DB = "db"  #: a db name, a str checked by ``ids.validate_db_name``
    PACKAGE_ID = "PackageId"  #: ``{"package_name": str, "publisher_node": str}``
    PROCESS_ID = "ProcessId"  #: ``{"process_name": .., "package_name": .., "publisher_node": ..}``
    ERROR = "KvError"  #: a KvError variant, itself externally tagged


#: A check across the fields of a struct, after each field's own: the problem, or None.
Check: TypeAlias = Callable[[Mapping[str, object]], "str | None"]


@variant
class Unit(Variant):
    """The bare tag: a str."""


@variant
class Newtype(Variant):
    """The tag around one field's value: ``{TAG: value}``."""

    name: str
    field: Field


@variant
class Struct(Variant):
    """The tag around a map of the fields, in order: ``{TAG: {name: value, ...}}``."""

    fields: tuple[tuple[str, Field], ...]
    check: Check | None = None


@variant
class Array(Variant):
    """The tag around an array of the fields' values, in order: ``{TAG: [value, ...]}``."""

    fields: tuple[tuple[str, Field], ...]


WireShape: TypeAlias = Unit | Newtype | Struct | Array

#: The shape of a variant without payload.
UNIT: Final = Unit()


def newtype(**field: Field) -> Newtype:
    """``{TAG: value}`` of the one field named."""
    ((name, kind),) = field.items()
    return Newtype(name=name, field=kind)


def struct(*, check: Check | None = None, **fields: Field) -> Struct:
    """``{TAG: {name: value, ...}}``, the fields in the order given; ``check`` runs on decode."""
    return Struct(fields=tuple(fields.items()), check=check)


def array(**fields: Field) -> Array:
    """``{TAG: [value, ...]}``, the fields in the order given."""
    return Array(fields=tuple(fields.items()))


def prefix_excludes_range(fields: Mapping[str, object]) -> str | None:
    """A range is a ``prefix`` or ``start``/``end`` bounds, never both (PROTOCOL.md)."""
    if fields["prefix"] is not None and (fields["start"] is not None or fields["end"] is not None):
        return "prefix excludes start and end"
    return None


def declaration(cls: type) -> tuple[str, WireShape]:
    """The ``TAG`` and ``WIRE`` that message class ``cls`` declares; TypeError if it lacks one."""
    tag = getattr(cls, "TAG", None)
    shape = getattr(cls, "WIRE", None)
    if not isinstance(tag, str) or not isinstance(shape, Unit | Newtype | Struct | Array):
        raise TypeError(f"{cls.__name__} declares no wire tag (TAG: str) and shape (WIRE)")
    return tag, shape
