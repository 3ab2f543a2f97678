"""``@variant`` (``protocol/variant.py``): the class attrs would build, without attrs' builder.

Every message, error and wire-shape class is compared with a twin that
``@attrs.frozen(kw_only=True, repr=False, eq=False)`` builds from the very
same declaration (its annotations and defaults, on ``Variant``): the same
fields (``attrs.fields``), slots, ``__match_args__``, ``__init__``
signature and bytecode. Equality, hashing and repr are
``test_codec.py``'s (against attrs' generated methods).
"""

from __future__ import annotations

import copy
import pickle
import weakref
from types import CodeType
from typing import Any, ClassVar

import attrs
import pytest

import protocol._wire as wire
import protocol.errors as errors
import protocol.forms as forms
import protocol.messages as messages
from protocol.messages import Get, KvRequest, Scan, Set
from protocol.variant import Variant, variant

#: Every class ``@variant`` builds in the protocol package.
BUILT = [
    value
    for module in (messages, errors, wire, forms)
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, Variant) and value is not Variant
]


def _attrs_twin(cls: type[Variant]) -> type:
    """The class attrs builds from ``cls``'s declaration (before ``@variant``)."""
    annotations = cls.__annotations__
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__annotations__": annotations,
    }
    for field in attrs.fields(cls):
        if field.default is not attrs.NOTHING:
            namespace[field.name] = field.default
    return attrs.frozen(kw_only=True, repr=False, eq=False)(
        type(cls.__name__, (Variant,), namespace)
    )


_CODE = (
    "co_code",
    "co_consts",
    "co_names",
    "co_varnames",
    "co_argcount",
    "co_kwonlyargcount",
    "co_flags",
    "co_nlocals",
    "co_stacksize",
)


def test_every_message_error_and_shape_class_is_built_by_variant() -> None:
    assert len(BUILT) > 80
    for cls in (*BUILT, KvRequest, Get, Scan, wire.Struct, forms.RocksDbError):
        assert cls in BUILT
        assert "__attrs_props__" not in vars(cls), cls  # no attrs class builder ran
        assert cls.__bases__ == (Variant,)


@pytest.mark.parametrize("cls", BUILT, ids=lambda cls: cls.__name__)
def test_a_variant_class_is_what_attrs_builds_from_its_declaration(cls: type[Variant]) -> None:
    twin = _attrs_twin(cls)
    assert attrs.fields(cls) == attrs.fields(twin)
    assert attrs.has(cls)
    assert cls.__slots__ == twin.__slots__  # type: ignore[attr-defined]
    assert cls.__match_args__ == twin.__match_args__ == ()  # type: ignore[attr-defined]
    ours, theirs = vars(cls)["__init__"], vars(twin)["__init__"]
    assert ours.__annotations__ == theirs.__annotations__
    assert ours.__kwdefaults__ == theirs.__kwdefaults__
    assert ours.__qualname__ == theirs.__qualname__
    assert ours.__defaults__ is None
    ours_code: CodeType = ours.__code__
    theirs_code: CodeType = theirs.__code__
    if not attrs.fields(cls):
        # attrs' sets ``_setattr`` and uses it for nothing; ours does nothing
        assert (ours_code.co_argcount, ours_code.co_kwonlyargcount) == (1, 0)
        assert ours_code.co_names == ()
        assert ours_code.co_varnames == ("self",)
        return
    for attribute in _CODE:
        assert getattr(ours_code, attribute) == getattr(theirs_code, attribute), attribute
    assert ours.__globals__["_cached_setattr_get"] == theirs.__globals__["_cached_setattr_get"]


def test_a_variant_is_frozen_and_copies_pickles_and_evolves_like_an_attrs_one() -> None:
    value = Set(key=b"k", tx_id=7)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        value.key = b"other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del value.key
    with pytest.raises(AttributeError):
        value.other = 1  # type: ignore[attr-defined]  # slots: no __dict__
    assert not hasattr(value, "__dict__")
    for same in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert same == value
        assert same is not value
        assert type(same) is Set
    # mypy's attrs plugin knows only attrs' decorators, at run time it is one
    assert attrs.evolve(value, tx_id=None) == Set(key=b"k")  # type: ignore[misc]
    assert attrs.asdict(value) == {"key": b"k", "tx_id": 7}
    assert weakref.ref(value)() is value
    assert Set(key=b"k").tx_id is None  # the default
    with pytest.raises(TypeError):
        Set(b"k")  # type: ignore[call-arg]  # keyword-only
    with pytest.raises(TypeError):
        Get()  # type: ignore[call-arg]  # a field without default is required
    match value:
        case Set(key=key, tx_id=tx):
            assert (key, tx) == (b"k", 7)
        case _:
            pytest.fail("no match")


def test_variant_refuses_what_it_would_not_build_as_attrs_does() -> None:
    class WithField(Variant):
        key: bytes = attrs.field(default=b"")

    class WithFactory(Variant):
        keys: list[bytes] = attrs.Factory(list)

    class Private(Variant):
        _key: bytes

    class UsesSuper(Variant):
        def __str__(self) -> str:
            return super().__str__()

    class Inner(Variant):
        pass

    class Deeper(Inner):
        pass

    for cls, problem in [
        (WithField, "plain default"),
        (WithFactory, "plain default"),
        (Private, "public"),
        (UsesSuper, "super"),
        (Deeper, "only base"),
    ]:
        with pytest.raises(TypeError, match=problem):
            variant(cls)


def test_variant_skips_class_vars_and_keeps_methods() -> None:
    @variant
    class Tagged(Variant):
        TAG: ClassVar[str] = "Tagged"
        count: int
        label: str = "x"

        def double(self) -> int:
            return self.count * 2

    value = Tagged(count=2)
    assert [f.name for f in attrs.fields(Tagged)] == ["count", "label"]
    assert Tagged.TAG == "Tagged"
    assert value.double() == 4
    assert repr(value) == (
        "test_variant_skips_class_vars_and_keeps_methods.<locals>.Tagged(count=2, label='x')"
    )
    assert Tagged.__init__.__code__.co_varnames == ("self", "count", "label", "_setattr")
