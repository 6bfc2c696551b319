"""The core scenarios against Socket.IO 2.5 (Engine.IO 3), 3.1, and 4.8 with ``allowEIO3``.

Each scenario runs per server, on WebSocket, polling and the upgrade, on both loops. The client
negotiates (``eio_version=None``) except against 4.8 + allowEIO3, where Engine.IO 3 is forced so
that the v3 client runs against a second server implementation.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from support.aio import EventLog, connected_sync, until

import fastsio
from fastsio.eio3 import Protocol

pytestmark = pytest.mark.timeout(90)

V2 = Protocol(3, 4)
V5 = Protocol(4, 5)

SERVERS = [
    pytest.param(({"server_version": 2}, None, V2), id="sio2.5"),
    pytest.param(({"server_version": 3}, None, V5), id="sio3.1"),
    pytest.param(({"server_version": 4, "allow_eio3": True}, 3, V2), id="sio4.8-eio3"),
]
TRANSPORTS = [
    pytest.param(["websocket"], id="websocket"),
    pytest.param(["polling"], id="polling"),
    pytest.param(["polling", "websocket"], id="upgrade"),
]

ALL_KINDS = (
    "text ✓ 😀",
    -(2**53),
    1.5,
    True,
    None,
    [1, "two", [3.25, False], {"k": None}],
    {"nested": {"list": [1, 2], "s": "x"}},
    b"\x00\x01\xffbinary",
    {"blob": b"\x04inside", "list": [b"", b"\x00"]},
)


@dataclass
class Legacy:
    """One of SERVERS: its peer, the client's ``eio_version`` and the protocol expected."""

    node_server: Any
    server_opts: dict[str, Any]
    eio_version: int | None
    expected: Protocol

    def start(self, **opts: Any) -> Any:
        return self.node_server(**self.server_opts, **opts)

    def client(self, **options: Any) -> fastsio.AsyncClient:
        """A client speaking this server's version; no reconnection unless ``options`` say."""
        options = {"reconnection": False, **options}
        return fastsio.AsyncClient(eio_version=self.eio_version, **options)

    def started(self, *events: str, **options: Any) -> tuple[Any, fastsio.AsyncClient, EventLog]:
        """A server started, a ``client(**options)`` for it, and a log of its ``events``."""
        sio = self.client(**options)
        return self.start(), sio, EventLog.of(sio, *events)


@pytest.fixture(params=SERVERS)
def legacy(request: pytest.FixtureRequest, node_server: Any) -> Legacy:
    return Legacy(node_server, *request.param)


@pytest.fixture(params=TRANSPORTS)
def transports(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


async def _connect(
    sio: fastsio.AsyncClient, server: Any, transports: list[str], **kwargs: Any
) -> None:
    """Connect on ``transports`` and, for the upgrade, wait until it is done."""
    await sio.connect(server.url, transports=transports, **kwargs)
    if transports == ["polling", "websocket"]:
        await until(lambda: sio.transport() == "websocket", 10, "the upgrade")


async def test_connect_speaks_the_servers_protocol(legacy: Legacy, transports: list[str]) -> None:
    server, sio, log = legacy.started()
    sio.on("connect", log.handler("connect"))
    sio.on("connect", log.handler("connect_chat"), namespace="/chat")
    await _connect(sio, server, transports, namespaces=["/", "/chat"])
    assert sio.protocol == legacy.expected
    assert log.count("connect") == 1 and log.count("connect_chat") == 1
    assert sio.get_sid("/") and sio.get_sid("/chat")
    query = await sio.call("query", timeout=5)
    assert query["EIO"] == str(legacy.expected.engineio)
    assert await sio.call("recovered", timeout=5) is False
    await sio.disconnect()
    assert not sio.connected


async def test_events_with_every_argument_kind_round_trip(
    legacy: Legacy, transports: list[str]
) -> None:
    server, sio, log = legacy.started()
    sio.on("echo", log.handler("echo"))
    sio.on("echo", log.handler("echo_chat"), namespace="/chat")
    sio.on("*", lambda event, *args: log.record("any", event, *args), namespace="/chat")
    await _connect(sio, server, transports, namespaces=["/", "/chat"])
    for value in ALL_KINDS:
        await sio.emit("echo", value)
    await sio.emit("echo", ALL_KINDS)
    await sio.emit("echo", ("several", b"\x01", 3), namespace="/chat")
    await sio.emit("undeclared", "x", namespace="/chat")  # ignored by the server
    got = await log.wait("echo", len(ALL_KINDS) + 1, timeout=10)
    # None as `data` is no argument at all (python-socketio's rule).
    assert got == [(v,) if v is not None else () for v in ALL_KINDS] + [ALL_KINDS]
    assert await log.wait("echo_chat") == [("several", b"\x01", 3)]
    # The catch-all of /chat sees events without a handler of their own; 'echo' has one.
    await sio.emit("emit_named", ("free", ["a", b"\x02"], False), namespace="/chat")
    assert (await log.wait("any")) == [("free", "a", b"\x02")]
    await sio.disconnect()


async def test_acks_both_ways_with_binary(legacy: Legacy, transports: list[str]) -> None:
    server, sio, log = legacy.started()

    @sio.on("question", namespace="/chat")
    async def question(payload: Any) -> Any:
        return ("answer to", payload, b"\xfe\xff")

    sio.on("answer", log.handler("answer"), namespace="/chat")
    await _connect(sio, server, transports, namespaces=["/", "/chat"])
    args = ("x", b"\x00\x01", {"b": b"\x02"}, [1, None])
    assert await sio.call("ack", args, timeout=5) == args
    assert await sio.call("ack", b"\x07", namespace="/chat", timeout=5) == b"\x07"
    results: list[Any] = []
    await sio.emit("ack", (1, 2), callback=lambda *a: results.append(a))
    await until(lambda: results, 5, "the ack callback")
    assert results == [(1, 2)]
    await sio.emit("ask", {"q": b"\x03"}, namespace="/chat")
    assert await log.wait("answer") == [(["answer to", {"q": b"\x03"}, b"\xfe\xff"],)]
    await sio.disconnect()


async def test_binary_stream_from_the_server_arrives_in_order(
    legacy: Legacy, transports: list[str]
) -> None:
    server = legacy.start()
    sio = legacy.client()
    got: list[tuple[int, bytes]] = []
    sio.on("bin_tick", lambda seq, blob: got.append((seq, blob)))
    await _connect(sio, server, transports)
    assert await sio.call("burst_binary", 300, timeout=10) == 300
    await until(lambda: len(got) == 300, 10, "300 bin_tick")
    assert got == [(i, i.to_bytes(4, "big")) for i in range(300)]
    await sio.disconnect()


async def test_auth_reaches_every_namespace(legacy: Legacy, transports: list[str]) -> None:
    server = legacy.start()
    sio = legacy.client()
    await sio.connect(
        server.url,
        transports=transports,
        namespaces=["/", "/chat", "/private"],
        auth={"token": "secret"},
    )
    for nsp in ("/", "/chat", "/private"):
        assert (await sio.call("auth", namespace=nsp, timeout=5))["token"] == "secret"
    await sio.disconnect()


async def test_refusals_surface_as_connect_error(legacy: Legacy, transports: list[str]) -> None:
    server = legacy.start()
    sio = legacy.client()
    errors = EventLog()
    sio.on("connect_error", errors.handler("private"), namespace="/private")
    sio.on("connect_error", errors.handler("nowhere"), namespace="/nowhere")
    with pytest.raises(fastsio.exceptions.ConnectionError, match="/private"):
        await sio.connect(
            server.url, transports=transports, namespaces=["/private"], auth={"token": "bad"}
        )
    with pytest.raises(fastsio.exceptions.ConnectionError, match="/nowhere"):
        await sio.connect(server.url, transports=transports, namespaces=["/nowhere"])
    if legacy.expected == V2:
        # Socket.IO protocol v4: ERROR packets carry err.data (or err.message) as they are,
        # from 2.5 and from 4.8 to an Engine.IO 3 client alike.
        assert errors.events["private"] == [({"reason": "bad token"},)]
        # An unknown namespace: 2.5 sends a string, 4.8 its usual object.
        nowhere = (
            "Invalid namespace" if legacy.eio_version is None else {"message": "Invalid namespace"}
        )
        assert errors.events["nowhere"] == [(nowhere,)]
    else:
        assert errors.events["private"] == [
            ({"message": "unauthorized", "data": {"reason": "bad token"}},)
        ]
        assert errors.events["nowhere"] == [({"message": "Invalid namespace"},)]
    assert not sio.connected


async def test_server_disconnect_is_final(legacy: Legacy, transports: list[str]) -> None:
    server, sio, log = legacy.started(reconnection=True, reconnection_delay=0.05)
    sio.on("disconnect", log.handler("disconnect"), namespace="/chat")
    sio.on("disconnect", log.handler("disconnect_root"))
    await _connect(sio, server, transports, namespaces=["/", "/chat"])
    await sio.emit("disconnect_me", namespace="/chat")
    assert await log.wait("disconnect") == [("io server disconnect",)]
    assert sio.connected and "/chat" not in sio.namespaces
    with pytest.raises(fastsio.exceptions.BadNamespaceError):
        await sio.emit("echo", 1, namespace="/chat")
    assert await sio.call("ack", "still", timeout=5) == "still"
    await sio.disconnect()
    assert log.events["disconnect_root"] == [("io client disconnect",)]


async def test_reconnects_after_a_server_restart_in_the_same_protocol(
    legacy: Legacy, transports: list[str]
) -> None:
    server, sio, log = legacy.started(
        "disconnect", "reconnect", reconnection=True, reconnection_delay=0.05,
        reconnection_delay_max=0.2,
    )
    await _connect(sio, server, transports, namespaces=["/", "/chat"])
    await server.arestart()
    await log.wait("reconnect", timeout=20)
    assert log.events["disconnect"][0][0] in ("transport close", "transport error")
    assert sio.protocol == legacy.expected
    assert await sio.call("ack", "back", namespace="/chat", timeout=5) == "back"
    await sio.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_heartbeat_keeps_the_link_then_detects_a_frozen_one(
    legacy: Legacy, transports: list[str], fault_proxy: Any
) -> None:
    server = legacy.start(ping_interval=150, ping_timeout=300)
    proxy = await fault_proxy(server)
    sio = legacy.client()
    log = EventLog()
    sio.on("disconnect", log.handler("disconnect"))
    await sio.connect(proxy.url, transports=transports)
    assert sio.protocol == legacy.expected
    await asyncio.sleep(1.2)  # eight ping rounds: a missed ping or pong would end the session
    assert sio.connected and log.count("disconnect") == 0
    assert await sio.call("ack", 1, timeout=5) == 1
    proxy.freeze()
    assert await log.wait("disconnect", timeout=10) == [("ping timeout",)]


async def test_forcing_engineio_4_on_a_2x_server_is_refused_clearly(node_server: Any) -> None:
    server = node_server(server_version=2)
    for transports in (["websocket"], ["polling"]):
        sio = fastsio.AsyncClient(eio_version=4, reconnection=False)
        with pytest.raises(fastsio.exceptions.ProtocolVersionError, match="2.x") as info:
            await sio.connect(server.url, transports=transports)
        assert info.value.server_version == 3
        assert not sio.connected


async def test_forcing_engineio_3_on_a_4x_server_without_allow_eio3_fails(
    node_server: Any,
) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(eio_version=3, reconnection=False)
    with pytest.raises(fastsio.exceptions.ConnectionError, match="400"):
        await sio.connect(server.url)


async def test_negotiation_prefers_engineio_4_where_both_are_spoken(node_server: Any) -> None:
    server = node_server(allow_eio3=True)
    sio = fastsio.AsyncClient()
    await sio.connect(server.url)
    assert sio.protocol == V5
    assert (await sio.call("query", timeout=5))["EIO"] == "4"
    await sio.disconnect()


async def test_negotiated_version_is_remembered_across_reconnections(
    node_server: Any,
) -> None:
    server = node_server(server_version=2)
    sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)
    log = EventLog()
    sio.on("reconnect", log.handler("reconnect"))
    await sio.connect(server.url, transports=["websocket"])
    assert sio.protocol == V2
    versions: list[int] = []
    original = sio._connector.connect_version

    async def spy(version: int, wait: bool) -> None:
        versions.append(version)
        await original(version, wait)

    sio._connector.connect_version = spy  # type: ignore[method-assign]
    await server.arestart()
    await log.wait("reconnect", timeout=20)
    assert versions and set(versions) == {3}
    await sio.disconnect()


@pytest.mark.parametrize(
    ("server_version", "expected"),
    [pytest.param(2, V2, id="sio2.5-msgpack2"), pytest.param(3, V5, id="sio3.1-msgpack3")],
)
async def test_msgpack_events_acks_and_namespaces(
    node_server: Any, transports: list[str], server_version: int, expected: Protocol
) -> None:
    # socket.io-msgpack-parser 2.x on 2.5 (CONNECT/DISCONNECT/ERROR as JSON text, the rest
    # msgpack), 3.x on 3.1; the parser's major must match the server's on any client.
    server = node_server(server_version=server_version, parser="msgpack")
    sio = fastsio.AsyncClient(serializer="msgpack", reconnection=False)
    log = EventLog()
    sio.on("echo", log.handler("echo"), namespace="/private")
    errors = EventLog()
    sio.on("connect_error", errors.handler("nowhere"), namespace="/nowhere")
    await _connect(sio, server, transports, namespaces=["/", "/private"], auth={"token": "secret"})
    assert sio.protocol == expected
    args = ("x", b"\x00\x01", {"b": b"\x02", "n": [1.5, None, True]})
    assert await sio.call("ack", args, namespace="/private", timeout=5) == args
    await sio.emit("echo", args, namespace="/private")
    assert await log.wait("echo") == [args]
    assert await sio.call("burst_binary", 50, timeout=5) == 50
    await sio.disconnect()
    with pytest.raises(fastsio.exceptions.ConnectionError, match="/nowhere"):
        await sio.connect(server.url, transports=transports, namespaces=["/nowhere"])
    assert errors.count("nowhere") == 1


async def test_rooms_and_a_namespace_without_the_default_one(
    legacy: Legacy, transports: list[str]
) -> None:
    # A 2.x server connects "/" whether or not it is asked for; the client only uses /chat.
    server, sio, log = legacy.started()
    sio.on("room_msg", log.handler("room_msg"), namespace="/chat")
    await _connect(sio, server, transports, namespaces=["/chat"])
    assert sio.protocol == legacy.expected and list(sio.namespaces) == ["/chat"]
    assert await sio.call("join", "r1", namespace="/chat", timeout=5) is True
    await sio.emit("to_room", ("r1", b"\x01", "two"), namespace="/chat")
    assert await log.wait("room_msg") == [("r1", b"\x01", "two")]
    assert await sio.call("leave", "r1", namespace="/chat", timeout=5) is True
    await sio.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_emits_while_reconnecting_are_delivered_after_the_restart(
    legacy: Legacy, transports: list[str]
) -> None:
    server, sio, log = legacy.started(
        "disconnect", "echo", reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5
    )
    await sio.connect(server.url, transports=transports)
    await server.astop()
    await log.wait("disconnect", timeout=10)
    results: list[Any] = []
    for i in range(5):
        await sio.emit("echo", i)
    await sio.emit("ack", "buffered", callback=lambda *a: results.append(a), timeout=20)
    await server.astart()
    assert await log.wait("echo", 5, timeout=20) == [(i,) for i in range(5)]
    await until(lambda: results, 10, "the buffered call's ack")
    assert results == [(None, "buffered")]
    assert sio.protocol == legacy.expected
    await sio.disconnect()


async def test_a_2x_servers_own_polling_bytes_decode_as_engineio_3(node_server: Any) -> None:
    # Bytes off the real 2.5 server: the handshake response (open packet and its own CONNECT
    # of "/"), then a binary event as a `b4` record, fetched the way the client fetches them.
    import aiohttp

    from fastsio._ext._core import (
        decode_eio3_payload,
        decode_packet,
        encode_eio3_payload,
        looks_like_eio3_payload,
    )

    server = node_server(server_version=2)
    base = f"{server.url}/socket.io/?EIO=3&transport=polling&b64=1"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            body = await resp.text()
        assert looks_like_eio3_payload(body)
        packets = decode_eio3_payload(body)
        assert [t for t, _ in packets] == [0, 4] and packets[1][1] == "0"
        sid = json.loads(packets[0][1])["sid"]
        url = f"{base}&sid={sid}"
        request = encode_eio3_payload([(4, '2["burst_binary",1]')])
        assert request == '20:42["burst_binary",1]'
        async with http.post(url, data=request, headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 200
        async with http.get(url) as resp:
            body = await resp.text()
    packets = decode_eio3_payload(body)
    assert packets[0] == (4, '51-["bin_tick",0,{"_placeholder":true,"num":0}]')
    assert packets[1] == (4, b"\x00\x00\x00\x00")
    pkt = decode_packet(packets[0][1])
    assert (pkt.type, pkt.attachments) == (5, 1)


def test_sync_client_speaks_to_a_2x_server(node_server: Any) -> None:
    server = node_server(server_version=2)
    sio = fastsio.Client()
    with connected_sync(sio, server.url, namespaces=["/", "/chat"], auth={"token": "t"}):
        assert sio.protocol == V2
        assert sio.call("ack", ("a", b"\x01"), namespace="/chat", timeout=5) == ("a", b"\x01")
        assert sio.call("auth", timeout=5) == {"token": "t"}


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_connect_without_waiting_still_negotiates(
    node_server: Any, transports: list[str]
) -> None:
    server = node_server(server_version=2)
    sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)
    log = EventLog()
    sio.on("connect", log.handler("connect"), namespace="/chat")
    await sio.connect(server.url, transports=transports, namespaces=["/chat"], wait=False)
    await log.wait("connect", timeout=10)
    assert sio.protocol == V2
    assert await sio.call("ack", "ok", namespace="/chat", timeout=5) == "ok"
    await sio.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_a_2x_server_refusing_the_default_namespace_refuses_every_namespace(
    node_server: Any, transports: list[str]
) -> None:
    # 2.5 connects "/" from the handshake's query, and no other namespace unless "/" is in.
    server = node_server(server_version=2, root_auth=True)
    sio = fastsio.AsyncClient(reconnection=False)
    errors = EventLog()
    sio.on("connect_error", errors.handler("chat"), namespace="/chat")
    with pytest.raises(fastsio.exceptions.ConnectionError, match="/chat"):
        await sio.connect(
            server.url, transports=transports, namespaces=["/chat"], auth={"token": "bad"}
        )
    assert errors.events["chat"] == [({"reason": "bad token"},)]
    await sio.connect(
        server.url, transports=transports, namespaces=["/chat"], auth={"token": "secret"}
    )
    assert sio.protocol == V2
    assert (await sio.call("auth", namespace="/chat", timeout=5))["token"] == "secret"
    await sio.disconnect()


async def test_a_v3_binary_frame_without_the_message_type_is_a_parse_error() -> None:
    # Engine.IO 3 binary frames start with 0x04 (message): the core checks and strips it.
    from support.hostile import HostileServer

    header = b'451-/chat,["ev",{"_placeholder":true,"num":0}]'
    script = [header, ("binary", b"\x04\x07"), header, ("binary", b"\x05\x01")]
    async with HostileServer(script=script) as server:
        sio = fastsio.AsyncClient(eio_version=3, reconnection=False)
        log = EventLog()
        sio.on("ev", log.handler("ev"), namespace="/chat")
        sio.on("disconnect", log.handler("disconnect"), namespace="/chat")
        await sio.connect(server.url, transports=["websocket"], namespaces=["/chat"])
        assert await log.wait("disconnect") == [("parse error",)]
        assert log.events["ev"] == [(b"\x07",)]
        assert any(r.startswith(b"40/chat,") for r in server.received)


async def test_batches_retries_timeouts_and_stats_work_the_same(legacy: Legacy) -> None:
    server = legacy.start()
    sio = legacy.client(retries=1, ack_timeout=1)
    batches: list[list[Any]] = []
    sio.on("tick", batches.append, batch=True)
    await sio.connect(server.url, transports=["websocket"])
    assert await sio.call("burst", 500, timeout=10) == 500
    await until(lambda: sum(len(b) for b in batches) == 500, 10, "500 ticks")
    assert [t for b in batches for t in b] == list(range(500))
    results: list[Any] = []
    await sio.emit("ack", "r", callback=lambda *a: results.append(a))
    await until(lambda: results, 10, "the retried emit's ack")
    assert results == [(None, "r")]
    # An event the server never acks: tried twice (ack_timeout each), then the caller is told.
    with pytest.raises(fastsio.exceptions.TimeoutError):
        await sio.call("unknown_event")
    stats = sio.stats()
    assert stats["events_received"] >= 500 and stats["packets_sent"] >= 3
    await sio.disconnect()
