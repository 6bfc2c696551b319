"""The sync Client, SimpleClient and AsyncSimpleClient against a real Node server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.aio import connected_sync, on_with_threads, wait_until

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_sync_client_handlers_in_arrival_order_on_one_thread(
    node_server: Any, use_uvloop: bool
) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False, use_uvloop=use_uvloop)
    seen: list[int] = []
    threads = on_with_threads(sio, "tick", seen.append)

    with connected_sync(sio, server.url):
        assert sio.connected and sio.sid
        assert sio.call("burst", 1000, timeout=10) == 1000
        wait_until(lambda: len(seen) == 1000)
        assert seen == list(range(1000))
        assert len(threads) == 1 and threading.get_ident() not in threads
    assert not sio.connected


def test_sync_client_emit_from_handler_and_callbacks(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False)
    got: list[Any] = []
    acked = threading.Event()

    @sio.event
    def connect() -> None:
        sio.emit("echo", "from-connect")  # emitting inside a handler must not deadlock

    @sio.on("echo")
    def echo(data: Any) -> None:
        got.append(data)

    @sio.on("question")
    def question(payload: Any) -> Any:
        return {"answer": payload}

    sio.on("answer", lambda args: got.append(("answer", args)))
    with connected_sync(sio, server.url):
        sio.emit("ack", 5, callback=lambda v: (got.append(("ack", v)), acked.set()))
        assert acked.wait(5)
        sio.emit("ask", 42)
        wait_until(lambda: len(got) == 3)
        assert "from-connect" in got and ("ack", 5) in got
        assert ("answer", [{"answer": 42}]) in got
        with pytest.raises(exceptions.TimeoutError):
            sio.call("never_acked", timeout=0.2)


def test_sync_client_wait_returns_after_server_disconnect(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client()
    sio.connect(server.url)
    sio.emit("disconnect_me")
    t = threading.Thread(target=sio.wait, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive() and not sio.connected


def test_sync_client_namespace_class(node_server: Any) -> None:
    server = node_server()
    got: list[Any] = []

    class Chat(fastsio.ClientNamespace):
        def on_echo(self, data: Any) -> None:
            got.append(data)

    sio = fastsio.Client(reconnection=False)
    sio.register_namespace(Chat("/chat"))
    with connected_sync(sio, server.url):
        sio.emit("echo", "x", namespace="/chat")
        wait_until(lambda: got)
        assert got == ["x"]


def test_simple_client_receive_emit_call(node_server: Any) -> None:
    server = node_server()
    with fastsio.SimpleClient() as client:
        client.connect(server.url, namespace="/chat")
        assert client.sid and client.transport == "websocket"
        client.emit("echo", {"a": 1})
        assert client.receive(timeout=5) == ["echo", {"a": 1}]
        assert client.call("ack", "z", timeout=5) == "z"
        with pytest.raises(exceptions.TimeoutError):
            client.receive(timeout=0.2)


async def test_async_simple_client(node_server: Any) -> None:
    server = node_server()
    async with fastsio.AsyncSimpleClient() as client:
        await client.connect(server.url)
        await client.emit("burst", 3)
        assert [await client.receive(timeout=5) for _ in range(3)] == [
            ["tick", 0], ["tick", 1], ["tick", 2]]
        assert await client.call("ack", (1, 2), timeout=5) == (1, 2)
