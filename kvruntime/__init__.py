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
from .config import KvConfig
from .errors import CapabilityNotHeld, ProcessKilled, RuntimeClosed, SendError, SendErrorKind
from .kv_process import KV_PROCESS_ID
from .message import Capability, Message, Request, Response
from .process import ProcessContext, ProcessHandle
from .runtime import Main, Runtime

__all__ = [
    "KV_PROCESS_ID",
    "Address",
    "Capability",
    "CapabilityNotHeld",
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
    "Response",
    "Runtime",
    "RuntimeClosed",
    "SendError",
    "SendErrorKind",
    "UnexpectedResponse",
    "kv",
]
