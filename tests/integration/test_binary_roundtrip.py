"""Bytes in = bytes out: binary arguments of every size class round-trip unchanged through a real
Node socket.io 4.8 server, on WebSocket and on long-polling (where binary travels as base64
records, fed to the core by ``feed_poll_record``), with JSON attachments and msgpack.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from support.aio import connected

import fastsio

pytestmark = pytest.mark.timeout(90)

SIZES = [0, 1, 2, 3, 255, 1024, 65535, 65536, 65537, 300_000]


def pattern(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_binary_arguments_come_back_byte_for_byte(
    node_server: Any, parser: str, transports: list[str]
) -> None:
    server = node_server(parser=parser)
    sio = fastsio.AsyncClient(
        reconnection=False, serializer="msgpack" if parser == "msgpack" else "default"
    )
    echoed: list[tuple[Any, ...]] = []
    sio.on("echo", lambda *args: echoed.append(args))
    async with connected(sio, server.url, transports=transports):
        assert sio.transport() == transports[0]
        sent = []
        for i, size in enumerate(SIZES):
            payload = (pattern(size, i), {"nested": [pattern(size // 3, i + 100)]}, size)
            sent.append(payload)
            assert await sio.call("ack", payload, timeout=20) == payload
            await sio.emit("echo", payload)
        deadline = asyncio.get_running_loop().time() + 20
        while len(echoed) < len(sent) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert echoed == sent
