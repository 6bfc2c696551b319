"""AsyncClient: python-socketio's asyncio client API on fastsio's compiled core."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from . import exceptions
from ._ext._core import (
    ACK,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    AckTable,
    Connection,
    NamespaceSlot,
    Packet,
    PendingAck,
)
from .backoff import reconnect_delay
from .delivery import Outbox
from .eio3 import EngineIO3, Protocol, auth_query, namespace_with_query, protocol_for
from .engine import EngineIO
from .handlers import Handler, HandlerTable, event_decorator
from .reasons import Reason

default_logger = logging.getLogger("fastsio.client")

H = TypeVar("H", bound=Handler)

_VALID_TRANSPORTS = ("websocket", "polling")


def _resolve_logger(logger: bool | logging.Logger, default: logging.Logger) -> logging.Logger:
    if not isinstance(logger, bool):
        return logger
    if default.level == logging.NOTSET:
        default.setLevel(logging.INFO if logger else logging.ERROR)
        if not default.handlers and not logging.getLogger().handlers:
            default.addHandler(logging.StreamHandler())
    return default


def _args_of(data: Any) -> list[Any]:
    # python-socketio's rule: a tuple is several arguments, anything else is one.
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def _ack_result(args: tuple[Any, ...]) -> Any:
    if len(args) > 1:
        return args
    if len(args) == 1:
        return args[0]
    return None


class AsyncClient:
    """A Socket.IO client for asyncio, with python-socketio's ``AsyncClient`` API.

    :param reconnection: reconnect automatically after the link is lost (default ``True``).
    :param reconnection_attempts: attempts before giving up, 0 for no limit.
    :param reconnection_delay: first delay in seconds; doubled each attempt...
    :param reconnection_delay_max: ...up to this many seconds.
    :param randomization_factor: each delay is scaled by a random factor in [1-f, 1+f].
    :param logger: ``True``/``False`` or a ``logging.Logger``.
    :param serializer: ``'default'`` (JSON) or ``'msgpack'`` (socket.io-msgpack-parser).
    :param json: a module with ``dumps``/``loads`` to use instead of fastsio's own JSON decoder
        and orjson (python-socketio's ``json`` option).
    :param handle_sigint: accepted for compatibility; fastsio installs no signal handler.
    :param request_timeout: seconds for HTTP requests and the WebSocket handshake.
    :param http_session: an ``aiohttp.ClientSession`` for the polling transport.
    :param ssl_verify: verify TLS certificates (default ``True``).
    :param ssl_context: an ``ssl.SSLContext`` (custom CA, client certificates).
    :param websocket_extra_options: extra keyword arguments for ``picows.ws_connect``.
    :param engineio_logger: accepted for compatibility (Engine.IO logs go to ``logger``).
    :param max_buffer: packets kept while disconnected (offline buffer), 0 to disable.
    :param buffer_policy: when the buffer is full: ``'error'`` (raise ``BufferFullError``),
        ``'drop_oldest'`` or ``'drop_newest'`` (both logged, and acks of dropped packets fail).
    :param max_attachments: most binary attachments accepted in one packet.
    :param max_pending_acks: most acks waiting at once.
    :param max_message_size: largest incoming message in bytes (default 100 MiB; 0: no
        limit). A message announced bigger is refused before it is read (``'parse error'``).
    :param max_read_size: most bytes taken off a WebSocket in one read (default 256 KiB; 0:
        no cap). Without a cap, picows's read buffer grows without bound while a firehose
        outruns the handlers; the cap bounds it without touching the TCP window.
    :param max_pending_handlers: async handlers running at once before the client stops
        reading from the socket (TCP then pushes back on the server); reading resumes when
        half of them have finished. Sync handlers need no limit: they run inline.
    :param strip_offsets: connection-state recovery: the server appends its offset (a string)
        as the last argument of some events. By default (``False``) arguments are passed on
        untouched, as socket.io-client does, and the last string argument of each ack-less
        event is remembered as the offset. ``True`` also removes it before handlers see the
        arguments; that is only safe when every ack-less event the server sends carries an
        offset: Node socket.io >= 4.6 with ``connectionStateRecovery`` and its default
        in-memory adapter (``SessionAwareAdapter``), no ``volatile`` emits, and no base
        ``Adapter``, classic Redis adapter, or ``io.local`` emits with a cluster adapter --
        there the server sends no offset and a real string argument would be removed.
    :param buffer_when_disconnected: socket.io-client's behaviour for ``emit`` before
        ``connect()`` and after ``disconnect()``: buffer the packet (bounded by
        ``max_buffer``) and send it on the next connection of its namespace. The default
        (``False``) raises ``BadNamespaceError`` as python-socketio does; while reconnecting,
        packets are buffered either way.
    :param dispatch_budget: seconds of inline handler work per socket read before the client
        yields to the event loop (the rest of the read is dispatched in the next turn), so a
        slow handler under a firehose does not starve timers, emits and pings; 0 disables.
    :param retries: at-least-once delivery as socket.io-client's ``retries``: every ``emit``
        is queued, one packet is in flight at a time, and it is resent (on timeout after
        ``ack_timeout`` seconds, and after a reconnection) until the server acks it, at most
        ``retries`` extra times. Callbacks are then called ``callback(err, *args)``.
    :param ack_timeout: seconds to wait for each ack when ``retries`` is set.
    :param eio_version: the Engine.IO version to speak: ``None`` (default) tries 4 and falls
        back to 3 when the server turns out to be a Socket.IO 2.x server; ``3`` or ``4`` forces
        one. Reconnections keep the version that worked; ``protocol`` tells which it is. With
        a 2.x server (Engine.IO 3, Socket.IO protocol v4) ``auth`` must be a dict and is sent as
        query parameters, and there is no connection-state recovery.
    """

    reserved_events = [
        "connect",
        "connect_error",
        "disconnect",
        "__disconnect_final",
        "reconnect_attempt",
        "reconnect",
        "reconnect_failed",
    ]
    reason = Reason

    def __init__(
        self,
        reconnection: bool = True,
        reconnection_attempts: int = 0,
        reconnection_delay: float = 1,
        reconnection_delay_max: float = 5,
        randomization_factor: float = 0.5,
        logger: bool | logging.Logger = False,
        serializer: str = "default",
        json: Any = None,
        handle_sigint: bool = True,
        **kwargs: Any,
    ) -> None:
        if serializer not in ("default", "msgpack", "json"):
            raise ValueError(f"unsupported serializer {serializer!r}: use 'default' or 'msgpack'")
        if reconnection_attempts < 0:
            raise ValueError("reconnection_attempts must be >= 0")
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.randomization_factor = randomization_factor
        self.handle_sigint = handle_sigint
        self.logger = _resolve_logger(logger, default_logger)
        self.serializer = "msgpack" if serializer == "msgpack" else "default"

        self.request_timeout: float = kwargs.pop("request_timeout", 5)
        self.http_session = kwargs.pop("http_session", None)
        self.ssl_verify: bool = kwargs.pop("ssl_verify", True)
        self.ssl_context = kwargs.pop("ssl_context", None)
        self.websocket_extra_options = kwargs.pop("websocket_extra_options", None)
        kwargs.pop("engineio_logger", None)
        kwargs.pop("timestamp_requests", None)
        max_buffer: int = kwargs.pop("max_buffer", 1000)
        buffer_policy: str = kwargs.pop("buffer_policy", "error")
        self.buffer_when_disconnected: bool = kwargs.pop("buffer_when_disconnected", False)
        max_attachments: int = kwargs.pop("max_attachments", 1000)
        if max_attachments < 0:
            raise ValueError("max_attachments must be >= 0")
        self.strip_offsets: bool = kwargs.pop("strip_offsets", False)
        max_pending_acks: int = kwargs.pop("max_pending_acks", 1_000_000)
        self.max_message_size: int = kwargs.pop("max_message_size", 100 * 1024 * 1024)
        if self.max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 (0: no limit)")
        self.max_read_size: int = kwargs.pop("max_read_size", 256 * 1024)
        if self.max_read_size and self.max_read_size < 4096:
            raise ValueError("max_read_size must be 0 (no cap) or at least 4096 bytes")
        max_pending_handlers: int = kwargs.pop("max_pending_handlers", 1000)
        dispatch_budget: float = kwargs.pop("dispatch_budget", 0.02)
        retries: int = kwargs.pop("retries", 0)
        ack_timeout: float | None = kwargs.pop("ack_timeout", None)
        eio_version: int | None = kwargs.pop("eio_version", None)
        if eio_version not in (None, 3, 4):
            raise ValueError(f"eio_version must be None, 3 or 4, not {eio_version!r}")
        #: The Engine.IO version asked for (None: negotiated).
        self.eio_version = eio_version
        # The version that worked for the current connect(); reconnections keep it.
        self._eio_in_use: int | None = None
        self._v2_refused = False  # a 2.x server showed itself while Engine.IO 4 was tried
        self._early_connects: list[tuple[str, Any]] | None = None
        if kwargs:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        if not self.ssl_verify:
            # Its own logger, so that logger=False (errors only) does not hide it.
            logging.getLogger("fastsio.tls").warning(
                "ssl_verify=False: TLS certificates will not be verified"
            )

        self._handlers = HandlerTable(
            self.logger,
            self.reserved_events,
            self._send_ack,
            lambda: self.eio,
            self._pause_reading,
            self._resume_reading,
            max_pending_handlers,
        )
        self.handlers = self._handlers.handlers
        self.namespace_handlers = self._handlers.namespace_handlers
        self.batch_handlers = self._handlers.batch_handlers
        self._conn = Connection(
            self, None, self.serializer == "msgpack", json, max_attachments, self.max_message_size
        )
        self._conn.dispatch_budget = dispatch_budget
        acks: AckTable = self._conn.acks
        acks.max_pending = max_pending_acks
        acks.on_async_callback = self._handlers.start
        acks.on_callback_error = self._on_callback_error
        acks.on_ack_lost = self._on_ack_lost
        #: The outgoing packet life cycle (offline buffer, retries, acks of what was sent).
        self.outbox = Outbox(
            self._conn,
            self.logger,
            self._writable,
            lambda h, args, event, nsp: self._handlers.invoke(h, args, event, nsp, None),
            max_buffer=max_buffer,
            buffer_policy=buffer_policy,
            retries=retries,
            ack_timeout=ack_timeout,
        )

        self.connection_url: Any = None
        self.connection_headers: Any = None
        self.connection_auth: Any = None
        self.connection_transports: list[str] | None = None
        self.connection_namespaces: list[str] = []
        self.socketio_path: str = "socket.io"
        self.sid: str | None = None
        self.connected = False
        self.namespaces: dict[str, str | None] = {}
        self.failed_namespaces: list[str] = []
        #: per namespace: did the last connect restore the session (connection-state recovery)?
        self.recovered_namespaces: dict[str, bool] = {}
        self.eio: EngineIO | None = None
        self._pids: dict[str, str] = {}
        self._connect_event: asyncio.Event | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._reconnect_abort: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        # No reconnection follows (the user disconnected, or the server closed every namespace).
        self._final = False
        # Namespaces the server accepted during a connection attempt that is not kept yet:
        # their buffer is flushed and `connect` fires only once every namespace is accepted.
        self._accepted: dict[str, str | None] = {}
        self._keep_each = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wait_timeout: float = 1
        # The Engine.IO session on which every namespace got connected; a session lost before
        # that is a failed connection attempt (reported by connect()), not a disconnection.
        self._established: EngineIO | None = None

    # -- handlers ------------------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """True: this client runs on asyncio (python-socketio's API)."""
        return True

    def on(
        self,
        event: str,
        handler: Handler | None = None,
        namespace: str | None = None,
        *,
        batch: bool = False,
    ) -> Any:
        """Register an event handler; without ``handler``, a decorator.

        ``'*'`` as the event is a catch-all (receives the event name first); ``'*'`` as the
        namespace catches every namespace (receives the namespace first). Plain functions are
        called inline, in arrival order; coroutine functions are started in arrival order.

        With ``batch=True`` (a plain function, a real event name and namespace) the handler is
        called once per socket read with a list of the events that arrived: each item is the
        event's argument (a tuple when it has several, None when it has none). Batches keep the
        arrival order with respect to every other event and packet.
        """
        nsp = namespace or "/"

        def set_handler(h: H) -> H:
            self._handlers.set(event, h, nsp, batch)
            if nsp in self._conn.slots:
                self._sync_slot(nsp)
            return h

        if handler is None:
            return set_handler
        set_handler(handler)
        return None

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function."""
        return event_decorator(self.on, args, kwargs)

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register a namespace handler object (an ``AsyncClientNamespace``)."""
        from .namespace import _BaseNamespace

        if not isinstance(namespace_handler, _BaseNamespace):
            raise ValueError("Not a namespace instance")
        if self.is_asyncio_based() != namespace_handler.is_asyncio_based():
            raise ValueError("Not a valid namespace class for this client")
        namespace_handler._set_client(self)
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The sid of ``namespace`` (default ``/``), None when it is not connected."""
        return self.namespaces.get(namespace or "/")

    @property
    def recovered(self) -> bool:
        """True when the last (re)connection restored the session of every connected namespace
        (connection-state recovery: the server replayed what was missed)."""
        return bool(self.namespaces) and all(
            self.recovered_namespaces.get(nsp, False) for nsp in self.namespaces
        )

    def is_recovered(self, namespace: str | None = None) -> bool:
        """Whether the last connect of ``namespace`` restored its session."""
        return self.recovered_namespaces.get(namespace or "/", False)

    @property
    def protocol(self) -> Protocol | None:
        """``Protocol(engineio, socketio)`` of the last connection: ``(4, 5)`` with Socket.IO
        >= 3 servers, ``(3, 4)`` with 2.x servers; None before the first connection."""
        return protocol_for(self._eio_in_use) if self._eio_in_use is not None else None

    def transport(self) -> str | None:
        """``'websocket'`` or ``'polling'`` (None when not connected)."""
        return self.eio.transport() if self.eio is not None else None

    def stats(self) -> dict[str, Any]:
        """Counters of the current client: packets, events, bytes, pending acks, buffer."""
        out: dict[str, Any] = self._conn.stats()
        out["buffered"] = self.outbox.buffered
        out["queued"] = self.outbox.queued
        return out

    # -- connect -------------------------------------------------------------------------

    async def connect(
        self,
        url: str | Callable[[], Any],
        headers: Mapping[str, str] | Callable[[], Any] = {},  # noqa: B006 - python-socketio's signature
        auth: Any = None,
        transports: str | list[str] | None = None,
        namespaces: str | list[str] | None = None,
        socketio_path: str = "socket.io",
        wait: bool = True,
        wait_timeout: float = 1,
        retry: bool = False,
    ) -> None:
        """Connect to a Socket.IO server.

        ``url``, ``headers`` and ``auth`` may be callables (sync or async), re-evaluated on every
        connection attempt. ``transports`` defaults to websocket with a fallback to polling.
        Raises ``ConnectionError`` when the server cannot be reached or a namespace is refused.
        With ``wait=True`` (the default) the connection is kept only once every namespace is
        accepted: only then are buffered packets flushed and ``connect`` events fired.
        """
        if self.connected:
            raise exceptions.ConnectionError("Already connected")
        if self._reconnect_task is not None and not self._reconnect_task.done():
            raise exceptions.ConnectionError("Already reconnecting")
        self._loop = asyncio.get_running_loop()
        self.outbox.loop = self._handlers.loop = self._loop
        if isinstance(transports, str):
            transports = [transports]
        if transports is None:
            transports = ["websocket", "polling"]
        transports = [t for t in transports if t in _VALID_TRANSPORTS]
        if not transports:
            raise ValueError("No valid transports provided")
        self.connection_url = url
        self.connection_headers = headers
        self.connection_auth = auth
        self.connection_transports = transports
        self.socketio_path = socketio_path
        if namespaces is None:
            namespaces = self._handlers.namespaces() or ["/"]
        elif isinstance(namespaces, str):
            namespaces = [namespaces]
        self.connection_namespaces = list(namespaces)
        self._wait_timeout = wait_timeout
        self._final = False
        self.outbox.final = False
        self._stopped = asyncio.Event()
        self._reconnect_abort = asyncio.Event()
        self._pids.clear()
        self._eio_in_use = None
        for slot in self._conn.slots.values():
            slot.record_offset = False
            slot.strip_offset = False
            slot.offset = None
        try:
            await self._connect_once(wait)
        except exceptions.ConnectionError:
            if retry and self.reconnection and not self._final:
                self._reconnect_task = self._loop.create_task(self._handle_reconnect())
                await self._reconnect_task
                if self.connected:
                    return
            self._stop_for_good("connection failed", [])
            raise

    async def _get_real_value(self, value: Any) -> Any:
        if not callable(value):
            return value
        result = value()
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _connect_once(self, wait: bool = True) -> None:
        """One attempt, in the Engine.IO version that worked before, the forced one, or 4 first
        and then 3 when the server shows it is a Socket.IO 2.x server."""
        version = self.eio_version or self._eio_in_use or 4
        try:
            await self._connect_version(version, wait)
        except exceptions.ProtocolVersionError as exc:
            other = exc.server_version
            if self.eio_version is not None or other is None or other == version:
                for nsp in self.connection_namespaces:
                    self._trigger_event("connect_error", nsp, str(exc))
                raise
            self.logger.info("%s: connecting again with Engine.IO %d", exc, other)
            await self._connect_version(other, wait)

    async def _connect_version(self, version: int, wait: bool) -> None:
        """One attempt: Engine.IO session, then CONNECT every namespace.

        With ``wait``, the session is kept (buffers flushed, ``connect`` fired) only when every
        namespace is accepted; otherwise it is abandoned with nothing sent but the CONNECTs,
        so that no packet is written onto a session that is then dropped.
        """
        url = await self._get_real_value(self.connection_url)
        headers = await self._get_real_value(self.connection_headers)
        assert self.connection_transports is not None
        self.namespaces = {}
        self._accepted = {}
        self._keep_each = not wait
        self.failed_namespaces = []
        self._connect_event = asyncio.Event()
        self._v2_refused = False
        auth: Any = None
        query: list[tuple[str, str]] = []
        if version == 3:
            # A 2.x server connects the default namespace from the handshake's own query.
            auth = await self._get_real_value(self.connection_auth)
            try:
                query = auth_query(auth)
            except ValueError as exc:
                raise exceptions.ConnectionError(str(exc)) from exc
        eio = (EngineIO3 if version == 3 else EngineIO)(
            self._conn,
            self._on_engine_lost,
            logger=self.logger,
            request_timeout=self.request_timeout,
            ssl_verify=self.ssl_verify,
            ssl_context=self.ssl_context,
            http_session=self.http_session,
            websocket_extra_options=self.websocket_extra_options,
            max_message_size=self.max_message_size,
            max_read_size=self.max_read_size,
        )
        if isinstance(eio, EngineIO3):
            eio.extra_query = query
        self._conn.engine = eio
        self._conn.eio3 = version == 3
        self.eio = eio
        for nsp in self.connection_namespaces:
            self._sync_slot(nsp)
        # A 2.x server sends its CONNECT of "/" unasked, possibly in the same read as the open
        # packet: CONNECTs that arrive before the session is set up are handled after it.
        self._early_connects = []
        try:
            await eio.connect(url, headers, self.connection_transports, self.socketio_path)
        except exceptions.ProtocolVersionError:
            self.eio = None
            raise  # _connect_once retries or reports it
        except exceptions.ConnectionError as exc:
            self.eio = None
            for nsp in self.connection_namespaces:
                self._trigger_event("connect_error", nsp, str(exc))
            raise
        except ValueError as exc:
            self.eio = None
            raise exceptions.ConnectionError(str(exc)) from exc
        finally:
            early, self._early_connects = self._early_connects, None
        self.sid = eio.sid
        if version != 3:
            auth = await self._get_real_value(self.connection_auth)
        for nsp in self.connection_namespaces:
            self._send_connect(nsp, auth)
        for nsp, data in early or ():
            self._handle_connect(nsp, data)
        if not wait:
            self.connected = True
            self._established = eio
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout
        while self._established is not eio and not self.failed_namespaces:
            if self.eio is not eio:
                break  # lost while connecting
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._connect_event.clear()
            try:
                await asyncio.wait_for(self._connect_event.wait(), remaining)
            except asyncio.TimeoutError:
                break
        if self._established is eio:
            # Kept. If the link has already dropped again, the loss was reported as a
            # disconnection and the reconnection loop owns what follows.
            return
        failed = list(self.failed_namespaces)
        await self._abandon(eio)
        if self._v2_refused:
            raise exceptions.ProtocolVersionError(
                "the server speaks Socket.IO protocol v4 (a Socket.IO 2.x server)", 3
            )
        if failed:
            raise exceptions.ConnectionError(
                "One or more namespaces failed to connect: " + ", ".join(failed)
            )
        raise exceptions.ConnectionError("Connection timed out or was lost while connecting")

    async def _abandon(self, eio: EngineIO) -> None:
        # A failed attempt: nothing was flushed and no `connect` fired, so it ends quietly.
        if self.eio is eio:
            self.eio = None
            self.sid = None
        for nsp in list(self._accepted):
            try:
                self._conn.send_packet(DISCONNECT, nsp)
            except exceptions.SocketIOError:
                pass
        self._accepted = {}
        await eio.close()

    def _send_connect(self, nsp: str, auth: Any) -> None:
        if self.eio is not None and self.eio.version == 3:
            # Socket.IO v4: no CONNECT payload (so no recovery data either); the default
            # namespace is connected by the server itself, the others take auth as a query.
            if nsp != "/":
                self._conn.send_packet(CONNECT, namespace_with_query(nsp, auth_query(auth)))
            return
        data = auth
        pid = self._pids.get(nsp)
        if pid is not None:
            slot: NamespaceSlot = self._conn.slots[nsp]
            data = {"pid": pid, "offset": slot.offset}
            if isinstance(auth, Mapping):
                data.update(auth)
        self._conn.send_packet(CONNECT, nsp, data)

    def _sync_slot(self, nsp: str) -> None:
        """Refresh the compiled dispatch table of a namespace from the handler table."""
        slot = self._conn.slots.get(nsp)
        if slot is None:
            slot = self._conn.slots[nsp] = NamespaceSlot(nsp)
        slot.fast, slot.batch = self._handlers.core_tables(nsp)

    # -- packets from the compiled core --------------------------------------------------

    def _on_control_packet(self, pkt: Packet) -> None:
        nsp = pkt.nsp
        if pkt.type == CONNECT:
            self._handle_connect(nsp, pkt.data)
        elif pkt.type == DISCONNECT:
            self._handle_server_disconnect(nsp)
        elif pkt.type == CONNECT_ERROR:
            self._handle_connect_error(nsp, pkt.data)

    def _handle_connect(self, nsp: str, data: Any) -> None:
        if self._early_connects is not None:
            self._early_connects.append((nsp, data))
            return
        if self.eio is None or self._final:
            # A reply on a session being abandoned or closed: never kept, nothing flushed.
            self.logger.info("CONNECT for namespace %s on a closing session, ignored", nsp)
            return
        v2 = self.eio.version == 3
        if not v2 and data is None:
            # A CONNECT without the sid payload every Socket.IO >= 3 server sends: this is a
            # 2.x server connecting the default namespace by itself (it does not check EIO=4).
            self.logger.info("The server is a Socket.IO 2.x server (Engine.IO 3)")
            if self._established is self.eio:
                # connect(wait=False) kept the session already: end it; with eio_version=None
                # the reconnection speaks Engine.IO 3.
                if self.eio_version is None and self._eio_in_use is None:
                    self._eio_in_use = 3
                self.eio._fail(Reason.TRANSPORT_ERROR, None)
                return
            self._v2_refused = True
            self.failed_namespaces.append(nsp)
            if self._connect_event is not None:
                self._connect_event.set()
            return
        if v2 and nsp == "/" and nsp not in self.connection_namespaces:
            return  # a 2.x server connects the default namespace whether it was asked or not
        if nsp not in self.connection_namespaces or nsp in self.namespaces or nsp in self._accepted:
            self.logger.warning("Unexpected CONNECT for namespace %s, ignored", nsp)
            return
        if v2:
            # Socket ids of a 2.x server: the Engine.IO sid, prefixed by the namespace.
            sid = self.eio.sid if nsp == "/" else f"{nsp}#{self.eio.sid}"
            data = {"sid": sid}
        data = data or {}
        sid = data.get("sid") if isinstance(data, dict) else None
        pid = data.get("pid") if isinstance(data, dict) else None
        slot = self._conn.slots.get(nsp) or NamespaceSlot(nsp)
        previous = self._pids.get(nsp)
        self.recovered_namespaces[nsp] = bool(pid) and pid == previous
        if isinstance(pid, str) and pid:
            # Recording the offset never depends on stripping it (socket.io-client records).
            self._pids[nsp] = pid
            slot.record_offset = True
            slot.strip_offset = self.strip_offsets
        else:
            self._pids.pop(nsp, None)
            slot.record_offset = False
            slot.strip_offset = False
            slot.offset = None
        self._accepted[nsp] = sid if isinstance(sid, str) else self.sid
        self.logger.info(
            "Namespace %s is connected%s",
            nsp,
            " (session recovered)" if self.recovered_namespaces[nsp] else "",
        )
        if self._keep_each or self._established is self.eio:
            self._keep([nsp])
        elif len(self._accepted) == len(self.connection_namespaces):
            self._keep([n for n in self.connection_namespaces if n in self._accepted])

    def _keep(self, nsps: list[str]) -> None:
        """The session is kept: per namespace, flush its buffer, then fire ``connect``.

        Flushing first keeps the emit order when a ``connect`` handler emits (socket.io-client
        flushes its send buffer before emitting ``connect`` too).
        """
        eio = self.eio
        self.connected = True
        self._established = eio
        if eio is not None:
            self._eio_in_use = eio.version  # reconnections keep the version that worked
        for nsp in nsps:
            self.namespaces[nsp] = self._accepted.pop(nsp)
            self.outbox.flush(nsp)
            self._trigger_event("connect", nsp)
            if self.eio is not eio:
                break  # lost (or disconnected) from inside a handler
        self.outbox.drain()
        if self._connect_event is not None:
            self._connect_event.set()

    def _handle_connect_error(self, nsp: str, data: Any) -> None:
        if (
            nsp == "/"
            and nsp not in self.connection_namespaces
            and self.eio is not None
            and self.eio.version == 3
        ):
            # A 2.x server refused its own connection of the default namespace: it then
            # connects no other namespace of this client either.
            for other in list(self.connection_namespaces):
                self._handle_connect_error(other, data)
            return
        if (
            nsp not in self.connection_namespaces
            and self.eio is not None
            and self.eio.version == 4
            and self._established is not self.eio
        ):
            # A refusal of a namespace that was not asked for: a 2.x server refusing its own
            # connection of "/" (Socket.IO >= 3 servers only answer what was asked).
            self.logger.info("The server is a Socket.IO 2.x server (Engine.IO 3)")
            self._v2_refused = True
            self.failed_namespaces.append(nsp)
            if self._connect_event is not None:
                self._connect_event.set()
            return
        self.logger.info("Connection to namespace %s was rejected", nsp)
        if data is None:
            args: tuple[Any, ...] = ()
        elif isinstance(data, (tuple, list)):
            args = tuple(data)
        else:
            args = (data,)
        self._trigger_event("connect_error", nsp, *args)
        if nsp not in self.failed_namespaces:
            self.failed_namespaces.append(nsp)
        self._accepted.pop(nsp, None)
        if self.eio is not None and self._established is self.eio:
            # Refused on a kept session (connect(wait=False)): no attempt will retry it, so
            # its buffered packets fail and later emits to it raise BadNamespaceError.
            self._forget_namespace(nsp, "namespace refused")
        if self._connect_event is not None:
            self._connect_event.set()

    def _forget_namespace(self, nsp: str, reason: str) -> None:
        """``nsp`` is not (re)connected until the application connects it again."""
        if nsp in self.connection_namespaces:
            self.connection_namespaces.remove(nsp)
        self._pids.pop(nsp, None)
        self.outbox.drop(nsp, reason)

    def _handle_server_disconnect(self, nsp: str) -> None:
        if nsp in self._accepted:
            # Closed by the server before the session was kept (so no `connect` fired for it):
            # it is not reconnected, and the session is kept for the other namespaces.
            del self._accepted[nsp]
            self.logger.warning("Namespace %s was disconnected by the server", nsp)
            self._forget_namespace(nsp, Reason.SERVER_DISCONNECT)
            if not self.connection_namespaces:
                self._stop_for_good(Reason.SERVER_DISCONNECT, [])
                eio, self.eio = self.eio, None
                if eio is not None:
                    self._spawn(eio.close())
            elif len(self._accepted) == len(self.connection_namespaces):
                self._keep(list(self.connection_namespaces))
            if self._connect_event is not None:
                self._connect_event.set()
            return
        if nsp not in self.namespaces:
            return
        reason = Reason.SERVER_DISCONNECT
        del self.namespaces[nsp]
        # The server closed this namespace: it is not reconnected (not even after a later
        # transport loss) until the application connects it again.
        self.outbox.link_lost(reason, nsp)
        self._forget_namespace(nsp, reason)
        self._trigger_event("disconnect", nsp, reason)
        self._trigger_event("__disconnect_final", nsp)
        if not self.namespaces and not self._accepted:
            # Every namespace was closed by the server: this is final, no reconnection.
            eio = self.eio
            self._end_session(reason)
            self._stop_for_good(reason, [])
            if eio is not None:
                self._spawn(eio.close())

    def _on_event(self, nsp: str, ack_id: int | None, data: list[Any]) -> None:
        self._handlers.server_event(nsp, ack_id, data)

    def _on_unknown_ack(self, nsp: str, ack_id: int) -> None:
        self.logger.warning("Unknown ack id %s for namespace %s, ignored", ack_id, nsp)

    def _on_handler_error(self, event: str, nsp: str, exc: BaseException) -> None:
        self._handlers.handler_error(event, nsp, exc)

    def _on_callback_error(self, entry: PendingAck, exc: BaseException) -> None:
        self.logger.error("Ack callback for namespace %s raised", entry.nsp, exc_info=exc)

    def _on_ack_lost(self, entry: PendingAck, exc: BaseException) -> None:
        # Logged as an error: without a timeout the callback has no way to learn about it, and
        # nothing may vanish silently. emit(..., timeout=...) gets the error instead.
        self.logger.error(
            "Ack callback %r in namespace %s will not be called: %s", entry.callback, entry.nsp, exc
        )

    # -- handler invocation ----------------------------------------------------------------

    def _trigger_event(self, event: str, nsp: str, *args: Any) -> None:
        self._handlers.trigger(event, nsp, *args)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._handlers.start(coro)

    def _pause_reading(self) -> bool:
        if self.eio is None:
            return False
        self.eio.pause_reading()
        return True

    def _resume_reading(self) -> None:
        if self.eio is not None:
            self.eio.resume_reading()

    def _send_ack(self, nsp: str, ack_id: int, result: Any, session: Any = None) -> None:
        # An ack answers the server on the session that asked (kept or not yet kept): ack
        # ids are numbered per session, so an answer must never reach a later one.
        if session is not None and session is not self.eio:
            self.logger.info("Not sending ack %s: the session that asked is gone", ack_id)
            return
        if nsp not in self.namespaces and nsp not in self._accepted:
            self.logger.info("Not sending ack %s: namespace %s is not connected", ack_id, nsp)
            return
        try:
            self._conn.send_packet(ACK, nsp, _args_of(result), ack_id)
        except exceptions.DisconnectedError:
            self.logger.info("Not sending ack %s: disconnected", ack_id)
        except Exception as exc:
            self.logger.error("Could not send ack %s for namespace %s", ack_id, nsp, exc_info=exc)

    # -- emit ----------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Handler | None = None,
        *,
        timeout: float | None = None,
        volatile: bool = False,
    ) -> None:
        """Emit an event. A tuple ``data`` is sent as several arguments.

        ``callback`` receives the server's ack arguments. With ``timeout`` (seconds) the
        callback is called socket.io-client style, ``callback(err, *args)``: ``err`` is None
        on success, a ``TimeoutError`` or a ``DisconnectedError`` otherwise.
        While reconnecting, the packet is kept in the offline buffer and sent once the
        namespace is connected again; a ``volatile`` emit is dropped instead. A buffered
        packet whose timeout expires leaves the buffer: it is never sent after the callback
        was told ``TimeoutError``.
        """
        self._emit(event, data, namespace, callback, timeout, volatile, None)

    def _emit(
        self,
        event: str,
        data: Any,
        namespace: str | None,
        callback: Handler | None,
        timeout: float | None,
        volatile: bool,
        future: asyncio.Future[Any] | None,
    ) -> int | None:
        if not isinstance(event, str):
            raise TypeError("event name must be a str")
        nsp = namespace or "/"
        return self.outbox.emit(
            nsp,
            [event, *_args_of(data)],
            callback,
            future,
            timeout,
            volatile,
            self._can_buffer(nsp),
        )

    def _writable(self, nsp: str) -> bool:
        """Packets of ``nsp`` may be written now: it is connected on a kept, live session."""
        return nsp in self.namespaces and self.eio is not None

    def _can_buffer(self, nsp: str) -> bool:
        """Would a packet of ``nsp`` be sent later? (reconnecting, or the opt-in)."""
        if self.buffer_when_disconnected:
            return True
        if self._final or nsp not in self.connection_namespaces:
            return False
        reconnecting = self._reconnect_task is not None and not self._reconnect_task.done()
        return reconnecting or self.eio is not None

    async def send(
        self, data: Any, namespace: str | None = None, callback: Handler | None = None
    ) -> None:
        """Emit a ``'message'`` event."""
        await self.emit("message", data=data, namespace=namespace, callback=callback)

    async def call(
        self, event: str, data: Any = None, namespace: str | None = None, timeout: float | None = 60
    ) -> Any:
        """Emit and wait for the ack; returns its argument (a tuple for several).

        Raises ``TimeoutError`` after ``timeout`` seconds and ``DisconnectedError`` as soon
        as the connection is lost after the packet was written (a packet still in the offline
        buffer waits for the reconnection, within its timeout). With ``retries`` the call goes
        through the namespace's at-least-once queue: each try waits ``ack_timeout`` (instead of
        ``timeout``) and the last error is raised once the tries are used up.
        """
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        nsp = namespace or "/"
        ack_id = None
        # The round-trip path (connected, a plain event name) goes straight to the core.
        if (
            type(event) is not str
            or nsp not in self.namespaces
            or self.eio is None
            or nsp in self.outbox.buffered_per_nsp
            or self.outbox.retries
            or not self._conn.send_call(nsp, [event, *_args_of(data)], future, timeout, loop)
        ):
            ack_id = self._emit(event, data, namespace, None, timeout, False, future)
        try:
            args = await future
        except asyncio.CancelledError:
            # A call cancelled while its packet is still buffered is never sent.
            if ack_id is not None:
                entry = self._conn.acks.get(ack_id)
                if entry is not None and entry.queued:
                    self._conn.acks.fail(ack_id, exceptions.DisconnectedError("call cancelled"))
            raise
        return _ack_result(args)

    @property
    def max_pending_handlers(self) -> int:
        """Async handlers running at once before the client stops reading the socket."""
        return self._handlers.max_pending

    @max_pending_handlers.setter
    def max_pending_handlers(self, value: int) -> None:
        self._handlers.max_pending = value

    # -- python-socketio-compatible views of the outbox's settings -------------------------

    @property
    def max_buffer(self) -> int:
        return self.outbox.max_buffer

    @property
    def buffer_policy(self) -> str:
        return self.outbox.buffer_policy

    @property
    def retries(self) -> int:
        return self.outbox.retries

    @property
    def ack_timeout(self) -> float | None:
        return self.outbox.ack_timeout

    # -- loss, reconnection, disconnect --------------------------------------------------

    def _end_session(self, reason: str) -> list[str]:
        """The Engine.IO session is over: every kept namespace gets its ``disconnect``.

        Written once for every ending (loss, server kick, user disconnect). Acks of packets
        that were written fail with ``DisconnectedError(reason)``; buffered packets stay for
        the next session (or are dropped by _stop_for_good). Returns the namespaces that were
        connected.
        """
        was = list(self.namespaces)
        self.eio = None
        self._conn.engine = None
        self._handlers.paused = False
        self.namespaces = {}
        self._accepted = {}
        self.connected = False
        self.sid = None
        self.outbox.link_lost(reason)
        if self._connect_event is not None:
            self._connect_event.set()
        for nsp in was:
            self._trigger_event("disconnect", nsp, reason)
        return was

    def _stop_for_good(self, reason: str, nsps: list[str]) -> None:
        """No reconnection follows: the client is done until connect() is called again.

        Buffered and queued packets fail (unless ``buffer_when_disconnected`` keeps them for
        the next connect, as socket.io-client does), ``__disconnect_final`` fires for ``nsps``
        and ``wait()`` returns. Runs once per connect().
        """
        if self._stopped is not None and self._stopped.is_set():
            return
        self._final = True
        self.outbox.final = True
        if not self.buffer_when_disconnected:
            self.outbox.drop(None, reason)
        for nsp in nsps:
            self._trigger_event("__disconnect_final", nsp)
        if self._stopped is not None:
            self._stopped.set()

    def _on_engine_lost(self, reason: str) -> None:
        """Called by EngineIO when the session dies without us asking."""
        lost_eio = self.eio
        if self._established is not lost_eio:
            # Lost while connecting: _connect_once reports the failure; nothing was kept.
            self.eio = None
            self._conn.engine = None
            self._accepted = {}
            self.outbox.link_lost(reason)
            if self._connect_event is not None:
                self._connect_event.set()
            return
        was = self._end_session(reason)
        if self.reconnection and not self._final:
            loop = self._loop or asyncio.get_running_loop()
            self._reconnect_task = loop.create_task(self._handle_reconnect())
        else:
            self._stop_for_good(reason, was)

    async def _handle_reconnect(self) -> None:
        if self._reconnect_abort is None:
            self._reconnect_abort = asyncio.Event()
        self._reconnect_abort.clear()
        attempt = 0
        reason = "reconnection ended"
        while True:
            delay = reconnect_delay(
                attempt,
                self.reconnection_delay,
                self.reconnection_delay_max,
                self.randomization_factor,
            )
            self.logger.info("Reconnecting in %.2f s", delay)
            try:
                await asyncio.wait_for(self._reconnect_abort.wait(), delay)
                reason = Reason.CLIENT_DISCONNECT
                break  # aborted
            except asyncio.TimeoutError:
                pass
            if self._final:
                reason = Reason.CLIENT_DISCONNECT
                break
            attempt += 1
            self._trigger_event("reconnect_attempt", "/", attempt)
            try:
                await self._connect_once()
            except exceptions.ConnectionError as exc:
                self.logger.info("Reconnection attempt %d failed: %s", attempt, exc)
            else:
                if self._final:
                    # disconnect() was called during the attempt: it ends like any session.
                    await self._close_session(Reason.CLIENT_DISCONNECT)
                    return
                self.logger.info("Reconnected after %d attempt(s)", attempt)
                self._trigger_event("reconnect", "/", attempt)
                return
            if self.reconnection_attempts and attempt >= self.reconnection_attempts:
                self.logger.info("Giving up after %d reconnection attempts", attempt)
                self._trigger_event("reconnect_failed", "/")
                break
        self._stop_for_good(reason, list(self.connection_namespaces))

    async def _close_session(self, reason: str) -> None:
        """Client-initiated end of the current session (DISCONNECT sent), then stop."""
        eio = self.eio
        try:
            if eio is not None:
                for nsp in [*self.namespaces, *self._accepted]:
                    try:
                        self._conn.send_packet(DISCONNECT, nsp)
                    except exceptions.SocketIOError:
                        pass
                self.eio = None  # nothing more is written while it closes
                await eio.close()
        finally:
            # Even if the close is cancelled: the session is over for the application.
            was = self._end_session(reason)
            self._stop_for_good(reason, was)

    async def disconnect(self) -> None:
        """Disconnect from the server, or stop reconnecting. No reconnection follows."""
        self._final = True
        self.outbox.final = True
        if self._reconnect_abort is not None:
            self._reconnect_abort.set()
        task = self._reconnect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            try:
                # Shielded: cancelling disconnect() must not cancel the loop mid-attempt
                # (it ends on its own now that _final is set, closing what it opened).
                await asyncio.shield(task)
            except Exception:
                pass
        await self._close_session(Reason.CLIENT_DISCONNECT)

    async def shutdown(self) -> None:
        """Disconnect, or stop a reconnection loop (python-socketio's name)."""
        await self.disconnect()

    async def wait(self) -> None:
        """Wait until the client is disconnected for good (reconnection included)."""
        while True:
            stopped = self._stopped
            if stopped is None:
                return
            await stopped.wait()
            if stopped is self._stopped:
                return

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Run ``target(*args, **kwargs)`` (a coroutine function) as a task."""
        return asyncio.ensure_future(target(*args, **kwargs))

    async def sleep(self, seconds: float = 0) -> None:
        """Sleep ``seconds`` without blocking the loop (python-socketio's API)."""
        await asyncio.sleep(seconds)
