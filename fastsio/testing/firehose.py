"""``FirehoseServer``: streams pre-encoded events to every client, for benchmarks and demos.

Owns what a firehose does at the Socket.IO level: namespace connects, the stream and its ``done``
event, the ack echo, its counters. Must not know how sessions are framed or pinged
(``engineio.py``) or how the picows listener works (``transports.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastsio._ext._core import ACK, BINARY_ACK, BINARY_EVENT, CONNECT, DISCONNECT, EVENT

from .codec import Frame, Packet, Serializer, encode_packet
from .engineio import Session
from .transports import WebSocketServer

DEFAULT_EVENT = "tick"
"""Event name streamed by default."""
DEFAULT_PAYLOAD: dict[str, Any] = {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}
"""Event argument streamed by default: a small market-data tick."""


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


class FirehoseServer(WebSocketServer):
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
    :param rate: events per second to each client (paced in ticks of 10 ms on a fixed timeline,
        so a late tick catches up); ``None`` (default) streams as fast as the link takes them.
    :param ping_interval: seconds between Engine.IO pings (``pingInterval`` in the open packet).
    :param ping_timeout: advertised ``pingTimeout`` in seconds (not enforced: a client saturated
        by the stream may answer late, and that is not what a benchmark measures).
    :param max_payload: advertised ``maxPayload`` in bytes; also the largest WebSocket frame
        the server accepts from a client.
    :param path: Engine.IO path, ``"socket.io"`` by default.
    """

    _enforce_pongs = False

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
        rate: float | None = None,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        max_payload: int = 1_000_000,
        path: str = "socket.io",
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 (or None: as fast as possible)")
        super().__init__(
            serializer=serializer,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            path=path,
        )
        self.count = count
        self.serializer: Serializer = serializer
        self.event = event
        self.payload = payload
        self.packet = packet
        self.namespace = namespace
        self.ack_echo = ack_echo
        self.rate = rate
        self.stats = ServerStats()

    async def __aenter__(self) -> FirehoseServer:
        await super().__aenter__()
        return self

    async def stop(self, disconnect: bool = True) -> None:
        """Disconnect every client (Socket.IO DISCONNECT, then WebSocket close) and stop;
        ``disconnect=False`` skips the DISCONNECT packets."""
        await super().stop(disconnect)

    def _make_session(
        self, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> Session:
        return _FirehoseSession(self, transport, headers, query)

    def _on_link_open(self, session: Session) -> None:
        """Count the connection."""
        self.stats.connections += 1
        self.stats.active += 1

    def _on_link_closed(self, session: Session) -> None:
        """Count the connection as gone."""
        self.stats.active -= 1

    def _stream_frames(self, nsp: str) -> list[Frame]:
        """The Engine.IO packets of one stream event on ``nsp``."""
        if self.packet is not None:
            return [self.packet if self._msgpack else self.packet.decode()]
        return encode_packet(self._msgpack, EVENT, nsp, [self.event, self.payload])


class _FirehoseSession(Session):
    """One client of a :class:`FirehoseServer`: its namespaces and its stream."""

    server: FirehoseServer

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.namespaces: dict[str, str] = {}  # namespace -> Socket.IO sid
        self.stream_nsp: str | None = None
        self.streaming = False

    def on_packet(self, pkt: Packet) -> None:
        server = self.server
        if pkt.type == CONNECT:
            self._on_connect(pkt.nsp)
        elif pkt.type == DISCONNECT:
            self.namespaces.pop(pkt.nsp, None)
        elif pkt.type in (EVENT, BINARY_EVENT):
            server.stats.events_received += 1
            if server.ack_echo and pkt.id is not None and pkt.nsp in self.namespaces:
                args = pkt.data[1:] if isinstance(pkt.data, list) else []
                self.send(encode_packet(server._msgpack, ACK, pkt.nsp, args, pkt.id))
                server.stats.acks_sent += 1
        elif pkt.type not in (ACK, BINARY_ACK):
            raise ValueError(f"unexpected Socket.IO packet type {pkt.type} from a client")

    def _on_connect(self, nsp: str) -> None:
        server = self.server
        sid = self.namespaces.get(nsp) or secrets.token_urlsafe(15)
        self.namespaces[nsp] = sid
        self.send(encode_packet(server._msgpack, CONNECT, nsp, {"sid": sid}))
        server.stats.namespaces_connected += 1
        if server.count > 0 and not self.streaming and server.namespace in (None, nsp):
            self.streaming = True
            self.stream_nsp = nsp
            server._spawn(self._stream(nsp))

    async def _stream(self, nsp: str) -> None:
        server = self.server
        stats = server.stats

        def sent(n: int) -> None:
            stats.events_sent += n

        done = await self.stream(
            server._stream_frames(nsp),
            server.count,
            lambda: nsp in self.namespaces,
            sent,
            server.rate,
        )
        if done == server.count and not self.closed and nsp in self.namespaces:
            self.send(encode_packet(server._msgpack, EVENT, nsp, ["done", server.count]))
            stats.streams_completed += 1

    def on_close(self, reason: str) -> None:
        self.namespaces.clear()

    def send_disconnects(self) -> None:
        for nsp in list(self.namespaces):
            self.send(encode_packet(self.server._msgpack, DISCONNECT, nsp))
