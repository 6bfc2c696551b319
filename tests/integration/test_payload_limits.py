"""Outgoing messages and the server's maxPayload, on both transports, against the Node peer.

A polling POST whose body exceeds maxPayload gets HTTP 413 from Node and kills the session, so
the client splits its uploads to fit; a binary message travels as base64 on polling and is
counted that way; a message that cannot fit even alone raises PayloadTooLargeError at emit time,
nothing is sent and the connection stays up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.aio import client

from fastsio.exceptions import PayloadTooLargeError

pytestmark = pytest.mark.timeout(60)

LIMIT = 100_000


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_four_300kb_emits_over_polling_all_arrive(node_server: Any, parser: str) -> None:
    # Default Node server: maxHttpBufferSize 1e6, so the four cannot share one POST.
    server = node_server(parser=parser)
    sio = client(parser)
    reasons: list[str] = []
    sio.on("disconnect", reasons.append)
    await sio.connect(server.url, transports=["polling"])
    payloads = [str(i) * 300_000 for i in range(4)]
    results = await asyncio.gather(*(sio.call("ack", p, timeout=20) for p in payloads))
    assert list(results) == payloads
    assert sio.connected and reasons == []
    await sio.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_an_emit_larger_than_max_payload_raises_and_the_connection_stays_up(
    node_server: Any, parser: str, transport: str
) -> None:
    server = node_server(parser=parser, max_payload=LIMIT)
    sio = client(parser)
    reasons: list[str] = []
    sio.on("disconnect", reasons.append)
    await sio.connect(server.url, transports=[transport])
    with pytest.raises(PayloadTooLargeError):
        await sio.emit("ack", "x" * (LIMIT + 1), callback=lambda *a: None)
    with pytest.raises(PayloadTooLargeError):
        await sio.call("ack", "x" * (LIMIT + 1))
    assert sio.stats()["pending_acks"] == 0  # nothing was registered for them
    assert await sio.call("ack", "small", timeout=10) == "small"
    assert sio.connected and reasons == []
    await sio.disconnect()


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_binary_is_counted_as_base64_on_polling(node_server: Any, parser: str) -> None:
    # 80 kB of binary is 106,668 bytes of base64: over the limit on polling, not on a WebSocket.
    server = node_server(parser=parser, max_payload=LIMIT)
    sio = client(parser)
    reasons: list[str] = []
    sio.on("disconnect", reasons.append)
    await sio.connect(server.url, transports=["polling"])
    assert sio.transport() == "polling"
    with pytest.raises(PayloadTooLargeError, match="base64"):
        await sio.call("ack", b"\x01" * 80_000, timeout=10)
    # Near the limit, but fits once encoded: it goes through, alone in its POST.
    near = bytes(range(256)) * 280  # 71,680 bytes -> 95,575 as a base64 record
    assert await sio.call("ack", near, timeout=10) == near
    assert sio.connected and reasons == []
    await sio.disconnect()


async def test_binary_near_the_limit_goes_over_websocket(node_server: Any) -> None:
    server = node_server(max_payload=LIMIT)
    sio = client()
    await sio.connect(server.url, transports=["websocket"])
    data = b"\x01" * 80_000
    assert await sio.call("ack", data, timeout=10) == data
    await sio.disconnect()


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_many_emits_near_the_limit_over_polling_arrive_in_order(
    node_server: Any, parser: str
) -> None:
    # Each POST is filled up to the limit and never beyond: 30 x 30 kB against 100 kB.
    server = node_server(parser=parser, max_payload=LIMIT)
    sio = client(parser)
    got: list[str] = []
    sio.on("echo", got.append)
    await sio.connect(server.url, transports=["polling"])
    payloads = [f"{i:03d}" + "y" * 30_000 for i in range(30)]
    for p in payloads:
        await sio.emit("echo", p)
    assert await sio.call("ack", "done", timeout=20) == "done"
    for _ in range(200):
        if len(got) == len(payloads):
            break
        await asyncio.sleep(0.05)
    assert got == payloads
    assert sio.connected
    await sio.disconnect()
