"""One Engine.IO v4 session: handshake, transport choice, polling, upgrade, heartbeat watchdog.

The per-frame work (pings, Socket.IO decoding, dispatch) happens in the compiled
``Dispatcher``; this module only sets up and tears down the links it reads from. The core
calls it through ``EngineHooks`` and ``ListenerHooks`` (``_ext/_core.pyi``), the ``on_*``
methods below, and the client through ``on_lost``. It knows nothing of namespaces, handlers
or reconnection.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import picows

from ._ext._core import (
    DEFAULT_MAX_MESSAGE_SIZE,
    EIO_CLOSE_PACKET,
    EIO_PROBE,
    EIO_PROBE_ANSWER,
    EIO_TYPES,
    EIO_UPGRADE_PACKET,
    Dispatcher,
    EngineListener,
    ReadCap,
    decode_eio_payload,
    looks_like_eio3_payload,
    poll_body_limit,
)
from ._flag import Flag
from .exceptions import (
    ConnectionError,
    PayloadTooLargeError,
    ProtocolError,
    ProtocolVersionError,
)
from .reasons import Reason

if TYPE_CHECKING:
    import aiohttp

# Heartbeat values a sane server sends; anything outside is refused as a protocol error
# rather than trusted (a ping interval of 0 would spin, one of a year would never detect loss).
_MAX_PING_MS = 24 * 3600 * 1000
_MIN_MAX_PAYLOAD = 1024

#: Packets per polling POST: python-engineio servers silently drop a POST of more than 16.
MAX_PACKETS_PER_POST = 16

#: Slack added to pingInterval + pingTimeout before a silent link is declared dead.
HEARTBEAT_MARGIN = 0.5

#: How servers word their HTTP 400 for an Engine.IO version they do not speak: engine.io >= 4
#: (Socket.IO 3/4 without allowEIO3: ``{"code":5,"message":"Unsupported protocol version"}``)
#: and python-engineio (3.x refuses EIO=4, 4.x refuses EIO=3: "The client is using an
#: unsupported version of the Socket.IO or Engine.IO protocols"). Lower case.
_VERSION_REFUSALS = (b"unsupported protocol version", b"unsupported version of the socket.io")


def version_refusal(body: bytes) -> str | None:
    """The server's message when an HTTP error ``body`` refuses the Engine.IO version."""
    head = body[:512]
    if not any(marker in head.lower() for marker in _VERSION_REFUSALS):
        return None
    try:
        parsed = orjson.loads(head)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    if isinstance(parsed, str):
        return parsed
    return head.decode("utf-8", "replace").strip()


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


class OpenPacket:
    """The parsed Engine.IO open packet."""

    __slots__ = ("sid", "upgrades", "ping_interval", "ping_timeout", "max_payload")

    def __init__(self, raw: bytes) -> None:
        try:
            info = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProtocolError("open packet is not valid JSON", raw) from None
        if not isinstance(info, dict):
            raise ProtocolError("open packet is not a JSON object", raw)
        sid = info.get("sid")
        if not isinstance(sid, str) or not sid or len(sid) > 1024:
            raise ProtocolError("open packet without a valid sid", raw)
        upgrades = info.get("upgrades", [])
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise ProtocolError("open packet with invalid upgrades", raw)
        values = []
        for key in ("pingInterval", "pingTimeout"):
            v = info.get(key)
            if type(v) is not int or not 0 < v <= _MAX_PING_MS:
                raise ProtocolError(f"open packet with an invalid {key}: {v!r}", raw)
            values.append(v)
        max_payload = info.get("maxPayload", 0)
        if type(max_payload) is not int or (max_payload != 0 and max_payload < _MIN_MAX_PAYLOAD):
            raise ProtocolError(f"open packet with an invalid maxPayload: {max_payload!r}", raw)
        self.sid: str = sid
        self.upgrades: list[str] = upgrades
        self.ping_interval: int = values[0]
        self.ping_timeout: int = values[1]
        self.max_payload: int = max_payload


def build_urls(url: str, path: str, eio: int = 4) -> tuple[str, str]:
    """Return (http_base, ws_base) URLs, each ending in a query with ``EIO=<eio>``."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "ws"):
        http_scheme, ws_scheme = "http", "ws"
    elif scheme in ("https", "wss"):
        http_scheme, ws_scheme = "https", "wss"
    else:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    if not parts.hostname:
        raise ValueError(f"URL without a host: {url!r}")
    path = "/" + path.strip("/") + "/"
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("EIO", "transport", "sid", "t")
    ]
    query.append(("EIO", str(eio)))
    q = urllib.parse.urlencode(query)
    http = urllib.parse.urlunsplit((http_scheme, parts.netloc, path, q, ""))
    ws = urllib.parse.urlunsplit((ws_scheme, parts.netloc, path, q, ""))
    return http, ws


def _check_partial_record(record: bytearray, limit: int) -> None:
    """Refuse a poll record still arriving once it is certain to exceed ``limit``, sized as the
    decoder sizes a whole one (text: its bytes with the type character; binary: decoded)."""
    if record[:1] == b"b":
        size = (len(record) - 1) // 4 * 3 - (
            2 if record.endswith(b"==") else 1 if record.endswith(b"=") else 0
        )
        what = "incoming binary message"
    else:
        size, what = len(record), "incoming message"
    if size > limit:
        raise PayloadTooLargeError(
            f"{what} of {size} bytes exceeds max_message_size ({limit} bytes); raise the limit "
            "with AsyncClient(max_message_size=...), 0 for none"
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


#: The session id in an open packet (URL-safe characters only, as every server makes them).
_SID_IN_OPEN = re.compile(rb'"sid":"([A-Za-z0-9_\-]{1,100})"')


class _HandshakeClosed(ConnectionError):
    """The link closed before the WebSocket handshake completed (engine.io's 400 for a refused
    Engine.IO version can arrive in the same read as the upgrade's answer)."""


class EngineIO:
    """One Engine.IO session. Create, ``await connect()``, then it reports loss to ``on_lost``.

    Engine.IO v4; ``fastsio.eio3.EngineIO3`` overrides the few version-specific hooks.
    """

    version = 4

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
        self._ws: Any = None  # picows WSTransport of the active websocket
        self._listener: EngineListener | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False
        # polling state
        self._session: aiohttp.ClientSession | None = None
        self._own_session = False
        self._http_url = ""
        self._ws_url = ""
        self._headers: dict[str, str] = {}
        self._poll_task: asyncio.Task[None] | None = None
        self._post_task: asyncio.Task[None] | None = None
        # Polling records, encoded once: a text packet as is, a binary one as b"b" + base64.
        self._outbox: list[bytes] = []
        self._outbox_ready = Flag()
        self._post_stopping = False
        self._poll_paused = False
        self._get_in_flight = False  # the poll loop is inside a GET (not parked on the gate)
        self._flush_lock = asyncio.Lock()  # one POST at a time (servers refuse overlaps)
        self._read_gate = Flag()
        self._read_gate.set()
        self._yielding = False
        self._upgrade_task: asyncio.Task[None] | None = None
        self._probe_waiter: asyncio.Future[bool] | None = None

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
            except (
                ProtocolError,
                PayloadTooLargeError,
                ConnectionError,
                OSError,
                asyncio.TimeoutError,
                picows.WSError,
            ) as exc:
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
        import aiohttp

        try:
            await self._connect_polling(upgrade="websocket" in transports)
        except ProtocolVersionError:
            await self._teardown()
            raise
        except (
            ProtocolError,
            PayloadTooLargeError,
            ConnectionError,
            OSError,
            asyncio.TimeoutError,
            aiohttp.ClientError,
        ) as exc:
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
        if (
            self.transport_name == "polling"
            and self._session is not None
            and self.state == "connected"
        ):
            # What is queued (the namespaces' DISCONNECT packets, last emits) goes out first.
            try:
                await self._stop_post_loop()
                self._outbox.append(EIO_CLOSE_PACKET)
                await self._flush_outbox()
            except Exception:  # best effort: the server times the session out anyway
                pass
        elif self._ws is not None:
            # A graceful close flushes what picows still buffers; an abort would drop it.
            ws, self._ws = self._ws, None
            try:
                self.dispatcher.flush_writes()  # the frames sent so far go out before the CLOSE
                ws.send_close(picows.WSCloseCode.OK)
                ws.disconnect(True)  # the transport writes out what it buffers, then closes
            except Exception:
                pass
            else:
                # As engine.io-client, close once the write buffer has drained: what was
                # emitted before disconnect() reaches the server, unless the link is dead
                # (then it is given up after request_timeout; teardown aborts it).
                try:
                    await asyncio.wait_for(ws.wait_disconnected(), self.request_timeout)
                except Exception:
                    pass
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
        if self._ws is not None:
            self._ws.underlying_transport.pause_reading()

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
        if self._ws is not None and not self._ws.is_disconnected:
            self._ws.underlying_transport.resume_reading()

    def on_dispatch_yield(self) -> None:  # EngineHooks
        """The core used up its time slice: stop reading, finish the read in a later turn."""
        if self._yielding:
            return
        self._yielding = True
        if self._ws is not None and not self._ws.is_disconnected:
            self._ws.underlying_transport.pause_reading()
        self.loop.call_soon(self._resume_dispatch)

    def _resume_dispatch(self) -> None:
        self._yielding = False
        if self.state == "draining":
            self._drain()
            return
        if self.state != "connected" or not self._read_gate.is_set():
            return  # gone, or paused for backpressure: resume_reading() takes over
        if self._release() and self._ws is not None and not self._ws.is_disconnected:
            self._ws.underlying_transport.resume_reading()

    # -- websocket -----------------------------------------------------------------------

    def _ssl_context(self, scheme_url: str) -> ssl.SSLContext | None:
        if not scheme_url.startswith(("wss:", "https:")):
            return None
        if self.ssl_context is not None:
            return self.ssl_context
        ctx = ssl.create_default_context()
        if not self.ssl_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _ws_open(self, url: str, probing: bool) -> tuple[Any, EngineListener]:
        options: dict[str, Any] = {
            "ssl_context": self._ssl_context(url),
            "websocket_handshake_timeout": self.request_timeout,
            "extra_headers": self._headers or None,
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
            "max_frame_size": self.max_message_size or sys.maxsize,
            "logger_name": PICOWS_LOGGER,
        }
        options.update(self.websocket_extra_options)
        transport, listener = await asyncio.wait_for(
            picows.ws_connect(
                lambda: EngineListener(self.dispatcher, self, probing), url, **options
            ),
            self.request_timeout,
        )
        if transport.is_disconnected or not isinstance(listener, EngineListener):
            # picows completes the handshake future when the link drops mid-handshake.
            raise _HandshakeClosed("connection closed during the WebSocket handshake")
        raw = transport.underlying_transport
        raw.set_protocol(ReadCap(raw.get_protocol(), self.max_read_size, transport, listener))
        if transport.is_close_frame_sent:  # picows refused a frame before ReadCap was there
            raw.pause_reading()
            listener.close_sent()
        return transport, listener

    async def _connect_websocket(self) -> None:
        self._open_waiter = self.loop.create_future()
        # The link can fail before anyone awaits the waiter (during the handshake, or after a
        # timeout): the error is reported by the connect path, so it is marked as retrieved.
        self._open_waiter.add_done_callback(_retrieve)
        url = self._ws_url + "&transport=websocket"
        transport, listener = await self._ws_open(url, probing=False)
        self._ws, self._listener = transport, listener
        try:
            opened = await asyncio.wait_for(asyncio.shield(self._open_waiter), self.request_timeout)
        except asyncio.TimeoutError:
            raise ConnectionError("no Engine.IO open packet received") from None
        self.dispatcher.attach_websocket(transport)
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
        if not isinstance(exc, (ProtocolError, _HandshakeClosed)) or "polling" in transports:
            return None
        import aiohttp

        # A session of its own: the failed link's teardown closes the engine's, maybe meanwhile.
        session = self.http_session or aiohttp.ClientSession()
        try:
            async with session.get(
                self._poll_url(),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                ssl=self._ssl_context(self._http_url) or True,
            ) as resp:
                body = await resp.content.read(4096)
                if resp.status != 200:
                    return self._version_refused(resp.status, body[:512])
            # The server accepted the version after all: end the session the probe opened
            # instead of leaving it to time out on the server.
            sid = _SID_IN_OPEN.search(body)
            if sid is not None:
                async with session.post(
                    self._http_url + "&transport=polling&sid=" + sid.group(1).decode("ascii"),
                    data=self._post_body([EIO_CLOSE_PACKET]),
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                    ssl=self._ssl_context(self._http_url) or True,
                ):
                    pass
            return None
        except Exception:  # the probe only adds a reason; the WebSocket error stands
            return None
        finally:
            if session is not self.http_session:
                await session.close()

    # -- polling -------------------------------------------------------------------------

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.http_session is not None:
                self._session = self.http_session
            else:
                import aiohttp

                self._session = aiohttp.ClientSession()
                self._own_session = True
        return self._session

    def _poll_url(self) -> str:
        url = self._http_url + "&transport=polling&t=" + format(time.time_ns() // 1000, "x")
        if self.open is not None:
            url += "&sid=" + urllib.parse.quote(self.open.sid)
        return url

    async def _poll_request(self, timeout: float) -> Any:
        """A long-poll GET (an aiohttp response context manager)."""
        import aiohttp

        session = await self._ensure_session()
        return session.get(
            self._poll_url(),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            ssl=self._ssl_context(self._http_url) or True,
        )

    async def _get(self, timeout: float) -> bytes:
        """One poll (the handshake's): the body, read no further than poll_body_limit()."""
        limit = poll_body_limit(self.max_message_size)
        async with await self._poll_request(timeout) as resp:
            if resp.status != 200:
                if self.open is None:  # the handshake: a refusal of our version says so
                    refused = self._version_refused(resp.status, await resp.content.read(512))
                    if refused is not None:
                        raise refused
                raise ConnectionError(f"polling GET returned HTTP {resp.status}")
            if not limit:
                return await resp.read()
            length = resp.content_length
            if length is not None and length > limit:
                raise self._body_too_large(f"announced {length} bytes")
            # Chunks joined once at the end: a growing bytearray would copy as it grows.
            chunks: list[bytes] = []
            size = 0
            while chunk := await resp.content.read(limit + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    # The rest is never read: the connection is released, not reused.
                    raise self._body_too_large(f"more than {limit} bytes")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _body_too_large(self, what: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"poll response of {what} exceeds {poll_body_limit(self.max_message_size)} bytes, "
            f"the most a poll may carry under max_message_size ({self.max_message_size} "
            f"bytes); raise the limit with AsyncClient(max_message_size=...), 0 for none"
        )

    def _post_body(self, records: list[bytes]) -> bytes:
        return b"\x1e".join(records)

    def _decode_poll(self, body: bytes) -> list[tuple[int, str | bytes]]:
        return decode_eio_payload(body, max_message_size=self.max_message_size)

    async def _poll_once(self, timeout: float) -> None:
        """One long-poll, its packets fed to the core as they arrive.

        A server sends everything it buffered in one response (Node has no limit), so the body
        is not bounded: each packet is, by max_message_size, and memory holds one packet and
        one chunk. Packets before a bad one are dispatched before the error is raised.
        """
        mms = self.max_message_size
        self._get_in_flight = True
        try:
            async with await self._poll_request(timeout) as resp:
                if resp.status != 200:
                    raise ConnectionError(f"polling GET returned HTTP {resp.status}")
                pending = bytearray()
                records = 0
                async for chunk in resp.content.iter_any():
                    start = 0
                    while (end := chunk.find(b"\x1e", start)) >= 0:
                        if pending:
                            pending += chunk[start:end]
                            record = bytes(pending)
                            pending.clear()
                        else:
                            record = chunk[start:end]
                        self._feed_record(record)
                        records += 1
                        start = end + 1
                    pending += chunk[start:]
                    if 0 < mms < len(pending):
                        _check_partial_record(pending, mms)
                if pending or records:
                    self._feed_record(bytes(pending))
                else:
                    raise ProtocolError("empty polling payload", b"")
        finally:
            self._get_in_flight = False
            self.dispatcher.flush_batch()

    async def _post(self, records: list[bytes]) -> None:
        import aiohttp

        session = await self._ensure_session()
        body = self._post_body(records)
        headers = dict(self._headers)
        headers["Content-Type"] = "text/plain;charset=UTF-8"
        async with session.post(
            self._poll_url(),
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            ssl=self._ssl_context(self._http_url) or True,
        ) as resp:
            if resp.status != 200:
                raise ConnectionError(
                    f"polling POST of {len(records)} packets ({len(body)} bytes) returned "
                    f"HTTP {resp.status}"
                )
            await resp.read()

    def _build_urls(self, url: str, path: str) -> tuple[str, str]:
        return build_urls(url, path, self.version)

    async def _connect_polling(self, upgrade: bool) -> None:
        body = await self._get(self.request_timeout)
        if self.version == 4 and looks_like_eio3_payload(body):
            # Engine.IO 3 servers (Socket.IO 2.x) do not check EIO=4: they answer in v3 framing.
            raise ProtocolVersionError("the server speaks Engine.IO 3 (Socket.IO 2.x)", 3)
        payload = self._decode_poll(body)
        first_type, first = payload[0]
        if first_type != EIO_TYPES["open"] or not isinstance(first, str):
            raise ProtocolError("first polling packet is not an open packet", str(first))
        opened = OpenPacket(first.encode("utf-8"))
        self.dispatcher.poll_sender = self._enqueue
        self._became_open(opened, "polling")
        self._feed_payload(payload[1:])
        self._poll_task = self.loop.create_task(self._poll_loop())
        self._post_task = self.loop.create_task(self._post_loop())
        if upgrade and "websocket" in opened.upgrades:
            self._upgrade_task = self.loop.create_task(self._upgrade())

    def _feed_payload(self, packets: list[tuple[int, str | bytes]], flush: bool = True) -> None:
        dispatcher = self.dispatcher
        for t, data in packets:
            if self.state != "connected":
                return
            dispatcher.feed_eio(t, data)
        if flush:
            dispatcher.flush_batch()

    def _feed_record(self, record: bytes) -> None:
        """One v4 polling record to the core, checked there (no str round trip per packet)."""
        if self.state == "connected":
            self.dispatcher.feed_poll_record(record, self.max_message_size)

    def _enqueue(self, data: bytes, binary: bool) -> None:
        # The core checked the record's size (base64 included) against maxPayload already.
        self._outbox.append(b"b" + base64.b64encode(data) if binary else data)
        self._outbox_ready.set()

    async def _poll_loop(self) -> None:
        assert self.open is not None
        timeout = (self.open.ping_interval + self.open.ping_timeout) / 1000 + 5
        try:
            while self.state == "connected" and not self._poll_paused:
                # A set() wakes the waiter even if a clear() follows at once (resumed, then
                # paused again by the frames released): look again before reading more.
                while not self._read_gate.is_set():
                    await self._read_gate.wait()
                if self.state != "connected" or self._poll_paused:
                    break
                await self._poll_once(timeout)
        except asyncio.CancelledError:
            raise
        except (ProtocolError, PayloadTooLargeError) as exc:
            self._fail(Reason.PARSE_ERROR, exc)
        except Exception as exc:
            self._fail(Reason.TRANSPORT_ERROR, exc)

    def _next_post(self) -> int:
        """How many records of the outbox go in the next POST.

        The server refuses a whole body larger than its maxPayload (Node answers HTTP 413 and
        the session dies), so records are taken while the body, separators included, still
        fits, as engine.io-client does; the first always goes (the core refused any record
        that cannot fit alone). python-engineio drops a POST of more than 16 packets.
        """
        limit = self.open.max_payload if self.open is not None else 0
        outbox = self._outbox
        n = min(len(outbox), MAX_PACKETS_PER_POST)
        if not limit:
            return n
        size = len(outbox[0])
        for i in range(1, n):
            size += 1 + len(outbox[i])
            if size > limit:
                return i
        return n

    async def _flush_outbox(self) -> None:
        async with self._flush_lock:
            while self._outbox:
                n = self._next_post()
                records = self._outbox[:n]
                del self._outbox[:n]
                await self._post(records)

    async def _post_loop(self) -> None:
        try:
            while self.state == "connected":
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                await self._flush_outbox()
                if self._post_stopping:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(Reason.TRANSPORT_ERROR, exc)

    async def _stop_post_loop(self) -> None:
        """Let the POST loop finish the request it is making, then stop it.

        Never cancel it: a cancelled POST has already taken its packets out of the outbox.
        """
        self._post_stopping = True
        self._outbox_ready.set()
        task, self._post_task = self._post_task, None
        if task is not None and task is not asyncio.current_task():
            try:
                await task
            except Exception:
                pass  # reported through _fail by the loop itself

    async def _upgrade(self) -> None:
        """Polling -> WebSocket: 2probe / 3probe, drain polling, then 5 (upgrade)."""
        assert self.open is not None
        url = self._ws_url + "&transport=websocket&sid=" + urllib.parse.quote(self.open.sid)
        transport = None
        try:
            self._probe_waiter = self.loop.create_future()
            self._probe_waiter.add_done_callback(_retrieve)
            transport, listener = await self._ws_open(url, probing=True)
            transport.send(picows.WSMsgType.TEXT, EIO_PROBE)
            await asyncio.wait_for(self._probe_waiter, self.request_timeout)
            # Stop polling; the server answers the in-flight GET with a noop once probed.
            self._poll_paused = True
            if self._poll_task is not None:
                if self._get_in_flight:
                    await asyncio.wait_for(asyncio.shield(self._poll_task), self.request_timeout)
                else:
                    # Parked on the read gate (backpressure): no request to wait for.
                    self._poll_task.cancel()
                    await asyncio.wait([self._poll_task])
            if self.state != "connected":
                transport.disconnect(False)
                return
            # Flush what is queued for POST before switching, to keep the send order; nothing
            # awaits between the last check of the outbox and attaching the websocket.
            await self._stop_post_loop()
            await self._flush_outbox()
            if self.state != "connected" or self._closing:
                transport.disconnect(False)
                return
            if transport.is_disconnected:
                # The probe died after 3probe (a server's upgrade timeout): stay on polling.
                raise ConnectionError("the probe WebSocket closed before the upgrade")
            transport.send(picows.WSMsgType.TEXT, EIO_UPGRADE_PACKET)
            listener.probing = False
            self._ws, self._listener = transport, listener
            if not self._read_gate.is_set() or self._yielding:
                # Reading was paused on polling (backpressure, fairness): so is the websocket.
                transport.underlying_transport.pause_reading()
            self.dispatcher.attach_websocket(transport)
            self.transport_name = "websocket"
            self.logger.info("Upgraded to websocket")
        except asyncio.CancelledError:
            if transport is not None and self._ws is not transport:
                transport.disconnect(False)
            raise
        except Exception as exc:
            self.logger.info("WebSocket upgrade failed (%r), staying on polling", exc)
            if transport is not None and self._ws is not transport:
                transport.disconnect(False)
            if (
                self._poll_paused
                and self.state == "connected"
                and self._ws is None
                and not self._closing
            ):
                # Polling was stopped for the upgrade: take it up again (the server keeps the
                # polling transport until it receives the upgrade packet).
                self._resume_polling()

    def _resume_polling(self) -> None:
        self._poll_paused = False
        self._post_stopping = False
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = self.loop.create_task(self._poll_loop())
        if self._post_task is None or self._post_task.done():
            self._post_task = self.loop.create_task(self._post_loop())
        self._outbox_ready.set()

    def on_probe_frame(self, listener: EngineListener, data: bytes, binary: bool) -> None:
        if (
            data == EIO_PROBE_ANSWER
            and self._probe_waiter is not None
            and not self._probe_waiter.done()
        ):
            self._probe_waiter.set_result(True)

    # -- hooks the compiled core calls (EngineHooks, ListenerHooks in _ext/_core.pyi) -----

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

    def on_listener_error(self, listener: EngineListener, exc: BaseException) -> None:
        if listener is not self._listener:
            listener.transport and listener.transport.disconnect(False)
            return
        if self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_exception(exc)
            return
        self._on_stream_error(exc)

    def _on_stream_error(self, exc: BaseException) -> None:
        if isinstance(exc, (ProtocolError, PayloadTooLargeError)):
            self._fail(Reason.PARSE_ERROR, exc)
        else:
            self.logger.error("Unexpected error while reading from the server", exc_info=exc)
            self._fail(Reason.TRANSPORT_ERROR, exc)

    def on_ws_disconnected(self, listener: EngineListener) -> None:
        if not listener.probing and self._open_waiter is not None and not self._open_waiter.done():
            self._open_waiter.set_exception(
                ConnectionError("connection closed before the open packet")
            )
            return
        if listener is self._listener:
            self._fail(Reason.TRANSPORT_CLOSE, None)
        elif self._probe_waiter is not None and not self._probe_waiter.done():
            self._probe_waiter.set_exception(ConnectionError("probe websocket closed"))

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
        for task in (self._upgrade_task, self._poll_task, self._post_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        for task in (self._upgrade_task, self._poll_task, self._post_task):
            if task is not None and task is not current:
                try:
                    await task
                except BaseException:
                    pass
        self._upgrade_task = self._poll_task = self._post_task = None
        if self._ws is not None:
            ws, self._ws = self._ws, None
            try:
                ws.disconnect(False)
            except Exception:
                pass
        elif (
            self._listener is not None
            and self._listener.transport is not None
            and not self._listener.transport.is_disconnected  # close() saw it through
        ):
            self._listener.transport.disconnect(False)
        if self._own_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()
