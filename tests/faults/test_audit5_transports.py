"""Audit 5: the transports split out of engine.py (websocket.py, polling.py).

A server may write its first frames in the same TCP write as its answer to the WebSocket
upgrade (Node's engine.io writes the open packet right behind the 101): picows then reads them
before ``ws_connect`` returns, while the transport does not know its link yet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import orjson
import pytest
from support.aio import close_server
from support.hostile import open_packet, ws_header

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(60)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def text_frame(payload: bytes) -> bytes:
    return ws_header(0x1, len(payload)) + payload


class OneWriteServer:
    """Answers a WebSocket upgrade with the 101 and ``frames`` in ONE write, then reads what
    the client sends (``received``) until it closes (``closed`` is set)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.received = bytearray()
        self.closed = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> OneWriteServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await close_server(self.server, self.tasks)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            if not key:  # not an upgrade (a polling probe): refuse it
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                writer.close()
                return
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                + b"".join(self.frames)
            )
            while chunk := await reader.read(65536):
                self.received += chunk
        except asyncio.CancelledError:
            pass  # the test is over
        finally:
            self.closed.set()
            writer.close()


async def test_protocol_error_in_the_handshake_read_fails_the_connect() -> None:
    # The open packet, then a packet of an unknown Engine.IO type, in the 101's write: the
    # client must not go on with a link whose listener stopped reading at the bad frame (every
    # frame after it, the CONNECT reply and events included, would be silently ignored).
    frames = [text_frame(open_packet(0)), text_frame(b"9bad")]
    async with OneWriteServer(frames) as server:
        sio = fastsio.AsyncClient(reconnection=False, request_timeout=30)
        with pytest.raises(exceptions.ConnectionError):
            await sio.connect(server.url, transports=["websocket"], wait=False)
        assert not sio.connected
        await sio.disconnect()


async def test_bad_open_packet_in_the_handshake_read_fails_before_the_request_timeout() -> None:
    # A refused open packet in the 101's write ends the attempt as a parse error of that link,
    # not as "no open packet received" once request_timeout ran out (30 s here: the test's
    # own 60 s timeout would still pass a fixed-timeout wait, so the cause is checked).
    frames = [text_frame(b"0{}")]
    async with OneWriteServer(frames) as server:
        sio = fastsio.AsyncClient(reconnection=False, request_timeout=30)
        with pytest.raises(exceptions.ConnectionError) as info:
            await sio.connect(server.url, transports=["websocket"])
        assert "no Engine.IO open packet received" not in repr(info.value.__cause__)
