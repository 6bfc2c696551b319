"""The coalescing WebSocket send path (FrameWriter): order, one write per loop turn, a lone
frame not delayed beyond the turn, CLOSE after everything queued, backpressure.

A picows server in the test records the frames it receives (unmasked by picows, so a wrong
mask or length shows as a wrong payload or a protocol error).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
    ws_create_server,
)
from support.core_fakes import CoreRecorder

from fastsio._ext._core import ACK, EVENT, Dispatcher, EngineListener, encode_msgpack
from fastsio.delivery import args_of
from fastsio.exceptions import DisconnectedError, PayloadTooLargeError


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Blob:
    data: bytes


class Kind(enum.Enum):
    RAW = b"raw"


pytestmark = pytest.mark.timeout(60)


class Recorder(WSListener):  # type: ignore[misc]
    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.server.transport = transport
        if self.server.paused:
            transport.underlying_transport.pause_reading()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.server.closed_after = len(self.server.frames)
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        self.server.frames.append((frame.msg_type, frame.get_payload_as_bytes()))
        if self.server.waiter is not None and len(self.server.frames) >= self.server.want:
            if not self.server.waiter.done():
                self.server.waiter.set_result(None)


class Server:
    def __init__(self, paused: bool = False) -> None:
        self.frames: list[tuple[Any, bytes]] = []
        self.transport: WSTransport | None = None
        self.closed_after: int | None = None
        self.paused = paused
        self.waiter: asyncio.Future[None] | None = None
        self.want = 0
        self.url = ""

    async def received(self, n: int, timeout: float = 20) -> list[tuple[Any, bytes]]:
        self.want = n
        self.waiter = asyncio.get_running_loop().create_future()
        if len(self.frames) >= n:
            self.waiter.set_result(None)
        await asyncio.wait_for(self.waiter, timeout)
        return self.frames


async def _start(paused: bool = False) -> tuple[Any, Server]:
    server = Server(paused)
    srv = await ws_create_server(lambda _req: Recorder(server), "127.0.0.1", 0)
    server.url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    return srv, server


@pytest.fixture
async def link() -> AsyncIterator[tuple[Dispatcher, Any, Server]]:
    srv, server = await _start()
    conn = Dispatcher(CoreRecorder(fail_on=("on_handler_error",)))
    transport, _ = await ws_connect(lambda: EngineListener(conn, CoreRecorder()), server.url)
    conn.attach_websocket(transport)
    yield conn, transport, server
    conn.detach_transport()
    transport.disconnect(False)
    srv.close()


async def test_frames_of_one_loop_turn_go_out_in_one_write_in_order(link: Any) -> None:
    conn, _, server = link
    conn.send_packet(EVENT, "/", ["a", 1])
    conn.feed_text(b"2")  # a server ping, answered by the core in between
    conn.send_packet(ACK, "/", ["ok"], 7)
    conn.send_packet(EVENT, "/chat", ["b", {"x": [1, 2]}])
    conn.feed_text(b"2probe")
    conn.send_eio(b"4" + b"2" + b'["c","' + b"y" * 300 + b'"]')  # a 2-byte length
    conn.send_packet(EVENT, "/", ["d", b"\x00\x01"])  # BINARY_EVENT + its attachment
    assert conn.writer.writes == 0  # nothing written before the loop turns
    frames = await server.received(8)
    assert frames == [
        (WSMsgType.TEXT, b'42["a",1]'),
        (WSMsgType.TEXT, b"3"),
        (WSMsgType.TEXT, b'437["ok"]'),
        (WSMsgType.TEXT, b'42/chat,["b",{"x":[1,2]}]'),
        (WSMsgType.TEXT, b"3probe"),
        (WSMsgType.TEXT, b'42["c","' + b"y" * 300 + b'"]'),
        (WSMsgType.TEXT, b'451-["d",{"_placeholder":true,"num":0}]'),
        (WSMsgType.BINARY, b"\x00\x01"),
    ]
    assert conn.writer.writes == 1


async def test_a_lone_emit_is_written_within_one_loop_turn(link: Any) -> None:
    conn, _, server = link
    assert conn.send_event("/", "solo", {"n": 1}) == 1
    assert conn.writer.pending > 0 and conn.writer.writes == 0
    await asyncio.sleep(0)  # one turn of the loop: the flush runs before this task resumes
    assert conn.writer.pending == 0
    assert conn.writer.writes == 1
    assert await server.received(1) == [(WSMsgType.TEXT, b'42["solo",{"n":1}]')]


async def test_a_burst_past_the_flush_size_is_written_without_waiting_for_the_turn(
    link: Any,
) -> None:
    conn, _, server = link
    conn.writer.flush_size = 4096
    for i in range(1000):
        conn.send_event("/", "tick", i)
    # The buffer never holds more than the flush size and one frame.
    assert conn.writer.writes >= 1000 * 15 // 4096
    assert conn.writer.pending < 4096
    frames = await server.received(1000)
    assert [p for _, p in frames] == [b'42["tick",%d]' % i for i in range(1000)]


@pytest.mark.parametrize("size", [0, 1, 3, 7, 8, 9, 125, 126, 127, 65535, 65536, 70001])
async def test_payloads_of_every_length_class_are_masked_and_framed(link: Any, size: int) -> None:
    conn, _, server = link
    payload = bytes(range(256)) * (size // 256 + 1)
    conn.send_eio(payload[:size], True)
    conn.send_eio(b"4" + b"z" * size)
    frames = await server.received(2)
    assert frames == [(WSMsgType.BINARY, payload[:size]), (WSMsgType.TEXT, b"4" + b"z" * size)]


async def test_engineio_v3_binary_frames_get_their_type_byte(link: Any) -> None:
    conn, _, server = link
    conn.eio3 = True
    for size in (0, 5, 300):
        conn.send_eio(b"q" * size, True)
    frames = await server.received(3)
    assert frames == [(WSMsgType.BINARY, b"\x04" + b"q" * size) for size in (0, 5, 300)]


async def test_close_after_a_burst_sends_everything_queued_before_it(link: Any) -> None:
    conn, transport, server = link
    for i in range(500):
        conn.send_event("/", "tick", i)
    assert conn.writer.pending > 0
    conn.flush_writes()  # what engine.close() does before its CLOSE frame
    transport.send_close(WSCloseCode.OK)
    await transport.wait_disconnected()
    await server.received(500)
    assert server.closed_after == 500


async def test_frames_sent_before_the_link_is_given_up_still_go_out(link: Any) -> None:
    # The engine gives a link up (a parse error later in the same read, a ping timeout) in the
    # loop turn a handler emitted in: those emits were written at once before coalescing, and
    # still are.
    conn, _, server = link
    conn.send_event("/", "reply", 1)
    conn.send_packet(ACK, "/", ["ok"], 3)
    conn.detach_sender()
    assert await server.received(2) == [
        (WSMsgType.TEXT, b'42["reply",1]'),
        (WSMsgType.TEXT, b'433["ok"]'),
    ]


async def test_nothing_is_sent_once_the_link_is_detached(link: Any) -> None:
    conn, _, server = link
    conn.send_event("/", "first", 1)
    conn.detach_transport()
    assert conn.send_event("/", "late", 2) == 0  # not sent: the caller buffers it
    with pytest.raises(DisconnectedError):
        conn.send_packet(EVENT, "/", ["late", 3])
    frames = await server.received(1)
    await asyncio.sleep(0.05)
    assert frames == [(WSMsgType.TEXT, b'42["first",1]')]


async def test_a_namedtuple_is_several_arguments_as_on_the_normal_path(link: Any) -> None:
    conn, _, server = link
    point = Point(1, 2)
    conn.send_event("/", "pt", point)  # emit()'s fast path
    conn.send_packet(EVENT, "/", ["pt", *args_of(point)])  # the path with a callback
    frames = await server.received(2)
    assert frames[0] == frames[1] == (WSMsgType.TEXT, b'42["pt",1,2]')


async def test_emits_wait_while_the_transport_is_over_its_high_water_mark() -> None:
    srv, server = await _start(paused=True)  # the server reads nothing: the kernel fills up
    conn = Dispatcher(CoreRecorder(fail_on=("on_handler_error",)))
    transport, _ = await ws_connect(lambda: EngineListener(conn, CoreRecorder()), server.url)
    raw = transport.underlying_transport
    raw.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
    conn.attach_websocket(transport)
    payload = {"data": "x" * 1000}
    sent = 0
    try:
        # Emit as a publisher does: until the core says the link is over its high water.
        while True:
            status = conn.send_event("/", "big", payload)
            sent += 1
            assert status in (1, 2)
            if status == 2:
                break
            if sent % 100 == 0:
                await asyncio.sleep(0)
            assert sent < 1_000_000, "never paused"
        assert conn.writing_paused
        waiter = conn.wait_writable()
        assert waiter is not None and not waiter.done()
        # What the client holds is bounded by the high-water mark, the coalescing buffer's
        # flush size and one frame, however many more frames the caller would emit.
        held = raw.get_write_buffer_size() + conn.writer.pending
        assert held <= 64 * 1024 + conn.writer.flush_size + 2048
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done()
        assert server.transport is not None
        server.transport.underlying_transport.resume_reading()
        await asyncio.wait_for(waiter, 20)
        assert not conn.writing_paused
        frames = await server.received(sent)
        assert len(frames) == sent
    finally:
        conn.detach_transport()
        transport.disconnect(False)
        srv.close()


async def test_losing_the_link_releases_emitters_waiting_for_it() -> None:
    srv, server = await _start(paused=True)
    conn = Dispatcher(CoreRecorder(fail_on=("on_handler_error",)))
    transport, _ = await ws_connect(lambda: EngineListener(conn, CoreRecorder()), server.url)
    transport.underlying_transport.set_write_buffer_limits(high=16 * 1024, low=4 * 1024)
    conn.attach_websocket(transport)
    try:
        while conn.send_event("/", "big", "y" * 4000) != 2:
            await asyncio.sleep(0)
        waiter = conn.wait_writable()
        assert waiter is not None
        conn.detach_transport()
        assert waiter.done()
        assert conn.wait_writable() is None
    finally:
        transport.disconnect(False)
        srv.close()


BINARY_EMITS: list[tuple[str, Any]] = [
    ("/", b"\x00\x01" * 600),  # one bytes argument
    ("/", bytearray(b"ba")),
    ("/", memoryview(b"0123456789")[2:8]),
    ("/", ("a", b"x", 2, b"", [b"y"])),  # several arguments, bytes at several places
    ("/chat", {"k": b"v", "n": [1, {"deep": b"z"}], "s": "t"}),  # bytes inside a dict
    ("/", [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9", b"10", b"11"]),  # 2 digits
    ("/", {1: b"x"}),  # a non-str key: orjson declines, the slow path encodes it
    ("/", {"big": 2**70, "b": b"x"}),  # beyond orjson's integers: the slow path too
    ("/", Point(1, 2)),  # a namedtuple: several arguments
]


@pytest.mark.parametrize("nsp,data", BINARY_EMITS)
@pytest.mark.parametrize("eio3", [False, True])
async def test_a_binary_emit_puts_on_the_wire_exactly_the_frames_of_the_full_path(
    link: Any, nsp: str, data: Any, eio3: bool
) -> None:
    conn, _, server = link
    conn.eio3 = eio3
    expected = [
        (WSMsgType.BINARY if binary else WSMsgType.TEXT, (b"\x04" if binary and eio3 else b"") + f)
        for f, binary in conn.encode(EVENT, nsp, ["ev", *args_of(data)])
    ]
    sent = conn.packets_sent
    assert conn.send_event(nsp, "ev", data) == 1
    assert conn.packets_sent - sent == len(expected)
    assert await server.received(len(expected)) == expected


async def nothing_queued_and_the_next_emit_goes_out(conn: Any, server: Any) -> None:
    """A refused emit left nothing in the writer, and the link still carries the next one."""
    assert conn.writer.pending == 0
    conn.send_event("/", "after", 1)
    assert await server.received(1) == [(WSMsgType.TEXT, b'42["after",1]')]


async def test_a_binary_emit_over_max_payload_queues_none_of_its_frames(link: Any) -> None:
    conn, _, server = link
    conn.max_send_size = 100
    with pytest.raises(PayloadTooLargeError):
        conn.send_event("/", "ev", ("small", b"y" * 101))
    await nothing_queued_and_the_next_emit_goes_out(conn, server)


async def test_a_binary_emit_sends_the_callers_bytes_unaltered_and_keeps_them(
    link: Any,
) -> None:
    conn, _, server = link
    blob = bytes(range(256)) * 4
    args = {"a": blob, "b": [blob]}
    conn.send_event("/", "ev", args)
    assert args == {"a": blob, "b": [blob]}
    frames = await server.received(3)
    assert frames[1:] == [(WSMsgType.BINARY, blob), (WSMsgType.BINARY, blob)]


_BLOB = bytes(range(256)) * 5
MSGPACK_PACKETS: list[tuple[int, str, Any, int | None]] = [
    (EVENT, "/", ["bin", _BLOB[:1024]], None),  # one payload, referenced
    (EVENT, "/", ["small", b"abc", b""], None),  # small bytes are copied into the encoding
    (EVENT, "/chat", ["ev", {"a": _BLOB, "b": [_BLOB[:64], 1.5, None], "c": "x"}], None),
    (EVENT, "/", ["many", *[_BLOB[: 100 + i] for i in range(12)]], None),  # more than 8
    (EVENT, "/", ["ack", _BLOB], 12345),  # the id after the data
    (ACK, "/", [_BLOB[:70000]], 7),  # a 64-bit frame length
    (EVENT, "/", ["mixed", bytearray(_BLOB), memoryview(_BLOB)], None),  # copied, as packb
]


@pytest.mark.parametrize("ptype,nsp,data,ack_id", MSGPACK_PACKETS)
async def test_a_msgpack_packet_is_masked_around_its_bytes_into_exactly_the_encoders_frame(
    link: Any, ptype: int, nsp: str, data: Any, ack_id: int | None
) -> None:
    conn, _, server = link
    conn.msgpack_mode = True
    expected = encode_msgpack(ptype, nsp, data, ack_id)
    conn.send_packet(ptype, nsp, data, ack_id)
    conn.send_event(nsp, "after", (_BLOB[:100],))
    frames = await server.received(2)
    assert frames == [
        (WSMsgType.BINARY, expected),
        (WSMsgType.BINARY, encode_msgpack(EVENT, nsp, ["after", _BLOB[:100]])),
    ]


async def test_a_msgpack_packet_over_max_payload_is_refused_before_it_is_queued(
    link: Any,
) -> None:
    conn, _, server = link
    conn.msgpack_mode = True
    conn.max_send_size = 1000
    with pytest.raises(PayloadTooLargeError):
        conn.send_event("/", "big", _BLOB[:1000])
    assert conn.writer.pending == 0
    conn.send_event("/", "ok", 1)
    assert await server.received(1) == [(WSMsgType.BINARY, encode_msgpack(EVENT, "/", ["ok", 1]))]


async def test_an_emit_made_while_another_is_encoded_leaves_both_packets_intact(
    link: Any,
) -> None:
    # A json= module is Python code run in the middle of send_event(): an emit from there
    # must neither borrow nor clobber the outer emit's argument list.
    import json as stdlib_json

    conn, _, server = link

    class Reentrant:
        nested = False

        def dumps(self, obj: Any, **kwargs: Any) -> str:
            if not self.nested:
                self.nested = True
                conn.send_event("/", "inner", {"i": 1})
            return stdlib_json.dumps(obj, **kwargs)

    conn.json = Reentrant()
    conn.send_event("/", "outer", {"o": 2})
    conn.json = None
    conn.send_event("/", "after", {"a": 3})
    assert await server.received(3) == [
        (WSMsgType.TEXT, b'42["inner",{"i":1}]'),
        (WSMsgType.TEXT, b'42["outer",{"o":2}]'),
        (WSMsgType.TEXT, b'42["after",{"a":3}]'),
    ]


@pytest.mark.parametrize(
    "data",
    [Blob(b"x"), [1, {"b": Blob(b"x")}], Kind.RAW, (b"ok", Blob(b"x"))],
    ids=["dataclass", "nested-dataclass", "enum", "with-bytes-beside"],
)
async def test_bytes_the_full_path_cannot_encode_are_refused_by_the_direct_path_too(
    link: Any, data: Any
) -> None:
    # orjson walks dataclasses and enum values and hands their bytes to the attachments hook;
    # the full path (encode(), the offline buffer, polling, python-socketio) only looks for
    # bytes in lists, tuples and dicts and refuses these. An emit must not succeed or fail
    # depending on which path it took.
    conn, _, server = link
    with pytest.raises(TypeError):
        conn.encode(EVENT, "/", ["ev", *args_of(data)])
    with pytest.raises(TypeError):
        conn.send_event("/", "ev", data)
    await nothing_queued_and_the_next_emit_goes_out(conn, server)


async def test_a_bytes_conversion_runs_once_per_emit_when_the_direct_path_gives_the_emit_up(
    link: Any,
) -> None:
    # bytes(x) of a bytes subclass runs its __bytes__; if the direct path ran it and then
    # handed the emit to the full path (here for the integer beyond 64 bits), the full path
    # ran it again: an emit made from there went out twice.
    conn, _, server = link
    calls = []

    class Tagged(bytes):
        def __bytes__(self) -> bytes:
            calls.append(1)
            conn.send_event("/", "inner", len(calls))
            return b"T" * 80

    conn.send_event("/", "outer", (Tagged(b"t" * 80), 2**70))
    conn.send_event("/", "after", 1)
    frames = await server.received(4)
    await asyncio.sleep(0.05)
    assert calls == [1]
    assert server.frames == [
        (WSMsgType.TEXT, b'42["inner",1]'),
        (WSMsgType.TEXT, b'451-["outer",{"_placeholder":true,"num":0},' + b"%d]" % 2**70),
        (WSMsgType.BINARY, b"T" * 80),
        (WSMsgType.TEXT, b'42["after",1]'),
    ]
    assert frames == server.frames
