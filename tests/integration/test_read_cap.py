"""The read cap (``max_read_size``): no single socket read larger than the cap, nothing lost.

picows grows its read buffer whenever a read fills it; ``fastsio._ext._core.ReadCap`` sits in
front of picows's protocol and slices the buffer it offers, so a firehose that outruns the
handlers cannot grow the buffer (and the copy held while reading is paused) without bound.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

import fastsio
from fastsio._ext._core import ReadCap
from fastsio.testing import TestServer

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from support.aio import until  # noqa: E402

pytestmark = pytest.mark.timeout(60)


class _Inner(asyncio.BufferedProtocol):
    """Records what the wrapper forwards."""

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.calls: list[tuple[str, Any]] = []

    def get_buffer(self, sizehint: int) -> memoryview:
        self.calls.append(("get_buffer", sizehint))
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.calls.append(("buffer_updated", nbytes))

    def connection_made(self, transport: Any) -> None:
        self.calls.append(("connection_made", transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("connection_lost", exc))

    def eof_received(self) -> bool | None:
        self.calls.append(("eof_received", None))
        return True

    def pause_writing(self) -> None:
        self.calls.append(("pause_writing", None))

    def resume_writing(self) -> None:
        self.calls.append(("resume_writing", None))


def test_read_cap_slices_large_buffers_and_forwards_everything() -> None:
    inner = _Inner(100_000)
    cap = ReadCap(inner, 8192)
    assert isinstance(cap, asyncio.BufferedProtocol)
    mv = cap.get_buffer(-1)
    assert len(mv) == 8192
    mv[:3] = b"abc"  # writes land in the inner protocol's buffer
    assert inner.buf[:3] == b"abc"
    cap.buffer_updated(3)
    exc = ConnectionResetError()
    cap.connection_made("t")
    assert cap.eof_received() is True
    cap.pause_writing()
    cap.resume_writing()
    cap.connection_lost(exc)
    assert inner.calls == [
        ("get_buffer", -1),
        ("buffer_updated", 3),
        ("connection_made", "t"),
        ("eof_received", None),
        ("pause_writing", None),
        ("resume_writing", None),
        ("connection_lost", exc),
    ]


def test_read_cap_hands_the_loops_arguments_on_as_they_are() -> None:
    # Once per socket read: no int converted and built again on the way to picows.
    inner = _Inner(100)
    cap = ReadCap(inner, 8192)
    hint, nbytes = int("65536"), int("70000")  # not among the interpreter's shared small ints
    cap.get_buffer(hint)
    cap.buffer_updated(nbytes)
    assert inner.calls[0][1] is hint
    assert inner.calls[1][1] is nbytes


def test_cap_zero_passes_whole_buffers_through() -> None:
    assert len(ReadCap(_Inner(100_000), 0).get_buffer(65536)) == 100_000


def test_read_cap_passes_small_buffers_through() -> None:
    inner = _Inner(5000)
    assert len(ReadCap(inner, 8192).get_buffer(65536)) == 5000


def test_read_cap_rejects_a_tiny_cap() -> None:
    with pytest.raises(ValueError):
        ReadCap(_Inner(10), 100)
    with pytest.raises(ValueError):
        fastsio.AsyncClient(max_read_size=100)


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
async def test_small_cap_delivers_everything_in_order(serializer: str) -> None:
    """Frames far larger than the cap and thousands of small ones, all in order."""
    server = TestServer(serializer=serializer)
    await server.start()
    sio = fastsio.AsyncClient(
        reconnection=False,
        serializer="msgpack" if serializer == "msgpack" else "default",
        max_read_size=4096,
    )
    seen: list[tuple[int, int]] = []
    sio.on("seq", lambda i, blob: seen.append((i, len(blob))))
    try:
        await sio.connect(server.url, transports=["websocket"])
        assert sio.eio is not None
        protocol = sio.eio._transport.ws.underlying_transport.get_protocol()
        assert isinstance(protocol, ReadCap) and protocol.cap == 4096
        sid = sio.get_sid()
        expected = []
        for i in range(3000):
            size = 300_000 if i % 500 == 7 else 1000 + i % 3000
            expected.append((i, size))
            await server.emit("seq", (i, "x" * size), to=sid)
        await until(lambda: len(seen) == len(expected), timeout=30)
        assert seen == expected
    finally:
        await sio.disconnect()
        await server.stop()


async def test_cap_zero_leaves_picows_reads_uncapped() -> None:
    server = TestServer()
    await server.start()
    sio = fastsio.AsyncClient(reconnection=False, max_read_size=0)
    got: list[Any] = []
    sio.on("x", got.append)
    try:
        await sio.connect(server.url, transports=["websocket"])
        assert sio.eio is not None
        # ReadCap stays in front (it stops reading after a CLOSE), but caps nothing.
        protocol = sio.eio._transport.ws.underlying_transport.get_protocol()
        assert isinstance(protocol, ReadCap) and protocol.cap == 0
        await server.emit("x", 1, to=sio.get_sid())
        await until(lambda: got == [1])
    finally:
        await sio.disconnect()
        await server.stop()
