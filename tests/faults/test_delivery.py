"""Stable delivery under faults: acks that fail loudly, the offline buffer, at-least-once
retries and connection-state recovery, counted end to end against a real Node server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from support.aio import until

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(90)


def serializer_of(parser: str) -> str:
    return "msgpack" if parser == "msgpack" else "default"


async def test_pending_call_fails_promptly_on_cut(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.05)
    await sio.connect(proxy.url)
    call = asyncio.ensure_future(sio.call("never_acked", timeout=30))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    proxy.cut()
    with pytest.raises(exceptions.DisconnectedError):
        await asyncio.wait_for(call, 5)
    assert time.monotonic() - t0 < 1.0  # not the 30 s timeout
    await sio.disconnect()


async def test_emit_timeout_callback_gets_error_first(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.05)
    results: list[Any] = []
    await sio.connect(proxy.url)
    await sio.emit("ack", 1, callback=lambda err, *a: results.append((err, a)), timeout=5)
    await sio.emit("never_acked", callback=lambda err, *a: results.append((err, a)), timeout=0.2)
    await until(lambda: len(results) == 2)
    assert results[0] == (None, (1,))
    assert isinstance(results[1][0], exceptions.TimeoutError)
    await sio.emit("never_acked", callback=lambda err, *a: results.append((err, a)), timeout=30)
    await asyncio.sleep(0.05)
    proxy.cut()
    await until(lambda: len(results) == 3, timeout=2)
    assert isinstance(results[2][0], exceptions.DisconnectedError)
    await sio.disconnect()


async def test_plain_callback_lost_on_disconnect_is_logged(
    proxied_node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.05)
    await sio.connect(proxy.url)
    await sio.emit("never_acked", callback=lambda *a: None)
    await asyncio.sleep(0.05)
    proxy.cut()
    await until(lambda: "will not be called" in caplog.text, timeout=3)
    assert sio.stats()["pending_acks"] == 0
    await sio.disconnect()


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_emits_while_reconnecting_are_buffered_and_flushed_in_order(
    proxied_node: Any, parser: str
) -> None:
    server, proxy = await proxied_node(parser=parser)
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                              serializer=serializer_of(parser))
    echoed: list[int] = []
    sio.on("echo", lambda n: echoed.append(n))
    down = asyncio.Event()
    sio.on("disconnect", lambda reason: down.set())
    await sio.connect(proxy.url)
    proxy.refuse(True)
    proxy.cut()
    await asyncio.wait_for(down.wait(), 5)
    for n in range(100):
        await sio.emit("echo", n)  # no BadNamespaceError: queued
    await sio.emit("echo", -1, volatile=True)  # volatile: dropped while disconnected
    assert sio.stats()["buffered"] == 100
    proxy.refuse(False)
    await until(lambda: len(echoed) >= 100, timeout=10)
    await asyncio.sleep(0.2)
    assert echoed == list(range(100))  # once each, in order, no volatile
    await sio.disconnect()


async def test_buffer_full_policy_error_and_drop_oldest(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    for policy in ("error", "drop_oldest"):
        sio = fastsio.AsyncClient(reconnection_delay=0.1, max_buffer=3, buffer_policy=policy)
        echoed: list[int] = []
        sio.on("echo", lambda n, echoed=echoed: echoed.append(n))
        down = asyncio.Event()
        sio.on("disconnect", lambda reason, down=down: down.set())
        await sio.connect(proxy.url)
        proxy.refuse(True)
        proxy.cut()
        await asyncio.wait_for(down.wait(), 5)
        for n in range(3):
            await sio.emit("echo", n)
        if policy == "error":
            with pytest.raises(exceptions.BufferFullError):
                await sio.emit("echo", 3)
            expected = [0, 1, 2]
        else:
            await sio.emit("echo", 3)
            expected = [1, 2, 3]
        proxy.refuse(False)
        await until(lambda echoed=echoed: len(echoed) >= 3, timeout=10)
        await asyncio.sleep(0.1)
        assert echoed == expected
        await sio.disconnect()


async def test_emit_after_user_disconnect_raises(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient()
    await sio.connect(server.url)
    await sio.disconnect()
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("echo", 1)


async def test_at_least_once_retries_survive_a_cut(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2, retries=3,
                              ack_timeout=1.0)
    acks: list[Any] = []
    await sio.connect(proxy.url)
    for n in range(20):
        await sio.emit("ack", n, callback=lambda err, *a: acks.append((err, a)))
    proxy.cut()
    await until(lambda: len(acks) == 20, timeout=15)
    assert acks == [(None, (n,)) for n in range(20)]  # every one acked, in order
    await sio.emit("never_acked", callback=lambda err, *a: acks.append((err, a)))
    await until(lambda: len(acks) == 21, timeout=10)  # 1 + 3 retries, 1 s each
    assert isinstance(acks[-1][0], exceptions.TimeoutError)
    await sio.disconnect()


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_connection_state_recovery_delivers_everything_exactly_once(
    proxied_node: Any, parser: str
) -> None:
    server, proxy = await proxied_node(parser=parser, recovery=True)
    sio = fastsio.AsyncClient(reconnection_delay=0.5, reconnection_delay_max=1,
                              randomization_factor=0, serializer=serializer_of(parser))
    seq: list[int] = []
    extra: list[tuple[Any, ...]] = []
    connects: list[tuple[bool, int]] = []

    def on_seq(n: int, *rest: Any) -> None:
        # The server's offset arrives as a last argument, untouched (socket.io-client's rule).
        seq.append(n)
        extra.append(rest)

    sio.on("seq", on_seq)
    sio.on("connect", lambda: connects.append((sio.is_recovered(), len(seq))))
    await sio.connect(proxy.url, transports=["websocket"])
    assert sio.recovered is False
    await sio.emit("stream_start", 10)
    await until(lambda: len(seq) >= 20)
    proxy.refuse(True)
    proxy.cut()
    await asyncio.sleep(2.0)  # ~200 events emitted by the server while we are cut off
    proxy.refuse(False)
    await until(lambda: len(connects) == 2, timeout=10)
    assert sio.recovered is True
    await asyncio.sleep(0.3)
    await sio.emit("stream_stop")
    await asyncio.sleep(0.2)
    # The replayed events were delivered before `connect` fired, then the live stream.
    assert connects[1][0] is True and connects[1][1] > connects[0][1] + 100
    assert seq == list(range(len(seq))), "loss, duplicate or reordering"
    assert all(len(r) == 1 and isinstance(r[0], str) for r in extra)
    assert sio._conn.slots["/"].offset == extra[-1][0]
    await sio.disconnect()


async def test_without_recovery_on_server_recovered_is_false(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.1)
    got: list[Any] = []
    sio.on("seq", lambda *a: got.append(a))
    reconnected = asyncio.Event()
    sio.on("reconnect", lambda n: reconnected.set())
    await sio.connect(proxy.url)
    await sio.emit("stream_start", 20)
    await until(lambda: got)
    proxy.cut()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert sio.recovered is False
    await sio.emit("stream_stop")
    assert all(len(a) == 1 for a in got)  # nothing stripped or added without recovery
    await sio.disconnect()


@pytest.mark.parametrize(("fault", "amount"), [("chunk", 1), ("delay", 0.05), ("throttle", 200_000)])
async def test_stream_intact_over_degraded_links(
    proxied_node: Any, fault: str, amount: float
) -> None:
    server, proxy = await proxied_node()
    getattr(proxy, fault)(amount)  # FaultProxy.chunk(bytes) / .delay(s) / .throttle(bytes/s)
    sio = fastsio.AsyncClient(reconnection=False)
    got: list[Any] = []
    sio.on("bin_tick", lambda n, b: got.append((n, b)))
    sio.on("tick", lambda n: got.append(n))
    await sio.connect(proxy.url, transports=["websocket"])
    await sio.emit("burst", 300)
    await sio.emit("burst_binary", 50)
    await until(lambda: len(got) == 350, timeout=30)
    assert got[:300] == list(range(300))
    assert got[300:] == [(i, i.to_bytes(4, "big")) for i in range(50)]
    await sio.disconnect()
