"""The schema is declared once: every variant's ``WIRE``, and what is derived from it.

The literal bytes below are the one place a message's bytes are written by
hand: they are the templates ``hot.py`` held before it derived them, and
prove that the derivation reproduces the committed wire format.
"""

from __future__ import annotations

import typing

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import _schema, codec, golden, hot, messages, prefix
from protocol._schema import Encoder
from protocol._wire import UNIT, Array, Field, Newtype, Struct, Unit, declaration
from protocol.hot import MARKER, split_at_marker
from protocol.ids import PackageId
from protocol.messages import (
    Delete,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetResponse,
    KeyNotFound,
    KvAction,
    KvError,
    KvRequest,
    KvResponse,
    MalformedRequest,
    NoReadCap,
    NoWriteCap,
    OkResponse,
    Set,
)

from .test_codec import responses

VARIANTS = (*typing.get_args(KvAction), *typing.get_args(KvResponse), *typing.get_args(KvError))

#: hot.py's templates as they were written by hand before this change (commit 79babac).
COMMITTED_TEMPLATES: dict[type[Get | Exists | Set | Delete], tuple[bytes, bytes]] = {
    Get: (b"\x81\xa3Get", b""),
    Exists: (b"\x81\xa6Exists", b""),
    Set: (b"\x81\xa3Set\x82\xa3key", b"\xa5tx_id\xc0"),
    Delete: (b"\x81\xa6Delete\x82\xa3key", b"\xa5tx_id\xc0"),
}
COMMITTED_OK_BODY = b"\xa2Ok"
COMMITTED_GET_RESPONSE_HEAD = b"\x81\xa3Get"
COMMITTED_CONSTANTS = {
    b"\xa2Ok": OkResponse(),
    b"\x81\xa6Exists\xc3": ExistsResponse(exists=True),
    b"\x81\xa6Exists\xc2": ExistsResponse(exists=False),
    b"\x81\xa3Err\xabKeyNotFound": ErrResponse(error=KeyNotFound()),
    b"\x81\xa3Err\xa9NoReadCap": ErrResponse(error=NoReadCap()),
    b"\x81\xa3Err\xaaNoWriteCap": ErrResponse(error=NoWriteCap()),
    b"\x81\xa3Err\xb0MalformedRequest": ErrResponse(error=MalformedRequest()),
}
PACKAGE = PackageId(package_name="chat", publisher_node="alice.os")


def _declared_names(cls: type) -> list[str]:
    _, shape = declaration(cls)
    match shape:
        case Unit():
            return []
        case Newtype(name=name):
            return [name]
        case Struct(fields=fields) | Array(fields=fields):
            return [name for name, _ in fields]
    raise AssertionError(f"{cls.__name__}.WIRE is not a wire shape: {shape!r}")


# --- One declaration per variant -----------------------------------------------------


@pytest.mark.parametrize("cls", VARIANTS, ids=lambda cls: cls.__name__)
def test_every_variant_declares_its_fields_once(cls: type) -> None:
    names = _declared_names(cls)
    assert len(names) == len(set(names))
    assert set(names) == {field.name for field in attrs.fields(cls)}


def test_the_codec_tables_are_built_from_every_variant() -> None:
    for classes, wire, units, payloads in (
        (
            typing.get_args(KvAction),
            _schema._ACTION_WIRE,
            _schema._UNIT_ACTIONS,
            _schema._PAYLOAD_ACTIONS,
        ),
        (
            typing.get_args(KvResponse),
            _schema._RESPONSE_WIRE,
            _schema._UNIT_RESPONSES,
            _schema._PAYLOAD_RESPONSES,
        ),
        (
            typing.get_args(KvError),
            _schema._ERROR_WIRE,
            _schema._UNIT_ERRORS,
            _schema._PAYLOAD_ERRORS,
        ),
    ):
        assert set(wire) == set(classes)
        tags = [cls.TAG for cls in classes]
        assert len(tags) == len(set(tags))
        assert set(units) | set(payloads) == set(tags)
        assert not set(units) & set(payloads)
        for cls in classes:
            assert (cls.TAG in units) == (cls.WIRE == UNIT)


def test_golden_meanings_are_read_for_every_variant() -> None:
    assert set(golden._UNIT_ACTIONS) | set(golden._PAYLOAD_ACTIONS) == {
        cls.TAG for cls in typing.get_args(KvAction)
    }
    assert set(golden._UNIT_RESPONSES) | set(golden._PAYLOAD_RESPONSES) == {
        cls.TAG for cls in typing.get_args(KvResponse)
    }
    assert set(golden._UNIT_ERRORS) | set(golden._PAYLOAD_ERRORS) == {
        cls.TAG for cls in typing.get_args(KvError)
    }


def test_every_field_kind_is_used() -> None:
    used = set()
    for cls in VARIANTS:
        _, shape = declaration(cls)
        if isinstance(shape, Newtype):
            used.add(shape.field)
        elif isinstance(shape, Struct | Array):
            used.update(field for _, field in shape.fields)
    assert used == set(Field)


# --- The hot templates, derived -------------------------------------------------------


def test_derived_request_templates_are_the_committed_bytes() -> None:
    for kind, template in COMMITTED_TEMPLATES.items():
        assert hot.request_template(kind) == template, kind.__name__


def test_derived_response_bodies_are_the_committed_bytes() -> None:
    assert hot.OK_BODY == COMMITTED_OK_BODY
    assert hot.GET_RESPONSE_HEAD == COMMITTED_GET_RESPONSE_HEAD
    assert hot.CONSTANT_RESPONSES == COMMITTED_CONSTANTS


def test_splitting_an_encoding_at_the_marker_gives_the_template() -> None:
    for kind, template in COMMITTED_TEMPLATES.items():
        body = Encoder().action(kind(key=MARKER))
        assert split_at_marker(body) == template
    body = Encoder().response(GetResponse(key=MARKER))
    assert split_at_marker(body) == (COMMITTED_GET_RESPONSE_HEAD, b"")


def test_split_at_marker_needs_exactly_one_marker() -> None:
    marked = hot.bin_header(len(MARKER)) + MARKER
    with pytest.raises(ValueError, match="0 times"):
        split_at_marker(b"\x81\xa3Get\xc4\x01k")
    with pytest.raises(ValueError, match="2 times"):
        split_at_marker(marked + marked)


def test_request_head_is_the_encoded_request_before_its_action() -> None:
    head = prefix.request_head(PACKAGE, "messages")
    body = codec.encode_request(KvRequest(package_id=PACKAGE, db="messages", action=Get(key=b"k")))
    assert body == head + b"\x81\xa3Get\xc4\x01k"


# --- Trusted constructors ---------------------------------------------------------------

TRUSTED: tuple[type[Get | Exists | Set | Delete | GetResponse], ...] = (
    Get,
    Exists,
    Set,
    Delete,
    GetResponse,
)


@pytest.mark.parametrize("cls", TRUSTED, ids=lambda cls: cls.__name__)
def test_trusted_constructors_build_what_init_builds(
    cls: type[Get | Exists | Set | Delete | GetResponse],
) -> None:
    built = cls._parsed(b"k")
    assert type(built) is cls
    assert built == cls(key=b"k")
    # Every field is set (a slot left empty would raise AttributeError here).
    assert attrs.asdict(built, recurse=False) == attrs.asdict(cls(key=b"k"), recurse=False)
    assert hash(built) == hash(cls(key=b"k"))


@pytest.mark.parametrize("cls", TRUSTED, ids=lambda cls: cls.__name__)
def test_trusted_classes_have_nothing_init_would_run(cls: type) -> None:
    # ``_parsed`` sets the slots without __init__: that is only the object
    # __init__ would build while __init__ does nothing but set them.
    assert not hasattr(cls, "__attrs_post_init__")
    for field in attrs.fields(cls):
        assert field.validator is None, field.name
        assert field.converter is None, field.name
        assert field.on_setattr in (None, attrs.setters.NO_OP), field.name
    assert set(hot.BUILT_WITHOUT_INIT) <= set(TRUSTED)


def test_a_trusted_constructor_is_refused_where_init_would_do_more() -> None:
    with pytest.raises(TypeError, match="does more than set its fields"):

        @messages._trusted()
        @attrs.frozen(kw_only=True)
        class Checked:
            key: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))

    with pytest.raises(TypeError, match="must set every field"):

        @messages._trusted()
        @attrs.frozen(kw_only=True)
        class Wider:
            key: bytes
            extra: int = 0


# --- One Packer per encoder ---------------------------------------------------------------


@given(st.lists(responses, min_size=1, max_size=8))
def test_a_reused_packer_writes_what_a_fresh_one_writes(batch: list[KvResponse]) -> None:
    encoder = Encoder()
    for response in batch:
        wire = _schema._response_wire(response)
        assert encoder.response(response) == msgpack.packb(wire, use_bin_type=True)


def test_encoding_a_foreign_object_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="GetResponse is not a KvAction variant"):
        Encoder().action(GetResponse(key=b"k"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Get is not a KvResponse variant"):
        codec.encode_response(Get(key=b"k"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Get is not a KvError variant"):
        codec.encode_response(ErrResponse(error=Get(key=b"k")))  # type: ignore[arg-type]


def test_a_failed_pack_leaves_the_packer_clean() -> None:
    encoder = Encoder()
    with pytest.raises(TypeError):
        encoder.pack({"Get": object()})
    assert encoder.response(OkResponse()) == COMMITTED_OK_BODY
