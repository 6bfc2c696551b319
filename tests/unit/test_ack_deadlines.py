"""AckDeadlines: ack timeouts from one heap and one loop timer."""

from __future__ import annotations

import asyncio

from fastsio import exceptions
from fastsio._ext._core import AckDeadlines, AckTable


async def test_overdue_acks_fail_in_deadline_order_and_resolved_ones_do_not() -> None:
    loop = asyncio.get_running_loop()
    acks = AckTable()
    deadlines = AckDeadlines(acks)
    futures = {}
    for timeout in (0.2, 0.05, 0.1):
        fut = loop.create_future()
        ack_id = acks.add_new("/", None, fut, False, False)
        deadlines.add(ack_id, timeout, f"ev{timeout}", loop)
        futures[timeout] = (ack_id, fut)
    order: list[float] = []
    for timeout, (_, fut) in futures.items():
        fut.add_done_callback(lambda f, t=timeout: order.append(t))
    assert acks.resolve("/", futures[0.1][0], [1])  # answered before its deadline
    await asyncio.sleep(0.35)
    assert order == [0.1, 0.05, 0.2]
    assert futures[0.1][1].result() == (1,)
    for timeout in (0.05, 0.2):
        exc = futures[timeout][1].exception()
        assert isinstance(exc, exceptions.TimeoutError)
        assert isinstance(exc, asyncio.TimeoutError)
        assert f"ev{timeout}" in str(exc)
    assert len(acks) == 0 and deadlines.heap == []


async def test_resolved_entries_are_compacted() -> None:
    loop = asyncio.get_running_loop()
    acks = AckTable()
    deadlines = AckDeadlines(acks)
    for _ in range(5000):
        ack_id = acks.add_new("/", None, loop.create_future(), False, False)
        deadlines.add(ack_id, 3600, "x", loop)
        acks.resolve("/", ack_id, [])
    assert len(deadlines.heap) <= 1025
    deadlines.cancel()


async def test_a_shorter_deadline_rearms_the_timer() -> None:
    loop = asyncio.get_running_loop()
    acks = AckTable()
    deadlines = AckDeadlines(acks)
    long_fut, short_fut = loop.create_future(), loop.create_future()
    deadlines.add(acks.add_new("/", None, long_fut, False, False), 3600, "long", loop)
    deadlines.add(acks.add_new("/", None, short_fut, False, False), 0.05, "short", loop)
    await asyncio.wait_for(asyncio.wait([short_fut]), 2)
    assert isinstance(short_fut.exception(), exceptions.TimeoutError)
    assert not long_fut.done()
    deadlines.cancel()
