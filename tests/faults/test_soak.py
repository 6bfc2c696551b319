"""Soak: many connection cycles and a long stream with faults leave no growth in file
descriptors, tasks or memory beyond a small bound (generous margins: these machines are shared).
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import pytest

import fastsio

pytestmark = pytest.mark.timeout(240)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def tasks() -> int:
    return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.05)
    gc.collect()


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_500_connect_disconnect_reconnect_cycles(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.01, reconnection_delay_max=0.02)
    reconnected = asyncio.Event()
    sio.on("reconnect", lambda n: reconnected.set())

    async def cycle(i: int) -> None:
        transports = ["polling", "websocket"] if i % 5 == 3 else ["websocket"]
        await sio.connect(proxy.url, transports=transports)
        assert await sio.call("ack", i, timeout=10) == i
        if i % 5 == 1:  # a lost link and a reconnection, then the user disconnects
            # (websocket cycles only: a polling session outlives its TCP connections)
            reconnected.clear()
            proxy.cut()
            await asyncio.wait_for(reconnected.wait(), 10)
        await sio.disconnect()

    for i in range(20):  # warm-up: caches, freelists, lazy imports
        await cycle(i)
    await settle()
    fds0, tasks0, rss0 = open_fds(), tasks(), rss_mb()
    for i in range(20, 500):
        await cycle(i)
    await settle()
    fds1, tasks1, rss1 = open_fds(), tasks(), rss_mb()
    assert fds1 - fds0 <= 5, (fds0, fds1)
    assert tasks1 - tasks0 <= 2, (tasks0, tasks1)
    assert rss1 - rss0 < 40, (rss0, rss1)


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_one_minute_stream_with_faults_loses_nothing(proxied_node: Any) -> None:
    duration = float(os.environ.get("FASTSIO_SOAK_SECONDS", "60"))
    server, proxy = await proxied_node(recovery=True)
    sio = fastsio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=0.5)
    seq: list[int] = []
    sio.on("seq", lambda n, *offset: seq.append(n))  # the recovery offset is passed on
    reconnects: list[bool] = []
    sio.on("reconnect", lambda n: reconnects.append(sio.recovered))
    await sio.connect(proxy.url, transports=["websocket"])
    await sio.emit("stream_start", 2)
    await asyncio.sleep(2)
    await settle()
    fds0, tasks0, rss0 = open_fds(), tasks(), rss_mb()
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    # FaultProxy.cut() / .chunk(bytes) / .delay(s) / .throttle(bytes/s), in turn
    faults = [("cut", None), ("chunk", 7), ("delay", 0.02), ("throttle", 100_000)]
    i = 0
    while loop.time() < end:
        fault, amount = faults[i % len(faults)]
        i += 1
        if fault == "cut":
            expected = len(reconnects) + 1
            proxy.cut()
            while len(reconnects) < expected:
                await asyncio.sleep(0.05)
        else:
            getattr(proxy, fault)(amount)
        await asyncio.sleep(min(3.0, max(0.0, end - loop.time())))
        proxy.heal()
    await sio.emit("stream_stop")
    await asyncio.sleep(0.5)
    await settle()
    fds1, tasks1, rss1 = open_fds(), tasks(), rss_mb()
    await sio.disconnect()
    assert reconnects and all(reconnects), reconnects  # every reconnection recovered
    assert seq == list(range(len(seq))), "loss, duplicate or reordering"
    assert len(seq) > duration * 100
    assert fds1 - fds0 <= 5, (fds0, fds1)
    assert tasks1 - tasks0 <= 2, (tasks0, tasks1)
    assert rss1 - rss0 < 40, (rss0, rss1)
