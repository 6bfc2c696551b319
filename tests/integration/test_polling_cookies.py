"""Cookies over polling: a server's Set-Cookie (a load balancer's sticky session) is sent back
on every later polling request and on the upgrade's WebSocket request, through fastsio's own
HTTP client and through the user's aiohttp session."""

from __future__ import annotations

from typing import Any

import pytest

import fastsio
from fastsio.testing import TestServer


class StickyServer(TestServer):
    """Sets ``lb=node1`` on its polling responses; records each request's Cookie header."""

    __test__ = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[str, str | None, str | None]] = []

    async def _handle(self, request: Any) -> Any:
        transport = request.query.get("transport")
        self.seen.append((request.method, transport, request.headers.get("Cookie")))
        response = await super()._handle(request)
        if transport == "polling":
            response.set_cookie("lb", "node1", path="/")
        return response


@pytest.mark.parametrize("own_session", [False, True])
async def test_a_sticky_session_cookie_goes_with_later_requests_and_the_upgrade(
    own_session: bool,
) -> None:
    import aiohttp

    server = StickyServer()
    server.on("add", lambda sid, a, b: a + b)
    await server.start()
    session = (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) if own_session else None
    )
    sio = fastsio.AsyncClient(reconnection=False, http_session=session)
    try:
        await sio.connect(server.url, transports=["polling", "websocket"], headers={"X-A": "1"})
        assert await sio.call("add", (1, 2), timeout=10) == 3
        for _ in range(200):
            if sio.transport() == "websocket":
                break
            await fastsio.AsyncClient().sleep(0.02)
        assert sio.transport() == "websocket"
    finally:
        await sio.disconnect()
        await server.stop()
        if session is not None:
            await session.close()
    first, *later = server.seen
    assert first == ("GET", "polling", None)
    assert later and all(cookie == "lb=node1" for _, _, cookie in later), server.seen
    assert any(transport == "websocket" for _, transport, _ in later)
