"""The namespace life cycle: one connection attempt, namespaces accepted, refused and closed.

Owns the state of "what is connected": the Engine.IO session in use, the session that was
*kept* (every namespace accepted, or each one as it is with ``connect(wait=False)``), the
namespaces asked for, accepted, connected and refused, connection-state recovery per namespace
(the server's ``pid``, whether the last connect restored the session, which namespace records
or strips offsets), and the two ends of a session: lost (every kept namespace gets its
``disconnect``) and final (no reconnection follows, ``wait()`` returns).

It must not know how an Engine.IO session is opened (the client hands it a connected one), how
packets are buffered or retried (the Outbox, through ``flush``/``drain``/``drop``/``link_lost``),
how handlers are looked up or run (``trigger``/``spawn``), nor when to reconnect (the client
decides from what ``engine_lost`` returns).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from . import exceptions
from ._ext._core import (
    ACK,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    Dispatcher,
    EngineHooks,
    NamespaceSlot,
    Packet,
)
from ._flag import Flag
from .delivery import Outbox, args_of
from .eio3 import auth_query, namespace_with_query
from .reasons import Reason


class Session(EngineHooks, Protocol):
    """What the life cycle needs of an Engine.IO session (``EngineIO`` or ``EngineIO3``); it is
    also what the core calls (``EngineHooks``), bound by ``set_engine`` for the attempt."""

    version: int

    @property
    def sid(self) -> str | None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def _fail(self, reason: str, exc: BaseException | None) -> None: ...

    async def close(self) -> None: ...


class NamespaceLifecycle:
    """Namespaces from CONNECT to DISCONNECT, over the sessions of one ``connect()``.

    :param conn: the compiled core (sends CONNECT/DISCONNECT/ACK, holds the namespace slots).
    :param outbox: the outgoing packets: flushed when a namespace is kept, failed when lost.
    :param trigger: ``trigger(event, nsp, *args)`` fires a client life-cycle event.
    :param spawn: ``spawn(awaitable)`` runs a coroutine in the background, kept referenced.
    :param reconnecting: true while a reconnection loop runs (packets are then buffered).
    :param session_ended: called when a kept session ends (before the ``disconnect`` events).
    """

    _eio: Session | None
    _namespaces: dict[str, str | None]

    def __init__(
        self,
        conn: Dispatcher,
        outbox: Outbox,
        logger: logging.Logger,
        trigger: Callable[..., None],
        spawn: Callable[[Awaitable[Any]], Any],
        reconnecting: Callable[[], bool],
        session_ended: Callable[[], None],
        *,
        strip_offsets: bool = False,
        buffer_when_disconnected: bool = False,
        eio_version: int | None = None,
    ) -> None:
        self.conn = conn
        self.outbox = outbox
        self.logger = logger
        self.trigger = trigger
        self.spawn = spawn
        self.reconnecting = reconnecting
        self.session_ended = session_ended
        self.strip_offsets = strip_offsets
        self.buffer_when_disconnected = buffer_when_disconnected
        #: The Engine.IO version asked for (None: negotiated).
        self.eio_version = eio_version
        #: The version that worked for the current connect(); reconnections keep it.
        self.eio_in_use: int | None = None
        self.v2_refused = False  # a 2.x server showed itself while Engine.IO 4 was tried
        self.early_connects: list[tuple[str, Any]] | None = None
        self._early: list[tuple[str, Any]] = []

        self.eio = None
        # The Engine.IO session on which every namespace got connected; a session lost before
        # that is a failed connection attempt (reported by connect()), not a disconnection.
        self.established: Session | None = None
        self.connected = False
        self.sid: str | None = None
        #: The namespaces to (re)connect, in order.
        self.connection_namespaces: list[str] = []
        self.namespaces = {}
        self.failed_namespaces: list[str] = []
        #: per namespace: did the last connect restore the session (connection-state recovery)?
        self.recovered_namespaces: dict[str, bool] = {}
        #: per namespace: the server's private session id, sent back to recover the session.
        self.pids: dict[str, str] = {}
        # Namespaces the server accepted during a connection attempt that is not kept yet:
        # their buffer is flushed and `connect` fires only once every namespace is accepted.
        self.accepted: dict[str, str | None] = {}
        self.keep_each = False
        # No reconnection follows (the user disconnected, or the server closed every namespace).
        self.final = False
        self.connect_event: Flag | None = None
        self.stopped: Flag | None = None

    # -- emit()'s gate ------------------------------------------------------------------
    # The core's emit_gate lists the namespaces whose emits go straight to the wire (filled
    # by the Outbox when an emit finds the path open). A new or lost session, and a namespace
    # leaving ``namespaces``, close it here; the Outbox closes it when it buffers a packet.

    @property
    def eio(self) -> Session | None:
        return self._eio

    @eio.setter
    def eio(self, eio: Session | None) -> None:
        self._eio = eio
        self.conn.emit_gate.clear()

    @property
    def namespaces(self) -> dict[str, str | None]:
        """The namespaces connected on the kept session, with their sids (a namespace leaves
        it through ``del``, which must be followed by closing its gate)."""
        return self._namespaces

    @namespaces.setter
    def namespaces(self, namespaces: dict[str, str | None]) -> None:
        self._namespaces = namespaces
        self.conn.emit_gate.clear()

    # -- the state other parts ask about ------------------------------------------------

    def writable(self, nsp: str) -> bool:
        """Packets of ``nsp`` may be written now: it is connected on a kept, live session."""
        return nsp in self.namespaces and self.eio is not None

    def can_buffer(self, nsp: str) -> bool:
        """Would a packet of ``nsp`` be sent later? (reconnecting, or the opt-in)."""
        if self.buffer_when_disconnected:
            return True
        if self.final or nsp not in self.connection_namespaces:
            return False
        return self.reconnecting() or self.eio is not None

    def pause_reading(self) -> bool:
        if self.eio is None:
            return False
        self.eio.pause_reading()
        return True

    def resume_reading(self) -> None:
        if self.eio is not None:
            self.eio.resume_reading()

    def send_ack(self, nsp: str, ack_id: int, result: Any, session: Any = None) -> None:
        # An ack answers the server on the session that asked (kept or not yet kept): ack
        # ids are numbered per session, so an answer must never reach a later one.
        if session is not None and session is not self.eio:
            self.logger.info("Not sending ack %s: the session that asked is gone", ack_id)
            return
        if nsp not in self.namespaces and nsp not in self.accepted:
            self.logger.info("Not sending ack %s: namespace %s is not connected", ack_id, nsp)
            return
        try:
            self.conn.send_packet(ACK, nsp, args_of(result), ack_id)
        except exceptions.DisconnectedError:
            self.logger.info("Not sending ack %s: disconnected", ack_id)
        except Exception as exc:
            self.logger.error("Could not send ack %s for namespace %s", ack_id, nsp, exc_info=exc)

    # -- one connect() -------------------------------------------------------------------

    def start(self, namespaces: list[str]) -> None:
        """A new ``connect()``: forget what the previous one recovered or refused."""
        self.connection_namespaces = list(namespaces)
        self.final = False
        self.outbox.final = False
        self.stopped = Flag()
        self.pids.clear()
        self.eio_in_use = None
        for slot in self.conn.slots.values():
            slot.record_offset = False
            slot.strip_offset = False
            slot.offset = None

    def begin_attempt(self, wait: bool) -> None:
        """A new connection attempt: nothing accepted yet."""
        self.namespaces = {}
        self.accepted = {}
        self.keep_each = not wait
        self.failed_namespaces = []
        self.connect_event = Flag()
        self.v2_refused = False

    def use(self, eio: Session, version: int) -> None:
        """The attempt's Engine.IO session, about to connect."""
        self.conn.set_engine(eio)
        self.conn.eio3 = version == 3
        self.eio = eio
        # A 2.x server sends its CONNECT of "/" unasked, possibly in the same read as the open
        # packet: CONNECTs that arrive before the session is set up are handled after it.
        self.early_connects = []

    def opened(self, eio: Session) -> None:
        """The Engine.IO session is open (its sid known); CONNECT replies are handled now."""
        self.sid = eio.sid
        self._early, self.early_connects = self.early_connects or [], None

    def send_connects(self, auth: Any) -> None:
        """Ask for every namespace, then handle the CONNECTs that came before the open."""
        early, self._early = self._early, []
        for nsp in self.connection_namespaces:
            self.send_connect(nsp, auth)
        for nsp, data in early:
            self.handle_connect(nsp, data)

    def open_failed(self) -> None:
        self.early_connects = None
        self.eio = None

    async def wait_kept(self, eio: Session, wait: bool, timeout: float) -> None:
        """Wait until ``eio`` is kept; otherwise abandon it and raise ``ConnectionError``."""
        if not wait and not self.v2_refused:
            self.connected = True
            self.established = eio
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.connect_event is not None
        # A 2.x server's unasked CONNECT can come in the open packet's read, before
        # connect(wait=False) returns: that attempt is abandoned too, so the caller falls back.
        while self.established is not eio and not self.failed_namespaces:
            if self.eio is not eio:
                break  # lost while connecting
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self.connect_event.clear()
            try:
                await asyncio.wait_for(self.connect_event.wait(), remaining)
            except asyncio.TimeoutError:
                break
        if self.established is eio:
            # Kept. If the link has already dropped again, the loss was reported as a
            # disconnection and the reconnection loop owns what follows.
            return
        failed = list(self.failed_namespaces)
        await self.abandon(eio)
        if self.v2_refused:
            raise exceptions.ProtocolVersionError(
                "the server speaks Socket.IO protocol v4 (a Socket.IO 2.x server)", 3
            )
        if failed:
            raise exceptions.ConnectionError(
                "One or more namespaces failed to connect: " + ", ".join(failed)
            )
        raise exceptions.ConnectionError("Connection timed out or was lost while connecting")

    async def abandon(self, eio: Session) -> None:
        # A failed attempt: nothing was flushed and no `connect` fired, so it ends quietly.
        if self.eio is eio:
            self.eio = None
            self.sid = None
        for nsp in list(self.accepted):
            try:
                self.conn.send_packet(DISCONNECT, nsp)
            except exceptions.SocketIOError:
                pass
        self.accepted = {}
        await eio.close()

    def send_connect(self, nsp: str, auth: Any) -> None:
        if self.eio is not None and self.eio.version == 3:
            # Socket.IO v4: no CONNECT payload (so no recovery data either); the default
            # namespace is connected by the server itself, the others take auth as a query.
            if nsp != "/":
                self.conn.send_packet(CONNECT, namespace_with_query(nsp, auth_query(auth)))
            return
        data = auth
        pid = self.pids.get(nsp)
        if pid is not None:
            slot: NamespaceSlot = self.conn.slots[nsp]
            data = {"pid": pid, "offset": slot.offset}
            if isinstance(auth, Mapping):
                data.update(auth)
        self.conn.send_packet(CONNECT, nsp, data)

    # -- packets from the server ---------------------------------------------------------

    def on_control_packet(self, pkt: Packet) -> None:
        nsp = pkt.nsp
        if pkt.type == CONNECT:
            self.handle_connect(nsp, pkt.data)
        elif pkt.type == DISCONNECT:
            self.handle_server_disconnect(nsp)
        elif pkt.type == CONNECT_ERROR:
            self.handle_connect_error(nsp, pkt.data)

    def _v2_detected(self, nsp: str) -> None:
        self.logger.info("The server is a Socket.IO 2.x server (Engine.IO 3)")
        # What the server sends behind that CONNECT (events on connection) belongs to the
        # attempt being abandoned: nothing more of it is dispatched (the frames held from here
        # on are dropped with the session); the Engine.IO 3 session gets its own.
        if self.eio is not None:
            self.eio.pause_reading()
        self.v2_refused = True
        self.failed_namespaces.append(nsp)
        if self.connect_event is not None:
            self.connect_event.set()

    def handle_connect(self, nsp: str, data: Any) -> None:
        if self.early_connects is not None:
            self.early_connects.append((nsp, data))
            if data is None and self.eio is not None and self.eio.version != 3:
                # A 2.x server's own CONNECT on the Engine.IO 4 attempt (told once the session
                # is set up, below): what follows it is not dispatched meanwhile either.
                self.eio.pause_reading()
            return
        if self.eio is None or self.final:
            # A reply on a session being abandoned or closed: never kept, nothing flushed.
            self.logger.info("CONNECT for namespace %s on a closing session, ignored", nsp)
            return
        v2 = self.eio.version == 3
        if not v2 and data is None:
            # A CONNECT without the sid payload every Socket.IO >= 3 server sends: this is a
            # 2.x server connecting the default namespace by itself (it does not check EIO=4).
            if self.established is self.eio:
                # connect(wait=False) kept the session already: end it; with eio_version=None
                # the reconnection speaks Engine.IO 3.
                self.logger.info("The server is a Socket.IO 2.x server (Engine.IO 3)")
                if self.eio_version is None and self.eio_in_use is None:
                    self.eio_in_use = 3
                self.eio._fail(Reason.TRANSPORT_ERROR, None)
                return
            self._v2_detected(nsp)
            return
        if v2 and nsp == "/" and nsp not in self.connection_namespaces:
            return  # a 2.x server connects the default namespace whether it was asked or not
        if nsp not in self.connection_namespaces or nsp in self.namespaces or nsp in self.accepted:
            self.logger.warning("Unexpected CONNECT for namespace %s, ignored", nsp)
            return
        if v2:
            # Socket ids of a 2.x server: the Engine.IO sid, prefixed by the namespace.
            sid = self.eio.sid if nsp == "/" else f"{nsp}#{self.eio.sid}"
            data = {"sid": sid}
        data = data or {}
        sid = data.get("sid") if isinstance(data, dict) else None
        pid = data.get("pid") if isinstance(data, dict) else None
        slot = self.conn.slots.get(nsp) or NamespaceSlot(nsp)
        previous = self.pids.get(nsp)
        self.recovered_namespaces[nsp] = bool(pid) and pid == previous
        if isinstance(pid, str) and pid:
            # Recording the offset never depends on stripping it (socket.io-client records).
            self.pids[nsp] = pid
            slot.record_offset = True
            slot.strip_offset = self.strip_offsets
        else:
            self.pids.pop(nsp, None)
            slot.record_offset = False
            slot.strip_offset = False
            slot.offset = None
        self.accepted[nsp] = sid if isinstance(sid, str) else self.sid
        self.logger.info(
            "Namespace %s is connected%s",
            nsp,
            " (session recovered)" if self.recovered_namespaces[nsp] else "",
        )
        if self.keep_each or self.established is self.eio:
            self.keep([nsp])
        elif len(self.accepted) == len(self.connection_namespaces):
            self.keep([n for n in self.connection_namespaces if n in self.accepted])

    def keep(self, nsps: list[str]) -> None:
        """The session is kept: per namespace, flush its buffer, then fire ``connect``.

        Flushing first keeps the emit order when a ``connect`` handler emits (socket.io-client
        flushes its send buffer before emitting ``connect`` too).
        """
        eio = self.eio
        self.connected = True
        self.established = eio
        if eio is not None:
            self.eio_in_use = eio.version  # reconnections keep the version that worked
        for nsp in nsps:
            self.namespaces[nsp] = self.accepted.pop(nsp)
            self.outbox.flush(nsp)
            self.trigger("connect", nsp)
            if self.eio is not eio:
                break  # lost (or disconnected) from inside a handler
        self.outbox.drain()
        if self.connect_event is not None:
            self.connect_event.set()

    def handle_connect_error(self, nsp: str, data: Any) -> None:
        if (
            nsp == "/"
            and nsp not in self.connection_namespaces
            and self.eio is not None
            and self.eio.version == 3
        ):
            # A 2.x server refused its own connection of the default namespace: it then
            # connects no other namespace of this client either.
            for other in list(self.connection_namespaces):
                self.handle_connect_error(other, data)
            return
        if (
            nsp not in self.connection_namespaces
            and self.eio is not None
            and self.eio.version == 4
            and self.established is not self.eio
        ):
            # A refusal of a namespace that was not asked for: a 2.x server refusing its own
            # connection of "/" (Socket.IO >= 3 servers only answer what was asked).
            self._v2_detected(nsp)
            return
        self.logger.info("Connection to namespace %s was rejected", nsp)
        if data is None:
            args: tuple[Any, ...] = ()
        elif isinstance(data, (tuple, list)):
            args = tuple(data)
        else:
            args = (data,)
        self.trigger("connect_error", nsp, *args)
        if nsp not in self.failed_namespaces:
            self.failed_namespaces.append(nsp)
        self.accepted.pop(nsp, None)
        if self.eio is not None and self.established is self.eio:
            # Refused on a kept session (connect(wait=False)): no attempt will retry it, so
            # its buffered packets fail and later emits to it raise BadNamespaceError.
            self.forget(nsp, "namespace refused")
        if self.connect_event is not None:
            self.connect_event.set()

    def forget(self, nsp: str, reason: str) -> None:
        """``nsp`` is not (re)connected until the application connects it again."""
        if nsp in self.connection_namespaces:
            self.connection_namespaces.remove(nsp)
        self.pids.pop(nsp, None)
        self.outbox.drop(nsp, reason)

    def handle_server_disconnect(self, nsp: str) -> None:
        if nsp in self.accepted:
            # Closed by the server before the session was kept (so no `connect` fired for it):
            # it is not reconnected, and the session is kept for the other namespaces.
            del self.accepted[nsp]
            self.logger.warning("Namespace %s was disconnected by the server", nsp)
            self.forget(nsp, Reason.SERVER_DISCONNECT)
            if not self.connection_namespaces:
                self.stop_for_good(Reason.SERVER_DISCONNECT, [])
                eio, self.eio = self.eio, None
                if eio is not None:
                    self.spawn(eio.close())
            elif len(self.accepted) == len(self.connection_namespaces):
                self.keep(list(self.connection_namespaces))
            if self.connect_event is not None:
                self.connect_event.set()
            return
        if nsp not in self.namespaces:
            return
        reason = Reason.SERVER_DISCONNECT
        del self.namespaces[nsp]
        self.conn.emit_gate.discard(nsp)
        # The server closed this namespace: it is not reconnected (not even after a later
        # transport loss) until the application connects it again.
        self.outbox.link_lost(reason, nsp)
        self.forget(nsp, reason)
        self.trigger("disconnect", nsp, reason)
        self.trigger("__disconnect_final", nsp)
        if not self.namespaces and not self.accepted:
            # Every namespace was closed by the server: this is final, no reconnection.
            eio = self.eio
            self.end_session(reason)
            self.stop_for_good(reason, [])
            if eio is not None:
                self.spawn(eio.close())

    # -- the end of a session ------------------------------------------------------------

    def _drop_session(self, reason: str) -> None:
        self.eio = None
        self.conn.set_engine(None)
        self.accepted = {}
        self.outbox.link_lost(reason)
        if self.connect_event is not None:
            self.connect_event.set()

    def end_session(self, reason: str) -> list[str]:
        """The Engine.IO session is over: every kept namespace gets its ``disconnect``.

        Written once for every ending (loss, server kick, user disconnect). Acks of packets
        that were written fail with ``DisconnectedError(reason)``; buffered packets stay for
        the next session (or are dropped by stop_for_good). Returns the namespaces that were
        connected.
        """
        was = list(self.namespaces)
        self.namespaces = {}
        self.connected = False
        self.sid = None
        self.session_ended()
        self._drop_session(reason)
        for nsp in was:
            self.trigger("disconnect", nsp, reason)
        return was

    def engine_lost(self, reason: str) -> list[str] | None:
        """The session died without us asking. Returns the namespaces that were connected,
        or None when it was lost while connecting (the attempt reports the failure)."""
        if self.established is not self.eio:
            self._drop_session(reason)
            return None
        return self.end_session(reason)

    def stop_for_good(self, reason: str, nsps: list[str]) -> None:
        """No reconnection follows: the client is done until connect() is called again.

        Buffered and queued packets fail (unless ``buffer_when_disconnected`` keeps them for
        the next connect, as socket.io-client does), ``__disconnect_final`` fires for ``nsps``
        and ``wait()`` returns. Runs once per connect().
        """
        if self.stopped is not None and self.stopped.is_set():
            return
        self.final = True
        self.outbox.final = True
        if not self.buffer_when_disconnected:
            self.outbox.drop(None, reason)
        for nsp in nsps:
            self.trigger("__disconnect_final", nsp)
        if self.stopped is not None:
            self.stopped.set()

    async def close_session(self, reason: str) -> None:
        """Client-initiated end of the current session (DISCONNECT sent), then stop."""
        eio = self.eio
        try:
            if eio is not None:
                for nsp in [*self.namespaces, *self.accepted]:
                    try:
                        self.conn.send_packet(DISCONNECT, nsp)
                    except exceptions.SocketIOError:
                        pass
                self.eio = None  # nothing more is written while it closes
                await eio.close()
        finally:
            # Even if the close is cancelled: the session is over for the application.
            was = self.end_session(reason)
            self.stop_for_good(reason, was)
