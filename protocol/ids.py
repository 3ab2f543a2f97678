"""Identifiers: PackageId, ProcessId, Address, and db-name validation.

The grammar is PROTOCOL.md's:

- PackageId ``package_name:publisher_node``; ``package_name`` matches
  ``^[a-z0-9-]+$``, ``publisher_node`` matches ``^[a-z0-9.-]+$`` and is not
  ``.`` or ``..``.
- ProcessId ``process_name:package_name:publisher_node``.
- Address ``node@process_name:package_name:publisher_node``.

Validation happens on construction, so an instance is always well formed.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

__all__ = [
    "KV_PROCESS_ID",
    "MAX_DB_NAME_BYTES",
    "Address",
    "IdError",
    "PackageId",
    "ProcessId",
    "validate_db_name",
]

_NAME = re.compile(r"[a-z0-9-]+")
_NODE = re.compile(r"[a-z0-9.-]+")

#: A db name is one path component of at most this many bytes of UTF-8.
MAX_DB_NAME_BYTES = 255


class IdError(ValueError):
    """An identifier or db name does not follow the protocol's grammar."""


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise IdError(f"{what} must match [a-z0-9-]+, got {value!r}")
    return value


def _check_node(what: str, value: object) -> str:
    if not isinstance(value, str) or _NODE.fullmatch(value) is None or value in (".", ".."):
        raise IdError(f"{what} must match [a-z0-9.-]+ and not be '.' or '..', got {value!r}")
    return value


# The validators take ``value: str`` (not ``object``) so that attrs' mypy plugin
# types the fields as ``str``; at run time they still reject any other type.
def _package_name(_: object, __: attrs.Attribute[str], value: str) -> None:
    _check_name("package_name", value)


def _process_name(_: object, __: attrs.Attribute[str], value: str) -> None:
    _check_name("process_name", value)


def _node(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    _check_node(attribute.name, value)


@attrs.frozen(kw_only=True, cache_hash=True)
class PackageId:
    """A package: ``package_name:publisher_node``."""

    package_name: str = attrs.field(validator=_package_name)
    publisher_node: str = attrs.field(validator=_node)

    @classmethod
    def parse(cls, text: str) -> PackageId:
        """Parse ``package_name:publisher_node``; raise IdError otherwise."""
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) != 2:
            raise IdError(f"a PackageId is package_name:publisher_node, got {text!r}")
        return cls(package_name=parts[0], publisher_node=parts[1])

    def __str__(self) -> str:
        return f"{self.package_name}:{self.publisher_node}"


@attrs.frozen(kw_only=True, cache_hash=True)
class ProcessId:
    """A process: ``process_name:package_name:publisher_node``."""

    process_name: str = attrs.field(validator=_process_name)
    package_name: str = attrs.field(validator=_package_name)
    publisher_node: str = attrs.field(validator=_node)

    @classmethod
    def parse(cls, text: str) -> ProcessId:
        """Parse ``process_name:package_name:publisher_node``; raise IdError otherwise."""
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) != 3:
            raise IdError(f"a ProcessId is process_name:package_name:publisher_node, got {text!r}")
        return cls(process_name=parts[0], package_name=parts[1], publisher_node=parts[2])

    @property
    def package_id(self) -> PackageId:
        """The package this process belongs to."""
        return PackageId(package_name=self.package_name, publisher_node=self.publisher_node)

    def belongs_to(self, package_id: PackageId) -> bool:
        """Whether this process is part of ``package_id`` (without building a PackageId)."""
        return (
            self.package_name == package_id.package_name
            and self.publisher_node == package_id.publisher_node
        )

    def __str__(self) -> str:
        return f"{self.process_name}:{self.package_name}:{self.publisher_node}"


@attrs.frozen(kw_only=True, cache_hash=True)
class Address:
    """A process on a node: ``node@process_name:package_name:publisher_node``."""

    node: str = attrs.field(validator=_node)
    process: ProcessId

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``node@process``; raise IdError otherwise."""
        node, sep, process = text.partition("@") if isinstance(text, str) else ("", "", "")
        if not sep:
            raise IdError(
                f"an Address is node@process_name:package_name:publisher_node, got {text!r}"
            )
        return cls(node=node, process=ProcessId.parse(process))

    def __str__(self) -> str:
        return f"{self.node}@{self.process}"


#: The kv module's process id: ``kv:distro:sys``, on every node.
KV_PROCESS_ID: Final = ProcessId(process_name="kv", package_name="distro", publisher_node="sys")


def validate_db_name(name: object) -> str:
    """Return ``name`` if it is a valid db name (one safe path component), else raise IdError.

    Non-empty, at most 255 bytes of UTF-8, no ``/``, ``\\`` or NUL, not ``.`` or ``..``.
    """
    if not isinstance(name, str):
        raise IdError(f"a db name is a str, got {type(name).__name__}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates cannot name a file
        raise IdError("a db name must be valid UTF-8") from exc
    if size == 0 or size > MAX_DB_NAME_BYTES:
        raise IdError(f"a db name is 1 to {MAX_DB_NAME_BYTES} bytes of UTF-8, got {size}")
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise IdError(f"a db name is one path component, got {name!r}")
    return name
