"""How bytes reach the test servers' Engine.IO sessions: two listening stacks.

- :class:`HttpServer`: an aiohttp application, HTTP long-polling and WebSocket on one port, with
  the polling to WebSocket upgrade (``TestServer``);
- :class:`WebSocketServer`: picows, WebSocket only, light enough never to be the bottleneck of a
  benchmark (``FirehoseServer``).

Both hand every Engine.IO packet to :meth:`Session.receive` in arrival order and write server
packets through the session (straight to the TCP transport on WebSocket). This module owns the
handshake requests, the polling GET/POST cycle and the upgrade exchange; it must not know about
Socket.IO packets, namespaces or handlers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import urllib.parse
from collections.abc import Sequence
from typing import Any

import orjson
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from .codec import (
    EIO_NOOP,
    EIO_PING,
    EIO_PONG,
    EIO_UPGRADE,
    Frame,
    decode_poll_payload,
    encode_ws_frame,
)
from .engineio import HIGH_WATER, LOW_WATER, EngineServer, Session

logger = logging.getLogger("fastsio.testing")

_HANDSHAKE_ERRORS = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    5: "Unsupported protocol version",
}
_PROBE = "probe"


def _error_body(code: int) -> bytes:
    return orjson.dumps({"code": code, "message": _HANDSHAKE_ERRORS[code]})


class HttpServer(EngineServer):
    """Engine.IO over aiohttp: polling and WebSocket on one port, with the upgrade."""

    def __init__(
        self,
        *,
        transports: Sequence[str],
        allow_upgrades: bool,
        **engine: Any,
    ) -> None:
        unknown = set(transports) - {"polling", "websocket"}
        if unknown or not transports:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {transports!r}")
        super().__init__(**engine)
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        #: Seconds to wait before reading each polling POST (a fault hook, ``delay_posts``).
        self._post_delay = 0.0
        self._runner: Any = None

    def _upgrades(self, session: Session) -> list[str]:
        """``["websocket"]`` for a polling session when the upgrade is allowed."""
        if (
            session.transport == "polling"
            and self.allow_upgrades
            and "websocket" in self.transports
        ):
            return ["websocket"]
        return []

    async def _listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> tuple[str, int]:
        from aiohttp import web

        app = web.Application(client_max_size=self.max_payload + 1024)
        app.router.add_route("*", self.path + "/", self._handle)
        app.router.add_route("*", self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            site = web.SockSite(runner, sock, ssl_context=ssl_context)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = sock.getsockname()[:2]
        return bound_host, bound_port

    async def _unlisten(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _new_http_session(self, transport: str, request: Any) -> Session:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]}, {value}" if k in headers else value
        return self._new_session(transport, headers, dict(request.query))

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        query = request.query
        if query.get("EIO") != "4":
            return _json_error(5)
        transport = query.get("transport")
        if transport not in ("polling", "websocket") or transport not in self.transports:
            return _json_error(0)
        sid = query.get("sid")
        if transport == "websocket":
            if request.method != "GET" or request.headers.get("Upgrade", "").lower() != "websocket":
                return _json_error(3)
            return await self._handle_websocket(request, sid)
        if sid is None:
            if request.method != "GET":
                return _json_error(2)
            new = self._new_http_session("polling", request)
            return _poll_response(self._open_packet(new))
        found = self._sessions.get(sid)
        if found is None or (found.closed and not found.outbox):
            return _json_error(1)
        session = found
        if request.method == "GET":
            return await self._handle_poll(request, session)
        if request.method == "POST":
            if session.closed:
                return _json_error(1)
            if request.content_length is not None and request.content_length > self.max_payload:
                session.close("transport error", mode="abort")
                return web.Response(status=413, text="payload too large")
            try:
                if self._post_delay:
                    await asyncio.sleep(self._post_delay)
                body = await request.text()
            except (OSError, asyncio.CancelledError) as exc:
                # The client gave up on the request (or the link died) before sending all of
                # it: its packets are lost, as with any server, but the session goes on.
                logger.info("TestServer: polling POST of %s not received: %r", session.sid, exc)
                return web.Response(status=400, text="request body not received")
            try:
                frames = decode_poll_payload(body)
            except Exception as exc:
                logger.warning("TestServer: bad polling payload (%r): closing the session", exc)
                session.close("parse error", mode="quiet")
                return _json_error(3)
            await session.receive_all(frames)
            return web.Response(text="ok", content_type="text/plain")
        return _json_error(2)

    async def _handle_poll(self, request: Any, session: Session) -> Any:
        if session.transport != "polling" or session.poll_waiter is not None:
            return _json_error(3)
        waited = False
        if not session.closed and (
            session.frozen or (not session.outbox and not session.upgrading)
        ):
            waited = True
            waiter = asyncio.get_running_loop().create_future()
            session.poll_waiter = waiter
            session.poll_transport = request.transport
            try:
                await waiter
            finally:
                session.poll_waiter = None
                session.poll_transport = None
        if session.closed:
            if session.outbox and self._sessions.get(session.sid) is session:
                # Closed by the server: this GET delivers the CLOSE packet.
                self._forget_session(session)
                return _poll_response(session.take_poll_payload())
            # Closed while this GET was pending (the client's CLOSE, a drop): release it.
            return _poll_response(EIO_NOOP) if waited else _json_error(1)
        return _poll_response(session.take_poll_payload())

    async def _handle_websocket(self, request: Any, sid: str | None) -> Any:
        from aiohttp import WSMsgType as AioMsgType
        from aiohttp import web

        probing: Session | None = None
        if sid is not None:
            probing = self._sessions.get(sid)
            if probing is None or probing.closed:
                return _json_error(1)
            if probing.transport != "polling" or probing.upgrading or not self.allow_upgrades:
                return _json_error(3)
        ws = web.WebSocketResponse(
            autoping=True, compress=False, max_msg_size=self.max_payload, heartbeat=None
        )
        await ws.prepare(request)
        raw = request.transport
        if probing is None:
            session = self._new_http_session("websocket", request)
            session.ws, session.raw = ws, raw
            session.send([self._open_packet(session)])
        else:
            session = probing
            session.probe_raw = raw
        upgraded = probing is None
        try:
            async for msg in ws:
                if session.closed:
                    break
                if msg.type == AioMsgType.TEXT:
                    frame: Frame = msg.data
                elif msg.type == AioMsgType.BINARY:
                    frame = msg.data
                else:
                    break
                if not upgraded:
                    # Upgrade handshake: 2probe -> 3probe (and a noop to release the pending
                    # GET), then 5 switches the session to this WebSocket.
                    if frame == EIO_PING + _PROBE:
                        raw.write(encode_ws_frame((EIO_PONG + _PROBE).encode()))
                        session.upgrading = True
                        session.wake_poll(force=True)
                    elif frame == EIO_UPGRADE and session.upgrading:
                        session.upgrading = False
                        session.probe_raw = None
                        session.transport = "websocket"
                        session.ws, session.raw = ws, raw
                        upgraded = True
                        self.stats.upgrades += 1
                        session.wake_poll(force=True)
                        session.flush()
                    else:
                        logger.warning("TestServer: unexpected %r during an upgrade", frame)
                        break
                    continue
                await session.receive_all((frame,))
        finally:
            if upgraded:
                if session.raw is raw:
                    session.close("transport close", mode="quiet")
            elif not session.closed:
                session.upgrading = False  # failed probe: the session goes on with polling
                session.probe_raw = None
                session.wake_poll()
        return ws


def _json_error(code: int, status: int = 400) -> Any:
    from aiohttp import web

    return web.json_response({"code": code, "message": _HANDSHAKE_ERRORS[code]}, status=status)


def _poll_response(body: str) -> Any:
    from aiohttp import web

    return web.Response(text=body, content_type="text/plain", charset="utf-8")


class WebSocketServer(EngineServer):
    """Engine.IO over picows: WebSocket only, no upgrade, write-buffer flow control."""

    def __init__(self, **engine: Any) -> None:
        super().__init__(**engine)
        self._server: asyncio.AbstractServer | None = None
        self._links: set[_Link] = set()

    async def _listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> tuple[str, int]:
        self._server = await ws_create_server(
            self._route,
            host,
            port,
            max_frame_size=self.max_payload,
            logger_name=logger,
            ssl=ssl_context,
        )
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        return bound_host, bound_port

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for link in list(self._links):
            try:
                await asyncio.wait_for(link.transport.wait_disconnected(), 2)
            except Exception:
                link.transport.disconnect(graceful=False)
        await server.wait_closed()

    def _on_link_open(self, session: Session) -> None:
        """A WebSocket connection opened ``session`` (its open packet is sent next)."""

    def _on_link_closed(self, session: Session) -> None:
        """The WebSocket connection of ``session`` is gone."""

    def _route(
        self, request: WSUpgradeRequest
    ) -> WSListener | WSUpgradeResponseWithListener | None:
        """Accept ``<path>/?EIO=4&transport=websocket``; refuse everything else."""
        target = urllib.parse.urlsplit(request.path.decode("latin-1"))
        if target.path.rstrip("/") != self.path:
            return None  # 404
        query = urllib.parse.parse_qs(target.query)
        if query.get("EIO") != ["4"]:
            return _picows_error(5)
        if query.get("transport") != ["websocket"]:
            return _picows_error(0)
        if "sid" in query:
            return _picows_error(1)
        return _Link(self, {k: v[-1] for k, v in query.items()})


def _picows_error(code: int) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(
        400, _error_body(code), {"Content-Type": "application/json"}
    )
    return WSUpgradeResponseWithListener(response, None)


class _Link(WSListener):
    """The picows listener of one WebSocket connection: feeds its session."""

    transport: WSTransport
    session: Session

    def __init__(self, server: WebSocketServer, query: dict[str, str]) -> None:
        super().__init__()
        self.server = server
        self.query = query

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        raw = transport.underlying_transport
        raw.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        server = self.server
        server._links.add(self)
        self.session = session = server._new_session("websocket", {}, self.query)
        session.raw = raw
        server._on_link_open(session)
        session.send([server._open_packet(session)])

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if not frame.fin or msg_type == WSMsgType.CONTINUATION:
            # Socket.IO clients never fragment messages; treat it as a protocol error.
            transport.send_close(WSCloseCode.UNSUPPORTED_DATA, b"fragmented message")
            transport.disconnect()
            return
        session = self.session
        if msg_type == WSMsgType.TEXT:
            try:
                packet: Frame = frame.get_payload_as_bytes().decode()
            except UnicodeDecodeError as exc:
                session.reject(exc)
                return
        elif msg_type == WSMsgType.BINARY:
            packet = frame.get_payload_as_bytes()
        else:
            if msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        pending = session.receive(packet)
        if pending is not None:
            self.server._spawn(pending)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        server = self.server
        if self not in server._links:
            return
        server._links.discard(self)
        self.session.close("transport close", mode="quiet")
        server._on_link_closed(self.session)

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()
