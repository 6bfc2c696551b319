"""The HTTP requests of a polling session: the interface (``PollHTTP``), and which client makes
them (``make_poll_http``).

``HTTP1Client`` (``http1.py``) is fastsio's own keep-alive client, the default.
``AiohttpClient`` makes the same requests through an ``aiohttp.ClientSession``: the user's own
(``http_session=``, its proxy, auth and cookies honoured), or one of ours for a URL with
credentials in it.
"""

from __future__ import annotations

import ssl as _ssl
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .http1 import HTTP1Client, Sink, cookie_header_of

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpClient", "PollHTTP", "make_poll_http"]


class PollHTTP(Protocol):
    """The requests of one polling session, to ``<base URL><query>``."""

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
        """Make one request; ``(status, b"")`` for a 200 (its body went to ``sink``, or was
        dropped), else ``(status, <at most error_limit bytes of the body>)``."""
        ...

    def cookie_header(self, url: str) -> str | None:
        """The ``Cookie`` header a request to ``url`` would carry (for the WebSocket upgrade)."""
        ...

    def abort(self) -> None:
        """Drop every connection now (requests in flight fail)."""
        ...

    async def close(self) -> None: ...


def make_poll_http(
    url: str,
    headers: Mapping[str, str],
    ssl: _ssl.SSLContext | None,
    http_session: aiohttp.ClientSession | None = None,
) -> PollHTTP:
    """``HTTP1Client``, or ``AiohttpClient`` for the user's session or a URL with credentials."""
    if http_session is not None or "@" in urllib.parse.urlsplit(url).netloc:
        return AiohttpClient(url, headers, ssl, http_session)
    return HTTP1Client(url, headers, ssl)


# ------------------------------------------------------------------------------------------
# Through aiohttp
# ------------------------------------------------------------------------------------------


class AiohttpClient:
    """The same requests through an aiohttp ClientSession: the user's (``http_session=``), or
    one of ours for what ``HTTP1Client`` does not do (a URL with credentials)."""

    __slots__ = ("_url", "_headers", "_post_headers", "_ssl", "_session", "_own", "_timeouts")

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        ssl: _ssl.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = url
        self._headers = dict(headers)
        self._post_headers = {**self._headers, "Content-Type": "text/plain;charset=UTF-8"}
        self._ssl: _ssl.SSLContext | bool = ssl or True
        self._session = session
        self._own = session is None
        self._timeouts: dict[float, Any] = {}

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
        import aiohttp
        import yarl

        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession()
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        post = method == "POST"
        async with session.request(
            method,
            yarl.URL(self._url + query, encoded=True),
            headers=self._post_headers if post else self._headers,
            data=body if post else None,
            timeout=client_timeout,
            ssl=self._ssl,
        ) as resp:
            if resp.status != 200:
                return resp.status, await resp.content.read(error_limit)
            async for chunk in resp.content.iter_any():
                if sink is not None:
                    sink(chunk)
        return 200, b""

    def cookie_header(self, url: str) -> str | None:
        user = next((v for k, v in self._headers.items() if k.lower() == "cookie"), None)
        jar = self._session.cookie_jar if self._session is not None else None
        return cookie_header_of(jar, user, url)

    def abort(self) -> None:
        """Nothing to drop: cancelling a request releases its connection."""

    async def close(self) -> None:
        if self._own and self._session is not None:
            session, self._session = self._session, None
            await session.close()
