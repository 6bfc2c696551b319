"""One Engine.IO v4 session: handshake, transport choice, upgrade, heartbeat watchdog, drain.

The per-frame work (pings, Socket.IO decoding, dispatch) happens in the compiled
``Dispatcher``; the links it reads from are ``fastsio.transports`` (WebSocket, long-polling),
which this module opens, switches between and tears down. The core calls it through
``EngineHooks`` (``_ext/_core.pyi``), its transports through ``TransportHooks``
(``transports/base.py``), and it tells the client of a loss through ``on_lost``. It knows
nothing of namespaces, handlers or reconnection, nor of how a transport frames its packets.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import picows

from ._ext._core import (
    DEFAULT_MAX_MESSAGE_SIZE,
    EIO_CLOSE_PACKET,
    Dispatcher,
    looks_like_eio3_payload,
)
from ._flag import Flag
from .exceptions import (
    ConnectionError,
    PayloadTooLargeError,
    ProtocolError,
    ProtocolVersionError,
)
from .handshake import (
    HEARTBEAT_MARGIN,
    SID_IN_OPEN,
    OpenPacket,
    build_urls,
    version_refusal,
)
from .reasons import Reason
from .transports import (
    HandshakeClosed,
    PollingTransport,
    PollStatusError,
    Transport,
    WebSocketTransport,
    connect_websocket,
    poll_url,
    ssl_context_for,
)

if TYPE_CHECKING:
    import aiohttp


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


#: What a failed attempt to open a link raises (besides its transport library's own errors).
_LINK_ERRORS = (ProtocolError, PayloadTooLargeError, ConnectionError, OSError, asyncio.TimeoutError)


class EngineIO:
    """One Engine.IO session. Create, ``await connect()``, then it reports loss to ``on_lost``.

    Engine.IO v4; ``fastsio.eio3.EngineIO3`` overrides the few version-specific hooks.
    """

    version = 4
    #: The long-polling transport of this Engine.IO version.
    polling_class: type[PollingTransport] = PollingTransport

    def __init__(
        self,
        dispatcher: Dispatcher,
        on_lost: Callable[[str], None],
        *,
        logger: logging.Logger,
        request_timeout: float = 5,
        ssl_verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        http_session: aiohttp.ClientSession | None = None,
        websocket_extra_options: Mapping[str, Any] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_read_size: int = 256 * 1024,
    ) -> None:
        self.dispatcher = dispatcher
        self.on_lost = on_lost
        self.logger = logger
        self.request_timeout = request_timeout
        self.ssl_verify = ssl_verify
        self.ssl_context = ssl_context
        self.http_session = http_session
        self.websocket_extra_options = dict(websocket_extra_options or {})
        self.max_message_size = max_message_size
        self.max_read_size = max_read_size
        self.loop = asyncio.get_running_loop()

        # new -> connected -> closed, or connected -> draining -> closed when the link died
        # with frames still held: those are dispatched first, then the loss is reported.
        self.state = "new"
        self._lost: tuple[str, BaseException | None] | None = None
        self._in_release = False
        self.transport_name: str | None = None
        self.open: OpenPacket | None = None
        self._open_waiter: asyncio.Future[OpenPacket] | None = None
        self._transport: Transport | None = None  # the link the session reads from
        self._polling: PollingTransport | None = None  # kept after an upgrade, until teardown
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False
        self._http_url = ""
        self._ws_url = ""
        self._headers: dict[str, str] = {}
        # Clear while the client does not want to read (backpressure): the WebSocket's socket
        # is paused, and polling starts no GET.
        self._read_gate = Flag()
        self._read_gate.set()
        self._yielding = False
        self._upgrade_task: asyncio.Task[None] | None = None

    # -- public --------------------------------------------------------------------------

    @property
    def sid(self) -> str | None:
        return self.open.sid if self.open else None

    async def connect(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        transports: list[str],
        path: str,
    ) -> None:
        """Open the session. Raises ConnectionError (with the cause chained) on failure."""
        self._http_url, self._ws_url = self._build_urls(url, path)
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        errors: list[str] = []
        if transports[0] == "websocket":
            try:
                await self._connect_websocket()
                return
            except (*_LINK_ERRORS, picows.WSError) as exc:
                refused = await self._websocket_refusal(exc, transports)
                if refused is not None:
                    await self._teardown()
                    raise refused from exc
                errors.append(f"websocket: {exc!r}")
                self.logger.info(
                    "WebSocket connection failed (%r)%s",
                    exc,
                    ", falling back to polling" if "polling" in transports else "",
                )
                await self._teardown()
                if "polling" not in transports:
                    raise ConnectionError(f"Connection error: {'; '.join(errors)}") from exc
        # aiohttp's errors too when it is in use (the user's http_session): polling imports it
        # only then.
        aiohttp = sys.modules.get("aiohttp")
        client_errors = (aiohttp.ClientError,) if aiohttp is not None else ()
        try:
            await self._connect_polling(upgrade="websocket" in transports)
        except ProtocolVersionError:
            await self._teardown()
            raise
        except (*_LINK_ERRORS, *client_errors) as exc:
            await self._teardown()
            errors.append(f"polling: {exc!r}")
            raise ConnectionError(f"Connection error: {'; '.join(errors)}") from exc
        except BaseException:
            await self._teardown()
            raise

    async def close(self) -> None:
        """Client-initiated close. Does not call on_lost."""
        if self.state == "closed":
            return
        self._closing = True
        try:
            if self._transport is not None:
                # Polling: what is queued (the namespaces' DISCONNECT packets, last emits) goes
                # out, then a CLOSE packet. WebSocket: a graceful close flushes what picows
                # still buffers; an abort would drop it.
                await self._transport.close(self.request_timeout)
        finally:
            # Also when that wait is cancelled: the links are aborted, the core detached.
            await self._teardown()

    def transport(self) -> str | None:
        return self.transport_name

    def pause_reading(self) -> None:
        """Stop dispatching and reading (backpressure); the heartbeat watchdog is suspended.

        Frames already read are kept by the core (at most one read's worth) until resumed.
        While draining, the link is dead and nothing more can be read: the held frames are
        dispatched anyway.
        """
        if self.state == "draining":
            return
        self.dispatcher.hold()
        self._read_gate.clear()
        if self._transport is not None:
            self._transport.pause_reading()

    def _release(self) -> bool:
        """Dispatch the frames the core held; a protocol error in them ends the session."""
        self.dispatcher.new_slice()
        self._in_release = True
        try:
            return bool(self.dispatcher.release())
        except Exception as exc:
            self._on_stream_error(exc)
            return False
        finally:
            self._in_release = False

    def resume_reading(self) -> None:
        self._read_gate.set()
        if self.state == "draining":
            return  # the drain dispatches the held frames itself
        if not self._release():
            return  # handlers filled up again (paused anew), or the time slice ran out
        # Pings queued behind the pause were not the server's fault: restart the clock.
        self.dispatcher.touch_ping()
        if self._transport is not None:
            self._transport.resume_reading()

    def on_dispatch_yield(self) -> None:  # EngineHooks
        """The core used up its time slice: stop reading, finish the read in a later turn."""
        if self._yielding:
            return
        self._yielding = True
        if self._transport is not None:
            self._transport.pause_reading()
        self.loop.call_soon(self._resume_dispatch)

    def _resume_dispatch(self) -> None:
        self._yielding = False
        if self.state == "draining":
            self._drain()
            return
        if self.state != "connected" or not self._read_gate.is_set():
            return  # gone, or paused for backpressure: resume_reading() takes over
        if self._release() and self._transport is not None:
            self._transport.resume_reading()

    # -- opening a transport ---------------------------------------------------------------

    def _ssl_context(self, url: str) -> ssl.SSLContext | None:
        return ssl_context_for(url, self.ssl_context, self.ssl_verify)

    async def _ws_open(
        self, url: str, probing: bool, headers: Mapping[str, str] | None = None
    ) -> WebSocketTransport:
        return await connect_websocket(
            url,
            self.dispatcher,
            self,
            probing=probing,
            ssl_context=self._ssl_context(url),
            headers=self._headers if headers is None else headers,
            request_timeout=self.request_timeout,
            max_message_size=self.max_message_size,
            max_read_size=self.max_read_size,
            extra_options=self.websocket_extra_options,
        )

    async def _connect_websocket(self) -> None:
        self._open_waiter = self.loop.create_future()
        # The link can fail before anyone awaits the waiter (during the handshake, or after a
        # timeout): the error is reported by the connect path, so it is marked as retrieved.
        self._open_waiter.add_done_callback(_retrieve)
        try:
            url = self._ws_url + "&transport=websocket"
            self._transport = transport = await self._ws_open(url, probing=False)
            try:
                opened = await asyncio.wait_for(
                    asyncio.shield(self._open_waiter), self.request_timeout
                )
            except asyncio.TimeoutError:
                raise ConnectionError("no Engine.IO open packet received") from None
        finally:
            # Only this connect waits for the open packet: a later close is the session's.
            self._open_waiter = None
        transport.attach()
        self._became_open(opened, "websocket")

    def _version_refused(self, status: int, body: bytes) -> ProtocolVersionError | None:
        message = version_refusal(body)
        if message is None:
            return None
        return ProtocolVersionError(
            f"the server refuses Engine.IO {self.version}: {message} (HTTP {status})",
            4 if self.version == 3 else 3,
        )

    async def _websocket_refusal(
        self, exc: BaseException, transports: list[str]
    ) -> ProtocolVersionError | None:
        """Whether a failed WebSocket handshake was the server refusing our Engine.IO version.

        python-engineio answers the upgrade request with its HTTP 400. engine.io >= 4 accepts
        the upgrade, then writes its HTTP 400 into the WebSocket, which reads as a broken frame:
        with no polling to fall back to (where the refusal shows), one handshake GET over
        polling asks the server why.
        """
        if isinstance(exc, picows.WSHandshakeError) and exc.response is not None:
            return self._version_refused(exc.response.status, exc.raw_body or b"")
        # engine.io's 400 reads as a broken frame, or as the link closing during the handshake
        # when it arrives in the same read as the upgrade's answer.
        if not isinstance(exc, (ProtocolError, HandshakeClosed)) or "polling" in transports:
            return None
        import aiohttp

        # A session of its own: the failed link's teardown closes the engine's, maybe meanwhile.
        session = self.http_session or aiohttp.ClientSession()
        try:
            options: dict[str, Any] = {
                "headers": self._headers,
                "timeout": aiohttp.ClientTimeout(total=self.request_timeout),
                "ssl": self._ssl_context(self._http_url) or True,
            }
            async with session.get(poll_url(self._http_url, None), **options) as resp:
                body = await resp.content.read(4096)
                if resp.status != 200:
                    return self._version_refused(resp.status, body[:512])
            # The server accepted the version after all: end the session the probe opened
            # instead of leaving it to time out on the server.
            sid = SID_IN_OPEN.search(body)
            if sid is not None:
                async with session.post(
                    poll_url(self._http_url, sid.group(1).decode("ascii")),
                    data=self.polling_class.encode_record(EIO_CLOSE_PACKET, False),
                    **options,
                ):
                    pass
            return None
        except Exception:  # the probe only adds a reason; the WebSocket error stands
            return None
        finally:
            if session is not self.http_session:
                await session.close()

    def _build_urls(self, url: str, path: str) -> tuple[str, str]:
        return build_urls(url, path, self.version)

    async def _connect_polling(self, upgrade: bool) -> None:
        polling = self.polling_class(
            self.dispatcher,
            self,
            self._http_url,
            read_gate=self._read_gate,
            headers=self._headers,
            ssl_context=self._ssl_context(self._http_url),
            request_timeout=self.request_timeout,
            max_message_size=self.max_message_size,
            http_session=self.http_session,
        )
        self._transport = self._polling = polling
        try:
            body = await polling.get(self.request_timeout)
        except PollStatusError as exc:
            refused = self._version_refused(exc.status, exc.body)
            if refused is not None:
                raise refused from None
            raise
        if self.version == 4 and looks_like_eio3_payload(body):
            # Engine.IO 3 servers (Socket.IO 2.x) do not check EIO=4: they answer in v3 framing.
            raise ProtocolVersionError("the server speaks Engine.IO 3 (Socket.IO 2.x)", 3)
        raw, rest = polling.split_handshake(body)
        opened = OpenPacket(raw)
        polling.opened(
            opened.sid,
            opened.max_payload,
            (opened.ping_interval + opened.ping_timeout) / 1000 + 5,
            opened.counts_packets,
        )
        polling.attach()
        self._became_open(opened, "polling")
        polling.feed(rest)
        polling.start()
        if upgrade and "websocket" in opened.upgrades:
            self._upgrade_task = self.loop.create_task(self._upgrade())

    # -- the upgrade (polling -> websocket) --------------------------------------------------

    async def _upgrade(self) -> None:
        """Polling -> WebSocket: 2probe / 3probe, drain polling, then 5 (upgrade)."""
        assert self.open is not None and self._polling is not None
        polling = self._polling
        url = self._ws_url + "&transport=websocket&sid=" + urllib.parse.quote(self.open.sid)
        ws: WebSocketTransport | None = None
        # The cookies polling was given (a load balancer's sticky session) go with the
        # upgrade's request, so that it reaches the server that holds the session.
        headers = self._headers
        cookie = polling.cookie_header(url)
        if cookie is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "cookie"}
            headers["Cookie"] = cookie
        try:
            ws = await self._ws_open(url, probing=True, headers=headers)
            await ws.probe(self.request_timeout)
            # Stop polling; the server answers the in-flight GET with a noop once probed.
            await polling.stop_polling(self.request_timeout)
            if self.state != "connected":
                ws.abort()
                return
            # Flush what is queued for POST before switching, to keep the send order; nothing
            # awaits between the last check of the outbox and attaching the websocket.
            await polling.drain()
            if self.state != "connected" or self._closing:
                ws.abort()
                return
            if ws.is_disconnected:
                # The probe died after 3probe (a server's upgrade timeout): stay on polling.
                raise ConnectionError("the probe WebSocket closed before the upgrade")
            ws.upgrade()
            self._transport = ws
            if not self._read_gate.is_set() or self._yielding:
                # Reading was paused on polling (backpressure, fairness): so is the websocket.
                ws.pause_reading()
            ws.attach()
            self.transport_name = "websocket"
            self.logger.info("Upgraded to websocket")
        except asyncio.CancelledError:
            if ws is not None and self._transport is not ws:
                ws.abort()
            raise
        except Exception as exc:
            self.logger.info("WebSocket upgrade failed (%r), staying on polling", exc)
            if ws is not None and self._transport is not ws:
                ws.abort()
            if (
                polling.paused
                and self.state == "connected"
                and self._transport is polling
                and not self._closing
            ):
                # Polling was stopped for the upgrade: take it up again (the server keeps the
                # polling transport until it receives the upgrade packet).
                polling.start()

    # -- hooks the compiled core calls (EngineHooks in _ext/_core.pyi) --------------------

    def on_eio_open(self, raw: bytes) -> None:
        opened = OpenPacket(raw)
        if self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_result(opened)
        else:
            raise ProtocolError("unexpected open packet", raw)

    def on_eio_close(self) -> None:
        self._fail(Reason.TRANSPORT_CLOSE, None)

    def on_eio_noop(self) -> None:
        pass

    # -- hooks the transports call (TransportHooks in transports/base.py) -------------------

    def on_transport_error(self, transport: Transport, exc: BaseException) -> None:
        if transport is not self._transport:
            transport.abort()  # a probe, or a link given up
            return
        if self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_exception(exc)
            return
        self._on_stream_error(exc)

    def on_transport_closed(
        self, transport: Transport, reason: str, exc: BaseException | None
    ) -> None:
        if self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_exception(
                ConnectionError("connection closed before the open packet")
            )
            return
        if transport is self._transport:
            self._fail(reason, exc)

    def _on_stream_error(self, exc: BaseException) -> None:
        if isinstance(exc, (ProtocolError, PayloadTooLargeError)):
            self._fail(Reason.PARSE_ERROR, exc)
        else:
            self.logger.error("Unexpected error while reading from the server", exc_info=exc)
            self._fail(Reason.TRANSPORT_ERROR, exc)

    # -- lifecycle -----------------------------------------------------------------------

    def _became_open(self, opened: OpenPacket, transport_name: str) -> None:
        self.open = opened
        self.state = "connected"
        self.transport_name = transport_name
        self.dispatcher.max_send_size = opened.max_payload
        self.dispatcher.touch_ping()
        self._arm_watchdog(self._heartbeat_limit())

    def _heartbeat_limit(self) -> float:
        assert self.open is not None
        return (self.open.ping_interval + self.open.ping_timeout) / 1000 + HEARTBEAT_MARGIN

    def _arm_watchdog(self, delay: float) -> None:
        # One timer per heartbeat period, never one per packet: the core only records the time
        # of the last ping, and this check re-arms itself for the remaining time.
        self._watchdog = self.loop.call_later(delay, self._check_heartbeat)

    def _check_heartbeat(self) -> None:
        self._watchdog = None
        if self.state != "connected":
            return
        limit = self._heartbeat_limit()
        age = self.dispatcher.ping_age()
        if not self._read_gate.is_set():
            age = 0.0  # we are not reading: the missing pings are ours, not the server's
            self.dispatcher.touch_ping()
        if age >= limit:
            self.logger.info("No ping from the server for %.1f s: the link is dead", age)
            self._fail(Reason.PING_TIMEOUT, None)
        else:
            self._arm_watchdog(limit - age)

    def _fail(self, reason: str, exc: BaseException | None) -> None:
        """The session is lost: tear it down and tell the client once.

        Every frame read before the loss is dispatched first: if the core still holds some
        (dispatch budget, backpressure), the session drains them, in time slices, and reports
        the loss after the last one. A failure raised by the held frames themselves (a CLOSE
        packet, a protocol error) ends the stream there: what follows it is dropped.
        """
        if self.state == "closed" or self._closing:
            return
        if self._in_release:
            self.dispatcher.discard_held()
            if self.state == "draining":
                self._lost = (reason, exc)  # the drain reports it once it unwinds
                return
        elif self.state == "draining":
            return  # the first loss is the one reported
        elif self.dispatcher.held:
            self._start_drain(reason, exc)
            return
        self._lose(reason, exc)

    def _start_drain(self, reason: str, exc: BaseException | None) -> None:
        self.logger.debug(
            "Link lost (%s) with %d frames read but not dispatched: dispatching them first",
            reason,
            self.dispatcher.held,
        )
        self.state = "draining"
        self._lost = (reason, exc)
        # Emits from handlers during the drain go to the offline buffer, not to a dead link.
        self.dispatcher.detach_sender()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if not self._yielding:
            self._yielding = True
            self.loop.call_soon(self._resume_dispatch)

    def _drain(self) -> None:
        """One time slice of the drain; the last one reports the loss."""
        done = self._release()
        if self.state != "draining":
            return  # closed meanwhile: disconnect(), or a DISCONNECT packet among the frames
        if done or not self.dispatcher.held:
            # One more turn: a close() started by the last frames (the server's DISCONNECT
            # packet) runs first, so a kick is not also reported as a lost link.
            self.loop.call_soon(self._finish_drain)
        # else: the slice ran out and on_dispatch_yield scheduled the next one

    def _finish_drain(self) -> None:
        if self.state == "draining" and self._lost is not None:
            self._lose(*self._lost)

    def _lose(self, reason: str, exc: BaseException | None) -> None:
        if exc is not None:
            if reason == Reason.PARSE_ERROR:
                self.logger.error("Protocol error from the server: %s", exc)
            else:
                self.logger.info("Transport failed: %r", exc)
        self.state = "closed"
        # Events already read for a batch handler reach it before the disconnect event.
        self.dispatcher.flush_batch()
        self.loop.create_task(self._teardown())
        self.on_lost(reason)

    async def _teardown(self) -> None:
        self.state = "closed"
        self.dispatcher.detach_transport()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        current = asyncio.current_task()
        upgrade, self._upgrade_task = self._upgrade_task, None
        if upgrade is not None and upgrade is not current and not upgrade.done():
            upgrade.cancel()
        links: list[Transport] = []
        for link in (self._polling, self._transport):
            if link is not None and link not in links:
                link.abort()
                links.append(link)
        self._transport = self._polling = None
        if upgrade is not None and upgrade is not current:
            try:
                await upgrade
            except BaseException:
                pass
        for link in links:
            await link.wait_closed()
