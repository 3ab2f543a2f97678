"""The rounds a taken batch is served in (rounds.py): pure, no bus."""

from __future__ import annotations

from kvruntime.kernel.message import Request
from kvruntime.kvservice.rounds import ROUND_BYTES, fair_round, split_round
from protocol.ids import Address

KV = Address.parse("node.os@kv:distro:sys")
BIG = b"x" * (ROUND_BYTES // 2 + 1)  # two do not fit in one round


def request(sender: str, n: int, blob: bytes | None = None) -> Request:
    return Request(n, Address.parse(f"node.os@{sender}:app:pub.os"), KV, b"", blob)


def names(messages: list[Request]) -> list[int]:
    return [m.id for m in messages]


def test_a_batch_that_fits_is_one_round_in_arrival_order() -> None:
    batch = [request("a", 1, b"v" * 1000), request("b", 2), request("a", 3, b"v")]
    taken, rest = split_round(batch)
    assert taken is batch
    assert rest == []


def test_a_larger_batch_is_round_robin_across_senders_in_budgeted_rounds() -> None:
    a1, a2, a3 = request("a", 1, BIG), request("a", 2, BIG), request("a", 3, BIG)
    b1, b2, c1 = request("b", 4), request("b", 5, BIG), request("c", 6, b"v")
    taken, rest = split_round([a1, a2, a3, b1, b2, c1])
    # Round-robin: a1 b1 c1 | a2 b2 | a3; the budget ends the round before a2.
    assert names(taken) == [1, 4, 6]
    assert names(rest) == [2, 5, 3]
    taken, rest = fair_round(rest)
    assert names(taken) == [2]
    assert names(rest) == [5, 3]


def test_a_single_request_over_the_budget_is_a_round_of_its_own() -> None:
    huge = request("a", 1, b"x" * (3 * ROUND_BYTES))
    taken, rest = split_round([huge, request("a", 2)])
    assert names(taken) == [1]
    assert names(rest) == [2]


def test_each_senders_order_is_kept_across_rounds() -> None:
    batch = [request(s, i, BIG if i % 3 else None) for i, s in enumerate("abcabcaab" * 4)]
    served: list[Request] = []
    rest: list[Request] = batch
    while rest:
        taken, rest = fair_round(rest)
        assert taken
        served += taken
    assert sorted(names(served)) == names(batch)
    for sender in "abc":
        mine = [m.id for m in served if m.source.process.process_name == sender]
        assert mine == sorted(mine)
