"""Disconnect reasons, with socket.io-client's strings."""

from __future__ import annotations


class Reason:
    """Passed to ``disconnect`` handlers (and in ``client.reason``)."""

    #: The server disconnected the namespace (``socket.disconnect()`` on the server).
    SERVER_DISCONNECT = "io server disconnect"
    #: The application called ``disconnect()``.
    CLIENT_DISCONNECT = "io client disconnect"
    #: No ping from the server within pingInterval + pingTimeout.
    PING_TIMEOUT = "ping timeout"
    #: The connection was closed (by the server or the network).
    TRANSPORT_CLOSE = "transport close"
    #: The connection failed (an HTTP error, a socket error).
    TRANSPORT_ERROR = "transport error"
    #: The server sent something that is not valid Engine.IO/Socket.IO.
    PARSE_ERROR = "parse error"
