"""Delivery edge cases found by a hostile review, each against fastsio.testing.TestServer.

Each test names the behaviour: reentrancy, cancellation, late replies on abandoned sessions,
retries queues, namespaces the server refuses or closes before the session is kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.aio import until

import fastsio
from fastsio import exceptions
from fastsio.testing import TestServer

pytestmark = pytest.mark.timeout(60)


async def go_down(sio: fastsio.AsyncClient, server: TestServer) -> int:
    port = server.port
    await server.stop(disconnect=False)
    await until(lambda: not sio.namespaces)
    return port


def recorder(server: TestServer, event: str = "note") -> list[Any]:
    got: list[Any] = []

    def handler(sid: str, value: Any) -> Any:
        got.append(value)
        return value

    server.on(event, handler)
    return got


async def recorded_client() -> tuple[TestServer, list[Any], fastsio.AsyncClient]:
    """A started TestServer recording ``note`` events, and a client connected to it over
    WebSocket that reconnects every 0.1 s."""
    server = TestServer()
    got = recorder(server)
    await server.start()
    sio = fastsio.AsyncClient(reconnection_delay=0.1, randomization_factor=0)
    await sio.connect(server.url, transports=["websocket"])
    return server, got, sio


async def test_late_connect_reply_does_not_keep_an_abandoned_attempt() -> None:
    # polling: the GET keeps dispatching while the abandoned attempt closes.
    server = TestServer(transports=("polling",))

    async def slow_connect(sid: str, auth: Any) -> None:
        await asyncio.sleep(1.0)

    server.on("connect", slow_connect)
    await server.start()
    sio = fastsio.AsyncClient(reconnection=False)
    events: list[str] = []
    sio.on("connect", lambda: events.append("connect"))
    with pytest.raises(exceptions.ConnectionError):
        await sio.connect(server.url, transports=["polling"], wait_timeout=0.5)
    await asyncio.sleep(1.5)
    assert events == [] and not sio.connected
    await server.stop()


async def test_cancelled_disconnect_still_ends_the_session() -> None:
    server = TestServer(transports=("polling",))

    async def never(sid: str) -> None:
        await asyncio.sleep(100)

    server.on("never", never)
    await server.start()
    sio = fastsio.AsyncClient()
    reasons: list[str] = []
    sio.on("disconnect", lambda r: reasons.append(r))
    await sio.connect(server.url, transports=["polling"])
    call = asyncio.ensure_future(sio.call("never", timeout=None))
    await asyncio.sleep(0.1)
    server.delay_posts(1.0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(sio.disconnect(), 0.2)
    assert reasons == ["io client disconnect"] and not sio.connected
    with pytest.raises(exceptions.DisconnectedError):
        await asyncio.wait_for(call, 1)
    await asyncio.wait_for(sio.wait(), 1)
    await server.stop()


async def test_late_ack_never_answers_a_later_session() -> None:
    server = TestServer()
    await server.start()
    sio = fastsio.AsyncClient(reconnection_delay=0.05, randomization_factor=0)

    async def question(q: str) -> str:
        await asyncio.sleep(0.5 if q == "A" else 0.8)
        return "answer-to-" + q

    sio.on("question", question)
    await sio.connect(server.url, transports=["websocket"])
    sid_a = sio.get_sid()
    call_a = asyncio.ensure_future(server.call("question", "A", to=sid_a, timeout=5))
    await asyncio.sleep(0.1)
    server.drop()
    await until(lambda: sio.get_sid() not in (None, sid_a))
    assert await server.call("question", "B", to=sio.get_sid(), timeout=5) == "answer-to-B"
    call_a.cancel()
    await sio.disconnect()
    await server.stop()


async def test_buffered_emit_sends_the_arguments_as_they_were_at_emit_time() -> None:
    server, got, sio = await recorded_client()
    port = await go_down(sio, server)
    tick = {"price": 1}
    await sio.emit("note", tick)
    tick["price"] = 2
    await sio.emit("note", tick)
    with pytest.raises(TypeError):
        await sio.emit("note", {"bad": object()})  # refused now, not at the flush
    await server.start(port=port)
    await until(lambda: len(got) == 2)
    assert got == [{"price": 1}, {"price": 2}]
    await sio.disconnect()
    await server.stop()


async def test_cancelled_call_still_buffered_is_never_sent() -> None:
    server, got, sio = await recorded_client()
    port = await go_down(sio, server)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(sio.call("note", "order-1", timeout=None), 0.1)
    assert sio.stats()["buffered"] == 0
    await sio.emit("note", "order-2")
    await server.start(port=port)
    await until(lambda: got)
    await asyncio.sleep(0.1)
    assert got == ["order-2"]
    await sio.disconnect()
    await server.stop()


async def test_retries_report_an_unsendable_packet_and_go_on() -> None:
    server = TestServer(max_payload=2048)
    got = recorder(server)
    await server.start()
    sio = fastsio.AsyncClient(retries=1, ack_timeout=3)
    await sio.connect(server.url, transports=["websocket"])
    outcomes: list[Any] = []
    with pytest.raises(TypeError):
        await sio.emit("note", object())  # unencodable: refused at emit time
    await sio.emit("note", 1, callback=lambda err, *a: outcomes.append((1, err)))
    await sio.emit("note", "x" * 4096, callback=lambda err, *a: outcomes.append((2, err)))
    await sio.emit("note", 3, callback=lambda err, *a: outcomes.append((3, err)))
    await until(lambda: len(outcomes) == 3)
    assert outcomes[0] == (1, None) and outcomes[2] == (3, None)
    assert isinstance(outcomes[1][1], exceptions.PayloadTooLargeError)
    assert got == [1, 3] and sio.stats()["queued"] == 0
    await sio.disconnect()
    await server.stop()


async def test_retries_queue_per_namespace_and_calls_keep_their_order() -> None:
    server = TestServer(namespaces=["/"])
    got = recorder(server)
    await server.start()
    sio = fastsio.AsyncClient(retries=1, ack_timeout=3)
    await sio.connect(server.url, namespaces=["/", "/chat"], transports=["websocket"], wait=False)
    await until(lambda: "/" in sio.namespaces and "/chat" in sio.failed_namespaces)
    # /chat is refused: its packets must not hold back the root namespace's.
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("note", "chat", namespace="/chat")
    await sio.emit("note", 1)
    await sio.emit("note", 2)
    assert await sio.call("note", 3) == 3
    assert got == [1, 2, 3]
    await sio.disconnect()
    await server.stop()


async def test_namespace_refused_on_a_kept_session_fails_its_buffer() -> None:
    server = TestServer(namespaces=["/"])
    await server.start()
    sio = fastsio.AsyncClient(buffer_when_disconnected=False)
    outcomes: list[Any] = []
    await sio.connect(server.url, namespaces=["/", "/chat"], transports=["websocket"], wait=False)
    assert "/chat" not in sio.failed_namespaces  # its refusal has not arrived yet
    await sio.emit(
        "x", 1, namespace="/chat", callback=lambda err, *a: outcomes.append(err), timeout=30
    )
    await until(lambda: outcomes)
    assert isinstance(outcomes[0], exceptions.DisconnectedError)
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("x", 2, namespace="/chat")
    assert sio.stats()["buffered"] == 0
    await sio.disconnect()
    await server.stop()


async def test_namespace_closed_before_the_session_is_kept_is_not_retried() -> None:
    server = TestServer()

    async def on_connect(sid: str, auth: Any) -> None:
        await asyncio.sleep(0.2)  # "/" is accepted late

    server.on("connect", on_connect)

    def kick_chat(sid: str, auth: Any) -> None:
        asyncio.get_running_loop().call_later(0.05, server.disconnect, sid, "/chat")

    server.on("connect", kick_chat, namespace="/chat")
    await server.start()
    sio = fastsio.AsyncClient(reconnection_delay=0.05, randomization_factor=0)
    connects: list[str] = []
    sio.on("connect", lambda: connects.append("/"))
    sio.on("connect", lambda: connects.append("/chat"), namespace="/chat")
    await sio.connect(server.url, namespaces=["/chat", "/"], transports=["websocket"])
    await asyncio.sleep(0.5)
    assert connects == ["/"] and list(sio.namespaces) == ["/"]
    assert sio.connection_namespaces == ["/"]
    await sio.disconnect()
    await server.stop()


async def test_disconnect_during_a_reconnection_attempt_flushes_nothing() -> None:
    server = TestServer()
    got = recorder(server)
    await server.start()
    sio = fastsio.AsyncClient(reconnection_delay=0.05, randomization_factor=0)
    events: list[str] = []
    sio.on("connect", lambda: events.append("connect"))
    sio.on("disconnect", lambda r: events.append("disconnect:" + r))
    await sio.connect(server.url, transports=["websocket"])
    port = await go_down(sio, server)
    outcomes: list[Any] = []
    await sio.emit("note", 1, callback=lambda err, *a: outcomes.append(err), timeout=30)
    server2 = TestServer()
    server2.on("note", lambda sid, v: got.append(v))

    async def slow_connect(sid: str, auth: Any) -> None:
        await asyncio.sleep(0.5)

    server2.on("connect", slow_connect)
    await server2.start(port=port)
    await asyncio.sleep(0.3)  # the attempt is waiting for its CONNECT reply
    await sio.disconnect()
    await asyncio.sleep(0.5)
    assert got == [] and events == ["connect", "disconnect:transport close"]
    assert len(outcomes) == 1 and isinstance(outcomes[0], exceptions.DisconnectedError)
    await server2.stop()
