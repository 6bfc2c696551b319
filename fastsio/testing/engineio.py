"""The test servers' Engine.IO v4 layer: sessions and the server life cycle they share.

Owns one Engine.IO session (:class:`Session`: its output on WebSocket or polling, the order of its
input, binary attachments, the ping loop, the upgrade state, the close) and what every test
server does with sessions (:class:`EngineServer`: start, stop, the session registry, the open
packet, background tasks). Must not know about namespaces, handlers or rooms (the servers'
``Session`` subclasses and modules), nor how bytes reach the socket (``transports.py``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from .codec import (
    EIO_CLOSE,
    EIO_MESSAGE,
    EIO_NOOP,
    EIO_OPEN,
    EIO_PING,
    EIO_PONG,
    EIO_UPGRADE,
    WS_CLOSE_NORMAL,
    Frame,
    Packet,
    check_serializer,
    encode_poll_payload,
    parse_json_packet,
    parse_msgpack_packet,
    reconstruct,
    ws_frames,
)

logger = logging.getLogger("fastsio.testing")

#: Target size of one pre-built blob of stream frames. Large enough that the Python work per
#: blob is negligible next to the client's per-frame work, small enough to stay in cache.
BLOB_TARGET = 256 * 1024
#: Write-buffer watermarks of a streaming WebSocket (bytes queued in the transport, beyond
#: what the kernel socket buffer already holds).
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
#: Most packets in one long-polling GET response.
MAX_POLL_PACKETS = 1000
#: A stream over polling: packets queued ahead of the client's GETs.
POLL_STREAM_BACKLOG = 5000
#: seconds between the writes of a paced stream (``rate``): 10 ms, as a market-data feed batches
PACE_TICK = 0.01


class Session:
    """One Engine.IO session, on polling and/or WebSocket.

    A server's subclass handles the Socket.IO packets (:meth:`on_packet`) and its own part of
    the close (:meth:`on_close`, :meth:`send_disconnects`).
    """

    def __init__(
        self, server: EngineServer, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> None:
        self.server = server
        self.sid = secrets.token_urlsafe(15)
        self.transport = transport  # "polling" or "websocket"
        self.headers = headers
        self.query = query
        self.closed = False
        self.pending: Packet | None = None  # JSON binary packet waiting for attachments
        self.inbound = asyncio.Lock()
        # websocket
        self.ws: Any = None  # aiohttp WebSocketResponse of the active WebSocket, if aiohttp's
        self.raw: asyncio.Transport | None = None  # its TCP transport, written to directly
        self.paused: asyncio.Future[None] | None = None  # set while writing is paused
        # polling
        self.outbox: collections.deque[Frame] = collections.deque()
        self.poll_waiter: asyncio.Future[None] | None = None
        self.poll_transport: Any = None  # TCP transport of the pending GET
        self.upgrading = False
        self.probe_raw: asyncio.Transport | None = None
        # heartbeat and faults (faults.py sets these)
        self.pong = asyncio.Event()
        self.stop_pings = False
        self.ignore_pongs = False
        self.frozen = False
        self.held_in: list[Frame] = []
        self.ping_task: asyncio.Task[None] | None = None

    # -- the server's part -------------------------------------------------------------------

    def on_packet(self, pkt: Packet) -> Awaitable[None] | None:
        """A complete Socket.IO packet from the client; an awaitable delays the next one."""
        raise NotImplementedError

    def on_close(self, reason: str) -> None:
        """The session closes: end its Socket.IO state (``reason`` in socket.io's words)."""

    def send_disconnects(self) -> None:
        """Send a Socket.IO DISCONNECT for each connected namespace (the server stops)."""

    # -- output ------------------------------------------------------------------------------

    def send(self, frames: Sequence[Frame]) -> None:
        """Send Engine.IO packets in order (queued for polling, or while frozen/upgrading)."""
        if self.closed:
            return
        if self.transport == "websocket" and not self.frozen:
            if self.outbox:
                frames = [*self.outbox, *frames]
                self.outbox.clear()
            self._write_ws(frames)
        else:
            self.outbox.extend(frames)
            self.wake_poll()

    def _write_ws(self, frames: Sequence[Frame]) -> None:
        raw = self.raw
        if raw is None or raw.is_closing():
            return
        raw.write(ws_frames(frames))

    def flush(self) -> None:
        """Send what the outbox holds on the current transport (after a thaw or upgrade)."""
        if self.closed or self.frozen:
            return
        if self.transport == "websocket":
            frames = list(self.outbox)
            self.outbox.clear()
            self._write_ws(frames)
        else:
            self.wake_poll()

    def wake_poll(self, force: bool = False) -> None:
        """Answer the pending polling GET (when there is something to send, or ``force``)."""
        waiter = self.poll_waiter
        if (
            waiter is not None
            and not waiter.done()
            and (force or (self.outbox and not self.frozen))
        ):
            waiter.set_result(None)

    def take_poll_payload(self) -> str:
        """The body of a polling GET response: queued packets, or a noop."""
        if self.frozen or not self.outbox:
            return EIO_NOOP
        n = min(len(self.outbox), MAX_POLL_PACKETS)
        frames = [self.outbox.popleft() for _ in range(n)]
        return encode_poll_payload(frames)

    def pause_writing(self) -> None:
        """The WebSocket's transport is over its high-water mark (told by picows)."""
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The transport is writable again (or gone): wake a waiting :meth:`drain`."""
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    async def drain(self) -> None:
        """Wait while the WebSocket's transport holds more than :data:`HIGH_WATER` bytes."""
        raw = self.raw
        while raw is not None and not raw.is_closing():
            if self.paused is not None:
                await self.paused
            elif raw.get_write_buffer_size() > HIGH_WATER:
                await asyncio.sleep(0.001)  # no pause signal on this transport: poll
            else:
                return

    async def stream(
        self,
        frames: list[Frame],
        count: int,
        active: Callable[[], bool],
        sent: Callable[[int], None],
        rate: float | None = None,
    ) -> int:
        """Send ``frames`` ``count`` times as fast as the link takes them (or ``rate`` times a
        second, in ticks of ``PACE_TICK`` seconds on a fixed timeline); return how often.

        On WebSocket a blob of ready-made frames is written straight to the TCP transport,
        with write-buffer flow control; on polling the packets are queued a few thousand ahead
        of the client's requests. Stops early when the session closes or ``active()`` is false;
        ``sent(n)`` counts each batch.
        """
        wire = ws_frames(frames)
        per_blob = max(1, BLOB_TARGET // len(wire))
        blob = wire * per_blob
        done = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while done < count and not self.closed and active():
            n = min(per_blob, count - done)
            if rate is not None:
                due = int((loop.time() - start) * rate) - done
                if due <= 0:
                    await asyncio.sleep(PACE_TICK)
                    continue
                n = min(n, due)
            if self.transport == "websocket":
                if self.frozen:
                    await asyncio.sleep(0.005)
                    continue
                self.flush()
                raw = self.raw
                if raw is None or raw.is_closing():
                    break
                raw.write(blob if n == per_blob else wire * n)
                await self.drain()
            else:
                if len(self.outbox) > POLL_STREAM_BACKLOG:
                    await asyncio.sleep(0.001)
                    continue
                for _ in range(n):
                    self.outbox.extend(frames)
                self.wake_poll()
            done += n
            sent(n)
            # Let reads (pongs, client packets) and other sessions run between blobs.
            await asyncio.sleep(0)
        return done

    # -- input -------------------------------------------------------------------------------

    def receive(self, frame: Frame) -> Awaitable[None] | None:
        """One Engine.IO packet from the client (any transport), in arrival order.

        Returns an awaitable when the packet's handling must finish before the next packet of
        the session is read (a ``connect`` handler that awaits); a bad packet closes the session
        (``'parse error'``).
        """
        if self.closed:
            return None
        if self.frozen:
            self.held_in.append(frame)
            return None
        try:
            pkt = self._on_text(frame) if isinstance(frame, str) else self._on_binary(frame)
            if pkt is None:
                return None
            if pkt.attachments and not pkt.complete:
                self.pending = pkt
                return None
            result = self.on_packet(pkt)
        except Exception as exc:
            self.reject(exc)
            return None
        return None if result is None else self._finish(result)

    async def receive_all(self, frames: Sequence[Frame]) -> None:
        """Receive ``frames`` in order, after what the session is still handling."""
        async with self.inbound:
            for frame in frames:
                pending = self.receive(frame)
                if pending is not None:
                    await pending

    async def _finish(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception as exc:
            self.reject(exc)

    def reject(self, exc: Exception) -> None:
        """A bad packet from the client: log it and abort the session (``'parse error'``)."""
        logger.warning("test server: bad packet from session %s (%r): closing it", self.sid, exc)
        self.close("parse error", mode="abort")

    def _on_text(self, data: str) -> Packet | None:
        if not data:
            raise ValueError("empty Engine.IO packet")
        kind = data[0]
        if kind == EIO_MESSAGE:
            if self.server._msgpack:
                raise ValueError("text Socket.IO packet on a msgpack server")
            return parse_json_packet(data[1:])
        if kind == EIO_PONG:
            self.server.stats.pongs_received += 1
            if not self.ignore_pongs and not self.server._ignoring_pongs:
                self.pong.set()
        elif kind == EIO_CLOSE:
            self.close("transport close", mode="quiet")
        elif kind == EIO_PING:  # an Engine.IO v3 client pings; answer it
            self.send([EIO_PONG + data[1:]])
        elif kind not in (EIO_UPGRADE, EIO_NOOP):
            raise ValueError(f"unknown Engine.IO packet {data[:32]!r}")
        return None

    def _on_binary(self, data: bytes) -> Packet | None:
        if self.server._msgpack:
            return parse_msgpack_packet(data)
        pending = self.pending
        if pending is None:
            raise ValueError("binary message without a pending binary packet")
        pending.buffers.append(data)
        if not pending.complete:
            return None
        self.pending = None
        pending.data = reconstruct(pending.data, pending.buffers)
        return pending

    async def process_held(self) -> None:
        """Receive the packets held while the session was frozen."""
        async with self.inbound:
            while self.held_in and not self.frozen and not self.closed:
                pending = self.receive(self.held_in.pop(0))
                if pending is not None:
                    await pending

    # -- heartbeat ---------------------------------------------------------------------------

    def _pings_off(self) -> bool:
        return self.frozen or self.stop_pings or self.server._pings_stopped

    async def ping_loop(self) -> None:
        """Ping every ``ping_interval``; close the session when a pong is late, if enforced."""
        server = self.server
        while not self.closed:
            await asyncio.sleep(server.ping_interval)
            if self.closed:
                return
            if self._pings_off():
                continue
            self.pong.clear()
            self.send([EIO_PING])
            server.stats.pings_sent += 1
            if not server._enforce_pongs:
                continue
            try:
                await asyncio.wait_for(self.pong.wait(), server.ping_timeout)
            except asyncio.TimeoutError:
                if self.closed or self._pings_off():
                    continue
                logger.info("test server: no pong from session %s: closing it", self.sid)
                self.close("ping timeout", mode="abort")
                return

    # -- close -------------------------------------------------------------------------------

    def close(self, reason: str, mode: str) -> None:
        """End the session. ``mode``: ``"abort"`` (TCP abort), ``"close"`` (close frame or a
        CLOSE packet on polling) or ``"quiet"`` (the client closed it)."""
        if self.closed:
            return
        self.closed = True
        server = self.server
        if self.ping_task is not None and self.ping_task is not asyncio.current_task():
            self.ping_task.cancel()
        self.on_close(reason)
        self.resume_writing()
        if self.probe_raw is not None:
            self.probe_raw.abort()
        if self.transport == "websocket":
            raw = self.raw
            if raw is not None and not raw.is_closing():
                if mode == "abort":
                    raw.abort()
                else:
                    if not self.frozen and mode == "close":
                        self._write_ws(list(self.outbox))
                        raw.write(WS_CLOSE_NORMAL)
                    raw.close()
            server._forget_session(self)
            return
        # polling
        if mode == "abort":
            if self.poll_transport is not None:
                self.poll_transport.abort()
            server._forget_session(self)
            self.wake_poll(force=True)
            return
        if mode == "close":
            self.frozen = False
            self.outbox.append(EIO_CLOSE)
            self.wake_poll(force=True)
            # The next GET collects the CLOSE packet; forget the session soon after anyway.
            server._call_later(
                server.ping_interval + server.ping_timeout, server._forget_session, self
            )
            return
        server._forget_session(self)
        self.wake_poll(force=True)


class EngineServer:
    """What every test server does with Engine.IO sessions: life cycle, registry, open packet.

    A subclass provides the transport (``_listen``/``_unlisten``, see ``transports.py``) and
    its :class:`Session` subclass (``_make_session``).
    """

    #: Close a session whose pong is later than ``ping_timeout`` (a real server's behaviour).
    _enforce_pongs = True

    def __init__(
        self,
        *,
        serializer: str,
        ping_interval: float,
        ping_timeout: float,
        max_payload: int,
        path: str,
    ) -> None:
        self._msgpack = check_serializer(serializer)
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be > 0")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.path = "/" + path.strip("/")
        self.stats: Any = None  # the subclass's counters, with pings_sent and pongs_received
        # Fault hooks (faults.py) that apply to every session, later ones included.
        self._pings_stopped = False
        self._ignoring_pongs = False
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._listening = False
        self._tls = False
        self._host = "127.0.0.1"
        self._port = 0

    # -- life cycle --------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Bind and start serving; ``port=0`` picks a free port (see :attr:`port`, :attr:`url`).

        With ``ssl_context`` (a server context) it serves HTTPS and WSS, and :attr:`url` is
        ``https://``. A stopped server can be started again, on the same port to simulate a
        restart.
        """
        if self._listening:
            raise RuntimeError("server already started")
        self._host, self._port = await self._listen(host, port, ssl_context)
        self._listening = True
        self._tls = ssl_context is not None

    async def stop(self, disconnect: bool = True) -> None:
        """Stop serving and end every session.

        With ``disconnect`` (default) every client first gets a Socket.IO DISCONNECT for each
        namespace, so fastsio clients do not reconnect; with ``disconnect=False`` the links are
        just closed, as when a server process dies, and clients reconnect.
        """
        if not self._listening:
            return
        self._listening = False
        for session in list(self._sessions.values()):
            if disconnect and not session.closed:
                session.send_disconnects()
            session.close("server shutting down", mode="close")
        await asyncio.sleep(0)  # disconnect handlers just started get their first step
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._unlisten()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._sessions.clear()

    async def __aenter__(self) -> Any:
        if not self._listening:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        """Host the server is bound to."""
        return self._host

    @property
    def port(self) -> int:
        """TCP port the server listens on (valid after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` (``https://`` with TLS): the URL for a client's ``connect``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._tls else 'http'}://{host}:{self._port}"

    async def _listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> tuple[str, int]:
        raise NotImplementedError

    async def _unlisten(self) -> None:
        raise NotImplementedError

    # -- sessions ----------------------------------------------------------------------------

    def _make_session(
        self, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> Session:
        raise NotImplementedError

    def _upgrades(self, session: Session) -> list[str]:
        """The ``upgrades`` offered in a session's open packet."""
        return []

    def _new_session(
        self, transport: str, headers: dict[str, str], query: dict[str, str]
    ) -> Session:
        """Open a session: register it, start its ping loop. Send :meth:`open_packet` next."""
        session = self._make_session(transport, headers, query)
        self._sessions[session.sid] = session
        session.ping_task = self._spawn(session.ping_loop())
        return session

    def _open_packet(self, session: Session) -> str:
        """The Engine.IO open packet of ``session``."""
        handshake = {
            "sid": session.sid,
            "upgrades": self._upgrades(session),
            "pingInterval": int(self.ping_interval * 1000),
            "pingTimeout": int(self.ping_timeout * 1000),
            "maxPayload": self.max_payload,
        }
        return EIO_OPEN + orjson.dumps(handshake).decode()

    def _forget_session(self, session: Session) -> None:
        """Drop ``session`` from the registry (it is closed, or its last GET is answered)."""
        if self._sessions.get(session.sid) is session:
            del self._sessions[session.sid]

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``awaitable`` in a task that :meth:`stop` cancels."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` after ``delay`` seconds unless the server stops first."""
        timer = asyncio.get_running_loop().call_later(delay, callback, *args)
        self._timers.add(timer)
