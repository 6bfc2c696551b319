"""The exception hierarchy, with python-socketio's names.

Exceptions that resemble a builtin also derive from it (``TimeoutError`` is an
``asyncio.TimeoutError``/builtin ``TimeoutError``, ``ProtocolError`` a ``ValueError``), so code
written against either catches them.

Owns every exception fastsio raises, the compiled core's included (it imports them from here).
It must not import anything of fastsio: every other module may import it.
"""

from __future__ import annotations

import asyncio

__all__ = [
    "SocketIOError",
    "ConnectionError",
    "ConnectionRefusedError",
    "TimeoutError",
    "BadNamespaceError",
    "DisconnectedError",
    "ProtocolError",
    "PayloadTooLargeError",
    "BufferFullError",
    "ProtocolVersionError",
]


class SocketIOError(Exception):
    """Base class of every fastsio error."""


class ConnectionError(SocketIOError):  # noqa: A001 - python-socketio's name
    """The connection could not be established, or was lost."""


class ConnectionRefusedError(ConnectionError):  # noqa: A001 - python-socketio's name
    """The server refused the connection (a CONNECT_ERROR packet).

    ``error_args`` holds the server's message and optional data, as in python-socketio.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 0:
            self.error_args: dict[str, object] = {"message": "Connection rejected by server"}
        elif len(args) == 1:
            self.error_args = {"message": str(args[0])}
        else:
            self.error_args = {"message": str(args[0])}
            self.error_args["data"] = args[1] if len(args) == 2 else list(args[1:])
        super().__init__(*args)


class TimeoutError(SocketIOError, asyncio.TimeoutError):  # noqa: A001 - python-socketio's name
    """An operation (``call``, an ack with a timeout, a connect) did not complete in time."""


class BadNamespaceError(SocketIOError):
    """The namespace is not known or not connected, and the operation cannot be queued."""


class DisconnectedError(SocketIOError):
    """The connection was lost or closed while the operation (an ack, a ``call``) was pending."""


class ProtocolError(SocketIOError, ValueError):
    """The peer sent something that is not valid Engine.IO/Socket.IO.

    ``payload`` holds the offending bytes (truncated to 200) and ``namespace`` the namespace
    when it is known.
    """

    def __init__(
        self, message: str, payload: bytes | str | None = None, namespace: str | None = None
    ) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "replace")
        self.payload = payload[:200] if payload is not None else None
        self.namespace = namespace
        detail = message
        if namespace is not None:
            detail += f" [namespace {namespace}]"
        if self.payload is not None:
            detail += f" (payload {self.payload!r}{'...' if len(payload or b'') > 200 else ''})"
        super().__init__(detail)


class PayloadTooLargeError(SocketIOError, ValueError):
    """A message is larger than the negotiated ``maxPayload`` (or the configured limit)."""


class BufferFullError(SocketIOError):
    """The offline buffer is full and its policy is to refuse new packets."""


class ProtocolVersionError(ConnectionError):
    """The server speaks another Engine.IO version than the one the client asked for.

    ``server_version`` is the version the server showed (3 or 4), or None when it only refused.
    With ``eio_version=None`` the client retries with that version on its own.
    """

    def __init__(self, message: str, server_version: int | None = None) -> None:
        super().__init__(message)
        self.server_version = server_version
