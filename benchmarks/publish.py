"""Publishing benchmark: events/s a client can emit, and pipelined calls/s, to a counting server.

The server (``benchmarks/ref/count_server.pyx``, compiled on first use, run by this script as
its own process) is a picows listener that counts EVENT frames on their first bytes and acks
calls with the count so far; nothing else, so the client is the bottleneck (its CPU is
reported: near 100 % would mean it is not). Each client runs in its own subprocess, one at a
time, interleaved over the rounds; figures are medians of the rounds, ratios are of medians of
the same run.

Scenarios (``--scenarios``):

- ``emit-json-dict``, ``emit-msgpack-dict``: ``emit("tick", {...})``, one dict argument;
- ``emit-json-args``, ``emit-msgpack-args``: ``emit("tick", ("AAPL", 101.25, 300, True))``,
  four arguments;
- ``call-json``: pipelined calls, ``--window`` calls outstanding (``--window`` tasks each
  awaiting ``call("tick", {...})`` in turn), acked by the server.

Every client emits ``count`` events fire-and-forget, yielding to its event loop every
``--chunk`` events (as a publisher that reads its source does; Node: ``setImmediate``), then
makes one call whose ack carries the server's count: the window is the first emit to that ack
(every event before it was counted, the server reads in order). Reported: events/s, client CPU
us/event and CPU %, the client's peak RSS.

Clients: ``fastsio`` (``AsyncClient`` on uvloop), ``raw`` (a Python-level picows sender:
``orjson.dumps`` (msgpack: ``packb``) + framing + ``transport.send`` per event; emits only),
``python-socketio`` (``AsyncClient``), ``node`` (socket.io-client 4.8,
``benchmarks/node/publish_client.js``).

Backpressure (``--backpressure``): a publisher faster than its link. The emit loop (JSON, one
dict) without any yield to the event loop, ``--bp-count`` events, to a slow server (reading
``--bp-rate`` bytes/s), with the client's peak RSS and its growth per event. A client whose
emit waits for the link stays flat; one that queues everything grows with the count.

Targets (issue 14): fire-and-forget JSON >= 0.8x the picows sender and >= 20x python-socketio;
msgpack emits >= 3x python-socketio; pipelined calls >= 10x python-socketio.

Usage::

    python benchmarks/publish.py                     # everything, 5 rounds
    python benchmarks/publish.py --quick             # smoke run, < 1 min
    python benchmarks/publish.py --scenarios emit-json-dict --clients fastsio,raw --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent
REF_DIR = HERE / "ref"
REF_BUILD = REF_DIR / "build"
NODE_CLIENT = common.NODE_DIR / "publish_client.js"

SCENARIOS = (
    "emit-json-dict",
    "emit-json-args",
    "emit-msgpack-dict",
    "emit-msgpack-args",
    "call-json",
)
CLIENTS = ("raw", "fastsio", "python-socketio", "node")
SLOW_CLIENTS = ("python-socketio",)
DICT_ARG = {"sym": "AAPL", "price": 101.25, "qty": 300, "seq": 123456}
ARGS = ("AAPL", 101.25, 300, True)


# ==============================================================================================
# The counting server (``publish.py --server``)
# ==============================================================================================


def build_count_server() -> str | None:
    """Compile count_server.pyx into benchmarks/ref/build; an error message if it fails."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    code = (
        "from setuptools import Extension, setup\n"
        "from Cython.Build import cythonize\n"
        f"setup(ext_modules=cythonize([Extension('count_server', "
        f"[{str(REF_DIR / 'count_server.pyx')!r}], extra_compile_args=['-O2'])],"
        f" include_path=[{site!r}], quiet=True, build_dir={str(REF_BUILD / 'c')!r}),"
        f" script_args=['build_ext', '--build-lib', {str(REF_BUILD)!r},"
        f" '--build-temp', {str(REF_BUILD / 'tmp')!r}])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    if proc.returncode != 0:
        return f"cannot build the counting server: {proc.stderr.strip()[-600:]}"
    return None


async def _start_server(rate: float) -> int:
    sys.path.insert(0, str(REF_BUILD))
    from count_server import CountListener  # type: ignore[import-not-found]
    from picows import ws_create_server

    loop = asyncio.get_running_loop()
    server = await ws_create_server(lambda _req: CountListener(loop, rate), "127.0.0.1", 0)
    return int(server.sockets[0].getsockname()[1])


def start_server(rate: float = 0.0) -> common.ServerProcess:
    """The counting server in its own process (``rate``: bytes/s it reads, 0: no limit)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--server", "--rate", str(rate)]
    return common.ServerProcess(argv, "counting server")


# ==============================================================================================
# Workers (``publish.py --worker CLIENT ...``): one run, one JSON line on stdout
# ==============================================================================================


def _payload(scenario: str) -> Any:
    return ARGS if scenario.endswith("-args") else DICT_ARG


async def _run_socketio(module: str, a: argparse.Namespace) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[import-untyped,no-redef]

    serializer = "msgpack" if "msgpack" in a.scenario else "default"
    sio = socketio.AsyncClient(reconnection=False, serializer=serializer)
    await sio.connect(a.url, transports=["websocket"], wait_timeout=10)
    data = _payload(a.scenario)
    rss0 = common.peak_rss_kb() / 1024
    t0, cpu0 = time.perf_counter(), common.cpu_s()
    if a.scenario.startswith("call"):
        per_task = a.count // a.window

        async def caller() -> None:
            for _ in range(per_task):
                await sio.call("tick", data, timeout=a.timeout)

        await asyncio.gather(*(caller() for _ in range(a.window)))
        sent = per_task * a.window
    else:
        emit = sio.emit
        chunk = a.chunk
        for i in range(a.count):
            await emit("tick", data)
            if chunk and i % chunk == chunk - 1:
                await asyncio.sleep(0)
        sent = a.count
    counted = await sio.call("count", timeout=a.timeout)
    t1, cpu1 = time.perf_counter(), common.cpu_s()
    await sio.disconnect()
    return _summary(sent, counted, t1 - t0, cpu1 - cpu0, rss0)


async def _run_raw(a: argparse.Namespace) -> dict[str, Any]:
    """The reference: a Python-level picows sender, one transport.send per event."""
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    is_msgpack = "msgpack" in a.scenario
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[None] = loop.create_future()
    acked: asyncio.Future[Any] = loop.create_future()

    class Sender(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            data = frame.get_payload_as_bytes()
            if frame.msg_type == WSMsgType.TEXT and data[:1] == b"0":
                if is_msgpack:
                    transport.send(WSMsgType.BINARY, msgpack.packb({"type": 0, "nsp": "/"}))
                else:
                    transport.send(WSMsgType.TEXT, b"40")
            elif frame.msg_type == WSMsgType.TEXT and data[:2] == b"40":
                opened.set_result(None)
            elif frame.msg_type == WSMsgType.TEXT and data[:4] == b"431[":
                acked.set_result(orjson.loads(data[3:])[0])
            elif frame.msg_type == WSMsgType.BINARY:
                pkt = msgpack.unpackb(data)
                if pkt["type"] == 0:
                    opened.set_result(None)
                elif pkt["type"] == 3:
                    acked.set_result(pkt["data"][0])

    ws_url = a.url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, _ = await ws_connect(Sender, ws_url)
    await asyncio.wait_for(opened, 10)
    args = list(ARGS) if a.scenario.endswith("-args") else [DICT_ARG]
    rss0 = common.peak_rss_kb() / 1024
    t0, cpu0 = time.perf_counter(), common.cpu_s()
    send = transport.send
    chunk = a.chunk
    if is_msgpack:
        packb = msgpack.packb
        for i in range(a.count):
            send(WSMsgType.BINARY, packb({"type": 2, "nsp": "/", "data": ["tick", *args]}))
            if chunk and i % chunk == chunk - 1:
                await asyncio.sleep(0)
        send(WSMsgType.BINARY, packb({"type": 2, "nsp": "/", "data": ["count"], "id": 1}))
    else:
        dumps = orjson.dumps
        for i in range(a.count):
            send(WSMsgType.TEXT, b"42" + dumps(["tick", *args]))
            if chunk and i % chunk == chunk - 1:
                await asyncio.sleep(0)
        send(WSMsgType.TEXT, b'421["count"]')
    counted = await asyncio.wait_for(acked, a.timeout)
    t1, cpu1 = time.perf_counter(), common.cpu_s()
    transport.disconnect()
    return _summary(a.count, counted, t1 - t0, cpu1 - cpu0, rss0)


def _summary(sent: int, counted: Any, elapsed: float, cpu: float, rss0: float) -> dict[str, Any]:
    # The final call is counted too.
    return {
        "sent": sent,
        "counted": counted - 1 if isinstance(counted, int) else counted,
        "elapsed_s": elapsed,
        "events_per_s": sent / elapsed if elapsed > 0 else None,
        "cpu_us_per_event": cpu / sent * 1e6,
        "cpu_percent": cpu / elapsed * 100 if elapsed > 0 else None,
        "peak_rss_mb": common.peak_rss_kb() / 1024,
        "rss_before_mb": rss0,
    }


def worker_main(a: argparse.Namespace) -> int:
    return common.run_worker(_run_raw(a) if a.worker == "raw" else _run_socketio(a.worker, a))


# ==============================================================================================
# The parent: rounds, medians, ratios, targets, report
# ==============================================================================================


def run_client(
    client: str, server: common.ServerProcess, scenario: str, count: int, a: argparse.Namespace
) -> dict[str, Any]:
    if client == "node":
        node = shutil.which("node")
        if node is None:
            return {"skipped": "node is not on PATH"}
        if not (common.NODE_PEERS / "node_modules" / "socket.io-client").is_dir():
            return {"skipped": "socket.io-client is not installed (npm ci --prefix tests/peers)"}
        cmd = [
            node,
            str(NODE_CLIENT),
            server.url,
            "--scenario",
            scenario,
            "--count",
            str(count),
            "--window",
            str(a.window),
            "--chunk",
            str(a.chunk),
        ]
    else:
        if client == "raw" and scenario.startswith("call"):
            return {"skipped": "the picows sender is a reference for emits only"}
        cmd = common.worker_argv(
            __file__,
            client,
            url=server.url,
            scenario=scenario,
            count=count,
            window=a.window,
            chunk=a.chunk,
            timeout=a.timeout,
        )
    cpu_before = server.cpu_seconds()
    result = common.run_json_worker(cmd, a.timeout + 60)
    server_cpu = server.cpu_seconds() - cpu_before
    if "error" in result or "skipped" in result:
        return result
    if result["counted"] != result["sent"]:
        result["error"] = f"sent {result['sent']}, the server counted {result['counted']}"
    elapsed = result.get("elapsed_s") or 0
    result["server_cpu_percent"] = server_cpu / elapsed * 100 if elapsed > 0 else None
    return result


def summarize(client: str, scenario: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r and "skipped" not in r]
    row: dict[str, Any] = {"client": client, "scenario": scenario, "runs_ok": len(ok)}
    for key in (
        "events_per_s",
        "cpu_us_per_event",
        "cpu_percent",
        "peak_rss_mb",
        "server_cpu_percent",
    ):
        row[key] = common.median([r.get(key) for r in ok])
    rates = [r["events_per_s"] for r in ok if r.get("events_per_s")]
    row["events_per_s_min"] = min(rates) if rates else None
    row["events_per_s_max"] = max(rates) if rates else None
    row["errors"] = [r["error"] for r in runs if "error" in r]
    row["skipped"] = next((r["skipped"] for r in runs if "skipped" in r), None)
    return row


def _rate(rows: list[dict[str, Any]], client: str, scenario: str) -> float | None:
    for r in rows:
        if r["client"] == client and r["scenario"] == scenario:
            return r.get("events_per_s")  # type: ignore[no-any-return]
    return None


def targets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def ratio(scenario: str, ref: str) -> float | None:
        mine, other = _rate(rows, "fastsio", scenario), _rate(rows, ref, scenario)
        return mine / other if mine and other else None

    out: dict[str, dict[str, Any]] = {}

    def target(name: str, value: float | None, limit: float) -> None:
        if value is not None:
            out[name] = common.target(value, ">=", limit)

    for scenario in ("emit-json-dict", "emit-json-args"):
        target(f"{scenario}: fastsio / picows sender", ratio(scenario, "raw"), 0.8)
        target(f"{scenario}: fastsio / python-socketio", ratio(scenario, "python-socketio"), 20)
    for scenario in ("emit-msgpack-dict", "emit-msgpack-args"):
        target(f"{scenario}: fastsio / python-socketio", ratio(scenario, "python-socketio"), 3)
    target("call-json: fastsio / python-socketio", ratio("call-json", "python-socketio"), 10)
    return out


def add_ratios(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        for ref, key in (
            ("raw", "ratio_vs_raw"),
            ("python-socketio", "ratio_vs_python_socketio"),
            ("node", "ratio_vs_node"),
        ):
            mine, other = r.get("events_per_s"), _rate(rows, ref, r["scenario"])
            r[key] = mine / other if mine and other else None


def run_backpressure(a: argparse.Namespace, clients: list[str]) -> list[dict[str, Any]]:
    out = []
    server = start_server(rate=a.bp_rate)
    a = argparse.Namespace(**{**vars(a), "chunk": 0})  # no yield: faster than any link
    try:
        for client in clients:
            if client not in ("fastsio", "python-socketio"):
                continue
            count = a.bp_count if client == "fastsio" else a.bp_slow_count
            print(f"backpressure: {client}, {count} events to a slow server ...", flush=True)
            r = run_client(client, server, "emit-json-dict", count, a)
            row: dict[str, Any] = {"client": client, "scenario": "backpressure", "count": count}
            if "error" in r:
                row["errors"] = [r["error"]]
            else:
                row["peak_rss_mb"] = r["peak_rss_mb"]
                growth = r["peak_rss_mb"] - r["rss_before_mb"]
                row["rss_growth_mb"] = growth
                row["rss_growth_bytes_per_event"] = growth * 1024 * 1024 / count
                row["events_per_s"] = r["events_per_s"]
            print(f"  {row}", flush=True)
            out.append(row)
    finally:
        server.stop()
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    common.print_rows(
        "",
        rows,
        [
            ("scenario", "scenario", ""),
            common.CLIENT,
            common.EVENTS_PER_S,
            common.CPU_US_PER_EVENT,
            common.CPU_PERCENT,
            common.PEAK_RSS_MB,
            common.SERVER_CPU_PERCENT,
            ("vs raw", "ratio_vs_raw", ".2f"),
            ("vs psio", "ratio_vs_python_socketio", ".1f"),
            ("vs node", "ratio_vs_node", ".2f"),
        ],
        left=2,
        label=lambda r: f"  {r['scenario']} {r['client']}",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--count", type=int, default=500_000, help="events per run")
    p.add_argument(
        "--slow-count",
        type=int,
        default=100_000,
        help="events per run for python-socketio (rates are compared)",
    )
    p.add_argument("--window", type=int, default=100, help="calls outstanding (call-json)")
    p.add_argument("--chunk", type=int, default=1000, help="emits between two loop yields")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--backpressure", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--bp-count", type=int, default=2_000_000)
    p.add_argument(
        "--bp-slow-count",
        type=int,
        default=500_000,
        help="events of the backpressure run for python-socketio",
    )
    p.add_argument(
        "--bp-rate", type=float, default=8e6, help="the slow server's reading rate, bytes/s"
    )
    common.add_common_options(p, "publish.json", "smoke run: small counts, 1 round")
    p.add_argument("--out", dest="json_out", type=Path, help=argparse.SUPPRESS)  # the old name
    # internal
    p.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.server:
        return common.serve_forever(lambda: _start_server(a.rate))
    if a.worker:
        return worker_main(a)

    if a.quick:
        a.count, a.slow_count, a.rounds = 50_000, 20_000, 1
        a.bp_count, a.bp_slow_count = 200_000, 50_000
    error = build_count_server()
    if error:
        print(error, file=sys.stderr)
        return 1
    scenarios = [s for s in a.scenarios.split(",") if s]
    clients = [c for c in a.clients.split(",") if c]
    started = time.time()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    server = start_server()
    try:
        for rnd in range(a.rounds):
            for scenario in scenarios:
                for client in clients:
                    count = a.slow_count if client in SLOW_CLIENTS else a.count
                    r = run_client(client, server, scenario, count, a)
                    runs.setdefault((scenario, client), []).append(r)
                    rate = r.get("events_per_s")
                    print(
                        f"round {rnd + 1}/{a.rounds} {scenario:18} {client:16} "
                        + (
                            f"{rate:12,.0f} ev/s"
                            if rate
                            else str(r.get("error") or r.get("skipped"))
                        ),
                        flush=True,
                    )
    finally:
        server.stop()
    rows = [summarize(c, s, runs[(s, c)]) for s in scenarios for c in clients]
    add_ratios(rows)
    print_table(rows)
    bp = run_backpressure(a, clients) if a.backpressure else []
    goals = targets(rows)
    print("\nTargets:")
    common.print_targets(goals, "  ")
    internal = ("server", "rate", "worker", "url", "scenario", "json_out", "quick")
    common.write_results(
        a,
        "publish.json",
        "publish",
        started,
        {k: v for k, v in vars(a).items() if k not in internal},
        results=rows,
        backpressure=bp,
        metrics=[
            {
                "key": "events_per_s",
                "label": "events/s",
                "better": "higher",
                "kind": "rate",
                "part": "results",
            },
            {
                "key": "cpu_us_per_event",
                "label": "CPU us/event",
                "better": "lower",
                "kind": "us",
                "part": "results",
            },
            {
                "key": "peak_rss_mb",
                "label": "peak RSS MB",
                "better": "lower",
                "kind": "MB",
                "part": "backpressure",
            },
            {
                "key": "rss_growth_bytes_per_event",
                "label": "RSS growth bytes/event",
                "better": "lower",
                "kind": "B",
                "part": "backpressure",
            },
        ],
        targets=goals,
        runs={f"{s} {c}": v for (s, c), v in runs.items()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
