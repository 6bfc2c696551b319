"""Which function handles an event, and how it runs: python-socketio's handler rules.

Owns the handler tables (per namespace, catch-alls, namespace classes, batch handlers), the
lookup order, and invocation: plain functions run inline, coroutines start in arrival order
(eagerly where the loop allows) and are kept referenced until done, with a bound on how many
run at once (backpressure). It knows nothing of sessions or packets on the wire: acks go out
through ``send_ack``, and the bound through ``pause``/``resume``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._ext._core import NamespaceSlot

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

_EAGER_TASKS = sys.version_info >= (3, 12)

#: Names a server cannot send (socket.io-parser rejects them) and the life-cycle names shared
#: with python-socketio; every other name, "reconnect" included, is a server event.
SERVER_RESERVED = frozenset(
    (
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "__disconnect_final",
    )
)


def event_decorator(on: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """python-socketio's ``event``: ``on()`` under the decorated function's name, used bare
    (``@sio.event``) or with ``on``'s arguments (``@sio.event(namespace="/chat")``)."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return on(args[0].__name__)(args[0])

    def set_handler(handler: H) -> H:
        return on(handler.__name__, *args, **kwargs)(handler)  # type: ignore[no-any-return]

    return set_handler


def register_or_decorate(register: Callable[[H], H], handler: H | None) -> Any:
    """python-socketio's ``on``: ``register(handler)`` now (returning None), or without a
    handler, ``register`` itself as the decorator."""
    if handler is None:
        return register
    register(handler)
    return None


def call_handler(handler: Handler, args: tuple[Any, ...], event: str) -> Any:
    """Call ``handler(*args)``; a ``disconnect`` handler written for python-socketio < 5.12
    takes no reason argument, so it is called again without it."""
    try:
        return handler(*args)
    except TypeError:
        if event != "disconnect" or not args:
            raise
        return handler(*args[:-1])


@dataclass(eq=False)
class HandlerTable:
    """The client's handlers and their invocation.

    :param reserved: the client's life-cycle event names; catch-all handlers never see them.
    :param send_ack: ``send_ack(nsp, ack_id, result, session)`` answers an event that asked
        for an ack; ``session`` is what ``session()`` returned when the event arrived (None
        when answered at once), so that a late answer never reaches a later session.
    :param session: the current session (an opaque token).
    :param pause: called when ``max_pending`` async handlers are running: stops reading and
        returns True, or returns False when there is nothing to pause (no session).
    :param resume: called when half of them have finished (reading may resume).
    """

    logger: logging.Logger
    reserved: Collection[str]
    send_ack: Callable[[str, int, Any, Any], None]
    session: Callable[[], Any]
    pause: Callable[[], bool]
    resume: Callable[[], None]
    max_pending: int = 1000
    handlers: dict[str, dict[str, Handler]] = field(default_factory=dict, init=False)
    namespace_handlers: dict[str, Any] = field(default_factory=dict, init=False)
    batch_handlers: dict[str, dict[str, Handler]] = field(default_factory=dict, init=False)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)
    paused: bool = field(default=False, init=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    # -- registration ------------------------------------------------------------------

    def set(self, event: str, handler: Handler, nsp: str, batch: bool) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        if batch:
            if event == "*" or nsp == "*" or event in self.reserved:
                raise ValueError("batch handlers need a real event name and namespace")
            if inspect.iscoroutinefunction(handler):
                raise ValueError("batch handlers must be plain (sync) functions")
            self.batch_handlers.setdefault(nsp, {})[event] = handler
            self.handlers.get(nsp, {}).pop(event, None)
        else:
            self.handlers.setdefault(nsp, {})[event] = handler
            self.batch_handlers.get(nsp, {}).pop(event, None)

    def namespaces(self) -> list[str]:
        """The namespaces some handler was registered for (the default ones to connect)."""
        nsps = set(self.handlers).union(self.namespace_handlers, self.batch_handlers)
        nsps.discard("*")
        return sorted(nsps)

    def sync_slot(self, slots: dict[str, NamespaceSlot], nsp: str) -> None:
        """Refresh the compiled core's dispatch table of ``nsp`` (in ``slots``, the
        Dispatcher's) with the handlers the core calls itself: plain sync ones, and batch ones."""
        slot = slots.get(nsp)
        if slot is None:
            slot = slots[nsp] = NamespaceSlot(nsp)
        slot.fast = {
            event: handler
            for event, handler in self.handlers.get(nsp, {}).items()
            if event not in self.reserved
            and event != "*"
            and not inspect.iscoroutinefunction(handler)
        }
        slot.batch = dict(self.batch_handlers.get(nsp, {}))

    # -- lookup ------------------------------------------------------------------------

    def find(
        self,
        event: str,
        nsp: str,
        args: tuple[Any, ...],
        reserved: Collection[str] | None = None,
    ) -> tuple[Handler | None, tuple[Any, ...]]:
        # Resolution order as python-socketio: [nsp][event], [nsp]['*'], ['*'][event], ['*']['*'].
        # Catch-alls never see `reserved` names (by default the client's life-cycle events).
        if reserved is None:
            reserved = self.reserved
        handlers = self.handlers
        if nsp in handlers:
            hs = handlers[nsp]
            if event in hs:
                return hs[event], args
            if event not in reserved and "*" in hs:
                return hs["*"], (event, *args)
        elif "*" in handlers:
            hs = handlers["*"]
            if event in hs:
                return hs[event], (nsp, *args)
            if event not in reserved and "*" in hs:
                return hs["*"], (event, nsp, *args)
        return None, args

    def find_namespace(self, nsp: str, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        if nsp in self.namespace_handlers:
            return self.namespace_handlers[nsp], args
        if "*" in self.namespace_handlers:
            return self.namespace_handlers["*"], (nsp, *args)
        return None, args

    # -- dispatch ----------------------------------------------------------------------

    def trigger(self, event: str, nsp: str, *args: Any) -> None:
        """Fire a client life-cycle event (connect, disconnect, reconnect_attempt, ...)."""
        self._dispatch(event, nsp, args, None, self.reserved)

    def server_event(self, nsp: str, ack_id: int | None, data: list[Any]) -> None:
        """An event from the server that the compiled core did not dispatch itself."""
        event = data[0]
        if event in SERVER_RESERVED:
            # socket.io-parser refuses these names; a server must not fire our lifecycle events.
            self.logger.warning("Ignoring an event named %r sent by the server", event)
            return
        args = tuple(data[1:])
        batch = self.batch_handlers.get(nsp)
        if batch is not None and event in batch:
            # An event with an ack id (or before the namespace is set up): a batch of one.
            item = args[0] if len(args) == 1 else (args or None)
            self.invoke(batch[event], ([item],), event, nsp, ack_id)
            return
        if self._dispatch(event, nsp, args, ack_id, SERVER_RESERVED):
            return
        self.logger.debug("No handler for event %r in namespace %s", event, nsp)
        if ack_id is not None:
            self.send_ack(nsp, ack_id, None, None)

    def _dispatch(
        self,
        event: str,
        nsp: str,
        args: tuple[Any, ...],
        ack_id: int | None,
        reserved: Collection[str],
    ) -> bool:
        """The one lookup: a handler function first, then a namespace object; False if none."""
        handler, hargs = self.find(event, nsp, args, reserved)
        if handler is not None:
            self.invoke(handler, hargs, event, nsp, ack_id)
            return True
        ns_handler, hargs = self.find_namespace(nsp, args)
        if ns_handler is not None:
            self.invoke(ns_handler.trigger_event, (event, *hargs), event, nsp, ack_id)
            return True
        return False

    def handler_error(self, event: str, nsp: str, exc: BaseException) -> None:
        self.logger.error("Handler for event %r in namespace %s raised", event, nsp, exc_info=exc)

    def invoke(
        self, handler: Handler, args: tuple[Any, ...], event: str, nsp: str, ack_id: int | None
    ) -> None:
        try:
            result = call_handler(handler, args, event)
        except Exception as exc:
            self.handler_error(event, nsp, exc)
            return
        if inspect.isawaitable(result):
            session = self.session() if ack_id is not None else None
            task = self.start(result)
            if ack_id is not None:
                # As with a sync handler that raises, a failed handler sends no ack (the error
                # is logged); the server's own ack timeout then applies.
                def ack_when_done(t: asyncio.Task[Any]) -> None:
                    if not t.cancelled() and t.exception() is None:
                        self.send_ack(nsp, ack_id, t.result(), session)

                task.add_done_callback(ack_when_done)
            return
        if ack_id is not None:
            self.send_ack(nsp, ack_id, result, None)

    def start(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """Start an async handler now, in arrival order; keep it referenced until done."""
        loop = self.loop or asyncio.get_running_loop()
        coro = awaitable if inspect.iscoroutine(awaitable) else _await(awaitable)
        if _EAGER_TASKS:
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        else:
            task = loop.create_task(coro)
        if not task.done():
            self.tasks.add(task)
            task.add_done_callback(self._task_done)
            if not self.paused and self.max_pending and len(self.tasks) >= self.max_pending:
                self.paused = self.pause()
        else:
            self._task_done(task, discard=False)
        return task

    def session_ended(self) -> None:
        """The session whose reading was paused is over: the next one starts unpaused."""
        self.paused = False

    def _task_done(self, task: asyncio.Task[Any], discard: bool = True) -> None:
        if discard:
            self.tasks.discard(task)
            if self.paused and len(self.tasks) <= self.max_pending // 2:
                self.paused = False
                self.resume()  # may pause again at once
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("Async handler raised", exc_info=task.exception())


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
