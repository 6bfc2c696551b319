"""A polling session whose server breaks HTTP mid-session (fastsio's own HTTP client): the
session ends through the transport's hooks with a reason, never hangs, and the packets of the
responses before the broken one are all dispatched."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

import fastsio

OPEN = b"0" + orjson.dumps(
    {"sid": "s1", "upgrades": [], "pingInterval": 60000, "pingTimeout": 60000, "maxPayload": 100000}
)


#: As ``broken``: the second GET is never answered (a long-poll held open).
HANG = b"hang"


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


class RawPollingServer:
    """Engine.IO v4 over polling, by hand: the handshake, ``ok`` to every POST, the CONNECT
    answer and one event on the first GETs of the session, then ``broken`` (raw bytes,
    then the connection closed) on the next."""

    def __init__(self, broken: bytes) -> None:
        self.broken = broken
        self.gets = 0
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if head.startswith(b"POST"):
                    if body.startswith(b"40"):
                        self.connected.set()
                    writer.write(ok(b"ok"))
                elif b"sid=" not in head.split(b"\r\n")[0]:
                    writer.write(ok(OPEN))
                else:
                    await self.connected.wait()
                    self.gets += 1
                    if self.gets == 1:
                        writer.write(ok(b'40{"sid":"x"}\x1e42["tick",1]'))
                    elif self.broken == HANG:
                        await reader.read()  # the long-poll held until the client closes
                        return
                    else:
                        writer.write(self.broken)
                        await writer.drain()
                        return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n", "transport error"),
        (b"HTTP/9 200 OK\r\n\r\n", "transport error"),
        (b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n42["tick",2]', "transport error"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000, "transport error"),
        (ok(b""), "parse error"),  # a sound response with an empty payload
        (ok(b'42["tick",2]\x1e9junk'), "parse error"),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "transport error"),
    ],
)
async def test_a_broken_poll_response_ends_the_session_with_a_reason(
    broken: bytes, reason: str
) -> None:
    server = RawPollingServer(broken)
    await server.start()
    sio = fastsio.AsyncClient(reconnection=False)
    ticks: list[int] = []
    reasons: list[str] = []
    gone = asyncio.Event()
    sio.on("tick", ticks.append)

    @sio.on("disconnect")
    def disconnect(why: str) -> None:
        reasons.append(why)
        gone.set()

    try:
        await sio.connect(server.url, transports=["polling"])
        await asyncio.wait_for(gone.wait(), 30)  # a hang guard, far over a loss's time
    finally:
        await sio.disconnect()
        await server.stop()
    assert reasons == [reason]
    assert ticks[:1] == [1]


async def test_a_cut_poll_dispatches_its_whole_records_once_and_ends_the_session() -> None:
    # The body announces 80 bytes; two whole records and the start of a third come, then the
    # connection closes: the two are dispatched (once), the third is not, the session ends.
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n42["tick",2]\x1e42["tick",3]\x1e42["ti'
    server = RawPollingServer(cut)
    await server.start()
    sio = fastsio.AsyncClient(reconnection=False)
    ticks: list[int] = []
    reasons: list[str] = []
    gone = asyncio.Event()
    sio.on("tick", ticks.append)

    @sio.on("disconnect")
    def disconnect(why: str) -> None:
        reasons.append(why)
        gone.set()

    try:
        await sio.connect(server.url, transports=["polling"])
        await asyncio.wait_for(gone.wait(), 30)  # a hang guard, far over a loss's time
    finally:
        await sio.disconnect()
        await server.stop()
    assert reasons == ["transport error"]
    assert ticks == [1, 2, 3]
    assert server.gets == 2  # the cut GET was not sent again


async def test_disconnect_during_a_long_poll_leaves_no_socket_open() -> None:
    server = RawPollingServer(HANG)
    await server.start()
    fds = len(os.listdir("/proc/self/fd"))
    sio = fastsio.AsyncClient(reconnection=False)
    try:
        await sio.connect(server.url, transports=["polling"])
        for _ in range(1000):  # a hang guard of 10 s
            if server.gets == 2:
                break
            await asyncio.sleep(0.01)
        assert server.gets == 2  # the second GET is held by the server
        await sio.disconnect()
        # Both ends of every connection closed (the server's once it reads the client's close).
        for _ in range(1000):
            if len(os.listdir("/proc/self/fd")) <= fds:
                break
            await asyncio.sleep(0.01)
        assert len(os.listdir("/proc/self/fd")) <= fds
    finally:
        await sio.disconnect()
        await server.stop()
