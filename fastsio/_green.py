"""Threads and waits that stay correct when gevent has monkey-patched the process.

Under ``gevent.monkey.patch_all()`` (Locust, gunicorn's gevent worker, Flask-SocketIO apps)
``threading.Thread`` starts a greenlet, ``threading.get_ident`` names a greenlet, and the locks
behind ``concurrent.futures`` are gevent locks. The sync clients need the opposite: the event loop
on a real OS thread, an "is this the loop thread" test on real thread ids, and waits that let the
other greenlets run. This module gives those three, and nothing else depends on gevent: without
patching it falls back to the standard library.

A greenlet waiting for the loop thread parks on a ``gevent.hub.Waiter``; the loop thread hands the
result back through one ``async_`` watcher per hub (thread-safe ``send()``, coalesced: one wake-up
drains every completion that arrived). The watcher holds a reference on the hub's loop only while
some greenlet is waiting, so a lone greenlet waiting on the loop thread cannot end in gevent's
``LoopExit``, and an idle client never keeps the hub alive.

It must not know any client: the sync clients and contrib.locust call it, never the reverse.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def gevent_patched() -> bool:
    """Has gevent monkey-patched ``threading`` in this process?"""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _original(module: str, name: str) -> Any:
    from gevent import monkey

    return monkey.get_original(module, name)


def real_get_ident() -> Callable[[], int]:
    """The OS thread id function (not gevent's greenlet id when patched)."""
    return _original("_thread", "get_ident") if gevent_patched() else _thread.get_ident


def native_lock() -> Any:
    """A lock that blocks the OS thread (never a gevent lock)."""
    if gevent_patched():
        return _original("_thread", "allocate_lock")()
    return _thread.allocate_lock()


def start_real_thread(target: Callable[[], None], name: str) -> int:
    """Start ``target`` on a new daemon OS thread; return its OS thread id.

    ``threading.Thread`` when gevent has not patched it (so the thread shows in
    ``threading.enumerate()``), gevent's original ``start_new_thread`` otherwise: even
    ``monkey.get_original('threading', 'Thread')`` would start a greenlet, because it calls the
    patched module-level start function.
    """
    if not gevent_patched():
        th = threading.Thread(target=target, name=name, daemon=True)
        th.start()
        assert th.ident is not None
        return th.ident
    ident: int = _original("_thread", "start_new_thread")(target, ())
    return ident


class _HubBridge:
    """Completions from other OS threads back to the greenlets of one gevent hub."""

    def __init__(self, hub: Any) -> None:
        self._ready: collections.deque[tuple[Any, Any]] = collections.deque()
        self._waiting = 0
        self._watcher = hub.loop.async_()
        self._watcher.start(self._drain)
        self._watcher.ref = False

    def post(self, fn: Callable[[Any], Any], item: Any) -> None:
        """Have the hub call ``fn(item)`` soon (any thread; wake-ups are coalesced).

        ``fn`` runs on the hub greenlet: it must not block (a ``Waiter.switch`` or a queue put).
        """
        # deque.append is atomic and send() is the watcher's thread-safe wake-up.
        self._ready.append((fn, item))
        self._watcher.send()

    def _drain(self) -> None:
        # On the hub. A waiter whose greenlet is gone (killed, timed out) just keeps the value.
        ready = self._ready
        while ready:
            fn, item = ready.popleft()
            try:
                fn(item)
            except Exception:  # one failing listener must not strand the rest
                logging.getLogger("fastsio").exception("fastsio: a hub callback raised")

    def park(self, submit: Callable[[Any], None], op: Any) -> Any:
        """Hand ``op`` to the loop thread with ``submit(op)`` and park this greenlet until the
        loop thread calls ``bridge.post(switch_op, op)`` with ``op.outcome`` set; return that.

        The lean form of :meth:`wait` for hot paths: ``op`` is one preallocated object (slots
        ``waiter``, ``outcome``, ``abandoned``), no closure or future per operation. If this
        greenlet is killed or times out first, ``op.abandoned`` is set: the loop thread must not
        start an op it finds abandoned (its late completion, if started, is dropped).
        """
        from gevent.hub import Waiter

        op.waiter = Waiter()
        self._waiting += 1
        if self._waiting == 1:
            self._watcher.ref = True
        try:
            submit(op)
            return op.waiter.get()
        except BaseException:
            op.abandoned = True
            raise
        finally:
            self._waiting -= 1
            if self._waiting == 0:
                self._watcher.ref = False

    def wait(
        self,
        schedule: Callable[[Callable[[], None]], Any],
        start: Callable[[Callable[[Any], None]], Any],
        discard: Callable[[], None] | None = None,
    ) -> Any:
        """Run ``start(done)`` on the loop thread and park this greenlet until ``done(item)``.

        ``schedule(fn)`` hands ``fn`` to the loop thread (``loop.call_soon_threadsafe``).

        ``start`` returns something with ``cancel()`` (or None): it is cancelled on the loop
        thread if this greenlet is killed or times out while waiting; if that happens before
        ``start`` ran, ``discard()`` runs there instead.
        """
        from gevent.hub import Waiter

        waiter = Waiter()
        started: list[Any] = []
        abandoned = False

        def on_loop() -> None:
            if abandoned:
                if discard is not None:
                    discard()
                return
            started.append(start(lambda item: self.post(waiter.switch, item)))

        def cancel() -> None:
            if started and started[0] is not None:
                started[0].cancel()

        self._waiting += 1
        if self._waiting == 1:
            self._watcher.ref = True
        try:
            schedule(on_loop)
            return waiter.get()
        except BaseException:
            abandoned = True
            try:
                schedule(cancel)
            except RuntimeError:
                pass  # the loop is closed: nothing left to cancel
            raise
        finally:
            self._waiting -= 1
            if self._waiting == 0:
                self._watcher.ref = False


def switch_op(op: Any) -> None:
    """On the hub: wake the greenlet parked on ``op`` (see :meth:`_HubBridge.park`)."""
    op.waiter.switch(op.outcome)


_bridges: weakref.WeakKeyDictionary[Any, _HubBridge] = weakref.WeakKeyDictionary()


def hub_bridge() -> _HubBridge | None:
    """This thread's hub bridge, or None when waiting must block the thread instead."""
    from gevent import get_hub, getcurrent

    hub = get_hub()
    if getcurrent() is hub:
        return None  # a hub callback cannot park itself; it blocks like any thread would
    bridge = _bridges.get(hub)
    if bridge is None:
        bridge = _bridges[hub] = _HubBridge(hub)
    return bridge


def outcome(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except BaseException as exc:  # handed to the waiting caller, re-raised there
        return False, exc


def unwrap(item: tuple[bool, Any]) -> Any:
    ok, value = item
    if ok:
        return value
    raise value


def task_outcome(task: asyncio.Task[Any], if_cancelled: BaseException) -> tuple[bool, Any]:
    """A finished task as ``(True, result)`` or ``(False, exception)`` to hand to a waiter;
    a cancelled one counts as ``if_cancelled``."""
    if task.cancelled():
        return (False, if_cancelled)
    if task.exception() is not None:
        return (False, task.exception())
    return (True, task.result())


def run_coroutine(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's) and wait for its result, greenlet-friendly."""
    bridge = hub_bridge() if gevent_patched() else None
    if bridge is None:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def start(done: Callable[[Any], None]) -> asyncio.Task[T]:
        task = loop.create_task(coro)

        task.add_done_callback(lambda t: done(task_outcome(t, asyncio.CancelledError())))
        return task

    # A coroutine never started is closed (on the loop thread): no "never awaited" warning.
    return unwrap(bridge.wait(loop.call_soon_threadsafe, start, coro.close))  # type: ignore[no-any-return]


def run_function(loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` on ``loop``'s thread and return its result, greenlet-friendly."""
    bridge = hub_bridge() if gevent_patched() else None
    if bridge is None:

        async def runner() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(runner(), loop).result()

    def start(done: Callable[[Any], None]) -> None:
        done(outcome(fn, args))

    return unwrap(bridge.wait(loop.call_soon_threadsafe, start))  # type: ignore[no-any-return]
