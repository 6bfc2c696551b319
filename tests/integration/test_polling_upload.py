"""Fire-and-forget emits over polling, against both peers: a publisher faster than the POSTs
gets every event to the server exactly once, in order. Node takes as many packets per POST as
its maxPayload allows; python-engineio drops a POST of more than 16 packets without an error,
so the client recognises it by its open packet and sends it 16 at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastsio
from fastsio.engine import EngineIO
from fastsio.transports.polling import PollingTransport

pytestmark = pytest.mark.timeout(90)


class CountingPolling(PollingTransport):
    """Records how many records each POST carries."""

    __slots__ = ()
    posts: list[int] = []

    async def _post(self, records: list[bytes]) -> None:
        self.posts.append(len(records))
        await super()._post(records)


async def test_a_burst_of_emits_over_polling_reaches_node_once_in_order(
    node_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3,000 emits of 1 kB: more than the outbox's high-water mark (2 x maxPayload), so the
    # emitting loop waits for POSTs on the way, and each POST is filled up to maxPayload.
    monkeypatch.setattr(EngineIO, "polling_class", CountingPolling)
    monkeypatch.setattr(CountingPolling, "posts", posts := [])
    server = node_server(max_payload=1_000_000)
    sio = fastsio.AsyncClient(reconnection=False)
    await sio.connect(server.url, transports=["polling"])
    values = [f"{i:05d}" + "x" * 1000 for i in range(3000)]
    for v in values:
        await sio.emit("count", ("burst", v))
    assert await sio.call("counted", "burst", timeout=30) == values
    assert sio.connected
    assert sum(posts) >= 3001 and len(posts) < 3001 // 16  # many packets per POST
    await sio.disconnect()


async def test_more_than_16_emits_over_polling_all_reach_python_socketio(py_server: Any) -> None:
    server = py_server()
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[int] = []
    sio.on("echo", got.append)
    await sio.connect(server.url, transports=["polling"])
    eio = sio.eio
    assert eio is not None and eio.open is not None and eio.open.counts_packets
    assert isinstance(eio._polling, PollingTransport) and eio._polling.counts_packets
    for i in range(200):  # queued at once: python-engineio would drop a POST of them all
        await sio.emit("echo", i)
    assert await sio.call("ack", "done", timeout=20) == "done"
    for _ in range(200):
        if len(got) == 200:
            break
        await asyncio.sleep(0.05)
    assert got == list(range(200))
    assert sio.connected
    await sio.disconnect()
