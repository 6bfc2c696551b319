"""A scriptable hostile Engine.IO server: handshakes like a real one, then sends what it is told.

    server = HostileServer(script=[b"42[\\"ok\\",1]", b"2{broken"])
    await server.start()
    ... client connects to server.url ...

``open_packet`` replaces the Engine.IO open packet (bytes sent as one text frame, ``None`` for
a sane one). ``script`` is sent right after the client's Socket.IO CONNECT for ``/`` is
answered: each item is ``bytes`` (a text frame) or ``("binary", bytes)`` (a binary frame).
Later connections (reconnects) get ``script_after`` (default: nothing), so a test can check
that the client recovers from the hostile first session. With ``close_after_script`` the first
session's WebSocket is closed right behind its script, in the same write.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

Frame = bytes | tuple[str, bytes]


class _Conn(WSListener):  # type: ignore[misc]
    def __init__(self, server: HostileServer) -> None:
        super().__init__()
        self.server = server
        self.index = server.connections
        server.connections += 1

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        open_packet = self.server.open_packet if self.index == 0 else None
        if open_packet is None:
            open_packet = b"0" + orjson.dumps({
                "sid": f"s{self.index}", "upgrades": [], "pingInterval": 25000,
                "pingTimeout": 20000, "maxPayload": 1000000})
        transport.send(WSMsgType.TEXT, open_packet)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            # socket.io-msgpack-parser: the CONNECT is a msgpack map in a binary frame.
            packet = msgpack.unpackb(frame.get_payload_as_bytes())
            if isinstance(packet, dict) and packet.get("type") == 0:
                reply = {"type": 0, "nsp": packet.get("nsp", "/"),
                         "data": {"sid": f"n{self.index}"}}
                transport.send(WSMsgType.BINARY, msgpack.packb(reply))
                self._send_script(transport)
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        self.server.received.append(data)
        if data.startswith(b"40"):
            nsp = "/"
            if data.startswith(b"40/"):
                nsp = data[2:].split(b",", 1)[0].decode()
            prefix = b"40" if nsp == "/" else b"40" + nsp.encode() + b","
            transport.send(WSMsgType.TEXT, prefix + orjson.dumps({"sid": f"n{self.index}"}))
            self._send_script(transport)

    def _send_script(self, transport: WSTransport) -> None:
        script = self.server.script if self.index == 0 else self.server.script_after
        for item in script:
            if isinstance(item, tuple):
                transport.send(WSMsgType.BINARY, item[1])
            else:
                transport.send(WSMsgType.TEXT, item)
        if self.index == 0 and self.server.close_after_script:
            transport.send_close()
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server.disconnects += 1


class HostileServer:
    def __init__(self, script: list[Frame] | None = None, open_packet: bytes | None = None,
                 script_after: list[Frame] | None = None,
                 close_after_script: bool = False) -> None:
        self.script = script or []
        self.close_after_script = close_after_script
        self.script_after = script_after or []
        self.open_packet = open_packet
        self.connections = 0
        self.disconnects = 0
        self.received: list[bytes] = []
        self._server: Any = None

    async def start(self) -> None:
        self._server = await ws_create_server(lambda request: _Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
