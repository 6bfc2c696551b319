"""Publishing against the real Node peer: coalesced emits all arrive, in order, before a close,
and a publisher faster than the link waits instead of queueing without bound."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from support.aio import client, connected

import fastsio

pytestmark = pytest.mark.timeout(120)


async def server_counts(url: str, serializer: str = "default") -> dict[str, Any]:
    probe = fastsio.AsyncClient(reconnection=False, serializer=serializer)
    async with connected(probe, url, transports=["websocket"]):
        counts: dict[str, Any] = await probe.call("server_counts", timeout=10)
    return counts


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_a_burst_then_disconnect_delivers_every_event_before_the_close(
    node_server: Any, parser: str
) -> None:
    server = node_server(parser=parser)
    serializer = "msgpack" if parser == "msgpack" else "default"
    sio = fastsio.AsyncClient(reconnection=False, serializer=serializer)
    await sio.connect(server.url, transports=["websocket"])
    # No loop turn between the emits and the close: everything sits in the coalescing buffer.
    for i in range(3000):
        await sio.emit("burst_one", {"i": i, "pad": "x" * (i % 50)})
    for i in range(1000):
        await sio.emit("burst_many", ("a", i, 1.5, None, [i]))
    await sio.disconnect()
    counts = await server_counts(server.url, serializer)
    assert counts["events"].get("burst_one") == 3000
    assert counts["events"].get("burst_many") == 1000


async def test_a_disconnect_waits_for_the_transport_buffer_to_reach_the_server(
    node_server: Any,
) -> None:
    # More than the socket buffers take, held in the transport (its high-water mark raised so
    # the emits never wait): disconnect() must write it all out before the link goes away.
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    await sio.connect(server.url, transports=["websocket"])
    raw = sio.eio._transport.ws.underlying_transport
    raw.set_write_buffer_limits(high=1 << 30)
    payload = {"pad": "q" * 60_000}
    for _ in range(400):  # 24 MB
        await sio.emit("bulk", payload)
    sio._conn.flush_writes()
    assert raw.get_write_buffer_size() > 0
    await sio.disconnect()
    # The server may still be parsing the last megabytes when the probe asks: ask until done.
    for _ in range(50):
        got = (await server_counts(server.url))["events"].get("bulk")
        if got == 400:
            break
        await asyncio.sleep(0.1)
    assert got == 400


async def test_emits_and_acks_interleaved_keep_their_order(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[Any] = []
    sio.on("echo", lambda *args: got.append(args[0]))
    async with connected(sio, server.url, transports=["websocket"]):
        calls = []
        for i in range(200):
            await sio.emit("echo", i)
            if i % 20 == 0:
                calls.append(asyncio.ensure_future(sio.call("ack", i, timeout=10)))
        assert await asyncio.gather(*calls) == list(range(0, 200, 20))
        for _ in range(200):
            if len(got) == 200:
                break
            await asyncio.sleep(0.05)
        assert got == list(range(200))


async def test_a_publisher_faster_than_a_frozen_link_waits_and_then_delivers_everything(
    proxied_node: Any,
) -> None:
    server, proxy = await proxied_node(ping_interval=60000, ping_timeout=60000)
    sio = fastsio.AsyncClient(reconnection=False)
    await sio.connect(proxy.url, transports=["websocket"])
    conn = sio._conn
    total = 40_000
    payload = {"pad": "p" * 1000}
    done = 0

    async def publish() -> None:
        nonlocal done
        for _ in range(total):
            await sio.emit("flood", payload)
            done += 1

    try:
        proxy.freeze()
        task = asyncio.ensure_future(publish())
        for _ in range(2000):
            if conn.writing_paused:
                break
            await asyncio.sleep(0.01)
        assert conn.writing_paused, "the transport never went over its high-water mark"
        raw = sio.eio._transport.ws.underlying_transport
        high = raw.get_write_buffer_limits()[1]
        stuck_at = done
        for _ in range(20):
            await asyncio.sleep(0)
        # The publisher is parked: it emits nothing more, and what the client holds stays
        # under the high-water mark plus one coalescing buffer and one frame.
        assert not task.done()
        assert done == stuck_at < total
        assert raw.get_write_buffer_size() + conn.writer.pending <= (
            high + conn.writer.flush_size + 2048
        )
        proxy.unfreeze()
        await asyncio.wait_for(task, 60)
        assert done == total
    finally:
        await sio.disconnect()
    # The last megabytes may still be on their way through the proxy: wait for the count.
    for _ in range(100):
        counts = await server_counts(server.url)
        if counts["events"].get("flood", 0) >= total:
            break
        await asyncio.sleep(0.1)
    assert counts["events"].get("flood") == total


def test_the_sync_clients_emit_blocks_while_the_link_is_frozen(
    node_server: Any, fault_proxy_sync: Any
) -> None:
    import threading

    server = node_server(ping_interval=60000, ping_timeout=60000)
    proxy = fault_proxy_sync(server)
    sio = fastsio.Client(reconnection=False)
    sio.connect(proxy.url, transports=["websocket"])
    total = 40_000
    done = 0
    finished = threading.Event()

    def publish() -> None:
        nonlocal done
        for _ in range(total):
            sio.emit("sync_flood", {"pad": "s" * 1000})
            done += 1
        finished.set()

    try:
        proxy.freeze()
        worker = threading.Thread(target=publish, daemon=True)
        worker.start()
        # Frozen: the publisher blocks in emit() once the transport is over its high water.
        stuck = -1
        for _ in range(200):
            if sio._client._conn.writing_paused and done == stuck:
                break
            stuck = done
            finished.wait(0.05)
        assert not finished.is_set()
        assert done < total
        proxy.unfreeze()
        assert finished.wait(60)
        assert done == total
    finally:
        sio.disconnect()


async def test_a_namespace_the_server_closed_takes_no_more_direct_emits(node_server: Any) -> None:
    # The first emits open the namespace's direct path (the core's emit gate); once the server
    # closes /chat on a link that stays up, an emit to it must fail as not connected instead
    # of reaching the wire, while "/" keeps publishing.
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    closed = asyncio.Event()
    sio.on("disconnect", lambda *reason: closed.set(), namespace="/chat")
    await sio.connect(server.url, namespaces=["/", "/chat"], transports=["websocket"])
    try:
        for i in range(3):
            await sio.emit("published", i, namespace="/chat")
            await sio.emit("published", i)
        assert sio._conn.emit_gate == {"/", "/chat"}
        await sio.emit("disconnect_me", namespace="/chat")
        await asyncio.wait_for(closed.wait(), 10)
        with pytest.raises(fastsio.exceptions.BadNamespaceError):
            await sio.emit("published", 99, namespace="/chat")
        await sio.emit("published", 3)
        assert await sio.call("ack", "still up", timeout=10) == "still up"
        counts = await server_counts(server.url)
        assert counts["events"]["published"] == 3 + 4
    finally:
        await sio.disconnect()


@dataclasses.dataclass
class _Blob:
    data: bytes


async def test_an_emit_the_full_path_refuses_is_refused_on_an_open_gate_too(
    node_server: Any,
) -> None:
    # The same emit must have the same outcome whether the namespace's direct path is open or
    # not: a dataclass holding bytes is not encodable by the full path (nor python-socketio).
    server = node_server()
    async with connected(client(), server.url, transports=["websocket"]) as sio:
        with pytest.raises(TypeError):
            await sio.emit("published", _Blob(b"x"))  # the gate is still closed
        await sio.emit("published", 0)
        assert sio._conn.emit_gate == {"/"}
        with pytest.raises(TypeError):
            await sio.emit("published", _Blob(b"x"))
        counts = await server_counts(server.url)
        assert counts["events"]["published"] == 1
