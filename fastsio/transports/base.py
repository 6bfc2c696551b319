"""What a transport is to the Engine.IO session that owns it, and how it reports back.

A transport carries one session's packets over one kind of link (``websocket.py``: picows;
``polling.py``: aiohttp long-polling). The session (``fastsio.engine.EngineIO``) opens it,
``attach()``es it to the compiled core (which then sends through it), pauses and resumes its
reading, and closes or aborts it (``abort()`` at once, then ``await wait_closed()``); the transport reports what happens to its link through the
``TransportHooks`` it was given at construction. Packets read are fed to the core's
``Dispatcher`` directly.

A transport knows nothing of the handshake, transport choice, upgrade, heartbeat or reconnection
(the session's), nor of namespaces and handlers; it never imports ``fastsio.engine``.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable


@runtime_checkable
class TransportHooks(Protocol):
    """The session, as its transports call it (given once, at construction)."""

    #: "connected" while the session reads and sends packets; a transport feeds nothing to the
    #: core in any other state (a CLOSE packet or a loss ends the session mid-payload).
    state: str

    def on_transport_error(self, transport: Transport, exc: BaseException) -> None:
        """Reading the link failed (a protocol error, a refused size, a bug): it stopped."""

    def on_transport_closed(
        self, transport: Transport, reason: str, exc: BaseException | None
    ) -> None:
        """The link is gone: ``reason`` is a ``fastsio.reasons.Reason``, ``exc`` the cause."""


class Transport(Protocol):
    """One link of one Engine.IO session."""

    #: "websocket" or "polling", as python-socketio's ``transport()`` names it.
    name: str

    def attach(self) -> None:
        """The core sends through this link from now on."""

    def pause_reading(self) -> None:
        """Read nothing more until ``resume_reading()`` (backpressure, dispatch time slice)."""

    def resume_reading(self) -> None:
        """Read again."""

    async def close(self, timeout: float) -> None:
        """Close gracefully: what was sent goes out, then an Engine.IO or WebSocket CLOSE;
        waits at most about ``timeout`` for it to reach the peer."""

    def abort(self) -> None:
        """Drop the link now, without a CLOSE, and cancel the transport's tasks."""

    async def wait_closed(self) -> None:
        """Wait for what ``abort()`` stopped; release what the transport owns."""


def ssl_context_for(
    url: str, context: ssl.SSLContext | None, verify: bool
) -> ssl.SSLContext | None:
    """The TLS context for ``url``: None for plain ws/http, else ``context`` or a default one
    (not verifying the certificate nor the host name when ``verify`` is false)."""
    if not url.startswith(("wss:", "https:")):
        return None
    if context is not None:
        return context
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
