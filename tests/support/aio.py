"""Small helpers for tests: which loop is running, waiting on conditions (from a coroutine or
from a plain thread), events, and the plain client most tests start with."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import fastsio


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"`` for the given loop (default: the running one)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until truthy; TimeoutError naming ``what`` otherwise.

    Polling (5 ms) rather than notifications keeps this independent of the client under test.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        await asyncio.sleep(0.005)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """:func:`until` for sync code (the sync clients' tests): block the calling thread."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(0.005)


class EventLog:
    """Records events as lists of argument tuples, per name, in arrival order.

    log = EventLog()
    client.on("tick", log.handler("tick"))
    args = await log.wait("tick", count=100)   # the first 100 calls' args
    """

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def handler(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events[name].append(args)

        return record

    @classmethod
    def of(cls, client: Any, *names: str) -> EventLog:
        """A log of ``client``'s events ``names``, each recorded under its own name."""
        log = cls()
        for name in names:
            client.on(name, log.handler(name))
        return log

    def record(self, name: str, *args: Any) -> None:
        self.events[name].append(args)

    def count(self, name: str) -> int:
        return len(self.events.get(name, ()))

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0) -> list[tuple[Any, ...]]:
        await until(
            lambda: self.count(name) >= count,
            timeout,
            f"{count} x {name!r} (got {self.count(name)})",
        )
        return self.events[name][:count]

    def clear(self, name: str | None = None) -> None:
        if name is None:
            self.events.clear()
        else:
            self.events.pop(name, None)


def client(serializer: str = "json", **kwargs: Any) -> fastsio.AsyncClient:
    """An AsyncClient for ``serializer`` (``json`` or ``msgpack``), without reconnection unless
    ``kwargs`` ask for it."""
    kwargs.setdefault("reconnection", False)
    return fastsio.AsyncClient(
        serializer="msgpack" if serializer == "msgpack" else "default", **kwargs
    )


def log_events(sio: Any, *events: str, namespace: str = "/") -> EventLog:
    """An EventLog recording each of ``events`` of ``namespace`` on ``sio`` under its name."""
    log = EventLog()
    for event in events:
        sio.on(event, log.handler(event), namespace=namespace)
    return log


@contextlib.asynccontextmanager
async def connected(sio: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
    """``await sio.connect(*args, **kwargs)``; ``sio.disconnect()`` when the block ends, however
    it ends."""
    await sio.connect(*args, **kwargs)
    try:
        yield sio
    finally:
        await sio.disconnect()


def on_with_threads(client: Any, event: str, handler: Callable[..., Any]) -> set[int]:
    """``client.on(event, handler)``; returns the set of the threads the handler runs on."""
    threads: set[int] = set()

    def recorded(*args: Any) -> None:
        threads.add(threading.get_ident())
        handler(*args)

    client.on(event, recorded)
    return threads


@contextlib.contextmanager
def connected_sync(sio: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """:func:`connected` for the sync clients."""
    sio.connect(*args, **kwargs)
    try:
        yield sio
    finally:
        sio.disconnect()


async def close_server(server: asyncio.Server, tasks: set[asyncio.Task[Any]]) -> None:
    """Stop a test's ``asyncio.Server``: stop listening, cancel the tasks serving its
    connections and wait for them (whatever they raise), then for the server."""
    server.close()
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        with contextlib.suppress(BaseException):
            await task
    await server.wait_closed()
