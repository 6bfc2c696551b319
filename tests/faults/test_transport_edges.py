"""Transport edge cases found by a hostile review of the polling and upgrade paths.

Poll bodies fed as they are read (packets before a bad one dispatched; no cap on a whole body
of legitimate packets), the polling -> websocket upgrade with a dying probe, with backpressure,
with disconnect() during its flush, and picows framing errors reported as parse errors.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import pytest
from support.aio import until
from support.hostile import HostilePollingServer, HostileServer, ws_header

import fastsio
from fastsio.testing import TestServer

pytestmark = pytest.mark.timeout(90)


# -- disconnect() during the upgrade's flush sends a POST while another is in flight.

async def test_no_overlapping_posts_when_disconnecting_during_upgrade() -> None:
    server = TestServer()
    if True:
        inflight = 0
        peak = 0
        orig = server._handle

        async def handle(request: Any) -> Any:
            nonlocal inflight, peak
            if request.method != "POST":
                return await orig(request)
            inflight += 1
            peak = max(peak, inflight)
            try:
                return await orig(request)
            finally:
                inflight -= 1

        server._handle = handle  # type: ignore[method-assign]
        await server.start()
        server.delay_posts(0.5)
        sio = fastsio.AsyncClient(reconnection=False)
        await sio.connect(server.url, transports=["polling", "websocket"], wait=False)
        await until(lambda: any(s.upgrading for s in server._sessions.values()), 5, "probe")
        await sio.disconnect()  # the upgrade task is waiting for the CONNECT POST
        await asyncio.sleep(1.5)
        # Node's engine.io answers an overlapping POST with 400 and closes the session.
        await server.stop()
        assert peak <= 1, f"{peak} POSTs in flight at once"


# -- packets of one poll body before a refused packet are never dispatched.

BIG = b'42["ok","' + b"z" * 10_000 + b'"]'


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("bad", ["too_large", "protocol_error"])
async def test_packets_before_a_refused_one_are_dispatched(transport: str, bad: str) -> None:
    badpkt = BIG if bad == "too_large" else b"9junk"
    if transport == "polling":
        # one poll response: two good packets, then the bad one
        server: Any = HostilePollingServer(script=[b'42["ok",1]\x1e42["ok",2]\x1e' + badpkt])
    else:
        server = HostileServer(script=[b'42["ok",1]', b'42["ok",2]', badpkt])
    async with server:
        sio = fastsio.AsyncClient(reconnection=False, max_message_size=1000)
        oks: list[Any] = []
        reasons: list[tuple[str, int]] = []
        sio.on("ok", lambda *a: oks.append(a[0]))
        sio.on("disconnect", lambda reason: reasons.append((reason, len(oks))))
        await sio.connect(server.url, transports=[transport])
        await until(lambda: reasons, timeout=10)
        await sio.disconnect()
        assert reasons == [("parse error", 2)], (reasons, oks)
        assert oks == [1, 2]


# -- a legitimate poll response (one Node flush of many small packets) is refused.

@pytest.mark.parametrize("n,max_message_size", [(100_000, 65536), (150_000, 100 * 1024 * 1024)])
async def test_burst_over_polling_all_arrive(node_server: Any, n: int, max_message_size: int) -> None:
    server = node_server()
    sio = fastsio.AsyncClient(reconnection=False, max_message_size=max_message_size)
    ticks: list[int] = []
    reasons: list[str] = []
    sio.on("tick", ticks.append)
    sio.on("disconnect", reasons.append)
    await sio.connect(server.url, transports=["polling"])
    await sio.emit("burst", n)  # Node emits n small ticks at once: one poll response carries them
    try:
        await until(lambda: len(ticks) >= n or reasons, 30, "ticks or a disconnect")
        assert reasons == [] and len(ticks) == n, (reasons[:1], len(ticks))
    finally:
        await sio.disconnect()


# -- picows protocol errors other than 1009 leave disconnected_future's exception unretrieved.

@pytest.mark.parametrize("raw", [
    ws_header(3, 2) + b"xx",            # reserved opcode
    bytes([0x80 | 0x40 | 1, 2]) + b"ab",  # RSV1 set without an extension
    ws_header(9, 200, fin=True) + b"p" * 200,  # control frame > 125 bytes
    ws_header(0, 2) + b"xx",            # continuation without a first fragment (picows?)
])
async def test_no_unretrieved_exception(raw: bytes, caplog: Any) -> None:
    async with HostileServer(script=[b'42["ok",1]', ("raw", raw)],
                             script_after=[b'42["ok",2]']) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.05)
        oks: list[Any] = []
        reasons: list[str] = []
        sio.on("ok", lambda a: oks.append(a))
        sio.on("disconnect", lambda r: reasons.append(r))
        with caplog.at_level(logging.DEBUG):
            await sio.connect(server.url, transports=["websocket"])
            await until(lambda: reasons, timeout=10)
            await asyncio.sleep(0.2)
            await sio.disconnect()
            await asyncio.sleep(0.1)
            gc.collect()
            await asyncio.sleep(0.1)
        bad = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
        print(reasons, oks, [r.getMessage()[:120] for r in caplog.records if r.levelno >= logging.WARNING])
        assert not bad, bad[:1]


# -- a probe WebSocket closed after 3probe, before 5, is still attached.

async def test_probe_closed_during_upgrade_flush_is_not_attached(caplog: Any) -> None:
    async with TestServer(ping_interval=5, ping_timeout=5) as server:
        server.delay_posts(1.0)  # the upgrade waits for the in-flight POST (the CONNECT)
        sio = fastsio.AsyncClient(reconnection=False, logger=True)
        reasons: list[str] = []
        sio.on("disconnect", lambda r: reasons.append(r))
        with caplog.at_level(logging.INFO, logger="fastsio"):
            task = asyncio.ensure_future(
                sio.connect(server.url, transports=["polling", "websocket"], wait_timeout=15))
            await until(lambda: any(s.upgrading and s.probe_raw is not None
                                    for s in server._sessions.values()), 5, "the probe")
            sess = next(iter(server._sessions.values()))
            sess.probe_raw.close()  # server-side: the probe dies before '5'
            t0 = time.monotonic()
            try:
                await task
                outcome = "connected"
            except fastsio.exceptions.ConnectionError as exc:
                outcome = f"failed: {exc}"
            took = time.monotonic() - t0
        upgraded = [r.getMessage() for r in caplog.records if "Upgraded" in r.getMessage()]
        await sio.disconnect()
        # A dead probe must not become the session's transport: stay on polling (connected
        # at once, as the server keeps the session on polling) or fail promptly.
        assert not upgraded, (upgraded, outcome, round(took, 1))
        assert outcome == "connected" and took < 3, (outcome, round(took, 1))


# -- reading paused (backpressure) on polling; the upgrade attaches an unpaused WebSocket.

async def test_backpressure_survives_the_upgrade() -> None:
    N = 100_000
    async with TestServer() as server:
        server.delay_posts(0.5)
        sio = fastsio.AsyncClient(reconnection=False)
        got: list[int] = []
        sio.on("tick", lambda d: got.append(d))
        await sio.connect(server.url, transports=["polling", "websocket"], wait=False)
        await until(lambda: any(s.upgrading for s in server._sessions.values()), 5, "probe")
        sio.eio.pause_reading()  # what HandlerTable/handler_thread do when handlers fall behind
        await until(lambda: sio.transport() == "websocket", 5, "upgrade")
        await until(lambda: server.sids(), 5, "socket")
        sent = await server.firehose(server.sids()[0], N, "tick", 1)
        await asyncio.sleep(0.5)
        held = sio._conn.held
        sio.eio.resume_reading()
        await until(lambda: len(got) >= sent, 20, "all ticks")
        await sio.disconnect()
        # WebSocket paused: at most about one read (256 KiB) is held
        assert held < 20_000, f"{held} frames held while reading was paused"


# -- backpressure longer than request_timeout while the upgrade waits for the poll loop.

async def test_paused_reading_during_the_upgrade_does_not_kill_the_session() -> None:
    async with TestServer() as server:
        sio = fastsio.AsyncClient(reconnection=False, request_timeout=1, logger=True)
        reasons: list[str] = []
        sio.on("disconnect", reasons.append)
        # handlers fall behind right at the start (max_pending_handlers / handler_thread queue)
        sio.on("connect", lambda: sio.eio.pause_reading())
        await sio.connect(server.url, transports=["polling", "websocket"])
        await asyncio.sleep(2.5)  # > request_timeout
        alive = sio.eio is not None and sio.eio.state == "connected"
        assert alive and reasons == [], reasons
        sio.eio and sio.eio.resume_reading()
        await asyncio.sleep(0.5)
        await sio.disconnect()
