"""``Variant`` and ``@variant``: the base of every message and error class, and what builds one.

The message and error classes (``messages.py``, ``errors.py``; some eighty)
subclass ``Variant`` and are declared ``@variant``: a frozen, slotted class
with a keyword-only ``__init__`` of its annotated fields, what
``@attrs.frozen(kw_only=True, repr=False, eq=False)`` made of the same
declaration, built without attrs' class builder. Every process that speaks
the protocol builds all of them at import (``kvruntime get`` included):
attrs spent about 0.14 ms a class on it (its ``_ClassBuilder``, the
Attribute objects, a compile of each ``__init__``); building them here
instead takes a whole ``kvruntime get`` from 672 M to 614 M instructions
(callgrind; ``benchmarks/README.md``, issue 15).

Invariants of a class ``@variant`` builds (tests/protocol/test_variant.py
compares each with the class attrs builds from the same declaration):

1. Its fields are its own annotations in declared order, ``ClassVar`` ones
   excepted, each with the class attribute of its name as its default
   (plain values only: no ``attrs.field``, no validator, converter or
   factory; a declaration that needs one is refused with a TypeError, so
   that nothing an attrs class would run is silently skipped). Its only
   base is ``Variant`` (and ``typing.Generic`` for a generic class).
2. ``__slots__`` are the fields and ``__weakref__``; ``__init__`` takes
   each field by keyword, sets it through ``object.__setattr__`` (the very
   code attrs generates, so constructing one costs what it did), and its
   ``__annotations__`` and ``__kwdefaults__`` are attrs'. Its bytecode
   is the same as attrs' (compiled once per number of fields, then renamed:
   ``_init_code``), so only its line table (the column offsets a traceback
   shows) differs.
3. ``__attrs_attrs__`` is a tuple of ``attrs.Attribute`` equal to the one
   attrs makes, so ``attrs.fields``, ``attrs.has``, ``attrs.asdict`` and
   ``attrs.evolve`` work on it as before; ``__match_args__`` is ``()``
   (every field is keyword-only), as attrs sets it.
4. Frozen: setting or deleting any attribute raises
   ``attrs.exceptions.FrozenInstanceError``; ``__getstate__`` and
   ``__setstate__`` copy and pickle it as attrs' do.

The methods every variant shares come from ``Variant``, with the semantics
attrs' generated ones have for a frozen class, read from the class's own
fields (``__attrs_attrs__``) on each call:

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

kvruntime's own value types that every process builds at import
(``KvConfig``, ``TtlPolicy``, kv's action rules, the metrics' collector,
the client's ``Page`` and ``Change``) are ``@frozen_value(kw_only=True)``
on ``Variant`` (a generic one on ``Variant, Generic[...]``): to mypy that
is ``@attrs.frozen(kw_only=True)`` itself, so its attrs plugin types them
as before (``attrs.evolve`` included); at run time it is ``@variant``.
tests/kvruntime/test_value_types.py compares each with attrs' class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast, dataclass_transform

import attrs

__all__ = ["Variant", "frozen_value", "variant"]


class Variant:
    """Value equality, hashing and repr from an attrs class's fields (see the module)."""

    __slots__ = ()

    #: The fields, as ``attrs.fields`` reads them (set by ``@variant``).
    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]

    def _eq_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, a.name) for a in self.__attrs_attrs__ if a.eq)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Variant)
        return self._eq_values() == other._eq_values()

    def __hash__(self) -> int:
        return hash((self.__class__, *self._eq_values()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{a.name}={getattr(self, a.name)!r}" for a in self.__attrs_attrs__ if a.repr
        )
        return f"{self.__class__.__qualname__}({shown})"

    if not TYPE_CHECKING:  # mypy would take them as "any attribute may be set"

        def __setattr__(self, name: str, value: object) -> None:
            raise attrs.exceptions.FrozenInstanceError()

        def __delattr__(self, name: str) -> None:
            raise attrs.exceptions.FrozenInstanceError()

    def __getstate__(self) -> dict[str, object]:
        return {a.name: getattr(self, a.name) for a in self.__attrs_attrs__}

    def __setstate__(self, state: dict[str, object]) -> None:
        set_field = object.__setattr__
        for a in self.__attrs_attrs__:
            if a.name in state:
                set_field(self, a.name, state[a.name])


V = TypeVar("V", bound=type[Variant])

#: How attrs recognises a ClassVar annotation written as a string.
_CLASS_VAR = ("typing.ClassVar", "t.ClassVar", "ClassVar", "typing_extensions.ClassVar")

_INIT_GLOBALS = {"_cached_setattr_get": object.__setattr__.__get__}


@functools.cache
def _init_template(arity: int) -> CodeType:
    """The code of attrs' ``__init__`` for ``arity`` fields named ``f0``, ``f1``, ...

    attrs writes, for a frozen slotted class, ``def __init__(self, *, key,
    tx_id): _setattr = _cached_setattr_get(self); _setattr('key', key);
    _setattr('tx_id', tx_id)``: its bytecode depends on the number of
    fields only, the names being its locals and its constants. Without
    fields it is ``pass`` (attrs' still fetches an unused ``_setattr``).
    """
    if not arity:
        source = "def __init__(self):\n    pass\n"
    else:
        names = [f"f{i}" for i in range(arity)]
        source = f"def __init__(self, *, {', '.join(names)}):\n"
        source += "    _setattr = _cached_setattr_get(self)\n"
        source += "".join(f"    _setattr({name!r}, {name})\n" for name in names)
    module = compile(source, "<variant __init__>", "exec")
    (code,) = (c for c in module.co_consts if isinstance(c, CodeType))
    return code


def _init_code(names: tuple[str, ...]) -> CodeType:
    """attrs' ``__init__`` code for fields ``names``: the template of their
    number with its locals and constants renamed (no compile per class)."""
    template = _init_template(len(names))
    if not names:
        return template
    return template.replace(co_varnames=("self", *names, "_setattr"), co_consts=(None, *names))


@dataclass_transform(frozen_default=True, kw_only_default=True, eq_default=False)
def variant(cls: V) -> V:
    """The frozen, slotted, keyword-only class of ``cls``'s declaration (see the module)."""
    if cls.__bases__ not in ((Variant,), (Variant, Generic)):
        raise TypeError(f"{cls.__name__}: a @variant class has Variant as its only base")
    namespace = dict(cls.__dict__)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__qualname__"] = cls.__qualname__
    annotations: dict[str, str] = namespace.get("__annotations__", {})
    fields: list[attrs.Attribute[Any]] = []
    defaults: dict[str, object] = {}
    for name, annotation in annotations.items():
        if annotation.startswith(_CLASS_VAR):
            continue
        default = namespace.pop(name, attrs.NOTHING)
        if default is not attrs.NOTHING and type(default).__module__.startswith("attr"):
            # attrs.field(...), attrs.Factory(...): what an attrs class would run
            raise TypeError(f"{cls.__name__}.{name}: a @variant field takes a plain default")
        if name.startswith("_") or name == "self":
            raise TypeError(f"{cls.__name__}.{name}: a @variant field's name is public")
        if default is not attrs.NOTHING:
            defaults[name] = default
        fields.append(
            attrs.Attribute(  # type: ignore[call-arg]
                name=name,
                default=default,
                validator=None,
                repr=True,
                cmp=None,
                hash=None,
                init=True,
                inherited=False,
                type=annotation,
                kw_only=True,
                eq=True,
                order=True,
                alias=name,
                alias_is_default=True,
            )
        )
    names = tuple(field.name for field in fields)
    namespace["__slots__"] = (*names, "__weakref__")
    namespace["__attrs_attrs__"] = tuple(fields)
    namespace["__match_args__"] = ()
    init = FunctionType(_init_code(names), _INIT_GLOBALS, "__init__")
    init.__kwdefaults__ = defaults or None
    init.__annotations__ = {"return": None, **{name: annotations[name] for name in names}}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    namespace["__init__"] = init
    for value in namespace.values():
        # super() and __class__ would still name the class the slots replace
        if isinstance(value, FunctionType) and "__class__" in value.__code__.co_freevars:
            raise TypeError(f"{cls.__name__}: a @variant class's methods use no super()")
    return cast(V, type(cls.__name__, cls.__bases__, namespace))


if TYPE_CHECKING:
    # To mypy, ``@attrs.frozen(kw_only=True)`` itself: its attrs plugin types
    # the class as it did (``attrs.evolve`` and ``attrs.fields`` included).
    from attrs import frozen as frozen_value
else:

    def frozen_value(*, kw_only: bool) -> Callable[[V], V]:
        """``@attrs.frozen(kw_only=True)`` for a value type on ``Variant``, built by ``@variant``.

        kvruntime's value types that every process builds at import
        (``KvConfig``, kv's action rules, the client's ``Page`` and
        ``Change``; issue 15) are declared ``@frozen_value(kw_only=True)``
        on ``Variant``: at run time the class ``@variant`` builds, whose
        fields, slots, ``__init__``, equality, hash and repr are attrs'
        (the module's invariants); to mypy the attrs class it was.
        """
        if not kw_only:
            raise TypeError("a @frozen_value class is keyword-only, as every @variant is")
        return variant
