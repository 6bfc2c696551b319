"""AsyncSimpleClient and SimpleClient: python-socketio's request/response style API.

Owns the simple clients' state (one namespace, a queue of received events, the ``connect``
wait) on top of a full AsyncClient (and, for SimpleClient, the sync Client's loop thread). It
must not know anything below AsyncClient's public API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import exceptions
from ._forwarded import Forwarded
from .async_client import AsyncClient
from .client import _LoopThread

T = TypeVar("T")

# Errors that mean "not connected right now". python-socketio catches every SocketIOError here,
# which also retries a TimeoutError (forever, with a server that never acks) and errors that no
# retry can fix (PayloadTooLargeError, BufferFullError): those propagate.
_TRANSIENT = (exceptions.DisconnectedError, exceptions.BadNamespaceError)


class AsyncSimpleClient:
    """Connect, ``emit``/``call``, and ``receive()`` events one at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.client_args = args
        self.client_kwargs = kwargs
        self.client: AsyncClient | None = None
        self.namespace = "/"
        self.connected_event = asyncio.Event()
        self.connected = False
        self.input_event = asyncio.Event()
        self.input_buffer: list[list[Any]] = []

    async def connect(
        self,
        url: str,
        headers: dict[str, str] = {},  # noqa: B006
        auth: Any = None,
        transports: Any = None,
        namespace: str = "/",
        socketio_path: str = "socket.io",
        wait_timeout: float = 5,
    ) -> None:
        """Connect to ``url`` (one namespace); raises ``ConnectionError`` on failure."""
        if self.connected:
            raise RuntimeError("Already connected")
        self.namespace = namespace
        self.input_buffer = []
        self.input_event.clear()
        self.client = AsyncClient(*self.client_args, **self.client_kwargs)

        @self.client.event(namespace=self.namespace)
        def connect() -> None:
            self.connected = True
            self.connected_event.set()

        @self.client.event(namespace=self.namespace)
        def disconnect() -> None:
            self.connected_event.clear()

        @self.client.event(namespace=self.namespace)
        def __disconnect_final() -> None:
            self.connected = False
            self.connected_event.set()
            self.input_event.set()  # a receive() in progress raises DisconnectedError now

        @self.client.on("*", namespace=self.namespace)
        def on_event(event: str, *args: Any) -> None:
            self.input_buffer.append([event, *args])
            self.input_event.set()

        await self.client.connect(
            url,
            headers=headers,
            auth=auth,
            transports=transports,
            namespaces=[namespace],
            socketio_path=socketio_path,
            wait_timeout=wait_timeout,
        )

    @property
    def sid(self) -> str | None:
        return self.client.get_sid(self.namespace) if self.client else None

    @property
    def transport(self) -> str:
        return (self.client.transport() or "") if self.client else ""

    async def emit(self, event: str, data: Any = None) -> None:
        """Emit an event; during a reconnection, wait for it (python-socketio's behaviour).

        Raises ``DisconnectedError`` once the connection is over for good (the server
        disconnected us, ``disconnect()`` was called, or reconnection gave up).
        """
        await self._retry_while_reconnecting(
            lambda client: client.emit(event, data, namespace=self.namespace)
        )

    async def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        """Emit and wait for the ack. A call lost with the connection is sent again once
        reconnected (python-socketio's behaviour: the server may then run it twice); a
        ``TimeoutError`` is raised, not retried."""
        return await self._retry_while_reconnecting(
            lambda client: client.call(event, data, namespace=self.namespace, timeout=timeout)
        )

    async def _retry_while_reconnecting(self, op: Callable[[AsyncClient], Awaitable[T]]) -> T:
        if not self.connected:
            raise exceptions.DisconnectedError()
        while True:
            await self.connected_event.wait()
            if not self.connected or self.client is None:
                raise exceptions.DisconnectedError()
            try:
                return await op(self.client)
            except _TRANSIENT:
                # The link dropped under the operation: python-socketio's simple clients catch
                # it and wait for the reconnection (or for the end, then raise above).
                pass

    async def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event as ``[name, *args]``; raises TimeoutError after ``timeout``."""
        while not self.input_buffer:
            await self.connected_event.wait()
            if not self.connected:
                raise exceptions.DisconnectedError()
            self.input_event.clear()
            try:
                await asyncio.wait_for(self.input_event.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                raise exceptions.TimeoutError() from None
        return self.input_buffer.pop(0)

    async def disconnect(self) -> None:
        """Disconnect from the server."""
        if self.connected and self.client is not None:
            await self.client.disconnect()
            self.client = None
            self.connected = False

    async def __aenter__(self) -> AsyncSimpleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


class SimpleClient:
    """The synchronous ``SimpleClient``: an AsyncSimpleClient on a background loop thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._thread = _LoopThread()
        self._client: AsyncSimpleClient = self._thread.run(
            _make_async_simple(args, kwargs), "SimpleClient"
        )

    def connect(
        self,
        url: str,
        headers: dict[str, str] = {},  # noqa: B006
        auth: Any = None,
        transports: Any = None,
        namespace: str = "/",
        socketio_path: str = "socket.io",
        wait_timeout: float = 5,
    ) -> None:
        """Connect to ``url`` (one namespace); raises ``ConnectionError`` on failure."""
        self._thread.run(
            self._client.connect(
                url,
                headers=headers,
                auth=auth,
                transports=transports,
                namespace=namespace,
                socketio_path=socketio_path,
                wait_timeout=wait_timeout,
            ),
            "connect",
        )

    sid = Forwarded[str | None]("_client")
    transport = Forwarded[str]("_client")
    connected = Forwarded[bool]("_client")

    def emit(self, event: str, data: Any = None) -> None:
        """Emit an event; waits through a reconnection as :meth:`AsyncSimpleClient.emit`."""
        self._thread.run(self._client.emit(event, data), "emit")

    def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        """Emit and block until the ack; waits through a reconnection as :meth:`AsyncSimpleClient.call`."""
        return self._thread.run(self._client.call(event, data, timeout=timeout), "call")

    def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event as ``[name, *args]``; ``TimeoutError`` after ``timeout``."""
        return self._thread.run(self._client.receive(timeout=timeout), "receive")

    def disconnect(self) -> None:
        """Disconnect from the server."""
        self._thread.run(self._client.disconnect(), "disconnect")

    def __enter__(self) -> SimpleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


async def _make_async_simple(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncSimpleClient:
    # Created on the loop thread so its asyncio primitives belong to that loop.
    return AsyncSimpleClient(*args, **kwargs)
