"""The polling transport's HTTP/1.1 client (fastsio.transports.http1) against tiny asyncio
servers scripted here: framing (Content-Length, chunked, until close), keep-alive reuse and
reconnection, cookies, malformed responses, timeouts, aborts."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fastsio.exceptions import ConnectionError, ProtocolError
from fastsio.transports.http import AiohttpClient, make_poll_http
from fastsio.transports.http1 import MAX_HEAD_SIZE, HTTP1Client

#: What the server does with one request: the bytes to write (a list: written one piece at a
#: time, with a pause between), CLOSE (close without answering), HANG (never answer).
CLOSE, HANG = "close", "hang"
Action = bytes | list[bytes] | str


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


class ScriptServer:
    """Answers the n-th request (over all connections) with ``actions[n]``; a connection
    whose action list ran out is closed after its last answer."""

    def __init__(self, actions: list[Action], close_after: set[int] | None = None) -> None:
        self.actions = actions
        self.close_after = close_after or set()  # close the connection after these answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.eofs = 0  # connections the client closed
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    async def start(self, host: str = "127.0.0.1") -> ScriptServer:
        self.server = await asyncio.start_server(self._serve, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.eofs += 1
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                n = len(self.requests)
                self.requests.append(head + body)
                action = self.actions[n] if n < len(self.actions) else CLOSE
                if action == CLOSE:
                    return
                if action == HANG:
                    if await reader.read() == b"":
                        self.eofs += 1
                    return
                for piece in [action] if isinstance(action, bytes) else action:
                    assert isinstance(piece, bytes)
                    writer.write(piece)
                    await writer.drain()
                    if not isinstance(action, bytes):
                        await asyncio.sleep(0.01)
                if n in self.close_after:
                    return
        finally:
            writer.close()


Serve = Callable[..., Awaitable[tuple[ScriptServer, HTTP1Client]]]


@pytest.fixture
async def serve() -> Any:
    made: list[tuple[ScriptServer, HTTP1Client]] = []

    async def start(
        actions: list[Action],
        *,
        close_after: set[int] | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/socket.io/?EIO=4",
    ) -> tuple[ScriptServer, HTTP1Client]:
        server = await ScriptServer(actions, close_after).start()
        client = HTTP1Client(f"http://127.0.0.1:{server.port}{path}", headers or {})
        made.append((server, client))
        return server, client

    yield start
    for server, client in made:
        await client.close()
        await server.stop()


async def get(client: HTTP1Client, timeout: float = 5, **options: Any) -> tuple[int, bytes]:
    """A GET; (status, body): the sink's pieces joined for a 200."""
    pieces: list[bytes] = []
    status, error = await client.request(
        "GET", "&t=1", timeout=timeout, sink=pieces.append, **options
    )
    return status, b"".join(pieces) if status == 200 else error


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a hang guard of 10 s, far over what it takes)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


# -- requests ----------------------------------------------------------------------------------


async def test_a_get_sends_the_path_query_host_and_user_headers_and_no_accept_encoding(
    serve: Serve,
) -> None:
    server, client = await serve([ok()], headers={"X-Token": "abc", "User-Agent": "me"})
    assert await get(client) == (200, b"ok")
    head = server.requests[0].decode()
    assert head.startswith("GET /socket.io/?EIO=4&t=1 HTTP/1.1\r\n")
    lines = head.lower().split("\r\n")
    assert f"host: 127.0.0.1:{server.port}" in lines
    assert "x-token: abc" in lines and "user-agent: me" in lines
    assert not any(line.startswith(("accept-encoding", "content-length")) for line in lines)


async def test_a_post_carries_its_body_with_content_length_and_engine_io_content_type(
    serve: Serve,
) -> None:
    server, client = await serve([ok()])
    assert await client.request("POST", "&sid=x", timeout=5, body=b"42[1]\x1e2") == (200, b"")
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /socket.io/?EIO=4&sid=x HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7" in head
    assert b"\r\nContent-Type: text/plain;charset=UTF-8" in head
    assert body == b"42[1]\x1e2"


async def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid character"):
        HTTP1Client("http://h/", {"X": "a\r\nInjected: 1"})


# -- response framing ----------------------------------------------------------------------


async def test_a_content_length_body_goes_to_the_sink_and_the_connection_is_kept(
    serve: Serve,
) -> None:
    server, client = await serve([ok(b"one"), ok(b"two"), ok(b"")])
    assert await get(client) == (200, b"one")
    assert await get(client) == (200, b"two")
    assert await get(client) == (200, b"")
    assert server.connections == 1


async def test_a_chunked_body_with_extensions_and_trailers_split_anywhere(
    serve: Serve,
) -> None:
    whole = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    pieces = [whole[i : i + 7] for i in range(0, len(whole), 7)]
    server, client = await serve([pieces, ok(b"next")])
    assert await get(client) == (200, b"hello" + b"x" * 26)
    assert await get(client) == (200, b"next")
    assert server.connections == 1


async def test_a_body_without_length_is_read_until_the_server_closes(serve: Serve) -> None:
    server, client = await serve(
        [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", ok(b"again")],
        close_after={0},
    )
    assert await get(client) == (200, b"until close")
    assert await get(client) == (200, b"again")
    assert server.connections == 2


async def test_a_body_until_close_cut_by_a_reset_is_an_error_not_a_whole_body() -> None:
    # Only an orderly close ends a body framed by the connection (RFC 9112 8): after a reset
    # the body is incomplete, and its last record must not be dispatched cut.
    async def serve_and_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n4hello wor")
        await writer.drain()
        await asyncio.sleep(0.05)  # the bytes reach the client before the reset
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closed with SO_LINGER 0: a reset

    server = await asyncio.start_server(serve_and_reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HTTP1Client(f"http://127.0.0.1:{port}/socket.io/?EIO=4", {})
    try:
        with pytest.raises(ConnectionError):
            await get(client)
    finally:
        await client.close()
        server.close()


async def test_a_response_head_split_across_reads(serve: Serve) -> None:
    response = ok(b"body", b"X-A: 1\r\nX-B: 2\r\n")
    server, client = await serve([[response[i : i + 1] for i in range(len(response))]])
    assert await get(client) == (200, b"body")


async def test_connection_close_in_the_response_means_a_new_connection_next(
    serve: Serve,
) -> None:
    server, client = await serve([ok(b"a", b"Connection: close\r\n"), ok(b"b")])
    assert await get(client) == (200, b"a")
    assert await get(client) == (200, b"b")
    assert server.connections == 2


async def test_an_informational_response_before_the_real_one_is_skipped(serve: Serve) -> None:
    server, client = await serve([b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"y")])
    assert await get(client) == (200, b"y")


async def test_a_gzip_body_is_decompressed(serve: Serve) -> None:
    body = gzip.compress(b"42[1]" * 1000)
    server, client = await serve([ok(body, b"Content-Encoding: gzip\r\n")])
    assert await get(client) == (200, b"42[1]" * 1000)


async def test_an_error_status_returns_the_start_of_its_body(serve: Serve) -> None:
    server, client = await serve(
        [
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2000\r\n\r\n" + b"e" * 2000,
            ok(b"after"),
        ]
    )
    status, body = await get(client, error_limit=100)
    assert (status, body) == (400, b"e" * 100)
    assert await get(client) == (200, b"after")  # on a new connection: the rest was unread
    assert server.connections == 2


# -- keep-alive and reconnection -------------------------------------------------------------


async def test_a_kept_alive_connection_closed_by_the_server_is_replaced(serve: Serve) -> None:
    server, client = await serve([ok(b"a"), ok(b"b")], close_after={0})
    assert await get(client) == (200, b"a")
    await asyncio.sleep(0.05)  # the server's close reaches the idle connection
    assert await get(client) == (200, b"b")
    assert server.connections == 2


async def test_a_request_is_sent_again_when_a_reused_connection_closes_before_any_byte(
    serve: Serve,
) -> None:
    # The server takes the second request and closes without a byte of response: the idle
    # connection was dropped as the request went out. It is sent again on a new connection.
    server, client = await serve([ok(b"a"), CLOSE, ok(b"c")])
    assert await get(client) == (200, b"a")
    assert await get(client) == (200, b"c")
    assert len(server.requests) == 3 and server.connections == 2


async def test_a_post_whose_reused_connection_closes_before_any_byte_is_not_sent_again(
    serve: Serve,
) -> None:
    # The server may have taken the POST's packets before closing: a POST is not idempotent
    # (RFC 9112 9.3.1, engine.io-client never resends one), so it fails instead of going twice.
    server, client = await serve([ok(b"a"), CLOSE, ok()])
    assert await get(client) == (200, b"a")
    with pytest.raises(ConnectionError, match="before responding"):
        await client.request("POST", "&t=2", timeout=5, body=b"4hello")
    assert len(server.requests) == 2


async def test_abort_while_connecting_fails_the_request_without_sending_it(
    serve: Serve,
) -> None:
    server, client = await serve([HANG])
    task = asyncio.ensure_future(get(client, timeout=30))
    await asyncio.sleep(0)  # the request is opening its connection
    client.abort()
    with pytest.raises(ConnectionError, match="aborted"):
        await asyncio.wait_for(task, 10)  # a hang guard, far over what it takes
    assert not server.requests and not client._conns


async def test_a_fresh_connection_closed_before_any_byte_is_an_error(serve: Serve) -> None:
    server, client = await serve([CLOSE, ok()])
    with pytest.raises(ConnectionError, match="before responding"):
        await get(client)
    assert len(server.requests) == 1  # not sent again


async def test_a_response_cut_short_on_a_reused_connection_is_not_sent_again(
    serve: Serve,
) -> None:
    server, client = await serve(
        [ok(b"a"), b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", ok()], close_after={1}
    )
    assert await get(client) == (200, b"a")
    with pytest.raises(ConnectionError, match="after 3 of 10 body bytes"):
        await get(client)
    assert len(server.requests) == 2


async def test_a_chunked_body_cut_short_is_an_error(serve: Serve) -> None:
    server, client = await serve(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"], close_after={0}
    )
    with pytest.raises(ConnectionError, match="chunked body"):
        await get(client)


# -- malformed responses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "bad HTTP status line"),
        (b"HTTP/1.1 2xx OK\r\n\r\n", "bad HTTP status line"),
        (b"garbage\r\n\r\n", "bad HTTP status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad HTTP header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad HTTP Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad HTTP chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "bad HTTP chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "bad HTTP chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n", "Encoding"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
            "compressed",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    ],
)
async def test_a_malformed_response_is_a_protocol_error(
    serve: Serve, response: bytes, message: str
) -> None:
    server, client = await serve([response, ok()], close_after={0})
    with pytest.raises(ProtocolError, match=message):
        await get(client)
    assert await get(client) == (200, b"ok")  # the broken connection is not reused
    assert server.connections == 2


async def test_a_response_head_larger_than_the_limit_is_refused(serve: Serve) -> None:
    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_SIZE
    server, client = await serve([[huge[:1000], huge[1000:]]], close_after={0})
    with pytest.raises(ProtocolError, match="response head larger than"):
        await get(client)


async def test_an_error_raised_by_the_sink_ends_the_request_and_drops_the_connection(
    serve: Serve,
) -> None:
    server, client = await serve([ok(b"x" * 100), ok(b"y")])

    def sink(chunk: bytes) -> None:
        raise ProtocolError("refused by the sink")

    with pytest.raises(ProtocolError, match="refused by the sink"):
        await client.request("GET", "", timeout=5, sink=sink)
    assert await get(client) == (200, b"y")
    assert server.connections == 2


# -- timeouts and aborts -----------------------------------------------------------------------


async def test_a_request_over_its_timeout_fails_and_its_connection_is_closed(
    serve: Serve,
) -> None:
    server, client = await serve([HANG])
    with pytest.raises(asyncio.TimeoutError):
        await get(client, timeout=0.2)
    await until(lambda: server.eofs == 1)


async def test_abort_drops_every_connection_and_fails_the_request_in_flight(
    serve: Serve,
) -> None:
    server, client = await serve([ok(), HANG])
    assert await get(client) == (200, b"ok")  # an idle connection
    task = asyncio.ensure_future(get(client, timeout=30))
    while len(server.requests) < 2:
        await asyncio.sleep(0.01)
    client.abort()
    with pytest.raises(ConnectionError):
        await task
    assert not client._conns and not client._idle


async def test_a_cancelled_request_closes_its_connection(serve: Serve) -> None:
    server, client = await serve([HANG])
    task = asyncio.ensure_future(get(client, timeout=30))
    while not server.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client._conns
    await until(lambda: server.eofs == 1)


# -- cookies -----------------------------------------------------------------------------------


async def test_set_cookie_is_sent_back_on_later_requests(serve: Serve) -> None:
    server, client = await serve(
        [
            ok(
                b"a", b"Set-Cookie: AWSALB=node1; Path=/\r\nSet-Cookie: io=abc; Path=/socket.io\r\n"
            ),
            ok(b"b"),
            ok(b"c", b"Set-Cookie: AWSALB=node2; Path=/\r\n"),
            ok(b"d"),
        ]
    )
    await get(client)
    assert b"cookie:" not in server.requests[0].lower()
    await get(client)
    assert b"\r\nCookie: " in server.requests[1]
    cookie = server.requests[1].split(b"\r\nCookie: ")[1].split(b"\r\n")[0]
    assert sorted(cookie.split(b"; ")) == [b"AWSALB=node1", b"io=abc"]
    await get(client)
    await get(client)
    assert b"AWSALB=node2" in server.requests[3]
    assert client.cookie_header(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4") in (
        "AWSALB=node2; io=abc",
        "io=abc; AWSALB=node2",
    )


async def test_a_cookie_header_of_the_user_goes_with_the_servers_cookies(serve: Serve) -> None:
    server, client = await serve(
        [ok(b"a", b"Set-Cookie: lb=n1\r\n"), ok(b"b")], headers={"Cookie": "mine=1"}
    )
    await get(client)
    assert b"\r\nCookie: mine=1\r\n" in server.requests[0]
    await get(client)
    assert b"\r\nCookie: mine=1; lb=n1\r\n" in server.requests[1]


async def test_a_cookie_of_another_path_is_not_sent(serve: Serve) -> None:
    server, client = await serve([ok(b"a", b"Set-Cookie: other=1; Path=/elsewhere\r\n"), ok()])
    await get(client)
    await get(client)
    assert b"cookie:" not in server.requests[1].lower()


# -- hosts and the aiohttp path ----------------------------------------------------------------


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_an_ipv6_literal_host() -> None:
    server = await ScriptServer([ok(b"v6")]).start("::1")
    client = HTTP1Client(f"http://[::1]:{server.port}/socket.io/?EIO=4", {})
    try:
        assert await get(client) == (200, b"v6")
        assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.requests[0]
    finally:
        await client.close()
        await server.stop()


async def test_the_users_session_or_a_url_with_credentials_go_through_aiohttp() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        assert isinstance(make_poll_http("http://h/?EIO=4", {}, None, session), AiohttpClient)
    assert isinstance(make_poll_http("http://u:p@h/?EIO=4", {}, None), AiohttpClient)
    assert isinstance(make_poll_http("http://h/?EIO=4", {}, None), HTTP1Client)


async def test_the_aiohttp_path_makes_the_same_requests(serve: Serve) -> None:
    import aiohttp

    server, _ = await serve([ok(b"a\x1eb", b"Set-Cookie: lb=n1\r\n"), ok(b"c")])
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        client = AiohttpClient(
            f"http://127.0.0.1:{server.port}/socket.io/?EIO=4", {}, None, session
        )
        pieces: list[bytes] = []
        assert await client.request("GET", "&t=1", timeout=5, sink=pieces.append) == (200, b"")
        assert b"".join(pieces) == b"a\x1eb"
        assert await client.request("POST", "&t=2", timeout=5, body=b"42") == (200, b"")
        assert b"\r\nCookie: lb=n1\r\n" in server.requests[1]
        assert client.cookie_header(f"http://127.0.0.1:{server.port}/socket.io/") == "lb=n1"


async def test_a_connection_the_server_drops_at_once_is_a_connection_error() -> None:
    # Accepted, then reset before the request is written: uvloop refuses writes to the
    # closed handle (a RuntimeError), which must not escape as anything but a link error.
    server = await asyncio.start_server(lambda r, w: w.transport.abort(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HTTP1Client(f"http://127.0.0.1:{port}/socket.io/?EIO=4", {})
    try:
        for _ in range(5):
            with pytest.raises((ConnectionError, OSError)):
                await get(client)
    finally:
        await client.close()
        server.close()
