"""kvruntime's value types built by ``@variant`` (``protocol.variant.frozen_value``, issue 15).

``KvConfig``, ``TtlPolicy``, kv's action rules (``OfTheDb``, ``OnData``), the
metrics' collector and the client's ``Page`` and ``Change`` are declared
``@frozen_value(kw_only=True)``: to mypy ``@attrs.frozen(kw_only=True)``, at
run time the class ``@variant`` builds without attrs' class builder (every
``kvruntime get`` loads them). Each is compared here with the class
``@attrs.frozen(kw_only=True)`` builds from the very same declaration: its
fields, its ``__init__`` and what users see of an instance (equality, hash,
repr, frozen, copy, pickle, evolve).
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import attrs
import pytest

from kvruntime import KvConfig
from kvruntime.client import Change, Page
from kvruntime.kvservice.actions import OfTheDb, OnData
from kvruntime.kvservice.expiry import TtlPolicy
from kvruntime.kvservice.metrics import KvMetrics, _Collector
from protocol.variant import Variant, frozen_value


def _serve(*args: object) -> None:
    return None


#: Each class with two sets of field values (an instance of each is built).
CASES: list[tuple[type[Any], dict[str, Any], dict[str, Any]]] = [
    (KvConfig, {}, {"max_batch": 3, "sync_writes": True, "max_open_dbs": 7}),
    (TtlPolicy, {}, {"enabled": False, "max_ttl_ms": 5}),
    (OfTheDb, {"serve": _serve}, {"serve": _serve, "needs_blob": True}),
    (OnData, {"write": True, "serve": _serve}, {"write": False, "serve": _serve}),
    (Page, {"items": [(b"k", b"v")], "cursor": None}, {"items": [], "cursor": b"k"}),
    (_Collector, {"metrics": KvMetrics()}, {"metrics": KvMetrics()}),
    (
        Change,
        {"seq": 1, "key": b"k", "value": b"v", "kind": "set"},
        {"seq": 2, "key": "k", "value": None, "kind": "delete"},
    ),
]


def _attrs_twin(cls: type[Any]) -> type[Any]:
    """The class ``@attrs.frozen(kw_only=True)`` builds from ``cls``'s declaration."""
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__annotations__": cls.__annotations__,
    }
    for field in attrs.fields(cls):
        if field.default is not attrs.NOTHING:
            namespace[field.name] = field.default
    return attrs.frozen(kw_only=True)(type(cls.__name__, (), namespace))


@pytest.mark.parametrize(
    ("cls", "first", "second"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_a_value_type_is_what_attrs_frozen_builds_from_its_declaration(
    cls: type[Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert Variant in cls.__mro__
    assert "__attrs_props__" not in vars(cls)  # attrs' class builder did not run
    twin = _attrs_twin(cls)
    assert attrs.fields(cls) == attrs.fields(twin)
    assert cls.__slots__ == twin.__slots__
    assert cls.__match_args__ == twin.__match_args__ == ()
    ours, theirs = vars(cls)["__init__"], vars(twin)["__init__"]
    assert ours.__kwdefaults__ == theirs.__kwdefaults__
    assert ours.__code__.co_code == theirs.__code__.co_code
    a, b = cls(**first), cls(**second)
    ta, tb = twin(**first), twin(**second)
    assert repr(a) == repr(ta)
    assert repr(b) == repr(tb)
    assert (a == cls(**first), a == b, a != b) == (ta == twin(**first), ta == tb, ta != tb)
    assert (a == ta, a.__eq__(ta)) == (False, NotImplemented)  # another class: not equal
    if cls is not Page:  # a page holds a list: unhashable, as attrs' is
        assert hash(a) == hash(cls(**first))
        assert len({a, cls(**first), b}) == 2
    else:
        with pytest.raises(TypeError):
            hash(a)
        with pytest.raises(TypeError):
            hash(ta)
    name = next(iter(second))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(a, name, second[name])
    with pytest.raises(TypeError):
        cls(*second.values())  # keyword-only
    assert attrs.evolve(a, **second) == b
    assert attrs.asdict(b, recurse=False) == attrs.asdict(tb, recurse=False)
    assert copy.copy(b) == b
    if cls not in (OfTheDb, OnData, _Collector):  # they hold functions, or an identity object
        assert copy.deepcopy(b) == b
        assert pickle.loads(pickle.dumps(b)) == b


def test_the_generic_value_types_take_type_arguments() -> None:
    page: Page[bytes, bytes] = Page[bytes, bytes](items=[], cursor=None)
    assert page == Page(items=[], cursor=None)
    assert Change[str, int].__origin__ is Change  # type: ignore[attr-defined]


def test_frozen_value_builds_keyword_only_classes_only() -> None:
    with pytest.raises(TypeError, match="keyword-only"):
        frozen_value(kw_only=False)
