"""A hostile server: every malformed input is a logged protocol error, a clean disconnect with
reason "parse error" and the normal reconnection — never a crash, a hang, or a handler called
with corrupted data."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from support.aio import until
from support.hostile import HostileServer

import fastsio
from fastsio import exceptions

pytestmark = pytest.mark.timeout(60)

GOOD = b'42["ok",1]'

MALFORMED: dict[str, list[Any]] = {
    "truncated_json": [b'42["ok",{"a":'],
    "invalid_json": [b"42[ok]"],
    "unknown_eio_type": [b"9hello"],
    "unknown_sio_type": [b"49[\"x\"]"],
    "namespace_without_comma": [b'42/chat["ok",1]'],
    "ack_id_overflow": [b"43123456789012345678901234567890[1]"],
    "attachments_1e9": [b'451000000000-["ok",{"_placeholder":true,"num":0}]'],
    "placeholder_out_of_range": [b'451-["ok",{"_placeholder":true,"num":5}]', ("binary", b"x")],
    "placeholder_duplicated": [
        b'452-["ok",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]',
        ("binary", b"x"), ("binary", b"y")],
    "binary_without_packet": [("binary", b"\x00\x01")],
    "invalid_utf8": [b'42["ok","\xff\xfe"]'],
    "empty_frame": [b""],
    "deep_json": [b"42" + b'["ok",' + b"[" * 100_000 + b"]" * 100_000 + b"]"],
    "event_not_a_list": [b'42{"ok":1}'],
    "event_name_not_a_string_or_number": [b"42[true,2]"],
    "text_while_attachments_expected": [b'451-["ok",{"_placeholder":true,"num":0}]', GOOD],
}


def watch(sio: fastsio.AsyncClient) -> tuple[list[Any], list[str]]:
    """What ``sio`` sees: the arguments of each ``ok`` event, and each disconnect reason."""
    oks: list[Any] = []
    reasons: list[str] = []
    sio.on("ok", lambda *a: oks.append(a))
    sio.on("disconnect", lambda reason: reasons.append(reason))
    return oks, reasons


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_packet_is_parse_error_then_reconnect(case: str) -> None:
    async with HostileServer(script=MALFORMED[case], script_after=[GOOD]) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1)
        oks, reasons = watch(sio)
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks, timeout=5)  # the second session's good event
        assert reasons == ["parse error"]
        assert oks == [(1,)]  # no handler ever saw the corrupted packet
        assert sio.connected
        await sio.disconnect()


@pytest.mark.parametrize(
    "open_packet",
    [
        b"0{}",
        b"0not json",
        b'0{"sid":"x","upgrades":[],"pingInterval":0,"pingTimeout":20000}',
        b'0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":-1}',
        b'0{"sid":"x","upgrades":[],"pingInterval":1e99,"pingTimeout":5}',
        b'0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":5}',
        b'0{"sid":7,"upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
        b'0{"sid":"x","upgrades":"websocket","pingInterval":25000,"pingTimeout":20000}',
        b'0[]',
    ],
)
async def test_bad_open_packet_fails_connect_clearly(open_packet: bytes) -> None:
    async with HostileServer(open_packet=open_packet) as server:
        sio = fastsio.AsyncClient(reconnection=False, request_timeout=2)
        with pytest.raises(exceptions.ConnectionError):
            await sio.connect(server.url, transports=["websocket"])
        assert not sio.connected


async def test_bad_open_packet_then_good_server_with_retry() -> None:
    async with HostileServer(open_packet=b"0{}", script_after=[GOOD]) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1)
        oks, _ = watch(sio)
        await sio.connect(server.url, transports=["websocket"], retry=True)
        await until(lambda: oks)
        await sio.disconnect()


async def test_message_over_max_message_size_is_a_parse_error() -> None:
    big = b'42["ok","' + b"x" * 100_000 + b'"]'
    async with HostileServer(script=[big], script_after=[GOOD]) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, max_message_size=10_000)
        oks, reasons = watch(sio)
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks)
        assert reasons == ["parse error"] and oks == [(1,)]
        await sio.disconnect()


async def test_too_many_attachments_over_the_limit() -> None:
    header = b'4511-["ok"' + b"".join(
        b',{"_placeholder":true,"num":%d}' % i for i in range(11)) + b"]"
    async with HostileServer(script=[header], script_after=[GOOD]) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.05, max_attachments=10)
        oks, reasons = watch(sio)
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks)
        assert reasons == ["parse error"]
        await sio.disconnect()


async def test_max_pending_acks_is_enforced() -> None:
    async with HostileServer() as server:
        sio = fastsio.AsyncClient(reconnection=False, max_pending_acks=5)
        await sio.connect(server.url, transports=["websocket"])
        for _ in range(5):
            await sio.emit("x", callback=lambda *a: None)
        with pytest.raises(exceptions.BufferFullError):
            await sio.emit("x", callback=lambda *a: None)
        assert sio.stats()["pending_acks"] == 5
        await sio.disconnect()


async def test_unknown_ack_and_unknown_namespace_are_ignored_not_fatal() -> None:
    script: list[Any] = [b"4399[1]", b'42/other,["ok",2]', GOOD]
    async with HostileServer(script=script) as server:
        sio = fastsio.AsyncClient(reconnection=False)
        oks, _ = watch(sio)
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks)
        assert oks == [(1,)] and sio.connected
        await sio.disconnect()


async def test_msgpack_wrong_types_are_parse_errors() -> None:
    import msgpack

    bad = [("binary", msgpack.packb({"type": "2", "nsp": "/", "data": ["ok"]})),
           ("binary", b"\xc1"),  # never-used msgpack byte
           ("binary", msgpack.packb([1, 2, 3]))]
    good = ("binary", msgpack.packb({"type": 2, "nsp": "/", "data": ["ok", 1]}))
    for item in bad:
        async with HostileServer(script=[item], script_after=[good]) as server:
            sio = fastsio.AsyncClient(reconnection_delay=0.05, serializer="msgpack")
            oks, reasons = watch(sio)
            await sio.connect(server.url, transports=["websocket"])
            await until(lambda oks=oks: oks, timeout=5)
            assert reasons == ["parse error"] and oks == [(1,)]
            await sio.disconnect()


def test_open_packet_fields_are_validated_directly() -> None:
    from fastsio.handshake import OpenPacket

    ok = OpenPacket(orjson.dumps({"sid": "a", "upgrades": ["websocket"], "pingInterval": 1,
                                  "pingTimeout": 1, "maxPayload": 100000}))
    assert ok.sid == "a" and ok.max_payload == 100000
    with pytest.raises(exceptions.ProtocolError):
        OpenPacket(orjson.dumps({"sid": "a", "upgrades": [], "pingInterval": 10**12,
                                 "pingTimeout": 1}))


async def test_client_survives_many_hostile_sessions_without_leaking_tasks() -> None:
    async with HostileServer(script=[b"42[oops"], script_after=[b"42[oops"]) as server:
        sio = fastsio.AsyncClient(reconnection_delay=0.01, reconnection_delay_max=0.01)
        reasons: list[str] = []
        sio.on("disconnect", lambda reason: reasons.append(reason))
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: len(reasons) >= 30, timeout=20)
        await sio.disconnect()
        assert set(reasons) == {"parse error"}
        await asyncio.sleep(0.1)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert len(leftover) <= 2, leftover
