"""Client: the synchronous API, an AsyncClient running on a background event-loop thread.

Handlers run on that thread, inline and in arrival order (no thread per message). Calls made
from a handler (``emit``, ``send``) run directly on the loop; blocking calls that need the
loop to make progress (``call``, ``connect``, ``wait``) raise ``RuntimeError`` there instead of
deadlocking.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _green
from .async_client import AsyncClient, Handler
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


class Client:
    """A Socket.IO client with python-socketio's synchronous ``Client`` API.

    Takes the same arguments as :class:`fastsio.AsyncClient`, plus ``use_uvloop`` (default
    ``True``) to choose the background loop.
    """

    def __init__(self, *args: Any, use_uvloop: bool = True, **kwargs: Any) -> None:
        self._client = AsyncClient(*args, **kwargs)
        self._client.is_asyncio_based = lambda: False  # type: ignore[method-assign]
        self._use_uvloop = use_uvloop
        self._thread: _LoopThread | None = None

    def _loop_thread(self) -> _LoopThread:
        if self._thread is None:
            self._thread = _LoopThread(self._use_uvloop)
        return self._thread

    # -- attributes mirrored from the async client --

    def __getattr__(self, name: str) -> Any:
        # handlers, namespaces, sid, connected, logger, reason, recovered, ...
        return getattr(self._client, name)

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def sid(self) -> str | None:
        return self._client.sid

    def is_asyncio_based(self) -> bool:
        return False

    def on(
        self,
        event: str,
        handler: Handler | None = None,
        namespace: str | None = None,
        *,
        batch: bool = False,
    ) -> Any:
        return self._client.on(event, handler, namespace, batch=batch)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.event(*args, **kwargs)

    def register_namespace(self, namespace_handler: ClientNamespace) -> None:
        if not isinstance(namespace_handler, ClientNamespace):
            raise ValueError("Not a namespace instance")
        namespace_handler._set_client(self)
        self._client.namespace_handlers[namespace_handler.namespace] = namespace_handler

    def get_sid(self, namespace: str | None = None) -> str | None:
        return self._client.get_sid(namespace)

    def transport(self) -> str | None:
        return self._client.transport()

    def stats(self) -> dict[str, Any]:
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
        self._run_or_direct(
            self._client._emit, event, data, namespace, callback, timeout, volatile, None
        )

    def send(
        self, data: Any, namespace: str | None = None, callback: Handler | None = None
    ) -> None:
        self.emit("message", data=data, namespace=namespace, callback=callback)

    def call(
        self, event: str, data: Any = None, namespace: str | None = None, timeout: float | None = 60
    ) -> Any:
        return self._loop_thread().run(
            self._client.call(event, data=data, namespace=namespace, timeout=timeout), "call"
        )

    def disconnect(self) -> None:
        if self._thread is None:
            return
        if self._thread.in_loop():
            self._client._spawn(self._client.disconnect())
            return
        self._thread.run(self._client.disconnect(), "disconnect")

    def shutdown(self) -> None:
        self.disconnect()

    def wait(self) -> None:
        if self._thread is None:
            return
        self._thread.run(self._client.wait(), "wait")

    def sleep(self, seconds: float = 0) -> None:
        time.sleep(seconds)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
        th = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        th.start()
        return th
