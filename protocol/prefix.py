"""Many requests to one db: the constant part of their bodies, packed and read once.

A KvRequest body is the map ``{"package_id": .., "db": .., "action": ..}``;
msgpack is concatenative, so the bytes up to the action's value (the *head*)
are the same for every request to one db.

- ``DbRequestEncoder`` packs the head once, then only the action (with
  ``hot.py``'s templates for the hot ones): the body is byte for byte
  ``encode_request``'s (a test checks it for every action).
- ``RequestDecoder`` remembers the heads of bodies the general decoder has
  validated. After a known head only the action is read: a hot one from its
  template (``hot.read_action``), any other by ``decode_action``; a body
  without a known head goes through ``decode_request``. So what it accepts
  and refuses is unchanged: msgpack is a prefix code, so a validated head
  followed by a valid action is a valid body, with that head's package and
  db, and followed by anything else is not.
  ``decode_parts_in_any_form`` serves every form (``forms.py``): a JSON body
  by the JSON decoder, any other by the fast path above, then, if that
  refuses it, as the ARRAY form; with the form the answer must take.
"""

from __future__ import annotations

from typing import Final

from . import hot
from ._schema import Encoder
from .codec import (
    DEFAULT_MAX_BODY_BYTES,
    DecodeError,
    decode_action,
    decode_request,
    encode_request,
)
from .forms import Form, _as_array_form, decode_request_in, form_of
from .ids import PackageId
from .messages import Delete, Exists, Get, KvAction, KvRequest, Open, Set

__all__ = ["DbRequestEncoder", "RequestDecoder"]

#: The last bytes of every head: the key ``"action"``, as msgpack writes it.
_ACTION_KEY: Final = Encoder().pack("action")
_ACTION_KEY_SIZE: Final = len(_ACTION_KEY)


def request_head(package_id: PackageId, db: str) -> bytes:
    """The canonical bytes of a body to (``package_id``, ``db``) up to its action.

    ``encode_request`` writes the action last, so a body's head is all of it
    but the action's bytes (here those of the unit action Open).
    """
    body = encode_request(KvRequest(package_id=package_id, db=db, action=Open()))
    head = body[: -len(_OPEN)]
    if not head.endswith(_ACTION_KEY) or head + _OPEN != body:
        raise AssertionError(f"a request body does not end with its action: {body!r}")
    return head


#: The bytes of the action Open, which ends the body ``request_head`` cuts.
_OPEN: Final = Encoder().action(Open())


class DbRequestEncoder:
    """Encodes the KvRequests of one db (``package_id``, ``db``).

    It owns one msgpack Packer (``_schema.Encoder``), so it is for one thread
    at a time, as a client's handle is.
    """

    __slots__ = ("_delete", "_encoder", "_exists", "_get", "_prefix", "_set")

    def __init__(self, package_id: PackageId, db: str) -> None:
        self._encoder = Encoder()
        self._prefix = head = request_head(package_id, db)
        self._get = _joined(head, hot.request_template(Get))
        self._exists = _joined(head, hot.request_template(Exists))
        self._set = _joined(head, hot.request_template(Set))
        self._delete = _joined(head, hot.request_template(Delete))

    def encode(self, action: KvAction) -> bytes:
        """The body of the request ``action`` on this db."""
        return self._prefix + self._encoder.action(action)

    def get(self, key: bytes) -> bytes:
        """The body of ``Get(key)`` (as ``encode`` writes it, faster)."""
        return _around(self._get, key)

    def exists(self, key: bytes) -> bytes:
        """The body of ``Exists(key)``."""
        return _around(self._exists, key)

    def set(self, key: bytes) -> bytes:
        """The body of ``Set(key, tx_id=None)``; the value goes in the blob."""
        return _around(self._set, key)

    def delete(self, key: bytes) -> bytes:
        """The body of ``Delete(key, tx_id=None)``."""
        return _around(self._delete, key)


def _joined(head: bytes, template: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    before, after = template
    return head + before, after


def _around(template: tuple[bytes, bytes], key: bytes) -> bytes:
    """A body: the bytes before the key, its ``bin``, the bytes after it."""
    before, after = template
    return b"".join((before, hot.bin_header(len(key)), key, after))


class RequestDecoder:
    """Decodes KvRequests as ``decode_request`` does, faster for known heads.

    It keeps at most ``max_heads`` heads (then starts over), so a sender
    spraying db names costs memory only up to that bound.
    """

    __slots__ = ("_heads", "_max_heads", "_max_size")

    def __init__(self, *, max_size: int = DEFAULT_MAX_BODY_BYTES, max_heads: int = 4096) -> None:
        self._max_size = max_size
        self._max_heads = max_heads
        #: A validated head -> its package and db.
        self._heads: dict[bytes, tuple[PackageId, str]] = {}

    def decode(self, body: bytes) -> KvRequest:
        """The request ``body`` encodes; DecodeError for anything but a valid one."""
        package_id, db, action = self.decode_parts(body)
        return KvRequest(package_id=package_id, db=db, action=action)

    def decode_parts(self, body: bytes) -> tuple[PackageId, str, KvAction]:
        """``decode``'s request as (package_id, db, action), without building a KvRequest."""
        if len(body) <= self._max_size:
            # The first "action" may sit inside the db name: then the second is the key.
            end = body.find(_ACTION_KEY) + _ACTION_KEY_SIZE
            if end >= _ACTION_KEY_SIZE:
                known = self._heads.get(body[:end])
                if known is None and (later := body.find(_ACTION_KEY, end)) >= 0:
                    end = later + _ACTION_KEY_SIZE
                    known = self._heads.get(body[:end])
                if known is not None:
                    action = hot.read_action(body, end)
                    if action is None:  # not a hot one: the action alone, the general way
                        action = decode_action(body[end:], max_size=self._max_size)
                    return known[0], known[1], action
        request = decode_request(body, max_size=self._max_size)
        self._learn(body, request)
        return request.package_id, request.db, request.action

    def decode_parts_in_any_form(self, body: bytes) -> tuple[PackageId, str, KvAction, Form]:
        """``decode_parts`` for a body in any form (``forms.py``), and that form.

        A canonical body takes ``decode_parts``' fast path; a JSON body (by its
        first byte) the JSON decoder; a msgpack body the canonical decoder
        refuses is read in the ARRAY form. DecodeError for anything else: its
        answer takes ``forms.form_of(body)``.
        """
        if form_of(body) is Form.JSON:
            request = decode_request_in(body, Form.JSON, max_size=self._max_size)
            return request.package_id, request.db, request.action, Form.JSON
        try:
            package_id, db, action = self.decode_parts(body)
        except DecodeError as canonical:
            request = _as_array_form(canonical, decode_request_in, body, self._max_size)
            return request.package_id, request.db, request.action, Form.ARRAY
        return package_id, db, action, Form.CANONICAL

    def _learn(self, body: bytes, request: KvRequest) -> None:
        head = request_head(request.package_id, request.db)
        if body.startswith(head) and head not in self._heads:
            if len(self._heads) >= self._max_heads:
                self._heads.clear()
            self._heads[head] = (request.package_id, request.db)
