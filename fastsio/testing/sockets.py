"""The Socket.IO state of one ``TestServer`` session: its namespace sockets and awaited acks.

Owns what a session holds for ``TestServer`` (a socket per namespace, packets held while a
connect handler runs, the acks the server waits for) and turns each client packet into a call
on the server (connect, disconnect, event, ack). Must not know how the server looks sockets up
or runs handlers (``testserver.py``), nor Engine.IO (``engineio.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastsio._ext._core import ACK, BINARY_ACK, BINARY_EVENT, CONNECT, DISCONNECT, EVENT

from .codec import Frame, Packet, encode_packet
from .engineio import Session

if TYPE_CHECKING:
    from .testserver import TestServer

logger = logging.getLogger("fastsio.testing")

Handler = Callable[..., Any]
"""A handler registered with :meth:`TestServer.on`: sync or async, see there for arguments."""


class ClientGone(ConnectionError):
    """:meth:`TestServer.call` failed: the client's socket disconnected before it acked."""


def args_of(data: Any) -> list[Any]:
    """python-socketio's rule: a tuple is several arguments, None none, anything else one."""
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


class Socket:
    """One namespace connection of a session."""

    __slots__ = ("sid", "nsp", "session", "auth", "connected", "rooms", "held", "pid", "recovered")

    def __init__(self, sid: str, nsp: str, session: ScriptedSession, auth: Any) -> None:
        self.sid = sid
        self.nsp = nsp
        self.session = session
        self.auth = auth
        self.connected = False
        self.rooms: set[str] = set()
        self.pid: str | None = None  # private session id (connection-state recovery)
        self.recovered = False
        # Packets emitted to the socket while its connect handler runs: sent after CONNECT.
        self.held: list[Frame] = []

    def send(self, frames: list[Frame]) -> None:
        if self.connected:
            self.session.send(frames)
        else:
            self.held.extend(frames)


class ScriptedSession(Session):
    """One Engine.IO session of a :class:`TestServer`: its sockets and the acks it awaits."""

    server: TestServer

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sockets: dict[str, Socket] = {}
        self.acks: dict[int, tuple[str, asyncio.Future[list[Any]] | Handler]] = {}
        self.ack_seq = 0

    def send_packet(
        self, ptype: int, nsp: str, data: Any = None, ack_id: int | None = None
    ) -> None:
        self.send(encode_packet(self.server._msgpack, ptype, nsp, data, ack_id))

    def add_ack(self, nsp: str, waiter: asyncio.Future[list[Any]] | Handler) -> int:
        ack_id = self.ack_seq
        self.ack_seq += 1
        self.acks[ack_id] = (nsp, waiter)
        return ack_id

    def on_packet(self, pkt: Packet) -> Awaitable[None] | None:
        server = self.server
        if pkt.type == CONNECT:
            # Awaited before the session's next packet: a connect handler may await.
            return server._connect_socket(self, pkt.nsp, pkt.data)
        if pkt.type == DISCONNECT:
            sock = self.sockets.get(pkt.nsp)
            if sock is not None:
                server._remove_socket(sock, "client namespace disconnect")
        elif pkt.type in (EVENT, BINARY_EVENT):
            server.stats.events_received += 1
            sock = self.sockets.get(pkt.nsp)
            if sock is None or not sock.connected:
                logger.info("TestServer: event for unconnected namespace %s ignored", pkt.nsp)
                return None
            data = pkt.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise ValueError(f"event without a name: {data!r}")
            server._dispatch(sock, data[0], data[1:], pkt.id)
        elif pkt.type in (ACK, BINARY_ACK):
            server.stats.acks_received += 1
            self._on_ack(pkt)
        else:
            raise ValueError(f"unexpected Socket.IO packet type {pkt.type} from a client")
        return None

    def _on_ack(self, pkt: Packet) -> None:
        entry = self.acks.pop(pkt.id, None) if pkt.id is not None else None
        if entry is None or entry[0] != pkt.nsp:
            logger.info("TestServer: unknown ack %s on %s ignored", pkt.id, pkt.nsp)
            return
        args = pkt.data if isinstance(pkt.data, list) else [] if pkt.data is None else [pkt.data]
        waiter = entry[1]
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():
                waiter.set_result(args)
        else:
            self.server._run_handler(waiter, tuple(args), f"ack callback on {pkt.nsp}")

    def on_close(self, reason: str) -> None:
        for sock in list(self.sockets.values()):
            self.server._remove_socket(sock, reason)
        for _nsp, waiter in self.acks.values():
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(ClientGone("session closed"))
        self.acks.clear()

    def send_disconnects(self) -> None:
        for sock in list(self.sockets.values()):
            if sock.connected:
                self.send_packet(DISCONNECT, sock.nsp)
