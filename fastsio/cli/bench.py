"""``fastsio bench``: receive rate, ack round trips and connect times, from the shell.

Without a URL the embedded firehose server (:mod:`fastsio.testing`) runs in a child process on
a free loopback port, so that its CPU does not compete with the client's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import (
    EXIT_CONNECT,
    EXIT_OK,
    client_options,
    connect_failure,
    connect_options,
    one_line,
    status,
)

# Enough events to keep a fast client busy for the whole measurement.
_EVENTS_PER_SECOND_CEILING = 2_000_000


class _Firehose:
    """The embedded firehose server as a child process."""

    def __init__(self, count: int, serializer: str, ack_echo: bool = True) -> None:
        self.count = count
        self.serializer = serializer
        self.ack_echo = ack_echo
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    async def __aenter__(self) -> _Firehose:
        argv = [
            sys.executable,
            "-m",
            "fastsio.testing",
            "--port",
            "0",
            "--count",
            str(self.count),
            "--serializer",
            self.serializer,
        ]
        if self.ack_echo:
            argv.append("--ack-echo")
        # A neutral working directory: `-m` puts the cwd first on sys.path, and a source
        # checkout there would shadow the installed package (which has the compiled core).
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline), 15
        )
        if not line.startswith("LISTENING "):
            raise RuntimeError("embedded firehose server failed to start")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _progress(done: float, total: float, text: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * min(done / total, 1.0)) if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}   ")
    sys.stderr.flush()


async def _measure_fastsio(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import fastsio

    counts = [0] * args.clients
    clients: list[fastsio.AsyncClient] = []
    connect_times: list[float] = []
    for i in range(args.clients):
        sio = fastsio.AsyncClient(reconnection=False, **client_options(args))

        def make_handler(i: int) -> Any:
            if args.batch:

                def on_batch(items: list[Any]) -> None:
                    counts[i] += len(items)

                return on_batch

            def on_event(*_: Any) -> None:
                counts[i] += 1

            return on_event

        sio.on(args.event, make_handler(i), namespace=args.namespace, batch=args.batch)
        clients.append(sio)
    try:
        for sio in clients:
            t0 = time.perf_counter()
            await sio.connect(url, namespaces=[args.namespace], **connect_options(args))
            connect_times.append(time.perf_counter() - t0)
        firsts = list(counts)
        first = sum(firsts)
        t_start = time.monotonic()
        deadline = t_start + args.duration
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            _progress(time.monotonic() - t_start, args.duration, f"{sum(counts) - first:,} events")
        elapsed = time.monotonic() - t_start
        per_client = [c - f for c, f in zip(counts, firsts, strict=True)]
        received = sum(per_client)
    finally:
        for sio in clients:
            await sio.disconnect()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    result: dict[str, Any] = {
        "client": "fastsio",
        "clients": args.clients,
        "events": received,
        "seconds": round(elapsed, 3),
        "events_per_s": round(received / elapsed) if elapsed else 0,
        "per_client_events_per_s": [round(c / elapsed) if elapsed else 0 for c in per_client],
        "connect_ms_p50": round(statistics.median(connect_times) * 1000, 2),
        "connect_ms_max": round(max(connect_times) * 1000, 2),
    }
    return result


async def _measure_rtt(url: str, args: argparse.Namespace, rounds: int = 1000) -> dict[str, Any]:
    """Ack round trips on a connection of its own (not queued behind a stream)."""
    import fastsio

    sio = fastsio.AsyncClient(reconnection=False, **client_options(args))
    await sio.connect(url, namespaces=[args.namespace], **connect_options(args))
    rtts: list[float] = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            await sio.call(args.rtt_event, "ping", namespace=args.namespace, timeout=5)
            rtts.append(time.perf_counter() - t0)
    finally:
        await sio.disconnect()
    rtts.sort()
    return {
        "rtt_us_p50": round(rtts[len(rtts) // 2] * 1e6, 1),
        "rtt_us_p99": round(rtts[int(len(rtts) * 0.99) - 1] * 1e6, 1),
    }


async def _measure_python_socketio(url: str, args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        import socketio  # python-socketio
    except ImportError:
        status("python-socketio is not installed: --compare skipped")
        return None
    count = 0
    sio = socketio.AsyncClient(
        reconnection=False, serializer="msgpack" if args.msgpack else "default"
    )

    @sio.on(args.event, namespace=args.namespace)
    def on_event(*_: Any) -> None:
        nonlocal count
        count += 1

    try:
        await sio.connect(url, namespaces=[args.namespace], transports=["websocket"])
    except socketio.exceptions.ConnectionError as exc:
        status(one_line(f"python-socketio could not connect to {url}: {exc}"))
        return None
    try:
        first = count
        t0 = time.monotonic()
        await asyncio.sleep(args.duration)
        elapsed = time.monotonic() - t0
        received = count - first
    finally:
        await sio.disconnect()
    return {
        "client": "python-socketio",
        "clients": 1,
        "events": received,
        "seconds": round(elapsed, 3),
        "events_per_s": round(received / elapsed) if elapsed else 0,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'client':<16}{'conns':>6}{'events/s':>12}{'per conn':>12}{'events':>13}"
        f"{'connect p50':>13}{'ack rtt p50/p99':>20}"
    ]
    details = []
    for r in rows:
        per = r.get("per_client_events_per_s") or [r["events_per_s"]]
        rtt = f"{r['rtt_us_p50']:,.0f}/{r['rtt_us_p99']:,.0f} us" if "rtt_us_p50" in r else "-"
        connect = f"{r['connect_ms_p50']:,.1f} ms" if "connect_ms_p50" in r else "-"
        lines.append(
            f"{r['client']:<16}{r['clients']:>6}{r['events_per_s']:>12,}"
            f"{round(statistics.median(per)):>12,}{r['events']:>13,}{connect:>13}{rtt:>20}"
        )
        if len(per) > 1:
            details.append(
                f"{r['client']}: events/s per connection min {min(per):,} / median "
                f"{round(statistics.median(per)):,} / max {max(per):,}; connect time p50 "
                f"{r['connect_ms_p50']:,.1f} ms / max {r['connect_ms_max']:,.1f} ms"
            )
    return "\n".join(lines + ([""] + details if details else []))


async def run_bench(args: argparse.Namespace) -> int:
    import fastsio

    rows: list[dict[str, Any]] = []
    try:
        if args.url:
            rows.append(await _measure_fastsio(args.url, args))
            if args.rtt_event:
                rows[0].update(await _measure_rtt(args.url, args))
            if args.compare:
                row = await _measure_python_socketio(args.url, args)
                if row:
                    rows.append(row)
        else:
            if args.rtt_event is None:
                args.rtt_event = "rtt"  # the embedded server echoes acks of any event
            count = args.count or int(_EVENTS_PER_SECOND_CEILING * (args.duration + 5))
            serializer = "msgpack" if args.msgpack else "json"
            async with _Firehose(count, serializer) as server:
                status(
                    f"embedded firehose server on {server.url} ({serializer}, "
                    f"{args.clients} client(s), {args.duration:g} s)"
                )
                rows.append(await _measure_fastsio(server.url, args))
            async with _Firehose(0, serializer) as server:
                rows[0].update(await _measure_rtt(server.url, args))
            if args.compare:
                async with _Firehose(count, serializer) as server:
                    row = await _measure_python_socketio(server.url, args)
                    if row:
                        rows.append(row)
    except fastsio.exceptions.ConnectionError as exc:
        status(connect_failure(args.url or "the embedded server", exc, {}))
        return EXIT_CONNECT
    print(_table(rows))
    if len(rows) == 2 and rows[1]["events_per_s"]:
        print(
            f"\nfastsio / python-socketio: {rows[0]['events_per_s'] / rows[1]['events_per_s']:.1f}x"
        )
    if os.environ.get("FASTSIO_BENCH_JSON"):
        print(json.dumps(rows))
    return EXIT_OK
