"""Proves the test infrastructure (peers, fixtures, fault proxy, loop parametrization) works,
using python-socketio's own AsyncClient, so that it does not depend on fastsio at all."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import engineio.payload
import msgpack
import pytest
import socketio
from support import servers
from support.aio import EventLog, log_events, loop_name, until
from support.faultproxy import FaultProxy
from support.servers import ServerHandle, ServerStartError

MakeClient = Callable[..., socketio.AsyncClient]
DATE_MS = 1704164645678  # the Date both peers send for `emit_undefined`


@pytest.fixture
async def sio_client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeClient]:
    """Factory for python-socketio AsyncClients that are always shut down at teardown."""
    # python-engineio refuses a polling payload of more than 16 packets ("Unexpected packet from
    # server"), and a Node server flushes everything it has buffered in one response.
    monkeypatch.setattr(engineio.payload.Payload, "max_decode_packets", 1_000_000)
    clients: list[socketio.AsyncClient] = []

    def make(parser: str = "json", **kwargs: Any) -> socketio.AsyncClient:
        kwargs.setdefault("reconnection_delay", 0.1)
        kwargs.setdefault("reconnection_delay_max", 0.2)
        kwargs.setdefault("randomization_factor", 0)
        kwargs.setdefault("request_timeout", 2)
        client = socketio.AsyncClient(
            serializer="msgpack" if parser == "msgpack" else "default",
            handle_sigint=False,
            **kwargs,
        )
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await _close_client(client)


async def _close_client(client: socketio.AsyncClient) -> None:
    try:
        # shutdown() also ends a reconnect loop that is still running.
        await asyncio.wait_for(client.shutdown(), 1)
    except asyncio.TimeoutError:
        # Over polling, python-engineio's disconnect waits for the pending long-poll GET, and a
        # python-engineio server answers it only after ping_interval + ping_timeout. The timeout
        # cancelled the read loop; close what it leaves open.
        await client.eio._reset()


@pytest.fixture(params=["node", "python"])
def peer(request: pytest.FixtureRequest, node_server: Any, py_server: Any) -> Any:
    """The server factory of one peer kind: each contract test runs against both."""
    return node_server if request.param == "node" else py_server


# -- loops ---------------------------------------------------------------------------------------


async def test_each_async_test_runs_on_its_loop(request: pytest.FixtureRequest) -> None:
    name = loop_name()
    assert request.node.name.endswith(f"[{name}]"), (request.node.name, name)
    if name == "uvloop":
        import uvloop

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


# -- the contract, on both peers ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_contract_basics(
    peer: Any, parser: str, transport: str, sio_client: MakeClient
) -> None:
    server = peer(parser=parser)
    client = sio_client(parser)
    log = EventLog()
    for ev in ("echo", "tick", "bin_tick", "room_msg"):
        client.on(ev, log.handler(ev))
        client.on(ev, log.handler(f"chat:{ev}"), namespace="/chat")
    await client.connect(
        server.url + "?foo=bar",
        transports=[transport],
        namespaces=["/", "/chat"],
        headers={"X-Fastsio-Test": "yes"},
        auth={"user": "u1"},
        wait_timeout=5,
    )
    assert client.transport() == transport

    # echo, binary preserved, several args
    await client.emit("echo", ("a", 1, {"k": [1, 2]}, b"\x00\xff"))
    assert await log.wait("echo") == [("a", 1, {"k": [1, 2]}, b"\x00\xff")]

    # ack with several args
    assert await client.call("ack", ("x", 2, b"\x01"), timeout=5) == ("x", 2, b"\x01")
    assert await client.call("ack", "single", timeout=5) == "single"

    # handshake introspection
    assert await client.call("auth", timeout=5) == {"user": "u1"}
    headers = await client.call("headers", timeout=5)
    assert headers["x-fastsio-test"] == "yes"
    query = await client.call("query", timeout=5)
    assert query["foo"] == "bar" and query["EIO"] == "4" and query["transport"] == transport
    assert await client.call("recovered", timeout=5) is False

    # rooms are per namespace
    assert await client.call("join", "r1", namespace="/chat", timeout=5) is True
    await client.emit("to_room", ("r1", "hello", 3), namespace="/chat")
    assert await log.wait("chat:room_msg") == [("r1", "hello", 3)]
    await client.emit("to_room", ("r1", "nobody here"))  # "/" has no member in r1
    assert await client.call("leave", "r1", namespace="/chat", timeout=5) is True
    await client.emit("to_room", ("r1", "gone"), namespace="/chat")
    await client.emit("echo", "fence", namespace="/chat")
    await log.wait("chat:echo")
    assert log.count("chat:room_msg") == 1 and log.count("room_msg") == 0

    # bursts keep order; the ack comes after the last tick
    assert await client.call("burst", 200, timeout=10) == 200
    assert [a for (a,) in await log.wait("tick", 200)] == list(range(200))
    await client.emit("burst_binary", 50)
    got = await log.wait("bin_tick", 50)
    assert got == [(i, struct.pack(">I", i)) for i in range(50)]

    # big payload
    big = EventLog()
    client.on("big", big.handler("big"))
    assert await client.call("big", 300_000, timeout=10) == 300_000
    [(s,)] = await big.wait("big")
    assert s == "x" * 300_000


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_contract_private_namespace(peer: Any, parser: str, sio_client: MakeClient) -> None:
    server = peer(parser=parser)
    errors = EventLog()
    bad = sio_client(parser, reconnection=False)
    bad.on("connect_error", errors.handler("err"), namespace="/private")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await bad.connect(
            server.url, namespaces=["/private"], auth={"token": "nope"}, wait_timeout=5
        )
    [(data,)] = await errors.wait("err")
    assert data == {"message": "unauthorized", "data": {"reason": "bad token"}}

    good = sio_client(parser)
    await good.connect(
        server.url, namespaces=["/private"], auth={"token": "secret"}, wait_timeout=5
    )
    assert await good.call("auth", namespace="/private", timeout=5) == {"token": "secret"}


async def test_contract_ask(peer: Any, sio_client: MakeClient) -> None:
    server = peer()
    client = sio_client()
    log = EventLog()

    async def question(payload: Any) -> tuple[Any, ...]:
        log.record("question", payload)
        return ("re", payload, 42)

    client.on("question", question)
    client.on("answer", log.handler("answer"))
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    # The ack of `ask` comes after `answer` was emitted.
    assert await client.call("ask", {"q": 1}, timeout=10) is None
    assert log.events["question"] == [({"q": 1},)]
    assert log.events["answer"] == [(["re", {"q": 1}, 42],)]


@pytest.mark.asyncio(loop_factories=["uvloop"])  # 5 s of waiting; the loop is not the point
async def test_contract_ask_timeout(
    node_server: Any, py_server: Any, sio_client: MakeClient
) -> None:
    release = asyncio.Event()

    async def never_answer(payload: Any) -> None:
        # python-socketio acks every event that asks for it once the handler returns, so a
        # missing ack is a handler that does not return within the server's 5 s.
        await release.wait()

    async def one(server: ServerHandle) -> list[tuple[Any, ...]]:
        client = sio_client()
        log = EventLog()
        client.on("question", never_answer)
        client.on("answer_error", log.handler("answer_error"))
        await client.connect(server.url, transports=["websocket"], wait_timeout=5)
        await client.emit("ask", "anyone?")
        return await log.wait("answer_error", timeout=10)

    try:
        results = await asyncio.gather(one(node_server()), one(py_server()))
    finally:
        release.set()
    assert results == [[("operation has timed out",)]] * 2


async def test_contract_stream(peer: Any, sio_client: MakeClient) -> None:
    server = peer()
    starter, watcher = sio_client(), sio_client()
    log = EventLog()
    watcher.on("seq", log.handler("seq"), namespace="/chat")
    await starter.connect(server.url, namespaces=["/chat"], transports=["websocket"])
    await watcher.connect(server.url, namespaces=["/chat"], transports=["websocket"])
    assert await starter.call("stream_start", 20, namespace="/chat", timeout=5) is True
    # The stream belongs to the namespace: it reaches every socket and outlives the starter.
    await starter.disconnect()
    assert await log.wait("seq", 4) == [(0,), (1,), (2,), (3,)]
    assert await watcher.call("stream_stop", namespace="/chat", timeout=5) is True
    await asyncio.sleep(0.1)
    n = log.count("seq")
    await asyncio.sleep(0.2)
    assert log.count("seq") == n


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_contract_emit_undefined(peer: Any, parser: str, sio_client: MakeClient) -> None:
    server = peer(parser=parser)
    client = sio_client(parser)
    log = EventLog()
    for ev in ("undef", "date", "arraybuffer"):
        client.on(ev, log.handler(ev))
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    await client.call("emit_undefined", timeout=5)
    [undef] = await log.wait("undef")
    [(date,)] = await log.wait("date")
    [(ab,)] = await log.wait("arraybuffer")
    if parser == "json":
        assert undef == (None, None, 1)
        assert date == "2024-01-02T03:04:05.678Z"
        assert ab == b"\x01\x02\x03"
    else:
        # notepack's extension types, as python-socketio's msgpack serializer surfaces them.
        assert undef == (msgpack.ExtType(0, b"\x00"), None, 1)
        assert isinstance(date, msgpack.ExtType) and date.code == 0 and len(date.data) == 8
        hi, lo = struct.unpack(">iI", date.data)
        assert hi * 2**32 + lo == DATE_MS
        assert ab == msgpack.ExtType(0, b"\x01\x02\x03")


async def test_contract_server_disconnects(peer: Any, sio_client: MakeClient) -> None:
    server = peer()
    client = sio_client()
    log = log_events(client, "connect", "disconnect")
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)

    # Engine-level close: seen as a transport close, so the client reconnects.
    await client.emit("close_transport")
    await log.wait("disconnect")
    await log.wait("connect", 2)
    assert await client.call("ack", 1, timeout=5) == 1

    # Namespace disconnect by the server: no reconnection.
    await client.emit("disconnect_me")
    [_, (reason,)] = await log.wait("disconnect", 2)
    assert reason == client.reason.SERVER_DISCONNECT
    await asyncio.sleep(0.5)
    assert log.count("connect") == 2 and not client.connected


async def test_node_stream_with_recovery_carries_offsets(
    node_server: Any, sio_client: MakeClient
) -> None:
    server = node_server(recovery=True)
    client = sio_client()
    log = EventLog()
    client.on("seq", log.handler("seq"))
    client.on("tick", log.handler("tick"))
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    assert await client.call("stream_start", 10, timeout=5) is True
    got = await log.wait("seq", 5)
    assert await client.call("stream_stop", timeout=5) is True
    # With recovery on, socket.io appends the packet's offset (a string) to every event that
    # has no ack id, broadcasts and plain socket.emit alike.
    assert [a[0] for a in got] == [0, 1, 2, 3, 4]
    assert all(len(a) == 2 and isinstance(a[1], str) for a in got)
    offsets = [a[1] for a in got]
    assert len(set(offsets)) == 5
    await client.call("burst", 2, timeout=5)
    ticks = await log.wait("tick", 2)
    assert [t[0] for t in ticks] == [0, 1] and all(isinstance(t[1], str) for t in ticks)


async def test_node_transports_and_ping_options(node_server: Any, sio_client: MakeClient) -> None:
    server = node_server(transports="websocket", ping_interval=400, ping_timeout=300)
    client = sio_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, transports=["polling"], wait_timeout=3)
    client2 = sio_client()
    await client2.connect(server.url, transports=["websocket"], wait_timeout=5)
    assert client2.eio.ping_interval == 0.4 and client2.eio.ping_timeout == 0.3
    # Pings keep the link alive past interval + timeout.
    await asyncio.sleep(1.0)
    assert await client2.call("ack", "alive", timeout=5) == "alive"


async def test_node_max_payload(node_server: Any, sio_client: MakeClient) -> None:
    server = node_server(max_payload=1000)
    client = sio_client()
    log = EventLog()
    client.on("disconnect", log.handler("disconnect"))
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    assert await client.call("ack", "x" * 500, timeout=5) == "x" * 500
    # Over maxHttpBufferSize the server drops the connection.
    await client.emit("echo", "x" * 5000)
    await log.wait("disconnect")


# -- server handles ------------------------------------------------------------------------------


async def test_kill_and_restart_on_same_port(peer: Any, sio_client: MakeClient) -> None:
    server = peer()
    port = server.port
    client = sio_client()
    log = log_events(client, "connect", "disconnect")
    await client.connect(server.url, transports=["websocket"], wait_timeout=5)

    await server.akill()
    assert not server.running
    await log.wait("disconnect")
    await server.arestart()
    assert server.running and server.port == port
    await log.wait("connect", 2, timeout=10)
    assert await client.call("ack", "back", timeout=5) == "back"

    # A graceful stop (SIGTERM) closes transports too, so the client reconnects again.
    await server.arestart()
    assert server.port == port
    await log.wait("connect", 3, timeout=10)
    assert await client.call("ack", "again", timeout=5) == "again"

    await server.astop()
    assert not server.running


def test_start_failure_reports_stderr(node_server: Any) -> None:
    with pytest.raises(ServerStartError, match="unknown parser"):
        node_server(parser="bogus")


def test_missing_node_modules_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(servers, "PEERS_DIR", tmp_path)
    with pytest.raises(servers.PeerSetupError, match=r"npm ci --prefix tests/peers"):
        servers.check_node_peer()


def test_python_peer_has_no_recovery(py_server: Any) -> None:
    with pytest.raises(ValueError, match="recovery"):
        py_server(recovery=True)


# -- fault proxy ---------------------------------------------------------------------------------


async def test_proxy_cut_then_client_reconnects(proxied_node: Any, sio_client: MakeClient) -> None:
    server, proxy = await proxied_node()
    client = sio_client()
    log = log_events(client, "connect", "disconnect")
    await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)
    assert await client.call("ack", 1, timeout=5) == 1
    assert proxy.active == 1 and proxy.stats.bytes_up > 0 and proxy.stats.bytes_down > 0

    assert proxy.cut() == 1
    await log.wait("disconnect")
    await log.wait("connect", 2)
    assert await client.call("ack", 2, timeout=5) == 2
    assert proxy.stats.accepted == 2 and proxy.stats.cuts == 1


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_proxy_chunk_1(
    parser: str, transport: str, proxied_node: Any, sio_client: MakeClient
) -> None:
    server, proxy = await proxied_node(parser=parser)
    proxy.chunk(1)
    client = sio_client(parser)
    log = EventLog()
    client.on("tick", log.handler("tick"))
    client.on("bin_tick", log.handler("bin_tick"))
    await client.connect(proxy.url, transports=[transport], wait_timeout=10)
    assert await client.call("ack", ("é", b"\x00\x01"), timeout=10) == ("é", b"\x00\x01")
    assert await client.call("burst", 20, timeout=10) == 20
    assert [a for (a,) in await log.wait("tick", 20)] == list(range(20))
    await client.emit("burst_binary", 5)
    assert await log.wait("bin_tick", 5) == [(i, struct.pack(">I", i)) for i in range(5)]


async def test_proxy_freeze_causes_ping_timeout_then_recovers(
    proxied_node: Any, sio_client: MakeClient
) -> None:
    server, proxy = await proxied_node(ping_interval=300, ping_timeout=300)
    client = sio_client(request_timeout=1)
    log = log_events(client, "connect", "disconnect")
    await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)
    assert await client.call("ack", 1, timeout=5) == 1

    proxy.freeze()
    up, down = proxy.stats.bytes_up, proxy.stats.bytes_down
    # python-engineio gives up after ping_interval + ping_timeout without a packet.
    await log.wait("disconnect", timeout=5)
    assert (proxy.stats.bytes_up, proxy.stats.bytes_down) == (up, down)  # nothing got through
    assert log.count("connect") == 1  # reconnect attempts hang while frozen

    proxy.unfreeze()
    await log.wait("connect", 2, timeout=10)
    assert await client.call("ack", 2, timeout=5) == 2


async def test_proxy_refuse(proxied_node: Any, sio_client: MakeClient) -> None:
    server, proxy = await proxied_node()
    client = sio_client()
    log = EventLog()
    client.on("connect", log.handler("connect"))
    await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)

    proxy.refuse(True)
    proxy.cut()
    await until(lambda: proxy.stats.refused >= 2, 10, "two refused reconnects")
    assert log.count("connect") == 1
    proxy.refuse(False)
    await log.wait("connect", 2, timeout=10)


async def test_proxy_delay_and_throttle(proxied_node: Any, sio_client: MakeClient) -> None:
    server, proxy = await proxied_node()
    client = sio_client()
    await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)
    loop = asyncio.get_running_loop()

    proxy.delay(0.2)
    t0 = loop.time()
    assert await client.call("ack", 1, timeout=5) == 1
    rtt = loop.time() - t0
    assert rtt >= 0.4  # one delay each way; no upper bound: CI machines are slow
    proxy.delay(0)

    proxy.throttle(200_000)
    t0 = loop.time()
    assert await client.call("big", 100_000, timeout=10) == 100_000
    assert loop.time() - t0 >= 0.4
    proxy.heal()
    assert await client.call("ack", 3, timeout=5) == 3


async def test_proxy_stop_leaves_no_tasks(node_server: Any, sio_client: MakeClient) -> None:
    server = node_server()
    before = asyncio.all_tasks()
    proxy = FaultProxy("127.0.0.1", server.port)
    await proxy.start()
    client = sio_client(reconnection=False)
    await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)
    proxy.freeze()  # stop() must also release tasks parked on a freeze
    await proxy.stop()
    await client.disconnect()
    await asyncio.sleep(0.05)
    leftover = {
        t
        for t in asyncio.all_tasks() - before
        if getattr(t.get_coro(), "__qualname__", "").startswith("FaultProxy.")
    }
    assert not leftover, leftover
