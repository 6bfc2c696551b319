"""Stream benchmark: events/s end to end from a local firehose server, per client.

The firehose (``python -m fastsio.testing``, the installed package) runs in its
own process; each client runs in its own subprocess, one at a time, interleaved over the rounds.
Every client does the Engine.IO/Socket.IO handshake against the same server, receives ``count``
identical events and stops at the server's ``done`` event. Reported per client (median of the
rounds):

- events/s: events received / time from the first event to the ``done`` event, as seen by the
  client's own handler;
- CPU us/event and CPU %: user+sys CPU time of the client process over that same window;
- peak RSS: the client process's own ``ru_maxrss`` at the end;
- server CPU %: the firehose process's CPU over the whole client run divided by the stream
  window (an upper bound; near 100 % would mean the server is the bottleneck).

Clients (append ``-asyncio`` to a Python client's name to run it on the default asyncio loop
instead of uvloop, e.g. ``raw-asyncio``):

- ``raw``: a Python-level picows ``WSListener`` counting frames (the practical ceiling, and the
  reference of the table); picows uses the installed ``aiofastnet`` transport by default;
- ``raw-noafn``: the same with ``ws_connect(..., use_aiofastnet=False)``, i.e. on the loop's
  classic asyncio transport (what picows does without aiofastnet);
- ``raw_orjson``: the raw counter plus ``orjson.loads(payload[2:])`` per frame (msgpack:
  ``unpackb``);
- ``python-socketio``: ``socketio.AsyncClient`` with one plain sync handler;
- ``fastsio``: the same code with ``import fastsio as socketio`` (``fastsio-asyncio``: on the
  default asyncio loop);
- ``fastsio-batch``: fastsio with a ``batch=True`` handler (one call per socket read with a
  list of events);
- ``fastsio-sync``: the sync ``fastsio.Client`` (handlers inline on its background uvloop
  thread), plain handler; the main thread waits for ``done``;
- ``python-socketio-sync``: python-socketio's sync ``socketio.Client`` (needs
  ``websocket-client``); python-engineio starts one thread per incoming message, so handlers
  run out of order: the window ends when the last tick was counted, which may be after
  ``done`` (``late_events`` says how many ticks were still running when ``done`` ran);
- ``node``: ``benchmarks/node/stream_client.js``, Node ``socket.io-client`` 4.8 (msgpack:
  ``socket.io-msgpack-parser``), resolved from ``tests/peers/node_modules``
  (``npm ci --prefix tests/peers``); it reports its own CPU and peak RSS.

The sync clients count with ``next(itertools.count())`` (atomic under the GIL) because
python-socketio's sync client calls handlers from many threads; the async clients use a plain
``counter += 1``.

Ratios are printed against ``raw``, ``raw-noafn``, ``python-socketio`` and ``node`` (whichever
ran).

The installed fastsio is benchmarked, not the source tree: reinstall (``pip install .``) first.

Usage::

    python benchmarks/stream.py                       # all clients, JSON, 5 rounds
    python benchmarks/stream.py --serializer msgpack --clients raw,fastsio
    python benchmarks/stream.py --count 20000 --rounds 1 --clients raw,raw_orjson,python-socketio
    python benchmarks/stream.py --quick               # smoke run of every client, < 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import common
from common import (
    HERE,
    LEGACY_PSIO,
    NODE_DIR,
    NODE_PEERS,
    FirehoseProcess,
    NodeServer,
    ServerProcess,
    cpu_s,
    median,
    print_rows,
    run_worker,
    split_client,
)

NODE_CLIENT = NODE_DIR / "stream_client.js"

DEFAULT_CLIENTS = (
    "raw,raw-noafn,raw_orjson,cy_orjson,python-socketio,python-socketio-sync,node,"
    "fastsio,fastsio-batch,fastsio-sync,fastsio-asyncio"
)
BASE_CLIENTS = (
    "raw",
    "raw-noafn",
    "raw_orjson",
    "cy_orjson",
    "python-socketio",
    "python-socketio-sync",
    "fastsio",
    "fastsio-batch",
    "fastsio-sync",
    "node",
)
#: Against a Socket.IO 2.x server (--server-version 2): the raw clients speak Engine.IO 4 and
#: python-socketio 5 cannot talk to 2.x servers; python-socketio 4.x runs from its own venv and
#: ``node-v2`` is socket.io-client 2.x.
V2_DEFAULT_CLIENTS = f"fastsio,fastsio-batch,fastsio-sync,fastsio-asyncio,{LEGACY_PSIO},node-v2"
V2_CLIENTS = ("fastsio", "fastsio-batch", "fastsio-sync", LEGACY_PSIO, "node-v2")
RAW_CLIENTS = ("raw", "raw-noafn", "raw_orjson")
NO_ASYNCIO_VARIANT = ("python-socketio-sync", "node", "node-v2", LEGACY_PSIO)  # no event loop of ours to swap
SLOW_CLIENTS = ("python-socketio", LEGACY_PSIO)  # get --slow-count events (events/s is what is compared)
SLOWEST_CLIENTS = ("python-socketio-sync",)  # get --sync-slow-count events
#: (client, column header, JSON key) of the ratio columns, in table order.
REFERENCES = (
    ("raw", "vs raw", "ratio_vs_raw"),
    ("raw-noafn", "vs noafn", "ratio_vs_raw_noafn"),
    ("python-socketio", "vs psio", "ratio_vs_python_socketio"),
    ("node", "vs node", "ratio_vs_node"),
    (LEGACY_PSIO, "vs psio4", "ratio_vs_python_socketio_4"),
    ("node-v2", "vs node2", "ratio_vs_node_v2"),
)


# ==============================================================================================
# Client side (runs in a worker subprocess: ``stream.py --worker NAME ...``)
# ==============================================================================================


class _Window:
    """First-event / done timestamps (wall and CPU) of one client run."""

    def __init__(self) -> None:
        self.t0 = self.t1 = self.cpu0 = self.cpu1 = 0.0
        self.done_count: int | None = None

    def first(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = cpu_s()

    def last(self, done_count: Any) -> None:
        self.t1 = time.perf_counter()
        self.cpu1 = cpu_s()
        self.done_count = done_count


def _make_raw_listeners(serializer: str) -> dict[str, type]:
    """Build the raw picows listener classes (imports picows only in the worker)."""
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType

    loads = orjson.loads
    unpackb = msgpack.unpackb
    is_msgpack = serializer == "msgpack"
    connect_packet = msgpack.packb({"type": 0, "nsp": "/"}) if is_msgpack else b"40"
    connect_type = WSMsgType.BINARY if is_msgpack else WSMsgType.TEXT
    # raw_orjson's per-tick decode: msgpack's whole frame, or the JSON past the ``42`` header
    decode, skip = (unpackb, 0) if is_msgpack else (loads, 2)

    class RawCounter(WSListener):  # type: ignore[misc]
        """Counts event frames; everything that is not a tick goes through ``slow``.

        A tick is recognized by its payload size once the first one has been decoded: every
        tick of the stream is the same pre-encoded frame, and nothing else has that size.
        """

        def __init__(self, done: asyncio.Future[None], window: _Window) -> None:
            super().__init__()
            self.done = done
            self.window = window
            self.n = 0
            self.tick_size = -1

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.payload_size == self.tick_size:
                self.n += 1
                return
            self.slow(transport, frame)

        def slow(self, transport: Any, frame: Any) -> None:
            data = frame.get_payload_as_bytes()
            msg_type = frame.msg_type
            if msg_type == WSMsgType.TEXT:
                kind = data[:1]
                if kind == b"2":
                    transport.send(WSMsgType.TEXT, b"3")
                elif kind == b"0":
                    transport.send(connect_type, connect_packet)
                elif kind == b"4" and not is_msgpack:
                    ptype = data[1:2]
                    if ptype == b"2":
                        self.event(loads(data[2:]), len(data))
                    elif ptype != b"0":
                        self.fail(f"unexpected packet {data[:64]!r}")
                else:
                    self.fail(f"unexpected Engine.IO packet {data[:64]!r}")
            elif msg_type == WSMsgType.BINARY and is_msgpack:
                pkt = unpackb(data)
                if pkt["type"] == 2:
                    self.event(pkt["data"], len(data))
                elif pkt["type"] != 0:
                    self.fail(f"unexpected packet {pkt!r:.64}")
            elif msg_type == WSMsgType.CLOSE:
                self.fail("server closed the WebSocket")

        def event(self, args: list[Any], size: int) -> None:
            if args[0] == "done":
                self.window.last(args[1])
                if not self.done.done():
                    self.done.set_result(None)
            else:
                if self.tick_size < 0:
                    self.window.first()
                    self.tick_size = size
                self.n += 1

        def fail(self, why: str) -> None:
            if not self.done.done():
                self.done.set_exception(RuntimeError(why))

        def on_ws_disconnected(self, transport: Any) -> None:
            self.fail("disconnected before 'done'")

    class RawDecoding(RawCounter):
        """The counter plus one decode of each tick (orjson past ``42``, or msgpack)."""

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.payload_size == self.tick_size:
                decode(frame.get_payload_as_bytes()[skip:])
                self.n += 1
                return
            self.slow(transport, frame)

    return {"raw": RawCounter, "raw_orjson": RawDecoding}


async def _run_raw(name: str, url: str, serializer: str, timeout: float) -> dict[str, Any]:
    from picows import ws_connect

    cls = _make_raw_listeners(serializer)["raw" if name == "raw-noafn" else name]
    # None: picows's default (aiofastnet when installed); False: the loop's own transport.
    use_aiofastnet = False if name == "raw-noafn" else None
    window = _Window()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, listener = await ws_connect(
        lambda: cls(done, window), ws_url, use_aiofastnet=use_aiofastnet
    )
    await _wait_then_close(transport, done, timeout)
    return _summary(window, int(getattr(listener, "n")))  # noqa: B009


async def _wait_then_close(transport: Any, done: asyncio.Future[None], timeout: float) -> None:
    """Wait for the raw listener's ``done`` (or its failure), then close the WebSocket."""
    from picows import WSCloseCode

    try:
        await asyncio.wait_for(done, timeout)
    finally:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()
        await transport.wait_disconnected()


REF_DIR = HERE / "ref"
REF_BUILD = HERE / "ref" / "build"


def build_reference_listener() -> str | None:
    """Compile benchmarks/ref/ref_listener.pyx (the issue's compiled reference client) into
    benchmarks/ref/build; returns an error message when Cython or a compiler is missing."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    code = (
        "import sys\n"
        "from setuptools import Extension, setup\n"
        "from Cython.Build import cythonize\n"
        f"setup(ext_modules=cythonize([Extension('ref_listener', [{str(REF_DIR / 'ref_listener.pyx')!r}],"
        " extra_compile_args=['-O2'])],"
        f" include_path=[{site!r}], quiet=True, build_dir={str(REF_BUILD / 'c')!r}),"
        f" script_args=['build_ext', '--build-lib', {str(REF_BUILD)!r},"
        f" '--build-temp', {str(REF_BUILD / 'tmp')!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return f"cannot build the cy_orjson reference client: {proc.stderr.strip()[-400:]}"
    return None


async def _run_cy_orjson(url: str, serializer: str, timeout: float) -> dict[str, Any]:
    """The compiled reference: Cython WSListener + one loads per payload + a plain handler."""
    sys.path.insert(0, str(REF_BUILD))
    from picows import ws_connect
    from ref_listener import RefListener  # type: ignore[import-not-found]

    window = _Window()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counter = 0

    def handler(data: Any) -> None:
        nonlocal counter
        counter += 1

    def on_done(count: Any, n: int) -> None:
        window.last(count)
        if not done.done():
            done.set_result(None)

    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, listener = await ws_connect(
        lambda: RefListener(handler, on_done, window.first, serializer == "msgpack"), ws_url
    )
    await _wait_then_close(transport, done, timeout)
    return _summary(window, counter)


async def _run_socketio(
    module: str, url: str, serializer: str, timeout: float, batch: bool = False
) -> dict[str, Any]:
    if module == "fastsio":
        try:
            import fastsio as socketio

            socketio.AsyncClient  # noqa: B018 - the API this benchmark needs
        except (ImportError, AttributeError) as exc:
            return {"skipped": f"fastsio is not importable yet ({exc})"}
    else:
        import socketio  # type: ignore[no-redef]

    options = {"serializer": "msgpack"} if serializer == "msgpack" else {}  # none in psio 4.x
    # --- the benchmarked client code: identical for python-socketio and fastsio ---
    sio = socketio.AsyncClient(**options)
    counter = 0

    def tick(data: Any) -> None:
        nonlocal counter
        counter += 1

    # --- measurement scaffolding: time the first event, then swap in the plain handler ---
    window = _Window()
    finished = asyncio.Event()

    def first_tick(data: Any) -> None:
        nonlocal counter
        window.first()
        counter += 1
        sio.on("tick", tick)

    def done(count: Any) -> None:
        window.last(count)
        finished.set()

    # --- fastsio-batch: the same with one call per socket read ---
    def tick_batch(items: list[Any]) -> None:
        nonlocal counter
        counter += len(items)

    def first_tick_batch(items: list[Any]) -> None:
        nonlocal counter
        window.first()
        counter += len(items)
        sio.on("tick", tick_batch, batch=True)

    if batch:
        sio.on("tick", first_tick_batch, batch=True)
    else:
        sio.on("tick", first_tick)
    sio.on("done", done)
    await sio.connect(url, transports=["websocket"])
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    finally:
        await sio.disconnect()
    result = _summary(window, counter)
    result["module_file"] = getattr(socketio, "__file__", None)
    return result


def _run_sync(
    module: str, url: str, serializer: str, timeout: float, loop_kind: str
) -> dict[str, Any]:
    """The sync ``Client`` of fastsio or python-socketio; blocks the calling thread."""
    kwargs: dict[str, Any] = {}
    if module == "fastsio":
        try:
            import fastsio as socketio

            socketio.Client  # noqa: B018 - the API this benchmark needs
        except (ImportError, AttributeError) as exc:
            return {"skipped": f"fastsio is not importable yet ({exc})"}
        if loop_kind != "uvloop":
            kwargs["use_uvloop"] = False
    else:
        try:
            import socketio  # type: ignore[no-redef]
            import websocket  # noqa: F401 - websocket-client, the sync WebSocket transport
        except ImportError as exc:
            return {"skipped": f"python-socketio's sync client needs websocket-client ({exc})"}

    # --- the benchmarked client code: identical for python-socketio and fastsio ---
    sio = socketio.Client(serializer="msgpack" if serializer == "msgpack" else "default", **kwargs)
    ticks = itertools.count()

    def tick(data: Any) -> None:
        next(ticks)

    # --- measurement scaffolding ---
    window = _Window()
    finished = threading.Event()
    at_done = 0
    first_lock = threading.Lock()

    def received() -> int:
        return int(ticks.__reduce__()[1][0])  # the count's current value

    def first_tick(data: Any) -> None:
        with first_lock:  # python-socketio may run several first ticks on parallel threads
            if not window.t0:
                window.first()
                sio.on("tick", tick)
        next(ticks)

    def done(count: Any) -> None:
        nonlocal at_done
        window.last(count)
        at_done = received()
        finished.set()

    sio.on("tick", first_tick)
    sio.on("done", done)
    sio.connect(url, transports=["websocket"])
    try:
        if not finished.wait(timeout):
            raise TimeoutError(f"no 'done' after {timeout} s ({received()} events)")
        # Handlers that run on their own threads may still be counting (python-socketio).
        deadline = time.perf_counter() + 30
        while received() < (window.done_count or 0) and time.perf_counter() < deadline:
            time.sleep(0.0005)
        if received() != at_done:
            window.t1 = time.perf_counter()
            window.cpu1 = cpu_s()
    finally:
        sio.disconnect()
    result = _summary(window, received())
    result["late_events"] = result["received"] - at_done
    result["module_file"] = getattr(socketio, "__file__", None)
    return result


def _summary(window: _Window, received: int) -> dict[str, Any]:
    elapsed = window.t1 - window.t0
    cpu = window.cpu1 - window.cpu0
    return {
        "received": received,
        "done_count": window.done_count,
        "elapsed_s": elapsed,
        "events_per_s": received / elapsed if elapsed > 0 else None,
        "cpu_s": cpu,
        "cpu_us_per_event": cpu / received * 1e6 if received else None,
        "cpu_percent": cpu / elapsed * 100 if elapsed > 0 else None,
    }


def worker_main(args: argparse.Namespace) -> int:
    """Run one client once and print one JSON line with its figures."""
    base, loop_kind = split_client(args.worker)
    if base in ("fastsio-sync", "python-socketio-sync"):
        module = "fastsio" if base == "fastsio-sync" else "socketio"
        try:
            result = _run_sync(module, args.url, args.serializer, args.timeout, loop_kind)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["loop"] = loop_kind if module == "fastsio" else "threads"
        result["maxrss_kb"] = common.peak_rss_kb()
        print(json.dumps(result), flush=True)
        return 0
    if base == "cy_orjson":
        coro = _run_cy_orjson(args.url, args.serializer, args.timeout)
    elif base in RAW_CLIENTS:
        coro = _run_raw(base, args.url, args.serializer, args.timeout)
    else:
        coro = _run_socketio(
            "fastsio" if base.startswith("fastsio") else "socketio",
            args.url,
            args.serializer,
            args.timeout,
            batch=base == "fastsio-batch",
        )
    return run_worker(coro, loop_kind)


# ==============================================================================================
# Parent side
# ==============================================================================================


def run_client(
    name: str,
    server: ServerProcess,
    serializer: str,
    count: int,
    timeout: float,
    python: str = sys.executable,
) -> dict[str, Any]:
    """One run of one client; ``python``: the interpreter of a Python client's worker."""
    if name in ("node", "node-v2"):
        module = "socket.io-client-v2" if name == "node-v2" else "socket.io-client"
        node = shutil.which("node")
        if node is None:
            return {"skipped": "node is not on PATH"}
        if not (NODE_PEERS / "node_modules" / module).is_dir():
            return {"skipped": f"{module} is not installed (npm ci --prefix tests/peers)"}
        cmd = [
            node,
            str(NODE_CLIENT),
            server.url,
            "--parser",
            serializer,
            "--timeout",
            str(timeout),
            "--client",
            module,
        ]
    else:
        cmd = common.worker_argv(
            __file__, name, python, url=server.url, serializer=serializer, timeout=timeout
        )
    cpu_before = server.cpu_seconds()
    result = common.run_json_worker(cmd, timeout + 30)
    server_cpu = server.cpu_seconds() - cpu_before
    if "error" in result or "skipped" in result:
        return result
    if result["received"] != count or result["done_count"] != count:
        result["error"] = (
            f"received {result['received']} events, done said "
            f"{result['done_count']}, expected {count}"
        )
    result["server_cpu_percent"] = (
        server_cpu / result["elapsed_s"] * 100 if result["elapsed_s"] > 0 else None
    )
    return result


def summarize(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r and "skipped" not in r]
    skipped = next((r["skipped"] for r in runs if "skipped" in r), None)
    errors = [r["error"] for r in runs if "error" in r]

    def med(key: str) -> float | None:
        return median([r.get(key) for r in ok])

    return {
        "client": name,
        "loop": split_client(name)[1],
        "count": runs[0].get("count") if runs else None,
        "runs_ok": len(ok),
        "events_per_s": med("events_per_s"),
        "events_per_s_min": min((r["events_per_s"] for r in ok), default=None),
        "events_per_s_max": max((r["events_per_s"] for r in ok), default=None),
        "cpu_us_per_event": med("cpu_us_per_event"),
        "cpu_percent": med("cpu_percent"),
        "peak_rss_mb": (m / 1024 if (m := med("maxrss_kb")) is not None else None),
        "server_cpu_percent": med("server_cpu_percent"),
        "late_events": med("late_events"),
        "skipped": skipped,
        "errors": errors,
    }


def reference_rates(rows: list[dict[str, Any]]) -> dict[str, float]:
    """events/s of each reference client that ran successfully."""
    rates = {}
    for ref, _, _ in REFERENCES:
        eps = next((r["events_per_s"] for r in rows if r["client"] == ref), None)
        if eps:
            rates[ref] = eps
    return rates


def add_ratios(rows: list[dict[str, Any]]) -> None:
    rates = reference_rates(rows)
    for row in rows:
        eps = row["events_per_s"]
        for ref, _, key in REFERENCES:
            row[key] = eps / rates[ref] if eps and ref in rates else None


def print_table(rows: list[dict[str, Any]], serializer: str, rounds: int) -> None:
    refs = [(ref, col, key) for ref, col, key in REFERENCES if ref in reference_rates(rows)]

    def notes(r: dict[str, Any]) -> list[str]:
        out = [f"{r['client']}: skipped - {r['skipped']}"] if r["skipped"] else []
        if r.get("late_events"):
            out.append(
                f"{r['client']}: median {r['late_events']:.0f} tick handlers still running "
                "when 'done' was handled (handlers run out of order)"
            )
        return out

    print_rows(
        f"\nstream benchmark, serializer={serializer}, median of {rounds} round(s)",
        rows,
        [
            common.CLIENT,
            ("events", "count", ""),
            common.EVENTS_PER_S,
            *((col, key, ".2f") for _, col, key in refs),
            common.CPU_US_PER_EVENT,
            common.CPU_PERCENT,
            common.PEAK_RSS_MB,
            common.SERVER_CPU_PERCENT,
        ],
        notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="events per run for the fast clients (default 1000000; --quick: 100000)",
    )
    parser.add_argument(
        "--slow-count",
        type=int,
        default=None,
        help="events per run for python-socketio (default min(count, 100000); --quick: 5000)",
    )
    parser.add_argument(
        "--sync-slow-count",
        type=int,
        default=None,
        help="events per run for python-socketio-sync (default min(count, 20000); --quick: 2000)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 5; --quick: 1")
    parser.add_argument("--serializer", choices=("json", "msgpack"), default="json")
    common.add_common_options(
        parser,
        "stream-<serializer>.json",
        "smoke run (< 30 s): fewer events and 1 round unless given explicitly",
    )
    common.add_client_options(
        parser,
        DEFAULT_CLIENTS,
        300.0,
        "4 (default): fastsio's embedded firehose; 2: the Node socket.io 2.5 peer "
        "(Engine.IO 3) with --firehose, JSON only, clients "
        f"{', '.join(V2_CLIENTS)} (default {V2_DEFAULT_CLIENTS}); results in "
        "stream-json-v2.json",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)

    if args.count is None:
        args.count = 100_000 if args.quick else 1_000_000
    if args.quick:
        args.slow_count = 5_000 if args.slow_count is None else args.slow_count
        args.sync_slow_count = 2_000 if args.sync_slow_count is None else args.sync_slow_count
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    v2 = args.server_version == 2
    if v2 and args.serializer != "json":
        parser.error("--server-version 2 streams JSON only")
    clients = common.chosen_clients(
        parser,
        args,
        (DEFAULT_CLIENTS, V2_DEFAULT_CLIENTS),
        (BASE_CLIENTS, V2_CLIENTS),
        NO_ASYNCIO_VARIANT,
    )
    slow_count = args.slow_count if args.slow_count is not None else min(args.count, 100_000)
    sync_slow_count = (
        args.sync_slow_count if args.sync_slow_count is not None else min(args.count, 20_000)
    )

    def count_of(client: str) -> int:
        base = split_client(client)[0]
        if base in SLOWEST_CLIENTS:
            return sync_slow_count
        return slow_count if base in SLOW_CLIENTS else args.count

    if "cy_orjson" in [split_client(c)[0] for c in clients]:
        error = build_reference_listener()
        if error:
            print(f"warning: {error}; skipping cy_orjson", file=sys.stderr)
            clients = [c for c in clients if split_client(c)[0] != "cy_orjson"]

    stale = common.warn_if_stale(any(split_client(c)[0].startswith("fastsio") for c in clients))

    pythons, legacy = common.worker_pythons(clients)

    servers: dict[int, ServerProcess] = {}
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    started = time.time()
    try:
        for count in sorted({count_of(c) for c in clients}):
            servers[count] = (
                NodeServer(server_version=2, extra=["--firehose", str(count)])
                if v2
                else FirehoseProcess(count, args.serializer)
            )
        for rnd in range(1, args.rounds + 1):
            for client in clients:
                if runs[client] and "skipped" in runs[client][0]:
                    continue
                count = count_of(client)
                python = pythons[client]
                if python is None:
                    result = {"skipped": f"no python-socketio 4.x: {legacy['version_or_error']}"}
                else:
                    result = run_client(
                        client,
                        servers[count],
                        args.serializer,
                        count,
                        args.timeout,
                        python,
                    )
                result["count"] = count
                result["round"] = rnd
                runs[client].append(result)
                _progress(client, rnd, result)
    finally:
        for server in servers.values():
            server.stop()

    rows = [summarize(c, runs[c]) for c in clients]
    add_ratios(rows)
    print_table(rows, args.serializer, args.rounds)
    targets = stream_targets(rows, args.serializer)
    common.print_targets(targets)

    common.write_results(
        args,
        f"stream-{args.serializer}{'-v2' if v2 else ''}.json",
        "stream",
        started,
        {
            "serializer": args.serializer,
            "count": args.count,
            "slow_count": slow_count,
            "sync_slow_count": sync_slow_count,
            "rounds": args.rounds,
            "clients": clients,
            "fastsio_install_warning": stale,
            "server_version": args.server_version,
            "server": "tests/peers/server.js --server-version 2 --firehose (socket.io 2.5, "
            "Engine.IO 3; pre-built frames)"
            if v2
            else "fastsio/testing.py firehose (pre-encoded frames)",
            "legacy_python_socketio": legacy or None,
            "event": '42["tick",{"s":"AAPL","p":123.45,"q":100,"t":1700000000123}]'
            if args.serializer == "json"
            else "msgpack {type:2,nsp:'/',data:['tick',{...}]}",
        },
        results=rows,
        targets=targets,
        runs=runs,
    )
    return 1 if any(r["errors"] for r in rows) else 0


# Issue 4's targets: (name, client, reference, minimum ratio of their events/s).
STREAM_TARGETS = {
    "json": [
        ("fastsio / raw counter", "fastsio", "raw", 0.9),
        ("fastsio / python-socketio", "fastsio", "python-socketio", 45),
        ("fastsio / node", "fastsio", "node", 4),
        ("fastsio-sync / fastsio", "fastsio-sync", "fastsio", 0.8),
        ("fastsio-batch / raw counter", "fastsio-batch", "raw", 1.3),
    ],
    "msgpack": [
        ("fastsio / raw picows + unpackb reader", "fastsio", "raw_orjson", 1.5),
        ("fastsio / python-socketio", "fastsio", "python-socketio", 15),
    ],
}


def stream_targets(rows: list[dict[str, Any]], serializer: str) -> dict[str, dict[str, Any]]:
    """The targets whose clients both ran: ratio of the medians of events/s."""
    rate = {r["client"]: r.get("events_per_s") for r in rows}
    out = {}
    for name, client, ref, limit in STREAM_TARGETS[serializer]:
        if rate.get(client) and rate.get(ref):
            value = rate[client] / rate[ref]
            out[name] = common.target(value, ">=", limit)
    return out


def _progress(client: str, rnd: int, result: dict[str, Any]) -> None:
    if "skipped" in result:
        msg = f"skipped: {result['skipped']}"
    elif "error" in result:
        msg = f"FAILED: {result['error']}"
    else:
        msg = (
            f"{result['events_per_s']:,.0f} ev/s, {result['cpu_us_per_event']:.2f} us/ev, "
            f"{result['maxrss_kb'] / 1024:.1f} MB"
        )
    print(f"round {rnd} {client:<20} {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
