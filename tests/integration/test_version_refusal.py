"""A server that refuses the Engine.IO version asked for: the clear error when the version is
forced, the fall back to the other one when negotiating (``eio_version=None``).

Two refusals as real servers make them: Socket.IO 4.8 without ``allowEIO3`` refuses ``EIO=3``
(engine.io's HTTP 400 "Unsupported protocol version"; on a direct WebSocket it accepts the
upgrade first and writes that 400 into it), and python-engineio 3.x (python-socketio 4.x servers)
refuses ``EIO=4`` with HTTP 400 on polling and on the WebSocket upgrade request alike: that one
is played by ``VersionGate`` in front of the Node socket.io 2.5 peer, with its exact answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.aio import EventLog
from support.versiongate import VersionGate

import fastsio
from fastsio.eio3 import Protocol
from fastsio.handshake import version_refusal

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = [
    pytest.param(["websocket"], id="websocket"),
    pytest.param(["polling"], id="polling"),
    pytest.param(["polling", "websocket"], id="upgrade"),
    pytest.param(["websocket", "polling"], id="websocket-then-polling"),
]


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_forcing_engineio_3_on_a_4x_server_without_allow_eio3_says_it_is_refused(
    node_server: Any, transports: list[str]
) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(eio_version=3, reconnection=False)
    log = EventLog()
    sio.on("connect_error", log.handler("connect_error"))
    with pytest.raises(fastsio.exceptions.ProtocolVersionError) as info:
        await sio.connect(server.url, transports=transports)
    message = "the server refuses Engine.IO 3: Unsupported protocol version (HTTP 400)"
    assert str(info.value) == message
    assert info.value.server_version == 4
    assert log.events["connect_error"] == [(message,)]
    assert not sio.connected


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_negotiation_falls_back_to_engineio_3_when_the_server_refuses_4(
    node_server: Any, transports: list[str]
) -> None:
    server = node_server(server_version=2)
    async with VersionGate(server.port, refuse="4") as gate:
        sio = fastsio.AsyncClient(reconnection=False)
        await sio.connect(gate.url, transports=transports)
        assert sio.protocol == Protocol(3, 4)
        assert gate.seen == [("4", True), ("3", False)]
        assert await sio.call("ack", [1, "two"], timeout=5) == [1, "two"]
        await sio.disconnect()


async def test_negotiated_engineio_3_is_kept_for_the_reconnection(node_server: Any) -> None:
    server = node_server(server_version=2)
    async with VersionGate(server.port, refuse="4") as gate:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1)
        log = EventLog()
        sio.on("connect", log.handler("connect"))
        await sio.connect(gate.url, transports=["websocket"])
        await log.wait("connect")
        await sio.emit("close_transport")  # the server drops the link: the client reconnects
        await log.wait("connect", count=2, timeout=10)
        assert sio.protocol == Protocol(3, 4)
        # The reconnection went straight to Engine.IO 3: one refusal in all, at the start.
        assert gate.seen == [("4", True), ("3", False), ("3", False)]
        await sio.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_forcing_engineio_4_on_a_server_refusing_it_says_it_is_refused(
    node_server: Any, transports: list[str]
) -> None:
    server = node_server(server_version=2)
    async with VersionGate(server.port, refuse="4") as gate:
        sio = fastsio.AsyncClient(eio_version=4, reconnection=False)
        with pytest.raises(fastsio.exceptions.ProtocolVersionError) as info:
            await sio.connect(gate.url, transports=transports)
        assert "refuses Engine.IO 4" in str(info.value)
        assert "unsupported version of the Socket.IO or Engine.IO protocols" in str(info.value)
        assert info.value.server_version == 3
        assert gate.seen == [("4", True)]
        assert not sio.connected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code":5,"message":"Unsupported protocol version"}', "Unsupported protocol version"),
        (
            b'"The client is using an unsupported version of the Socket.IO or Engine.IO '
            b'protocols"',
            "The client is using an unsupported version of the Socket.IO or Engine.IO protocols",
        ),
        (b"Unsupported protocol version", "Unsupported protocol version"),
        (b'{"code":3,"message":"Bad request"}', None),
        (b'{"code":1,"message":"Session ID unknown"}', None),
        (b"", None),
        (b"\xff\xfe not even text", None),
    ],
)
def test_version_refusals_are_told_from_other_http_errors(body: bytes, message: str | None) -> None:
    assert version_refusal(body) == message


async def test_nothing_from_the_abandoned_engineio_4_attempt_reaches_the_handlers(
    node_server: Any,
) -> None:
    # A 2.x server accepts the Engine.IO 4 attempt as its own and starts talking at once (here
    # 20000 ticks to every client of "/"): what follows its unasked CONNECT on that attempt
    # belongs to a session the client abandons, and must not be dispatched.
    server = node_server(server_version=2, firehose=20000)
    sio = fastsio.AsyncClient(reconnection=False)
    ticks = 0
    log = EventLog()

    def tick(seq: Any) -> None:
        nonlocal ticks
        ticks += 1

    sio.on("tick", tick)
    sio.on("done", log.handler("done"))
    await sio.connect(server.url, transports=["websocket"])
    assert sio.protocol == Protocol(3, 4)
    assert await log.wait("done", timeout=20) == [(20000,)]
    assert ticks == 20000
    await sio.disconnect()


async def test_a_probe_the_server_accepts_ends_the_session_it_opened() -> None:
    # A server whose WebSocket handshake dies (closed mid-handshake) but whose polling works:
    # the refusal probe gets a session, finds no refusal, and closes that session at once.
    seen: list[tuple[str, bytes]] = []
    open_body = b'0{"sid":"probe-sid_1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        length = 0
        for header in head.split(b"\r\n"):
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        seen.append((line, body))
        if "transport=websocket" not in line:
            answer = b"ok" if line.startswith("POST") else open_body
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(answer), answer)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sio = fastsio.AsyncClient(reconnection=False, request_timeout=5)
        with pytest.raises(fastsio.exceptions.ConnectionError) as info:
            await sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        assert not isinstance(info.value, fastsio.exceptions.ProtocolVersionError)
        lines = [line.split(" ")[0] + (" ws" if "websocket" in line else "") for line, _ in seen]
        assert lines == ["GET ws", "GET", "POST"]
        post_line, post_body = seen[2]
        assert "sid=probe-sid_1" in post_line and post_body == b"1"
    finally:
        server.close()
        await server.wait_closed()
