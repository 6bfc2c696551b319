"""fastsio.testing.TestServer: the in-process Socket.IO server, driven by fastsio's AsyncClient.

Also checked against two independent clients (python-socketio's AsyncClient and Node's
socket.io-client), so that the server is known to speak the real protocol and not merely
fastsio's reading of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import fastsio
from fastsio import exceptions
from fastsio.testing import ClientGone, ConnectionRefused, TestServer

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from support.aio import EventLog, client, connected, log_events, until  # noqa: E402
from support.tls import tls_contexts  # noqa: E402

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = [
    pytest.param(["websocket"], id="websocket"),
    pytest.param(["polling"], id="polling"),
    pytest.param(None, id="default"),
    pytest.param(["polling", "websocket"], id="upgrade"),
]


def lifecycle_log(sio: fastsio.AsyncClient, namespace: str = "/") -> EventLog:
    log = log_events(sio, "connect", "disconnect", "connect_error", namespace=namespace)
    sio.on("reconnect", log.handler("reconnect"))
    return log


@pytest.fixture
async def make_server() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def make(**kwargs: Any) -> TestServer:
        server = TestServer(**kwargs)
        await server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()


# -- handlers, acks, transports -----------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_handlers_and_acks_both_ways(
    make_server: Any, transports: list[str] | None, serializer: str
) -> None:
    server = await make_server(serializer=serializer)
    seen: list[tuple[Any, ...]] = []

    @server.on("add")
    def add(sid: str, a: int, b: int) -> int:
        return a + b

    @server.on("pair")
    async def pair(sid: str, x: Any) -> tuple[Any, Any]:
        await asyncio.sleep(0)
        return x, sid

    @server.on("nothing")
    def nothing(sid: str, *args: Any) -> None:
        seen.append(args)

    sio = client(serializer)
    sio.on("double", lambda x: x * 2)

    async def later(x: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"x": x}

    sio.on("later", later)
    got = EventLog()
    sio.on("news", got.handler("news"))
    async with connected(sio, server.url, transports=transports, auth={"token": "t"}):
        sid = sio.get_sid()
        assert sid is not None and server.sids() == [sid]
        assert await sio.call("add", (1, 2), timeout=5) == 3
        assert await sio.call("pair", [1, "a"], timeout=5) == ([1, "a"], sid)
        assert await sio.call("nothing", ("a", None), timeout=5) is None
        assert seen == [("a", None)]
        # Server to client: emit, call (emitWithAck), emit with a callback.
        await server.emit("news", ({"id": 1}, "two"), to=sid)
        assert await got.wait("news") == [({"id": 1}, "two")]
        assert await server.call("double", 21, to=sid) == 42
        assert await server.call("later", 5, to=sid) == {"x": 5}
        acks: list[tuple[Any, ...]] = []
        server.emit("double", "ab", to=sid, callback=lambda *a: acks.append(a))
        await until(lambda: acks, what="emit callback")
        assert acks == [("abab",)]
        hs = server.handshake(sid)
        assert hs.auth == {"token": "t"} and hs.namespace == "/"
        assert hs.eio_sid == sio.sid and hs.query["EIO"] == "4"
        assert "host" in hs.headers
        expected = "polling" if transports == ["polling"] else "websocket"
        await until(lambda: server.transport(sid) == expected, what="server transport")
        await until(lambda: sio.transport() == expected, what="client transport")
    await until(lambda: not server.sids(), what="server saw the disconnect")
    assert server.errors == []


async def test_event_without_handler_is_not_acked_and_catch_all(make_server: Any) -> None:
    server = await make_server()
    sio = client()
    async with connected(sio, server.url):
        with pytest.raises(exceptions.TimeoutError):
            await sio.call("unknown", 1, timeout=0.3)
        caught: list[tuple[Any, ...]] = []
        server.on("*", lambda event, sid, *args: caught.append((event, sid, args)))
        await sio.emit("other", (1, 2))
        await until(lambda: caught)
        assert caught == [("other", sio.get_sid(), (1, 2))]


async def test_handler_errors_are_recorded_and_not_acked(make_server: Any) -> None:
    server = await make_server()

    @server.on("boom")
    def boom(sid: str) -> None:
        raise RuntimeError("boom")

    sio = client()
    async with connected(sio, server.url):
        with pytest.raises(exceptions.TimeoutError):
            await sio.call("boom", timeout=0.3)
        assert [str(e) for e in server.errors] == ["boom"]
        assert sio.connected


async def test_emit_from_connect_handler_arrives_after_connect(make_server: Any) -> None:
    server = await make_server()

    @server.on("connect", namespace="/chat")
    async def connect(sid: str, auth: Any) -> None:
        server.enter_room(sid, "lobby")
        await server.emit("welcome", auth, to=sid)
        await server.emit("lobby", "hi", room="lobby", namespace="/chat")

    sio = client()
    order: list[str] = []
    sio.on("connect", lambda: order.append("connect"), namespace="/chat")
    sio.on("welcome", lambda auth: order.append(f"welcome {auth}"), namespace="/chat")
    sio.on("lobby", lambda msg: order.append(f"lobby {msg}"), namespace="/chat")
    async with connected(sio, server.url, namespaces=["/chat"], auth={"n": 1}):
        await until(lambda: len(order) == 3)
        assert order == ["connect", "welcome {'n': 1}", "lobby hi"]
        assert server.rooms(sio.get_sid("/chat")) == {sio.get_sid("/chat"), "lobby"}


# -- connect refusal ----------------------------------------------------------------------------


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_connect_refusal_raises_connection_error(
    make_server: Any, transports: list[str]
) -> None:
    server = await make_server(namespaces=["/", "/private", "/closed"])

    @server.on("connect", namespace="/private")
    def private(sid: str, auth: Any) -> None:
        if not auth or auth.get("token") != "secret":
            raise ConnectionRefused("unauthorized", {"reason": "bad token"})

    server.on("connect", lambda sid, auth: False, namespace="/closed")

    sio = client()
    log = lifecycle_log(sio, "/private")
    with pytest.raises(exceptions.ConnectionError, match="/private"):
        await sio.connect(
            server.url, namespaces=["/private"], auth={"token": "no"}, transports=transports
        )
    assert log.events["connect_error"] == [
        ({"message": "unauthorized", "data": {"reason": "bad token"}},)
    ]
    assert not sio.connected and server.sids("/private") == []

    other = client()
    errors = EventLog()
    other.on("connect_error", errors.handler("closed"), namespace="/closed")
    other.on("connect_error", errors.handler("unknown"), namespace="/unknown")
    with pytest.raises(exceptions.ConnectionError):
        await other.connect(server.url, namespaces=["/closed"], transports=transports)
    with pytest.raises(exceptions.ConnectionError):
        await other.connect(server.url, namespaces=["/unknown"], transports=transports)
    assert errors.events["closed"] == [({"message": "Connection rejected by server"},)]
    assert errors.events["unknown"] == [({"message": "Invalid namespace"},)]

    await sio.connect(
        server.url, namespaces=["/private"], auth={"token": "secret"}, transports=transports
    )
    try:
        assert server.sids("/private") == [sio.get_sid("/private")]
    finally:
        await sio.disconnect()
    assert server.stats.refused == 3


# -- rooms ----------------------------------------------------------------------------------------


async def test_rooms_and_broadcasts(make_server: Any) -> None:
    server = await make_server()
    server.on("join", lambda sid, room: server.enter_room(sid, room), namespace="/chat")
    server.on("leave", lambda sid, room: server.leave_room(sid, room), namespace="/chat")
    clients = [client() for _ in range(3)]
    logs = [EventLog() for _ in clients]
    for sio, log in zip(clients, logs, strict=True):
        sio.on("msg", log.handler("msg"), namespace="/chat")
        sio.on("msg", log.handler("root"))
        await sio.connect(server.url, namespaces=["/", "/chat"])
    try:
        a, b, c = (sio.get_sid("/chat") for sio in clients)
        await clients[0].call("join", "red", namespace="/chat", timeout=5)
        await clients[1].call("join", "red", namespace="/chat", timeout=5)
        assert sorted(server.sids("/chat", room="red")) == sorted([a, b])
        await server.emit("msg", "to red", room="red", namespace="/chat")
        await server.emit("msg", "red but a", to="red", namespace="/chat", skip_sid=a)
        await server.emit("msg", "everyone", namespace="/chat")
        await server.emit("msg", "root only")  # namespace "/": not seen by /chat handlers
        await server.emit("msg", "c by sid", to=c)  # a sid is found whatever its namespace
        await clients[1].call("leave", "red", namespace="/chat", timeout=5)
        await server.emit("msg", "red after leave", to="red", namespace="/chat")
        await server.emit("msg", "end", namespace="/chat")
        for log in logs:
            await log.wait("msg", 1)
        await until(lambda: all(log.events["msg"][-1:] == [("end",)] for log in logs))
        assert [x[0] for x in logs[0].events["msg"]] == [
            "to red",
            "everyone",
            "red after leave",
            "end",
        ]
        assert [x[0] for x in logs[1].events["msg"]] == ["to red", "red but a", "everyone", "end"]
        assert [x[0] for x in logs[2].events["msg"]] == ["everyone", "c by sid", "end"]
        await until(lambda: all(log.count("root") == 1 for log in logs))
    finally:
        for sio in clients:
            await sio.disconnect()


# -- binary and msgpack -----------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_binary_both_ways(make_server: Any, serializer: str, transports: list[str]) -> None:
    server = await make_server(serializer=serializer)
    blob = bytes(range(256)) * 3
    received: list[tuple[Any, ...]] = []

    @server.on("upload")
    def upload(sid: str, *args: Any) -> Any:
        received.append(args)
        return b"ack-" + args[0], {"nested": [args[1]["b"], "text"]}

    sio = client(serializer)
    got = EventLog()
    sio.on("bin", got.handler("bin"))
    sio.on("echo_bin", lambda data: [data, b"\x00"])
    async with connected(sio, server.url, transports=transports):
        ack = await sio.call("upload", (b"\x01\x02", {"b": blob, "n": None}), timeout=5)
        assert received == [(b"\x01\x02", {"b": blob, "n": None})]
        assert ack == (b"ack-\x01\x02", {"nested": [blob, "text"]})
        sid = sio.get_sid()
        await server.emit("bin", (b"", {"a": [b"\xff" * 10, 1]}, bytearray(b"ba")), to=sid)
        assert await got.wait("bin") == [(b"", {"a": [b"\xff" * 10, 1]}, b"ba")]
        assert await server.call("echo_bin", b"\x07" * 5, to=sid) == [b"\x07" * 5, b"\x00"]


# -- the upgrade --------------------------------------------------------------------------------


async def test_upgrade_keeps_order_both_ways(make_server: Any, monkeypatch: Any) -> None:
    # The upgrade starts once the traffic below is under way, so that it always spans it.
    from fastsio.engine import EngineIO

    go = asyncio.Event()
    upgrade = EngineIO._upgrade

    async def held_upgrade(self: EngineIO) -> None:
        await go.wait()
        await upgrade(self)

    monkeypatch.setattr(EngineIO, "_upgrade", held_upgrade)
    server = await make_server()
    inbound: list[int] = []
    server.on("n", lambda sid, i: inbound.append(i))
    sio = client()
    outbound = EventLog()
    sio.on("m", outbound.handler("m"))
    async with connected(sio, server.url, transports=["polling", "websocket"]):
        sid = sio.get_sid()
        assert sio.transport() == "polling"
        for i in range(300):  # spans the upgrade: some go by polling, the rest by WebSocket
            if i == 50:
                go.set()
            await sio.emit("n", i)
            await server.emit("m", i, to=sid)
            if i % 10 == 0:
                await asyncio.sleep(0.001)
        await until(lambda: sio.transport() == "websocket" and server.transport(sid) == "websocket")
        await sio.emit("n", 300)
        await server.emit("m", 300, to=sid)
        await outbound.wait("m", 301)
        await until(lambda: len(inbound) == 301)
        assert inbound == list(range(301))
        assert [x[0] for x in outbound.events["m"]] == list(range(301))
        assert server.stats.upgrades == 1


async def test_upgrade_does_not_lose_an_in_flight_post(make_server: Any) -> None:
    server = await make_server()
    server.delay_posts(1.0)  # the CONNECT packet's POST is still in flight during the upgrade
    got: list[int] = []
    server.on("n", lambda sid, i: got.append(i))
    sio = client()
    try:
        await sio.connect(server.url, transports=["polling", "websocket"], wait_timeout=2.5)
        await sio.emit("n", 1)
        await until(lambda: got)
        assert got == [1] and sio.transport() == "websocket"
    finally:
        await sio.disconnect()


async def test_upgrade_not_offered_stays_on_polling(make_server: Any) -> None:
    server = await make_server(allow_upgrades=False)
    server.on("ack", lambda sid, x: x)
    sio = client()
    async with connected(sio, server.url, transports=["polling", "websocket"]):
        assert await sio.call("ack", 1, timeout=5) == 1
        await asyncio.sleep(0.2)
        assert sio.transport() == "polling" and server.stats.upgrades == 0


async def test_websocket_refused_falls_back_to_polling(make_server: Any) -> None:
    server = await make_server(transports=["polling"])
    server.on("ack", lambda sid, x: x)
    sio = client()
    async with connected(sio, server.url):
        assert sio.transport() == "polling"
        assert await sio.call("ack", 2, timeout=5) == 2


# -- firehose -----------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_firehose_streams_in_order(
    make_server: Any, serializer: str, transports: list[str]
) -> None:
    server = await make_server(serializer=serializer)
    sio = client(serializer)
    count = 20_000 if transports == ["websocket"] else 3_000
    seen: list[Any] = []
    sio.on("tick", lambda batch: seen.extend(batch), batch=True)
    sio.on("done", lambda n: seen.append(("done", n)))
    async with connected(sio, server.url, transports=transports):
        sid = sio.get_sid()
        assert await server.firehose(sid, count, "tick", {"p": 1.5}) == count
        await server.emit("done", count, to=sid)
        await until(lambda: seen and seen[-1] == ("done", count), timeout=20)
        assert seen[:-1] == [{"p": 1.5}] * count


async def test_firehose_pre_encoded_packet(make_server: Any) -> None:
    server = await make_server()
    sio = client()
    seen: list[Any] = []
    sio.on("raw", lambda *args: seen.append(args))
    async with connected(sio, server.url, transports=["websocket"]):
        assert await server.firehose(sio.get_sid(), 1000, packet='42["raw",1,"x"]') == 1000
        await until(lambda: len(seen) == 1000)
        assert set(seen) == {(1, "x")}


# -- disconnects and faults ---------------------------------------------------------------------


async def test_server_namespace_disconnect_is_final(make_server: Any) -> None:
    server = await make_server()
    reasons: list[tuple[str, str]] = []
    server.on("disconnect", lambda sid, reason: reasons.append((sid, reason)))
    sio = client(reconnection=True, reconnection_delay=0.05)
    log = lifecycle_log(sio)
    await sio.connect(server.url)
    sid = sio.get_sid()
    assert sid is not None
    server.disconnect(sid)
    await asyncio.wait_for(sio.wait(), 5)
    assert log.events["disconnect"] == [("io server disconnect",)]
    assert reasons == [(sid, "server namespace disconnect")]
    assert not sio.connected and log.count("reconnect") == 0


async def test_client_disconnect_reason_on_the_server(make_server: Any) -> None:
    server = await make_server()
    reasons: list[str] = []

    async def on_disconnect(sid: str, reason: str) -> None:
        reasons.append(reason)

    server.on("disconnect", on_disconnect, namespace="/chat")
    sio = client()
    await sio.connect(server.url, namespaces=["/chat"], transports=["websocket"])
    await sio.disconnect()
    await until(lambda: reasons)
    assert reasons == ["client namespace disconnect"]


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_drop_makes_the_client_reconnect(make_server: Any, transports: list[str]) -> None:
    server = await make_server()
    server_reasons: list[str] = []
    server.on("disconnect", lambda sid, reason: server_reasons.append(reason))
    server.on("ack", lambda sid, x: x)
    sio = client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1)
    log = lifecycle_log(sio)
    async with connected(sio, server.url, transports=transports):
        first = sio.sid
        server.drop()
        await log.wait("reconnect", timeout=10)
        # A WebSocket sees the TCP link end; a polling client sees its request fail.
        expected = "transport close" if transports == ["websocket"] else "transport error"
        assert log.events["disconnect"] == [(expected,)]
        assert server_reasons == ["transport close"]
        assert sio.sid != first and sio.connected
        assert await sio.call("ack", "back", timeout=5) == "back"


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_stop_pings_gives_a_ping_timeout(make_server: Any, transports: list[str]) -> None:
    server = await make_server(ping_interval=0.2, ping_timeout=0.2)
    server.on("ack", lambda sid, x: x)
    sio = client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1)
    log = lifecycle_log(sio)
    async with connected(sio, server.url, transports=transports):
        await asyncio.sleep(0.5)  # pings flow: the link stays up
        assert log.count("disconnect") == 0
        server.stop_pings(sid=sio.sid)
        await log.wait("disconnect", timeout=10)
        assert log.events["disconnect"] == [("ping timeout",)]
        await log.wait("reconnect", timeout=10)  # the new session gets pings again
        assert await sio.call("ack", 1, timeout=5) == 1


async def test_stop_pings_for_every_session(make_server: Any) -> None:
    server = await make_server(ping_interval=0.2, ping_timeout=0.2)
    sio = client()
    log = lifecycle_log(sio)
    server.stop_pings()
    await sio.connect(server.url)
    await log.wait("disconnect", timeout=10)
    assert log.events["disconnect"] == [("ping timeout",)]
    server.stop_pings(False)


async def test_ignore_pongs_makes_the_server_close_the_link(make_server: Any) -> None:
    server = await make_server(ping_interval=0.2, ping_timeout=0.2)
    server_reasons: list[str] = []
    server.on("disconnect", lambda sid, reason: server_reasons.append(reason))
    sio = client()
    log = lifecycle_log(sio)
    await sio.connect(server.url, transports=["websocket"])
    server.ignore_pongs(sid=sio.sid)
    await log.wait("disconnect", timeout=10)
    assert server_reasons == ["ping timeout"]
    assert log.events["disconnect"] == [("transport close",)]


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_close_transport_reconnects(make_server: Any, transports: list[str]) -> None:
    server = await make_server()
    server.on("ack", lambda sid, x: x)
    sio = client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1)
    log = lifecycle_log(sio)
    async with connected(sio, server.url, transports=transports):
        server.close_transport(sio.sid)
        await log.wait("reconnect", timeout=10)
        assert log.events["disconnect"] == [("transport close",)]
        assert await sio.call("ack", 2, timeout=5) == 2


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_freeze_holds_traffic_until_thawed(make_server: Any, transports: list[str]) -> None:
    server = await make_server(ping_interval=5, ping_timeout=5)
    server.on("ack", lambda sid, x: x)
    sio = client()
    got = EventLog()
    sio.on("m", got.handler("m"))
    async with connected(sio, server.url, transports=transports):
        sid = sio.get_sid()
        server.freeze(sid)
        await server.emit("m", 1, to=sid)
        call = asyncio.ensure_future(sio.call("ack", "held", timeout=10))
        await asyncio.sleep(0.3)
        assert got.count("m") == 0 and not call.done()
        server.freeze(sid, frozen=False)
        assert await asyncio.wait_for(call, 5) == "held"
        assert await got.wait("m") == [(1,)]


async def test_long_freeze_is_a_ping_timeout(make_server: Any) -> None:
    server = await make_server(ping_interval=0.2, ping_timeout=0.2)
    sio = client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1)
    log = lifecycle_log(sio)
    async with connected(sio, server.url, transports=["websocket"]):
        server.freeze(sio.sid)
        await log.wait("disconnect", timeout=10)
        assert log.events["disconnect"] == [("ping timeout",)]
        await log.wait("reconnect", timeout=10)


async def test_server_call_timeout_and_client_gone(make_server: Any) -> None:
    server = await make_server()
    sio = client()

    async def slow(x: Any) -> Any:
        await asyncio.sleep(30)
        return x

    sio.on("slow", slow)
    await sio.connect(server.url)
    sid = sio.get_sid()
    assert sid is not None
    with pytest.raises(TimeoutError):
        await server.call("slow", 0, to=sid, timeout=0.2)
    pending = asyncio.ensure_future(server.call("slow", 1, to=sid, timeout=30))
    await asyncio.sleep(0.1)
    await sio.disconnect()
    with pytest.raises(ClientGone):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(KeyError):
        await server.call("slow", to=sid)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_stop_without_disconnect_then_restart_on_the_same_port(
    transports: list[str],
) -> None:
    server = TestServer()
    server.on("ack", lambda sid, x: x)
    await server.start()
    port = server.port
    sio = client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.2)
    log = lifecycle_log(sio)
    try:
        await sio.connect(server.url, transports=transports)
        await server.stop(disconnect=False)
        await log.wait("disconnect", timeout=10)
        assert log.events["disconnect"][0][0] in ("transport close", "transport error")
        await server.start(port=port)
        await log.wait("reconnect", timeout=10)
        assert await sio.call("ack", "again", timeout=5) == "again"
        await server.stop()  # DISCONNECT packets: final for the client
        await asyncio.wait_for(sio.wait(), 5)
        assert log.events["disconnect"][-1] == ("io server disconnect",)
    finally:
        await sio.disconnect()
        await server.stop()


async def test_send_raw_reaches_the_client_verbatim(make_server: Any) -> None:
    server = await make_server()
    sio = client()
    got = EventLog()
    sio.on("x", got.handler("x"))
    async with connected(sio, server.url):
        server.send_raw(sio.get_sid(), '42["x",1]', '451-["x",{"_placeholder":true,"num":0}]', b"b")
        assert await got.wait("x", 2) == [(1,), (b"b",)]


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_tls(transports: list[str]) -> None:
    server_ctx, client_ctx = tls_contexts()
    server = TestServer()
    server.on("ack", lambda sid, x: x)
    await server.start(ssl_context=server_ctx)
    sio = client(ssl_context=client_ctx)
    try:
        assert server.url.startswith("https://")
        await sio.connect(server.url, transports=transports)
        assert await sio.call("ack", b"\x01", timeout=5) == b"\x01"
        await until(lambda: sio.transport() == "websocket")
        assert await server.firehose(sio.get_sid(), 100, "tick", 1) == 100
    finally:
        await sio.disconnect()
        await server.stop()


# -- independent clients ------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_python_socketio_client_agrees(
    make_server: Any, serializer: str, transports: list[str]
) -> None:
    socketio = pytest.importorskip("socketio")
    # python-engineio's client may exit its write loop before POSTing its CLOSE packet, and then
    # waits for its pending GET to return: a short ping interval bounds that wait.
    server = await make_server(serializer=serializer, ping_interval=0.5, ping_timeout=5)
    server.on("echo", lambda sid, *args: args)
    sio = socketio.AsyncClient(
        reconnection=False, serializer="msgpack" if serializer == "msgpack" else "default"
    )
    got: list[tuple[Any, ...]] = []
    sio.on("news", lambda *args: got.append(args))
    sio.on("double", lambda x: x * 2)
    async with connected(sio, server.url, transports=transports, wait_timeout=5):
        assert await sio.call("echo", (1, b"\x00\x01", {"b": [b"z"]}), timeout=5) == (
            1,
            b"\x00\x01",
            {"b": [b"z"]},
        )
        (sid,) = server.sids()
        await server.emit("news", ({"k": b"v"}, 2), to=sid)
        await until(lambda: got)
        assert got == [({"k": b"v"}, 2)]
        assert await server.call("double", 4, to=sid) == 8
        if transports == ["polling", "websocket"]:
            await until(lambda: server.transport(sid) == "websocket")


_NODE_CLIENT = r"""
const { io } = require("socket.io-client");
const opts = JSON.parse(process.argv[process.argv.length - 1]);
const socket = io(opts.url, { transports: opts.transports, reconnection: false,
                              auth: { token: "node" } });
const out = {};
socket.on("double", (x, cb) => cb(x * 2));
socket.on("news", (a, b) => { out.news = [a, Buffer.isBuffer(b) ? [...b] : b]; });
socket.on("connect", async () => {
  out.add = await socket.timeout(5000).emitWithAck("add", 2, 3);
  out.bin = [...(await socket.timeout(5000).emitWithAck("echo", Buffer.from([1, 2, 3])))];
  await new Promise((r) => setTimeout(r, 400));
  out.transport = socket.io.engine.transport.name;
  console.log(JSON.stringify(out));
  socket.disconnect();
});
socket.on("connect_error", (e) => { console.log(JSON.stringify({ error: e.message })); });
"""


@pytest.mark.asyncio(loop_factories=["uvloop"])  # the server, not the loop, is under test
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_node_socket_io_client_agrees(make_server: Any, transports: list[str]) -> None:
    node = shutil.which("node")
    peers = _TESTS / "peers"
    if node is None or not (peers / "node_modules" / "socket.io-client").is_dir():
        pytest.skip("node or tests/peers/node_modules missing (npm ci --prefix tests/peers)")
    server = await make_server()
    server.on("echo", lambda sid, data: data)

    @server.on("connect")
    def on_connect(sid: str, auth: Any) -> None:
        if auth != {"token": "node"}:
            raise ConnectionRefused("bad auth")
        server.emit("news", ("hello", b"\x09\x08"), to=sid)

    @server.on("add")
    async def add(sid: str, a: int, b: int) -> list[int]:
        return [a + b, await server.call("double", 21, to=sid)]

    proc = await asyncio.create_subprocess_exec(
        node,
        "-e",
        _NODE_CLIENT,
        json.dumps({"url": server.url, "transports": transports}),
        cwd=peers,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(peers / "node_modules")},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().strip().splitlines()
    assert lines, f"node client printed nothing; stderr: {err.decode()}"
    result = json.loads(lines[-1])
    assert result == {
        "news": ["hello", [9, 8]],
        "add": [5, 42],
        "bin": [1, 2, 3],
        "transport": "polling" if transports == ["polling"] else "websocket",
    }, err.decode()
    assert server.errors == []


async def test_recovery_replays_missed_events_before_connect() -> None:
    server = TestServer(recovery=10)
    await server.start()
    sio = fastsio.AsyncClient(reconnection_delay=0.05, randomization_factor=0)
    got: list[tuple[Any, ...]] = []
    connects: list[tuple[bool, int]] = []
    sio.on("feed", lambda *a: got.append(a))
    sio.on("connect", lambda: connects.append((sio.recovered, len(got))))
    try:
        await sio.connect(server.url, transports=["websocket"])
        sid = sio.get_sid()
        for i in range(3):
            await server.emit("feed", i)
        await until(lambda: len(got) == 3)
        server.drop()
        await until(lambda: not sio.connected)
        for i in range(3, 6):
            await server.emit("feed", i)  # missed: nobody is connected
        await until(lambda: len(connects) == 2)
        await server.emit("feed", 6)
        await until(lambda: len(got) == 7)
        assert [a[0] for a in got] == list(range(7))
        assert all(isinstance(a[1], str) for a in got)  # the offset, passed on
        assert connects == [(False, 0), (True, 6)]  # replayed before `connect`
        assert sio.get_sid() == sid and server.recovered(sid)
        assert server.stats.recoveries == 1
    finally:
        await sio.disconnect()
        await server.stop()


async def test_firehose_paced_stream_delivers_every_event_in_order_then_done() -> None:
    from fastsio.testing import FirehoseServer

    got: list[Any] = []
    done: list[Any] = []
    async with FirehoseServer(count=120, payload=None, rate=2000) as server:
        sio = client()
        sio.on("tick", lambda *args: got.append(args))
        sio.on("done", done.append)
        async with connected(sio, server.url, transports=["websocket"]):
            await until(lambda: done, what="the done event")
    assert done == [120] and len(got) == 120
    assert server.stats.events_sent == 120


def test_firehose_refuses_a_rate_that_is_not_positive() -> None:
    from fastsio.testing import FirehoseServer

    for bad in (0, -5.0):
        with pytest.raises(ValueError, match="rate must be > 0"):
            FirehoseServer(count=10, rate=bad)
