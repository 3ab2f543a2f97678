"""The default limits of kv:distro:sys, which a sender may check itself against.

The kv service takes these as its defaults (``KvConfig``) and answers a typed
error past each (``KeyTooLarge``, ``ValueTooLarge``, ``BatchTooLarge``); a
client checks them before sending, so that a request it knows will be refused
never leaves. A node configured otherwise tells its senders so.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_MAX_BATCH_ITEMS", "DEFAULT_MAX_KEY_BYTES", "DEFAULT_MAX_VALUE_BYTES"]

#: Longest key accepted by default.
DEFAULT_MAX_KEY_BYTES: Final = 64 * 1024
#: Longest value accepted by default.
DEFAULT_MAX_VALUE_BYTES: Final = 16 * 1024 * 1024
#: Most keys in one GetMany / SetMany / DeleteMany by default.
DEFAULT_MAX_BATCH_ITEMS: Final = 10_000
