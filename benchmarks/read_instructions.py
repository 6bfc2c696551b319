"""Instructions per event on the read path, by frames per socket read, counted by callgrind.

``conns.py --stream-conns 200`` finds CPU per event many times higher on 200 paced streams (about
10 frames per socket read) than on one stream at the same total rate (hundreds per read): any
fixed cost per read shows there. CPU time on a shared machine is too noisy to pin that cost
down; instruction counts are not. Here a client runs under ``valgrind --tool=callgrind
--dump-before=os_getppid`` against a firehose server in its own process (handshake and pings
only, ``--count 0``); once connected, its socket stops being read and the script itself plays
the event loop's part of a read: ``get_buffer()``, one tick of K ready-made ``tick`` frames
copied in, ``buffer_updated()``, on the protocol the loop would call (for fastsio its
``ReadCap`` in front of picows's protocol, then the ``EngineListener``, the Dispatcher and a
plain sync handler; for ``raw`` picows's protocol and a bare listener that counts frames). Per
K it warms up, then runs N and 2N reads between marks (N = 4000 / K, at least 20): instructions
per read = (Ir(2N) - Ir(N)) / N, per event = that / K. The kernel and the loop's own cost of a read (epoll, recv) are not in
the count; they are the same for every client and show in ``conns.py --stream-floor``.

Usage::

    python benchmarks/read_instructions.py               # fastsio and raw, K = 1, 10, 2000
    python benchmarks/read_instructions.py --clients fastsio --frames 10,2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import common
from common import FirehoseProcess

HERE = Path(__file__).resolve().parent
CLIENTS = ("fastsio", "raw")
FRAMES_PER_LOOP = 4000  # frames in the shorter measured loop: N = this / K reads (>= 20)
WARMUP = 20  # reads


def reads_of(k: int) -> int:
    """N, the reads of the shorter measured loop for K frames per read."""
    return max(20, FRAMES_PER_LOOP // k)


def tick_wire(frames: int) -> bytes:
    """``frames`` of the firehose's default ``tick`` event, as the server writes one tick."""
    import orjson

    from fastsio.testing.codec import ws_frames
    from fastsio.testing.firehose import DEFAULT_EVENT, DEFAULT_PAYLOAD

    packet = "42" + orjson.dumps([DEFAULT_EVENT, DEFAULT_PAYLOAD]).decode()
    return ws_frames([packet]) * frames


async def connect_fastsio(url: str, received: list[int]) -> tuple[Any, Any]:
    """A connected AsyncClient counting ``tick`` events; its protocol, the socket paused."""
    import fastsio

    def tick(_data: Any) -> None:
        received[0] += 1

    sio = fastsio.AsyncClient(reconnection=False)
    sio.on("tick", tick)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    ws = sio._conn.engine._transport.ws
    raw = ws.underlying_transport
    raw.pause_reading()
    # Under valgrind a read of 2000 frames outlasts the fairness budget (20 ms), and the rest
    # would wait for a loop turn that never comes here: same checks, a budget never reached.
    sio._conn.dispatch_budget = 1e9
    return sio, raw.get_protocol()


async def connect_raw(url: str, received: list[int]) -> tuple[Any, Any]:
    """conns.py's raw stream counter, connected; picows's protocol, the socket paused."""
    from conns import _RawStreamClient

    client = _RawStreamClient(received)
    await client.connect(url)
    raw = client.transport.underlying_transport
    raw.pause_reading()
    return client, raw.get_protocol()


def child(client: str, url: str, frame_counts: list[int]) -> None:
    """Run under callgrind: per K, mark, N reads of K frames, mark, 2N reads, mark."""
    sys.path.insert(0, str(HERE))
    loop = asyncio.new_event_loop()
    received = [0]
    connect = connect_fastsio if client == "fastsio" else connect_raw
    conn, proto = loop.run_until_complete(connect(url, received))
    mark = os.getppid
    gc.disable()
    get_buffer, buffer_updated = proto.get_buffer, proto.buffer_updated

    def reads(wire: bytes, n: int) -> None:
        # As the loop does: what does not fit the buffer it offers goes in the next read
        # (picows grows its buffer when a read fills it, so after the warm-up one read is
        # one tick).
        whole = memoryview(wire)
        size = len(wire)
        for _ in range(n):
            done = 0
            while done < size:
                buf = get_buffer(65536)  # what uvloop passes (libuv's suggested size)
                chunk = min(len(buf), size - done)
                buf[:chunk] = whole[done : done + chunk]
                buffer_updated(chunk)
                done += chunk

    for k in frame_counts:
        wire = tick_wire(k)
        n = reads_of(k)
        before = received[0]
        reads(wire, WARMUP)
        if received[0] - before != WARMUP * k:
            raise SystemExit(f"{client}: {received[0] - before} events for {WARMUP * k} frames")
        mark()
        reads(wire, n)
        mark()
        reads(wire, 2 * n)
        mark()
    gc.enable()
    loop.run_until_complete(conn.disconnect())
    loop.close()
    print(json.dumps(frame_counts))


def measure(client: str, url: str, frame_counts: list[int]) -> dict[int, float]:
    """Instructions per event for each K, from one callgrind run of the child."""
    argv = [str(Path(__file__).resolve()), "--child", client, "--url", url]
    argv += ["--frames", ",".join(map(str, frame_counts))]
    stdout, totals = common.callgrind_dumps(argv)
    if len(totals) < 3 * len(frame_counts):
        raise SystemExit(f"expected {3 * len(frame_counts)} dumps, got {len(totals)}")
    out = {}
    for i, k in enumerate(frame_counts):
        ir_n, ir_2n = totals[3 * i + 1], totals[3 * i + 2]
        out[k] = (ir_2n - ir_n) / reads_of(k) / k
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=common.comma_list, default=list(CLIENTS))
    ap.add_argument("--frames", type=common.comma_ints, default=[1, 10, 2000])
    ap.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.frames)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    results: dict[str, dict[int, float]] = {}
    with FirehoseProcess(0, "json") as server:
        for client in args.clients:
            results[client] = measure(client, server.url, args.frames)
    ks = args.frames
    print("instructions per event (callgrind Ir), by frames per socket read")
    print(f"{'client':<8} " + " ".join(f"{f'K={k}':>10}" for k in ks) + "   per read, fixed")
    for client, per in results.items():
        # per-event Ir = fixed / K + per-frame: the fixed part from the smallest and largest K
        lo, hi = min(ks), max(ks)
        fixed = (per[lo] - per[hi]) / (1 / lo - 1 / hi) if lo != hi else float("nan")
        cells = " ".join(f"{per[k]:>10,.0f}" for k in ks)
        print(f"{client:<8} {cells}   {fixed:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
