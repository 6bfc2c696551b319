"""Connections benchmark: many concurrent Socket.IO connections from one process.

Each client library runs in its own subprocess and opens ``--conns`` connections (default
5000) to local firehose servers (``python -m fastsio.testing --count 0``: Engine.IO/Socket.IO
handshake and pings, no stream), ``--servers`` processes (default 1) assigned round-robin. Every
connection is a separate ``AsyncClient`` with ``transports=['websocket']`` and
``reconnection=False``; at most ``--concurrency`` connects (default 50) are in flight at once.
Once all are connected the process holds them ``--hold`` seconds, checks that every one is still
connected, then disconnects them all (``await sio.disconnect()``, at most ``--concurrency`` at
once) and checks that none is left connected.

Clients: ``fastsio`` and ``python-socketio`` (``AsyncClient``), and ``raw``, the practical
ceiling: a bare picows ``WSListener`` per connection doing the minimal Socket.IO handshake (wait
for the Engine.IO open packet, send ``40``, wait for the server's ``40``), answering pings, and
closing with ``41`` + a WebSocket close.

Reported per client library (median of the rounds):

- connect rate: connections / wall time from the first connect call to the last connect
  returning (the handshake includes the Socket.IO namespace CONNECT), and the p50/p99 of the
  individual ``connect()`` latencies;
- RSS per connection: (RSS with every connection open - RSS before the clients were created)
  / connections, both after ``gc.collect()``; the baseline is taken after one warm-up
  connection, so lazy imports are not counted;
- disconnect time for all of them;
- client CPU: the client process's user+sys CPU during the connect phase, per connection and
  as % of the phase's wall time;
- server CPU %: the server processes' CPU during the connect phase / its wall time (near 100 %
  x servers would mean the server is the bottleneck of the connect rate).

With ``--stream-conns K`` (``run.py`` uses 200) a second part measures the CPU cost of many
streams: fastsio receives a paced stream (``--stream-rate`` events/s in total, default 200,000,
split evenly; the firehose paces in 10 ms ticks) on K connections, then the same total rate on one
connection; reported: client CPU microseconds per event (user+sys over a ``--stream-seconds``
window once every stream runs, default 5 s) and the ratio K connections / one (target <= 1.2x),
with the event rate actually received and the client's wake-ups per second (voluntary context
switches: each is one return from epoll). ``--servers`` firehose processes share the connections.

With ``--stream-floor`` the same two runs are made, interleaved in each round, with ``raw``: a
bare picows listener that only counts frames (and answers pings), on fastsio's picows options.
Its ratio is what the kernel, the loop and picows cost per read and per wake-up: on 200 streams
each read carries about 10 frames (one 10 ms tick of 1,000 events/s) and nearly every read is
its own wake-up, against hundreds of frames per read on one connection. The run then also
reports fastsio's CPU per event / raw's in both settings.
Noise-free instruction counts of the read path by frames per read: ``read_instructions.py``.

The file-descriptor limit (RLIMIT_NOFILE) is raised to the hard limit; when that cannot hold
``--conns`` connections plus a margin, the count is capped and the output says so.

The installed fastsio is benchmarked, not the source tree (reinstall with ``pip install .``).

Usage::

    python benchmarks/conns.py                      # 5000 connections, 3 rounds, 3 clients
    python benchmarks/conns.py --conns 10000 --servers 2
    python benchmarks/conns.py --quick              # smoke run, < 30 s
    python benchmarks/conns.py --clients fastsio --conns 10000 --servers 2 --stream-conns 200
    python benchmarks/conns.py --clients fastsio --conns 10 --rounds 3 --stream-conns 200 \\
        --stream-floor                              # the stream part, with the raw floor
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
import time
from typing import Any

import common
from common import FirehoseProcess, fmt, median, print_rows, proc_cpu_s, rss_kb

CLIENTS = ("raw", "fastsio", "python-socketio")
#: What sizes a run (``common.add_sized_options``).
SIZES: list[common.SizedOption] = [
    ("--conns", int, 5000, 500, "connections per run"),
    ("--hold", float, 2.0, 0.5, "seconds all stay connected"),
    ("--rounds", int, 3, 1, "rounds"),
]
#: File descriptors kept free besides one per connection (imports, pipes, the loop, ...).
FD_MARGIN = 200


def raise_nofile(wanted: int) -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE towards ``wanted``; return (old soft, new soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    new = soft
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            new = target
        except (ValueError, OSError):
            new = soft
    return soft, new, hard


# ==============================================================================================
# Worker side (``conns.py --worker CLIENT --urls URL,URL --server-pids PID,PID ...``)
# ==============================================================================================


class _RawClient:
    """The ``raw`` reference: AsyncClient-like connect/disconnect on a bare picows listener."""

    def __init__(self) -> None:
        self.connected = False
        self.transport: Any = None

    async def connect(self, url: str, transports: Any = None, wait_timeout: float = 10) -> None:
        from picows import WSListener, WSMsgType, ws_connect

        joined = asyncio.get_running_loop().create_future()

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                data = frame.get_payload_as_bytes()
                if data[:2] == b"40":
                    if not joined.done():
                        joined.set_result(None)
                elif data[:1] == b"0":
                    transport.send(WSMsgType.TEXT, b"40")
                elif data[:1] == b"2":
                    transport.send(WSMsgType.TEXT, b"3")

            def on_ws_disconnected(self, transport: Any) -> None:
                if not joined.done():
                    joined.set_exception(ConnectionError("disconnected during the handshake"))

        ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.transport, _ = await ws_connect(Listener, ws_url)
        await asyncio.wait_for(joined, wait_timeout)
        self.connected = True

    async def disconnect(self) -> None:
        from picows import WSCloseCode, WSMsgType

        if self.transport is None:
            return
        self.transport.send(WSMsgType.TEXT, b"41")
        self.transport.send_close(WSCloseCode.OK)
        self.transport.disconnect()
        await self.transport.wait_disconnected()
        self.connected = False


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    if args.worker == "fastsio":
        import fastsio as socketio
    elif args.worker == "python-socketio":
        import socketio  # type: ignore[no-redef]

    urls = args.urls.split(",")
    server_pids = [int(p) for p in args.server_pids.split(",") if p]

    def new_client() -> Any:
        if args.worker == "raw":
            return _RawClient()
        return socketio.AsyncClient(reconnection=False)

    # Warm-up: one full connect/disconnect, so that lazy imports and first-use caches are in
    # the baseline rather than in the per-connection figure.
    warm = new_client()
    await warm.connect(urls[0], transports=["websocket"], wait_timeout=10)
    await warm.disconnect()
    del warm
    await asyncio.sleep(0.2)
    gc.collect()
    rss_base = rss_kb()

    clients = [new_client() for _ in range(args.conns)]
    sem = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    failures: list[str] = []

    async def connect(i: int, sio: Any) -> None:
        async with sem:
            t = time.perf_counter()
            try:
                await sio.connect(urls[i % len(urls)], transports=["websocket"], wait_timeout=10)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append(time.perf_counter() - t)

    cpu0 = sum(proc_cpu_s(p) for p in server_pids)
    client_cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(connect(i, sio) for i, sio in enumerate(clients)))
    connect_s = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    server_cpu = sum(proc_cpu_s(p) for p in server_pids) - cpu0
    await asyncio.sleep(args.hold)
    gc.collect()
    rss_connected = rss_kb()
    still_connected = sum(1 for sio in clients if sio.connected)

    async def disconnect(sio: Any) -> None:
        async with sem:
            try:
                await sio.disconnect()
            except Exception as exc:
                failures.append(f"disconnect: {type(exc).__name__}: {exc}")

    t1 = time.perf_counter()
    await asyncio.gather(*(disconnect(sio) for sio in clients))
    disconnect_s = time.perf_counter() - t1
    await asyncio.sleep(0.2)
    left_connected = sum(1 for sio in clients if sio.connected)
    connected_ok = len(latencies)
    lat_ms = sorted(x * 1000 for x in latencies)
    return {
        "conns": args.conns,
        "connected": connected_ok,
        "still_connected_after_hold": still_connected,
        "left_connected_after_disconnect": left_connected,
        "failures": len(failures),
        "failure_samples": sorted(set(failures))[:5],
        "connect_s": connect_s,
        "connects_per_s": connected_ok / connect_s if connect_s > 0 else None,
        "connect_ms_p50": statistics.median(lat_ms) if lat_ms else None,
        "connect_ms_p99": lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))] if lat_ms else None,
        "disconnect_s": disconnect_s,
        "rss_base_kb": rss_base,
        "rss_connected_kb": rss_connected,
        "kb_per_conn": (rss_connected - rss_base) / connected_ok if connected_ok else None,
        "server_cpu_percent": server_cpu / connect_s * 100 if connect_s > 0 else None,
        "client_cpu_percent": client_cpu / connect_s * 100 if connect_s > 0 else None,
        "client_cpu_ms_per_conn": client_cpu * 1000 / connected_ok if connected_ok else None,
        "maxrss_kb": common.peak_rss_kb(),
    }


class _RawStreamClient:
    """The ``raw`` floor of the stream part: a bare picows listener that counts the frames of
    the stream (every text frame longer than a ping) and answers pings, on the same picows
    options as fastsio's (plain asyncio transport, 2 KiB first read buffer)."""

    def __init__(self, received: list[int]) -> None:
        self.received = received
        self.connected = False
        self.transport: Any = None

    async def connect(self, url: str, transports: Any = None, wait_timeout: float = 10) -> None:
        from picows import WSListener, WSMsgType, ws_connect

        joined = asyncio.get_running_loop().create_future()
        received = self.received

        class Counter(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.payload_size > 2:  # a tick (a ping is "2", the reply to CONNECT longer)
                    if joined.done():
                        received[0] += 1
                        return
                data = frame.get_payload_as_bytes()
                if data[:2] == b"40":
                    if not joined.done():
                        joined.set_result(None)
                elif data[:1] == b"0":
                    transport.send(WSMsgType.TEXT, b"40")
                elif data[:1] == b"2":
                    transport.send(WSMsgType.TEXT, b"3")

        ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.transport, _ = await ws_connect(
            Counter, ws_url, use_aiofastnet=False, read_buffer_init_size=2048
        )
        await asyncio.wait_for(joined, wait_timeout)
        self.connected = True

    async def disconnect(self) -> None:
        from picows import WSCloseCode

        self.transport.send_close(WSCloseCode.OK)
        self.transport.disconnect()
        await self.transport.wait_disconnected()
        self.connected = False


async def _stream_worker(args: argparse.Namespace) -> dict[str, Any]:
    """``--conns`` connections, each receiving a paced stream: CPU per event (fastsio, or the
    ``raw`` picows frame counter)."""
    urls = args.urls.split(",")
    received = [0]

    def tick(_data: Any) -> None:
        received[0] += 1

    clients: list[Any] = []
    for _ in range(args.conns):
        if args.worker == "raw":
            clients.append(_RawStreamClient(received))
            continue
        import fastsio

        sio = fastsio.AsyncClient(reconnection=False)
        sio.on("tick", tick)
        clients.append(sio)
    sem = asyncio.Semaphore(args.concurrency)

    async def connect(i: int, sio: Any) -> None:
        async with sem:
            await sio.connect(urls[i % len(urls)], transports=["websocket"], wait_timeout=10)

    await asyncio.gather(*(connect(i, sio) for i, sio in enumerate(clients)))
    await asyncio.sleep(1.0)  # every stream up to its pace
    gc.collect()
    n0, cpu0, t0 = received[0], time.process_time(), time.perf_counter()
    csw0 = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    await asyncio.sleep(args.stream_seconds)
    n1, cpu1, t1 = received[0], time.process_time(), time.perf_counter()
    csw1 = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    still = sum(1 for sio in clients if sio.connected)
    await asyncio.gather(*(sio.disconnect() for sio in clients))
    events = n1 - n0
    return {
        "conns": args.conns,
        "still_connected": still,
        "events": events,
        "events_per_s": events / (t1 - t0),
        "cpu_s": cpu1 - cpu0,
        "cpu_us_per_event": (cpu1 - cpu0) * 1e6 / events if events else None,
        "cpu_percent": (cpu1 - cpu0) / (t1 - t0) * 100,
        # The process slept in epoll this often: each wake-up costs a context switch.
        "wakeups_per_s": (csw1 - csw0) / (t1 - t0),
        "events_per_wakeup": events / (csw1 - csw0) if csw1 > csw0 else None,
    }


def run_stream(conns: int, args: argparse.Namespace, client: str) -> dict[str, Any]:
    """One stream run: ``conns`` connections sharing ``--stream-rate`` events/s."""
    per_conn = args.stream_rate / conns
    count = int(per_conn * (args.stream_seconds + 30))  # outlasts connecting and the window
    servers = [
        FirehoseProcess(count, "json", rate=per_conn) for _ in range(min(args.servers, conns))
    ]
    try:
        cmd = common.worker_argv(
            __file__,
            client,
            stream=True,
            urls=",".join(s.url for s in servers),
            conns=conns,
            concurrency=args.concurrency,
            stream_seconds=args.stream_seconds,
        )
        result = common.run_json_worker(cmd, args.timeout)
    finally:
        for server in servers:
            server.stop()
    if "error" not in result and result["still_connected"] != conns:
        result["error"] = f"{result['still_connected']}/{conns} still connected after the window"
    return result


def _stream_summary(
    args: argparse.Namespace, client: str, many: list[dict[str, Any]], one: list[dict[str, Any]]
) -> dict[str, Any]:
    def med(runs: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in runs if "error" not in r and r.get(key) is not None]
        return median(vals) if vals else None

    us_many, us_one = med(many, "cpu_us_per_event"), med(one, "cpu_us_per_event")
    ratio = us_many / us_one if us_many and us_one else None
    out = {
        "stream_conns": args.stream_conns,
        "stream_rate": args.stream_rate,
        "many": {
            "events_per_s": med(many, "events_per_s"),
            "cpu_us_per_event": us_many,
            "wakeups_per_s": med(many, "wakeups_per_s"),
            "runs": many,
        },
        "one": {
            "events_per_s": med(one, "events_per_s"),
            "cpu_us_per_event": us_one,
            "wakeups_per_s": med(one, "wakeups_per_s"),
            "runs": one,
        },
        "ratio_cpu_per_event_many_vs_one": ratio,
    }
    if client == "fastsio":
        out["target_ratio"] = 1.2
        out["target_met"] = ratio is not None and ratio <= 1.2
    print(
        f"\nstreams: {args.stream_conns} connections x {args.stream_rate / args.stream_conns:,.0f}"
        f" events/s vs 1 x {args.stream_rate:,.0f} ({client}, median of {args.rounds}):"
    )
    for label, part in ((f"{args.stream_conns} connections", "many"), ("1 connection", "one")):
        print(
            f"  {label}: {fmt(out[part]['events_per_s'], ',.0f')} events/s, "
            f"{fmt(out[part]['cpu_us_per_event'], '.2f')} us CPU/event, "
            f"{fmt(out[part]['wakeups_per_s'], ',.0f')} wake-ups/s"
        )
    if client == "fastsio":
        verdict = "met" if out["target_met"] else "NOT met"
        print(f"  CPU per event, many / one: {fmt(ratio, '.2f')}x (target <= 1.2x: {verdict})")
    else:  # the floor: what picows, the loop and the kernel cost per read and wake-up
        print(f"  CPU per event, many / one: {fmt(ratio, '.2f')}x (the floor)")
    return out


def stream_part(args: argparse.Namespace) -> dict[str, Any]:
    """K paced streams vs one at the same total rate: the median CPU per event of each, for
    fastsio and (``--stream-floor``) the raw counter, their runs interleaved in each round."""
    clients = ["raw", "fastsio"] if args.stream_floor else ["fastsio"]
    runs: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
        c: ([], []) for c in clients
    }
    for rnd in range(1, args.rounds + 1):
        for client in clients:
            for conns, into in ((args.stream_conns, runs[client][0]), (1, runs[client][1])):
                r = run_stream(conns, args, client)
                into.append(r)
                msg = r.get("error") or (
                    f"{r['events_per_s']:,.0f} events/s, {r['cpu_us_per_event']:.2f} us "
                    f"CPU/event, CPU {r['cpu_percent']:.0f}%, {r['wakeups_per_s']:,.0f} wake-ups/s"
                )
                print(f"round {rnd} {client} stream x{conns:<5} {msg}", file=sys.stderr, flush=True)
    out = _stream_summary(args, "fastsio", *runs["fastsio"])
    if "raw" in runs:
        floor = _stream_summary(args, "raw", *runs["raw"])
        out["raw"] = floor
        # fastsio against the bare counter in each setting. Not a difference: a client slower
        # per read wakes up less often (more sockets are ready by the time it polls again),
        # so on many connections fastsio's extra work is partly paid back in wake-ups.
        vs_raw = {}
        for part in ("many", "one"):
            mine, base = out[part]["cpu_us_per_event"], floor[part]["cpu_us_per_event"]
            vs_raw[part] = mine / base if mine and base else None
        out["cpu_per_event_vs_raw"] = vs_raw
        print(
            f"\nCPU per event, fastsio / raw: {fmt(vs_raw['many'], '.2f')}x on "
            f"{args.stream_conns} connections, {fmt(vs_raw['one'], '.2f')}x on 1"
        )
    return out


def worker_main(args: argparse.Namespace) -> int:
    if args.stream:
        return common.run_worker(_stream_worker(args), "uvloop")
    return common.run_worker(_worker(args), "uvloop")


# ==============================================================================================
# Parent side
# ==============================================================================================


def run_worker(
    client: str, servers: list[FirehoseProcess], args: argparse.Namespace
) -> dict[str, Any]:
    cmd = common.worker_argv(
        __file__,
        client,
        urls=",".join(s.url for s in servers),
        server_pids=",".join(str(s.proc.pid) for s in servers),
        conns=args.conns,
        concurrency=args.concurrency,
        hold=args.hold,
    )
    result = common.run_json_worker(cmd, args.timeout)
    if "error" in result:
        return result
    problems = []
    if result["connected"] != args.conns:
        problems.append(f"{result['connected']}/{args.conns} connected")
    if result["still_connected_after_hold"] != result["connected"]:
        problems.append(f"{result['still_connected_after_hold']} still connected after the hold")
    if result["left_connected_after_disconnect"]:
        problems.append(f"{result['left_connected_after_disconnect']} left after disconnect")
    if result["failures"]:
        problems.append(f"{result['failures']} failures, e.g. {result['failure_samples']}")
    if problems:
        result["error"] = "; ".join(problems)
    return result


def summarize(client: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]

    def med(key: str) -> float | None:
        return median([r.get(key) for r in ok])

    return {
        "client": client,
        "runs_ok": len(ok),
        "connects_per_s": med("connects_per_s"),
        "connect_s": med("connect_s"),
        "connect_ms_p50": med("connect_ms_p50"),
        "connect_ms_p99": med("connect_ms_p99"),
        "kb_per_conn": med("kb_per_conn"),
        "rss_base_mb": (v / 1024 if (v := med("rss_base_kb")) is not None else None),
        "rss_connected_mb": (v / 1024 if (v := med("rss_connected_kb")) is not None else None),
        "disconnect_s": med("disconnect_s"),
        "server_cpu_percent": med("server_cpu_percent"),
        "client_cpu_percent": med("client_cpu_percent"),
        "client_cpu_ms_per_conn": med("client_cpu_ms_per_conn"),
        "errors": [r["error"] for r in runs if "error" in r],
    }


def print_table(rows: list[dict[str, Any]], conns: int, rounds: int, servers: int) -> None:
    psio = next((r for r in rows if r["client"] == "python-socketio"), {})
    raw = next((r for r in rows if r["client"] == "raw"), {})

    def ratio(r: dict[str, Any], ref: dict[str, Any], key: str) -> float | None:
        mine, theirs = r[key], ref.get(key)
        return mine / theirs if mine and theirs else None

    print_rows(
        f"\nconns benchmark: {conns} connections from one process, {servers} server "
        f"process(es), median of {rounds} round(s)",
        rows,
        [
            common.CLIENT,
            ("conn/s", "connects_per_s", ",.0f"),
            ("vs raw", lambda r: ratio(r, raw, "connects_per_s"), ".2f"),
            ("vs psio", lambda r: ratio(r, psio, "connects_per_s"), ".2f"),
            ("total s", "connect_s", ".2f"),
            ("p50 ms", "connect_ms_p50", ".2f"),
            ("p99 ms", "connect_ms_p99", ".2f"),
            ("KB/conn", "kb_per_conn", ".1f"),
            ("vs psio", lambda r: ratio(r, psio, "kb_per_conn"), ".2f"),
            ("RSS MB", "rss_connected_mb", ".0f"),
            common.DISCONNECT_S,
            ("CPU ms/conn", "client_cpu_ms_per_conn", ".2f"),
            ("CPU %", "client_cpu_percent", ".0f"),
            common.SERVER_CPU_PERCENT,
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (benchmarks/conns.py) for what is measured.",
    )
    common.add_sized_options(parser, SIZES)
    parser.add_argument(
        "--servers", type=int, default=1, help="firehose server processes (default 1)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="connects in flight at once (default 50)"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"comma-separated, of {', '.join(CLIENTS)}"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    common.add_common_options(
        parser,
        "conns.json",
        "smoke run (< 30 s): 500 connections, hold 0.5 s, 1 round, unless given",
    )
    parser.add_argument(
        "--stream-conns",
        type=int,
        default=0,
        help="also measure CPU per event on this many paced streams vs one (0: skip)",
    )
    parser.add_argument(
        "--stream-rate", type=float, default=200_000, help="events/s in total (default 200000)"
    )
    parser.add_argument("--stream-seconds", type=float, default=5.0, help="measured window")
    parser.add_argument(
        "--stream-floor",
        action="store_true",
        help="also run the stream part with the raw picows frame counter (the floor)",
    )
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--server-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.fill_sized_options(args, SIZES)
    if args.worker:
        return worker_main(args)

    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if bad := [c for c in clients if c not in CLIENTS]:
        parser.error(f"unknown client(s) {bad}")
    if args.servers < 1 or args.concurrency < 1 or args.conns < 1:
        parser.error("--servers, --concurrency and --conns must be >= 1")

    # The limit is inherited by the servers and the workers started below. A server holds
    # conns/servers sockets, the client process all of them.
    requested = args.conns
    old_soft, soft, hard = raise_nofile(requested + FD_MARGIN)
    capped = None
    if soft < requested + FD_MARGIN:
        args.conns = max(1, soft - FD_MARGIN)
        capped = (
            f"RLIMIT_NOFILE is {soft} (hard limit {hard}): {requested} connections capped "
            f"to {args.conns}"
        )
        print(f"warning: {capped}", file=sys.stderr)
    stale = common.warn_if_stale("fastsio" in clients)

    started = time.time()
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    servers: list[FirehoseProcess] = []
    try:
        for rnd in range(1, args.rounds + 1):
            for client in clients:
                # Fresh servers per run: nothing left over from the previous client.
                servers = [FirehoseProcess(0, "json") for _ in range(args.servers)]
                try:
                    result = run_worker(client, servers, args)
                finally:
                    for server in servers:
                        server.stop()
                    servers = []
                result["round"] = rnd
                runs[client].append(result)
                if "error" in result and "connects_per_s" not in result:
                    msg = f"FAILED: {result['error']}"
                else:
                    msg = (
                        f"{result['connects_per_s']:,.0f} conn/s, "
                        f"{fmt(result['kb_per_conn'], '.1f')} KB/conn, "
                        f"disconnect {result['disconnect_s']:.2f} s"
                    )
                    if "error" in result:
                        msg += f" (FAILED: {result['error']})"
                print(f"round {rnd} {client:<16} {msg}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()

    rows = [summarize(c, runs[c]) for c in clients]
    psio = next((r for r in rows if r["client"] == "python-socketio"), None)
    raw_row = next((r for r in rows if r["client"] == "raw"), None)
    for row in rows:
        row["ratio_connects_vs_raw"] = (
            row["connects_per_s"] / raw_row["connects_per_s"]
            if raw_row and row["connects_per_s"] and raw_row["connects_per_s"]
            else None
        )
        row["ratio_connects_vs_python_socketio"] = (
            row["connects_per_s"] / psio["connects_per_s"]
            if psio and row["connects_per_s"] and psio["connects_per_s"]
            else None
        )
        row["ratio_kb_per_conn_vs_python_socketio"] = (
            row["kb_per_conn"] / psio["kb_per_conn"]
            if psio and row["kb_per_conn"] and psio["kb_per_conn"]
            else None
        )
    print_table(rows, args.conns, args.rounds, args.servers)
    if capped:
        print(f"note: {capped}")
    streams = stream_part(args) if args.stream_conns > 0 else None
    targets: dict[str, dict[str, Any]] = {}
    fast = next((r for r in rows if r["client"] == "fastsio"), None)
    if fast is not None and fast["kb_per_conn"]:
        kb = fast["kb_per_conn"]
        targets[f"memory per idle connection at {args.conns}"] = common.target(
            kb, "<=", 20, unit="KB"
        )
    if streams is not None and streams["ratio_cpu_per_event_many_vs_one"] is not None:
        targets[f"CPU per event, {args.stream_conns} paced streams / one"] = {
            "value": streams["ratio_cpu_per_event_many_vs_one"],
            "op": "<=",
            "limit": 1.2,
            "met": streams["target_met"],
        }
        floor = streams.get("raw")
        if floor and floor.get("ratio_cpu_per_event_many_vs_one"):
            vs_raw = streams["cpu_per_event_vs_raw"]
            targets[f"CPU per event, {args.stream_conns} paced streams / one"]["note"] = (
                f"the raw picows counter's own ratio (the floor: kernel, loop and picows per "
                f"read and wake-up) is {floor['ratio_cpu_per_event_many_vs_one']:.2f}x; fastsio "
                f"/ raw per event: {fmt(vs_raw['many'], '.2f')}x on {args.stream_conns} "
                f"connections, {fmt(vs_raw['one'], '.2f')}x on one"
            )
    common.print_targets(targets, "target: fastsio ")
    common.write_results(
        args,
        "conns.json",
        "conns",
        started,
        {
            "conns": args.conns,
            "conns_requested": requested,
            "servers": args.servers,
            "concurrency": args.concurrency,
            "hold_s": args.hold,
            "rounds": args.rounds,
            "clients": clients,
            "rlimit_nofile": {"before": old_soft, "soft": soft, "hard": hard},
            "capped": capped,
            "fastsio_install_warning": stale,
            "stream_conns": args.stream_conns,
            "stream_rate": args.stream_rate,
            "stream_seconds": args.stream_seconds,
        },
        results=rows,
        runs=runs,
        streams=streams,
        targets=targets,
    )
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
