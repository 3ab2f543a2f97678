"""kvruntime: a message-passing runtime whose kv:distro:sys process keeps data in LevelDB.

The public surface::

    async with Runtime(home="./data") as rt:
        handle = await rt.spawn("app:my-pkg:publisher.os", main,
                                request_capabilities=["kv:distro:sys"])
        await handle.wait()

and, inside ``main(ctx)``, the client ``kvruntime.client`` (``from kvruntime import kv``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from .kernel.node_key import node_public_key
    from .kernel.process import ProcessContext, ProcessHandle
    from .kvservice.config import KvConfig
    from .runtime import Main, Runtime
    from .storage.engine import StorageUnavailable

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
    "StorageUnavailable",
    "UnexpectedResponse",
    "kv",
    "node_public_key",
]

# Imported on first use (PEP 562), so that `kvruntime --help` starts without
# the runtime: the command line imports this package before any command runs.
_WHERE = {
    **dict.fromkeys(["Address", "IdError", "PackageId", "ProcessId"], "protocol.ids"),
    **dict.fromkeys(["KvError", "UnexpectedResponse"], "kvruntime.client.errors"),
    **dict.fromkeys(["CapabilityStoreError", "HomeInUse"], "kvruntime.kernel.capabilities"),
    **dict.fromkeys(
        [
            "CapabilityNotHeld",
            "ProcessKilled",
            "RespondError",
            "RuntimeClosed",
            "SendError",
            "SendErrorKind",
        ],
        "kvruntime.kernel.errors",
    ),
    **dict.fromkeys(["Capability", "Message", "Request", "Response"], "kvruntime.kernel.message"),
    **dict.fromkeys(["ProcessContext", "ProcessHandle"], "kvruntime.kernel.process"),
    "KvConfig": "kvruntime.kvservice.config",
    # Many nodes (issue 17): the node key peers are given.
    "node_public_key": "kvruntime.kernel.node_key",
    **dict.fromkeys(["Main", "Runtime"], "kvruntime.runtime"),
    # Redis Cluster storage (issue 13): unreachable or unsafe at start.
    "StorageUnavailable": "kvruntime.storage.engine",
}


def __getattr__(name: str) -> Any:
    if name == "kv":
        return importlib.import_module("kvruntime.client")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'kvruntime' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
