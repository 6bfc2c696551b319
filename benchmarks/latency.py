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

Reported per client and rate (median over rounds of each figure): p50, p99, p99.9 and max in
microseconds, events received vs sent (a client that falls behind shows it here, and its
latency grows with its backlog), and a CDF for the chart. Targets: fastsio p99 <= 1.5x the null
reader's p99 (same run) at 10k and 100k events/s, fastsio p99 < 1 ms at 400k events/s.

Usage::

    python benchmarks/latency.py                       # 3 rounds of 3 s per client and rate
    python benchmarks/latency.py --quick               # 1 round of 1 s
    python benchmarks/latency.py --rates 100000 --clients null,fastsio --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
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
    try:
        sent = await asyncio.wait_for(done, timeout)
    finally:
        transport.disconnect()
    return summarize(samples, sent, len(samples))


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
    sent: int | None = None
    try:
        sent = await asyncio.wait_for(asyncio.shield(finished), timeout)
    except asyncio.TimeoutError:
        pass  # fell behind: report what arrived
    finally:
        await sio.disconnect()
    return summarize(samples, sent, len(samples))


def worker_main(name: str, url: str, timeout: float) -> int:
    if name in ("null", "raw_orjson"):
        return common.run_worker(run_picows(name, url, timeout))
    return common.run_worker(
        run_socketio("fastsio" if name == "fastsio" else "socketio", url, timeout)
    )


# ==============================================================================================
# Parent
# ==============================================================================================


def run_client(name: str, url: str, timeout: float) -> dict[str, Any]:
    if name == "node":
        cmd = ["node", str(NODE_CLIENT), url, "--timeout", str(timeout)]
    else:
        cmd = common.worker_argv(__file__, name, url=url, timeout=timeout)
    return common.run_json_worker(cmd, timeout + 30)


def median_row(client: str, rate: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    row: dict[str, Any] = {"client": client, "rate": rate, "runs_ok": len(ok)}
    if not ok:
        row["error"] = runs[-1].get("error") if runs else "not run"
        return row
    for key in ("p50_us", "p99_us", "p999_us", "max_us"):
        row[key] = statistics.median(r[key] for r in ok)
    row["received_fraction"] = statistics.median(
        r["received"] / r["sent"] if r.get("sent") else 0.0 for r in ok
    )
    # the CDF of the run whose p99 is the median one
    mid = sorted(ok, key=lambda r: r["p99_us"])[len(ok) // 2]
    row["cdf"] = mid["cdf"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", type=common.comma_ints, default=",".join(map(str, DEFAULT_RATES))
    )
    parser.add_argument("--clients", type=common.comma_list, default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--rounds", type=int, default=3)
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
    rates, clients = args.rates, args.clients
    started = time.time()
    results: list[dict[str, Any]] = []
    all_runs: list[dict[str, Any]] = []
    for rate in rates:
        server = common.ServerProcess(
            [
                sys.executable,
                __file__,
                "--server",
                "--rate",
                str(rate),
                "--duration",
                str(args.duration),
            ],
            "paced server",
        )
        try:
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
            for rnd in range(args.rounds):
                for client in clients:
                    r = run_client(client, server.url, args.duration + 10)
                    runs[client].append(r)
                    # Per run: the figures; the CDF is kept for the median run only (results).
                    all_runs.append(
                        {"client": client, "rate": rate, "round": rnd}
                        | {k: v for k, v in r.items() if k != "cdf"}
                    )
                    if "error" in r:
                        print(f"{rate:>7}/s {client:<16} ERROR {r['error']}", flush=True)
                    else:
                        print(
                            f"{rate:>7}/s {client:<16} p50 {r['p50_us']:9.1f} us  p99 "
                            f"{r['p99_us']:9.1f} us  p99.9 {r['p999_us']:9.1f} us  "
                            f"received {r['received']}/{r.get('sent')}",
                            flush=True,
                        )
        finally:
            server.stop()
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
    }
    return common.finish(args, "latency", started, config, results, targets, all_runs)


if __name__ == "__main__":
    sys.exit(main())
