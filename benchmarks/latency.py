"""Latency under load: how late an event reaches the handler while a stream runs at a fixed rate.

A paced server (``common.serve_stream``: picows, no fastsio code, in its own process) sends
``tick`` events at 10k, 100k and 400k events/s, each carrying the server's
``time.monotonic_ns()`` taken just before the write as its only argument (``42["tick",<ns>]``). Client and server run on the same machine, so CLOCK_MONOTONIC is one
clock for both (Node's ``process.hrtime`` reads it too). Each client records, at handler entry,
``monotonic_ns() - stamp``; the first 20 % of the stream are warm-up and not counted.
The server writes the events due every millisecond in one write (it wakes about once per
millisecond), so an event's latency includes the time the client spends on the events before it
in that burst: the null reader shows that floor.

Clients, one at a time, interleaved over the rounds:

- ``null``: a Python-level picows listener that takes the stamp out of the frame by position
  (``int(payload[10:-1])``) and decodes nothing else: the floor;
- ``raw_orjson``: picows + ``orjson.loads(payload[2:])``;
- ``fastsio``: ``fastsio.AsyncClient`` with a plain sync handler (uvloop);
- ``python-socketio``: the same code on ``socketio.AsyncClient``;
- ``node``: ``benchmarks/node/latency_client.js`` (socket.io-client 4.8).

Each run has a paced server of its own, started for it and stopped (waited for) after it, so
that nothing one run leaves behind (a slow client's backlog in the server, a grown heap) reaches
the next. Pinning (``--pin``, default ``split``): the server on the first usable CPU, the client
on the second, so they never wait for each other's time slice; with both on one CPU (``same``)
or beside a busy process every client's p99 is the scheduler's slice (~4 ms on this 2-CPU VM),
not its own work. Latency tails are only as good as the machine is quiet, so each run also
records "others CPU %" (the CPUs' busy time less the client's and the server's own CPU, over the
run, as in ``rtt.py``): a run above ``--max-others`` % (default 25) is marked disturbed and run
again in a later round, until every client has ``--rounds`` undisturbed runs (at most
``--max-rounds``; a client short of them is reported over all its runs, flagged). The Python
workers also report their garbage collector's pauses (``gc_collections``, ``gc_max_ms``), so a
collector pause is told apart from a stall of the host.

Reported per client and rate (median over the undisturbed rounds of each figure): p50, p99,
p99.9 and max in microseconds, events received vs sent (a client that falls behind shows it
here, and its latency grows with its backlog), others CPU %, the longest GC pause, and a CDF for
the chart. Targets: fastsio p99 <= 1.5x the null reader's p99 (same run) at 10k and 100k
events/s, fastsio p99 < 1 ms at 400k events/s.

Usage::

    python benchmarks/latency.py                       # 3 rounds of 3 s per client and rate
    python benchmarks/latency.py --quick               # 1 round of 1 s
    python benchmarks/latency.py --rates 100000 --clients null,fastsio --rounds 5
    python benchmarks/latency.py --pin none --max-others 0   # the machine as it is
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from array import array
from typing import Any

import common

NODE_CLIENT = common.NODE_DIR / "latency_client.js"
DEFAULT_RATES = (10_000, 100_000, 400_000)
DEFAULT_CLIENTS = ("null", "raw_orjson", "fastsio", "python-socketio", "node")
WARMUP = 0.2
#: See the docstring ("Pinning").
DEFAULT_PIN = "split"
DEFAULT_MAX_OTHERS = 25.0
#: quantiles kept for the CDF chart: dense in the tail
CDF_QUANTILES = sorted(
    {round(i / 100, 4) for i in range(1, 100)}
    | {round(0.99 + i / 1000, 4) for i in range(10)}
    | {round(0.999 + i / 10000, 5) for i in range(10)}
)

# ==============================================================================================
# Server (``latency.py --server --rate R --duration S``)
# ==============================================================================================


def server_main(rate: int, duration: float) -> int:
    def done_frame(nsp: str, sent: int) -> bytes:
        prefix = b"42" if nsp == "/" else b"42" + nsp.encode() + b","
        return common.ws_frame(prefix + b'["done",%d]' % sent)

    async def stream(transport: Any, nsp: str, drained: Any) -> None:
        write = transport.underlying_transport.write
        prefix = b'42["tick",' if nsp == "/" else b"42" + nsp.encode() + b',["tick",'
        frame = common.ws_frame
        now = time.monotonic_ns
        await asyncio.sleep(0.3)  # let the client finish connecting
        t0 = now()
        end = t0 + int(duration * 1e9)
        total = int(duration * rate)
        sent = 0
        while True:
            t = now()
            due = min(int((t - t0) * rate // 1_000_000_000), total) - sent
            if due > 0:
                # Stamped just before the write; one write per wake-up. No flow control: a
                # client that falls behind sees its backlog in its latencies.
                write(frame(prefix + b"%d]" % now()) * due)
                sent += due
            if t >= end:
                break
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0.05)
        write(done_frame(nsp, sent))

    return common.serve_stream(stream)


# ==============================================================================================
# Clients (``latency.py --worker NAME --url URL``): print one JSON line
# ==============================================================================================


class GcWatch:
    """The garbage collector's pauses in this process (``gc.callbacks``): collections per
    generation, total and longest pause; tells a collector pause from a stall of the host."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.total_ns = 0
        self.max_ns = 0
        self._t0 = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
            return
        pause = time.perf_counter_ns() - self._t0
        self.counts[info["generation"]] += 1
        self.total_ns += pause
        self.max_ns = max(self.max_ns, pause)

    def report(self) -> dict[str, Any]:
        gc.callbacks.remove(self._callback)
        return {
            "gc_collections": self.counts,
            "gc_total_ms": self.total_ns / 1e6,
            "gc_max_ms": self.max_ns / 1e6,
        }


def summarize(samples: array[int], sent: int | None, received: int) -> dict[str, Any]:
    skip = int(len(samples) * WARMUP)
    data = sorted(samples[skip:])
    if not data:
        return {"error": "no samples", "received": received, "sent": sent}
    n = len(data)

    def q(p: float) -> float:
        return data[min(n - 1, int(p * n))] / 1000.0

    return {
        "received": received,
        "sent": sent,
        "samples": n,
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "max_us": data[-1] / 1000.0,
        "cdf": [[p, q(p)] for p in CDF_QUANTILES],
    }


async def run_picows(name: str, url: str, timeout: float) -> dict[str, Any]:
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    samples: array[int] = array("q")
    append = samples.append
    now = time.monotonic_ns
    loads = orjson.loads
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    decode = name == "raw_orjson"

    class Reader(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            data = frame.get_payload_as_bytes()
            if data[:9] == b'42["tick"':
                if decode:
                    append(now() - loads(data[2:])[1])
                else:
                    append(now() - int(data[10:-1]))
            elif data[:1] == b"0" and frame.msg_type == WSMsgType.TEXT:
                transport.send(WSMsgType.TEXT, b"40")
            elif data[:1] == b"2":
                transport.send(WSMsgType.TEXT, b"3")
            elif data[:9] == b'42["done"' and not done.done():
                done.set_result(loads(data[2:])[1])

    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, _ = await ws_connect(Reader, ws_url)
    watch = GcWatch()
    try:
        sent = await asyncio.wait_for(done, timeout)
    finally:
        transport.disconnect()
    return summarize(samples, sent, len(samples)) | watch.report()


async def run_socketio(module: str, url: str, timeout: float) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[no-redef]

    samples: array[int] = array("q")
    append = samples.append
    now = time.monotonic_ns
    finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    # --- the benchmarked client code: identical for python-socketio and fastsio ---
    sio = socketio.AsyncClient()

    @sio.on("tick")
    def tick(stamp: int) -> None:
        append(now() - stamp)

    @sio.on("done")
    def done(sent: int) -> None:
        if not finished.done():
            finished.set_result(sent)

    await sio.connect(url, transports=["websocket"])
    watch = GcWatch()
    sent: int | None = None
    try:
        sent = await asyncio.wait_for(asyncio.shield(finished), timeout)
    except asyncio.TimeoutError:
        pass  # fell behind: report what arrived
    finally:
        await sio.disconnect()
    return summarize(samples, sent, len(samples)) | watch.report()


def worker_main(name: str, url: str, timeout: float) -> int:
    if name in ("null", "raw_orjson"):
        return common.run_worker(run_picows(name, url, timeout))
    return common.run_worker(
        run_socketio("fastsio" if name == "fastsio" else "socketio", url, timeout)
    )


# ==============================================================================================
# Parent
# ==============================================================================================


def run_client(
    name: str,
    url: str,
    timeout: float,
    server: common.ServerProcess | None = None,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """One run, pinned to ``cpus``; with ``other_cpu_percent`` (``common.run_watched_worker``)."""
    if name == "node":
        cmd = ["node", str(NODE_CLIENT), url, "--timeout", str(timeout)]
    else:
        cmd = common.worker_argv(__file__, name, url=url, timeout=timeout)
    return common.run_watched_worker(cmd, timeout + 30, server, cpus)


def run_once(
    client: str,
    rate: int,
    duration: float,
    server_cpus: set[int] | None,
    client_cpus: set[int] | None,
) -> dict[str, Any]:
    """One client's run against a paced server of its own, started for it and stopped (waited
    for) after it: nothing a previous run left behind (a backlog, a big heap) reaches the next.
    ``server_cpu_percent``: the server's CPU over the run."""
    server = common.ServerProcess(
        [sys.executable, __file__, "--server", "--rate", str(rate), "--duration", str(duration)],
        "paced server",
        cpus=server_cpus,
    )
    try:
        t0, cpu0 = time.perf_counter(), server.cpu_seconds()
        r = run_client(client, server.url, duration + 10, server, client_cpus)
        r["server_cpu_percent"] = (server.cpu_seconds() - cpu0) / (time.perf_counter() - t0) * 100
    finally:
        server.stop()
    return r


def median_row(client: str, rate: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the undisturbed runs (over all runs, flagged, when there
    are none)."""
    ok = [r for r in runs if "error" not in r]
    calm = [r for r in ok if not r.get("disturbed")]
    row: dict[str, Any] = {"client": client, "rate": rate, "runs_ok": len(ok)}
    row["runs_undisturbed"] = len(calm)
    if not ok:
        row["error"] = runs[-1].get("error") if runs else "not run"
        return row
    if calm:
        ok = calm
    else:
        row["flag"] = "no undisturbed run: median over disturbed runs"
    for key in ("p50_us", "p99_us", "p999_us", "max_us", "other_cpu_percent"):
        row[key] = statistics.median(r[key] for r in ok)
    row["gc_max_ms"] = max((r.get("gc_max_ms", 0.0) for r in ok), default=0.0)
    row["received_fraction"] = statistics.median(
        r["received"] / r["sent"] if r.get("sent") else 0.0 for r in ok
    )
    # the CDF of the run whose p99 is the median one
    mid = sorted(ok, key=lambda r: r["p99_us"])[len(ok) // 2]
    row["cdf"] = mid["cdf"]
    return row


def _progress(rate: int, client: str, rnd: int, r: dict[str, Any]) -> None:
    head = f"{rate:>7}/s round {rnd} {client:<16}"
    if "error" in r:
        print(f"{head} ERROR {r['error']}", flush=True)
        return
    gc_note = f"  gc max {r['gc_max_ms']:.1f} ms" if "gc_max_ms" in r else ""
    print(
        f"{head} p50 {r['p50_us']:9.1f} us  p99 {r['p99_us']:9.1f} us  p99.9 "
        f"{r['p999_us']:9.1f} us  received {r['received']}/{r.get('sent')}  others "
        f"{r['other_cpu_percent']:.0f}% CPU{gc_note}" + ("  DISTURBED" if r["disturbed"] else ""),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", type=common.comma_ints, default=",".join(map(str, DEFAULT_RATES))
    )
    parser.add_argument("--clients", type=common.comma_list, default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--rounds", type=int, default=3, help="undisturbed runs per client")
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=None,
        help="give up waiting for undisturbed runs after this many rounds (default 3 x rounds)",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=DEFAULT_MAX_OTHERS,
        help="a run during which other processes used more than this %% of a CPU is disturbed: "
        f"it is run again in a later round (default {DEFAULT_MAX_OTHERS:g}; 0: no check)",
    )
    parser.add_argument(
        "--pin",
        choices=("none", "same", "split"),
        default=DEFAULT_PIN,
        help=f"CPU pinning of the server and the client (default {DEFAULT_PIN}): split (one "
        "CPU each), same (one CPU for both), none",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of stream per run")
    common.add_common_options(parser, "latency.json", "1 round of 1 s")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    common.add_worker_options(parser, 30.0)
    args = parser.parse_args(argv)
    if args.server:
        return server_main(args.rate, args.duration)
    if args.worker:
        return worker_main(args.worker, args.url, args.timeout)
    if args.quick:
        args.rounds, args.duration = 1, 1.0
    if args.max_rounds is None:
        args.max_rounds = args.rounds if args.quick else 3 * args.rounds
    args.max_rounds = max(args.max_rounds, args.rounds)
    rates, clients = args.rates, args.clients
    server_cpus, client_cpus = common.pin_plan(args.pin)
    started = time.time()
    results: list[dict[str, Any]] = []
    all_runs: list[dict[str, Any]] = []
    for rate in rates:
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        calm = dict.fromkeys(clients, 0)
        for rnd in range(args.max_rounds):
            todo = [c for c in clients if calm[c] < args.rounds]
            if not todo:
                break
            for client in todo:
                r = run_once(client, rate, args.duration, server_cpus, client_cpus)
                r["disturbed"] = bool(
                    args.max_others and r.get("other_cpu_percent", 0) > args.max_others
                )
                if "error" not in r and not r["disturbed"]:
                    calm[client] += 1
                runs[client].append(r)
                # Per run: the figures; the CDF is kept for the median run only (results).
                all_runs.append(
                    {"client": client, "rate": rate, "round": rnd}
                    | {k: v for k, v in r.items() if k != "cdf"}
                )
                _progress(rate, client, rnd, r)
        results += [median_row(c, rate, runs[c]) for c in clients]

    targets: dict[str, Any] = {}

    def row(client: str, rate: int) -> dict[str, Any] | None:
        for r in results:
            if r["client"] == client and r["rate"] == rate and "p99_us" in r:
                return r
        return None

    for rate in rates:
        fs, floor = row("fastsio", rate), row("null", rate)
        if fs is None:
            continue
        if rate <= 100_000 and floor is not None:
            ratio = fs["p99_us"] / floor["p99_us"]
            targets[f"p99_{rate}_vs_null"] = common.target(
                ratio,
                "<=",
                1.5,
                fastsio_p99_us=fs["p99_us"],
                null_p99_us=floor["p99_us"],
                note=f"fastsio p99 {fs['p99_us']:.0f} us, null floor {floor['p99_us']:.0f} us",
            )
        elif rate > 100_000:
            targets[f"p99_{rate}_ms"] = common.target(
                fs["p99_us"] / 1000,
                "<",
                1.0,
                unit=" ms",
                null_p99_us=floor["p99_us"] if floor else None,
                note=f"fastsio p99; null floor p99 {floor['p99_us'] / 1000:.2f} ms"
                if floor
                else "fastsio p99; no null floor measured",
            )
    print()
    print(f"{'rate/s':>8} {'client':<16} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'recv':>6}")
    for r in results:
        if "p99_us" in r:
            print(
                f"{r['rate']:>8} {r['client']:<16} {r['p50_us']:9.1f} {r['p99_us']:9.1f} "
                f"{r['p999_us']:9.1f} {r['received_fraction']:6.2f}"
            )
        else:
            print(f"{r['rate']:>8} {r['client']:<16} {r.get('error')}")
    config = {
        "rates": rates,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_fraction": WARMUP,
        "pin": args.pin,
        "max_others_percent": args.max_others,
        "max_rounds": args.max_rounds,
    }
    return common.finish(args, "latency", started, config, results, targets, all_runs)


if __name__ == "__main__":
    sys.exit(main())
