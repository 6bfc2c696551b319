"""Memory benchmark: client RSS while streaming, and with handlers slower than the feed.

Two questions, each client in its own subprocess against the firehose server of
``python -m fastsio.testing`` (its own process, as in stream.py):

(a) ``stream``: peak RSS of a client receiving ``--count`` events (default 2,000,000) with one
    plain sync handler, fastsio ``AsyncClient`` vs python-socketio ``AsyncClient`` (websocket
    transport). Reported: RSS once connected (before the first event), peak RSS (the process's
    ``ru_maxrss``) and the growth between the two, events/s. python-socketio receives the same
    count unless that would take longer than ``--budget`` seconds: a client still streaming
    when its budget runs out is stopped and reported with the events it had received (the
    table says so).

(b) ``slow``: a handler slower than the feed, for ``--duration`` seconds (default 10), the
    stream never ending within that time. The worker samples its own RSS every ``--interval``
    seconds (0.5) from a thread, with the number of handlers started (events the client has
    taken off the socket and dispatched) and finished. Handlers:

    - ``sync-sleep``: a plain function that blocks ``time.sleep(50e-6)`` on every event;
    - ``async-sleep``: a coroutine that awaits ``asyncio.sleep(0.001)`` on every event (the
      handlers overlap, so together they are only slower than the feed through their
      per-task overhead);
    - ``async-serial``: the same sleep under one shared ``asyncio.Lock`` (one downstream
      resource, e.g. a single database connection): at most ~1,000 events/s get handled
      whatever the client does.

    A client whose reading follows its handlers (fastsio: sync handlers run inline; at most
    ``max_pending_handlers`` async handlers run before it stops reading and TCP pushes back on
    the server) stays flat; a client that takes events off the socket faster than it finishes
    them accumulates them (python-socketio starts a task per message). Reported: RSS after 1 s,
    at the end and its maximum, the growth over the second half of the run (MB/s), handlers
    finished/s, handlers started but not finished at the end ("backlog") and the most asyncio
    Tasks alive at a sample ("tasks max": it also counts handler tasks created but not started
    yet, which "backlog" cannot see), the worst event-loop lag (how late a 50 ms
    ``asyncio.sleep`` on the client's loop woke up) and how long ``disconnect()`` took at the
    end. The samples are in the JSON.

Clients run with ``reconnection=False``: a lost connection fails the run (with its reason)
instead of silently starting a second stream.

The server pings every ``--ping-interval`` seconds, 600 by default, i.e. never during a run: a
client that cannot keep up with the firehose has seconds of stream queued in TCP ahead of any
ping, and both clients then drop a healthy link (python-socketio's write loop gives up when it
has sent nothing, not even a pong, for max(pingInterval, pingTimeout) + 5 s; fastsio reports a
ping timeout when no ping arrived for pingInterval + pingTimeout + margin). That is a heartbeat
question, not a memory one.

The installed fastsio is benchmarked, not the source tree (reinstall with ``pip install .``).

Usage::

    python benchmarks/memory.py                       # both parts, 3 rounds each
    python benchmarks/memory.py --part slow --duration 20
    python benchmarks/memory.py --quick               # smoke run, < 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
from common import FirehoseProcess, fmt, median, peak_rss_kb, print_rows, rss_kb

CLIENTS = ("fastsio", "python-socketio")
SLOW_HANDLERS = ("sync-sleep", "async-sleep", "async-serial")
#: What sizes a run (``common.add_sized_options``).
SIZES: list[common.SizedOption] = [
    ("--count", int, 2_000_000, 50_000, "(a) events per run"),
    ("--budget", float, 90.0, 10.0, "(a) seconds a client may stream before it is stopped"),
    ("--duration", float, 10.0, 1.5, "(b) seconds per run"),
    ("--rounds", int, 3, 1, "rounds"),
]
#: A worker whose RSS passes this is killed (a runaway backlog must not take the machine down).
RSS_KILL_KB = 4 * 1024 * 1024


# ==============================================================================================
# Worker side (``memory.py --worker stream|slow --client NAME ...``)
# ==============================================================================================


def _live_tasks() -> int:
    """asyncio Tasks not yet finished, in every loop of the process (read from any thread)."""
    return len(asyncio.tasks._all_tasks)  # type: ignore[attr-defined]


class _Sampler(threading.Thread):
    """Samples (seconds since start, RSS KB, handlers started, handlers finished, live tasks)."""

    def __init__(self, interval: float, counters: dict[str, int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.interval = interval
        self.counters = counters
        self.samples: list[tuple[float, int, int, int, int]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def sample(self) -> None:
        c = self.counters
        self.samples.append(
            (
                round(time.perf_counter() - self.t0, 3),
                rss_kb(),
                c["started"],
                c["finished"],
                _live_tasks(),
            )
        )

    def run(self) -> None:
        self.sample()
        while not self.stop.wait(self.interval):
            self.sample()


def _new_client(socketio: Any, lost: list[str]) -> Any:
    """An AsyncClient that records a lost connection instead of reconnecting."""
    sio = socketio.AsyncClient(reconnection=False)

    def disconnect(reason: Any = None) -> None:
        lost.append(f"{time.strftime('%H:%M:%S')} {reason}")

    sio.on("disconnect", disconnect)
    return sio


def _import(client: str) -> Any:
    if client == "fastsio":
        import fastsio as socketio

        return socketio
    import socketio

    return socketio


async def _worker_stream(args: argparse.Namespace) -> dict[str, Any]:
    socketio = _import(args.client)
    counters = {"started": 0, "finished": 0}
    lost: list[str] = []
    sio = _new_client(socketio, lost)
    finished = asyncio.Event()
    first_t = 0.0
    done_count = None

    def tick(data: Any) -> None:
        counters["finished"] += 1

    def first_tick(data: Any) -> None:
        nonlocal first_t
        first_t = time.perf_counter()
        counters["finished"] += 1
        sio.on("tick", tick)

    def done(count: Any) -> None:
        nonlocal done_count
        done_count = count
        finished.set()

    sio.on("tick", first_tick)
    sio.on("done", done)
    sampler = _Sampler(args.interval, counters)
    await sio.connect(args.url, transports=["websocket"])
    connected_rss = rss_kb()
    sampler.start()
    timed_out = False
    deadline = time.perf_counter() + args.budget
    while not finished.is_set() and not lost and time.perf_counter() < deadline:
        try:
            await asyncio.wait_for(finished.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    timed_out = not finished.is_set() and not lost
    t1 = time.perf_counter()
    sampler.stop.set()
    sampler.join()
    received = counters["finished"]
    lost_before_disconnect = list(lost)
    peak = peak_rss_kb()
    try:
        await asyncio.wait_for(sio.disconnect(), 10)
    except asyncio.TimeoutError:
        pass
    elapsed = t1 - first_t if first_t else 0.0
    return {
        "connection_lost": lost_before_disconnect or None,
        "received": received,
        "done_count": done_count,
        "budget_exhausted": timed_out,
        "elapsed_s": elapsed,
        "events_per_s": received / elapsed if elapsed > 0 else None,
        "connected_rss_kb": connected_rss,
        "peak_rss_kb": peak,
        "growth_kb": peak - connected_rss,
        "samples": sampler.samples,
    }


async def _worker_slow(args: argparse.Namespace) -> dict[str, Any]:
    socketio = _import(args.client)
    counters = {"started": 0, "finished": 0}
    lost: list[str] = []
    sio = _new_client(socketio, lost)

    if args.handler == "sync-sleep":

        def tick(data: Any) -> None:
            counters["started"] += 1
            time.sleep(50e-6)
            counters["finished"] += 1

    elif args.handler == "async-sleep":

        async def tick(data: Any) -> None:  # type: ignore[misc]
            counters["started"] += 1
            await asyncio.sleep(0.001)
            counters["finished"] += 1

    else:
        lock = asyncio.Lock()

        async def tick(data: Any) -> None:  # type: ignore[misc]
            counters["started"] += 1
            async with lock:
                await asyncio.sleep(0.001)
            counters["finished"] += 1

    sio.on("tick", tick)
    sampler = _Sampler(args.interval, counters)
    await sio.connect(args.url, transports=["websocket"])
    sampler.start()
    # Event-loop lag: how late a 50 ms sleep on the client's loop wakes up.
    deadline = time.perf_counter() + args.duration
    lag_max = 0.0
    while not lost and time.perf_counter() < deadline:
        t = time.perf_counter()
        await asyncio.sleep(0.05)
        lag_max = max(lag_max, time.perf_counter() - t - 0.05)
    sampler.sample()
    sampler.stop.set()
    sampler.join()
    peak = peak_rss_kb()
    lost_before_disconnect = list(lost)
    disconnect_s: float | None = time.perf_counter()
    try:
        await asyncio.wait_for(sio.disconnect(), 10)
        disconnect_s = time.perf_counter() - disconnect_s  # type: ignore[operator]
    except asyncio.TimeoutError:
        disconnect_s = None
    return {
        "connection_lost": lost_before_disconnect or None,
        "loop_lag_max_s": lag_max,
        "peak_rss_kb": peak,
        "samples": sampler.samples,
        "disconnect_s": disconnect_s,
    }


def worker_main(args: argparse.Namespace) -> int:
    import uvloop

    sys.setswitchinterval(0.001)  # let the sampler thread in even when handlers hog the GIL
    coro = _worker_stream(args) if args.worker == "stream" else _worker_slow(args)
    loop = uvloop.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(coro)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["client"] = args.client
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # handler tasks python-socketio may still hold must not delay the exit


# ==============================================================================================
# Parent side
# ==============================================================================================


def run_worker(cmd: list[str], limit_s: float) -> dict[str, Any]:
    """Run one worker, killing it past ``limit_s`` or RSS_KILL_KB; return its JSON line."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=common.HERE
    )
    deadline = time.monotonic() + limit_s
    killed = None
    while proc.poll() is None:
        try:
            proc.wait(0.25)
            break
        except subprocess.TimeoutExpired:
            pass
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        except (OSError, StopIteration, ValueError):
            rss = 0
        if rss > RSS_KILL_KB:
            killed = f"killed at {rss / 1024:.0f} MB RSS (limit {RSS_KILL_KB // 1024} MB)"
        elif time.monotonic() > deadline:
            killed = f"killed after {limit_s:.0f} s"
        if killed:
            proc.kill()
            break
    out, err = proc.communicate()
    if killed:
        return {"error": killed}
    return common.parse_worker_output(proc.returncode, out, err)


def _worker_cmd(kind: str, client: str, url: str, args: argparse.Namespace) -> list[str]:
    return common.worker_argv(
        __file__,
        kind,
        client=client,
        url=url,
        interval=args.interval,
        budget=args.budget,
        duration=args.duration,
        handler=args.handler or "sync-sleep",
    )


def part_stream(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in args.clients}
    server = FirehoseProcess(args.count, "json", ping_interval=args.ping_interval)
    try:
        for rnd in range(1, args.rounds + 1):
            for client in args.clients:
                cmd = _worker_cmd("stream", client, server.url, args)
                result = run_worker(cmd, args.budget + 60)
                result["round"] = rnd
                if "error" not in result and result["connection_lost"]:
                    result["error"] = f"connection lost: {result['connection_lost']}"
                if "error" not in result and not result["budget_exhausted"]:
                    if result["received"] != args.count or result["done_count"] != args.count:
                        result["error"] = (
                            f"received {result['received']}, done said {result['done_count']}, "
                            f"expected {args.count}"
                        )
                runs[client].append(result)
                if "error" in result:
                    msg = f"FAILED: {result['error']}"
                else:
                    msg = (
                        f"{result['received']:,} events, "
                        f"{fmt(result['events_per_s'], ',.0f')} ev/s, "
                        f"peak {result['peak_rss_kb'] / 1024:.1f} MB"
                    )
                print(f"stream round {rnd} {client:<16} {msg}", file=sys.stderr, flush=True)
    finally:
        server.stop()
    rows = []
    for client in args.clients:
        ok = [r for r in runs[client] if "error" not in r]

        def med(key: str, ok: list[dict[str, Any]] = ok) -> float | None:
            return median([r.get(key) for r in ok])

        rows.append(
            {
                "client": client,
                "count": args.count,
                "runs_ok": len(ok),
                "received": med("received"),
                "budget_exhausted": any(r["budget_exhausted"] for r in ok),
                "events_per_s": med("events_per_s"),
                "connected_rss_mb": _mb(med("connected_rss_kb")),
                "peak_rss_mb": _mb(med("peak_rss_kb")),
                "growth_mb": _mb(med("growth_kb")),
                "errors": [r["error"] for r in runs[client] if "error" in r],
                "runs": runs[client],
            }
        )
    return rows


def _mb(kb: float | None) -> float | None:
    return None if kb is None else kb / 1024


def _slow_metrics(result: dict[str, Any], duration: float) -> dict[str, Any]:
    samples = result["samples"]  # (t, rss_kb, started, finished, live tasks)
    t_end, rss_end, started_end, finished_end, _ = samples[-1]
    after_1s = next((s for s in samples if s[0] >= 1.0), samples[0])
    mid = next((s for s in samples if s[0] >= t_end / 2), samples[0])
    slope = (rss_end - mid[1]) / 1024 / (t_end - mid[0]) if t_end > mid[0] else None
    return {
        "rss_1s_mb": after_1s[1] / 1024,
        "rss_end_mb": rss_end / 1024,
        "rss_max_mb": max(s[1] for s in samples) / 1024,
        "growth_2nd_half_mb_per_s": slope,
        "handled_per_s": finished_end / t_end if t_end > 0 else None,
        "started": started_end,
        "handled": finished_end,
        "backlog_end": started_end - finished_end,
        "tasks_max": max(s[4] for s in samples),
        "peak_rss_mb": result["peak_rss_kb"] / 1024,
        "disconnect_s": result.get("disconnect_s"),
        "loop_lag_max_ms": result["loop_lag_max_s"] * 1000,
    }


def part_slow(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    # A stream that outlasts every run: the client stops after --duration seconds.
    server = FirehoseProcess(2_000_000_000, "json", ping_interval=args.ping_interval)
    try:
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rnd in range(1, args.rounds + 1):
            for handler in args.handlers:
                for client in args.clients:
                    args.handler = handler
                    cmd = _worker_cmd("slow", client, server.url, args)
                    result = run_worker(cmd, args.duration + 60)
                    result["round"] = rnd
                    if "error" not in result and result["connection_lost"]:
                        result["error"] = f"connection lost: {result['connection_lost']}"
                    if "error" not in result:
                        result["metrics"] = _slow_metrics(result, args.duration)
                        m = result["metrics"]
                        msg = (
                            f"RSS {m['rss_1s_mb']:.1f} -> {m['rss_end_mb']:.1f} MB, "
                            f"{m['handled_per_s']:,.0f} handled/s, backlog {m['backlog_end']:,}"
                        )
                    else:
                        msg = f"FAILED: {result['error']}"
                    runs.setdefault((handler, client), []).append(result)
                    print(
                        f"slow round {rnd} {handler:<12} {client:<16} {msg}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        args.handler = None
        server.stop()
    for (handler, client), rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        row: dict[str, Any] = {
            "handler": handler,
            "client": client,
            "duration_s": args.duration,
            "runs_ok": len(ok),
        }
        for key in (
            "rss_1s_mb",
            "rss_end_mb",
            "rss_max_mb",
            "growth_2nd_half_mb_per_s",
            "handled_per_s",
            "backlog_end",
            "tasks_max",
            "peak_rss_mb",
            "disconnect_s",
            "loop_lag_max_ms",
        ):
            row[key] = median([r["metrics"][key] for r in ok])
        row["errors"] = [r["error"] for r in rs if "error" in r]
        row["runs"] = rs
        rows.append(row)
    return rows


def print_stream(rows: list[dict[str, Any]], rounds: int) -> None:
    def budget(r: dict[str, Any]) -> list[str]:
        if not r["budget_exhausted"]:
            return []
        return [
            f"{r['client']}: stopped by the --budget before the {r['count']:,} events "
            "(its figures are for the events received by then)"
        ]

    print_rows(
        f"\n(a) streaming, one plain sync handler, median of {rounds} round(s)",
        rows,
        [
            common.CLIENT,
            ("events", "received", ",.0f"),
            common.EVENTS_PER_S,
            ("RSS conn MB", "connected_rss_mb", ".1f"),
            ("peak RSS MB", "peak_rss_mb", ".1f"),
            ("growth MB", "growth_mb", ".1f"),
        ],
        left=2,
        notes=budget,
    )


def print_slow(rows: list[dict[str, Any]], rounds: int, duration: float) -> None:
    print_rows(
        f"\n(b) handler slower than the feed, {duration:g} s per run, median of {rounds} round(s)",
        rows,
        [
            ("handler", "handler", ""),
            common.CLIENT,
            ("RSS@1s MB", "rss_1s_mb", ".1f"),
            ("RSS end MB", "rss_end_mb", ".1f"),
            ("RSS max MB", "rss_max_mb", ".1f"),
            ("2nd half MB/s", "growth_2nd_half_mb_per_s", "+.2f"),
            ("handled/s", "handled_per_s", ",.0f"),
            ("backlog", "backlog_end", ",.0f"),
            ("tasks max", "tasks_max", ",.0f"),
            ("lag max ms", "loop_lag_max_ms", ",.0f"),
            common.DISCONNECT_S,
        ],
        left=2,
        label=lambda r: f"{r['handler']} {r['client']}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (benchmarks/memory.py) for what is measured.",
    )
    parser.add_argument("--part", choices=("stream", "slow", "all"), default="all")
    common.add_sized_options(parser, SIZES)
    parser.add_argument("--interval", type=float, default=0.5, help="(b) RSS sampling, seconds")
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=600.0,
        help="the server's Engine.IO ping interval, seconds (default 600: no heartbeat during "
        "a run, see the module docstring)",
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"comma-separated, of {', '.join(CLIENTS)}"
    )
    parser.add_argument(
        "--handlers",
        default=",".join(SLOW_HANDLERS),
        help=f"(b) comma-separated, of {', '.join(SLOW_HANDLERS)}",
    )
    common.add_common_options(
        parser,
        "memory.json",
        "smoke run (< 30 s): count 50000, budget 10 s, duration 1.5 s, 1 round, unless given",
    )
    parser.add_argument("--worker", choices=("stream", "slow"), help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--handler", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.fill_sized_options(args, SIZES)
    if args.worker:
        return worker_main(args)

    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    args.handlers = [h.strip() for h in args.handlers.split(",") if h.strip()]
    if bad := [c for c in args.clients if c not in CLIENTS]:
        parser.error(f"unknown client(s) {bad}")
    if bad := [h for h in args.handlers if h not in SLOW_HANDLERS]:
        parser.error(f"unknown handler(s) {bad}")
    stale = common.warn_if_stale("fastsio" in args.clients)

    started = time.time()
    config = {
        "part": args.part,
        "count": args.count,
        "budget_s": args.budget,
        "duration_s": args.duration,
        "interval_s": args.interval,
        "server_ping_interval_s": args.ping_interval,
        "rounds": args.rounds,
        "clients": args.clients,
        "handlers": args.handlers,
        "fastsio_install_warning": stale,
        "sample_fields": [
            "t_s",
            "rss_kb",
            "handlers_started",
            "handlers_finished",
            "live_asyncio_tasks",
        ],
    }
    machine = common.machine_info()  # before the runs: the load at the start
    parts: dict[str, Any] = {}
    failed = False
    if args.part in ("stream", "all"):
        rows = part_stream(args)
        parts["stream"] = rows
        failed |= any(r["errors"] for r in rows)
        peak = {r["client"]: r.get("peak_rss_mb") for r in rows}
        if peak.get("fastsio") and peak.get("python-socketio"):
            # Issue 4: fastsio's peak RSS no higher than python-socketio's.
            value = peak["python-socketio"] / peak["fastsio"]
            parts["targets"] = {
                "peak RSS streaming, python-socketio / fastsio": common.target(value, ">=", 1.0)
            }
    if args.part in ("slow", "all"):
        args.handler = None
        rows_slow = part_slow(args)
        parts["slow"] = rows_slow
        failed |= any(r["errors"] for r in rows_slow)
    if "stream" in parts:
        print_stream(parts["stream"], args.rounds)
    if "slow" in parts:
        print_slow(parts["slow"], args.rounds, args.duration)
    common.write_results(
        args,
        "memory.json",
        "memory",
        started,
        config,
        machine,
        **parts,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
