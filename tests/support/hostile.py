"""A scriptable hostile Engine.IO server: handshakes like a real one, then sends what it is told.

    server = HostileServer(script=[b"42[\\"ok\\",1]", b"2{broken"])
    await server.start()
    ... client connects to server.url ...

``open_packet`` replaces the Engine.IO open packet (bytes sent as one text frame, ``None`` for
a sane one). ``script`` is sent right after the client's Socket.IO CONNECT for ``/`` is
answered: each item is ``bytes`` (a text frame), ``("binary", bytes)`` (a binary frame),
``("raw", bytes)`` (written to the socket as is: hand-made frame headers, see ``ws_header``) or
``("stream", chunks)`` (an iterable of raw byte chunks, written only while the client reads
them, until it is exhausted or the client is gone; ``server.streamed`` counts the bytes).
Later connections (reconnects) get ``script_after`` (default: nothing), so a test can check
that the client recovers from the hostile first session. With ``close_after_script`` the first
session's WebSocket is closed right behind its script, in the same write.

``HostilePollingServer`` does the same over HTTP long-polling: each script item is the body of
one poll response (``bytes``), ``("stream", chunks)`` (a chunked body written while the client
reads it) or ``("length", n)`` (a response announcing ``Content-Length: n`` that never comes).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any, TypeVar

import msgpack
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

Frame = bytes | tuple[str, Any]

#: Bytes a stream keeps queued in the server's transport at most (it waits for the client).
_STREAM_HIGH_WATER = 256 * 1024


def ws_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """A server frame header (unmasked) announcing ``length`` payload bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def open_packet(index: int) -> bytes:
    return b"0" + orjson.dumps({
        "sid": f"s{index}", "upgrades": [], "pingInterval": 25000,
        "pingTimeout": 20000, "maxPayload": 1000000})


class _Conn(WSListener):  # type: ignore[misc]
    def __init__(self, server: HostileServer) -> None:
        super().__init__()
        self.server = server
        self.index = server.connections
        server.connections += 1

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        packet = self.server.open_packet if self.index == 0 else None
        transport.send(WSMsgType.TEXT, packet if packet is not None else open_packet(self.index))

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

    def _send_script(self, transport: WSTransport, items: list[Frame] | None = None) -> None:
        script = items
        if script is None:
            script = self.server.script if self.index == 0 else self.server.script_after
        for i, item in enumerate(script):
            if not isinstance(item, tuple):
                transport.send(WSMsgType.TEXT, item)
            elif item[0] == "binary":
                transport.send(WSMsgType.BINARY, item[1])
            elif item[0] == "raw":
                transport.underlying_transport.write(item[1])
            elif item[0] == "stream":
                # The rest of the script follows the stream.
                task = asyncio.get_running_loop().create_task(
                    self._stream(transport, item[1], script[i + 1:]))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)
                return
            else:
                raise ValueError(f"unknown script item {item[0]!r}")
        self._close_if_asked(transport)

    async def _stream(self, transport: WSTransport, chunks: Iterable[bytes],
                      rest: list[Frame]) -> None:
        raw = transport.underlying_transport
        for chunk in chunks:
            while raw.get_write_buffer_size() > _STREAM_HIGH_WATER and not raw.is_closing():
                await asyncio.sleep(0.001)
            if raw.is_closing():
                return
            raw.write(chunk)
            self.server.streamed += len(chunk)
        if rest:
            self._send_script(transport, rest)
            return
        self._close_if_asked(transport)

    def _close_if_asked(self, transport: WSTransport) -> None:
        if self.index == 0 and self.server.close_after_script:
            transport.send_close()
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server.disconnects += 1


_S = TypeVar("_S", bound="_LoopbackServer")


class _LoopbackServer:
    """A scripted server on a free loopback port: ``start``/``stop``, ``url``, and ``async
    with`` for both."""

    port: int

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class HostileServer(_LoopbackServer):
    def __init__(self, script: list[Frame] | None = None, open_packet: bytes | None = None,
                 script_after: list[Frame] | None = None,
                 close_after_script: bool = False) -> None:
        self.script = script or []
        self.close_after_script = close_after_script
        self.script_after = script_after or []
        self.open_packet = open_packet
        self.connections = 0
        self.disconnects = 0
        self.streamed = 0
        self.received: list[bytes] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: Any = None

    async def start(self) -> None:
        self._server = await ws_create_server(lambda request: _Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class HostilePollingServer(_LoopbackServer):
    """An Engine.IO v4 long-polling server whose poll responses are scripted (see above)."""

    def __init__(self, script: list[Frame] | None = None,
                 script_after: list[Frame] | None = None) -> None:
        self.script = script or []
        self.script_after = script_after or []
        self.connections = 0
        self.streamed = 0
        self.received: list[bytes] = []
        self._queues: dict[str, asyncio.Queue[Frame]] = {}
        self._closing = asyncio.Event()
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/socket.io/", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        sid = request.query.get("sid")
        if sid is None:
            index = self.connections
            self.connections += 1
            self._queues[f"s{index}"] = asyncio.Queue()
            return web.Response(body=open_packet(index), content_type="text/plain")
        queue = self._queues.get(sid)
        if queue is None:
            return web.Response(status=400)
        if request.method == "POST":
            body = await request.read()
            self.received.append(body)
            for packet in body.split(b"\x1e"):
                if packet.startswith(b"40"):
                    queue.put_nowait(b"40" + orjson.dumps({"sid": "n" + sid}))
                    script = self.script if sid == "s0" else self.script_after
                    for item in script:
                        queue.put_nowait(item)
            return web.Response(body=b"ok", content_type="text/plain")
        getter = asyncio.ensure_future(queue.get())
        closing = asyncio.ensure_future(self._closing.wait())
        await asyncio.wait([getter, closing], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if not getter.done():
            getter.cancel()
            return web.Response(body=b"6", content_type="text/plain")
        item = getter.result()
        if isinstance(item, bytes):
            return web.Response(body=item, content_type="text/plain")
        if item[0] == "length":
            response = web.StreamResponse(headers={"Content-Length": str(item[1])})
            await response.prepare(request)
            await response.write(b"4")
            try:  # the client must not wait for the rest
                await asyncio.wait_for(self._closing.wait(), 30)
            except asyncio.TimeoutError:
                pass
            return response
        assert item[0] == "stream", item
        response = web.StreamResponse()
        response.content_type = "text/plain"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for chunk in item[1]:
                await response.write(chunk)  # waits while the client does not read
                self.streamed += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

