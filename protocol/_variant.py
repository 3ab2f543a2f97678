"""``Variant``: the base of every message and error class, with their shared methods.

The message and error classes (``messages.py``, ``errors.py``; some eighty)
are declared ``@attrs.frozen(kw_only=True, repr=False, eq=False)`` and
subclass ``Variant``: attrs still makes each one's slots, ``__init__``,
frozen ``__setattr__``, ``__match_args__`` and ``attrs.fields``, and the
class inherits ``__eq__``, ``__hash__`` and ``__repr__`` from here instead
of having three more methods generated and compiled for it at import, which
was more than half of the protocol's import time (about 0.33 ms a class
against 0.14 ms, on every start of a process, ``kvruntime get`` included).

Invariants: the same semantics as attrs' generated methods for a frozen
class, read from the class's own fields (``__attrs_attrs__``) on each call:

1. ``a == b`` only for two objects of the very same class whose fields
   (those with ``eq``) are equal, compared as one tuple; anything else
   (a subclass included) is ``NotImplemented``, so ``!=`` is its negation.
2. Equal objects hash alike: the hash of the class and the field values.
3. ``repr`` is ``Name(field=value, ...)``, the fields with ``repr`` in
   declared order, each value by its own ``repr``.

Nothing on a hot path compares or hashes messages (a handler matches on
the class; a codec table is keyed by the class), which is why these need
not be generated per class; the ids (``ids.py``) are hashed on every
send, so they keep attrs' generated methods.
"""

from __future__ import annotations

__all__ = ["Variant"]


class Variant:
    """Value equality, hashing and repr from an attrs class's fields (see the module)."""

    __slots__ = ()

    def _eq_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, a.name) for a in self.__attrs_attrs__ if a.eq)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Variant)
        return self._eq_values() == other._eq_values()

    def __hash__(self) -> int:
        return hash((self.__class__, *self._eq_values()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{a.name}={getattr(self, a.name)!r}"
            for a in self.__attrs_attrs__  # type: ignore[attr-defined]
            if a.repr
        )
        return f"{self.__class__.__qualname__}({shown})"
