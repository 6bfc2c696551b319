"""Local Socket.IO servers for tests, demos and benchmarks.

Two in-process asyncio Engine.IO v4 / Socket.IO v5 servers, both independent of fastsio's
client code (their codec is their own, so they cannot share a codec bug with the client):

- :class:`TestServer`: a scriptable server for tests and demos, on HTTP long-polling and
  WebSocket (with the upgrade) on one port, JSON or msgpack. Handlers and acks both ways,
  rooms, binary attachments, a pre-encoded firehose, and fault hooks (drop the link, stop
  pinging, ignore pongs, freeze, slow polling uploads)::

      import asyncio
      import fastsio
      from fastsio.testing import ConnectionRefused, TestServer

      async def main() -> None:
          server = TestServer()

          @server.on("connect")
          def connect(sid, auth):
              if not auth or auth.get("token") != "secret":
                  raise ConnectionRefused("unauthorized")

          @server.on("add")
          def add(sid, a, b):
              return a + b                      # acks the client's call()

          async with server:                    # a free loopback port: server.url
              client = fastsio.AsyncClient()
              await client.connect(server.url, auth={"token": "secret"})
              print(await client.call("add", (1, 2)))                 # 3
              client.on("question", lambda q: q.upper())
              print(await server.call("question", "hi", to=client.get_sid()))  # HI
              server.drop()                     # the client reconnects ('transport close')
              await client.disconnect()

      asyncio.run(main())

- :class:`FirehoseServer`: a WebSocket-only server built on picows that streams ``count``
  identical pre-encoded events to each client as fast as the socket takes them, then one
  ``done`` event (argument ``count``); with ``ack_echo=True`` it acks every client event with
  its arguments. It is built not to be the bottleneck of a benchmark: the event frame is
  encoded once, repeated into a ~256 KiB blob of complete, unmasked WebSocket frames, and that
  blob is written straight to the asyncio transport, with write-buffer flow control. Pings are
  sent and pongs counted, but a client that misses pongs is *not* disconnected (a client
  saturated by the stream may answer late, and that is not what a benchmark measures).

This module imports nothing from fastsio, so it also runs as a plain script, which serves a
:class:`FirehoseServer` (``fastsio bench`` runs it this way)::

    python -m fastsio.testing --port 0 --count 1000000 --serializer json
    python path/to/fastsio/testing.py --port 0 ...

Both print ``LISTENING <port>`` once the socket is bound, then serve until SIGINT/SIGTERM.
Each new connection gets its own stream.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import inspect
import itertools
import logging
import secrets
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
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
    "ClientGone",
    "ConnectionRefused",
    "FirehoseServer",
    "Handler",
    "Handshake",
    "Serializer",
    "ServerStats",
    "TestServer",
    "TestServerStats",
    "encode_ws_frame",
    "main",
]

logger = logging.getLogger("fastsio.testing")

Serializer = Literal["json", "msgpack"]
"""The wire format of a server: Socket.IO's JSON packets or ``socket.io-msgpack-parser``'s."""

DEFAULT_EVENT = "tick"
"""Event name streamed by default."""
DEFAULT_PAYLOAD: dict[str, Any] = {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}
"""Event argument streamed by default: a small market-data tick."""

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


# -- TestServer --------------------------------------------------------------------------------
#
# The TestServer keeps a codec of its own (orjson/msgpack plus the small parser above) instead of
# reusing fastsio's compiled one: a server that decoded with the client's decoder and encoded
# with the client's encoder would agree with the client about any symmetric codec bug, and the
# tests that use it would pass with it. It also keeps this module importable without the
# compiled core.

#: Engine.IO packets of a session: ``str`` is a text packet (type digit first), ``bytes`` a
#: binary message.
_Frame = str | bytes

Handler = Callable[..., Any]
"""A handler registered with :meth:`TestServer.on`: sync or async, see there for arguments."""

_HANDSHAKE_ERRORS = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    5: "Unsupported protocol version",
}
#: Most packets in one long-polling GET response.
_MAX_POLL_PACKETS = 1000
#: Firehose over polling: packets queued ahead of the client's GETs.
_POLL_FIREHOSE_BACKLOG = 5000


class ConnectionRefused(Exception):
    """Raise from a ``connect`` handler to refuse the connection to a namespace.

    The client gets a CONNECT_ERROR packet whose data is ``{"message": message}``, plus
    ``"data": data`` when ``data`` is not None (what socket.io's ``next(err)`` with
    ``err.data`` sends); fastsio's ``connect()`` then raises ``ConnectionError`` and calls the
    client's ``connect_error`` handler with that object.
    """

    def __init__(self, message: str = "Connection rejected by server", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ClientGone(ConnectionError):
    """:meth:`TestServer.call` failed: the client's socket disconnected before it acked."""


@dataclass(frozen=True)
class Handshake:
    """What a client sent when it connected a namespace (see :meth:`TestServer.handshake`)."""

    sid: str
    """The Socket.IO sid of this namespace connection (the client's ``get_sid(namespace)``)."""
    eio_sid: str
    """The Engine.IO session id (the client's ``sid``), shared by all its namespaces."""
    namespace: str
    auth: Any
    """The CONNECT packet's data (the client's ``auth``), None when it sent none."""
    headers: dict[str, str]
    """Headers of the first HTTP request of the session, lower-case names, repeats joined
    with ``", "``."""
    query: dict[str, str]
    """Query parameters of the first HTTP request (``EIO``, ``transport``, ...)."""


@dataclass
class TestServerStats:
    """Counters of a :class:`TestServer`, cumulative over all its sessions."""

    __test__ = False  # not a pytest test class, whatever its name

    sessions: int = 0
    """Engine.IO sessions opened (one per client connection)."""
    upgrades: int = 0
    """Sessions upgraded from polling to WebSocket."""
    sockets: int = 0
    """Namespace connections accepted."""
    refused: int = 0
    """Namespace connections refused (CONNECT_ERROR sent)."""
    events_received: int = 0
    """EVENT/BINARY_EVENT packets received."""
    events_sent: int = 0
    """EVENT/BINARY_EVENT packets sent (firehose events included)."""
    acks_received: int = 0
    """ACK/BINARY_ACK packets received (answers to :meth:`TestServer.call`)."""
    acks_sent: int = 0
    """ACK/BINARY_ACK packets sent (handler return values)."""
    pings_sent: int = 0
    pongs_received: int = 0
    recoveries: int = 0
    """Namespace connections that restored a lost session (connection-state recovery)."""


class _Done:
    """What the send methods return: already done, awaitable for python-socketio's style."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


_DONE = _Done()


def _args_of(data: Any) -> list[Any]:
    """python-socketio's rule: a tuple is several arguments, None none, anything else one."""
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def _ack_value(args: list[Any]) -> Any:
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


def _has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_binary(v) for v in data)
    if isinstance(data, dict):
        return any(_has_binary(v) for v in data.values())
    return False


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Replace binary values by Socket.IO placeholders, appending them to ``buffers``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(v, buffers) for v in data]
    if isinstance(data, dict):
        return {k: _deconstruct(v, buffers) for k, v in data.items()}
    return data


def _reconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Put the attachments back in place of their placeholders."""
    if isinstance(data, list):
        return [_reconstruct(v, buffers) for v in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and len(data) == 2:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise ValueError(f"bad attachment placeholder {data!r}")
            return buffers[num]
        return {k: _reconstruct(v, buffers) for k, v in data.items()}
    return data


def _bytes_to_bin(data: Any) -> Any:
    """msgpack packs bytes as bin already; bytearray/memoryview become bytes."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (list, tuple)):
        return [_bytes_to_bin(v) for v in data]
    if isinstance(data, dict):
        return {k: _bytes_to_bin(v) for k, v in data.items()}
    return data


def _encode_packet(
    msgpack_mode: bool, ptype: int, nsp: str, data: Any = None, ack_id: int | None = None
) -> list[_Frame]:
    """Encode one server Socket.IO packet into its Engine.IO packets.

    JSON: one text ``4...`` packet, then one binary message per attachment (an EVENT/ACK whose
    data holds bytes becomes a BINARY_EVENT/BINARY_ACK). msgpack: one binary message holding
    the map ``{type, data, nsp, [id]}`` as socket.io-msgpack-parser writes it.
    """
    if msgpack_mode:
        packet: dict[str, Any] = {"type": ptype}
        if data is not None:
            packet["data"] = _bytes_to_bin(data)
        packet["nsp"] = nsp
        if ack_id is not None:
            packet["id"] = ack_id
        return [msgpack.packb(packet)]
    buffers: list[bytes] = []
    if data is not None and ptype in (_EVENT, _ACK) and _has_binary(data):
        data = _deconstruct(data, buffers)
        ptype = _BINARY_EVENT if ptype == _EVENT else _BINARY_ACK
    parts = ["4", str(ptype)]
    if buffers:
        parts.append(f"{len(buffers)}-")
    if nsp != "/":
        parts.append(nsp + ",")
    if ack_id is not None:
        parts.append(str(ack_id))
    if data is not None:
        parts.append(orjson.dumps(data).decode())
    return ["".join(parts), *buffers]


def _encode_poll_payload(frames: Sequence[_Frame]) -> str:
    """Engine.IO v4 polling payload: packets joined by ``\\x1e``, binary as ``b`` + base64."""
    return "\x1e".join(
        f if isinstance(f, str) else "b" + base64.b64encode(f).decode("ascii") for f in frames
    )


def _decode_poll_payload(body: str) -> list[_Frame]:
    frames: list[_Frame] = []
    for part in body.split("\x1e"):
        if not part:
            raise ValueError("empty packet in a polling payload")
        if part[0] == "b":
            frames.append(base64.b64decode(part[1:], validate=True))
        else:
            frames.append(part)
    return frames


def _json_error(code: int, status: int = 400) -> Any:
    from aiohttp import web

    return web.json_response({"code": code, "message": _HANDSHAKE_ERRORS[code]}, status=status)


class _Socket:
    """One namespace connection of a session."""

    __slots__ = ("sid", "nsp", "session", "auth", "connected", "rooms", "held", "pid", "recovered")

    def __init__(self, sid: str, nsp: str, session: _Session, auth: Any) -> None:
        self.sid = sid
        self.nsp = nsp
        self.session = session
        self.auth = auth
        self.connected = False
        self.rooms: set[str] = set()
        self.pid: str | None = None  # private session id (connection-state recovery)
        self.recovered = False
        # Packets emitted to the socket while its connect handler runs: sent after CONNECT.
        self.held: list[_Frame] = []

    def send(self, frames: list[_Frame]) -> None:
        if self.connected:
            self.session.send(frames)
        else:
            self.held.extend(frames)


class _Session:
    """One Engine.IO session of a :class:`TestServer`, on polling and/or WebSocket."""

    def __init__(
        self, server: TestServer, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> None:
        self.server = server
        self.sid = secrets.token_urlsafe(15)
        self.transport = transport  # "polling" or "websocket"
        self.headers = headers
        self.query = query
        self.closed = False
        self.sockets: dict[str, _Socket] = {}
        self.acks: dict[int, tuple[str, asyncio.Future[list[Any]] | Handler]] = {}
        self.ack_seq = 0
        self.pending: _Packet | None = None  # JSON binary packet waiting for attachments
        self.inbound = asyncio.Lock()
        # websocket
        self.ws: Any = None  # aiohttp WebSocketResponse of the active WebSocket
        self.raw: asyncio.Transport | None = None  # its TCP transport, written to directly
        # polling
        self.outbox: collections.deque[_Frame] = collections.deque()
        self.poll_waiter: asyncio.Future[None] | None = None
        self.poll_transport: Any = None  # TCP transport of the pending GET
        self.upgrading = False
        self.probe_raw: asyncio.Transport | None = None
        # heartbeat and faults
        self.pong = asyncio.Event()
        self.stop_pings = False
        self.ignore_pongs = False
        self.frozen = False
        self.held_in: list[_Frame] = []
        self.ping_task: asyncio.Task[None] | None = None

    # -- output ------------------------------------------------------------------------------

    def send(self, frames: Sequence[_Frame]) -> None:
        """Send Engine.IO packets in order (queued for polling, or while frozen/upgrading)."""
        if self.closed:
            return
        if self.transport == "websocket" and not self.frozen:
            if self.outbox:
                frames = [*self.outbox, *frames]
                self.outbox.clear()
            self._write_ws(frames)
        else:
            self.outbox.extend(frames)
            self.wake_poll()

    def _write_ws(self, frames: Iterable[_Frame]) -> None:
        raw = self.raw
        if raw is None or raw.is_closing():
            return
        raw.write(
            b"".join(
                encode_ws_frame(f.encode(), binary=False)
                if isinstance(f, str)
                else encode_ws_frame(f, binary=True)
                for f in frames
            )
        )

    def flush(self) -> None:
        """Send what the outbox holds on the current transport (after a thaw or upgrade)."""
        if self.closed or self.frozen:
            return
        if self.transport == "websocket":
            frames = list(self.outbox)
            self.outbox.clear()
            self._write_ws(frames)
        else:
            self.wake_poll()

    def wake_poll(self, force: bool = False) -> None:
        waiter = self.poll_waiter
        if (
            waiter is not None
            and not waiter.done()
            and (force or (self.outbox and not self.frozen))
        ):
            waiter.set_result(None)

    def take_poll_payload(self) -> str:
        if self.frozen or not self.outbox:
            return "6"
        n = min(len(self.outbox), _MAX_POLL_PACKETS)
        frames = [self.outbox.popleft() for _ in range(n)]
        return _encode_poll_payload(frames)

    def send_packet(
        self, ptype: int, nsp: str, data: Any = None, ack_id: int | None = None
    ) -> None:
        self.send(_encode_packet(self.server._msgpack, ptype, nsp, data, ack_id))

    def add_ack(self, nsp: str, waiter: asyncio.Future[list[Any]] | Handler) -> int:
        ack_id = self.ack_seq
        self.ack_seq += 1
        self.acks[ack_id] = (nsp, waiter)
        return ack_id

    # -- input -------------------------------------------------------------------------------

    async def receive(self, frame: _Frame) -> None:
        """One Engine.IO packet from the client (any transport), in arrival order."""
        if self.closed:
            return
        if self.frozen:
            self.held_in.append(frame)
            return
        try:
            if isinstance(frame, str):
                await self._on_text(frame)
            else:
                await self._on_binary(frame)
        except Exception as exc:
            logger.warning("TestServer: bad packet from session %s (%r): closing it", self.sid, exc)
            self.server._close_session(self, "parse error", mode="abort")

    async def _on_text(self, data: str) -> None:
        if not data:
            raise ValueError("empty Engine.IO packet")
        kind = data[0]
        if kind == "4":
            if self.server._msgpack:
                raise ValueError("text Socket.IO packet on a msgpack server")
            await self._on_packet(_parse_json_packet(data[1:]))
        elif kind == "3":
            self.server.stats.pongs_received += 1
            if not self.ignore_pongs and not self.server._ignore_pongs:
                self.pong.set()
        elif kind == "1":
            self.server._close_session(self, "transport close", mode="quiet")
        elif kind == "2":  # an Engine.IO v3 client pings; answer it
            self.send(["3" + data[1:]])
        elif kind not in "56":
            raise ValueError(f"unknown Engine.IO packet {data[:32]!r}")

    async def _on_binary(self, data: bytes) -> None:
        if self.server._msgpack:
            obj = msgpack.unpackb(data, strict_map_key=False)
            if not isinstance(obj, dict) or type(obj.get("type")) is not int:
                raise ValueError("msgpack Socket.IO packet is not a map with an int type")
            nsp = obj.get("nsp", "/")
            ack_id = obj.get("id")
            if not isinstance(nsp, str) or (ack_id is not None and type(ack_id) is not int):
                raise ValueError("msgpack Socket.IO packet with a bad nsp or id")
            await self._on_packet(_Packet(obj["type"], nsp, obj.get("data"), ack_id, 0))
            return
        pending = self.pending
        if pending is None:
            raise ValueError("binary message without a pending binary packet")
        pending.buffers.append(data)
        if len(pending.buffers) == pending.attachments:
            self.pending = None
            pending.data = _reconstruct(pending.data, pending.buffers)
            await self._on_packet(pending)

    async def _on_packet(self, pkt: _Packet) -> None:
        if pkt.attachments and len(pkt.buffers) < pkt.attachments:
            self.pending = pkt
            return
        server = self.server
        if pkt.type == _CONNECT:
            await server._connect_socket(self, pkt.nsp, pkt.data)
        elif pkt.type == _DISCONNECT:
            sock = self.sockets.get(pkt.nsp)
            if sock is not None:
                server._remove_socket(sock, "client namespace disconnect")
        elif pkt.type in (_EVENT, _BINARY_EVENT):
            server.stats.events_received += 1
            sock = self.sockets.get(pkt.nsp)
            if sock is None or not sock.connected:
                logger.info("TestServer: event for unconnected namespace %s ignored", pkt.nsp)
                return
            data = pkt.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise ValueError(f"event without a name: {data!r}")
            server._dispatch(sock, data[0], data[1:], pkt.id)
        elif pkt.type in (_ACK, _BINARY_ACK):
            server.stats.acks_received += 1
            entry = self.acks.pop(pkt.id, None) if pkt.id is not None else None
            if entry is None or entry[0] != pkt.nsp:
                logger.info("TestServer: unknown ack %s on %s ignored", pkt.id, pkt.nsp)
                return
            args = (
                pkt.data if isinstance(pkt.data, list) else [] if pkt.data is None else [pkt.data]
            )
            waiter = entry[1]
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(args)
            else:
                server._run_handler(waiter, tuple(args), f"ack callback on {pkt.nsp}")
        else:
            raise ValueError(f"unexpected Socket.IO packet type {pkt.type} from a client")

    async def process_held(self) -> None:
        async with self.inbound:
            while self.held_in and not self.frozen and not self.closed:
                await self.receive(self.held_in.pop(0))

    # -- heartbeat ---------------------------------------------------------------------------

    async def ping_loop(self) -> None:
        server = self.server
        while not self.closed:
            await asyncio.sleep(server.ping_interval)
            if self.closed:
                return
            if self.frozen or self.stop_pings or server._stop_pings:
                continue
            self.pong.clear()
            self.send(["2"])
            server.stats.pings_sent += 1
            try:
                await asyncio.wait_for(self.pong.wait(), server.ping_timeout)
            except asyncio.TimeoutError:
                if self.closed or self.frozen or self.stop_pings or server._stop_pings:
                    continue
                logger.info("TestServer: no pong from session %s: closing it", self.sid)
                server._close_session(self, "ping timeout", mode="abort")
                return


class _Logged:
    """One ack-less event as emitted (connection-state recovery)."""

    __slots__ = ("offset", "nsp", "payload", "rooms", "skip", "at")

    def __init__(
        self,
        offset: str,
        nsp: str,
        payload: list[Any],
        rooms: set[str] | None,
        skip: set[str],
        at: float,
    ) -> None:
        self.offset = offset
        self.nsp = nsp
        self.payload = payload
        self.rooms = rooms
        self.skip = skip
        self.at = at


class _LostSession:
    """A socket lost with its link, which may come back (connection-state recovery)."""

    __slots__ = ("pid", "sid", "nsp", "rooms", "offset", "expires")

    def __init__(
        self, pid: str, sid: str, nsp: str, rooms: set[str], offset: str | None, expires: float
    ) -> None:
        self.pid = pid
        self.sid = sid
        self.nsp = nsp
        self.rooms = rooms
        self.offset = offset
        self.expires = expires


class TestServer:
    """In-process Socket.IO v5 / Engine.IO v4 server for tests and demos.

    Serves HTTP long-polling and WebSocket (with the polling to WebSocket upgrade) on one
    port, from an aiohttp application in the running event loop. Everything is scriptable
    from Python::

        server = TestServer()

        @server.on("connect")
        def connect(sid, auth):
            if auth != {"token": "secret"}:
                raise ConnectionRefused("unauthorized", {"reason": "bad token"})

        @server.on("add")
        def add(sid, a, b):
            return a + b                     # the return value is the ack

        @server.on("join", namespace="/chat")
        async def join(sid, room):
            server.enter_room(sid, room)
            await server.emit("joined", sid, to=room, namespace="/chat")

        async with server:                   # start() on a free loopback port, stop() after
            client = fastsio.AsyncClient()
            await client.connect(server.url, auth={"token": "secret"})
            assert await client.call("add", (1, 2)) == 3
            await server.emit("news", {"id": 1}, to=client.get_sid())
            reply = await server.call("question", "?", to=client.get_sid())

    Handlers (:meth:`on`) receive ``(sid, *args)`` where ``sid`` is the Socket.IO sid of the
    client's namespace connection (its ``get_sid(namespace)``). Plain functions run inline in
    arrival order; coroutine functions each run in a task started in arrival order, so they
    may await :meth:`call`. The return value acks the event when the client asked for an ack
    (a tuple is several arguments, None none); an event without a handler is never acked, as
    with a Node server. ``'connect'`` handlers get ``(sid, auth)`` and refuse the connection
    by raising :class:`ConnectionRefused` or returning ``False``; ``'disconnect'`` handlers
    get ``(sid, reason)`` with socket.io's reasons (``'client namespace disconnect'``,
    ``'server namespace disconnect'``, ``'transport close'``, ``'ping timeout'``,
    ``'parse error'``, ``'server shutting down'``); a ``'*'`` handler gets
    ``(event, sid, *args)`` for events without a handler of their own.

    Binary data (``bytes`` anywhere in the arguments) travels both ways: as placeholders and
    attachments with the JSON parser, as msgpack ``bin`` with ``serializer="msgpack"`` (the
    wire format of socket.io-msgpack-parser: one map ``{type, data, nsp, id}`` per packet).

    Fault hooks for client tests: :meth:`drop` (abort the TCP link without a close frame),
    :meth:`close_transport` (close it cleanly), :meth:`stop_pings` (the client then detects a
    ping timeout), :meth:`ignore_pongs` (the server then times the client out),
    :meth:`freeze` (the link stays open but nothing moves either way), :meth:`delay_posts`
    (slow polling uploads), :meth:`disconnect` (Socket.IO namespace disconnect),
    :meth:`send_raw` (arbitrary Engine.IO packets), ``stop(disconnect=False)`` then
    ``start(port=...)`` (a server restart). :meth:`firehose` streams a pre-encoded event as fast as
    the link takes it.

    The server keeps its own codec (independent of fastsio's compiled one), so a codec bug in
    the client cannot hide behind the same bug in the server.

    :param serializer: ``"json"`` (Socket.IO's default parser) or ``"msgpack"``.
    :param transports: transports accepted, ``("polling", "websocket")`` by default.
    :param allow_upgrades: offer the WebSocket upgrade to polling sessions.
    :param namespaces: namespaces clients may connect to; None accepts any namespace. Others
        get CONNECT_ERROR ``{"message": "Invalid namespace"}``.
    :param ping_interval: seconds between Engine.IO pings.
    :param ping_timeout: seconds to wait for each pong before closing the session (a real
        server's behaviour); also advertised to the client, which allows
        ``ping_interval + ping_timeout`` between pings.
    :param max_payload: advertised ``maxPayload``, and the largest WebSocket message or
        polling POST body accepted from a client.
    :param path: Engine.IO path, ``"socket.io"`` by default.
    :param recovery: connection-state recovery as socket.io >= 4.6 with its default in-memory
        adapter, keeping a lost session ``recovery`` seconds (None: off). The CONNECT reply
        carries a ``pid``; every ack-less event gets the packet's offset (a string) as its last
        argument; a client that comes back within the delay with ``{pid, offset}`` gets its
        sid and rooms back, and the events it missed before the CONNECT reply.
        :meth:`recovered` tells whether a socket's connection restored a session.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        *,
        serializer: Serializer = "json",
        transports: Sequence[str] = ("polling", "websocket"),
        allow_upgrades: bool = True,
        namespaces: Iterable[str] | None = None,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        max_payload: int = 1_000_000,
        path: str = "socket.io",
        recovery: float | None = None,
    ) -> None:
        if serializer not in ("json", "msgpack"):
            raise ValueError(f"serializer must be 'json' or 'msgpack', not {serializer!r}")
        unknown = set(transports) - {"polling", "websocket"}
        if unknown or not transports:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {transports!r}")
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be > 0")
        self.serializer: Serializer = serializer
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        self.namespaces = None if namespaces is None else set(namespaces)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.path = "/" + path.strip("/")
        self.recovery = recovery
        # Recovery: every ack-less event emitted, with its targets, in order; and the lost
        # sessions that may still come back, by pid.
        self._offsets = itertools.count()
        self._event_log: collections.deque[_Logged] = collections.deque()
        self._lost: dict[str, _LostSession] = {}
        self.stats = TestServerStats()
        #: Exceptions raised by handlers, in order (they are also logged).
        self.errors: list[BaseException] = []
        self._msgpack = serializer == "msgpack"
        self._handlers: dict[str, dict[str, Handler]] = {}
        self._sessions: dict[str, _Session] = {}
        self._sockets: dict[str, _Socket] = {}
        self._rooms: dict[str, dict[str, set[str]]] = {}  # nsp -> room -> sids
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._stop_pings = False
        self._ignore_pongs = False
        self._post_delay = 0.0
        self._tls = False
        self._runner: Any = None
        self._host = "127.0.0.1"
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Bind and start serving; ``port=0`` picks a free port (see :attr:`port`, :attr:`url`).

        With ``ssl_context`` (a server context) it serves HTTPS and WSS, and :attr:`url` is
        ``https://``. A stopped server can be started again, on the same port to simulate a
        restart.
        """
        from aiohttp import web

        if self._runner is not None:
            raise RuntimeError("server already started")
        app = web.Application(client_max_size=self.max_payload + 1024)
        app.router.add_route("*", self.path + "/", self._handle)
        app.router.add_route("*", self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            site = web.SockSite(runner, sock, ssl_context=ssl_context)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._tls = ssl_context is not None
        self._host, self._port = sock.getsockname()[:2]

    async def stop(self, disconnect: bool = True) -> None:
        """Stop serving and end every session.

        With ``disconnect`` (default) every client first gets a Socket.IO DISCONNECT for each
        namespace, so fastsio clients do not reconnect; with ``disconnect=False`` the links are
        just closed, as when a server process dies, and clients reconnect.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for session in list(self._sessions.values()):
            if disconnect:
                for sock in list(session.sockets.values()):
                    if sock.connected:
                        session.send_packet(_DISCONNECT, sock.nsp)
            self._close_session(session, "server shutting down", mode="close")
        await asyncio.sleep(0)  # disconnect handlers just started get their first step
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._sessions.clear()
        self._sockets.clear()
        self._rooms.clear()

    async def __aenter__(self) -> TestServer:
        if self._runner is None:
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
        """``http://host:port`` (``https://`` with TLS): the URL for a client's ``connect``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._tls else 'http'}://{host}:{self._port}"

    # -- handlers ----------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None, namespace: str = "/") -> Any:
        """Register ``handler`` for ``event`` in ``namespace``; without ``handler``, a decorator.

        See the class documentation for the arguments each kind of handler receives.
        """

        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(namespace, {})[event] = fn
            return fn

        return register if handler is None else register(handler)

    def event(self, handler: Handler) -> Handler:
        """Decorator: register ``handler`` for the event named like the function, in ``/``."""
        return self.on(handler.__name__, handler)  # type: ignore[no-any-return]

    # -- sending -----------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        namespace: str | None = None,
        skip_sid: str | Iterable[str] | None = None,
        callback: Handler | None = None,
    ) -> Awaitable[None]:
        """Emit ``event`` to a socket (``to=sid``), a room, several of them, or (``None``)
        every socket of ``namespace``. A tuple ``data`` is several arguments.

        Rooms and broadcasts are looked up in ``namespace`` (``"/"`` when None); a sid is a
        socket whatever its namespace, unless ``namespace`` is given and differs.

        ``callback`` (only with a single ``sid``) is called with the client's ack arguments.
        The packets are queued or written before this returns; the result may be awaited
        (python-socketio style) or ignored, so sync handlers can emit too.
        """
        if not isinstance(event, str):
            raise TypeError("event name must be a str")
        payload = [event, *_args_of(data)]
        if self.recovery is not None and callback is None:
            payload = self._log_event(payload, to if to is not None else room, namespace, skip_sid)
        targets = self._targets(to if to is not None else room, namespace, skip_sid)
        if callback is not None:
            if len(targets) != 1:
                raise ValueError("callback needs exactly one target sid")
            sock = targets[0]
            ack_id = sock.session.add_ack(sock.nsp, callback)
            sock.send(_encode_packet(self._msgpack, _EVENT, sock.nsp, payload, ack_id))
            self.stats.events_sent += 1
            return _DONE
        frames: list[_Frame] | None = None
        for sock in targets:
            if frames is None:
                frames = _encode_packet(self._msgpack, _EVENT, sock.nsp, payload)
            sock.send(frames)
            self.stats.events_sent += 1
        return _DONE

    def send(
        self, data: Any, to: str | Iterable[str] | None = None, namespace: str | None = None
    ) -> Awaitable[None]:
        """Emit a ``'message'`` event."""
        return self.emit("message", data, to=to, namespace=namespace)

    async def call(self, event: str, data: Any = None, *, to: str, timeout: float = 5.0) -> Any:
        """Emit ``event`` to the socket ``to`` with an ack id and return the client's ack.

        The result follows python-socketio: None for no arguments, the argument for one, a
        tuple for several. Raises ``TimeoutError`` after ``timeout`` seconds,
        :class:`ClientGone` if the socket disconnects first, ``KeyError`` for an unknown sid.
        Do not await it in the socket's own ``connect`` handler: the client only gets the
        event once that handler has returned.
        """
        sock = self._socket(to)
        waiter: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        session = sock.session
        ack_id = session.add_ack(sock.nsp, waiter)
        sock.send(_encode_packet(self._msgpack, _EVENT, sock.nsp, [event, *_args_of(data)], ack_id))
        self.stats.events_sent += 1
        try:
            args = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no ack for {event!r} from {to} within {timeout} s") from None
        finally:
            session.acks.pop(ack_id, None)
        return _ack_value(args)

    def send_raw(self, sid: str, *frames: str | bytes) -> None:
        """Send Engine.IO packets verbatim to a session (``sid``: a Socket.IO or Engine.IO sid).

        ``str`` is a text packet, type digit first (``'42["x",1]'``); ``bytes`` a binary
        message. For hostile-server tests.
        """
        self._session(sid).send(list(frames))

    async def firehose(
        self,
        to: str,
        count: int,
        event: str = DEFAULT_EVENT,
        data: Any = DEFAULT_PAYLOAD,
        *,
        packet: str | bytes | None = None,
    ) -> int:
        """Send ``count`` identical events to the socket ``to`` as fast as its link takes them.

        The event (``event`` with the one argument ``data``, or ``packet``: a pre-encoded
        Engine.IO packet such as ``'42["tick",1]'``, or msgpack bytes) is encoded once. On
        WebSocket a blob of ready-made frames is written straight to the TCP transport, with
        write-buffer flow control; on polling the packets are queued a few thousand ahead of
        the client's requests. Returns how many were sent (fewer if the session ended).
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        sock = self._socket(to)
        session = sock.session
        if packet is not None:
            frames: list[_Frame] = [packet]
        else:
            frames = _encode_packet(self._msgpack, _EVENT, sock.nsp, [event, data])
        wire = b"".join(
            encode_ws_frame(f.encode(), binary=False)
            if isinstance(f, str)
            else encode_ws_frame(f, binary=True)
            for f in frames
        )
        per_blob = max(1, _BLOB_TARGET // len(wire))
        blob = wire * per_blob
        sent = 0
        while sent < count and not session.closed and sock.connected:
            n = min(per_blob, count - sent)
            if session.transport == "websocket":
                if session.frozen:
                    await asyncio.sleep(0.005)
                    continue
                session.flush()
                raw = session.raw
                if raw is None or raw.is_closing():
                    break
                raw.write(blob if n == per_blob else wire * n)
                while raw.get_write_buffer_size() > _HIGH_WATER and not raw.is_closing():
                    await asyncio.sleep(0.001)
            else:
                if len(session.outbox) > _POLL_FIREHOSE_BACKLOG:
                    await asyncio.sleep(0.001)
                    continue
                for _ in range(n):
                    session.outbox.extend(frames)
                session.wake_poll()
            sent += n
            self.stats.events_sent += n
            await asyncio.sleep(0)
        return sent

    # -- rooms and sessions ------------------------------------------------------------------

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Put the socket ``sid`` in ``room`` (of its namespace)."""
        sock = self._socket(sid, namespace)
        sock.rooms.add(room)
        self._rooms.setdefault(sock.nsp, {}).setdefault(room, set()).add(sid)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Take the socket ``sid`` out of ``room``."""
        sock = self._socket(sid, namespace)
        sock.rooms.discard(room)
        members = self._rooms.get(sock.nsp, {}).get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._rooms[sock.nsp][room]

    def rooms(self, sid: str) -> set[str]:
        """The rooms of the socket ``sid`` (its own sid included)."""
        return set(self._socket(sid).rooms)

    def sids(self, namespace: str = "/", room: str | None = None) -> list[str]:
        """Socket.IO sids connected to ``namespace`` (or in ``room`` of it), in connect order."""
        if room is not None:
            members = self._rooms.get(namespace, {}).get(room, set())
            return [s for s in self._sockets if s in members and self._sockets[s].connected]
        return [s for s, k in self._sockets.items() if k.nsp == namespace and k.connected]

    def handshake(self, sid: str) -> Handshake:
        """What the client of socket ``sid`` sent: auth, headers and query."""
        sock = self._socket(sid)
        s = sock.session
        return Handshake(sock.sid, s.sid, sock.nsp, sock.auth, dict(s.headers), dict(s.query))

    def transport(self, sid: str) -> str:
        """``"polling"`` or ``"websocket"``: the current transport of a session."""
        return self._session(sid).transport

    def eio_sid(self, sid: str) -> str:
        """The Engine.IO session id of the socket ``sid``."""
        return self._socket(sid).session.sid

    def disconnect(self, sid: str, namespace: str | None = None) -> Awaitable[None]:
        """Socket.IO disconnect of one namespace connection (``'io server disconnect'`` for
        the client, which does not reconnect). The Engine.IO session stays open."""
        sock = self._socket(sid, namespace)
        sock.session.send_packet(_DISCONNECT, sock.nsp)
        self._remove_socket(sock, "server namespace disconnect")
        return _DONE

    # -- fault hooks -------------------------------------------------------------------------

    def drop(self, sid: str | None = None) -> None:
        """Abort the TCP link(s) of one session (``sid``: Socket.IO or Engine.IO) or of every
        session: no close frame, no Engine.IO close packet, as when a network path dies. A
        WebSocket client sees ``'transport close'``; a polling client a failed request."""
        for session in self._pick(sid):
            self._close_session(session, "transport close", mode="abort")

    def close_transport(self, sid: str | None = None) -> None:
        """Close the link(s) cleanly at the Engine.IO level, as socket.io's
        ``socket.conn.close()``: a WebSocket close frame, or a CLOSE packet on polling. The
        client sees ``'transport close'`` and reconnects."""
        for session in self._pick(sid):
            self._close_session(session, "forced close", mode="close")

    def stop_pings(self, stop: bool = True, sid: str | None = None) -> None:
        """Stop (or resume) sending Engine.IO pings, to one session or to all sessions
        including later ones. The link stays up otherwise, so a client detects a
        ``'ping timeout'`` after ``ping_interval + ping_timeout``."""
        if sid is None:
            self._stop_pings = stop
        else:
            self._session(sid).stop_pings = stop

    def ignore_pongs(self, ignore: bool = True, sid: str | None = None) -> None:
        """Ignore (or not) the client's pongs, to one session or all including later ones: the
        server then closes the session ``ping_timeout`` after its next ping, as a real server
        does with an unresponsive client (the client sees ``'transport close'``)."""
        if sid is None:
            self._ignore_pongs = ignore
        else:
            self._session(sid).ignore_pongs = ignore

    def delay_posts(self, seconds: float) -> None:
        """Wait ``seconds`` before reading each polling POST from now on (a slow uplink or a
        busy server); ``0`` turns it off. A client that gives up on a POST meanwhile loses its
        packets, as with any server."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._post_delay = seconds

    def freeze(self, sid: str | None = None, frozen: bool = True) -> None:
        """Freeze (or thaw) one session or every current session: the TCP link stays open but
        nothing moves either way. Outgoing packets and pings are held, incoming packets are
        held unprocessed; a thaw delivers both, in order. A client detects a ``'ping
        timeout'`` if the freeze lasts longer than ``ping_interval + ping_timeout``."""
        for session in self._pick(sid):
            if session.frozen == frozen:
                continue
            session.frozen = frozen
            if not frozen:
                self._spawn(session.process_held())
                session.flush()

    # -- internals: lookup -------------------------------------------------------------------

    def _socket(self, sid: str, namespace: str | None = None) -> _Socket:
        sock = self._sockets.get(sid)
        if sock is None:
            raise KeyError(f"no connected socket with sid {sid!r}")
        if namespace is not None and namespace != sock.nsp:
            raise KeyError(f"socket {sid!r} is in namespace {sock.nsp}, not {namespace}")
        return sock

    def _session(self, sid: str) -> _Session:
        session = self._sessions.get(sid)
        if session is not None:
            return session
        return self._socket(sid).session

    def _pick(self, sid: str | None) -> list[_Session]:
        if sid is None:
            return [s for s in self._sessions.values() if not s.closed]
        return [self._session(sid)]

    def _targets(
        self,
        to: str | Iterable[str] | None,
        namespace: str | None,
        skip: str | Iterable[str] | None,
    ) -> list[_Socket]:
        skipped = {skip} if isinstance(skip, str) else set(skip or ())
        nsp = namespace or "/"
        if to is None:
            sids: Iterable[str] = [
                s for s, k in self._sockets.items() if k.nsp == nsp and k.connected
            ]
        else:
            names = [to] if isinstance(to, str) else list(to)
            rooms = self._rooms.get(nsp, {})
            found: dict[str, None] = {}
            for name in names:
                sock = self._sockets.get(name)
                if sock is not None and (namespace is None or sock.nsp == namespace):
                    found[name] = None  # a sid (also while its connect handler runs)
                    continue
                for s in rooms.get(name, ()):
                    found[s] = None
            sids = found
        return [self._sockets[s] for s in sids if s not in skipped]

    # -- internals: Socket.IO ----------------------------------------------------------------

    async def _connect_socket(self, session: _Session, nsp: str, auth: Any) -> None:
        if nsp in session.sockets:
            logger.info("TestServer: second CONNECT for %s ignored", nsp)
            return
        if self.namespaces is not None and nsp not in self.namespaces:
            self.stats.refused += 1
            session.send_packet(_CONNECT_ERROR, nsp, {"message": "Invalid namespace"})
            return
        lost = self._take_lost(nsp, auth)
        sid = lost.sid if lost is not None else secrets.token_urlsafe(15)
        sock = _Socket(sid, nsp, session, auth)
        session.sockets[nsp] = sock
        self._sockets[sid] = sock
        self.enter_room(sid, sid)
        if lost is not None:
            for room in lost.rooms:
                self.enter_room(sid, room, nsp)
        if self.recovery is not None:
            sock.pid = lost.pid if lost is not None else secrets.token_urlsafe(15)
        handler = self._handlers.get(nsp, {}).get("connect")
        refusal: dict[str, Any] | None = None
        if handler is not None:
            try:
                result = handler(sid, auth)
                if inspect.isawaitable(result):
                    result = await result
                if result is False:
                    refusal = {"message": "Connection rejected by server"}
            except ConnectionRefused as exc:
                refusal = {"message": exc.message}
                if exc.data is not None:
                    refusal["data"] = exc.data
            except Exception as exc:
                self._handler_error(exc, f"connect handler of {nsp}")
                refusal = {"message": "Internal server error"}
        if session.closed or session.sockets.get(nsp) is not sock:
            return
        if refusal is not None:
            self._forget_socket(sock)
            self.stats.refused += 1
            session.send_packet(_CONNECT_ERROR, nsp, refusal)
            return
        sock.connected = True
        self.stats.sockets += 1
        reply: dict[str, Any] = {"sid": sid}
        if sock.pid is not None:
            reply["pid"] = sock.pid
        if lost is not None:
            # As socket.io: the missed packets go out before the CONNECT reply.
            sock.recovered = True
            self.stats.recoveries += 1
            for payload in self._missed(sock, lost.offset):
                session.send_packet(_EVENT, nsp, payload)
        session.send_packet(_CONNECT, nsp, reply)
        held, sock.held = sock.held, []
        session.send(held)

    # -- internals: connection-state recovery ------------------------------------------------

    def _log_event(
        self,
        payload: list[Any],
        to: str | Iterable[str] | None,
        namespace: str | None,
        skip: str | Iterable[str] | None,
    ) -> list[Any]:
        offset = format(next(self._offsets), "x")
        rooms = None if to is None else ({to} if isinstance(to, str) else set(to))
        skipped = {skip} if isinstance(skip, str) else set(skip or ())
        now = time.monotonic()
        log = self._event_log
        assert self.recovery is not None
        while log and log[0].at < now - self.recovery:
            log.popleft()
        log.append(_Logged(offset, namespace or "/", payload, rooms, skipped, now))
        return [*payload, offset]

    def _take_lost(self, nsp: str, auth: Any) -> _LostSession | None:
        if self.recovery is None or not isinstance(auth, dict):
            return None
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None  # as socket.io: both are needed
        lost = self._lost.pop(pid, None)
        if lost is None or lost.nsp != nsp or lost.expires < time.monotonic():
            return None
        if not any(e.offset == offset for e in self._event_log):
            return None  # too old: the log no longer reaches back to it
        lost.offset = offset
        return lost

    def _missed(self, sock: _Socket, offset: str | None) -> list[list[Any]]:
        out: list[list[Any]] = []
        after = False
        for entry in self._event_log:
            if not after:
                after = entry.offset == offset
                continue
            if entry.nsp != sock.nsp or sock.sid in entry.skip:
                continue
            if entry.rooms is None or entry.rooms & (sock.rooms | {sock.sid}):
                out.append([*entry.payload, entry.offset])
        return out

    def recovered(self, sid: str) -> bool:
        """Whether the connection of socket ``sid`` restored a lost session (recovery)."""
        sock = self._sockets.get(sid)
        return sock is not None and sock.recovered

    def _forget_socket(self, sock: _Socket) -> None:
        for room in list(sock.rooms):
            self.leave_room(sock.sid, room)
        self._sockets.pop(sock.sid, None)
        if sock.session.sockets.get(sock.nsp) is sock:
            del sock.session.sockets[sock.nsp]
        session = sock.session
        for ack_id, (nsp, waiter) in list(session.acks.items()):
            if nsp == sock.nsp:
                del session.acks[ack_id]
                if isinstance(waiter, asyncio.Future) and not waiter.done():
                    waiter.set_exception(ClientGone(f"socket {sock.sid} disconnected"))

    def _remove_socket(self, sock: _Socket, reason: str) -> None:
        was_connected = sock.connected
        sock.connected = False
        if (
            was_connected
            and sock.pid is not None
            and reason not in ("client namespace disconnect", "server namespace disconnect")
        ):
            # Lost, not closed on purpose: it may come back within the recovery delay.
            assert self.recovery is not None
            self._lost[sock.pid] = _LostSession(
                sock.pid,
                sock.sid,
                sock.nsp,
                set(sock.rooms) - {sock.sid},
                None,
                time.monotonic() + self.recovery,
            )
        self._forget_socket(sock)
        if was_connected:
            handler = self._handlers.get(sock.nsp, {}).get("disconnect")
            if handler is not None:
                self._run_handler(handler, (sock.sid, reason), f"disconnect handler of {sock.nsp}")

    def _dispatch(self, sock: _Socket, event: str, args: list[Any], ack_id: int | None) -> None:
        handlers = self._handlers.get(sock.nsp, {})
        handler = handlers.get(event) if event not in ("connect", "disconnect") else None
        if handler is not None:
            call_args: tuple[Any, ...] = (sock.sid, *args)
        else:
            handler = handlers.get("*")
            if handler is None:
                return
            call_args = (event, sock.sid, *args)
        self._run_handler(handler, call_args, f"handler of {event!r} in {sock.nsp}", sock, ack_id)

    def _run_handler(
        self,
        handler: Handler,
        args: tuple[Any, ...],
        what: str,
        sock: _Socket | None = None,
        ack_id: int | None = None,
    ) -> None:
        try:
            result = handler(*args)
        except Exception as exc:
            self._handler_error(exc, what)
            return
        if inspect.isawaitable(result):
            task = self._spawn(result)
            if sock is not None and ack_id is not None:

                def ack_when_done(t: asyncio.Task[Any], sock: _Socket = sock) -> None:
                    if not t.cancelled() and t.exception() is None:
                        self._send_ack(sock, ack_id, t.result())

                task.add_done_callback(ack_when_done)
            task.add_done_callback(lambda t: self._task_error(t, what))
            return
        if sock is not None and ack_id is not None:
            self._send_ack(sock, ack_id, result)

    def _send_ack(self, sock: _Socket, ack_id: int, result: Any) -> None:
        if not sock.connected or sock.session.closed:
            return
        sock.session.send_packet(_ACK, sock.nsp, _args_of(result), ack_id)
        self.stats.acks_sent += 1

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _task_error(self, task: asyncio.Task[Any], what: str) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._handler_error(task.exception(), what)  # type: ignore[arg-type]

    def _handler_error(self, exc: BaseException, what: str) -> None:
        self.errors.append(exc)
        logger.error("TestServer: %s raised", what, exc_info=exc)

    # -- internals: Engine.IO ----------------------------------------------------------------

    def _open_packet(self, session: _Session) -> str:
        upgrades = (
            ["websocket"]
            if session.transport == "polling"
            and self.allow_upgrades
            and "websocket" in self.transports
            else []
        )
        return (
            "0"
            + orjson.dumps(
                {
                    "sid": session.sid,
                    "upgrades": upgrades,
                    "pingInterval": int(self.ping_interval * 1000),
                    "pingTimeout": int(self.ping_timeout * 1000),
                    "maxPayload": self.max_payload,
                }
            ).decode()
        )

    def _new_session(self, transport: str, request: Any) -> _Session:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]}, {value}" if k in headers else value
        session = _Session(self, transport, headers, dict(request.query))
        self._sessions[session.sid] = session
        self.stats.sessions += 1
        session.ping_task = self._spawn(session.ping_loop())
        return session

    def _close_session(self, session: _Session, reason: str, mode: str) -> None:
        """End a session. ``mode``: ``"abort"`` (TCP abort), ``"close"`` (close frame or a
        CLOSE packet on polling) or ``"quiet"`` (the client closed it)."""
        if session.closed:
            return
        session.closed = True
        if session.ping_task is not None and session.ping_task is not asyncio.current_task():
            session.ping_task.cancel()
        for sock in list(session.sockets.values()):
            self._remove_socket(sock, reason)
        for _nsp, waiter in session.acks.values():
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(ClientGone("session closed"))
        session.acks.clear()
        if session.probe_raw is not None:
            session.probe_raw.abort()
        if session.transport == "websocket":
            raw = session.raw
            if raw is not None and not raw.is_closing():
                if mode == "abort":
                    raw.abort()
                else:
                    if not session.frozen and mode == "close":
                        session._write_ws(list(session.outbox))
                        raw.write(b"\x88\x02\x03\xe8")  # close frame, 1000
                    raw.close()
            self._sessions.pop(session.sid, None)
            return
        # polling
        if mode == "abort":
            if session.poll_transport is not None:
                session.poll_transport.abort()
            self._sessions.pop(session.sid, None)
            session.wake_poll(force=True)
            return
        if mode == "close":
            session.frozen = False
            session.outbox.append("1")
            session.wake_poll(force=True)
            # The next GET collects the CLOSE packet; forget the session soon after anyway.
            timer = asyncio.get_running_loop().call_later(
                self.ping_interval + self.ping_timeout, self._forget_session, session
            )
            self._timers.add(timer)
            return
        self._sessions.pop(session.sid, None)
        session.wake_poll(force=True)

    def _forget_session(self, session: _Session) -> None:
        if self._sessions.get(session.sid) is session:
            del self._sessions[session.sid]

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        query = request.query
        if query.get("EIO") != "4":
            return _json_error(5)
        transport = query.get("transport")
        if transport not in ("polling", "websocket") or transport not in self.transports:
            return _json_error(0)
        sid = query.get("sid")
        if transport == "websocket":
            if request.method != "GET" or request.headers.get("Upgrade", "").lower() != "websocket":
                return _json_error(3)
            return await self._handle_websocket(request, sid)
        if sid is None:
            if request.method != "GET":
                return _json_error(2)
            new = self._new_session("polling", request)
            return self._poll_response(self._open_packet(new))
        found = self._sessions.get(sid)
        if found is None or (found.closed and not found.outbox):
            return _json_error(1)
        session = found
        if request.method == "GET":
            if session.transport != "polling" or session.poll_waiter is not None:
                return _json_error(3)
            waited = False
            if not session.closed and (
                session.frozen or (not session.outbox and not session.upgrading)
            ):
                waited = True
                waiter = asyncio.get_running_loop().create_future()
                session.poll_waiter = waiter
                session.poll_transport = request.transport
                try:
                    await waiter
                finally:
                    session.poll_waiter = None
                    session.poll_transport = None
            if session.closed:
                if session.outbox and self._sessions.get(session.sid) is session:
                    # Closed by the server: this GET delivers the CLOSE packet.
                    self._forget_session(session)
                    return self._poll_response(session.take_poll_payload())
                # Closed while this GET was pending (the client's CLOSE, a drop): release it.
                return self._poll_response("6") if waited else _json_error(1)
            return self._poll_response(session.take_poll_payload())
        if request.method == "POST":
            if session.closed:
                return _json_error(1)
            if request.content_length is not None and request.content_length > self.max_payload:
                self._close_session(session, "transport error", mode="abort")
                return web.Response(status=413, text="payload too large")
            try:
                if self._post_delay:
                    await asyncio.sleep(self._post_delay)
                body = await request.text()
            except (OSError, asyncio.CancelledError) as exc:
                # The client gave up on the request (or the link died) before sending all of
                # it: its packets are lost, as with any server, but the session goes on.
                logger.info("TestServer: polling POST of %s not received: %r", session.sid, exc)
                return web.Response(status=400, text="request body not received")
            try:
                frames = _decode_poll_payload(body)
            except Exception as exc:
                logger.warning("TestServer: bad polling payload (%r): closing the session", exc)
                self._close_session(session, "parse error", mode="quiet")
                return _json_error(3)
            async with session.inbound:
                for frame in frames:
                    await session.receive(frame)
            return web.Response(text="ok", content_type="text/plain")
        return _json_error(2)

    def _poll_response(self, body: str) -> Any:
        from aiohttp import web

        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def _handle_websocket(self, request: Any, sid: str | None) -> Any:
        from aiohttp import WSMsgType as AioMsgType
        from aiohttp import web

        probing: _Session | None = None
        if sid is not None:
            probing = self._sessions.get(sid)
            if probing is None or probing.closed:
                return _json_error(1)
            if probing.transport != "polling" or probing.upgrading or not self.allow_upgrades:
                return _json_error(3)
        ws = web.WebSocketResponse(
            autoping=True, compress=False, max_msg_size=self.max_payload, heartbeat=None
        )
        await ws.prepare(request)
        raw = request.transport
        if probing is None:
            session = self._new_session("websocket", request)
            session.ws, session.raw = ws, raw
            session.send([self._open_packet(session)])
        else:
            session = probing
            session.probe_raw = raw
        upgraded = probing is None
        try:
            async for msg in ws:
                if session.closed:
                    break
                if msg.type == AioMsgType.TEXT:
                    frame: _Frame = msg.data
                elif msg.type == AioMsgType.BINARY:
                    frame = msg.data
                else:
                    break
                if not upgraded:
                    # Upgrade handshake: 2probe -> 3probe (and a noop to release the pending
                    # GET), then 5 switches the session to this WebSocket.
                    if frame == "2probe":
                        raw.write(encode_ws_frame(b"3probe"))
                        session.upgrading = True
                        session.wake_poll(force=True)
                    elif frame == "5" and session.upgrading:
                        session.upgrading = False
                        session.probe_raw = None
                        session.transport = "websocket"
                        session.ws, session.raw = ws, raw
                        upgraded = True
                        self.stats.upgrades += 1
                        session.wake_poll(force=True)
                        session.flush()
                    else:
                        logger.warning("TestServer: unexpected %r during an upgrade", frame)
                        break
                    continue
                async with session.inbound:
                    await session.receive(frame)
        finally:
            if upgraded:
                if session.raw is raw:
                    self._close_session(session, "transport close", mode="quiet")
            elif not session.closed:
                session.upgrading = False  # failed probe: the session goes on with polling
                session.probe_raw = None
                session.wake_poll()
        return ws


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
