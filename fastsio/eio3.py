"""Engine.IO v3 and Socket.IO protocol v4: what Socket.IO 2.x servers speak.

The differences from v4/v5 that live outside the compiled core:

- Engine.IO v3 (``EngineIO3``): ``EIO=3`` in the URL; the CLIENT pings every ``pingInterval``
  and the link is dead when no pong came within ``pingTimeout``; polling payloads are
  ``<length>:<packet>`` records (``transports.polling.PollingTransport3``), requested as text
  with ``b64=1`` so binary packets arrive as ``b4<base64>`` records. Binary WebSocket frames carry a
  leading 0x04 both ways: a flag in the core (``Dispatcher.eio3``), not a Python branch per frame.
- Socket.IO v4: the server connects the default namespace by itself; other namespaces are joined
  with ``40/nsp?query,`` (there is no CONNECT payload, so ``auth`` travels as query parameters,
  ``auth_query``); refusals are ERROR packets (a string or an object).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from ._ext._core import EIO_PING_PACKET
from .engine import EngineIO
from .handshake import HEARTBEAT_MARGIN, build_urls
from .reasons import Reason
from .transports.polling import PollingTransport3

__all__ = ["EngineIO3", "Protocol", "auth_query", "namespace_with_query"]


class Protocol(NamedTuple):
    """The protocol a client speaks: ``Protocol(engineio=3, socketio=4)`` with a 2.x server."""

    engineio: int
    socketio: int

    def __str__(self) -> str:
        server = "Socket.IO 2.x" if self.engineio == 3 else "Socket.IO >= 3"
        return f"Engine.IO {self.engineio} / Socket.IO protocol {self.socketio} ({server})"


def protocol_for(eio_version: int) -> Protocol:
    return Protocol(3, 4) if eio_version == 3 else Protocol(4, 5)


def _query_value(value: Any) -> str:
    # As socket.io-client 2.x's parseqs writes a query object: strings as they are, everything
    # else in its JSON spelling (true, 1.5, null -> "null" is what String(null) gives too).
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode("utf-8")


def auth_query(auth: Any) -> list[tuple[str, str]]:
    """``auth`` as query parameters, for servers without a CONNECT payload (Socket.IO 2.x).

    A mapping gives one parameter per key; None gives none. Anything else cannot be spelled as
    a query and is refused with a ValueError at connect.
    """
    if auth is None:
        return []
    if not isinstance(auth, Mapping):
        raise ValueError(
            "auth must be a dict (sent as query parameters) with a Socket.IO 2.x server, "
            f"got {type(auth).__name__}"
        )
    return [(str(k), _query_value(v)) for k, v in auth.items()]


def namespace_with_query(nsp: str, query: list[tuple[str, str]]) -> str:
    """``/nsp?k=v`` as a Socket.IO v4 CONNECT names a namespace with its query."""
    if not query:
        return nsp
    return nsp + "?" + urllib.parse.urlencode(query)


class EngineIO3(EngineIO):
    """One Engine.IO v3 session (Socket.IO 2.x servers)."""

    version = 3
    polling_class = PollingTransport3

    #: Extra query parameters of every request (``auth`` for the default namespace of a 2.x
    #: server, which connects it from the handshake's own query); set before ``connect()``.
    extra_query: list[tuple[str, str]] = []  # noqa: RUF012 - replaced per instance, never mutated

    def _build_urls(self, url: str, path: str) -> tuple[str, str]:
        http, ws = build_urls(url, path, 3)
        extra = urllib.parse.urlencode(self.extra_query)
        if extra:
            http += "&" + extra
            ws += "&" + extra
        # Text payloads only (binary packets as base64 records), on polling: a b64 WebSocket
        # would get binary messages as base64 text frames.
        return http + "&b64=1", ws

    def on_eio_open(self, raw: bytes) -> None:
        super().on_eio_open(raw)
        # A 2.x server's own CONNECT of "/" can come in the same read as the open packet,
        # before connect() resumes: its socket id is the Engine.IO sid, known from here on.
        if self._open_waiter is not None and self._open_waiter.done():
            self.open = self._open_waiter.result()

    # -- heartbeat: the client pings, the server pongs --------------------------------------

    def _arm_watchdog(self, delay: float) -> None:
        # Called once the session is open (and by nothing else in the v4 engine): the first
        # ping goes out one pingInterval later.
        assert self.open is not None
        self._watchdog = self.loop.call_later(self.open.ping_interval / 1000, self._send_ping)

    def _send_ping(self) -> None:
        # One ping every pingInterval (the server closes the session when none came within
        # pingInterval + pingTimeout), each with its own pong deadline.
        self._watchdog = None
        if self.state != "connected" or self.open is None:
            return
        sent = time.monotonic()
        try:
            self.dispatcher.send_eio(EIO_PING_PACKET)
        except Exception as exc:  # the link went away under us: its loss is reported anyway
            self.logger.info("Could not send a ping: %r", exc)
            return
        self._watchdog = self.loop.call_later(self.open.ping_interval / 1000, self._send_ping)
        self.loop.call_later(
            self.open.ping_timeout / 1000 + HEARTBEAT_MARGIN, self._check_pong, sent
        )

    def _check_pong(self, sent: float) -> None:
        if self.state != "connected" or self.open is None:
            return
        if not self._read_gate.is_set():
            # We are not reading (backpressure): the pong may be waiting behind what we hold.
            self.dispatcher.touch_ping()
            return
        since_ping = time.monotonic() - sent
        if self.dispatcher.ping_age() >= since_ping:  # no pong (nor resume) since that ping
            self.logger.info("No pong from the server within %.1f s: the link is dead", since_ping)
            self._fail(Reason.PING_TIMEOUT, None)
