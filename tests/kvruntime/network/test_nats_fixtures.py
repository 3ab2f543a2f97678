"""The session's NATS cluster keeps the tests that share it apart.

Each test sees the cluster through an account of its own, so the same node
names (the same ``kvr.in.<node>`` subjects) in two tests never meet; within
one account a subject reaches across the cluster's servers. A server that
cannot start fails the test, with what it said.
"""

from __future__ import annotations

import socket
from pathlib import Path

import attrs
import nats
import nats.aio.msg
import pytest
from anyio import fail_after, move_on_after

from .conftest import SessionCluster, launch_nats_server

INBOX = "kvr.in.bob_os"


@pytest.mark.anyio
async def test_one_account_reaches_across_servers_and_another_account_hears_nothing(
    session_nats_cluster: SessionCluster,
) -> None:
    mine, theirs = session_nats_cluster.account(), session_nats_cluster.account()
    first, _, last = session_nats_cluster.servers
    got: dict[str, list[bytes]] = {mine: [], theirs: []}
    listeners = []
    for user in (mine, theirs):

        async def on_message(msg: nats.aio.msg.Msg, user: str = user) -> None:
            got[user].append(msg.data)

        listener = await nats.connect(attrs.evolve(first, user=user).url)
        await listener.subscribe(INBOX, cb=on_message)
        await listener.flush()
        listeners.append(listener)
    speaker = await nats.connect(attrs.evolve(last, user=mine).url)
    try:
        with fail_after(10):  # until the subscription's interest has crossed the routes
            while not got[mine]:
                await speaker.publish(INBOX, b"ping")
                await speaker.flush()
                with move_on_after(0.05):
                    await listeners[0].flush()
            # One more, by the same path: by the time it is in, theirs would have had it too.
            await speaker.publish(INBOX, b"last")
            await speaker.flush()
            while got[mine][-1] != b"last":
                await listeners[0].flush()
            await listeners[1].flush()
    finally:
        for connection in (speaker, *listeners):
            await connection.close()
    assert set(got[mine]) == {b"ping", b"last"}
    assert got[theirs] == []


def test_a_server_that_cannot_start_fails_the_test_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(pytest.fail.Exception, match="address already in use"):
            launch_nats_server(tmp_path / "busy", "-m", str(port))
    with pytest.raises(pytest.fail.Exception, match="no_such_option"):
        launch_nats_server(tmp_path / "bad", "--no_such_option")
