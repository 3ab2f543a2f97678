"""KvRequest and KvResponse as JSON, in the "meaning" format of ``protocol.golden``.

The format mirrors the wire shape (external tagging, field names) with two
substitutions: a PackageId is the text ``"name:publisher"`` and a byte
string is lowercase hex. For typing convenience ``send`` also accepts
``{"utf8": "text"}`` wherever bytes are due, and lets ``tx_id`` of
``Set``/``Delete`` be left out (meaning null). Requests are parsed by
``protocol.golden.request_from_meaning``; responses are written here.
"""

from __future__ import annotations

import json

from protocol.golden import GoldenFormatError, JsonValue, request_from_meaning
from protocol.ids import IdError
from protocol.messages import (
    KvRequest,
)

from ._app import EXIT_USAGE, CliError

__all__ = ["request_from_json"]

_KEYED_ACTIONS = ("Set", "Delete")


def _utf8_to_hex(value: JsonValue) -> JsonValue:
    """Replace every ``{"utf8": text}`` by the hex of the text's UTF-8 bytes."""
    if isinstance(value, dict):
        if len(value) == 1 and "utf8" in value:
            text = value["utf8"]
            if not isinstance(text, str):
                raise CliError(f'{{"utf8": ...}} takes a string, got {text!r}', EXIT_USAGE)
            return text.encode("utf-8").hex()
        return {k: _utf8_to_hex(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_to_hex(v) for v in value]
    return value


def request_from_json(text: str) -> KvRequest:
    """The KvRequest ``text`` describes; CliError (usage) for bad JSON or a bad shape."""
    try:
        return _request_from_json(text)
    except RecursionError:  # a KvRequest is a few levels deep: this is no KvRequest
        raise CliError("not a KvRequest: JSON nested too deeply", EXIT_USAGE) from None


def _request_from_json(text: str) -> KvRequest:
    try:
        meaning: JsonValue = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"malformed JSON: {exc}", EXIT_USAGE) from None
    meaning = _utf8_to_hex(meaning)
    if isinstance(meaning, dict):
        action = meaning.get("action")
        if isinstance(action, dict) and len(action) == 1:
            ((tag, payload),) = action.items()
            if tag in _KEYED_ACTIONS and isinstance(payload, dict):
                payload.setdefault("tx_id", None)
    try:
        return request_from_meaning(meaning)
    except (GoldenFormatError, IdError) as exc:
        raise CliError(f"not a KvRequest: {exc}", EXIT_USAGE) from None
