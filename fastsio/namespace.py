"""Class-based namespaces, as in python-socketio: methods named ``on_<event>``.

Owns the mapping of an event to an ``on_<event>`` method and the namespace's shortcuts to its
client (``emit``, ``call``, ``disconnect`` ...). It must not know how events reach it (the
handler table calls ``trigger_event``); the namespace *life cycle* is ``lifecycle.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .client import Client


class _BaseNamespace:
    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: Any = None

    def _set_client(self, client: Any) -> None:
        self.client = client

    def is_asyncio_based(self) -> bool:
        """Whether the namespace belongs to an asyncio client (python-socketio's name)."""
        raise NotImplementedError

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>`` if defined; its result (maybe awaitable) is returned."""
        handler_name = "on_" + (event or "")
        handler = getattr(self, handler_name, None)
        if handler is None:
            return None
        try:
            return handler(*args)
        except TypeError:
            # Legacy disconnect handlers take no reason argument.
            if event == "disconnect" and args:
                return handler(*args[:-1])
            raise


class AsyncClientNamespace(_BaseNamespace):
    """Base class for class-based namespaces of an ``AsyncClient``."""

    client: AsyncClient

    def is_asyncio_based(self) -> bool:
        """``True``: this namespace belongs to an :class:`~fastsio.AsyncClient`."""
        return True

    async def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> None:
        """The client's ``emit``, in this namespace unless ``namespace`` is given."""
        await self.client.emit(
            event, data=data, namespace=namespace or self.namespace, callback=callback, **kwargs
        )

    async def send(self, data: Any, namespace: str | None = None, callback: Any = None) -> None:
        """The client's ``send`` (a ``message`` event), in this namespace unless given another."""
        await self.client.send(data, namespace=namespace or self.namespace, callback=callback)

    async def call(
        self, event: str, data: Any = None, namespace: str | None = None, timeout: float | None = 60
    ) -> Any:
        """The client's ``call``: emit and wait for the ack, in this namespace unless given another."""
        return await self.client.call(
            event, data=data, namespace=namespace or self.namespace, timeout=timeout
        )

    async def disconnect(self) -> None:
        """Disconnect the client (every namespace), as python-socketio does."""
        await self.client.disconnect()


class ClientNamespace(_BaseNamespace):
    """Base class for class-based namespaces of a sync ``Client``."""

    client: Client

    def is_asyncio_based(self) -> bool:
        """``False``: this namespace belongs to a sync :class:`~fastsio.Client`."""
        return False

    def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> None:
        """The client's ``emit``, in this namespace unless ``namespace`` is given."""
        self.client.emit(
            event, data=data, namespace=namespace or self.namespace, callback=callback, **kwargs
        )

    def send(self, data: Any, namespace: str | None = None, callback: Any = None) -> None:
        """The client's ``send`` (a ``message`` event), in this namespace unless given another."""
        self.client.send(data, namespace=namespace or self.namespace, callback=callback)

    def call(
        self, event: str, data: Any = None, namespace: str | None = None, timeout: float | None = 60
    ) -> Any:
        """The client's ``call``: emit and wait for the ack, in this namespace unless given another."""
        return self.client.call(
            event, data=data, namespace=namespace or self.namespace, timeout=timeout
        )

    def disconnect(self) -> None:
        """Disconnect the client (every namespace), as python-socketio does."""
        self.client.disconnect()
