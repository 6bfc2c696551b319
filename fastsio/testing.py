"""A local Socket.IO "firehose" server for tests and benchmarks.

:class:`FirehoseServer` is an in-process asyncio Engine.IO v4 / Socket.IO v5 server built on
picows's server API. It speaks the WebSocket transport only (``/socket.io/?EIO=4&transport=
websocket``) and is a correct Socket.IO peer for a client: it sends the Engine.IO open packet,
answers Socket.IO CONNECT for any namespace, pings every ``ping_interval``, and handles the
client's DISCONNECT, Engine.IO close and WebSocket close. Once a client has joined a namespace
the server streams ``count`` identical events to it as fast as the socket takes them, then one
``done`` event whose argument is ``count``. With ``ack_echo=True`` it also answers every client
event that asks for an ack with an ACK carrying the same arguments (for round-trip figures).

The server is built not to be the bottleneck of a benchmark: the event frame is encoded once,
repeated into a ~256 KiB blob of complete, unmasked WebSocket frames and that blob is written
straight to the underlying asyncio transport, a few Python calls per few thousand events. The
transport's write-buffer flow control (``pause_writing``/``resume_writing``) bounds memory.

Heartbeat: pings are sent and pongs are counted, but a client that misses pongs is *not*
disconnected (a client saturated by the stream may answer late, and that is not what a
benchmark measures).

This module imports nothing from fastsio, so it also runs as a plain script::

    python -m fastsio.testing --port 0 --count 1000000 --serializer json
    python path/to/fastsio/testing.py --port 0 ...

Both print ``LISTENING <port>`` once the socket is bound, then serve until SIGINT/SIGTERM.
Each new connection gets its own stream.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import struct
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgpack
import orjson
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

__all__ = [
    "DEFAULT_EVENT",
    "DEFAULT_PAYLOAD",
    "FirehoseServer",
    "Serializer",
    "ServerStats",
    "encode_ws_frame",
    "main",
]

logger = logging.getLogger("fastsio.testing")

Serializer = Literal["json", "msgpack"]

#: Event name streamed by default.
DEFAULT_EVENT = "tick"
#: Event argument streamed by default: a small market-data tick.
DEFAULT_PAYLOAD: dict[str, Any] = {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}

# Socket.IO v5 packet types.
_CONNECT, _DISCONNECT, _EVENT, _ACK, _CONNECT_ERROR, _BINARY_EVENT, _BINARY_ACK = range(7)

#: Target size of one pre-built blob of event frames. Large enough that the Python work per
#: blob is negligible next to the client's per-frame work, small enough to stay in cache.
_BLOB_TARGET = 256 * 1024
#: Write-buffer watermarks of a streaming connection (bytes queued in the transport, beyond
#: what the kernel socket buffer already holds).
_HIGH_WATER = 4 * 1024 * 1024
_LOW_WATER = 1024 * 1024


def encode_ws_frame(payload: bytes, *, binary: bool = False) -> bytes:
    """Return one complete, unmasked (server-to-client) WebSocket frame carrying ``payload``.

    ``binary`` selects opcode 0x2 (binary) instead of 0x1 (text); FIN is always set.
    """
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


@dataclass
class ServerStats:
    """Counters of a :class:`FirehoseServer`, cumulative over all its connections."""

    connections: int = 0
    """WebSocket connections accepted."""
    active: int = 0
    """Connections currently open."""
    namespaces_connected: int = 0
    """Socket.IO CONNECT packets answered."""
    events_sent: int = 0
    """Stream events written to transports (not counting ``done``)."""
    streams_completed: int = 0
    """Streams that ended with their ``done`` event written."""
    pings_sent: int = 0
    """Engine.IO pings sent."""
    pongs_received: int = 0
    """Engine.IO pongs received."""
    events_received: int = 0
    """Socket.IO EVENT/BINARY_EVENT packets received from clients."""
    acks_sent: int = 0
    """ACK/BINARY_ACK packets sent by ``ack_echo``."""


class _Packet:
    """A decoded client Socket.IO packet (JSON mode may still be waiting for attachments)."""

    __slots__ = ("type", "nsp", "data", "id", "attachments", "buffers")

    def __init__(self, type: int, nsp: str, data: Any, id: int | None, attachments: int) -> None:
        self.type = type
        self.nsp = nsp
        self.data = data
        self.id = id
        self.attachments = attachments
        self.buffers: list[bytes] = []


def _parse_json_packet(text: str) -> _Packet:
    """Parse a Socket.IO v5 text packet ``<type>[<n>-][<nsp>,][<id>][<json>]``."""
    if not text or not "0" <= text[0] <= "6":
        raise ValueError(f"bad Socket.IO packet type in {text[:32]!r}")
    ptype = ord(text[0]) - 48
    i, end = 1, len(text)
    attachments = 0
    if ptype in (_BINARY_EVENT, _BINARY_ACK):
        dash = text.index("-", i)
        attachments = int(text[i:dash])
        i = dash + 1
    nsp = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma == -1:
            nsp, i = text[i:], end
        else:
            nsp, i = text[i:comma], comma + 1
    j = i
    while j < end and "0" <= text[j] <= "9":
        j += 1
    ack_id = int(text[i:j]) if j > i else None
    data = orjson.loads(text[j:]) if j < end else None
    return _Packet(ptype, nsp, data, ack_id, attachments)


class _Codec:
    """Encode server Socket.IO packets to (frame payload, is_binary) in one serializer."""

    def __init__(self, serializer: Serializer) -> None:
        if serializer not in ("json", "msgpack"):
            raise ValueError(f"serializer must be 'json' or 'msgpack', not {serializer!r}")
        self.msgpack = serializer == "msgpack"

    def encode(
        self,
        ptype: int,
        nsp: str,
        data: Any = None,
        ack_id: int | None = None,
        attachments: int = 0,
    ) -> tuple[bytes, bool]:
        """Encode one packet; ``data=None`` omits the data field."""
        if self.msgpack:
            packet: dict[str, Any] = {"type": ptype, "nsp": nsp}
            if data is not None:
                packet["data"] = data
            if ack_id is not None:
                packet["id"] = ack_id
            return msgpack.packb(packet), True
        parts = [b"4", str(ptype).encode()]
        if ptype in (_BINARY_EVENT, _BINARY_ACK):
            parts.append(b"%d-" % attachments)
        if nsp != "/":
            parts.append(nsp.encode() + b",")
        if ack_id is not None:
            parts.append(str(ack_id).encode())
        if data is not None:
            parts.append(orjson.dumps(data))
        return b"".join(parts), False


class FirehoseServer:
    """In-process Engine.IO v4 / Socket.IO v5 server that streams pre-encoded events.

    :param count: events streamed to each client after it joins a namespace, followed by a
        ``done`` event whose single argument is ``count``. ``0`` disables the stream (and the
        ``done`` event): the server then only handshakes, pings and, with ``ack_echo``, echoes.
    :param serializer: ``"json"`` (text frames, Socket.IO's default parser) or ``"msgpack"``
        (one msgpack map ``{type, data, nsp, [id]}`` per packet in a binary frame, as
        socket.io-msgpack-parser encodes it).
    :param event: name of the streamed event.
    :param payload: the streamed event's single argument (anything the serializer encodes).
        Encoded once per stream, never per event.
    :param packet: a complete pre-encoded frame payload to stream verbatim instead of
        ``event``/``payload`` (JSON mode: an Engine.IO message such as ``b'42["tick",1]'``, sent
        as a text frame; msgpack mode: one msgpack map, sent as a binary frame). It is sent as
        is whatever namespace the client joined; ``done`` still goes to that namespace.
    :param namespace: stream only to a client that joins this namespace; ``None`` streams on
        the first namespace the client joins. Other namespaces are still accepted.
    :param ack_echo: answer every client EVENT that carries an ack id with an ACK (BINARY_ACK
        for binary events, with the same attachments) whose arguments are the event's
        arguments after its name.
    :param ping_interval: seconds between Engine.IO pings (``pingInterval`` in the open packet).
    :param ping_timeout: advertised ``pingTimeout`` in seconds (not enforced, see module doc).
    :param max_payload: advertised ``maxPayload`` in bytes; also the largest WebSocket frame
        the server accepts from a client.
    :param path: Engine.IO path, ``"socket.io"`` by default.
    """

    def __init__(
        self,
        count: int = 1_000_000,
        serializer: Serializer = "json",
        event: str = DEFAULT_EVENT,
        payload: Any = DEFAULT_PAYLOAD,
        *,
        packet: bytes | None = None,
        namespace: str | None = None,
        ack_echo: bool = False,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        max_payload: int = 1_000_000,
        path: str = "socket.io",
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be > 0")
        self.count = count
        self.serializer: Serializer = serializer
        self.event = event
        self.payload = payload
        self.packet = packet
        self.namespace = namespace
        self.ack_echo = ack_echo
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.path = "/" + path.strip("/")
        self.stats = ServerStats()
        self._codec = _Codec(serializer)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._blobs: dict[str, tuple[bytes, int, int]] = {}
        self._host = "127.0.0.1"
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind and start accepting connections; ``port=0`` picks a free port (see :attr:`port`)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await ws_create_server(
            self._route,
            host,
            port,
            max_frame_size=self.max_payload,
            logger_name=logger,
        )
        sock = self._server.sockets[0]
        self._host, self._port = sock.getsockname()[:2]

    async def stop(self) -> None:
        """Disconnect every client (Socket.IO DISCONNECT, then WebSocket close) and stop."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        conns = list(self._connections)
        for conn in conns:
            conn.close(send_disconnect=True)
        for conn in conns:
            try:
                await asyncio.wait_for(conn.transport.wait_disconnected(), 2)
            except Exception:
                conn.transport.disconnect(graceful=False)
        await server.wait_closed()

    async def __aenter__(self) -> FirehoseServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        """Host the server is bound to."""
        return self._host

    @property
    def port(self) -> int:
        """TCP port the server listens on (valid after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` — the URL to give a Socket.IO client's ``connect``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    # -- internals ---------------------------------------------------------------------------

    def _route(
        self, request: WSUpgradeRequest
    ) -> WSListener | WSUpgradeResponseWithListener | None:
        """Accept ``<path>/?EIO=4&transport=websocket``; refuse everything else."""
        target = urllib.parse.urlsplit(request.path.decode("latin-1"))
        if target.path.rstrip("/") != self.path:
            return None  # 404
        query = urllib.parse.parse_qs(target.query)
        if query.get("EIO") != ["4"]:
            return _error_response(5, "Unsupported protocol version")
        if query.get("transport") != ["websocket"]:
            return _error_response(0, "Transport unknown")
        if "sid" in query:
            return _error_response(1, "Session ID unknown")
        return _Connection(self)

    def _stream_frames(self, nsp: str) -> tuple[bytes, int, int]:
        """Return (blob of N event frames, N, size of one frame) for a stream on ``nsp``."""
        key = nsp if self.packet is None else ""
        cached = self._blobs.get(key)
        if cached is None:
            if self.packet is not None:
                payload, binary = self.packet, self._codec.msgpack
            else:
                payload, binary = self._codec.encode(_EVENT, nsp, [self.event, self.payload])
            frame = encode_ws_frame(payload, binary=binary)
            per_blob = max(1, _BLOB_TARGET // len(frame))
            cached = (frame * per_blob, per_blob, len(frame))
            self._blobs[key] = cached
        return cached


def _error_response(code: int, message: str) -> WSUpgradeResponseWithListener:
    body = orjson.dumps({"code": code, "message": message})
    response = WSUpgradeResponse.create_error_response(
        400, body, {"Content-Type": "application/json"}
    )
    return WSUpgradeResponseWithListener(response, None)


class _Connection(WSListener):
    """One Engine.IO session of a :class:`FirehoseServer`."""

    transport: WSTransport

    def __init__(self, server: FirehoseServer) -> None:
        super().__init__()
        self.server = server
        self.codec = server._codec
        self.sid = secrets.token_urlsafe(15)
        self.namespaces: dict[str, str] = {}  # namespace -> Socket.IO sid
        self.pending: _Packet | None = None  # JSON binary packet waiting for attachments
        self.stream_nsp: str | None = None
        self.stream_task: asyncio.Task[None] | None = None
        self.ping_task: asyncio.Task[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused
        self.last_pong = time.monotonic()
        self.closed = False

    # -- picows callbacks --------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=_HIGH_WATER, low=_LOW_WATER)
        server = self.server
        server._connections.add(self)
        server.stats.connections += 1
        server.stats.active += 1
        handshake = {
            "sid": self.sid,
            "upgrades": [],
            "pingInterval": int(server.ping_interval * 1000),
            "pingTimeout": int(server.ping_timeout * 1000),
            "maxPayload": server.max_payload,
        }
        transport.send(WSMsgType.TEXT, b"0" + orjson.dumps(handshake))
        self.ping_task = asyncio.get_running_loop().create_task(self._ping_loop())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if not frame.fin or msg_type == WSMsgType.CONTINUATION:
            # Socket.IO clients never fragment messages; treat it as a protocol error.
            transport.send_close(WSCloseCode.UNSUPPORTED_DATA, b"fragmented message")
            transport.disconnect()
            return
        if msg_type == WSMsgType.TEXT:
            self._on_text(frame.get_payload_as_bytes())
        elif msg_type == WSMsgType.BINARY:
            self._on_binary(frame.get_payload_as_bytes())
        elif msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.closed:
            return
        self.closed = True
        server = self.server
        server._connections.discard(self)
        server.stats.active -= 1
        for task in (self.ping_task, self.stream_task):
            if task is not None:
                task.cancel()
        self._wake_writer()

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # -- Engine.IO / Socket.IO ---------------------------------------------------------------

    def _on_text(self, data: bytes) -> None:
        if not data:
            raise ValueError("empty Engine.IO packet")
        kind = data[0]
        if kind == 0x33:  # '3' pong
            self.last_pong = time.monotonic()
            self.server.stats.pongs_received += 1
        elif kind == 0x34:  # '4' message
            if self.codec.msgpack:
                raise ValueError("text Socket.IO packet on a msgpack server")
            self._on_packet(_parse_json_packet(data[1:].decode()))
        elif kind == 0x31:  # '1' close
            self.close(send_disconnect=False)
        elif kind == 0x32:  # '2' ping (only an Engine.IO v3 client pings): answer it
            self.transport.send(WSMsgType.TEXT, b"3" + data[1:])
        elif kind not in (0x35, 0x36):  # '5' upgrade and '6' noop are ignored
            raise ValueError(f"unknown Engine.IO packet {data[:32]!r}")

    def _on_binary(self, data: bytes) -> None:
        if self.codec.msgpack:
            obj = msgpack.unpackb(data)
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), int):
                raise ValueError("msgpack Socket.IO packet is not a map with a type")
            nsp = obj.get("nsp", "/")
            self._on_packet(
                _Packet(
                    obj["type"],
                    nsp if isinstance(nsp, str) else "/",
                    obj.get("data"),
                    obj.get("id"),
                    0,
                )
            )
            return
        pending = self.pending
        if pending is None:
            raise ValueError("binary frame without a pending binary packet")
        pending.buffers.append(data)
        if len(pending.buffers) == pending.attachments:
            self.pending = None
            self._on_packet(pending)

    def _on_packet(self, pkt: _Packet) -> None:
        if pkt.attachments and len(pkt.buffers) < pkt.attachments:
            self.pending = pkt
            return
        if pkt.type == _CONNECT:
            self._on_connect(pkt.nsp)
        elif pkt.type == _DISCONNECT:
            self.namespaces.pop(pkt.nsp, None)
            if pkt.nsp == self.stream_nsp and self.stream_task is not None:
                self.stream_task.cancel()
        elif pkt.type in (_EVENT, _BINARY_EVENT):
            self.server.stats.events_received += 1
            if self.server.ack_echo and pkt.id is not None and pkt.nsp in self.namespaces:
                self._echo_ack(pkt)
        elif pkt.type not in (_ACK, _BINARY_ACK):
            raise ValueError(f"unexpected Socket.IO packet type {pkt.type} from a client")

    def _on_connect(self, nsp: str) -> None:
        sid = self.namespaces.get(nsp) or secrets.token_urlsafe(15)
        self.namespaces[nsp] = sid
        self._send(_CONNECT, nsp, {"sid": sid})
        server = self.server
        server.stats.namespaces_connected += 1
        if server.count > 0 and self.stream_task is None and server.namespace in (None, nsp):
            self.stream_nsp = nsp
            self.stream_task = asyncio.get_running_loop().create_task(self._stream(nsp))

    def _echo_ack(self, pkt: _Packet) -> None:
        args = pkt.data[1:] if isinstance(pkt.data, list) else []
        if pkt.type == _BINARY_EVENT:
            payload, _ = self.codec.encode(_BINARY_ACK, pkt.nsp, args, pkt.id, pkt.attachments)
            self.transport.send(WSMsgType.TEXT, payload)
            for buf in pkt.buffers:
                self.transport.send(WSMsgType.BINARY, buf)
        else:
            self._send(_ACK, pkt.nsp, args, pkt.id)
        self.server.stats.acks_sent += 1

    def _send(self, ptype: int, nsp: str, data: Any = None, ack_id: int | None = None) -> None:
        payload, binary = self.codec.encode(ptype, nsp, data, ack_id)
        self.transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, payload)

    def close(self, *, send_disconnect: bool) -> None:
        """End the session: optionally Socket.IO DISCONNECT every namespace, then close."""
        if self.transport.is_disconnected:
            return
        if self.stream_task is not None:
            self.stream_task.cancel()
        if send_disconnect:
            for nsp in list(self.namespaces):
                self._send(_DISCONNECT, nsp)
        self.namespaces.clear()
        self.transport.send_close(WSCloseCode.OK)
        self.transport.disconnect()

    # -- tasks -------------------------------------------------------------------------------

    def _wake_writer(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def _ping_loop(self) -> None:
        interval = self.server.ping_interval
        stats = self.server.stats
        transport = self.transport
        while not transport.is_disconnected:
            await asyncio.sleep(interval)
            if transport.is_disconnected:
                break
            transport.send(WSMsgType.TEXT, b"2")
            stats.pings_sent += 1

    async def _stream(self, nsp: str) -> None:
        server = self.server
        stats = server.stats
        blob, per_blob, frame_size = server._stream_frames(nsp)
        transport = self.transport
        write = transport.underlying_transport.write
        remaining = server.count
        try:
            while remaining > 0:
                if self.drained is not None:
                    await self.drained
                if transport.is_disconnected:
                    return
                if remaining >= per_blob:
                    write(blob)
                    remaining -= per_blob
                    stats.events_sent += per_blob
                else:
                    write(blob[: remaining * frame_size])
                    stats.events_sent += remaining
                    remaining = 0
                # Let reads (pongs, client packets) and other connections run between blobs.
                await asyncio.sleep(0)
            if not transport.is_disconnected and nsp in self.namespaces:
                self._send(_EVENT, nsp, ["done", server.count])
                stats.streams_completed += 1
        finally:
            self.stream_task = None


# -- command line ------------------------------------------------------------------------------


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _serve(args: argparse.Namespace) -> None:
    payload = DEFAULT_PAYLOAD if args.payload is None else orjson.loads(args.payload)
    server = FirehoseServer(
        count=args.count,
        serializer=args.serializer,
        event=args.event,
        payload=payload,
        namespace=args.namespace,
        ack_echo=args.ack_echo,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
    await server.start(args.host, args.port)
    print(f"LISTENING {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: serve a :class:`FirehoseServer` until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m fastsio.testing",
        description="Socket.IO firehose server: streams COUNT events to each client that "
        "joins a namespace, then a 'done' event. Prints 'LISTENING <port>' when ready.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--count",
        type=int,
        default=1_000_000,
        help="events per connection, 0 for none (default 1000000)",
    )
    parser.add_argument("--serializer", choices=("json", "msgpack"), default="json")
    parser.add_argument("--event", default=DEFAULT_EVENT)
    parser.add_argument(
        "--payload", default=None, help="the event argument as JSON (default: a small tick object)"
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="stream only on this namespace (default: the first one joined)",
    )
    parser.add_argument(
        "--ack-echo",
        action="store_true",
        help="answer client events that request an ack with their arguments",
    )
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="seconds")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    loop = _new_loop(args.loop)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_serve(args))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
