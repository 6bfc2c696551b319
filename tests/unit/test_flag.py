"""fastsio._flag.Flag behaves as asyncio.Event does (it replaces it in per-connection state)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from fastsio._flag import Flag


async def test_wait_on_a_set_flag_returns_at_once() -> None:
    flag = Flag()
    flag.set()
    assert flag.is_set()
    assert await flag.wait() is True


async def test_set_wakes_every_waiter_even_if_cleared_before_they_run() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    flag.clear()  # as with asyncio.Event: those already waiting still wake
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert not flag.is_set()


async def test_a_cleared_flag_blocks_new_waiters_until_set_again() -> None:
    flag = Flag()
    flag.set()
    flag.clear()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter is True


async def test_cancelled_waiter_is_dropped_and_others_still_wake() -> None:
    flag = Flag()
    gone = asyncio.ensure_future(flag.wait())
    stays = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert flag._waiters is not None and len(flag._waiters) == 1
    flag.set()
    assert await stays is True


async def test_wait_for_timeout_leaves_no_waiter_behind() -> None:
    flag = Flag()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(flag.wait(), 0.01)
    assert not flag._waiters
    flag.set()  # nothing left to wake, nothing raised


def test_a_flag_is_much_smaller_than_an_asyncio_event() -> None:
    event = asyncio.Event()
    event_bytes = sys.getsizeof(event) + sys.getsizeof(event.__dict__)
    event_bytes += sys.getsizeof(event._waiters)  # type: ignore[attr-defined]
    assert sys.getsizeof(Flag()) * 5 < event_bytes
