"""The HTTP/1.1 client of the long-polling transport: keep-alive connections, nothing more.

A long-poll is a request/response round trip per batch of packets, one GET outstanding at a
time, so what the client spends per request bounds the transport's throughput. aiohttp's
client request path (session, request and response objects, stream reader, timeouts, yarl)
cost about three quarters of the client's time per GET; ``HTTP1Client`` is an asyncio
``Protocol`` per connection that parses the response as it arrives and hands body bytes to the
caller's ``sink`` from ``data_received`` (as the WebSocket listener hands frames to the core),
so a request costs one write, one future and the parse.

What it does: request line, ``Host``, the user's headers, ``Content-Length``; responses framed
by Content-Length, ``Transfer-Encoding: chunked`` or the connection's close; gzip/deflate
bodies (never asked for); 1xx responses skipped; cookies kept (``Set-Cookie`` -> ``Cookie``,
aiohttp's ``CookieJar``, made at the first cookie); TLS with ``server_hostname``; IPv6 literal
hosts; a total timeout per request. A kept-alive connection the server closed is replaced
before use, and a GET whose reused connection closes before any byte of the response is
sent again on a new one (the server dropped an idle connection as the request went out); a
POST is not (it is not idempotent: the server may have taken its packets).
Malformed responses raise ``MalformedResponseError`` (a ``ProtocolError``), a response cut
short ``ConnectionError``, a request over time ``asyncio.TimeoutError``; the connection is then
dropped.

``fastsio.transports.http`` holds the interface both clients offer (``PollHTTP``), the choice
between them and the aiohttp one.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import ConnectionError, ProtocolError

__all__ = ["MAX_HEAD_SIZE", "HTTP1Client", "MalformedResponseError", "Sink", "cookie_header_of"]

#: Bytes of a response head (status line and headers), or of a chunk-size line or trailers,
#: over which the response is refused (ProtocolError).
MAX_HEAD_SIZE = 64 * 1024

#: Takes a response's body as it arrives (a 200's only), piece by piece.
Sink = Callable[[bytes], None]

#: Bytes of a decompressed body handed to the sink at a time (a small gzip body can inflate to
#: gigabytes: the sink's per-record bound sees it in pieces).
_INFLATE_PIECE = 64 * 1024


# ------------------------------------------------------------------------------------------
# The lean client
# ------------------------------------------------------------------------------------------

_HEX_DIGITS = b"0123456789abcdefABCDEF"

# Parser states of a connection.
_IDLE, _HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(8)


class MalformedResponseError(ProtocolError):
    """The server's HTTP response is not valid HTTP/1.1 (its framing, not its payload)."""


class _StaleConnection(Exception):
    """A reused connection closed before any byte of the response: send the request again."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time (``exchange()``)."""

    __slots__ = (
        "client",
        "transport",
        "closed",
        "reused",
        "keep_alive",
        "_waiter",
        "_sink",
        "_error_limit",
        "_state",
        "_buf",
        "_remaining",
        "_got",
        "_status",
        "_error_body",
        "_inflate",
        "_received",
        "_retry",
        "_timer",
    )

    def __init__(self, client: HTTP1Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.keep_alive = True
        self._waiter: asyncio.Future[int] | None = None
        self._sink: Sink | None = None
        self._error_limit = 0
        self._state = _IDLE
        self._buf = bytearray()  # a response head, chunk-size line or trailers being read
        self._remaining = 0  # body bytes (or the chunk's) still to come
        self._got = 0  # body bytes received (for the error of a cut-short body)
        self._status = 0
        self._error_body: bytearray | None = None  # the start of a non-200's body
        self._inflate: Any = None  # zlib decompressor of a gzip/deflate body
        self._received = False  # a byte of the current response came
        self._retry = False  # the request may be sent again (idempotent: not a POST)
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._conns.discard(self)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._state == _UNTIL_CLOSE and exc is None:
            # An orderly close ends a body framed by it; a reset cuts it (RFC 9112 8).
            try:
                self._flush_inflate()
                self._finish()
            except Exception as exc_in_flush:
                self._fail(exc_in_flush)
            return
        if not self._received and self.reused and self._retry:
            self._fail(_StaleConnection())
            return
        state, got = self._state, self._got
        if state == _HEAD:
            what = "in its response head" if self._received else "before responding"
        elif state == _LENGTH:
            what = f"after {got} of {got + self._remaining} body bytes"
        elif state == _UNTIL_CLOSE:
            what = f"abortively, after {got} body bytes"
        else:
            what = f"in a chunked body, after {got} bytes"
        error = ConnectionError(f"the HTTP server closed the connection {what}")
        if exc is not None:
            error.__cause__ = exc
        self._fail(error)

    def eof_received(self) -> bool:
        return False  # close; connection_lost() tells a complete response from a cut one

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.abort()  # bytes outside any response: the connection is out of step
            return
        self._received = True
        try:
            self._feed(data)
        except Exception as exc:
            self._fail(exc)

    # -- one request ---------------------------------------------------------------------

    async def exchange(
        self, request: bytes, sink: Sink | None, error_limit: int, deadline: float, retry: bool
    ) -> tuple[int, bytes]:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            # Closed by the server since it was opened or last used (uvloop refuses a write
            # to a closed handle).
            if self.reused:
                raise _StaleConnection()
            raise ConnectionError("the HTTP server closed the connection before the request")
        loop = self.client._loop
        self._waiter = waiter = loop.create_future()
        self._sink = sink
        self._error_limit = error_limit
        self._state = _HEAD
        self._received = False
        self._retry = retry
        self._got = 0
        self._error_body = None
        self._inflate = None
        self._timer = loop.call_at(deadline, self._expire)
        try:
            transport.write(request)
            status = await waiter
        except BaseException:
            # Timed out, cancelled, or the response failed: the connection is out of step.
            self._waiter = None
            self.abort()
            raise
        finally:
            self._timer.cancel()
            self._sink = None
        self._waiter = None
        body = self._error_body
        return status, bytes(body) if body is not None else b""

    def _expire(self) -> None:
        self._fail(asyncio.TimeoutError(f"HTTP request timed out ({self.client.what})"))

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        self.keep_alive = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("HTTP connection aborted"))
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
            self.client._conns.discard(self)

    def _finish(self) -> None:
        self._state = _IDLE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    # -- parsing -------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        buf = self._buf
        while data:
            state = self._state
            if state == _LENGTH or state == _CHUNK_DATA:
                n = self._remaining
                if len(data) < n:
                    self._remaining = n - len(data)
                    self._body(data)
                    return
                self._remaining = 0
                if len(data) > n:
                    data, rest = data[:n], data[n:]
                else:
                    rest = b""
                self._body(data)
                data = rest
                if state == _LENGTH:
                    self._end_body()
                else:
                    self._state = _CHUNK_END
            elif state == _HEAD:
                if buf:
                    buf += data
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        self._check_size(buf, "response head")
                        return
                    head, data = bytes(buf[:end]), bytes(buf[end + 4 :])
                    buf.clear()
                else:
                    end = data.find(b"\r\n\r\n")
                    if end < 0:
                        buf += data
                        self._check_size(buf, "response head")
                        return
                    head, data = data[:end], data[end + 4 :]
                if len(head) > MAX_HEAD_SIZE:
                    self._check_size(head, "response head")
                self._head(head)
            elif state == _CHUNK_SIZE or state == _CHUNK_END:
                buf += data
                end = buf.find(b"\r\n")
                if end < 0:
                    self._check_size(buf, "chunk-size line")
                    return
                line, data = bytes(buf[:end]), bytes(buf[end + 2 :])
                buf.clear()
                if state == _CHUNK_END:
                    if line:
                        raise MalformedResponseError("HTTP chunk not followed by CRLF", line)
                    self._state = _CHUNK_SIZE
                    continue
                size = line.partition(b";")[0].strip()
                try:
                    # Hex digits only (int() would take a sign, 0x or an underscore).
                    if not size or size.strip(_HEX_DIGITS):
                        raise ValueError
                    self._remaining = int(size, 16)
                except ValueError:
                    raise MalformedResponseError("bad HTTP chunk size", line) from None
                self._state = _CHUNK_DATA if self._remaining else _TRAILER
            elif state == _TRAILER:
                buf += data
                if buf[:2] == b"\r\n":
                    end = 0
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        self._check_size(buf, "trailer section")
                        return
                    end += 2
                data = bytes(buf[end + 2 :])
                buf.clear()
                self._end_body()
            elif state == _UNTIL_CLOSE:
                self._body(data)
                return
            else:
                # More bytes than the response announced: the connection is out of step.
                self.keep_alive = False
                return

    @staticmethod
    def _check_size(data: bytes | bytearray, what: str) -> None:
        if len(data) > MAX_HEAD_SIZE:
            raise MalformedResponseError(
                f"HTTP {what} larger than {MAX_HEAD_SIZE} bytes", bytes(data[:200])
            )

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        line = lines[0]
        version = line[:9]
        code = line[9:12]
        if (
            version not in (b"HTTP/1.1 ", b"HTTP/1.0 ")
            or not code.isdigit()
            or line[12:13] not in (b"", b" ")
        ):
            raise MalformedResponseError("bad HTTP status line", line)
        status = int(code)
        length = chunked = encoding = None
        keep_alive = version == b"HTTP/1.1 "
        cookies: list[str] | None = None
        for header in lines[1:]:
            name, sep, value = header.partition(b":")
            if not sep or not name or name[-1:] in b" \t" or header[:1] in b" \t":
                raise MalformedResponseError("bad HTTP header line", header)
            name = name.lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise MalformedResponseError("bad HTTP Content-Length", header)
                length = int(value)
            elif name == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise MalformedResponseError("unsupported HTTP Transfer-Encoding", header)
                chunked = True
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif name == b"content-encoding":
                encoding = value.lower()
            elif name == b"set-cookie":
                if cookies is None:
                    cookies = []
                cookies.append(value.decode("latin-1"))
        if 100 <= status < 200:
            if status == 101:
                raise MalformedResponseError("unexpected HTTP 101 Switching Protocols", line)
            return  # informational (103 Early Hints...): the real response follows
        if cookies is not None:
            self.client._store_cookies(cookies)
        self._status = status
        self.keep_alive = self.keep_alive and keep_alive
        if status != 200:
            self._error_body = bytearray()
        if encoding not in (None, b"identity"):
            if encoding == b"gzip" or encoding == b"x-gzip":
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif encoding == b"deflate":
                self._inflate = zlib.decompressobj()
            else:
                raise MalformedResponseError("unsupported HTTP Content-Encoding", encoding)
        if status == 204 or status == 304:
            self._end_body()
        elif chunked:
            if length is not None:
                self.keep_alive = False  # both framings announced: trust neither afterwards
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._remaining = length
            self._state = _LENGTH
            if not length:
                self._end_body()
        else:
            self.keep_alive = False
            self._state = _UNTIL_CLOSE

    def _body(self, data: bytes) -> None:
        self._got += len(data)
        inflate = self._inflate
        if inflate is None:
            self._deliver(data)
            return
        try:
            while data:
                self._deliver(inflate.decompress(data, _INFLATE_PIECE))
                data = inflate.unconsumed_tail
        except zlib.error as exc:
            raise MalformedResponseError(f"bad compressed HTTP body: {exc}") from None

    def _flush_inflate(self) -> None:
        if self._inflate is not None:
            if not self._inflate.eof:
                raise ConnectionError("the HTTP server closed the connection mid-body")
            self._deliver(self._inflate.flush())

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        error_body = self._error_body
        if error_body is None:
            if self._sink is not None:
                self._sink(data)
            return
        error_body += data[: self._error_limit - len(error_body)]
        if len(error_body) >= self._error_limit:
            # Enough of an error's body: the rest is not read, the connection not reused.
            self.keep_alive = False
            self._finish()
            self._state = _UNTIL_CLOSE  # what still comes is dropped (no waiter any more)

    def _end_body(self) -> None:
        if self._inflate is not None:
            if not self._inflate.eof:
                raise MalformedResponseError(
                    "compressed HTTP body ends before its compressed stream"
                )
            self._deliver(self._inflate.flush())
        self._finish()
        if not self.keep_alive and self.transport is not None:
            self.transport.close()


def cookie_header_of(jar: Any, user: str | None, url: str) -> str | None:
    """The ``Cookie`` header for a request to ``url``: the user's own ``Cookie`` header (if
    any), then the cookies ``jar`` (an aiohttp cookie jar, or None) keeps for ``url``."""
    cookies = None
    if jar is not None and len(jar):
        import yarl

        filtered = jar.filter_cookies(yarl.URL(url))
        cookies = "; ".join(f"{m.key}={m.coded_value}" for m in filtered.values()) or None
    if not user:
        return cookies
    return user + ("; " + cookies if cookies else "")


class HTTP1Client:
    """Keep-alive HTTP/1.1 connections to one origin, for the requests of a polling session:
    an idle connection is reused, a new one opened when none is (the GET loop and the POST
    loop each hold one while their request is in flight)."""

    __slots__ = (
        "what",
        "_loop",
        "_host",
        "_port",
        "_ssl",
        "_server_hostname",
        "_target",
        "_request_heads",
        "_headers",
        "_user_cookie",
        "_cookie_url",
        "_jar",
        "_idle",
        "_conns",
        "_aborts",
    )

    def __init__(
        self, url: str, headers: Mapping[str, str], ssl: _ssl.SSLContext | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        https = parts.scheme == "https"
        self.what = f"{parts.scheme}://{parts.netloc}"
        self._loop = asyncio.get_running_loop()
        self._host = parts.hostname
        self._port = parts.port or (443 if https else 80)
        self._ssl = (ssl or _ssl.create_default_context()) if https else None
        self._server_hostname = self._host if https else None
        # Path and query as sent, non-ASCII characters percent-encoded.
        target = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
        if parts.query:
            target += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=~?")
        self._target = target
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != (443 if https else 80):
            host += f":{parts.port}"
        # The URL the jar keeps cookies for and picks them by (its path: a cookie's Path).
        self._cookie_url = f"{parts.scheme}://{host}{target.partition('?')[0]}"
        lines = {
            "host": f"Host: {host}",
            "user-agent": "User-Agent: fastsio",
            "accept": "Accept: */*",
        }
        self._user_cookie: str | None = None
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"invalid character in HTTP header {name!r}")
            key = name.lower()
            if key == "cookie":
                self._user_cookie = str(value)
            elif key not in ("content-length", "transfer-encoding", "connection"):
                lines[key] = f"{name}: {value}"
        self._headers = "".join(line + "\r\n" for line in lines.values()).encode("latin-1")
        # Per method: the bytes of a request before its query suffix, and after it.
        self._request_heads: dict[str, tuple[bytes, bytes]] = {}
        self._jar: Any = None  # aiohttp.CookieJar, once the server set a cookie
        self._idle: list[_Connection] = []
        self._conns: set[_Connection] = set()
        self._aborts = 0  # abort() calls: a request connecting meanwhile fails

    # -- PollHTTP ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        query: str,
        *,
        timeout: float,
        body: bytes = b"",
        sink: Sink | None = None,
        error_limit: int = 512,
    ) -> tuple[int, bytes]:
        loop = self._loop
        deadline = loop.time() + timeout
        request = self._request(method, query, body)
        # A POST that went out is never sent again (not idempotent, RFC 9112 9.3.1): the
        # server may have taken its packets before it closed.
        retry = method != "POST"
        aborts = self._aborts
        while True:
            conn = self._take_idle()
            if conn is None:
                conn = await self._open(deadline)
                if self._aborts != aborts:
                    conn.abort()  # abort() came while it was connecting
                    raise ConnectionError("HTTP connection aborted")
            try:
                status, error_body = await conn.exchange(
                    request, sink, error_limit, deadline, retry
                )
            except _StaleConnection:
                continue  # a new connection next (only a reused one raises this)
            if conn.keep_alive and not conn.closed:
                conn.reused = True
                self._idle.append(conn)
            else:
                conn.abort()  # the rest of the response unread, or the server closes it
            return status, error_body

    def cookie_header(self, url: str) -> str | None:
        return cookie_header_of(self._jar, self._user_cookie, url)

    def abort(self) -> None:
        self._aborts += 1
        self._idle.clear()
        for conn in list(self._conns):
            conn.abort()

    async def close(self) -> None:
        self.abort()

    # -- internals -----------------------------------------------------------------------

    def _request(self, method: str, query: str, body: bytes) -> bytes:
        parts = self._request_heads.get(method)
        if parts is None:
            head = f"{method} {self._target}".encode("ascii")
            tail = b" HTTP/1.1\r\n" + self._headers
            if method == "POST":
                tail += b"Content-Type: text/plain;charset=UTF-8\r\n"
            parts = self._request_heads[method] = (head, tail)
        head, tail = parts
        request = head + query.encode("ascii") + tail
        if self._jar is not None or self._user_cookie is not None:
            cookie = self.cookie_header(self._cookie_url)
            if cookie:
                request += f"Cookie: {cookie}\r\n".encode("latin-1")
        if body or method == "POST":
            return b"".join((request, b"Content-Length: %d\r\n\r\n" % len(body), body))
        return request + b"\r\n"

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _open(self, deadline: float) -> _Connection:
        loop = self._loop
        conn = _Connection(self)
        timeout = max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"HTTP connect timed out ({self.what})") from None
        self._conns.add(conn)
        return conn

    def _store_cookies(self, headers: list[str]) -> None:
        from http.cookies import CookieError, SimpleCookie

        import yarl

        jar = self._jar
        if jar is None:
            import aiohttp

            # unsafe: keep cookies of IP-address hosts too (a load balancer's, by address).
            jar = self._jar = aiohttp.CookieJar(unsafe=True)
        for header in headers:
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(header)
            except CookieError:
                continue  # a malformed Set-Cookie is ignored, as browsers do
            jar.update_cookies(cookie, yarl.URL(self._cookie_url))
