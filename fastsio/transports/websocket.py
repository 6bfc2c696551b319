"""The WebSocket transport: one picows link, read by the core's ``EngineListener``.

Opening the link (TLS, extra headers, picows's options, the ``ReadCap`` in front of picows's
protocol), its half of the polling → websocket upgrade (``2probe``/``3probe``, then ``5``),
pausing its socket, and closing it. Each frame goes from picows straight to the ``Dispatcher``
(``_ext/listener.pxi``); this object only hears of the link's probe frames, errors and close
(it is the listener's ``ListenerHooks``) and passes the last two on to its ``TransportHooks``.
Sends do not pass through here: ``attach()`` hands the link to the core's ``FrameWriter``.

It knows nothing of the session's handshake, heartbeat or reconnection, and never imports
``fastsio.engine``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Mapping
from typing import Any

import picows

from .._ext._core import (
    EIO_PROBE,
    EIO_PROBE_ANSWER,
    EIO_UPGRADE_PACKET,
    Dispatcher,
    EngineListener,
    ReadCap,
)
from ..exceptions import ConnectionError, PayloadTooLargeError, ProtocolError
from ..reasons import Reason
from .base import TransportHooks

__all__ = ["PICOWS_LOGGER", "HandshakeClosed", "WebSocketTransport", "connect_websocket"]


class _PicowsLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows's logger for fastsio's connections, less its line about a frame refused for its
    size: the client reports that refusal itself, once, as a parse error that names the limit
    and how to raise it. (An adapter, not a Logger: picows would log through a child Logger
    of its own, past any filter on this one.)"""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if args and isinstance(args[0], tuple) and args[0][:1] == (_MESSAGE_TOO_BIG,):
            return
        super().log(level, msg, *args, **kwargs)


_MESSAGE_TOO_BIG = picows.WSCloseCode.MESSAGE_TOO_BIG
PICOWS_LOGGER = _PicowsLogger(logging.getLogger("picows.client"), {})


class HandshakeClosed(ConnectionError):
    """The link closed before the WebSocket handshake completed (engine.io's 400 for a refused
    Engine.IO version can arrive in the same read as the upgrade's answer)."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class WebSocketTransport:
    """One WebSocket link of a session (``Transport``; the listener's ``ListenerHooks``)."""

    __slots__ = ("dispatcher", "hooks", "ws", "listener", "_probe_waiter", "_handshake_error")

    name = "websocket"

    def __init__(self, dispatcher: Dispatcher, hooks: TransportHooks) -> None:
        self.dispatcher = dispatcher
        self.hooks = hooks
        self.ws: Any = None  # picows WSTransport, once connected
        self.listener: EngineListener | None = None
        self._probe_waiter: asyncio.Future[bool] | None = None
        # An error the listener reported before ws_connect() returned (frames that came in the
        # handshake's own read): connect_websocket() raises it, the link is dropped.
        self._handshake_error: BaseException | None = None

    @property
    def is_disconnected(self) -> bool:
        return self.ws is None or bool(self.ws.is_disconnected)

    @property
    def probing(self) -> bool:
        return self.listener is not None and bool(self.listener.probing)

    # -- Transport -------------------------------------------------------------------------

    def attach(self) -> None:
        self.dispatcher.attach_websocket(self.ws)

    def pause_reading(self) -> None:
        if self.ws is not None and not self.ws.is_disconnected:
            self.ws.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        if self.ws is not None and not self.ws.is_disconnected:
            self.ws.underlying_transport.resume_reading()

    async def close(self, timeout: float) -> None:
        # A graceful close flushes what picows still buffers; an abort would drop it.
        ws = self.ws
        if ws is None:
            return
        try:
            self.dispatcher.flush_writes()  # the frames sent so far go out before the CLOSE
            ws.send_close(picows.WSCloseCode.OK)
            ws.disconnect(True)  # the transport writes out what it buffers, then closes
        except Exception:
            return
        # As engine.io-client, close once the write buffer has drained: what was emitted
        # before disconnect() reaches the server, unless the link is dead (then it is given
        # up after the timeout; abort() drops it).
        try:
            await asyncio.wait_for(ws.wait_disconnected(), timeout)
        except Exception:
            pass

    def abort(self) -> None:
        if self.ws is not None and not self.ws.is_disconnected:  # close() may have seen it out
            try:
                self.ws.disconnect(False)
            except Exception:
                pass

    async def wait_closed(self) -> None:
        """Nothing to wait for: picows reports the close through the listener."""

    # -- the upgrade (polling -> websocket) ------------------------------------------------

    async def probe(self, timeout: float) -> None:
        """Send ``2probe`` and wait for ``3probe``; ConnectionError if the link closes first."""
        assert self._probe_waiter is not None, "not a probe link"
        self.ws.send(picows.WSMsgType.TEXT, EIO_PROBE)
        await asyncio.wait_for(self._probe_waiter, timeout)

    def upgrade(self) -> None:
        """Send ``5`` (upgrade): the link carries the session from now on, read by the core."""
        assert self.listener is not None
        self.ws.send(picows.WSMsgType.TEXT, EIO_UPGRADE_PACKET)
        self.listener.probing = False

    # -- ListenerHooks (the core's EngineListener calls these) -----------------------------

    def on_probe_frame(self, listener: EngineListener, data: bytes, binary: bool) -> None:
        waiter = self._probe_waiter
        if data == EIO_PROBE_ANSWER and waiter is not None and not waiter.done():
            waiter.set_result(True)

    def on_listener_error(self, listener: EngineListener, exc: BaseException) -> None:
        if self.ws is None:
            # Still inside ws_connect(): the session does not know this link yet, and the
            # listener reads nothing more of it. Drop it; connect_websocket() raises the error.
            if self._handshake_error is None:
                self._handshake_error = exc
            if listener.transport is not None:
                listener.transport.disconnect(False)
            return
        self.hooks.on_transport_error(self, exc)

    def on_ws_disconnected(self, listener: EngineListener) -> None:
        if listener.probing:
            waiter = self._probe_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("probe websocket closed"))
            return
        self.hooks.on_transport_closed(self, Reason.TRANSPORT_CLOSE, None)


async def connect_websocket(
    url: str,
    dispatcher: Dispatcher,
    hooks: TransportHooks,
    *,
    probing: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    request_timeout: float = 5,
    max_message_size: int = 0,
    max_read_size: int = 0,
    extra_options: Mapping[str, Any] | None = None,
) -> WebSocketTransport:
    """Open a WebSocket link to ``url`` (the Engine.IO query included), its frames read by the
    core. ``probing``: a probe link of the upgrade, whose frames go to ``probe()`` until
    ``upgrade()``. Raises HandshakeClosed if the link drops during the handshake, picows's
    errors and asyncio.TimeoutError otherwise."""
    transport = WebSocketTransport(dispatcher, hooks)
    if probing:
        transport._probe_waiter = asyncio.get_running_loop().create_future()
        transport._probe_waiter.add_done_callback(_retrieve)
    options: dict[str, Any] = {
        "ssl_context": ssl_context,
        "websocket_handshake_timeout": request_timeout,
        "extra_headers": headers or None,
        "enable_auto_pong": True,
        "disconnect_on_exception": True,
        # A small first read buffer (it grows as needed) keeps idle connections cheap, and
        # the plain asyncio transport connects faster than aiofastnet at no cost in
        # throughput (benchmarks/conns.py).
        "read_buffer_init_size": 2048,
        "use_aiofastnet": False,
        # A frame is at most one message: picows refuses a bigger one at its header, before
        # buffering its payload (the listener reports it, ReadCap stops reading); the
        # listener bounds a fragmented message's total.
        "max_frame_size": max_message_size or sys.maxsize,
        "logger_name": PICOWS_LOGGER,
    }
    options.update(extra_options or {})
    ws, listener = await asyncio.wait_for(
        picows.ws_connect(lambda: EngineListener(dispatcher, transport, probing), url, **options),
        request_timeout,
    )
    error = transport._handshake_error
    if error is not None:
        ws.disconnect(False)
        if isinstance(error, (ProtocolError, PayloadTooLargeError)):
            raise error
        raise ConnectionError(f"reading the WebSocket failed: {error!r}") from error
    if ws.is_disconnected or not isinstance(listener, EngineListener):
        # picows completes the handshake future when the link drops mid-handshake.
        raise HandshakeClosed("connection closed during the WebSocket handshake")
    transport.ws, transport.listener = ws, listener
    raw = ws.underlying_transport
    raw.set_protocol(ReadCap(raw.get_protocol(), max_read_size, ws, listener))
    if ws.is_close_frame_sent:  # picows refused a frame before ReadCap was there
        raw.pause_reading()
        listener.close_sent()
    return transport
