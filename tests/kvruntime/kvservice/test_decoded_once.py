"""A networked engine's kv process decodes a round's request once: the prefetch's
parts are handed to the serving, once, by the body's identity (pure part)."""

from __future__ import annotations

from typing import Any, cast

from protocol.codec import encode_request
from protocol.ids import PackageId
from protocol.messages import Get, KvRequest, Set
from tests.internals import decoded_once

PKG = PackageId.parse("app:pkg.os")


def test_kept_parts_are_handed_back_once_then_the_body_is_decoded() -> None:
    decoder = decoded_once()
    body = encode_request(KvRequest(package_id=PKG, db="main", action=Get(key=b"k")))
    kept = (PKG, "other", Set(key=b"kept", tx_id=None))  # unlike what the body says
    decoded = cast(dict[int, Any], getattr(decoder, "decoded"))  # noqa: B009
    decoded[id(body)] = kept
    assert decoder.decode_parts(body) is kept  # taken, not decoded
    assert not decoded  # once
    assert decoder.decode_parts(body) == (PKG, "main", Get(key=b"k"))  # decoded again


def test_a_body_not_kept_is_decoded() -> None:
    decoder = decoded_once()
    other = encode_request(KvRequest(package_id=PKG, db="main", action=Get(key=b"x")))
    body = encode_request(KvRequest(package_id=PKG, db="main", action=Get(key=b"k")))
    decoded = cast(dict[int, Any], getattr(decoder, "decoded"))  # noqa: B009
    decoded[id(other)] = (PKG, "main", Get(key=b"x"))
    assert decoder.decode_parts(body) == (PKG, "main", Get(key=b"k"))
    assert id(other) in decoded  # another body's parts stay for it
