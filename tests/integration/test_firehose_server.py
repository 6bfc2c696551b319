"""fastsio.testing.FirehoseServer: the benchmark server, driven by fastsio's AsyncClient.

It shares its codec and Engine.IO session layer with TestServer (test_testing_server.py); these
tests pin what is its own: the stream and its ``done`` event, the ack echo, the namespace option,
the stop, TLS and its counters.
"""

from __future__ import annotations

import pytest
from support.aio import EventLog, client, connected, log_events, until
from support.tls import tls_contexts

import fastsio
from fastsio.testing import FirehoseServer

pytestmark = pytest.mark.timeout(60)

SERIALIZERS = ["json", "msgpack"]


def stream_log(sio: fastsio.AsyncClient, namespace: str = "/") -> EventLog:
    return log_events(sio, "tick", "done", "disconnect", namespace=namespace)


@pytest.mark.parametrize("serializer", SERIALIZERS)
async def test_streams_count_events_then_done(serializer: str) -> None:
    count = 25_000  # several blobs of pre-encoded frames and a partial one
    async with FirehoseServer(count, serializer, payload={"p": 1.5, "b": [1, None]}) as server:
        sio = client(serializer)
        log = stream_log(sio)
        async with connected(sio, server.url, transports=["websocket"]):
            assert await log.wait("done", timeout=30) == [(count,)]
            assert log.count("tick") == count
            assert all(args == ({"p": 1.5, "b": [1, None]},) for args in log.events["tick"])
            assert server.stats.events_sent == count
            assert server.stats.streams_completed == 1
            assert server.stats.namespaces_connected == 1
        await until(lambda: server.stats.active == 0, what="the connection closed")
        assert server.stats.connections == 1


@pytest.mark.parametrize("serializer", SERIALIZERS)
async def test_ack_echo_returns_the_event_arguments(serializer: str) -> None:
    async with FirehoseServer(0, serializer, ack_echo=True) as server:
        sio = client(serializer)
        async with connected(sio, server.url, transports=["websocket"]):
            assert await sio.call("echo", (1, "a", {"k": [True]}), timeout=5) == (
                1,
                "a",
                {"k": [True]},
            )
            assert await sio.call("echo", {"bin": b"\x00\xff", "n": 2}, timeout=5) == {
                "bin": b"\x00\xff",
                "n": 2,
            }
            assert await sio.call("echo", timeout=5) is None
            await sio.emit("no_ack", 1)
            await until(lambda: server.stats.events_received == 4, what="4 events")
            assert server.stats.acks_sent == 3


async def test_streams_only_on_the_chosen_namespace() -> None:
    async with FirehoseServer(100, namespace="/feed") as server:
        sio = client("json")
        root, feed = stream_log(sio, "/"), stream_log(sio, "/feed")
        async with connected(sio, server.url, transports=["websocket"], namespaces=["/", "/feed"]):
            assert await feed.wait("done", timeout=10) == [(100,)]
            assert feed.count("tick") == 100
            assert root.count("tick") == 0 and root.count("done") == 0
            assert server.stats.namespaces_connected == 2


async def test_pre_encoded_packet_is_streamed_verbatim() -> None:
    async with FirehoseServer(50, packet=b'42["quote",7]') as server:
        sio = client("json")
        log = EventLog()
        sio.on("quote", log.handler("quote"))
        sio.on("done", log.handler("done"))
        async with connected(sio, server.url, transports=["websocket"]):
            assert await log.wait("done", timeout=10) == [(50,)]
            assert log.events["quote"] == [(7,)] * 50


async def test_stop_disconnects_clients_without_a_reconnection() -> None:
    server = FirehoseServer(0)
    await server.start()
    sio = client("json", reconnection=True)
    log = stream_log(sio)
    await sio.connect(server.url, transports=["websocket"])
    await server.stop()
    assert await log.wait("disconnect", timeout=10) == [("io server disconnect",)]
    assert not sio.connected


async def test_refuses_polling_and_an_other_protocol_version() -> None:
    import aiohttp

    async with FirehoseServer(0) as server, aiohttp.ClientSession() as http:
        for query, code in (("EIO=4&transport=polling", 0), ("EIO=3&transport=websocket", 5)):
            async with http.get(f"{server.url}/socket.io/?{query}") as response:
                assert response.status == 400
                assert (await response.json())["code"] == code


async def test_serves_tls() -> None:
    server_ctx, client_ctx = tls_contexts()
    server = FirehoseServer(10)
    await server.start(ssl_context=server_ctx)
    sio = client("json", ssl_context=client_ctx)
    log = stream_log(sio)
    try:
        assert server.url.startswith("https://")
        await sio.connect(server.url, transports=["websocket"])
        assert await log.wait("done", timeout=10) == [(10,)]
        assert log.count("tick") == 10
    finally:
        await sio.disconnect()
        await server.stop()
