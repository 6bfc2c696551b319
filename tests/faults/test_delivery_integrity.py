"""Delivery invariants against the real Node socket.io 4.8 server, under faults.

- Arguments reach handlers exactly as the server sent them (recovery offsets included).
- Every emit reaches exactly one outcome; a packet reported failed is never sent afterwards,
  and a packet the client still holds is never reported failed because a link was lost.
- A session is kept (buffer flushed, then `connect`) only once every namespace is accepted;
  every `connect` is paired with a `disconnect`.
- A namespace the server closed is not reconnected.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest
from support.aio import until

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(90)

_tags = itertools.count()


def new_tag() -> str:
    return f"t{next(_tags)}-{id(asyncio.get_running_loop()):x}"


async def counted(sio: fastsio.AsyncClient, tag: str, namespace: str = "/") -> list[Any]:
    """What the server executed under ``tag`` (the peer's `count` event)."""
    return await sio.call("counted", tag, namespace=namespace, timeout=5)  # type: ignore[no-any-return]


async def cut_and_wait_down(sio: fastsio.AsyncClient, proxy: Any) -> None:
    down = asyncio.Event()
    sio.on("disconnect", lambda *a: down.set())
    proxy.refuse(True)
    proxy.cut()
    await asyncio.wait_for(down.wait(), 5)


# -- arguments arrive unaltered (offsets) ----------------------------------------------------


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_recovery_with_base_adapter_keeps_every_argument(
    node_server: Any, parser: str
) -> None:
    # The base in-memory Adapter (and adapters built on it, like the classic Redis one)
    # appends no offset, yet the server sends a pid: a trailing string is the user's.
    server = node_server(parser=parser, recovery=True, adapter="base")
    sio = fastsio.AsyncClient(serializer="msgpack" if parser == "msgpack" else "default")
    got: list[tuple[Any, ...]] = []
    sio.on("echo", lambda *a: got.append(a))
    await sio.connect(server.url)
    assert sio.lifecycle.pids.get("/")  # recovery was offered
    await sio.emit("echo", ("price", "AAPL"))
    await sio.emit("echo", "only-a-string")
    await until(lambda: len(got) == 2)
    assert got == [("price", "AAPL"), ("only-a-string",)]
    await sio.disconnect()


async def test_volatile_events_keep_their_last_string(node_server: Any) -> None:
    server = node_server(recovery=True)
    sio = fastsio.AsyncClient()
    got: list[tuple[Any, ...]] = []
    sio.on("volatile_echo", lambda *a: got.append(a))
    await sio.connect(server.url)
    await sio.emit("volatile_echo", ("tick", "last"))
    await until(lambda: got)
    assert got == [("tick", "last")]
    await sio.disconnect()


async def test_cluster_adapter_local_emit_keeps_arguments_and_broadcasts_record_offset(
    node_server: Any,
) -> None:
    server = node_server(recovery=True, adapter="cluster")
    sio = fastsio.AsyncClient()
    local: list[tuple[Any, ...]] = []
    broadcast: list[tuple[Any, ...]] = []
    sio.on("local_echo", lambda *a: local.append(a))
    sio.on("broadcast_echo", lambda *a: broadcast.append(a))
    await sio.connect(server.url)
    await sio.emit("local_echo", ("x", "y"))
    await sio.emit("broadcast_echo", "z")
    await until(lambda: local and broadcast)
    assert local == [("x", "y")]
    # The broadcast carries the publish offset as its last argument, passed on untouched and
    # remembered for the next CONNECT.
    assert broadcast[0][0] == "z" and len(broadcast[0]) == 2
    assert sio._conn.slots["/"].offset == broadcast[0][1]
    await sio.disconnect()


async def test_strip_offsets_opt_in_removes_the_offset(node_server: Any) -> None:
    server = node_server(recovery=True)
    sio = fastsio.AsyncClient(strip_offsets=True)
    got: list[tuple[Any, ...]] = []
    sio.on("echo", lambda *a: got.append(a))
    await sio.connect(server.url)
    await sio.emit("echo", 7)
    await until(lambda: got)
    assert got == [(7,)]
    assert isinstance(sio._conn.slots["/"].offset, str)
    await sio.disconnect()


async def test_recovery_works_without_stripping(proxied_node: Any) -> None:
    server, proxy = await proxied_node(recovery=True)
    sio = fastsio.AsyncClient(reconnection_delay=0.1, randomization_factor=0)
    seq: list[int] = []
    sio.on("seq", lambda n, *offset: seq.append(n))
    connects = []
    sio.on("connect", lambda: connects.append(sio.is_recovered()))
    await sio.connect(proxy.url, transports=["websocket"])
    await sio.emit("stream_start", 10)
    await until(lambda: len(seq) >= 5)
    proxy.refuse(True)
    proxy.cut()
    await asyncio.sleep(0.5)
    proxy.refuse(False)
    await until(lambda: len(connects) == 2, 10)
    await sio.emit("stream_stop")
    assert connects == [False, True]
    await asyncio.sleep(0.2)
    assert seq == list(range(len(seq)))
    await sio.disconnect()


# -- one outcome per emit --------------------------------------------------------------------


async def test_buffered_emit_that_timed_out_is_never_sent(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    await sio.connect(proxy.url)
    tag = new_tag()
    await cut_and_wait_down(sio, proxy)
    outcomes: list[Any] = []
    await sio.emit(
        "count", (tag, 1), callback=lambda err, *a: outcomes.append((err, a)), timeout=0.2
    )
    await sio.emit("count", (tag, 2), callback=lambda err, *a: outcomes.append((err, a)), timeout=30)
    with pytest.raises(exceptions.TimeoutError):
        await sio.call("count", (tag, 3), timeout=0.2)
    await until(lambda: outcomes)
    assert isinstance(outcomes[0][0], exceptions.TimeoutError)
    assert sio.stats()["buffered"] == 1  # the timed-out packets left the buffer
    proxy.refuse(False)
    await until(lambda: len(outcomes) == 2, 10)
    assert outcomes[1] == (None, (2,))
    assert await counted(sio, tag) == [2]  # the server never ran what the caller saw fail
    await sio.disconnect()


async def test_failed_reconnection_attempt_does_not_fail_buffered_acks(proxied_node: Any) -> None:
    # The attempt dies after the Engine.IO handshake (a namespace is refused): acks of packets
    # that were never written stay pending, and the packets are sent once, on the kept session.
    server, proxy = await proxied_node()
    token = {"token": "secret"}
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    connects: list[str] = []
    disconnects: list[str] = []
    for nsp in ("/", "/private"):
        sio.on("connect", lambda nsp=nsp: connects.append(nsp), namespace=nsp)
        sio.on("disconnect", lambda r, nsp=nsp: disconnects.append(nsp), namespace=nsp)
    failures = asyncio.Event()
    sio.on("connect_error", lambda *a: failures.set(), namespace="/private")
    await sio.connect(proxy.url, namespaces=["/", "/private"], auth=lambda: dict(token))
    tag = new_tag()
    proxy.refuse(True)
    proxy.cut()
    await until(lambda: len(disconnects) == 2)
    outcomes: list[Any] = []
    await sio.emit("count", (tag, 1), callback=lambda err, *a: outcomes.append((err, a)), timeout=30)
    call = asyncio.ensure_future(sio.call("count", (tag, 2), timeout=30))
    token["token"] = "wrong"
    proxy.refuse(False)
    await asyncio.wait_for(failures.wait(), 10)  # at least one attempt was refused
    await asyncio.sleep(0.3)
    assert outcomes == [] and not call.done()
    assert connects == ["/", "/private"]  # no `connect` for an abandoned session
    token["token"] = "secret"
    assert await asyncio.wait_for(call, 10) == 2
    await until(lambda: outcomes)
    assert outcomes == [(None, (1,))]
    assert await counted(sio, tag) == [1, 2]  # once each, in order
    assert connects == ["/", "/private", "/", "/private"]
    assert disconnects == ["/", "/private"]
    await sio.disconnect()
    assert disconnects == ["/", "/private", "/", "/private"]


async def test_connect_handler_emits_go_after_buffered_ones(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    tag = new_tag()
    connects = 0

    async def on_connect() -> None:
        nonlocal connects
        connects += 1
        if connects == 2:
            await sio.emit("count", (tag, "from-connect"))

    sio.on("connect", on_connect)
    await sio.connect(proxy.url)
    await cut_and_wait_down(sio, proxy)
    for n in range(5):
        await sio.emit("count", (tag, n))
    proxy.refuse(False)
    await until(lambda: connects == 2, 10)
    await until(lambda: sio.stats()["buffered"] == 0)
    await asyncio.sleep(0.1)
    assert await counted(sio, tag) == [0, 1, 2, 3, 4, "from-connect"]
    await sio.disconnect()


def test_sync_client_connect_handler_emits_go_after_buffered_ones(
    node_server: Any, fault_proxy_sync: Any
) -> None:
    server = node_server()
    proxy = fault_proxy_sync(server)
    sio = fastsio.Client(reconnection_delay=0.1, reconnection_delay_max=0.2)
    tag = f"sync-{next(_tags)}"
    connected = threading.Event()
    down = threading.Event()
    state = {"n": 0}

    def on_connect() -> None:
        state["n"] += 1
        if state["n"] == 2:
            sio.emit("count", (tag, "from-connect"))
            connected.set()

    sio.on("connect", on_connect)
    sio.on("disconnect", lambda *a: down.set())
    sio.connect(proxy.url)
    proxy.refuse(True)
    proxy.cut()
    assert down.wait(5)
    for n in range(3):
        sio.emit("count", (tag, n))
    proxy.refuse(False)
    assert connected.wait(10)
    assert sio.call("counted", tag, timeout=5) == [0, 1, 2, "from-connect"]
    sio.disconnect()


# -- server-side disconnects -----------------------------------------------------------------


async def test_namespace_closed_by_server_is_not_reconnected(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio = fastsio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    reasons: list[tuple[str, str]] = []
    sio.on("disconnect", lambda r: reasons.append(("/", r)))
    sio.on("disconnect", lambda r: reasons.append(("/chat", r)), namespace="/chat")
    reconnected = asyncio.Event()
    sio.on("reconnect", lambda n: reconnected.set())
    await sio.connect(proxy.url, namespaces=["/", "/chat"])
    await sio.emit("disconnect_me", namespace="/chat")
    await until(lambda: reasons)
    assert reasons == [("/chat", "io server disconnect")]
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("echo", 1, namespace="/chat")
    proxy.cut()
    await asyncio.wait_for(reconnected.wait(), 10)
    assert sio.namespaces.keys() == {"/"}
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("echo", 1, namespace="/chat")
    await sio.disconnect()


async def test_sid_is_reset_on_disconnect(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient()
    await sio.connect(server.url)
    assert sio.sid is not None
    await sio.disconnect()
    assert sio.sid is None


@pytest.mark.parametrize("name", ["reconnect", "reconnect_attempt", "reconnect_failed"])
async def test_server_events_named_like_client_events_are_delivered(
    node_server: Any, name: str
) -> None:
    server = node_server()
    sio = fastsio.AsyncClient()
    got: list[tuple[Any, ...]] = []

    def handler(*args: Any) -> str:
        got.append(args)
        return "ack-" + name

    sio.on(name, handler)
    await sio.connect(server.url)
    assert await sio.call("emit_named", (name, [1, "two"], False)) is True
    await until(lambda: got)
    assert got == [(1, "two")]
    assert await sio.call("emit_named", (name, [3], True)) == ["ack-" + name]
    await sio.disconnect()


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_numeric_event_name_is_delivered(node_server: Any, parser: str) -> None:
    server = node_server(parser=parser)
    sio = fastsio.AsyncClient(serializer="msgpack" if parser == "msgpack" else "default")
    got: list[tuple[Any, ...]] = []
    disconnects: list[str] = []
    sio.on("42", lambda *a: got.append(a))
    sio.on("disconnect", lambda r: disconnects.append(r))
    await sio.connect(server.url)
    assert await sio.call("emit_named", (42, ["x"], False)) is True
    await until(lambda: got)
    assert got == [("x",)] and disconnects == []
    await sio.disconnect()


# -- emit before connect / after disconnect --------------------------------------------------


async def test_emit_before_connect_raises_by_default(node_server: Any) -> None:
    sio = fastsio.AsyncClient()
    with pytest.raises(exceptions.BadNamespaceError):
        await sio.emit("echo", 1)


async def test_emit_before_connect_and_after_disconnect_with_opt_in(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(buffer_when_disconnected=True)
    tag = new_tag()
    outcomes: list[Any] = []
    await sio.emit("count", (tag, "before"), callback=lambda *a: outcomes.append(a))
    assert sio.stats()["buffered"] == 1
    await sio.connect(server.url)
    await until(lambda: outcomes)
    assert outcomes == [("before",)]
    await sio.disconnect()
    await sio.emit("count", (tag, "after"))
    assert sio.stats()["buffered"] == 1
    await sio.connect(server.url)
    await until(lambda: sio.stats()["buffered"] == 0)
    assert await counted(sio, tag) == ["before", "after"]
    await sio.disconnect()


# -- simple clients during a blip --------------------------------------------------------------


async def test_async_simple_client_call_survives_a_blip(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    client = fastsio.AsyncSimpleClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    await client.connect(proxy.url)
    assert await client.call("ack", 1) == 1
    proxy.refuse(True)
    proxy.cut()
    await until(lambda: client.client is not None and not client.client.connected)
    assert client.connected  # a blip is not the end
    call = asyncio.ensure_future(client.call("ack", 2, timeout=10))
    emit = asyncio.ensure_future(client.emit("echo", 3))
    await asyncio.sleep(0.3)
    proxy.refuse(False)
    assert await asyncio.wait_for(call, 10) == 2
    await asyncio.wait_for(emit, 10)
    assert (await client.receive(timeout=5)) == ["echo", 3]
    await client.emit("disconnect_me")
    with pytest.raises(exceptions.DisconnectedError):
        await asyncio.wait_for(client.receive(timeout=5), 5)
    assert not client.connected
    with pytest.raises(exceptions.DisconnectedError):
        await client.call("ack", 4)


def test_sync_simple_client_call_survives_a_blip(node_server: Any, fault_proxy_sync: Any) -> None:
    server = node_server()
    proxy = fault_proxy_sync(server)
    with fastsio.SimpleClient(reconnection_delay=0.1, reconnection_delay_max=0.2) as client:
        client.connect(proxy.url)
        assert client.call("ack", 1) == 1
        proxy.refuse(True)
        proxy.cut()
        result: list[Any] = []
        worker = threading.Thread(target=lambda: result.append(client.call("ack", 2, timeout=10)))
        worker.start()
        threading.Event().wait(0.3)
        proxy.refuse(False)
        worker.join(10)
        assert result == [2]
        assert client.connected
