"""The kernel: what every process needs, and nothing of kv.

Messages (``message``), bounded mailboxes (``mailbox``), the timeouts of
awaited requests (``deadlines``), the bus that routes and checks everything
that crosses it (``bus``), what a process sees of it (``process``), the
capability store (``capabilities``) and the kernel's exceptions (``errors``).
Internal: the public names are re-exported by ``kvruntime``.
"""
