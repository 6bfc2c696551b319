"""Heartbeats and reconnection against real servers, through a fault-injecting proxy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from support.aio import until

import fastsio

pytestmark = pytest.mark.timeout(60)


def recording_client(**kwargs: Any) -> tuple[fastsio.AsyncClient, dict[str, list[Any]]]:
    sio = fastsio.AsyncClient(**kwargs)
    log: dict[str, list[Any]] = {"connect": [], "disconnect": [], "reconnect": [],
                                 "reconnect_attempt": [], "reconnect_failed": []}
    sio.on("connect", lambda: log["connect"].append(time.monotonic()))
    sio.on("disconnect", lambda reason: log["disconnect"].append(reason))
    sio.on("reconnect", lambda n: log["reconnect"].append(n))
    sio.on("reconnect_attempt", lambda n: log["reconnect_attempt"].append(n))
    sio.on("reconnect_failed", lambda: log["reconnect_failed"].append(True))
    return sio, log


async def test_pings_are_answered_and_link_stays_up(node_server: Any) -> None:
    server = node_server(ping_interval=100, ping_timeout=200)
    sio, log = recording_client(reconnection=False)
    await sio.connect(server.url, transports=["websocket"])
    await asyncio.sleep(1.0)  # ten ping rounds: a missing pong would have closed the link
    assert sio.connected and log["disconnect"] == []
    assert await sio.call("ack", 1, timeout=5) == 1
    await sio.disconnect()


async def test_pings_answered_on_polling(node_server: Any) -> None:
    server = node_server(ping_interval=100, ping_timeout=200)
    sio, log = recording_client(reconnection=False)
    await sio.connect(server.url, transports=["polling"])
    await asyncio.sleep(1.0)
    assert sio.connected and log["disconnect"] == []
    await sio.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_frozen_link_detected_by_ping_timeout_then_reconnects(
    proxied_node: Any, transports: list[str]
) -> None:
    server, proxy = await proxied_node(ping_interval=200, ping_timeout=200)
    sio, log = recording_client(reconnection_delay=0.05, reconnection_delay_max=0.2)
    await sio.connect(proxy.url, transports=transports)
    proxy.freeze()
    frozen_at = time.monotonic()
    await until(lambda: log["disconnect"], timeout=5)
    detected = time.monotonic() - frozen_at
    assert log["disconnect"] == ["ping timeout"]
    # pingInterval + pingTimeout (0.4 s) plus the margin: well under two seconds.
    assert detected < 2.0
    proxy.heal()
    await until(lambda: sio.connected and log["reconnect"], timeout=10)
    assert await sio.call("ack", "back", timeout=5) == "back"
    await sio.disconnect()


async def test_cut_link_reconnects_with_transport_close(proxied_node: Any) -> None:
    server, proxy = await proxied_node()
    sio, log = recording_client(reconnection_delay=0.05, reconnection_delay_max=0.1)
    await sio.connect(proxy.url)
    old_sid = sio.get_sid()
    proxy.cut()
    await until(lambda: log["reconnect"], timeout=10)
    assert log["disconnect"] == ["transport close"]
    assert sio.connected and sio.get_sid() != old_sid
    assert await sio.call("ack", 1, timeout=5) == 1
    await sio.disconnect()


async def test_server_restart_on_same_port_reconnects(node_server: Any) -> None:
    server = node_server()
    sio, log = recording_client(reconnection_delay=0.1, reconnection_delay_max=0.3)
    await sio.connect(server.url)
    await server.akill()
    await until(lambda: log["disconnect"], timeout=5)
    await server.arestart()
    await until(lambda: log["reconnect"], timeout=15)
    assert sio.connected
    assert await sio.call("ack", "again", timeout=5) == "again"
    await sio.disconnect()


async def test_server_closing_transport_triggers_reconnect(node_server: Any) -> None:
    server = node_server()
    sio, log = recording_client(reconnection_delay=0.05, reconnection_delay_max=0.1)
    await sio.connect(server.url)
    await sio.emit("close_transport")
    await until(lambda: log["reconnect"], timeout=10)
    assert log["disconnect"] == ["transport close"]
    await sio.disconnect()


async def cut_after_connect(
    proxied_node: Any, refuse: bool = False, **kwargs: Any
) -> tuple[fastsio.AsyncClient, dict[str, list[Any]]]:
    """A ``recording_client(**kwargs)`` connected through a fault proxy whose link is then cut
    (``refuse``: and every new connection refused)."""
    server, proxy = await proxied_node()
    sio, log = recording_client(**kwargs)
    await sio.connect(proxy.url)
    proxy.refuse(refuse)
    proxy.cut()
    return sio, log


async def test_reconnection_disabled_stays_down(proxied_node: Any) -> None:
    sio, log = await cut_after_connect(proxied_node, reconnection=False)
    await asyncio.wait_for(sio.wait(), 5)
    await asyncio.sleep(0.3)
    assert log["disconnect"] == ["transport close"] and log["reconnect_attempt"] == []
    assert not sio.connected


async def test_reconnection_attempts_exhausted_is_reported(proxied_node: Any) -> None:
    sio, log = await cut_after_connect(proxied_node, refuse=True, reconnection_attempts=3,
                                       reconnection_delay=0.05, reconnection_delay_max=0.1)
    await asyncio.wait_for(sio.wait(), 10)  # wait() returns once attempts are exhausted
    assert log["reconnect_attempt"] == [1, 2, 3]
    assert log["reconnect_failed"] == [True]
    assert not sio.connected


async def test_disconnect_cancels_reconnect_loop(proxied_node: Any) -> None:
    sio, log = await cut_after_connect(proxied_node, reconnection_delay=5,
                                       reconnection_delay_max=5, randomization_factor=0)
    await until(lambda: log["disconnect"])
    t0 = time.monotonic()
    await sio.disconnect()
    await asyncio.wait_for(sio.wait(), 2)
    assert time.monotonic() - t0 < 1
    assert log["reconnect"] == []


async def test_connect_retry_waits_for_server_and_can_be_cancelled(unused_tcp_port: int) -> None:
    sio, log = recording_client(reconnection_delay=0.05, reconnection_delay_max=0.1)
    task = asyncio.ensure_future(
        sio.connect(f"http://127.0.0.1:{unused_tcp_port}", retry=True))
    await until(lambda: len(log["reconnect_attempt"]) >= 2, timeout=5)
    await sio.disconnect()
    with pytest.raises(fastsio.exceptions.ConnectionError):
        await asyncio.wait_for(task, 2)
    assert not sio.connected
