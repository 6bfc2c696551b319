"""Instructions per emit on a live WebSocket, counted by valgrind's callgrind.

``benchmarks/instructions.py`` counts the codec and dispatch statements without a link; the
publishing path (``await AsyncClient.emit`` -> the core's emit gate -> encoding -> framing and
masking into the coalescing buffer, one write per loop turn) needs one. Here a client runs
under ``valgrind --tool=callgrind --dump-before=os_getppid`` against a server in its own
process (not under valgrind): publish.py's compiled counting server, or binary.py's send
server for the ``bin-*`` cases. Like instructions.py it warms up, then emits N and 2N events
between marks; instructions per emit = (Ir(2N) - Ir(N)) / N. The loop is publish.py's
(``await emit(...)``, a loop yield every 1000 emits) and is counted with the emit: compare
figures of this script with each other, not with instructions.py's.

Cases (``--cases``): ``json-dict`` and ``msgpack-dict`` (publish.py's one-dict emit),
``bin-json`` and ``bin-msgpack`` (binary.py's 1 KiB ``bytes`` emit).

Usage::

    python benchmarks/emit_instructions.py                 # every case, N = 10000
    python benchmarks/emit_instructions.py --cases json-dict --n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
CASES = ("json-dict", "msgpack-dict", "bin-json", "bin-msgpack")
DICT_ARG = {"sym": "AAPL", "price": 101.25, "qty": 300, "seq": 123456}  # publish.py's
PAYLOAD = bytes(range(256)) * 4  # binary.py's 1 KiB
CHUNK = 1000
WARMUP = 2000
_LISTENING = re.compile(r"^LISTENING (\d+)$")


async def _client(url: str, case: str, n: int) -> None:
    import fastsio

    serializer = "msgpack" if "msgpack" in case else "default"
    sio = fastsio.AsyncClient(reconnection=False, serializer=serializer)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    binary = case.startswith("bin")
    event, data = ("bin", PAYLOAD) if binary else ("tick", DICT_ARG)
    emit = sio.emit

    async def run(count: int) -> None:
        for i in range(count):
            await emit(event, data)
            if i % CHUNK == CHUNK - 1:
                await asyncio.sleep(0)
        # Every event counted by the server before the next mark.
        await sio.call("done" if binary else "count", timeout=120)

    await run(WARMUP)
    mark = os.getppid
    gc.disable()
    mark()
    await run(n)
    mark()
    await run(2 * n)
    mark()
    gc.enable()
    await sio.disconnect()


def child(url: str, case: str, n: int) -> None:
    import uvloop

    uvloop.run(_client(url, case, n))


def _server(case: str) -> tuple[subprocess.Popen[str], str]:
    if case.startswith("bin"):
        ser = "msgpack" if "msgpack" in case else "json"
        cmd = [sys.executable, str(HERE / "binary.py"), "--send-server", "--serializer", ser]
    else:
        sys.path.insert(0, str(HERE))
        from publish import build_count_server

        error = build_count_server()
        if error:
            raise SystemExit(error)
        cmd = [sys.executable, str(HERE / "publish.py"), "--server"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    match = _LISTENING.match(line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{match.group(1)}"


def measure(case: str, n: int) -> float:
    proc, url = _server(case)
    try:
        argv = [str(Path(__file__).resolve()), "--child", case, "--url", url, "--n", str(n)]
        _, totals = common.callgrind_dumps(argv)
        if len(totals) < 3:
            raise SystemExit(f"expected 3 dumps, got {len(totals)}")
        return round((totals[2] - totals[1]) / n, 1)
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--n", type=int, default=10_000, help="emits in the shorter window")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.url, args.child, args.n)
        return 0
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    result = {}
    for case in cases:
        result[case] = measure(case, args.n)
        print(f"{case:<14} {result[case]:>10,.0f} instructions per emit", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
