"""``TestServer``: a scriptable Socket.IO server for tests and demos, with fault hooks.

Owns the Socket.IO side of the test server: namespaces and their sockets, handlers and acks both
ways, rooms and broadcasts, connection-state recovery, the per-socket firehose. Must not know how
Engine.IO sessions are framed, pinged, polled or upgraded (``engineio.py``, ``transports.py``),
nor how packets are encoded (``codec.py``); the fault hooks are in ``faults.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Awaitable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastsio._ext._core import (
    ACK,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
)

from .codec import Frame, Serializer, encode_packet
from .engineio import Session
from .faults import FaultHooks
from .firehose import DEFAULT_EVENT, DEFAULT_PAYLOAD
from .recovery import RecoveryLog
from .sockets import ClientGone, Handler, ScriptedSession, Socket, args_of

logger = logging.getLogger("fastsio.testing")


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


def _ack_value(args: list[Any]) -> Any:
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


class TestServer(FaultHooks):
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
        super().__init__(
            transports=transports,
            allow_upgrades=allow_upgrades,
            serializer=serializer,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            path=path,
        )
        self.serializer: Serializer = serializer
        self.namespaces = None if namespaces is None else set(namespaces)
        self.recovery = recovery
        self._recovery = RecoveryLog(recovery)
        self.stats = TestServerStats()
        #: Exceptions raised by handlers, in order (they are also logged).
        self.errors: list[BaseException] = []
        self._handlers: dict[str, dict[str, Handler]] = {}
        self._sockets: dict[str, Socket] = {}
        self._rooms: dict[str, dict[str, set[str]]] = {}  # nsp -> room -> sids

    async def __aenter__(self) -> TestServer:
        await super().__aenter__()
        return self

    async def stop(self, disconnect: bool = True) -> None:
        """Stop serving and end every session.

        With ``disconnect`` (default) every client first gets a Socket.IO DISCONNECT for each
        namespace, so fastsio clients do not reconnect; with ``disconnect=False`` the links are
        just closed, as when a server process dies, and clients reconnect.
        """
        await super().stop(disconnect)
        self._sockets.clear()
        self._rooms.clear()

    def _make_session(
        self, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> Session:
        return ScriptedSession(self, transport, headers, query)

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
        payload = [event, *args_of(data)]
        if self.recovery is not None and callback is None:
            payload = self._recovery.log_event(
                payload, to if to is not None else room, namespace, skip_sid
            )
        targets = self._targets(to if to is not None else room, namespace, skip_sid)
        if callback is not None:
            if len(targets) != 1:
                raise ValueError("callback needs exactly one target sid")
            sock = targets[0]
            ack_id = sock.session.add_ack(sock.nsp, callback)
            sock.send(encode_packet(self._msgpack, EVENT, sock.nsp, payload, ack_id))
            self.stats.events_sent += 1
            return _DONE
        frames: list[Frame] | None = None
        for sock in targets:
            if frames is None:
                frames = encode_packet(self._msgpack, EVENT, sock.nsp, payload)
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
        sock.send(encode_packet(self._msgpack, EVENT, sock.nsp, [event, *args_of(data)], ack_id))
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
            frames: list[Frame] = [packet]
        else:
            frames = encode_packet(self._msgpack, EVENT, sock.nsp, [event, data])

        def sent(n: int) -> None:
            self.stats.events_sent += n

        return await session.stream(frames, count, lambda: sock.connected, sent)

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
        sock.session.send_packet(DISCONNECT, sock.nsp)
        self._remove_socket(sock, "server namespace disconnect")
        return _DONE

    # -- internals: lookup -------------------------------------------------------------------

    def _socket(self, sid: str, namespace: str | None = None) -> Socket:
        sock = self._sockets.get(sid)
        if sock is None:
            raise KeyError(f"no connected socket with sid {sid!r}")
        if namespace is not None and namespace != sock.nsp:
            raise KeyError(f"socket {sid!r} is in namespace {sock.nsp}, not {namespace}")
        return sock

    def _session(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is not None:
            return session
        return self._socket(sid).session

    def _targets(
        self,
        to: str | Iterable[str] | None,
        namespace: str | None,
        skip: str | Iterable[str] | None,
    ) -> list[Socket]:
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

    async def _connect_socket(self, session: ScriptedSession, nsp: str, auth: Any) -> None:
        if nsp in session.sockets:
            logger.info("TestServer: second CONNECT for %s ignored", nsp)
            return
        if self.namespaces is not None and nsp not in self.namespaces:
            self.stats.refused += 1
            session.send_packet(CONNECT_ERROR, nsp, {"message": "Invalid namespace"})
            return
        lost = self._recovery.take_lost(nsp, auth)
        sid = lost.sid if lost is not None else secrets.token_urlsafe(15)
        sock = Socket(sid, nsp, session, auth)
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
            session.send_packet(CONNECT_ERROR, nsp, refusal)
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
            for payload in self._recovery.missed(sid, nsp, sock.rooms, lost.offset):
                session.send_packet(EVENT, nsp, payload)
        session.send_packet(CONNECT, nsp, reply)
        held, sock.held = sock.held, []
        session.send(held)

    def recovered(self, sid: str) -> bool:
        """Whether the connection of socket ``sid`` restored a lost session (recovery)."""
        sock = self._sockets.get(sid)
        return sock is not None and sock.recovered

    def _forget_socket(self, sock: Socket) -> None:
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

    def _remove_socket(self, sock: Socket, reason: str) -> None:
        was_connected = sock.connected
        sock.connected = False
        if (
            was_connected
            and sock.pid is not None
            and reason not in ("client namespace disconnect", "server namespace disconnect")
        ):
            # Lost, not closed on purpose: it may come back within the recovery delay.
            self._recovery.lose(sock.pid, sock.sid, sock.nsp, set(sock.rooms) - {sock.sid})
        self._forget_socket(sock)
        if was_connected:
            handler = self._handlers.get(sock.nsp, {}).get("disconnect")
            if handler is not None:
                self._run_handler(handler, (sock.sid, reason), f"disconnect handler of {sock.nsp}")

    def _dispatch(self, sock: Socket, event: str, args: list[Any], ack_id: int | None) -> None:
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
        sock: Socket | None = None,
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

                def ack_when_done(t: asyncio.Task[Any], sock: Socket = sock) -> None:
                    if not t.cancelled() and t.exception() is None:
                        self._send_ack(sock, ack_id, t.result())

                task.add_done_callback(ack_when_done)
            task.add_done_callback(lambda t: self._task_error(t, what))
            return
        if sock is not None and ack_id is not None:
            self._send_ack(sock, ack_id, result)

    def _send_ack(self, sock: Socket, ack_id: int, result: Any) -> None:
        if not sock.connected or sock.session.closed:
            return
        sock.session.send_packet(ACK, sock.nsp, args_of(result), ack_id)
        self.stats.acks_sent += 1

    def _task_error(self, task: asyncio.Task[Any], what: str) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._handler_error(task.exception(), what)  # type: ignore[arg-type]

    def _handler_error(self, exc: BaseException, what: str) -> None:
        self.errors.append(exc)
        logger.error("TestServer: %s raised", what, exc_info=exc)
