"""kvruntime: a message-passing runtime whose kv:distro:sys process keeps data in LevelDB.

The public surface::

    async with Runtime(home="./data") as rt:
        handle = await rt.spawn("app:my-pkg:publisher.os", main,
                                request_capabilities=["kv:distro:sys"])
        await handle.wait()

and, inside ``main(ctx)``, the client ``kvruntime.client`` (``from kvruntime import kv``).
"""

from __future__ import annotations

from protocol.ids import Address, IdError, PackageId, ProcessId

from . import client as kv
from .client.errors import KvError, UnexpectedResponse
from .kernel.capabilities import CapabilityStoreError, HomeInUse
from .kernel.errors import (
    CapabilityNotHeld,
    ProcessKilled,
    RespondError,
    RuntimeClosed,
    SendError,
    SendErrorKind,
)
from .kernel.message import Capability, Message, Request, Response
from .kernel.process import ProcessContext, ProcessHandle
from .kvservice.config import KvConfig
from .runtime import Main, Runtime

__all__ = [
    "Address",
    "Capability",
    "CapabilityNotHeld",
    "CapabilityStoreError",
    "HomeInUse",
    "IdError",
    "KvConfig",
    "KvError",
    "Main",
    "Message",
    "PackageId",
    "ProcessContext",
    "ProcessHandle",
    "ProcessId",
    "ProcessKilled",
    "Request",
    "RespondError",
    "Response",
    "Runtime",
    "RuntimeClosed",
    "SendError",
    "SendErrorKind",
    "UnexpectedResponse",
    "kv",
]
