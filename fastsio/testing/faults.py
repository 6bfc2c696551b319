"""Fault hooks of ``TestServer``: what a test does to the link to see how a client copes.

Owns the public fault methods (drop, close, stop pings, ignore pongs, freeze, slow uploads) and
the state they set on the server and its sessions; ``engineio.py`` and ``transports.py`` honour
that state. Must not know about namespaces or handlers: a hook acts on Engine.IO sessions, found
by ``_session`` (which ``TestServer`` extends to Socket.IO sids).
"""

from __future__ import annotations

from .engineio import Session
from .transports import HttpServer


class FaultHooks(HttpServer):
    """The fault hooks, on top of the aiohttp Engine.IO server."""

    def drop(self, sid: str | None = None) -> None:
        """Abort the TCP link(s) of one session (``sid``: Socket.IO or Engine.IO) or of every
        session: no close frame, no Engine.IO close packet, as when a network path dies. A
        WebSocket client sees ``'transport close'``; a polling client a failed request."""
        for session in self._pick(sid):
            session.close("transport close", mode="abort")

    def close_transport(self, sid: str | None = None) -> None:
        """Close the link(s) cleanly at the Engine.IO level, as socket.io's
        ``socket.conn.close()``: a WebSocket close frame, or a CLOSE packet on polling. The
        client sees ``'transport close'`` and reconnects."""
        for session in self._pick(sid):
            session.close("forced close", mode="close")

    def stop_pings(self, stop: bool = True, sid: str | None = None) -> None:
        """Stop (or resume) sending Engine.IO pings, to one session or to all sessions
        including later ones. The link stays up otherwise, so a client detects a
        ``'ping timeout'`` after ``ping_interval + ping_timeout``."""
        if sid is None:
            self._pings_stopped = stop
        else:
            self._session(sid).stop_pings = stop

    def ignore_pongs(self, ignore: bool = True, sid: str | None = None) -> None:
        """Ignore (or not) the client's pongs, to one session or all including later ones: the
        server then closes the session ``ping_timeout`` after its next ping, as a real server
        does with an unresponsive client (the client sees ``'transport close'``)."""
        if sid is None:
            self._ignoring_pongs = ignore
        else:
            self._session(sid).ignore_pongs = ignore

    def delay_posts(self, seconds: float) -> None:
        """Wait ``seconds`` before reading each polling POST from now on (a slow uplink or a
        busy server); ``0`` turns it off. A client that gives up on a POST meanwhile loses its
        packets, as with any server."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._post_delay = seconds

    def freeze(self, sid: str | None = None, frozen: bool = True) -> None:
        """Freeze (or thaw) one session or every current session: the TCP link stays open but
        nothing moves either way. Outgoing packets and pings are held, incoming packets are
        held unprocessed; a thaw delivers both, in order. A client detects a ``'ping
        timeout'`` if the freeze lasts longer than ``ping_interval + ping_timeout``."""
        for session in self._pick(sid):
            if session.frozen == frozen:
                continue
            session.frozen = frozen
            if not frozen:
                self._spawn(session.process_held())
                session.flush()

    def _session(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None:
            raise KeyError(f"no session with sid {sid!r}")
        return session

    def _pick(self, sid: str | None) -> list[Session]:
        if sid is None:
            return [s for s in self._sessions.values() if not s.closed]
        return [self._session(sid)]
