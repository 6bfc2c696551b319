"""Links that fail at their edges: frames in the handshake's own read, a POST failing during the
upgrade's flush, a disconnect() cancelled while the write buffer drains.

A server may write its first frames in the same TCP write as its answer to the WebSocket
upgrade (Node's engine.io writes the open packet right behind the 101): picows then reads them
before ``ws_connect`` returns, while the transport does not know its link yet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

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


async def test_failed_post_while_the_upgrade_drains_polling_ends_the_session(
    node_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upgrade POSTs what is queued for polling before it switches links. When that POST
    # fails, its packets are gone (taken out of the outbox): the session must end as when the
    # POST loop fails (engine.io-client closes the socket), so that the call waiting for its
    # ack fails with DisconnectedError, instead of staying on polling with the packet lost and
    # the call left waiting for an ack that never comes.
    import aiohttp

    from fastsio.engine import EngineIO
    from fastsio.transports.polling import PollingTransport

    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    armed: list[bool] = []
    calls: list[asyncio.Future[Any]] = []
    upgrade, drain, post = EngineIO._upgrade, PollingTransport.drain, PollingTransport._post

    async def upgrade_once_connected(self: EngineIO) -> None:
        while not sio.connected:  # the namespace first, so that the call below is sent
            await asyncio.sleep(0.01)
        await upgrade(self)

    async def drain_with_a_call_queued(self: PollingTransport) -> None:
        # The POST loop stops first (drain() waits for it: other tasks run meanwhile); a call
        # made then is left in the outbox for drain()'s own POST.
        await self._stop_post_loop()
        calls.append(asyncio.ensure_future(sio.call("ack", 7, timeout=60)))
        await asyncio.sleep(0)  # the call's packet is in the polling outbox now
        armed.append(True)
        await drain(self)

    async def post_failing_once(self: PollingTransport, records: list[bytes]) -> None:
        if armed:
            armed.clear()
            raise aiohttp.ClientOSError(104, "connection reset by peer (test)")
        await post(self, records)

    monkeypatch.setattr(EngineIO, "_upgrade", upgrade_once_connected)
    monkeypatch.setattr(PollingTransport, "drain", drain_with_a_call_queued)
    monkeypatch.setattr(PollingTransport, "_post", post_failing_once)
    reasons: list[str] = []
    sio.on("disconnect", lambda reason: reasons.append(reason))
    await sio.connect(server.url, transports=["polling", "websocket"])
    try:
        while not calls:
            await asyncio.sleep(0.01)
        with pytest.raises(exceptions.DisconnectedError):
            await asyncio.wait_for(calls[0], 30)  # 60 s ack timeout: far longer than a loss
        assert reasons == ["transport error"]
    finally:
        await sio.disconnect()


async def test_cancelled_disconnect_still_tears_the_session_down(
    node_server: Any, fault_proxy: Any
) -> None:
    # disconnect() over WebSocket waits (up to request_timeout) for the write buffer to reach
    # the server. When that wait is cancelled (the caller's own timeout), the session must
    # still be torn down: link aborted, core detached, no watchdog left; before the wait
    # existed nothing awaited between the CLOSE and the teardown.
    server = node_server()
    proxy = await fault_proxy(server)
    sio = fastsio.AsyncClient(reconnection=False, request_timeout=30)
    await sio.connect(proxy.url, transports=["websocket"])
    eio = sio.lifecycle.eio
    assert eio is not None
    proxy.freeze()  # a partition: what the client writes stays in its buffers

    # 30 MB sent at once (each emit writes before it waits for the buffer to drain): more
    # than the kernel's socket buffers and the frozen proxy's take, so the rest stays in the
    # transport's write buffer and the graceful close cannot finish.
    blob = "x" * 500_000
    flooding = [asyncio.ensure_future(sio.emit("echo", blob)) for _ in range(60)]
    raw = eio._transport.ws.underlying_transport
    try:
        while raw.get_write_buffer_size() < 10_000_000:
            await asyncio.sleep(0.01)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sio.disconnect(), 0.5)
        assert not sio.connected
        assert eio.state == "closed"
        assert sio._conn.writer is None  # the core no longer writes to that link
    finally:
        for task in flooding:
            task.cancel()
        await asyncio.gather(*flooding, return_exceptions=True)
        proxy.heal()


@pytest.mark.parametrize("stage", ["probing", "polling_stopped", "draining"])
async def test_disconnect_during_the_upgrade_delivers_what_was_emitted(
    node_server: Any, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Events emitted right before disconnect(), at each step of polling -> websocket, all
    # reach the server (over polling, or the websocket), and disconnect() returns.
    from fastsio.engine import EngineIO
    from fastsio.transports.polling import PollingTransport
    from fastsio.transports.websocket import WebSocketTransport

    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False)
    event = f"audit5_{stage}"
    closing: list[asyncio.Future[Any]] = []
    upgrade = EngineIO._upgrade

    async def upgrade_once_connected(self: EngineIO) -> None:
        while not sio.connected:
            await asyncio.sleep(0.01)
        await upgrade(self)

    def emit_then_disconnect() -> None:
        if closing:
            return
        for i in range(20):
            sio._emit(event, i, None, None, None, False, None)
        closing.append(asyncio.ensure_future(sio.disconnect()))

    def after(cls: Any, name: str, when: str) -> None:
        original = getattr(cls, name)

        async def wrapped(self: Any, *args: Any) -> Any:
            if stage == when:
                emit_then_disconnect()
            return await original(self, *args)

        monkeypatch.setattr(cls, name, wrapped)

    monkeypatch.setattr(EngineIO, "_upgrade", upgrade_once_connected)
    after(WebSocketTransport, "probe", "probing")
    after(PollingTransport, "stop_polling", "polling_stopped")
    after(PollingTransport, "drain", "draining")
    await sio.connect(server.url, transports=["polling", "websocket"])
    while not closing:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(closing[0], 20)
    assert not sio.connected

    probe = fastsio.AsyncClient(reconnection=False)
    await probe.connect(server.url)
    try:
        counts = await probe.call("server_counts", timeout=5)
    finally:
        await probe.disconnect()
    assert counts["events"].get(event) == 20
