"""Socket.IO load tests on Locust with fastsio: ``FastsioUser`` (``pip install fastsio[locust]``).

Shaped like Locust's ``locust.contrib.socketio.SocketIOUser`` (``options``, ``self.sio``, connect
in ``on_start``), so a locustfile switches by changing its import::

    from fastsio.contrib.locust import FastsioUser

    class Chat(FastsioUser):
        options = {"reconnection": False}

        def on_start(self):
            self.sio.connect("http://localhost:3000")

        @task
        def ping(self):
            self.sio.call("ping", {"t": 1}, name="ping")

Every user's connection runs on one event loop per worker process, on a real OS thread started
lazily (so after ``--processes`` forks) and stopped on Locust's ``quitting`` event. Greenlets
hand operations to it through one queue (no task or future per operation) and get completions
back through one gevent hub watcher.

What is reported (``request_type``, ``name``):

- ``WS connect``: the connect, timed; a failed connect is a failure (and re-raised).
- ``WSC <event>``: ``call()``, timed on the loop thread from sending to the ack; a timeout or a
  disconnection is a failure; counted once.
- ``WSE <event>`` / ``WSS message``: ``emit()`` / ``send()``, response time None (an emit has
  no reply to time); an emit that could not be sent is a failure.
- ``WSX <event>``: ``expect()``, from the emit to the matching reply event.
- ``WSR <event>``: events received, counted in bulk with response time None; or, with
  ``received_latency``, one entry per event timed from the send timestamp it carries.
- ``WS disconnect`` / ``WS reconnect`` / ``WS reconnect_failed``: failures (only disconnections
  the user did not ask for).

Locust keeps response times in whole milliseconds for its percentiles (the average keeps the
fraction). ``response_time_unit = "us"`` reports microseconds instead (the "ms" columns then
read µs), for servers answering in well under a millisecond.

Owns the Locust user and its client's API: what each operation reports to Locust, handlers run
on greenlets, ``expect()``. The loop thread, the hand-over of operations to it and the bulk
figures are ``_locust_loop.py``'s. It must not know packets or the client's parts: AsyncClient's
API (and its synchronous ``_emit``).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event as GreenEvent
from locust import User
from locust.env import Environment

from .. import exceptions
from .._forwarded import Forwarded
from ..async_client import AsyncClient
from ..delivery import ack_result
from ..handlers import event_decorator, register_or_decorate
from ..reasons import Reason
from ._locust_loop import MAX_QUEUED_OPS, CallOp, worker_loop
from ._locust_loop import bytes_totals as bytes_totals  # public: README's byte totals

__all__ = ["FastsioUser", "LocustClient"]

logger = logging.getLogger("fastsio.locust")
# Locust logs at INFO; picows would log every connection's close there, once per user.
if logging.getLogger("picows").level == logging.NOTSET:
    logging.getLogger("picows").setLevel(logging.WARNING)

_RESERVED = frozenset(AsyncClient.reserved_events)


class LocustClient:
    """The ``self.sio`` of a :class:`FastsioUser`: python-socketio's sync API, reported to Locust.

    ``options`` are :class:`fastsio.AsyncClient`'s. Handlers registered with :meth:`on` run on
    a greenlet of this client, in arrival order (they may block, ``call()`` included), unless
    registered with ``on_loop=True``: then they run on the loop thread, for hot counters (they
    must not block, and their return value is the ack).
    """

    def __init__(
        self,
        environment: Environment,
        received_latency: Callable[[str, tuple[Any, ...]], float | None] | None = None,
        response_time_unit: str = "ms",
        **options: Any,
    ) -> None:
        if response_time_unit not in ("ms", "us"):
            raise ValueError("response_time_unit must be 'ms' or 'us'")
        self.environment = environment
        self.request_event = environment.events.request
        self._scale = 1000.0 if response_time_unit == "ms" else 1_000_000.0
        self._received_latency = received_latency
        self._wl = worker_loop(environment)
        self._client = AsyncClient(**options)
        self._user_handlers: dict[tuple[str, str], Callable[..., Any]] = {}
        self._inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]]
        self._inbox = collections.deque()
        self._inbox_signaled = False
        self._inbox_event: GreenEvent | None = None
        self._handler_greenlet: gevent.Greenlet | None = None
        self._closing = False
        self._expectations: dict[tuple[str, str], list[_Expectation]] = {}
        self._install("/")

    # -- state ----------------------------------------------------------------------------------

    connected = Forwarded[bool]("_client")
    sid = Forwarded[str | None]("_client")

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The Socket.IO sid of ``namespace`` (the default one when None), None if not connected."""
        return self._client.get_sid(namespace)

    def stats(self) -> dict[str, Any]:
        """fastsio's counters of this connection (packets, events, bytes, pending acks)."""
        return self._client.stats()

    # -- reporting ------------------------------------------------------------------------------

    def _fire(
        self, request_type: str, name: str, response_time: float | None, exc: BaseException | None
    ) -> None:
        self.request_event.fire(
            request_type=request_type,
            name=name,
            response_time=response_time,
            response_length=0,
            exception=exc,
            context={},
        )

    def _fire_item(self, item: tuple[str, str, float | None, BaseException | None]) -> None:
        self._fire(*item)

    # -- connection -----------------------------------------------------------------------------

    def connect(
        self,
        url: str,
        headers: dict[str, str] = {},  # noqa: B006
        auth: Any = None,
        transports: Any = None,
        namespaces: Any = None,
        socketio_path: str = "socket.io",
        wait: bool = True,
        wait_timeout: float = 1,
        retry: bool = False,
        name: str = "connect",
    ) -> None:
        """Connect, reported as ``WS <name>``; a failure is reported, then raised."""
        for nsp in [namespaces] if isinstance(namespaces, str) else namespaces or []:
            self._install(nsp)
        self._closing = False
        t0 = time.perf_counter()
        coro = self._client.connect(
            url,
            headers=headers,
            auth=auth,
            transports=transports,
            namespaces=namespaces,
            socketio_path=socketio_path,
            wait=wait,
            wait_timeout=wait_timeout,
            retry=retry,
        )
        try:
            self._wl.run(coro)
        except Exception as exc:
            self._fire("WS", name, (time.perf_counter() - t0) * self._scale, exc)
            raise
        self._fire("WS", name, (time.perf_counter() - t0) * self._scale, None)
        self._wl.submit(lambda: self._wl.clients.add(self._client))

    def disconnect(self) -> None:
        """Disconnect (not reported); received events counted so far are logged."""
        self._closing = True
        if self._client.eio is not None or self._client.connected:
            try:
                self._wl.run(self._client.disconnect())
            finally:
                self._wl.submit(self._forget)
        self._wl.flush()

    def _forget(self) -> None:  # loop thread
        if self._client in self._wl.clients:
            self._wl.clients.discard(self._client)
            s = self._client.stats()
            self._wl.bytes_closed[0] += s["bytes_sent"]
            self._wl.bytes_closed[1] += s["bytes_received"]

    def wait(self) -> None:
        """Block this greenlet until the connection ends for good."""
        self._wl.run(self._client.wait())

    def sleep(self, seconds: float = 0) -> None:
        """Sleep without blocking the other users (``gevent.sleep``)."""
        gevent.sleep(seconds)

    # -- sending --------------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        name: str | None = None,
        *,
        request_type: str = "WSE",
    ) -> None:
        """Emit, reported as ``WSE <name or event>`` with response time None.

        Returns at once; a failure to send is reported as it happens on the loop thread.
        ``callback`` runs on this client's handler greenlet.
        """
        wl = self._wl
        if len(wl.ops) > MAX_QUEUED_OPS:
            wl.wait(lambda done: done(None))  # let the loop thread catch up
        report = (request_type, name or str(event))
        cb = None if callback is None else self._deliverer(callback)
        post = wl.bridge.post
        fire_item = self._fire_item
        client = self._client

        def op() -> None:
            try:
                client._emit(event, data, namespace, cb, None, False, None)
            except Exception as exc:
                post(fire_item, (*report, None, exc))
            else:
                post(fire_item, (*report, None, None))

        wl.submit(op)

    def send(
        self,
        data: Any,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        name: str = "message",
    ) -> None:
        """Emit a ``'message'`` event, reported as ``WSS <name>``."""
        self.emit("message", data, namespace, callback, name, request_type="WSS")

    def call(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        timeout: float | None = 60,
        name: str | None = None,
    ) -> Any:
        """Emit and wait for the ack, reported as ``WSC <name or event>``, timed from sending to
        the ack on the loop thread. Returns the ack's argument (a tuple for several), or None
        after a failure (timeout, disconnection), which is reported, not raised.
        """
        wl = self._wl
        limit = 3600.0 if timeout is None else timeout
        op = CallOp(self._client, event, data, namespace, limit, wl.bridge.post)
        err, args, elapsed = wl.bridge.park(wl.submit, op)
        self._fire("WSC", name or str(event), elapsed * self._scale, err)
        return None if err is not None else ack_result(args)

    def expect(
        self,
        event: str,
        data: Any = None,
        reply: str | None = None,
        predicate: Callable[..., bool] | None = None,
        timeout: float = 10,
        namespace: str | None = None,
        name: str | None = None,
    ) -> tuple[Any, ...] | None:
        """Emit ``event`` and wait for the ``reply`` event (default: the same name) whose
        arguments satisfy ``predicate(*args)`` (evaluated on the loop thread: keep it cheap).

        Reported as ``WSX <name or event>``, timed on the loop thread from the emit to the
        reply; a timeout is a failure. Returns the reply's arguments, or None after a failure.
        The matching reply is still counted (``WSR``) and passed to its handler, if any.
        """
        nsp = namespace or "/"
        reply_event = reply or event
        client = self._client
        wl = self._wl

        def start(done: Callable[[Any], None]) -> None:
            t0 = time.perf_counter()
            waiter = _Expectation(predicate, done, t0)
            waiters = self._expectations.setdefault((nsp, reply_event), [])
            waiters.append(waiter)
            self._install_shim(nsp, reply_event)

            def expire() -> None:
                if waiter in waiters:
                    waiters.remove(waiter)
                    done((exceptions.TimeoutError(), (), time.perf_counter() - t0))

            waiter.timer = wl.loop.call_later(timeout, expire)
            try:
                client._emit(event, data, namespace, None, None, False, None)
            except Exception as exc:
                waiters.remove(waiter)
                waiter.timer.cancel()
                done((exc, (), time.perf_counter() - t0))

        err, args, elapsed = wl.wait(start)
        self._fire("WSX", name or str(event), elapsed * self._scale, err)
        return None if err is not None else args

    # -- receiving ------------------------------------------------------------------------------

    def on(
        self,
        event: str,
        handler: Callable[..., Any] | None = None,
        namespace: str | None = None,
        *,
        on_loop: bool = False,
    ) -> Any:
        """Register a handler (a decorator without ``handler``); see the class docstring."""
        nsp = namespace or "/"

        def register(h: Callable[..., Any]) -> Callable[..., Any]:
            if on_loop:
                self._user_handlers[(nsp, event)] = h
            else:
                self._user_handlers[(nsp, event)] = self._deliverer(h)
            self._wl.submit(lambda: self._install_shim(nsp, event))
            return h

        return register_or_decorate(register, handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler under the function's name, as python-socketio's."""
        return event_decorator(self.on, args, kwargs)

    def _install(self, nsp: str) -> None:
        # Before the loop thread touches this client: the catch-all (WSR counting) and the
        # disconnection reports of a namespace.
        for event in ("*", "disconnect", "reconnect", "reconnect_failed"):
            self._install_shim(nsp, event)

    def _install_shim(self, nsp: str, event: str) -> None:
        """The loop-thread handler of (nsp, event): counts, reports, matches, then delivers."""
        handlers = self._client.handlers.get(nsp, {})
        if event in handlers and getattr(handlers[event], "_fastsio_shim", False):
            return
        wl = self._wl
        user = self._user_handlers
        key = (nsp, event)
        latency = self._received_latency
        expectations = self._expectations
        post = wl.bridge.post
        fire_item = self._fire_item
        count = wl.count_received
        scale = self._scale
        shim: Callable[..., Any]

        if event == "disconnect":

            def shim(*args: Any) -> Any:
                reason = args[0] if args else None
                if not self._closing and reason != Reason.CLIENT_DISCONNECT:
                    exc = exceptions.ConnectionError(f"disconnected: {reason}")
                    post(fire_item, ("WS", "disconnect", None, exc))
                h = user.get(key)
                return h(*args) if h is not None else None

        elif event in ("reconnect", "reconnect_failed"):

            def shim(*args: Any) -> Any:
                what = "reconnected after a disconnection" if event == "reconnect" else event
                post(fire_item, ("WS", event, None, exceptions.ConnectionError(what)))
                h = user.get(key)
                return h(*args) if h is not None else None

        elif event in _RESERVED:

            def shim(*args: Any) -> Any:
                h = user.get(key)
                return h(*args) if h is not None else None

        else:
            catch_all = event == "*"

            def shim(*args: Any) -> Any:
                name = args[0] if catch_all else event
                eargs = args[1:] if catch_all else args
                waiters = expectations.get((nsp, name))
                if waiters:
                    for w in waiters:
                        try:
                            matched = w.predicate is None or w.predicate(*eargs)
                            err = None
                        except Exception as exc:  # a broken predicate fails its expect()
                            matched, err = True, exc
                        if matched:
                            waiters.remove(w)
                            w.timer.cancel()
                            w.done((err, eargs, time.perf_counter() - w.t0))
                            break
                ts = latency(name, eargs) if latency is not None else None
                if ts is None:
                    count(name)
                else:
                    post(fire_item, ("WSR", name, (time.time() - ts) * scale, None))
                h = user.get(key)
                return h(*args) if h is not None else None

        shim._fastsio_shim = True  # type: ignore[attr-defined]
        self._client.on(event, shim, nsp)

    def _deliverer(self, handler: Callable[..., Any]) -> Callable[..., None]:
        """A loop-thread stand-in for ``handler`` that runs it on this client's greenlet."""
        inbox = self._inbox
        post = self._wl.bridge.post
        wake = self._wake_handlers

        def deliver(*args: Any) -> None:
            inbox.append((handler, args))
            if not self._inbox_signaled:
                self._inbox_signaled = True
                post(wake, None)

        return deliver

    def _wake_handlers(self, _: Any) -> None:  # hub
        if self._handler_greenlet is None:
            self._inbox_event = GreenEvent()
            self._handler_greenlet = gevent.spawn(self._run_handlers)
        assert self._inbox_event is not None
        self._inbox_event.set()

    def _run_handlers(self) -> None:
        inbox = self._inbox
        ev = self._inbox_event
        assert ev is not None
        while True:
            ev.wait()
            ev.clear()
            self._inbox_signaled = False  # before draining: a later arrival signals again
            while inbox:
                handler, args = inbox.popleft()
                try:
                    handler(*args)
                except Exception:
                    logger.exception("fastsio: handler %r raised", handler)


class _Expectation:
    __slots__ = ("predicate", "done", "t0", "timer")

    def __init__(self, predicate: Callable[..., bool] | None, done: Any, t0: float) -> None:
        self.predicate = predicate
        self.done = done
        self.t0 = t0
        self.timer: Any = None


class FastsioUser(User):
    """A Locust user with a fastsio Socket.IO client as ``self.sio`` (a :class:`LocustClient`).

    Set ``options`` (AsyncClient arguments), and optionally ``received_latency`` (a function
    ``(event, args) -> send timestamp in seconds since the epoch, or None``) and
    ``response_time_unit`` (``"ms"`` or ``"us"``). Connect in ``on_start``.
    """

    abstract = True
    options: dict[str, Any] = {}
    received_latency: Callable[[str, tuple[Any, ...]], float | None] | None = None
    response_time_unit: str = "ms"
    sio: LocustClient

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        latency = type(self).received_latency
        self.sio = LocustClient(
            environment,
            received_latency=latency,
            response_time_unit=self.response_time_unit,
            **self.options,
        )
