"""DbRequestEncoder writes exactly the bytes encode_request writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import decode_request, encode_request
from protocol.ids import PackageId
from protocol.messages import (
    BeginTx,
    Commit,
    CommitBatch,
    Delete,
    Exists,
    Get,
    KvAction,
    KvRequest,
    Open,
    RemoveDb,
    Set,
    WriteBatch,
)
from protocol.prefix import DbRequestEncoder

names = st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)
nodes = st.from_regex(r"[a-z0-9-][a-z0-9.-]{0,11}", fullmatch=True)
package_ids = st.builds(PackageId, package_name=names, publisher_node=nodes)
dbs = st.text(min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..") and not any(c in s for c in "/\\\0")
)
keys = st.binary(max_size=300)
tx_ids = st.none() | st.integers(min_value=0, max_value=2**64 - 1)
actions: st.SearchStrategy[KvAction] = st.one_of(
    st.just(Open()),
    st.just(RemoveDb()),
    st.just(BeginTx()),
    st.builds(Set, key=keys, tx_id=tx_ids),
    st.builds(Delete, key=keys, tx_id=tx_ids),
    st.builds(Get, key=keys),
    st.builds(Exists, key=keys),
    st.builds(Commit, tx_id=st.integers(min_value=0, max_value=2**64 - 1)),
    st.builds(WriteBatch, tx_id=tx_ids, count=st.integers(min_value=0, max_value=2**64 - 1)),
    st.builds(
        CommitBatch,
        tx_id=st.integers(min_value=0, max_value=2**64 - 1),
        count=st.integers(min_value=0, max_value=2**64 - 1),
    ),
)


@given(package_ids, dbs, actions)
def test_the_prefix_encoder_writes_encode_requests_bytes(
    package_id: PackageId, db: str, action: KvAction
) -> None:
    request = KvRequest(package_id=package_id, db=db, action=action)
    body = DbRequestEncoder(package_id, db).encode(action)
    assert body == encode_request(request)
    assert decode_request(body) == request
