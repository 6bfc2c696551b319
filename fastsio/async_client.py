"""AsyncClient: python-socketio's asyncio client API, a façade over fastsio's parts.

Owns the public API (names, signatures and defaults of python-socketio's ``AsyncClient``), the
options, the wiring of the parts, and when to connect (``connect()``, a lost session handed to
the reconnection loop). The work is done by the parts, each of which knows nothing of this class:

- ``handlers.HandlerTable``: the handler registry, lookup and invocation (backpressure);
- ``lifecycle.NamespaceLifecycle``: namespaces connected, accepted, refused and closed, the kept
  session, connection-state recovery per namespace, the end of a session;
- ``connector.Connector``, ``reconnection.Reconnector``: one connection attempt, the loop of them;
- ``delivery.Outbox``: every outgoing event from ``emit``/``call`` to its one outcome;
- ``_ext._core.Dispatcher``: the compiled core (codec, dispatch, acks).

What must not be here: packet handling beyond delegation, buffering, handler lookup, how an
attempt opens its session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from . import exceptions
from ._ext._core import AckTable, Dispatcher, Packet
from ._forwarded import Forwarded
from .connector import Connector, transports_of
from .delivery import Outbox, ack_result, args_of
from .eio3 import Protocol, protocol_for
from .engine import EngineIO
from .handlers import Handler, HandlerTable, event_decorator, register_or_decorate
from .lifecycle import NamespaceLifecycle
from .reasons import Reason
from .reconnection import Reconnector

default_logger = logging.getLogger("fastsio.client")

H = TypeVar("H", bound=Handler)


def _resolve_logger(logger: bool | logging.Logger, default: logging.Logger) -> logging.Logger:
    if not isinstance(logger, bool):
        return logger
    if default.level == logging.NOTSET:
        default.setLevel(logging.INFO if logger else logging.ERROR)
        if not default.handlers and not logging.getLogger().handlers:
            default.addHandler(logging.StreamHandler())
    return default


class _ClientHooks:
    """The client as the compiled core calls it (``ClientHooks`` in ``_ext/_core.pyi``): the
    one place where the client's packet handlers are handed to the core."""

    __slots__ = ("on_control_packet", "on_event", "on_handler_error", "on_unknown_ack")

    def __init__(self, client: AsyncClient) -> None:
        self.on_event = client._on_event
        self.on_control_packet = client._on_control_packet
        self.on_unknown_ack = client._on_unknown_ack
        self.on_handler_error = client._on_handler_error


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
    :param http_session: an ``aiohttp.ClientSession`` for the polling transport's requests
        (its proxy, auth and cookies); without one, polling uses fastsio's own keep-alive
        HTTP/1.1 client, which keeps the server's cookies too.
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
        buffer_when_disconnected: bool = kwargs.pop("buffer_when_disconnected", False)
        max_attachments: int = kwargs.pop("max_attachments", 1000)
        if max_attachments < 0:
            raise ValueError("max_attachments must be >= 0")
        strip_offsets: bool = kwargs.pop("strip_offsets", False)
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
        if kwargs:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        if not self.ssl_verify:
            # Its own logger, so that logger=False (errors only) does not hide it.
            logging.getLogger("fastsio.tls").warning(
                "ssl_verify=False: TLS certificates will not be verified"
            )

        # The parts, wired once. Each sees the others only through the callables passed here.
        self._handlers = HandlerTable(
            self.logger,
            self.reserved_events,
            self._send_ack,
            self._current_eio,
            self._pause_reading,
            self._resume_reading,
            max_pending_handlers,
        )
        self.handlers = self._handlers.handlers
        self.namespace_handlers = self._handlers.namespace_handlers
        self.batch_handlers = self._handlers.batch_handlers
        self._conn = Dispatcher(
            _ClientHooks(self),
            None,
            self.serializer == "msgpack",
            json,
            max_attachments,
            self.max_message_size,
        )
        self._conn.dispatch_budget = dispatch_budget
        acks: AckTable = self._conn.acks
        acks.max_pending = max_pending_acks
        acks.on_async_callback = self._handlers.start
        #: The outgoing packet life cycle (offline buffer, retries, acks of what was sent).
        self.outbox = Outbox(
            self._conn,
            self.logger,
            self._writable,
            self._invoke_callback,
            max_buffer=max_buffer,
            buffer_policy=buffer_policy,
            retries=retries,
            ack_timeout=ack_timeout,
        )
        #: The namespace life cycle (connected, accepted, refused, recovered; the kept session).
        self.lifecycle = NamespaceLifecycle(
            self._conn,
            self.outbox,
            self.logger,
            self._trigger_event,
            self._spawn,
            self._reconnecting,
            self._handlers.session_ended,
            strip_offsets=strip_offsets,
            buffer_when_disconnected=buffer_when_disconnected,
            eio_version=eio_version,
        )
        self._connector = Connector(
            self,
            self.lifecycle,
            self._conn,
            self.logger,
            self._on_engine_lost,
            self._trigger_event,
            self._sync_slot,
        )
        self._reconnector = Reconnector(
            self,
            self.logger,
            self._connector.connect_once,
            self._final,
            self.lifecycle.close_session,
            self._stop_for_good,
            self._trigger_event,
        )

        self.connection_url: Any = None
        self.connection_headers: Any = None
        self.connection_auth: Any = None
        self.connection_transports: list[str] | None = None
        self.socketio_path: str = "socket.io"
        self._loop: asyncio.AbstractEventLoop | None = None

    # The parts' late-bound views of each other (bound methods, not closures: a client holds
    # one of each, and idle clients are counted by the thousand).
    def _send_ack(self, nsp: str, ack_id: int, result: Any, session: Any) -> None:
        self.lifecycle.send_ack(nsp, ack_id, result, session)

    def _current_eio(self) -> Any:
        return self.lifecycle.eio

    def _pause_reading(self) -> bool:
        return self.lifecycle.pause_reading()

    def _resume_reading(self) -> None:
        self.lifecycle.resume_reading()

    def _writable(self, nsp: str) -> bool:
        return self.lifecycle.writable(nsp)

    def _invoke_callback(self, h: Any, args: Any, event: str, nsp: str) -> Any:
        return self._handlers.invoke(h, args, event, nsp, None)

    def _sync_slot(self, nsp: str) -> None:
        self._handlers.sync_slot(self._conn.slots, nsp)

    def _reconnecting(self) -> bool:
        return self._reconnector.running()

    def _final(self) -> bool:
        return self.lifecycle.final

    def _stop_for_good(self, reason: Any) -> Any:
        return self.lifecycle.stop_for_good(reason, list(self.connection_namespaces))

    # -- state, kept by the namespace life cycle (python-socketio's attribute names) -----

    @property
    def eio(self) -> EngineIO | None:
        """The Engine.IO session in use (None when there is none)."""
        return self.lifecycle.eio  # type: ignore[return-value]

    connected = Forwarded[bool](
        "lifecycle", "True while a session is kept (python-socketio's attribute)."
    )
    sid = Forwarded[str | None]("lifecycle", "The Engine.IO session id (None when not connected).")
    namespaces = Forwarded[dict[str, str | None]](
        "lifecycle", "The connected namespaces and their sids."
    )
    connection_namespaces = Forwarded[list[str]](
        "lifecycle", "The namespaces to (re)connect; one the server closes or refuses leaves it."
    )
    failed_namespaces = Forwarded[list[str]](
        "lifecycle", "The namespaces the server refused in the last attempt."
    )
    recovered_namespaces = Forwarded[dict[str, bool]](
        "lifecycle",
        "Per namespace: did the last connect restore the session (connection-state recovery)?",
    )
    strip_offsets = Forwarded[bool](
        "lifecycle", "The ``strip_offsets`` option (see the class).", writable=True
    )
    buffer_when_disconnected = Forwarded[bool](
        "lifecycle", "The ``buffer_when_disconnected`` option (see the class).", writable=True
    )
    eio_version = Forwarded[int | None](
        "lifecycle", "The Engine.IO version asked for (None: negotiated)."
    )

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

        return register_or_decorate(set_handler, handler)

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

    @property
    def max_pending_handlers(self) -> int:
        """Async handlers running at once before the client stops reading the socket."""
        return self._handlers.max_pending

    @max_pending_handlers.setter
    def max_pending_handlers(self, value: int) -> None:
        self._handlers.max_pending = value

    # -- views ---------------------------------------------------------------------------

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
        version = self.lifecycle.eio_in_use
        return protocol_for(version) if version is not None else None

    def transport(self) -> str | None:
        """``'websocket'`` or ``'polling'`` (None when not connected)."""
        eio = self.eio
        return eio.transport() if eio is not None else None

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
        if self._reconnector.running():
            raise exceptions.ConnectionError("Already reconnecting")
        self._loop = asyncio.get_running_loop()
        self.outbox.loop = self._handlers.loop = self._loop
        transports = transports_of(transports)
        self.connection_url = url
        self.connection_headers = headers
        self.connection_auth = auth
        self.connection_transports = transports
        self.socketio_path = socketio_path
        if namespaces is None:
            namespaces = self._handlers.namespaces() or ["/"]
        elif isinstance(namespaces, str):
            namespaces = [namespaces]
        self._connector.wait_timeout = wait_timeout
        self._reconnector.reset()
        self.lifecycle.start(list(namespaces))
        try:
            await self._connector.connect_once(wait)
        except exceptions.ConnectionError:
            if retry and self.reconnection and not self.lifecycle.final:
                await self._reconnector.start(self._loop)
                if self.connected:
                    return
            self.lifecycle.stop_for_good("connection failed", [])
            raise

    # -- hooks of the compiled core (bodies in the parts) --------------------------------

    def _on_control_packet(self, pkt: Packet) -> None:
        self.lifecycle.on_control_packet(pkt)

    def _on_event(self, nsp: str, ack_id: int | None, data: list[Any]) -> None:
        self._handlers.server_event(nsp, ack_id, data)

    def _on_unknown_ack(self, nsp: str, ack_id: int) -> None:
        self.outbox.unknown_ack(nsp, ack_id)

    def _on_handler_error(self, event: str, nsp: str, exc: BaseException) -> None:
        self._handlers.handler_error(event, nsp, exc)

    def _trigger_event(self, event: str, nsp: str, *args: Any) -> None:
        self._handlers.trigger(event, nsp, *args)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._handlers.start(coro)

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
        When the WebSocket's write buffer (on polling, the queue of the POSTs) is over its
        high-water mark, the emit waits until it drains (backpressure), so that a publisher
        faster than the link stays bounded.
        """
        # The publishing path: an ack-less emit on a namespace whose gate is open (connected,
        # nothing buffered, no retries: Outbox.open_gate) goes straight to the core.
        if callback is None and timeout is None:
            sent = self._conn.emit_direct(namespace, event, data)
            if sent == 1:
                return
        else:
            sent = 0
        if not sent:
            self._emit(event, data, namespace, callback, timeout, volatile, None)
            self.outbox.open_gate(namespace or "/")
            sent = 2 if self._conn.writing_paused else 1
        if sent == 2:
            # Backpressure: the link takes less than we emit; wait for its buffer to drain.
            await self._wait_writable()

    async def _wait_writable(self) -> None:
        """Until the WebSocket's write buffer is back under its low-water mark (or gone)."""
        waiter = self._conn.wait_writable()
        if waiter is not None:
            await waiter

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
        # The synchronous emit shared by emit(), the sync Client and contrib.locust.
        if not isinstance(event, str):
            raise TypeError("event name must be a str")
        nsp = namespace or "/"
        return self.outbox.emit(
            nsp,
            [event, *args_of(data)],
            callback,
            future,
            timeout,
            volatile,
            self.lifecycle.can_buffer(nsp),
        )

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
        if not isinstance(event, str):
            raise TypeError("event name must be a str")
        nsp = namespace or "/"
        bufferable = self.lifecycle.can_buffer(nsp)
        args = await self.outbox.call(nsp, [event, *args_of(data)], timeout, bufferable)
        return ack_result(args)

    # -- python-socketio-compatible views of the outbox's settings -------------------------

    max_buffer = Forwarded[int]("outbox")
    buffer_policy = Forwarded[str]("outbox")
    retries = Forwarded[int]("outbox")
    ack_timeout = Forwarded[float | None]("outbox")

    # -- loss, reconnection, disconnect --------------------------------------------------

    @property
    def _reconnect_task(self) -> asyncio.Task[None] | None:
        return self._reconnector.task

    def _on_engine_lost(self, reason: str) -> None:
        """Called by EngineIO when the session dies without us asking."""
        was = self.lifecycle.engine_lost(reason)
        if was is None:
            return  # lost while connecting: the attempt reports the failure
        if self.reconnection and not self.lifecycle.final:
            self._reconnector.start(self._loop or asyncio.get_running_loop())
        else:
            self.lifecycle.stop_for_good(reason, was)

    async def disconnect(self) -> None:
        """Disconnect from the server, or stop reconnecting. No reconnection follows."""
        self.lifecycle.final = True
        self.outbox.final = True
        await self._reconnector.abort()
        await self.lifecycle.close_session(Reason.CLIENT_DISCONNECT)

    async def shutdown(self) -> None:
        """Disconnect, or stop a reconnection loop (python-socketio's name)."""
        await self.disconnect()

    async def wait(self) -> None:
        """Wait until the client is disconnected for good (reconnection included)."""
        while True:
            stopped = self.lifecycle.stopped
            if stopped is None:
                return
            await stopped.wait()
            if stopped is self.lifecycle.stopped:
                return

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Run ``target(*args, **kwargs)`` (a coroutine function) as a task."""
        return asyncio.ensure_future(target(*args, **kwargs))

    async def sleep(self, seconds: float = 0) -> None:
        """Sleep ``seconds`` without blocking the loop (python-socketio's API)."""
        await asyncio.sleep(seconds)
