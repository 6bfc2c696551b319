"""TLS: certificates verified by default, custom CA and client certificates, ssl_verify=False.

A TLS-terminating proxy with a test CA made by trustme sits in front of the Node peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from support.aio import close_server, connected

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(60)


class TLSProxy:
    def __init__(self, backend_port: int, server_ctx: ssl.SSLContext) -> None:
        self.backend_port = backend_port
        self.server_ctx = server_ctx
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0  # TLS connections accepted

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0,
                                                 ssl=self.server_ctx)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        for coro in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        await close_server(self.server, self.tasks)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.asynccontextmanager
async def tls_front(node_server: Any, ca: trustme.CA,
                    require_client_cert: bool = False) -> AsyncIterator[TLSProxy]:
    server = node_server()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    if require_client_cert:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(server_ctx)
    proxy = TLSProxy(server.port, server_ctx)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_custom_ca_over_each_transport(
    node_server: Any, ca: trustme.CA, transports: list[str]
) -> None:
    async with tls_front(node_server, ca) as proxy:
        sio = fastsio.AsyncClient(reconnection=False, ssl_context=client_ctx(ca))
        async with connected(sio, f"https://127.0.0.1:{proxy.port}", transports=transports):
            assert await sio.call("ack", "secure", timeout=5) == "secure"


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_unknown_ca_is_refused_by_default(
    node_server: Any, ca: trustme.CA, transports: list[str]
) -> None:
    async with tls_front(node_server, ca) as proxy:
        sio = fastsio.AsyncClient(reconnection=False)
        with pytest.raises(exceptions.ConnectionError):
            await sio.connect(f"https://127.0.0.1:{proxy.port}", transports=transports)


async def test_ssl_verify_false_connects_and_warns(
    node_server: Any, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    async with tls_front(node_server, ca) as proxy:
        sio = fastsio.AsyncClient(reconnection=False, ssl_verify=False)
        assert "ssl_verify=False" in caplog.text
        for transports in (["websocket"], ["polling"]):
            await sio.connect(f"wss://127.0.0.1:{proxy.port}", transports=transports)
            assert await sio.call("ack", 1, timeout=5) == 1
            await sio.disconnect()


@pytest.mark.parametrize("verify", [True, False])
async def test_polling_over_tls_keeps_its_connections(
    node_server: Any, ca: trustme.CA, verify: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One SSL context for the session's requests: aiohttp pools connections by it, so a new
    # context per request would mean a TLS handshake per GET and POST.
    if verify:  # the default context (the system's CA store), made to trust the test CA
        original = ssl.create_default_context

        def trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
            ctx = original(*args, **kwargs)
            ca.configure_trust(ctx)
            return ctx

        monkeypatch.setattr(ssl, "create_default_context", trusting)
    async with tls_front(node_server, ca) as proxy:
        sio = fastsio.AsyncClient(reconnection=False, ssl_verify=verify)
        await sio.connect(f"https://127.0.0.1:{proxy.port}", transports=["polling"])
        try:
            for i in range(20):  # 20 POSTs, and the GETs that bring the acks
                assert await sio.call("ack", i, timeout=5) == i
        finally:
            await sio.disconnect()
        assert proxy.accepted <= 4


async def test_client_certificate(node_server: Any, ca: trustme.CA) -> None:
    async with tls_front(node_server, ca, require_client_cert=True) as proxy:
        url = f"https://127.0.0.1:{proxy.port}"
        without = fastsio.AsyncClient(reconnection=False, ssl_context=client_ctx(ca))
        with pytest.raises(exceptions.ConnectionError):
            await without.connect(url, transports=["websocket"])
        ctx = client_ctx(ca)
        ca.issue_cert("client@example.org").configure_cert(ctx)
        sio = fastsio.AsyncClient(reconnection=False, ssl_context=ctx)
        async with connected(sio, url, transports=["websocket"]):
            assert await sio.call("ack", "mtls", timeout=5) == "mtls"


async def test_auth_and_headers_never_logged(
    node_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False, logger=True)
    await sio.connect(server.url, auth={"token": "s3cr3t-auth"},
                      headers={"Authorization": "Bearer s3cr3t-header"})
    await sio.call("ack", 1, timeout=5)
    await sio.disconnect()
    assert "s3cr3t-auth" not in caplog.text
    assert "s3cr3t-header" not in caplog.text
