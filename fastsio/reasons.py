"""Disconnect reasons, with socket.io-client's strings.

The one place those strings are written; it must not import anything of fastsio.
"""

from __future__ import annotations


class Reason:
    """Passed to ``disconnect`` handlers (and in ``client.reason``)."""

    SERVER_DISCONNECT = "io server disconnect"
    """The server disconnected the namespace (``socket.disconnect()`` on the server)."""
    CLIENT_DISCONNECT = "io client disconnect"
    """The application called ``disconnect()``."""
    PING_TIMEOUT = "ping timeout"
    """No ping from the server within pingInterval + pingTimeout."""
    TRANSPORT_CLOSE = "transport close"
    """The connection was closed (by the server or the network)."""
    TRANSPORT_ERROR = "transport error"
    """The connection failed (an HTTP error, a socket error)."""
    PARSE_ERROR = "parse error"
    """The server sent something that is not valid Engine.IO/Socket.IO."""
