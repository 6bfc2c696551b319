"""Ack round-trip benchmark: p50/p99 of sequential ``call``s against the real Node server.

The Node ``socket.io`` 4.8 test peer (tests/peers/server.js, whose ``ack`` event calls back
with its own arguments) runs in its own process, warmed up by 5000 unmeasured calls; each client
runs in its own subprocess, one at a time, interleaved over the rounds (each round starting with
the next client). A client connects over WebSocket, makes ``warmup`` unmeasured calls, then
``count`` measured ones, one at a time: the next call starts when the previous ack has arrived.
Each call sends the sequence number and checks that the ack carries it back. The parent computes
every percentile the same way (nearest rank) from the raw samples; reported per client: p50, p99
and mean of one run's samples (median over the runs; "(best)": the lowest p50 of the runs, the
least disturbed by the host), the client's CPU time per call (user+sys of its process over the
measured calls), and how busy the rest of the machine was meanwhile ("others CPU %": all CPUs'
busy time minus the client's and the server's, over the run's wall time). Latencies are only as good as the machine is quiet: a run
during which other processes used more than ``--max-others`` % of a CPU is marked disturbed and
run again in a later round, until every client has ``--rounds`` undisturbed runs (at most
``--max-rounds`` rounds; a client short of them is reported over all its runs, flagged).

Clients (append ``-asyncio`` to a Python client to run it on the default asyncio loop instead
of uvloop):

- ``raw``: a Python-level picows ``WSListener`` doing the Engine.IO/Socket.IO handshake by hand
  and the ping-pong from its frame callback: ``42<id>["ack",<n>]`` out, ``43<id>[<n>]`` back
  (no future, no task: the practical floor, and the reference of the ratios);
- ``raw-await``: the same exchange made from a coroutine that sends, then awaits a future the
  listener resolves (the least any ``await``-based API costs on top of ``raw``);
- ``fastsio``: ``await sio.call('ack', n)`` (``fastsio-asyncio``: on the default asyncio loop);
- ``python-socketio``: the same code with ``import socketio``;
- ``node``: ``benchmarks/node/rtt_client.js``, ``await socket.emitWithAck('ack', n)`` with Node
  socket.io-client 4.8, resolved from ``tests/peers/node_modules`` (``npm ci --prefix tests/peers``).

``--server-version 2`` runs the same against socket.io 2.5 (Engine.IO 3) with the clients that
can talk to it: ``fastsio`` (negotiating, as by default), ``python-socketio-4`` (python-socketio
4.x, from a venv of its own, ``.venv-psio4``, made on first use) and ``node-v2``
(socket.io-client 2.x, the npm alias ``socket.io-client-v2`` in tests/peers); results go to
``results/rtt-v2.json``.

On a virtual machine the round trip depends on where the two processes run: when the client
and the server are on different CPUs that are otherwise idle, every message wakes a halted
virtual CPU, which can cost more than all the Socket.IO work (on the 2-CPU VM these scripts were
written on: raw p50 ~105 us idle, ~31 us with the other CPU kept busy). So by default
(``--pin same``) both run on one CPU: no cross-CPU wake-up, the round trip is the CPU work of the
two processes plus two context switches, stable from run to run and the figure that tells the
clients apart best; ``--pin none`` measures the machine as it is (``--json-out`` keeps such
runs apart, e.g. ``results/rtt-unpinned.json``). When pinned, "others CPU %" only counts the
pinned CPUs. Short runs (``--quick``) come out slower than long ones on such a VM: read their
figures as a smoke test only.

The installed fastsio is benchmarked, not the source tree: reinstall (``pip install .``) first.

Usage::

    python benchmarks/rtt.py                          # all clients, 5000 calls, 7 rounds
    python benchmarks/rtt.py --clients raw,fastsio --count 20000 --rounds 5
    python benchmarks/rtt.py --pin none               # no pinning: wake-ups between CPUs
    python benchmarks/rtt.py --quick                  # smoke run: 500 calls, 1 round, written
                                                      # to benchmarks/results/quick/rtt.json
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from typing import Any

import common
from common import (
    LEGACY_PSIO,
    NODE_DIR,
    NodeServer,
    cpu_s,
    median,
    print_rows,
    run_worker,
    split_client,
)

NODE_CLIENT = NODE_DIR / "rtt_client.js"
NODE_CLIENT_V2 = "socket.io-client-v2"  # the npm alias of socket.io-client 2.x in tests/peers

DEFAULT_CLIENTS = "raw,raw-await,fastsio,fastsio-asyncio,python-socketio,node"
# Against socket.io 2.5 (--server-version 2): the raw clients speak Engine.IO 4 and
# python-socketio 5 cannot talk to 2.x servers; `node` is then socket.io-client 2.x.
V2_CLIENTS = ("fastsio", LEGACY_PSIO, "node-v2")
V2_DEFAULT_CLIENTS = f"fastsio,fastsio-asyncio,{LEGACY_PSIO},node-v2"
#: What sizes a run (``common.add_sized_options``).
SIZES: list[common.SizedOption] = [
    ("--count", int, 5000, 500, "measured calls"),
    ("--warmup", int, 500, 100, "unmeasured calls first"),
    ("--rounds", int, 7, 1, "undisturbed runs wanted per client"),
]
BASE_CLIENTS = ("raw", "raw-await", "fastsio", "python-socketio", "node")
TARGETS = {"p50_us": 1.3, "p99_us": 1.5}  # fastsio / raw must not exceed these


# ==============================================================================================
# Client side (runs in a worker subprocess: ``rtt.py --worker NAME ...``)
# ==============================================================================================


async def _run_raw(
    url: str, warmup: int, count: int, timeout: float, awaiting: bool
) -> dict[str, Any]:
    """Ping-pong by hand. ``awaiting``: each call awaits a future that the listener resolves
    (what any awaitable API pays at least); otherwise the listener sends the next call right
    from its frame callback."""
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    connected: asyncio.Future[None] = loop.create_future()
    perf_ns = time.perf_counter_ns
    total = warmup + count
    samples = [0] * count
    cpu = [0.0, 0.0]
    TEXT = WSMsgType.TEXT

    class RawRtt(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.n = -1  # the call in flight; -1 while handshaking
            self.expected = b""
            self.t0 = 0
            self.waiter: asyncio.Future[None] | None = None

        def send_next(self, transport: Any) -> None:
            n = self.n = self.n + 1
            if n == warmup:
                cpu[0] = cpu_s()
            if n == total:
                cpu[1] = cpu_s()
                if not done.done():
                    done.set_result(None)
                return
            self.expected = b"43%d[%d]" % (n, n)
            self.t0 = perf_ns()
            transport.send(TEXT, b'42%d["ack",%d]' % (n, n))

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != TEXT:
                if frame.msg_type == WSMsgType.CLOSE:
                    self.fail("server closed the WebSocket")
                return
            data = frame.get_payload_as_bytes()
            if data == self.expected:
                if awaiting:
                    assert self.waiter is not None
                    self.waiter.set_result(None)
                    return
                t1 = perf_ns()
                if self.n >= warmup:
                    samples[self.n - warmup] = t1 - self.t0
                self.send_next(transport)
            elif data == b"2":
                transport.send(TEXT, b"3")
            elif data[:1] == b"0":  # Engine.IO open: join the main namespace
                transport.send(TEXT, b"40")
            elif data[:2] == b"40" and self.n < 0:  # Socket.IO CONNECT reply
                if awaiting:
                    connected.set_result(None)
                else:
                    self.send_next(transport)
            else:
                self.fail(f"unexpected frame {data[:64]!r} (expected {self.expected!r})")

        def fail(self, why: str) -> None:
            for fut in (done, connected, self.waiter):
                if fut is not None and not fut.done():
                    fut.set_exception(RuntimeError(why))

        def on_ws_disconnected(self, transport: Any) -> None:
            self.fail("disconnected before the last ack")

    async def calls(transport: Any, listener: RawRtt) -> None:
        await connected
        for n in range(total):
            if n == warmup:
                cpu[0] = cpu_s()
            listener.expected = b"43%d[%d]" % (n, n)
            # --- the measured call: send, await the future the listener resolves ---
            t0 = perf_ns()
            waiter = listener.waiter = loop.create_future()
            transport.send(TEXT, b'42%d["ack",%d]' % (n, n))
            await waiter
            if n >= warmup:
                samples[n - warmup] = perf_ns() - t0
        cpu[1] = cpu_s()

    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, listener = await ws_connect(RawRtt, ws_url)
    try:
        assert isinstance(listener, RawRtt)
        await asyncio.wait_for(calls(transport, listener) if awaiting else done, timeout)
    finally:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()
        await transport.wait_disconnected()
    return {"samples_ns": samples, "cpu_s": cpu[1] - cpu[0]}


async def _run_socketio(
    module: str, url: str, warmup: int, count: int, timeout: float
) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[no-redef]

    perf_ns = time.perf_counter_ns
    samples = [0] * count
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"])
    try:

        async def calls() -> float:
            for n in range(warmup):
                got = await sio.call("ack", n, timeout=5)
                if got != n:
                    raise RuntimeError(f"ack {n} came back as {got!r}")
            cpu0 = cpu_s()
            for i in range(count):
                n = warmup + i
                # --- the measured client code: identical for python-socketio and fastsio ---
                t0 = perf_ns()
                got = await sio.call("ack", n, timeout=5)
                samples[i] = perf_ns() - t0
                if got != n:
                    raise RuntimeError(f"ack {n} came back as {got!r}")
            return cpu_s() - cpu0

        cpu = await asyncio.wait_for(calls(), timeout)
    finally:
        await sio.disconnect()
    return {
        "samples_ns": samples,
        "cpu_s": cpu,
        "module_file": getattr(socketio, "__file__", None),
    }


def worker_main(args: argparse.Namespace) -> int:
    """Run one Python client once and print one JSON line with its samples."""
    base, loop_kind = split_client(args.worker)
    if base in ("raw", "raw-await"):
        coro = _run_raw(args.url, args.warmup, args.count, args.timeout, base == "raw-await")
    else:
        coro = _run_socketio(
            "fastsio" if base == "fastsio" else "socketio",
            args.url,
            args.warmup,
            args.count,
            args.timeout,
        )
    return run_worker(coro, loop_kind)


# ==============================================================================================
# Parent side
# ==============================================================================================


def _client_cmd(
    name: str, url: str, warmup: int, count: int, timeout: float, python: str
) -> list[str]:
    if name in ("node", "node-v2"):
        cmd = ["node", str(NODE_CLIENT), url, str(warmup), str(count), str(timeout)]
        return cmd + ([NODE_CLIENT_V2] if name == "node-v2" else [])
    return common.worker_argv(
        __file__, name, python, url=url, warmup=warmup, count=count, timeout=timeout
    )


def run_client(
    name: str,
    url: str,
    warmup: int,
    count: int,
    timeout: float,
    server: NodeServer | None = None,
    cpus: set[int] | None = None,
    python: str = sys.executable,
) -> dict[str, Any]:
    """One client run; ``other_cpu_percent``: CPU other processes used meanwhile (on the CPUs
    of the client and the server when they are pinned); ``python``: the interpreter of a Python
    client's worker."""
    result = common.run_watched_worker(
        _client_cmd(name, url, warmup, count, timeout, python), timeout + 30, server, cpus
    )
    if "error" in result:
        return result
    samples = result.pop("samples_ns")
    if len(samples) != count or min(samples) <= 0:
        return {"error": f"got {len(samples)} samples (min {min(samples, default=0)}), not {count}"}
    result.update(latency_stats(samples))
    result["cpu_us_per_call"] = result["cpu_s"] / count * 1e6
    return result


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency_stats(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "p50_us": percentile(s, 50) / 1e3,
        "p90_us": percentile(s, 90) / 1e3,
        "p99_us": percentile(s, 99) / 1e3,
        "p999_us": percentile(s, 99.9) / 1e3,
        "min_us": s[0] / 1e3,
        "max_us": s[-1] / 1e3,
        "mean_us": statistics.fmean(s) / 1e3,
    }


def summarize(name: str, runs: list[dict[str, Any]], count: int, wanted: int) -> dict[str, Any]:
    """Medians over the undisturbed runs, or over every run if fewer than ``wanted`` were."""
    ok = [r for r in runs if "error" not in r]
    calm = [r for r in ok if not r.get("disturbed")]
    row: dict[str, Any] = {
        "client": name,
        "loop": split_client(name)[1],
        "count": count,
        "runs_ok": len(ok),
        "runs_disturbed": len(ok) - len(calm),
        "disturbed": len(calm) < min(wanted, len(ok)),
    }
    if not row["disturbed"]:
        ok = calm
    row["runs_used"] = len(ok)
    for key in (
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "mean_us",
        "cpu_us_per_call",
        "other_cpu_percent",
    ):
        row[key] = median([r.get(key) for r in ok])
    row["p50_us_best"] = min((r["p50_us"] for r in ok), default=None)
    row["p99_us_min"] = min((r["p99_us"] for r in ok), default=None)
    row["p99_us_max"] = max((r["p99_us"] for r in ok), default=None)
    row["peak_rss_mb"] = (m / 1024) if (m := median([r.get("maxrss_kb") for r in ok])) else None
    row["errors"] = [r["error"] for r in runs if "error" in r]
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``<stat>_vs_<reference>``: this client's latency / the reference's (above 1: slower)."""
    refs = {
        "raw": "raw",
        "raw_await": "raw-await",
        "python_socketio": "python-socketio",
        "node": "node",
        "python_socketio_4": LEGACY_PSIO,
        "node_v2": "node-v2",
    }
    by_name = {r["client"]: r for r in rows}
    for row in rows:
        for key in ("p50_us", "p99_us", "mean_us", "p50_us_best"):
            v = row[key]
            for suffix, name in refs.items():
                ref = by_name.get(name)
                short = key.replace("_us", "")
                row[f"{short}_vs_{suffix}"] = v / ref[key] if ref and v and ref[key] else None


def check_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """fastsio (uvloop) against the targets: p50 <= 1.3x raw, p99 <= 1.5x raw."""
    fast = next((r for r in rows if r["client"] == "fastsio"), None)
    out: dict[str, Any] = {}
    for key, limit in TARGETS.items():
        ratio = fast.get(f"{key[:-3]}_vs_raw") if fast else None
        out[key] = {
            "limit_vs_raw": limit,
            "ratio_vs_raw": ratio,
            "met": None if ratio is None else ratio <= limit,
            # for information: against the awaiting raw client, and best run against best run
            "ratio_vs_raw_await": fast.get(f"{key[:-3]}_vs_raw_await") if fast else None,
            "best_ratio_vs_raw": fast.get("p50_best_vs_raw") if fast and key == "p50_us" else None,
        }
    return out


def print_table(rows: list[dict[str, Any]], warmup: int, rounds: int) -> None:
    def disturbed(r: dict[str, Any]) -> list[str]:
        if not r["disturbed"]:
            return []
        return [
            f"{r['client']}: fewer than {rounds} undisturbed runs: medians over all "
            f"{r['runs_used']} runs, disturbed ones included"
        ]

    print_rows(
        f"\nrtt benchmark (ack round trip, Node socket.io server, {warmup} warm-up calls), "
        f"median of {rounds} undisturbed run(s) per client",
        rows,
        [
            common.CLIENT,
            ("calls", "count", ""),
            ("p50 us", "p50_us", ".1f"),
            ("(best)", "p50_us_best", ".1f"),
            ("p99 us", "p99_us", ".1f"),
            ("mean us", "mean_us", ".1f"),
            ("p50/raw", "p50_vs_raw", ".2f"),
            ("p99/raw", "p99_vs_raw", ".2f"),
            ("p50/await", "p50_vs_raw_await", ".2f"),
            ("p50/psio", "p50_vs_python_socketio", ".2f"),
            ("CPU us/call", "cpu_us_per_call", ".1f"),
            ("others CPU %", "other_cpu_percent", ".0f"),
        ],
        notes=disturbed,
    )
    dropped = sum(r["runs_disturbed"] for r in rows if not r["disturbed"])
    if dropped:
        print(f"{dropped} run(s) left out: other processes were busy meanwhile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_sized_options(parser, SIZES)
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=None,
        help="give up waiting for undisturbed runs after this many rounds (default 4 x rounds)",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=25.0,
        help="a run during which other processes used more than this %% of a CPU is disturbed: "
        "it is run again in a later round (default 25; 0 disables the check)",
    )
    common.add_common_options(
        parser, "rtt.json", "smoke run: 500 calls after 100, 1 round (rtt-v2.json with a v2 server)"
    )
    parser.add_argument(
        "--pin",
        choices=("none", "same", "split"),
        default="same",
        help="CPU pinning of the server and the client: same (default: both on one CPU, no "
        "cross-CPU wake-ups, the round trip is the two processes' CPU work), split (one CPU "
        "each), none",
    )
    common.add_client_options(
        parser,
        DEFAULT_CLIENTS,
        120.0,
        "4 (default): socket.io 4.8; 2: socket.io 2.5 (Engine.IO 3), clients "
        f"{', '.join(V2_CLIENTS)} (fastsio negotiates; node is socket.io-client 2.x)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.fill_sized_options(args, SIZES)
    if args.max_rounds is None:
        args.max_rounds = args.rounds if args.quick else 4 * args.rounds
    args.max_rounds = max(args.max_rounds, args.rounds)
    if args.worker:
        return worker_main(args)

    clients = common.chosen_clients(
        parser,
        args,
        (DEFAULT_CLIENTS, V2_DEFAULT_CLIENTS),
        (BASE_CLIENTS, V2_CLIENTS),
        ("node", "node-v2", LEGACY_PSIO),
    )
    pythons, legacy = common.worker_pythons(clients)
    clients = [c for c in clients if pythons[c] is not None]

    stale = common.warn_if_stale(any(split_client(c)[0] == "fastsio" for c in clients))

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    started = time.time()
    load_before = os.getloadavg()
    server_cpus, client_cpus = common.pin_plan(args.pin)
    server = NodeServer(server_cpus, args.server_version)
    try:
        # One unmeasured pass so that V8 has optimized the server's ack path before round 1
        # (a few hundred calls are not enough: the first client measured would pay for it).
        warmer = "fastsio" if args.server_version == 2 else "raw"
        warm = run_client(warmer, server.url, 0, 5000, args.timeout, server, client_cpus)
        if "error" in warm:
            print(f"server warm-up FAILED: {warm['error']}", file=sys.stderr)
        calm = dict.fromkeys(clients, 0)
        for rnd in range(1, args.max_rounds + 1):
            # Each round starts with the next client, so that none is always first after a pause.
            start = (rnd - 1) % len(clients)
            todo = [c for c in clients[start:] + clients[:start] if calm[c] < args.rounds]
            if not todo:
                break
            for client in todo:
                result = run_client(
                    client,
                    server.url,
                    args.warmup,
                    args.count,
                    args.timeout,
                    server,
                    client_cpus,
                    pythons[client] or sys.executable,
                )
                result["round"] = rnd
                result["disturbed"] = bool(
                    args.max_others and result.get("other_cpu_percent", 0) > args.max_others
                )
                if "error" not in result and not result["disturbed"]:
                    calm[client] += 1
                runs[client].append(result)
                _progress(client, rnd, result)
    finally:
        server.stop()

    rows = [summarize(c, runs[c], args.count, args.rounds) for c in clients]
    add_ratios(rows)
    print_table(rows, args.warmup, args.rounds)
    targets = check_targets(rows)
    for key, t in targets.items():
        if t["ratio_vs_raw"] is not None:
            verdict = "met" if t["met"] else "NOT met"
            extra = (
                f"; {t['ratio_vs_raw_await']:.2f}x raw-await"
                if t.get("ratio_vs_raw_await") is not None
                else ""
            )
            if t.get("best_ratio_vs_raw") is not None:
                extra += f"; best run vs best run: {t['best_ratio_vs_raw']:.2f}x raw"
            print(
                f"target fastsio {key[:-3]} <= {t['limit_vs_raw']}x raw: "
                f"{t['ratio_vs_raw']:.2f}x ({verdict}){extra}"
            )

    machine = common.machine_info()
    machine["loadavg_before"] = load_before
    common.write_results(
        args,
        "rtt-v2.json" if args.server_version == 2 else "rtt.json",
        "rtt",
        started,
        {
            "count": args.count,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "max_rounds": args.max_rounds,
            "max_others_percent": args.max_others,
            "pin": args.pin,
            "server_cpus": sorted(server_cpus) if server_cpus else None,
            "client_cpus": sorted(client_cpus) if client_cpus else None,
            "clients": clients,
            "server_version": args.server_version,
            "legacy_python_socketio": legacy or None,
            "server": "tests/peers/server.js (socket.io "
            + ("2.5, Engine.IO 3" if args.server_version == 2 else "4.8")
            + ", JSON parser), loopback",
            "call": 'call("ack", n) -> 42<id>["ack",n] / 43<id>[n]',
            "percentiles": "nearest rank over one round's samples; median over the rounds",
            "fastsio_install_warning": stale,
        },
        machine,
        targets=targets,
        results=rows,
        runs=runs,
    )
    return 1 if any(r["errors"] for r in rows) else 0


def _progress(client: str, rnd: int, result: dict[str, Any]) -> None:
    if "error" in result:
        msg = f"FAILED: {result['error']}"
    else:
        msg = (
            f"p50 {result['p50_us']:.1f} us, p99 {result['p99_us']:.1f} us, "
            f"CPU {result['cpu_us_per_call']:.1f} us/call, "
            f"others {result['other_cpu_percent']:.0f}% CPU"
            + (" (disturbed: run again later)" if result.get("disturbed") else "")
        )
    print(f"round {rnd} {client:<20} {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
