"""The HTTP long-polling transport: GETs that read, POSTs that write.

Engine.IO v4 payloads are records separated by ``\\x1e`` (a binary message as ``b`` + base64);
Engine.IO v3 (``PollingTransport3``) frames each record as ``<length>:<packet>``. Records read
are fed to the core's ``Dispatcher`` as they arrive (``feed_poll_record``: the bytes as they
came, no str round trip); records to send are encoded once, when the core hands a packet over
(``_enqueue``, the core's ``poll_sender``), and POSTed in order, one POST at a time, each
filled up to the server's maxPayload (at most ``MAX_PACKETS_PER_POST`` records to a server that
counts them); emitters wait while more than ``POLL_OUTBOX_HIGH_WATER`` (or twice maxPayload)
is queued (backpressure, through the core's ``poll_writable()``).

Requests go through ``http1.HTTP1Client`` (keep-alive connections of its own), or through
aiohttp when the user gave an ``http_session``; this module owns the query of each request and
stopping and resuming its loops around the upgrade; it knows nothing of the handshake's meaning, the
heartbeat or the upgrade's WebSocket, and never imports ``fastsio.engine``.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from itertools import accumulate, islice
from typing import TYPE_CHECKING

from .._ext._core import (
    EIO_CLOSE_PACKET,
    EIO_TYPES,
    Dispatcher,
    eio_text,
    poll_body_limit,
    split_eio3_payload,
)
from .._flag import Flag
from ..exceptions import ConnectionError, PayloadTooLargeError, ProtocolError
from ..reasons import Reason
from .base import TransportHooks
from .http import PollHTTP, make_poll_http
from .http1 import MalformedResponseError

if TYPE_CHECKING:
    import ssl

    import aiohttp

__all__ = [
    "MAX_PACKETS_PER_POST",
    "POLL_OUTBOX_HIGH_WATER",
    "PollStatusError",
    "PollingTransport",
    "PollingTransport3",
    "poll_url",
]

#: Packets per polling POST to a server that counts them: python-engineio servers silently drop
#: a POST of more than 16 (``Payload.max_decode_packets``), and so may a server that does not
#: announce its maxPayload. Any other POST is bounded by maxPayload only, as engine.io-client's.
MAX_PACKETS_PER_POST = 16

#: Bytes queued for POST over which emitters wait (backpressure on polling), at least; twice the
#: server's maxPayload when larger, so that the next POST is full when the one in flight ends.
#: They go on once a POST has taken the queue down to half of it.
POLL_OUTBOX_HIGH_WATER = 256 * 1024

_OPEN_TYPE = eio_text(EIO_TYPES["open"])


class PollStatusError(ConnectionError):
    """A poll answered with an HTTP status other than 200; ``body``: the start of the answer
    to the handshake's GET (where a server says it refuses our Engine.IO version), else b""."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(f"polling GET returned HTTP {status}")
        self.status = status
        self.body = body


def poll_url(http_url: str, sid: str | None) -> str:
    """The URL of one polling request (a fresh ``t`` each, as engine.io-client does)."""
    url = http_url + "&transport=polling&t=" + format(time.time_ns() // 1000, "x")
    if sid is not None:
        url += "&sid=" + urllib.parse.quote(sid)
    return url


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


class PollingTransport:
    """The long-polling link of one Engine.IO v4 session (``Transport``).

    Made before the handshake (``get()`` is the handshake's request); ``opened()`` then gives
    it the session's sid and limits, ``attach()`` makes it the core's sender, ``start()`` runs
    the GET and POST loops.
    """

    __slots__ = (
        "dispatcher",
        "hooks",
        "loop",
        "http_url",
        "headers",
        "ssl",
        "request_timeout",
        "max_message_size",
        "http_session",
        "sid",
        "max_payload",
        "counts_packets",
        "poll_timeout",
        "read_gate",
        "_http",
        "_poll_task",
        "_post_task",
        "_outbox",
        "_outbox_bytes",
        "_outbox_high",
        "_outbox_ready",
        "_post_stopping",
        "_poll_paused",
        "_get_in_flight",
        "_flush_lock",
    )

    name = "polling"
    #: Between two records of a POST body.
    separator = b"\x1e"

    def __init__(
        self,
        dispatcher: Dispatcher,
        hooks: TransportHooks,
        http_url: str,
        *,
        read_gate: Flag,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        request_timeout: float = 5,
        max_message_size: int = 0,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.hooks = hooks
        self.loop = asyncio.get_running_loop()
        self.http_url = http_url
        self.headers = dict(headers or {})
        self.ssl = ssl_context
        self.request_timeout = request_timeout
        self.max_message_size = max_message_size
        self.http_session = http_session
        self.sid: str | None = None
        self.max_payload = 0
        self.counts_packets = True
        self.poll_timeout = request_timeout
        #: The session's read gate: no GET starts while it is clear (backpressure); a GET in
        #: flight is read to its end, its packets held by the core.
        self.read_gate = read_gate
        self._http: PollHTTP | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._post_task: asyncio.Task[None] | None = None
        # Records encoded once (_enqueue), taken from the left by each POST.
        self._outbox: deque[bytes] = deque()
        self._outbox_bytes = 0  # their sizes, for the high-water mark (backpressure)
        self._outbox_high = POLL_OUTBOX_HIGH_WATER
        self._outbox_ready = Flag()
        self._post_stopping = False
        self._poll_paused = False
        self._get_in_flight = False  # the poll loop is inside a GET (not parked on the gate)
        self._flush_lock = asyncio.Lock()  # one POST at a time (servers refuse overlaps)

    # -- the session's life -----------------------------------------------------------------

    def opened(
        self, sid: str, max_payload: int, poll_timeout: float, counts_packets: bool = True
    ) -> None:
        """The handshake succeeded: requests name ``sid`` from now on. ``counts_packets``: the
        server drops a POST of more than MAX_PACKETS_PER_POST (OpenPacket.counts_packets)."""
        self.sid = sid
        self.max_payload = max_payload
        self.poll_timeout = poll_timeout
        self.counts_packets = counts_packets or not max_payload
        self._outbox_high = max(POLL_OUTBOX_HIGH_WATER, 2 * max_payload)

    def attach(self) -> None:
        self.dispatcher.poll_sender = self._enqueue

    def start(self) -> None:
        """Run the GET and POST loops (again, after an upgrade that failed)."""
        self._poll_paused = False
        self._post_stopping = False
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = self.loop.create_task(self._poll_loop())
        if self._post_task is None or self._post_task.done():
            self._post_task = self.loop.create_task(self._post_loop())
        self._outbox_ready.set()

    def pause_reading(self) -> None:
        """Nothing to do: the poll loop checks the read gate before each GET."""

    def resume_reading(self) -> None:
        """Nothing to do: the poll loop checks the read gate before each GET."""

    async def stop_polling(self, timeout: float) -> None:
        """Stop the GET loop for the upgrade; the server answers the GET in flight with a noop
        once the probe succeeded, and its packets are fed first."""
        self._poll_paused = True
        task = self._poll_task
        if task is None:
            return
        if self._get_in_flight:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        else:
            # Parked on the read gate (backpressure): no request to wait for.
            task.cancel()
            await asyncio.wait([task])

    async def drain(self) -> None:
        """Stop the POST loop and POST what is queued (before the upgrade switches links)."""
        await self._stop_post_loop()
        try:
            await self._flush_outbox()
        except Exception as exc:
            # The failed POST's packets were taken out of the outbox: the session ends, as when
            # the POST loop fails (engine.io-client closes on a failed write during the
            # upgrade too), rather than staying on polling with them silently lost.
            self.hooks.on_transport_closed(self, Reason.TRANSPORT_ERROR, exc)
            raise

    @property
    def paused(self) -> bool:
        """The GET loop was stopped for an upgrade (``start()`` takes it up again)."""
        return self._poll_paused

    async def close(self, timeout: float) -> None:
        """What is queued (the namespaces' DISCONNECT packets, last emits) goes out first,
        then an Engine.IO CLOSE; best effort: the server times the session out anyway."""
        if self.hooks.state != "connected":
            return
        try:
            await self._stop_post_loop()
            self._enqueue(EIO_CLOSE_PACKET, False)
            await self._flush_outbox()
        except Exception:
            pass

    def abort(self) -> None:
        current = asyncio.current_task()
        for task in (self._poll_task, self._post_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        if self._http is not None:
            self._http.abort()

    async def wait_closed(self) -> None:
        """Wait for the loops ``abort()`` cancelled, then close the connections."""
        current = asyncio.current_task()
        for task in (self._poll_task, self._post_task):
            if task is not None and task is not current:
                try:
                    await task
                except BaseException:
                    pass
        self._poll_task = self._post_task = None
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    # -- requests ---------------------------------------------------------------------------

    def _client(self) -> PollHTTP:
        http = self._http
        if http is None:
            http = self._http = make_poll_http(
                self.http_url, self.headers, self.ssl, self.http_session
            )
        return http

    def _query(self) -> str:
        """What ``poll_url()`` adds to the URL (a fresh ``t`` each, as engine.io-client)."""
        query = "&transport=polling&t=" + format(time.time_ns() // 1000, "x")
        if self.sid is not None:
            query += "&sid=" + urllib.parse.quote(self.sid)
        return query

    def cookie_header(self, url: str) -> str | None:
        """The ``Cookie`` header polling's requests would send to ``url`` (a load balancer's
        sticky-session cookie, for the upgrade's WebSocket request)."""
        return self._http.cookie_header(url) if self._http is not None else None

    async def get(self, timeout: float) -> bytes:
        """One poll (the handshake's): the body, read no further than poll_body_limit().

        Raises PollStatusError for an HTTP error, with the start of the body before the
        session is open (a refusal of our Engine.IO version says so there)."""
        limit = poll_body_limit(self.max_message_size)
        # Chunks joined once at the end: a growing bytearray would copy as it grows.
        chunks: list[bytes] = []
        size = 0

        def sink(chunk: bytes) -> None:
            nonlocal size
            size += len(chunk)
            if limit and size > limit:
                # The rest is never read: the connection is dropped, not reused.
                raise self._body_too_large(f"more than {limit} bytes")
            chunks.append(chunk)

        status, body = await self._client().request(
            "GET", self._query(), timeout=timeout, sink=sink
        )
        if status != 200:
            raise PollStatusError(status, body if self.sid is None else b"")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _body_too_large(self, what: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"poll response of {what} exceeds {poll_body_limit(self.max_message_size)} bytes, "
            f"the most a poll may carry under max_message_size ({self.max_message_size} "
            f"bytes); raise the limit with AsyncClient(max_message_size=...), 0 for none"
        )

    # -- reading ----------------------------------------------------------------------------

    def split_handshake(self, body: bytes) -> tuple[bytes, list[bytes]]:
        """The handshake's answer: the open packet's JSON, and the records after it (fed by
        ``feed()`` once the session is open). ProtocolError if it does not start with one."""
        if not body:
            raise ProtocolError("empty polling payload", b"")
        first, _, rest = body.partition(b"\x1e")
        if first[:1] != _OPEN_TYPE:
            raise ProtocolError("first polling packet is not an open packet", first[:200])
        return first[1:], rest.split(b"\x1e") if rest else []

    def feed(self, records: list[bytes]) -> None:
        """Feed the records ``split_handshake()`` left, then flush a batch handler's events."""
        for record in records:
            if self.hooks.state != "connected":
                return
            self.dispatcher.feed_poll_record(record, self.max_message_size)
        self.dispatcher.flush_batch()

    def _feed_record(self, record: bytes) -> None:
        """One polling record to the core, checked there (no str round trip per packet)."""
        if self.hooks.state == "connected":
            self.dispatcher.feed_poll_record(record, self.max_message_size)

    async def _poll_once(self, timeout: float) -> None:
        """One long-poll, its packets fed to the core as they arrive.

        A server sends everything it buffered in one response (Node has no limit), so the body
        is not bounded: each packet is, by max_message_size, and memory holds one packet and
        one chunk (split into its records). Packets before a bad one are dispatched before the
        error is raised.
        """
        mms = self.max_message_size
        hooks = self.hooks
        feed = self.dispatcher.feed_poll_record
        pending = bytearray()  # the start of a record the next chunk ends
        records = 0

        def sink(chunk: bytes) -> None:
            nonlocal records
            # Split in C, one record after another to the core: a Python-level scan per
            # record cost as much as dispatching it.
            parts = chunk.split(b"\x1e")
            if len(parts) > 1:
                if pending:
                    pending.extend(parts[0])
                    parts[0] = bytes(pending)
                    pending.clear()
                last = parts.pop()
                records += len(parts)
                for record in parts:
                    if hooks.state != "connected":
                        break  # closed by a packet or a handler: the rest is dropped
                    feed(record, mms)
                pending.extend(last)
            else:
                pending.extend(chunk)
            if 0 < mms < len(pending):
                _check_partial_record(pending, mms)

        self._get_in_flight = True
        try:
            status, _ = await self._client().request(
                "GET", self._query(), timeout=timeout, sink=sink
            )
            if status != 200:
                raise PollStatusError(status)
            if pending or records:
                self._feed_record(bytes(pending))
            else:
                raise ProtocolError("empty polling payload", b"")
        finally:
            self._get_in_flight = False
            self.dispatcher.flush_batch()

    async def _poll_loop(self) -> None:
        try:
            while self.hooks.state == "connected" and not self._poll_paused:
                # A set() wakes the waiter even if a clear() follows at once (resumed, then
                # paused again by the frames released): look again before reading more.
                while not self.read_gate.is_set():
                    await self.read_gate.wait()
                if self.hooks.state != "connected" or self._poll_paused:
                    break
                await self._poll_once(self.poll_timeout)
        except asyncio.CancelledError:
            raise
        except (ProtocolError, PayloadTooLargeError) as exc:
            # Broken HTTP is the request failing (engine.io-client: "transport error"); a
            # broken payload in a sound response is a parse error.
            bad_http = isinstance(exc, MalformedResponseError)
            reason = Reason.TRANSPORT_ERROR if bad_http else Reason.PARSE_ERROR
            self.hooks.on_transport_closed(self, reason, exc)
        except Exception as exc:
            self.hooks.on_transport_closed(self, Reason.TRANSPORT_ERROR, exc)

    # -- writing ----------------------------------------------------------------------------

    @staticmethod
    def encode_record(data: bytes, binary: bool) -> bytes:
        """A packet as a record of the POST body: a text packet as is, binary as b + base64."""
        return b"b" + base64.b64encode(data) if binary else data

    def _enqueue(self, data: bytes, binary: bool) -> bool:
        """The core's poll_sender: queue one record for POST. True when the queue is over its
        high-water mark: the core then has emitters wait until poll_writable()."""
        # The core checked the record's size (base64 included) against maxPayload already.
        record = self.encode_record(data, binary)
        outbox = self._outbox
        if not outbox:
            # Only an empty outbox needs a wake-up: the POST loop takes the whole outbox once
            # woken, so records added meanwhile go with it.
            self._outbox_ready.set()
        outbox.append(record)
        self._outbox_bytes += len(record)
        return self._outbox_bytes > self._outbox_high

    def _next_post(self) -> int:
        """How many records of the outbox go in the next POST.

        The server refuses a whole body larger than its maxPayload (Node answers HTTP 413 and
        the session dies), so records are taken while the body, separators included, still
        fits, as engine.io-client does; the first always goes (the core refused any record
        that cannot fit alone). A server that counts packets (python-engineio drops a POST of
        more than 16) gets at most MAX_PACKETS_PER_POST.
        """
        limit = self.max_payload
        outbox = self._outbox
        n = len(outbox)
        if self.counts_packets:
            n = min(n, MAX_PACKETS_PER_POST)
        if not limit:
            return n
        sep = len(self.separator)
        if n == len(outbox) and self._outbox_bytes + (n - 1) * sep <= limit:
            return n  # everything fits (the common case, known without a look at each record)
        # Body size of the first i records: the running sum of (size + sep), minus sep. No
        # more than limit // (1 + sep) + 1 records can fit (one byte and a separator each).
        sizes = map(len, islice(outbox, min(n, limit // (1 + sep) + 1)))
        ends = list(accumulate(map(sep.__add__, sizes)))
        return max(1, bisect_right(ends, limit + sep))

    async def _flush_outbox(self) -> None:
        async with self._flush_lock:
            while self._outbox:
                n = self._next_post()
                outbox = self._outbox
                records: list[bytes]
                if n == len(outbox):
                    records, self._outbox = list(outbox), deque()
                    self._outbox_bytes = 0
                else:
                    records = [outbox.popleft() for _ in range(n)]
                    self._outbox_bytes -= sum(map(len, records))
                if self._outbox_bytes <= self._outbox_high // 2:
                    self.dispatcher.poll_writable()
                await self._post(records)

    async def _post(self, records: list[bytes]) -> None:
        body = self.separator.join(records)
        status, _ = await self._client().request(
            "POST", self._query(), timeout=self.request_timeout, body=body
        )
        if status != 200:
            raise ConnectionError(
                f"polling POST of {len(records)} packets ({len(body)} bytes) returned HTTP {status}"
            )

    async def _post_loop(self) -> None:
        try:
            while self.hooks.state == "connected":
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                await self._flush_outbox()
                if self._post_stopping:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.hooks.on_transport_closed(self, Reason.TRANSPORT_ERROR, exc)

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
                pass  # reported through on_transport_closed by the loop itself


# A binary polling record of Engine.IO v3: `b`, the message type, then base64.
_V3_BINARY_RECORD = b"b" + eio_text(EIO_TYPES["message"])


class PollingTransport3(PollingTransport):
    """Long-polling for Engine.IO v3 (Socket.IO 2.x servers): ``<length>:<packet>`` records,
    the length in UTF-16 code units; asked for as text (``b64=1`` in the URL), so a binary
    packet is the record ``b4<base64>``."""

    __slots__ = ()

    separator = b""

    def split_handshake(self, body: bytes) -> tuple[bytes, list[bytes]]:
        records = split_eio3_payload(body, max_message_size=self.max_message_size)
        first = records[0]
        if first[:1] != _OPEN_TYPE:
            raise ProtocolError("first polling packet is not an open packet", first[:200])
        return first[1:], records[1:]

    async def _poll_once(self, timeout: float) -> None:
        # v3 records are length-prefixed, not separated: the body is read whole (bounded by
        # poll_body_limit(max_message_size), as get() reads it), then split and fed.
        self._get_in_flight = True
        try:
            body = await self.get(timeout)
        finally:
            self._get_in_flight = False
        try:
            for record in split_eio3_payload(body, max_message_size=self.max_message_size):
                self._feed_record(record)
        finally:
            self.dispatcher.flush_batch()

    @staticmethod
    def encode_record(data: bytes, binary: bool) -> bytes:
        if binary:
            rec = _V3_BINARY_RECORD + base64.b64encode(data)
            units = len(rec)
        else:
            rec = data
            units = len(rec.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass"))
            units //= 2
        return b"%d:%s" % (units, rec)
