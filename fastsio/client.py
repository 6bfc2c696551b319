"""Client: the synchronous API, an AsyncClient running on a background event-loop thread.

By default handlers run on that thread, inline and in arrival order (no thread per message).
Calls made from a handler (``emit``, ``send``) run directly on the loop; blocking calls that need
the loop to make progress (``call``, ``connect``, ``wait``) raise ``RuntimeError`` there instead
of deadlocking. With ``handler_thread=True`` sync handlers run in arrival order on one thread of
their own, fed through a bounded queue, so they may block (``call()`` included) while the loop
thread keeps reading; a full queue pauses reading from the socket (backpressure).

Works under gevent monkey-patching (see ``_green``): the loop thread is a real OS thread and a
greenlet waiting on it lets the other greenlets run.

Owns the loop thread, the hand-over of calls between threads, and the optional handler thread.
It must not know packets, namespaces or delivery: every behaviour is AsyncClient's, reached
through its public methods (and ``_emit``, the synchronous emit shared with contrib.locust).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from . import _green
from ._forwarded import Forwarded
from .async_client import AsyncClient, Handler
from .handlers import call_handler, event_decorator, register_or_decorate
from .namespace import ClientNamespace

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it exists
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _LoopThread:
    """One event loop running forever on a daemon OS thread (a real one under gevent too)."""

    def __init__(self, use_uvloop: bool = True) -> None:
        self.loop = new_event_loop() if use_uvloop else asyncio.new_event_loop()
        # The OS thread id, read with the OS's get_ident: under gevent threading.get_ident names
        # the current greenlet. No start-up handshake: call_soon_threadsafe queues until the
        # loop runs.
        self._get_ident = _green.real_get_ident()
        self.ident = _green.start_real_thread(self._run, "fastsio-loop")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def in_loop(self) -> bool:
        return self._get_ident() == self.ident

    def run(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        """Run ``coro`` on the loop and wait for it (a greenlet waits without blocking the hub)."""
        if self.in_loop():
            coro.close()
            raise RuntimeError(
                f"{what}() cannot block inside a handler of the sync Client; "
                "use emit() with a callback, or Client(handler_thread=True)"
            )
        return _green.run_coroutine(self.loop, coro)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the loop thread: directly when already there."""
        if self.in_loop():
            return fn(*args)
        return _green.run_function(self.loop, fn, *args)


class _Pending:
    """The outcome of one handler run on the handler thread, awaitable on the loop thread.

    The loop only awaits it when the event asked for an ack (the handler's result is the ack);
    a loop future is created, and completed across threads, only then.
    """

    __slots__ = ("_owner", "_fut", "_done", "_ok", "_value")

    def __init__(self, owner: _HandlerThread) -> None:
        self._owner = owner
        self._fut: asyncio.Future[Any] | None = None
        self._done = False
        self._ok = False
        self._value: Any = None

    def _complete(self, ok: bool, value: Any) -> None:  # handler thread
        with self._owner.mutex:
            self._done, self._ok, self._value = True, ok, value
            fut = self._fut
        if fut is not None:
            self._owner.loop.call_soon_threadsafe(_settle, fut, ok, value)

    def __await__(self) -> Generator[Any, None, Any]:  # loop thread
        with self._owner.mutex:
            if not self._done:
                self._fut = self._owner.loop.create_future()
        if self._fut is not None:
            return (yield from self._fut)
        if not self._ok:
            # The handler raised (already logged): a cancelled task sends no ack, logs nothing.
            raise asyncio.CancelledError
        return self._value


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.cancel()


class _HandlerThread:
    """A Client's sync handlers, run in arrival order on one OS thread of their own.

    The loop thread appends to a queue; at ``maxsize`` queued handlers it pauses reading from the
    socket (the core stops dispatching at once), and resumes once the queue is half empty.
    """

    def __init__(self, client: AsyncClient, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.client = client
        self.loop = loop
        self.maxsize = maxsize
        self.mutex = _green.native_lock()
        self._items: collections.deque[
            tuple[_Pending, Callable[..., Any], tuple[Any, ...], str, str]
        ]
        self._items = collections.deque()
        self._wake = _green.native_lock()
        self._wake.acquire()
        self._idle = False
        self._paused = False
        self._resume_scheduled = False
        #: the most handlers ever queued at once (the bound, observable)
        self.peak = 0
        self.ident = _green.start_real_thread(self._run, "fastsio-handlers")

    def submit(
        self, handler: Callable[..., Any], args: tuple[Any, ...], event: str, nsp: str
    ) -> _Pending:
        """Queue one handler call (loop thread)."""
        pending = _Pending(self)
        with self.mutex:
            self._items.append((pending, handler, args, event, nsp))
            n = len(self._items)
            wake, self._idle = self._idle, False
        if wake:
            self._wake.release()
        if n > self.peak:
            self.peak = n
        if n >= self.maxsize and not self._paused and self.client.eio is not None:
            self._paused = True
            self.client.eio.pause_reading()
        return pending

    def _run(self) -> None:
        items = self._items
        while True:
            with self.mutex:
                if items:
                    pending, handler, args, event, nsp = items.popleft()
                    left = len(items)
                else:
                    self._idle = True
                    left = -1
            if left < 0:
                self._wake.acquire()
                continue
            ok, value = self._call(handler, args, event, nsp)
            pending._complete(ok, value)
            if self._paused and not self._resume_scheduled and left <= self.maxsize // 2:
                self._resume_scheduled = True
                self.loop.call_soon_threadsafe(self._resume)

    def _call(
        self, handler: Callable[..., Any], args: tuple[Any, ...], event: str, nsp: str
    ) -> tuple[bool, Any]:
        try:
            return True, call_handler(handler, args, event)
        except Exception as exc:
            self.client._on_handler_error(event, nsp, exc)
            return False, None

    def _resume(self) -> None:  # loop thread
        self._resume_scheduled = False
        if not self._paused or len(self._items) > self.maxsize // 2:
            return
        self._paused = False
        # Reading paused for async handlers too is resumed by those, not here.
        if self.client.eio is not None and not self.client._handlers.paused:
            self.client.eio.resume_reading()

    def wrap(self, handler: Callable[..., Any], event: str, nsp: str) -> Callable[..., Any]:
        submit = self.submit

        def on_handler_thread(*args: Any) -> _Pending:
            return submit(handler, args, event, nsp)

        return on_handler_thread


class _ThreadedNamespace:
    """A ClientNamespace whose ``on_<event>`` methods run on the handler thread."""

    def __init__(self, ns: ClientNamespace, handlers: _HandlerThread) -> None:
        self.namespace = ns.namespace
        self._ns = ns
        self._handlers = handlers

    def trigger_event(self, event: str, *args: Any) -> _Pending:
        return self._handlers.submit(self._ns.trigger_event, (event, *args), event, self.namespace)


class Client:
    """A Socket.IO client with python-socketio's synchronous ``Client`` API.

    Takes the same arguments as :class:`fastsio.AsyncClient`, plus:

    - ``use_uvloop`` (default ``True``): the background loop's kind.
    - ``handler_thread`` (default ``False``): run sync handlers (and namespace ``on_*`` methods)
      in arrival order on one thread of their own instead of inline on the loop thread, so that
      they may block, ``call()`` included. A handler's return value is still the ack.
    - ``handler_queue`` (default 1000): with ``handler_thread``, how many handler calls may
      wait; when full, the client stops reading from the socket until half of them have run.
    """

    def __init__(
        self,
        *args: Any,
        use_uvloop: bool = True,
        handler_thread: bool = False,
        handler_queue: int = 1000,
        **kwargs: Any,
    ) -> None:
        if handler_queue < 1:
            raise ValueError("handler_queue must be >= 1")
        self._client = AsyncClient(*args, **kwargs)
        self._client.is_asyncio_based = lambda: False  # type: ignore[method-assign]
        self._use_uvloop = use_uvloop
        self._thread: _LoopThread | None = None
        self._handler_thread = handler_thread
        self._handler_queue = handler_queue
        self._handlers: _HandlerThread | None = None

    def _loop_thread(self) -> _LoopThread:
        if self._thread is None:
            self._thread = _LoopThread(self._use_uvloop)
        return self._thread

    def _handler_runner(self) -> _HandlerThread:
        if self._handlers is None:
            self._handlers = _HandlerThread(
                self._client, self._loop_thread().loop, self._handler_queue
            )
        return self._handlers

    # -- attributes mirrored from the async client --

    def __getattr__(self, name: str) -> Any:
        # handlers, namespaces, sid, connected, logger, reason, recovered, ...
        return getattr(self._client, name)

    connected = Forwarded[bool]("_client")
    sid = Forwarded[str | None]("_client")

    def is_asyncio_based(self) -> bool:
        """False: the synchronous client (python-socketio's API)."""
        return False

    def on(
        self,
        event: str,
        handler: Handler | None = None,
        namespace: str | None = None,
        *,
        batch: bool = False,
    ) -> Any:
        """Register an event handler; without ``handler``, a decorator. See :meth:`AsyncClient.on`."""
        if not self._handler_thread:
            return self._client.on(event, handler, namespace, batch=batch)

        def register(h: Any) -> Any:
            target = h
            if callable(h) and not inspect.iscoroutinefunction(h):
                target = self._handler_runner().wrap(h, event, namespace or "/")
            self._client.on(event, target, namespace, batch=batch)
            return h

        return register_or_decorate(register, handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function."""
        return event_decorator(self.on, args, kwargs)

    def register_namespace(self, namespace_handler: ClientNamespace) -> None:
        """Register a namespace handler object (a ``ClientNamespace``)."""
        if not isinstance(namespace_handler, ClientNamespace):
            raise ValueError("Not a namespace instance")
        namespace_handler._set_client(self)
        target: Any = namespace_handler
        if self._handler_thread:
            target = _ThreadedNamespace(namespace_handler, self._handler_runner())
        self._client.namespace_handlers[namespace_handler.namespace] = target

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The sid of ``namespace`` (default ``/``), None when it is not connected."""
        return self._client.get_sid(namespace)

    def transport(self) -> str | None:
        """``'websocket'`` or ``'polling'`` (None when not connected)."""
        return self._client.transport()

    def stats(self) -> dict[str, Any]:
        """Counters of the client: packets, events, bytes, pending acks, buffer."""
        return self._client.stats()

    # -- blocking API --

    def connect(
        self,
        url: Any,
        headers: Any = {},  # noqa: B006
        auth: Any = None,
        transports: Any = None,
        namespaces: Any = None,
        socketio_path: str = "socket.io",
        wait: bool = True,
        wait_timeout: float = 1,
        retry: bool = False,
    ) -> None:
        """Connect to a Socket.IO server and block until connected; see :meth:`AsyncClient.connect`."""
        self._loop_thread().run(
            self._client.connect(
                url,
                headers=headers,
                auth=auth,
                transports=transports,
                namespaces=namespaces,
                socketio_path=socketio_path,
                wait=wait,
                wait_timeout=wait_timeout,
                retry=retry,
            ),
            "connect",
        )

    def _run_or_direct(self, fn: Any, *args: Any) -> Any:
        return self._loop_thread().call(fn, *args)

    def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Handler | None = None,
        *,
        timeout: float | None = None,
        volatile: bool = False,
    ) -> None:
        """Emit an event without waiting; see :meth:`AsyncClient.emit` (callbacks run on the client's thread).

        Outside the client's thread, blocks while the WebSocket's write buffer (on polling, the
        queue of the POSTs) is over its high-water mark (backpressure), as
        ``await AsyncClient.emit`` waits.
        """
        thread = self._loop_thread()
        thread.call(self._client._emit, event, data, namespace, callback, timeout, volatile, None)
        if self._client._conn.writing_paused and not thread.in_loop():
            thread.run(self._client._wait_writable(), "emit")

    def send(
        self, data: Any, namespace: str | None = None, callback: Handler | None = None
    ) -> None:
        """Emit a ``'message'`` event."""
        self.emit("message", data=data, namespace=namespace, callback=callback)

    def call(
        self, event: str, data: Any = None, namespace: str | None = None, timeout: float | None = 60
    ) -> Any:
        """Emit and block until the ack; returns its argument (a tuple for several). Raises ``TimeoutError`` after ``timeout`` and ``DisconnectedError`` when the link is lost; see :meth:`AsyncClient.call`."""
        return self._loop_thread().run(
            self._client.call(event, data=data, namespace=namespace, timeout=timeout), "call"
        )

    def disconnect(self) -> None:
        """Disconnect from the server, or stop reconnecting; no reconnection follows."""
        if self._thread is None:
            return
        if self._thread.in_loop():
            self._client._spawn(self._client.disconnect())
            return
        self._thread.run(self._client.disconnect(), "disconnect")

    def shutdown(self) -> None:
        """Disconnect, or stop a reconnection loop (python-socketio's name)."""
        self.disconnect()

    def wait(self) -> None:
        """Block until the client is disconnected for good (reconnection included)."""
        if self._thread is None:
            return
        self._thread.run(self._client.wait(), "wait")

    def sleep(self, seconds: float = 0) -> None:
        """Sleep ``seconds`` (python-socketio's API)."""
        time.sleep(seconds)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target(*args, **kwargs)`` in a daemon thread; returns the thread."""
        th = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        th.start()
        return th
