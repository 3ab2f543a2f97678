"""Exceptions of the runtime layer (local misuse and delivery failures).

Errors that cross the bus are data (``protocol.messages``); these are for
the sender's side of the bus, raised in the sender's own task.
"""

from __future__ import annotations

import enum

__all__ = [
    "CapabilityNotHeld",
    "ProcessKilled",
    "RespondError",
    "RuntimeClosed",
    "SendError",
    "SendErrorKind",
]


class SendErrorKind(enum.Enum):
    """Why a message could not be delivered or answered."""

    #: No process is running at the target address.
    OFFLINE = "offline"
    #: No response came within the timeout.
    TIMEOUT = "timeout"
    #: The target is not public and the sender lacks its messaging capability.
    FORBIDDEN = "forbidden"
    #: The message carries a capability that the sender does not hold.
    CAPABILITY_NOT_HELD = "capability not held"
    #: The runtime is shutting down.
    CLOSED = "runtime closed"
    #: The target's mailbox is full and the request came from another node,
    #: which cannot wait for room without stalling every other request it sends.
    BUSY = "busy"


class SendError(Exception):
    """A message could not be delivered, or its response did not arrive in time."""

    def __init__(self, kind: SendErrorKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class RuntimeClosed(RuntimeError):
    """The runtime is not running (not entered yet, or already exited)."""


class ProcessKilled(RuntimeError):
    """The process was stopped (by ``kill`` or runtime shutdown) before its main returned."""


class CapabilityNotHeld(PermissionError):
    """A process tried to share or save a capability it does not hold."""


class RespondError(RuntimeError):
    """``respond`` was given a request this process did not receive or has answered already."""
