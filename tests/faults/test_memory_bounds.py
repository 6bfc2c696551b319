"""Memory bounds against a hostile server: a message over ``max_message_size`` is refused when
its size is announced (a WebSocket frame header, a poll response's Content-Length) or reached
(fragments, a poll body read in chunks), before the bytes pile up in the client.

Each refusal is one logged error line, a disconnect with reason ``'parse error'`` and the
reconnection policy - never a traceback, a hang, or memory growing with what the server sends.
The peak-RSS checks run the client in a subprocess (VmHWM from /proc/self/status).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.aio import connected, until
from support.hostile import HostilePollingServer, HostileServer, ws_header

import fastsio
from fastsio._ext._core import DEFAULT_MAX_MESSAGE_SIZE

pytestmark = pytest.mark.timeout(120)

GOOD = b'42["ok",1]'
MiB = 1024 * 1024
TEXT, BINARY, CONTINUATION = 1, 2, 0


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _refused_then_reconnects(
    server: HostileServer | HostilePollingServer,
    transport: str,
    caplog: pytest.LogCaptureFixture,
    **options: Any,
) -> str:
    """Connect, expect one parse error, then the good event of the next session; returns the
    logged error line."""
    sio = fastsio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1, **options)
    oks: list[Any] = []
    reasons: list[str] = []
    sio.on("ok", lambda *a: oks.append(a))
    sio.on("disconnect", lambda reason: reasons.append(reason))
    with caplog.at_level(logging.INFO):
        async with connected(sio, server.url, transports=[transport]):
            await until(lambda: oks, timeout=20)
            assert reasons == ["parse error"]
            assert oks == [(1,)]  # nothing of the refused message reached a handler
            assert sio.connected and server.connections == 2
    errors = _errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None  # a line, not a traceback
    return errors[0].getMessage()


# -- WebSocket ----------------------------------------------------------------------------------


async def test_frame_announcing_more_than_the_limit_is_refused_at_its_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = itertools.repeat(b"x" * (256 * 1024), 256)  # 64 MiB, sent only as it is read
    script: list[Any] = [("raw", ws_header(TEXT, 1 << 30) + b'42["ok","'), ("stream", payload)]
    async with HostileServer(script=script, script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(
            server, "websocket", caplog, max_message_size=MiB)
        assert "incoming message of 1073741824 bytes exceeds max_message_size" in line
        assert "AsyncClient(max_message_size=...)" in line
        # The client stopped reading at the header: what went out is what the kernel buffers.
        assert server.streamed < 32 * MiB


async def test_default_limit_refuses_a_frame_announced_over_100_mib(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert fastsio.AsyncClient().max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 100 * MiB
    # Only the header is sent: the refusal cannot have waited for the payload.
    script: list[Any] = [("raw", ws_header(TEXT, 100 * MiB + 1) + b"42")]
    async with HostileServer(script=script, script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(server, "websocket", caplog)
        assert f"{100 * MiB + 1} bytes exceeds max_message_size ({100 * MiB} bytes)" in line


async def test_message_of_exactly_the_limit_is_accepted() -> None:
    event = b'42["ok","' + b"x" * 1000 + b'"]'
    async with HostileServer(script=[event]) as server:
        sio = fastsio.AsyncClient(reconnection=False, max_message_size=len(event))
        oks: list[Any] = []
        sio.on("ok", lambda *a: oks.append(a))
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks)
        assert oks == [("x" * 1000,)] and sio.connected
        await sio.disconnect()


async def test_fragmented_message_is_refused_when_its_total_would_pass_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    piece = b"x" * (256 * 1024)
    fragments = itertools.chain(
        [ws_header(TEXT, 9, fin=False) + b'42["ok","'],
        itertools.repeat(ws_header(CONTINUATION, len(piece), fin=False) + piece, 256),
    )
    async with HostileServer(script=[("stream", fragments)], script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(
            server, "websocket", caplog, max_message_size=MiB)
        # 9 bytes + 3 pieces fit in 1 MiB; the fourth piece is refused before it is copied.
        assert f"incoming message of {9 + 4 * len(piece)} bytes exceeds" in line


async def test_many_small_fragments_under_the_limit_make_one_message() -> None:
    body = b'42["ok","' + b"y" * 5000 + b'"]'
    pieces = [body[i:i + 100] for i in range(0, len(body), 100)]
    frames = [ws_header(TEXT, len(pieces[0]), fin=False) + pieces[0]]
    frames += [ws_header(CONTINUATION, len(p), fin=False) + p for p in pieces[1:-1]]
    frames.append(ws_header(CONTINUATION, len(pieces[-1])) + pieces[-1])
    async with HostileServer(script=[("raw", b"".join(frames))]) as server:
        sio = fastsio.AsyncClient(reconnection=False, max_message_size=len(body))
        oks: list[Any] = []
        sio.on("ok", lambda *a: oks.append(a))
        await sio.connect(server.url, transports=["websocket"])
        await until(lambda: oks)
        assert oks == [("y" * 5000,)]
        await sio.disconnect()


async def test_data_frame_inside_a_fragmented_message_is_a_parse_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = ws_header(TEXT, 9, fin=False) + b'42["ok","' + ws_header(TEXT, len(GOOD)) + GOOD
    async with HostileServer(script=[("raw", raw)], script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(server, "websocket", caplog)
        assert "data frame inside a fragmented message" in line


# -- both transports ----------------------------------------------------------------------------

DEEP_NUM = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_placeholder_with_a_deeply_nested_num_is_a_parse_error(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    header = b'451-["ok",{"_placeholder":true,"num":' + DEEP_NUM + b"}]"
    if transport == "websocket":
        server: Any = HostileServer(script=[header, ("binary", b"x")], script_after=[GOOD])
    else:
        server = HostilePollingServer(script=[header + b"\x1ebeA=="], script_after=[GOOD])
    async with server:
        line = await _refused_then_reconnects(server, transport, caplog)
        assert "binary placeholder with a non-integer num: list [[[[...]]]]" in line
        assert len(line) < 1000


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_event_over_the_limit_is_a_parse_error(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    big = b'42["ok","' + b"z" * 10_000 + b'"]'
    cls: Any = HostileServer if transport == "websocket" else HostilePollingServer
    async with cls(script=[big], script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(server, transport, caplog, max_message_size=100)
        assert f"incoming message of {len(big)} bytes exceeds max_message_size (100" in line


# -- polling ------------------------------------------------------------------------------------


async def test_poll_message_past_the_limit_is_refused_while_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = itertools.chain([b'42["ok","'], itertools.repeat(b"x" * (256 * 1024), 256))
    async with HostilePollingServer(script=[("stream", body)], script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(server, "polling", caplog, max_message_size=MiB)
        assert "incoming message of" in line and f"max_message_size ({MiB} bytes)" in line
        assert server.streamed < 32 * MiB


async def test_many_tiny_polling_packets_are_taken_one_at_a_time() -> None:
    # A server sends everything it buffered in one response (Node has no limit): the body is
    # not capped, each packet is; a million noops cost no more memory than one.
    body = b"\x1e".join([b"6"] * 1_000_000) + b"\x1e" + GOOD
    async with HostilePollingServer(script=[body]) as server:
        sio = fastsio.AsyncClient(reconnection=False, max_message_size=MiB)
        oks: list[Any] = []
        reasons: list[str] = []
        sio.on("ok", lambda *a: oks.append(a))
        sio.on("disconnect", reasons.append)
        async with connected(sio, server.url, transports=["polling"]):
            await until(lambda: oks, timeout=20)
            assert reasons == [] and oks == [(1,)]


async def test_binary_polling_message_over_the_limit_is_a_parse_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import base64

    header = b'451-["ok",{"_placeholder":true,"num":0}]'
    body = header + b"\x1eb" + base64.b64encode(b"\x00" * 5000)
    async with HostilePollingServer(script=[body], script_after=[GOOD]) as server:
        line = await _refused_then_reconnects(server, "polling", caplog, max_message_size=1000)
        assert "incoming binary message of 5000 bytes exceeds" in line


# -- peak memory of a real client ---------------------------------------------------------------

CLIENT = r"""
import asyncio, json, logging, sys

loop_kind, url, transport, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
errors = []


class Errors(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.ERROR:
            errors.append(record.getMessage())


logging.getLogger().addHandler(Errors())


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024


async def main():
    import aiohttp, picows, fastsio  # imported before the baseline

    sio = fastsio.AsyncClient(reconnection=False, max_message_size=limit)
    done = asyncio.Event()
    reasons = []
    sio.on("disconnect", lambda reason: (reasons.append(reason), done.set()))
    before = peak_rss()
    await sio.connect(url, transports=[transport])
    await asyncio.wait_for(done.wait(), 60)
    print(json.dumps({"reasons": reasons, "before": before, "after": peak_rss(),
                      "errors": errors}))


if loop_kind == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""

LIMIT = 4 * MiB
STREAM = 256 * MiB  # what the server would send, 64 times the limit


def _hostile(case: str) -> Any:
    chunk = b"x" * (256 * 1024)
    chunks = itertools.repeat(chunk, STREAM // len(chunk))
    if case == "websocket-frame":
        return HostileServer(script=[
            ("raw", ws_header(TEXT, 1 << 30) + b'42["ok","'), ("stream", chunks)])
    if case == "websocket-fragments":
        frame = ws_header(CONTINUATION, len(chunk), fin=False) + chunk
        return HostileServer(script=[("stream", itertools.chain(
            [ws_header(TEXT, 9, fin=False) + b'42["ok","'],
            itertools.repeat(frame, STREAM // len(chunk))))])
    return HostilePollingServer(script=[("stream", itertools.chain([b'42["ok","'], chunks))])


@pytest.mark.parametrize("case", ["websocket-frame", "websocket-fragments", "polling-body"])
async def test_peak_memory_stays_near_the_limit(case: str, tmp_path: Path) -> None:
    loop_kind = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") \
        else "asyncio"
    transport = "polling" if case.startswith("polling") else "websocket"
    async with _hostile(case) as server:
        # Run from outside the source tree, so that the installed (compiled) fastsio is used.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, loop_kind, server.url, transport, str(LIMIT),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": ""})
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    grown = report["after"] - report["before"]
    print(f"{case} on {loop_kind}: peak RSS grew {grown / MiB:.1f} MiB "
          f"(limit {LIMIT // MiB} MiB, server offered {STREAM // MiB} MiB)")
    assert report["reasons"] == ["parse error"]
    assert len(report["errors"]) == 1 and "max_message_size" in report["errors"][0]
    # WebSocket: a refused frame's payload is never read, fragments stop at the limit. Polling
    # reads a message in chunks and refuses it once it passes the limit.
    bound = 2 * LIMIT if transport == "websocket" else 6 * LIMIT
    assert grown < bound, f"peak RSS grew {grown / MiB:.1f} MiB"
