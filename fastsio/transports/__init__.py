"""The links an Engine.IO session reads from and writes to, behind one small interface
(``Transport``, reporting through ``TransportHooks``: ``base.py``).

- ``websocket.py``: picows; frames go straight from picows's buffer to the compiled core.
- ``polling.py``: aiohttp long-polling (Engine.IO v4 and v3 payloads).

To add a transport: implement ``Transport`` in a module here, report through the hooks it is
given, and teach ``fastsio.engine.EngineIO`` when to open it. Nothing here imports the engine.
"""

from .base import Transport, TransportHooks, ssl_context_for
from .polling import (
    MAX_PACKETS_PER_POST,
    PollingTransport,
    PollingTransport3,
    PollStatusError,
    poll_url,
)
from .websocket import PICOWS_LOGGER, HandshakeClosed, WebSocketTransport, connect_websocket

__all__ = [
    "MAX_PACKETS_PER_POST",
    "PICOWS_LOGGER",
    "HandshakeClosed",
    "PollStatusError",
    "PollingTransport",
    "PollingTransport3",
    "Transport",
    "TransportHooks",
    "WebSocketTransport",
    "connect_websocket",
    "poll_url",
    "ssl_context_for",
]
