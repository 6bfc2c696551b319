"""Long-polling throughput: events/s received and sent over HTTP long-polling only.

The server is a minimal Engine.IO v4 polling endpoint in its own process, built not to be the
bottleneck: a raw asyncio Protocol speaking HTTP/1.1 keep-alive on uvloop (Content-Length
bodies, requests answered in order, whole responses pre-encoded where they repeat). With one
GET outstanding at a time, events/s is 16 / (client time + server time + wake-ups) per GET, and
an aiohttp web server took about as long per request as the fastest client, which capped the
ratio between clients; this one parses a request in a few microseconds.

- receive: after the client's CONNECT, every GET is answered at once with ``--batch``
  pre-encoded events joined by ``\\x1e`` (one string built once), until ``count`` events went
  out, then ``42["done",count]``;
- send: every POST body is split on ``\\x1e`` and its records counted; an ack-requesting
  ``done`` event (the client's final ``call``) is answered with an ACK on the pending GET.

Clients (``transports=['polling']``, one at a time, interleaved over the rounds): ``fastsio``
and ``python-socketio`` ``AsyncClient`` (uvloop). Receive: events/s from the first event to
``done``, as seen by the handler. Send: ``count`` fire-and-forget ``emit``s then one ``call``
whose ack ends the window (the server acks it after counting every earlier record).
Reported: events/s (median of the rounds), client CPU us/event.

Packets per HTTP request decide these figures, and python-engineio caps them at 16 both ways
(``Payload.max_decode_packets``): its client aborts the connection on a GET response of more
than 16 packets, and its server drops a POST of more than 16 without an error (the POST
handler's bare ``except`` answers 200). So the receive comparison runs at 16 packets per GET.
fastsio sends at most 16 per POST to a python-engineio server (told by its open packet) and
fills each POST up to maxPayload otherwise, as engine.io-client does; this server's open packet
is Node's, so fastsio fills its POSTs (1 MB), while python-socketio's client puts everything
queued into one POST (which a python-socketio server would drop). ``fastsio-big`` receives
1000 packets per GET (what a Node server sends to a busy client); sending, it is fastsio again
(its per-POST count cap, for python-engineio servers only, is raised to 1000 in the worker).

Targets: fastsio >= 5x python-socketio, both directions, events/s.

Placement: receiving is a strict ping-pong (one GET outstanding, the client idle while the
server answers), so each GET costs a wake-up of the other process. On a VM, a wake-up across
CPUs can cost more than fastsio's whole work per GET: a bare reader that only counts records
(no decoding) did 58k-141k events/s with the server on the other CPU and 365k-585k with both
on one CPU. python-socketio's client, busy the whole time, barely notices. ``--same-cpu N``
pins the server and the clients to CPU N, which removes that cost for both clients (nothing
runs in parallel while receiving anyway); sending overlaps the client's encoding with the
server's counting, so pinning it to one CPU takes that overlap away.

Usage::

    python benchmarks/polling.py                 # 3 rounds, 50k events (python-socketio 20k)
    python benchmarks/polling.py --quick         # 1 round, 20k events (python-socketio 5k)
    python benchmarks/polling.py --instructions  # instructions per received record (callgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import common

DEFAULT_CLIENTS = ("fastsio", "python-socketio")
SLOW_CLIENTS = ("python-socketio",)
#: packets per GET response of ``fastsio-big`` receiving, and its per-POST cap sending
BIG_BATCH = 1000
PAYLOAD = {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}

# ==============================================================================================
# Server
# ==============================================================================================


def server_main(batch: int) -> int:
    import orjson

    event = b"4" + b"2" + orjson.dumps(["tick", PAYLOAD])
    #: whole responses (status line, headers, body) of stream chunks, by packet count
    chunks: dict[int, bytes] = {}

    def response(body: bytes, status: bytes = b"200 OK") -> bytes:
        return (
            b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body)
        )

    class Session:
        def __init__(self, sid: bytes, count: int, batch: int) -> None:
            self.sid = sid
            self.remaining = count  # events still to stream (receive mode)
            self.count = count
            self.streaming = False
            self.out: list[bytes] = []
            self.received = 0
            self.closed = False
            self.batch = batch
            self.poller: Conn | None = None  # the connection of the GET waiting for packets
            self.poll_timer: asyncio.TimerHandle | None = None

        def ready(self) -> bool:
            return bool(self.out) or (self.streaming and self.remaining > 0) or self.closed

        def answer(self) -> bytes:
            """The response to a GET, once ready()."""
            if self.closed:
                sessions.pop(self.sid, None)
                return response(b"1")
            if self.out:
                body = b"\x1e".join(self.out)
                self.out.clear()
                return response(body)
            n = self.batch
            if self.remaining >= n:
                resp = chunks.get(n) or chunks.setdefault(n, response(b"\x1e".join([event] * n)))
                self.remaining -= n
            else:
                resp = response(b"\x1e".join([event] * self.remaining))
                self.remaining = 0
            if self.remaining == 0:
                # ``done`` in the next response: this one holds the batch size already.
                self.out.append(b'42["done",%d]' % self.count)
                self.streaming = False
            return resp

        def wake(self) -> None:
            conn = self.poller
            if conn is not None and self.ready():
                self.poller = None
                if self.poll_timer is not None:
                    self.poll_timer.cancel()
                conn.respond(self.answer())

        def poll_expired(self) -> None:
            conn, self.poller = self.poller, None
            if conn is not None:
                conn.respond(response(b"6"))

    sessions: dict[bytes, Session] = {}
    next_sid = iter(range(1, 1 << 62))
    loop: asyncio.AbstractEventLoop

    class Conn(asyncio.Protocol):
        """One keep-alive HTTP/1.1 connection: requests answered in order, a long-poll GET
        parked on its session until there is something to send."""

        def __init__(self) -> None:
            self.buf = bytearray()
            self.waiting = False  # a parked GET: later requests wait behind it
            self.close_after = False
            self.processing = False
            self.need = 0  # bytes the request being read needs in buf, once its head is known
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def connection_lost(self, exc: Exception | None) -> None:
            self.transport = None

        def data_received(self, data: bytes) -> None:
            self.buf += data
            self.process()

        def respond(self, resp: bytes) -> None:
            self.waiting = False
            if self.transport is None:
                return
            self.transport.write(resp)
            if self.close_after:
                self.transport.close()
                return
            if self.buf and not self.processing:
                self.process()  # requests that came in behind a parked GET

        def process(self) -> None:
            self.processing = True
            try:
                self.process_requests()
            finally:
                self.processing = False

        def process_requests(self) -> None:
            buf = self.buf
            while not self.waiting and self.transport is not None:
                if len(buf) < self.need:
                    return  # a body still coming: no scan of the whole buffer per read
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 65536:
                        self.transport.close()
                    return
                head = bytes(buf[:end]).split(b"\r\n")
                method, _, rest = head[0].partition(b" ")
                target = rest.rpartition(b" ")[0]
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection":
                        self.close_after = value.strip().lower() == b"close"
                    elif name == b"transfer-encoding":
                        self.transport.write(response(b"no chunked bodies", b"411 Length Required"))
                        self.transport.close()
                        return
                if len(buf) < end + 4 + length:
                    self.need = end + 4 + length
                    return
                self.need = 0
                body = bytes(buf[end + 4 : end + 4 + length])
                del buf[: end + 4 + length]
                self.handle(method, target, body)

        def handle(self, method: bytes, target: bytes, body: bytes) -> None:
            query = dict(p.partition(b"=")[::2] for p in target.partition(b"?")[2].split(b"&") if p)
            sid = query.get(b"sid")
            if sid is None:
                sid = b"s%d" % next(next_sid)
                sessions[sid] = Session(
                    sid, int(query.get(b"count", b"0")), int(query.get(b"batch", batch))
                )
                open_packet = b"0" + orjson.dumps(
                    {
                        "sid": sid.decode(),
                        "upgrades": [],
                        "pingInterval": 60000,
                        "pingTimeout": 60000,
                        "maxPayload": 1_000_000,
                    }
                )
                return self.respond(response(open_packet))
            s = sessions.get(sid)
            if s is None:
                return self.respond(
                    response(b'{"code":1,"message":"Session ID unknown"}', b"400 Bad Request")
                )
            if method == b"POST":
                first = body[:2]
                if first[:1] != b"1" and first != b"40" and not any(map(body.__contains__, MARKS)):
                    # Events only (the common body): counted in C. A record never holds a
                    # \x1e (JSON escapes control characters), so each event starts the body
                    # or follows one.
                    s.received += body.count(b"\x1e42") + (body[:2] == b"42")
                    self.respond(OK)
                    return None
                for rec in body.split(b"\x1e"):
                    if rec[:2] == b"42":
                        s.received += 1
                        if b'"done"' in rec[:40]:
                            i = 2
                            while rec[i : i + 1].isdigit():
                                i += 1
                            s.out.append(b"43" + rec[2:i] + b"[%d]" % s.received)
                    elif rec[:2] == b"40":
                        s.out.append(b'40{"sid":"x"}')
                        s.streaming = s.count > 0
                    elif rec[:1] == b"1":
                        s.closed = True
                self.respond(OK)
                s.wake()
                return None
            # GET: queued control packets first, then a chunk of the stream
            if s.ready():
                return self.respond(s.answer())
            if s.poller is not None:  # a second GET at once: the first one ends
                s.poll_expired()
            self.waiting = True
            s.poller = self
            s.poll_timer = loop.call_later(20, s.poll_expired)
            return None

    OK = response(b"ok")
    #: What marks a POST body holding more than events after its first record: the ``done``
    #: call, a CONNECT, a CLOSE.
    MARKS = (b'"done"', b"\x1e40", b"\x1e1")

    async def start() -> int:
        nonlocal loop
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Conn, "127.0.0.1", 0)
        return int(server.sockets[0].getsockname()[1])

    return common.serve_forever(start)


# ==============================================================================================
# Workers
# ==============================================================================================


_cpu = common.cpu_s


async def sio_run(
    module: str, url: str, direction: str, count: int, batch: int, timeout: float
) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[no-redef]

    if module == "fastsio" and batch == BIG_BATCH and direction == "send":
        # fastsio-big sending: what the 16-packets-per-POST cap costs. The cap exists because
        # python-engineio servers drop a larger POST without an error; Node's have no cap.
        import importlib

        for name in ("fastsio.transports.polling", "fastsio.engine"):
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(mod, "MAX_PACKETS_PER_POST"):
                mod.MAX_PACKETS_PER_POST = BIG_BATCH
    state = {"events": 0, "t0": 0.0, "t1": 0.0, "cpu0": 0.0, "cpu1": 0.0}
    finished = asyncio.Event()
    sio = socketio.AsyncClient()

    @sio.on("tick")
    def tick(data: Any) -> None:
        if not state["events"]:
            state["t0"], state["cpu0"] = time.perf_counter(), _cpu()
        state["events"] += 1

    @sio.on("done")
    def done(n: int) -> None:
        state["t1"], state["cpu1"] = time.perf_counter(), _cpu()
        finished.set()

    query = f"?count={count}&batch={batch}" if direction == "recv" else ""
    await sio.connect(url + query, transports=["polling"])
    try:
        if direction == "recv":
            await asyncio.wait_for(finished.wait(), timeout)
            events = state["events"]
        else:
            state["t0"], state["cpu0"] = time.perf_counter(), _cpu()
            for _ in range(count):
                await sio.emit("tick", PAYLOAD)
            got = await sio.call("done", timeout=timeout)
            state["t1"], state["cpu1"] = time.perf_counter(), _cpu()
            events = count
            if got != count + 1:
                return {"error": f"server counted {got} events, expected {count + 1}"}
    finally:
        await sio.disconnect()
    elapsed = state["t1"] - state["t0"]
    return {
        "events": events,
        "elapsed_s": elapsed,
        "events_per_s": events / elapsed if elapsed > 0 else None,
        "cpu_us_per_event": (state["cpu1"] - state["cpu0"]) / events * 1e6,
    }


def worker_main(args: argparse.Namespace) -> int:
    mod = "fastsio" if args.worker.startswith("fastsio") else "socketio"
    batch = BIG_BATCH if args.worker == "fastsio-big" else args.batch
    return common.run_worker(
        sio_run(mod, args.url, args.direction, args.count, batch, args.timeout)
    )


# ==============================================================================================
# Parent
# ==============================================================================================


def run_worker(
    client: str, timeout: float, cpus: set[int] | None = None, **options: Any
) -> dict[str, Any]:
    cmd = common.worker_argv(__file__, client, **options, timeout=timeout)
    return common.run_json_worker(cmd, timeout + 30, preexec_fn=common.pinner(cpus))


# ==============================================================================================
# Instructions per received record (``polling.py --instructions``): noise-free, needs valgrind
# ==============================================================================================

RECORD = b'42["tick",{"s":"AAPL","p":123.45,"q":100,"t":1700000000123}]'


def feed_records(path: str, n: int) -> int:
    """Feed ``n`` event records to the core's Dispatcher, by ``path``: ``record`` (what the
    polling transport does now, ``feed_poll_record``) or ``decoded`` (what it did before: the
    record through ``decode_eio_payload``, then ``feed_text(chr(48 + type) + str)``)."""
    from fastsio._ext import _core

    class Client:  # the core's ClientHooks, doing nothing
        def on_event(self, nsp: str, ack_id: Any, data: Any) -> None:
            pass

        def on_control_packet(self, packet: Any) -> None:
            pass

        def on_unknown_ack(self, nsp: str, ack_id: int) -> None:
            pass

        def on_handler_error(self, event: str, nsp: str, exc: BaseException) -> None:
            pass

    conn = _core.Dispatcher(Client(), None)
    conn.poll_sender = lambda data, binary: None
    decode = _core.decode_eio_payload
    for _ in range(n):
        if path == "record":
            conn.feed_poll_record(RECORD, 1_000_000)
        else:
            for t, data in decode(RECORD, max_message_size=1_000_000):
                conn.feed_text(chr(48 + t) + data)
    return 0


def instructions_main() -> int:
    """Instructions per record of both paths: callgrind totals at N and 3N records, differenced."""
    import re
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("valgrind"):
        print("valgrind is not installed")
        return 1
    n = 10_000
    per: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("decoded", "record"):
            totals = []
            for count in (n, 3 * n):
                out = f"{tmp}/cg.{path}.{count}"
                proc = subprocess.run(
                    [
                        "valgrind",
                        "--tool=callgrind",
                        f"--callgrind-out-file={out}",
                        sys.executable,
                        __file__,
                        "--feed-records",
                        path,
                        "--count",
                        str(count),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                totals.append(int(re.findall(r"Collected : (\d+)", proc.stderr)[-1]))
            per[path] = (totals[1] - totals[0]) / (2 * n)
            print(f"{path:<8} {per[path]:8.0f} instructions per record")
    print(f"record / decoded: {per['record'] / per['decoded']:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=common.comma_list, default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--directions", type=common.comma_list, default="recv,send")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--slow-count", type=int, default=20_000, help="python-socketio's count")
    parser.add_argument("--batch", type=int, default=16, help="events per GET response")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--same-cpu",
        type=int,
        default=None,
        metavar="CPU",
        help="pin the server and every client to this one CPU (see 'Placement' above)",
    )
    common.add_common_options(parser, "polling.json", "1 round, 20k events (5k slow)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="only count instructions per received record, new path vs old (callgrind)",
    )
    parser.add_argument("--feed-records", help=argparse.SUPPRESS)
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--direction", help=argparse.SUPPRESS)
    common.add_worker_options(parser, 120.0)
    args = parser.parse_args(argv)
    if args.feed_records:
        return feed_records(args.feed_records, args.count)
    if args.instructions:
        return instructions_main()
    if args.server:
        return server_main(args.batch)
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.rounds, args.count, args.slow_count = 1, 20_000, 5_000
    clients = args.clients
    started = time.time()
    cpus = None if args.same_cpu is None else {args.same_cpu}
    server = common.ServerProcess(
        [sys.executable, __file__, "--server", "--batch", str(args.batch)],
        "polling server",
        cpus=cpus,
    )
    url = server.url
    results: list[dict[str, Any]] = []
    all_runs: list[dict[str, Any]] = []
    try:
        for direction in args.directions:
            dclients = clients + ["fastsio-big"] if "fastsio" in clients else clients
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in dclients}
            for rnd in range(args.rounds):
                for client in dclients:
                    count = args.slow_count if client in SLOW_CLIENTS else args.count
                    r = run_worker(
                        client,
                        args.timeout,
                        cpus,
                        direction=direction,
                        count=count,
                        batch=args.batch,
                        url=url,
                    )
                    common.keep_run(
                        runs, all_runs, client, r, direction=direction, round=rnd, count=count
                    )
                    if "error" in r:
                        print(f"{direction} {client:<16} ERROR {r['error']}", flush=True)
                    else:
                        print(
                            f"{direction} {client:<16} {r['events_per_s']:10.0f} events/s "
                            f"{r['cpu_us_per_event']:7.2f} CPU us/event",
                            flush=True,
                        )
            results += [
                common.median_row(
                    runs[c], ("events_per_s", "cpu_us_per_event"), client=c, direction=direction
                )
                for c in dclients
            ]
    finally:
        server.stop()

    targets: dict[str, Any] = {}
    for direction in args.directions:
        fs = common.find_row(results, "fastsio", "events_per_s", direction=direction)
        ps = common.find_row(results, "python-socketio", "events_per_s", direction=direction)
        big = common.find_row(results, "fastsio-big", "events_per_s", direction=direction)
        if fs and ps:
            ratio = fs["events_per_s"] / ps["events_per_s"]
            fs["ratio_vs_python_socketio"] = ratio
            per = (
                "16 packets per GET for both"
                if direction == "recv"
                else "POSTs up to maxPayload (1 MB) for fastsio, unbounded for python-socketio"
            )
            cpu = ps["cpu_us_per_event"] / fs["cpu_us_per_event"]
            targets[f"polling_{direction}_vs_python_socketio"] = common.target(
                ratio,
                ">=",
                5,
                note=f"{per}; CPU per event, python-socketio / fastsio: {cpu:.1f}x",
            )
        if big and ps:
            ratio = big["events_per_s"] / ps["events_per_s"]
            big["ratio_vs_python_socketio"] = ratio
            per = "GET" if direction == "recv" else "POST"
            targets[f"polling_{direction}_big_vs_python_socketio"] = common.target(
                ratio,
                ">=",
                5,
                note=f"fastsio at {BIG_BATCH} packets per {per} (python-engineio refuses more than 16)",
            )
    print()
    for r in results:
        if "events_per_s" in r:
            print(
                f"{r['direction']:<5} {r['client']:<16} {r['events_per_s']:10.0f} events/s "
                f"{r['cpu_us_per_event']:7.2f} CPU us/event"
            )
        else:
            print(f"{r['direction']:<5} {r['client']:<16} {r.get('error')}")
    config = {
        "count": args.count,
        "slow_count": args.slow_count,
        "batch": args.batch,
        "big_batch": BIG_BATCH,
        "rounds": args.rounds,
        "same_cpu": args.same_cpu,
    }
    return common.finish(args, "polling", started, config, results, targets, all_runs)


if __name__ == "__main__":
    sys.exit(main())
