"""Frames held back by the dispatch budget or by backpressure are dispatched, in order, before
the close of the socket they were read from is processed.

The Node peer's ``burst_kick`` sends n ticks and then ``socket.disconnect(true)``: the Socket.IO
DISCONNECT packet and the close of the connection arrive right behind the last ticks, usually in
the same socket read. Every tick must reach the handler, then the kick is seen as
``'io server disconnect'`` (final: no reconnection). With ``close_transport`` instead, the same
ticks arrive and the close is a transport close, followed by a reconnection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from support.aio import until

import fastsio

pytestmark = pytest.mark.timeout(90)

N = 2000


def spin(seconds: float) -> None:
    """A handler that does CPU work (sleep would give the loop back to nobody anyway)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Run:
    """A client and what it saw: ticks in arrival order, disconnect reasons, reconnections."""

    def __init__(self, parser: str, **options: Any) -> None:
        self.sio = fastsio.AsyncClient(
            reconnection_delay=0.05,
            reconnection_delay_max=0.05,
            serializer="msgpack" if parser == "msgpack" else "default",
            **options,
        )
        self.ticks: list[int] = []
        self.reasons: list[str] = []
        self.attempts = 0
        self.connects = 0
        self.ticks_at_disconnect: list[int] = []
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("connect", self._connected)
        self.sio.on("reconnect_attempt", self._attempt)

    def _disconnected(self, reason: str) -> None:
        self.reasons.append(reason)
        self.ticks_at_disconnect.append(len(self.ticks))

    def _connected(self) -> None:
        self.connects += 1

    def _attempt(self, n: int) -> None:
        self.attempts += 1

    def tick(self, seq: int) -> None:
        self.ticks.append(seq)

    def slow_ticks(self, batch: bool = False) -> None:
        """A tick handler spinning 30 us a tick, slower than the feed, so that the dispatch
        budget holds frames back; ``batch``: a batch handler (30 us a tick of the batch)."""
        if batch:

            def ticks(seqs: list[int]) -> None:
                spin(0.00003 * len(seqs))
                self.ticks.extend(seqs)

            self.sio.on("tick", ticks, batch=True)
            return

        def tick(seq: int) -> None:
            spin(0.00003)
            self.tick(seq)

        self.sio.on("tick", tick)

    def async_ticks(self) -> None:
        """A coroutine tick handler that sleeps 2 ms after each tick (they pile up as tasks)."""

        async def tick(seq: int) -> None:
            self.tick(seq)
            await asyncio.sleep(0.002)

        self.sio.on("tick", tick)


async def kicked_after_burst(run: Run, server: Any, transport: str) -> None:
    """burst_kick, then the checks every variant shares."""
    await run.sio.connect(server.url, transports=[transport])
    await run.sio.emit("burst_kick", N)
    await until(lambda: run.reasons, timeout=30, what="the disconnect event")
    # Would a reconnection start, it would within reconnection_delay (0.05 s).
    await asyncio.sleep(0.3)
    assert run.ticks == list(range(N)), f"{len(run.ticks)} of {N} ticks"
    assert run.reasons == ["io server disconnect"]
    assert run.attempts == 0
    assert not run.sio.connected
    await run.sio.disconnect()


async def closed_after_burst(run: Run, server: Any, transport: str) -> None:
    """A burst, then the server closes the transport; the checks every variant shares."""
    await run.sio.connect(server.url, transports=[transport])
    # Both go out in one write: the close follows the burst's last tick on the socket.
    await asyncio.gather(run.sio.emit("burst", N), run.sio.emit("close_transport"))
    await until(lambda: run.connects == 2, timeout=30, what="the reconnection")
    assert run.ticks == list(range(N)), f"{len(run.ticks)} of {N} ticks"
    assert run.reasons == ["transport close"]
    assert run.attempts >= 1


#: What holds ticks back: the dispatch budget (a sync tick handler slower than the feed) or
#: backpressure (async handlers pile up as tasks; reading pauses at 4 pending).
HOLDERS = ["dispatch budget", "backpressure"]


def held(holder: str, parser: str = "json") -> Run:
    """A run whose ticks ``holder`` holds back."""
    if holder == "dispatch budget":
        run = Run(parser, dispatch_budget=0.0005)
        run.slow_ticks()
    else:
        run = Run(parser, max_pending_handlers=4)
        run.async_ticks()
    return run


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("parser", ["json", "msgpack"])
@pytest.mark.parametrize("holder", HOLDERS)
async def test_held_ticks_all_arrive_before_a_server_kick(
    node_server: Any, holder: str, parser: str, transport: str
) -> None:
    run = held(holder, parser)
    await kicked_after_burst(run, node_server(parser=parser), transport)
    if holder == "dispatch budget":  # sync handlers: the close was processed after the last tick
        assert run.ticks_at_disconnect == [N]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_ticks_held_behind_a_slow_batch_handler_all_arrive_before_a_server_kick(
    node_server: Any, transport: str
) -> None:
    run = Run("json", dispatch_budget=0.0005)
    run.slow_ticks(batch=True)
    # Batches of 8: the handler then runs (and uses the time slice) in the middle of a read,
    # not only at its end, so the budget holds back the rest of the read.
    run.sio._conn.max_batch = 8
    await kicked_after_burst(run, node_server(), transport)
    assert run.ticks_at_disconnect == [N]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("holder", HOLDERS)
async def test_held_ticks_at_a_transport_close_all_arrive_then_the_client_reconnects(
    node_server: Any, holder: str, transport: str
) -> None:
    run = held(holder)
    await closed_after_burst(run, node_server(), transport)
    if holder == "dispatch budget":  # reported, and reconnected, only after the drain
        assert run.ticks_at_disconnect == [N]
    await run.sio.disconnect()
