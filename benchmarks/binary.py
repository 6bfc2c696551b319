"""Binary throughput: events carrying 1 KiB, 64 KiB and 1 MiB ``bytes``, received and sent.

Receive: a pre-encoded stream (``common.serve_stream``, picows, own process) of ``count`` events
``["bin", <bytes>]`` per run, pre-encoded: JSON as a ``451-["bin",{"_placeholder":true,"num":0}]``
text frame followed by the attachment's binary frame, msgpack as one binary frame (``bin``
inline). The client's handler gets the ``bytes`` and adds its length; the window runs from the
first event to the ``done`` event.

Send: the client emits ``count`` such events, fire-and-forget, then one ``call`` whose ack
(the server answers it after every earlier frame, in order) ends the window, which starts at the
first emit. The server is a minimal picows listener in its own process that counts frames and
bytes and decodes nothing but small packets.

Clients, one at a time, interleaved over the rounds:

- ``raw``: a Python-level picows reader/sender doing the same framing by hand: receive parses
  the Socket.IO header of the text frame with ``orjson.loads`` and puts the next binary frame's
  ``get_payload_as_bytes()`` in its place (msgpack: ``msgpack.unpackb``); send builds the
  header with ``orjson.dumps`` and calls ``transport.send`` twice (msgpack: ``packb`` + one send);
- ``fastsio``: ``fastsio.AsyncClient`` (uvloop);
- ``python-socketio``: ``socketio.AsyncClient``.

Reported per client, direction, serializer and size (median over rounds): MB/s (MiB of payload
per second) and events/s. Target: fastsio >= 0.8x raw in every cell.

Payload copies (see the module's report, ``copies``): counted by reading the code paths named
there; the protocol forces one copy on receive (the handler gets a ``bytes`` that must outlive
the read buffer) and one on send (the client masks every frame into the write buffer).

Usage::

    python benchmarks/binary.py                     # 3 rounds, 64 MiB of payload per run
    python benchmarks/binary.py --quick             # 1 round, 8 MiB per run
    python benchmarks/binary.py --sizes 1024 --serializers json --directions recv
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import common

DEFAULT_SIZES = (1024, 65536, 1 << 20)
DEFAULT_CLIENTS = ("raw", "fastsio", "python-socketio")
MAX_EVENTS = 100_000

# What each path copies, from reading the code (kept here so the report carries it).
COPIES = {
    "recv_json": {
        "copies": 1,
        "forced": 1,
        "where": "listener.pxi _feed_binary: PyBytes_FromStringAndSize(frame.payload_ptr) -- the "
        "handler's bytes must outlive picows's read buffer; _reconstruct puts that object in place",
    },
    "recv_msgpack": {
        "copies": 1,
        "forced": 1,
        "where": "mpdecode.pxi: msgpack's bin -> bytes from the frame pointer (same reason)",
    },
    "send_json": {
        "copies": 1,
        "forced": 1,
        "where": "dispatcher.pxi _send_json_event: orjson writes the placeholders (its default "
        "hook keeps each bytes object as is; bytearray/memoryview: one bytes() copy, as the slow "
        "path); FrameWriter.frame masks the caller's bytes into the write buffer (forced: a "
        "client masks every frame)",
    },
    "send_msgpack": {
        "copies": 1,
        "forced": 1,
        "where": "mpencode.pxi: a bytes value of 64 bytes or more is referenced by the encoding, "
        "not copied (up to 8 per packet; smaller or further ones are copied into it); "
        "FrameWriter.frame_pieces masks it from the caller's bytes into the write buffer (forced)",
    },
}

# ==============================================================================================
# Servers
# ==============================================================================================


def recv_server_main(serializer: str, size: int, count: int) -> int:
    import msgpack

    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    is_mp = serializer == "msgpack"

    def event_frames(nsp: str) -> bytes:
        if is_mp:
            packet = {"type": 2, "data": ["bin", payload], "nsp": nsp}
            return common.ws_frame(msgpack.packb(packet), binary=True)
        head = b'451-["bin",{"_placeholder":true,"num":0}]'
        if nsp != "/":
            head = b"451-" + nsp.encode() + b"," + head[4:]
        return common.ws_frame(head) + common.ws_frame(payload, binary=True)

    def done_frame(nsp: str) -> bytes:
        if is_mp:
            packet = {"type": 2, "data": ["done", count], "nsp": nsp}
            return common.ws_frame(msgpack.packb(packet), binary=True)
        prefix = b"42" if nsp == "/" else b"42" + nsp.encode() + b","
        return common.ws_frame(prefix + b'["done",%d]' % count)

    async def stream(transport: Any, nsp: str, drained: Any) -> None:
        # Pre-encoded: the events repeated into a ~256 KiB blob, written with flow control.
        event = event_frames(nsp)
        per_blob = max(1, (256 * 1024) // len(event))
        blob = event * per_blob
        write = transport.underlying_transport.write
        remaining = count
        while remaining > 0:
            await drained()
            if transport.is_disconnected:
                return
            n = min(per_blob, remaining)
            write(blob if n == per_blob else event * n)
            remaining -= n
            await asyncio.sleep(0)
        write(done_frame(nsp))

    return common.serve_stream(stream, msgpack_mode=is_mp)


def send_server_main(serializer: str) -> int:
    """Counts frames and payload bytes; answers CONNECT and the final ``call``."""
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType, ws_create_server

    is_mp = serializer == "msgpack"

    class Counter(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            self.frames = 0
            open_packet = {
                "sid": "s",
                "upgrades": [],
                "pingInterval": 60000,
                "pingTimeout": 60000,
                "maxPayload": 4 << 20,
            }
            transport.send(WSMsgType.TEXT, b"0" + orjson.dumps(open_packet))

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            self.frames += 1
            if frame.payload_size > 200:
                return  # an event's payload: counted, not decoded
            data = frame.get_payload_as_bytes()
            if frame.msg_type == WSMsgType.TEXT:
                if data == b"40" or data.startswith(b"40{"):
                    reply = {"type": 0, "nsp": "/", "data": {"sid": "x"}}
                    if is_mp:
                        transport.send(WSMsgType.BINARY, msgpack.packb(reply))
                    else:
                        transport.send(WSMsgType.TEXT, b'40{"sid":"x"}')
                elif data.startswith(b"42") and b'"done"' in data:
                    i = 2
                    while data[i : i + 1].isdigit():
                        i += 1
                    transport.send(WSMsgType.TEXT, b"43" + data[2:i] + b"[%d]" % self.frames)
                elif data[:1] == b"1":
                    transport.disconnect()
            elif frame.msg_type == WSMsgType.BINARY and is_mp:
                pkt = msgpack.unpackb(data)
                if pkt.get("type") == 0:
                    reply = {"type": 0, "nsp": "/", "data": {"sid": "x"}}
                    transport.send(WSMsgType.BINARY, msgpack.packb(reply))
                elif pkt.get("type") == 2 and pkt.get("id") is not None:
                    ack = {"type": 3, "nsp": "/", "id": pkt["id"], "data": [self.frames]}
                    transport.send(WSMsgType.BINARY, msgpack.packb(ack))
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

    async def start() -> int:
        server = await ws_create_server(
            lambda request: Counter(), "127.0.0.1", 0, max_frame_size=4 << 20
        )
        return int(server.sockets[0].getsockname()[1])

    return common.serve_forever(start)


# ==============================================================================================
# Workers: print one JSON line {events, bytes, elapsed_s}
# ==============================================================================================


async def raw_recv(url: str, serializer: str, timeout: float) -> dict[str, Any]:
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    loads, unpackb = orjson.loads, msgpack.unpackb
    is_mp = serializer == "msgpack"
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    state = {"events": 0, "bytes": 0, "t0": 0.0, "t1": 0.0}

    def handler(data: bytes) -> None:
        if not state["events"]:
            state["t0"] = time.perf_counter()
        state["events"] += 1
        state["bytes"] += len(data)

    def finish() -> None:
        state["t1"] = time.perf_counter()
        if not done.done():
            done.set_result(None)

    class Reader(WSListener):  # type: ignore[misc]
        pending: list[Any] | None = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            data = frame.get_payload_as_bytes()
            if frame.msg_type == WSMsgType.BINARY:
                if is_mp:
                    pkt = unpackb(data)
                    args = pkt.get("data")
                    if pkt["type"] == 2 and args[0] == "bin":
                        handler(args[1])
                    elif pkt["type"] == 2 and args[0] == "done":
                        finish()
                elif self.pending is not None:
                    args, self.pending = self.pending, None
                    args[1] = data  # the placeholder's place: one attachment, num 0
                    handler(args[1])
                return
            c = data[:1]
            if c == b"4":
                if data[1:2] == b"5":
                    dash = data.index(b"-")
                    self.pending = loads(data[dash + 1 :])
                elif data.startswith(b'42["done"'):
                    finish()
            elif c == b"0":
                if is_mp:
                    transport.send(WSMsgType.BINARY, msgpack.packb({"type": 0, "nsp": "/"}))
                else:
                    transport.send(WSMsgType.TEXT, b"40")
            elif c == b"2":
                transport.send(WSMsgType.TEXT, b"3")

    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, _ = await ws_connect(Reader, ws_url, max_frame_size=4 << 20)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        transport.disconnect()
    return {
        "events": state["events"],
        "bytes": state["bytes"],
        "elapsed_s": state["t1"] - state["t0"],
    }


async def sio_recv(module: str, url: str, serializer: str, timeout: float) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[no-redef]
    state = {"events": 0, "bytes": 0, "t0": 0.0, "t1": 0.0}
    finished = asyncio.Event()

    sio = socketio.AsyncClient(serializer="msgpack" if serializer == "msgpack" else "default")

    @sio.on("bin")
    def on_bin(data: bytes) -> None:
        if not state["events"]:
            state["t0"] = time.perf_counter()
        state["events"] += 1
        state["bytes"] += len(data)

    @sio.on("done")
    def on_done(count: int) -> None:
        state["t1"] = time.perf_counter()
        finished.set()

    await sio.connect(url, transports=["websocket"])
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    finally:
        await sio.disconnect()
    return {
        "events": state["events"],
        "bytes": state["bytes"],
        "elapsed_s": state["t1"] - state["t0"],
    }


async def raw_send(
    url: str, serializer: str, size: int, count: int, timeout: float
) -> dict[str, Any]:
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    is_mp = serializer == "msgpack"
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[None] = loop.create_future()
    acked: asyncio.Future[None] = loop.create_future()
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)

    class Sender(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            data = frame.get_payload_as_bytes()
            if is_mp and frame.msg_type == WSMsgType.BINARY:
                pkt = msgpack.unpackb(data)
                fut = connected if pkt["type"] == 0 else acked if pkt["type"] == 3 else None
                if fut is not None and not fut.done():
                    fut.set_result(None)
                return
            if data[:1] == b"0":
                if is_mp:
                    transport.send(WSMsgType.BINARY, msgpack.packb({"type": 0, "nsp": "/"}))
                else:
                    transport.send(WSMsgType.TEXT, b"40")
            elif data[:2] == b"40" and not connected.done():
                connected.set_result(None)
            elif data[:2] == b"43" and not acked.done():
                acked.set_result(None)

    ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
    transport, _ = await ws_connect(Sender, ws_url, max_frame_size=4 << 20)
    await asyncio.wait_for(connected, timeout)
    dumps, packb, send = orjson.dumps, msgpack.packb, transport.send
    t0 = time.perf_counter()
    for _ in range(count):
        # --- the same framing fastsio does, in Python ---
        if is_mp:
            send(WSMsgType.BINARY, packb({"type": 2, "nsp": "/", "data": ["bin", payload]}))
        else:
            head = dumps(["bin", {"_placeholder": True, "num": 0}])
            send(WSMsgType.TEXT, b"451-" + head)
            send(WSMsgType.BINARY, payload)
    if is_mp:
        send(WSMsgType.BINARY, packb({"type": 2, "nsp": "/", "data": ["done"], "id": 1}))
    else:
        send(WSMsgType.TEXT, b'421["done"]')
    await asyncio.wait_for(acked, timeout)
    elapsed = time.perf_counter() - t0
    transport.disconnect()
    return {"events": count, "bytes": count * size, "elapsed_s": elapsed}


async def sio_send(
    module: str, url: str, serializer: str, size: int, count: int, timeout: float
) -> dict[str, Any]:
    if module == "fastsio":
        import fastsio as socketio
    else:
        import socketio  # type: ignore[no-redef]
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sio = socketio.AsyncClient(serializer="msgpack" if serializer == "msgpack" else "default")
    await sio.connect(url, transports=["websocket"])
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            await sio.emit("bin", payload)
        await sio.call("done", timeout=timeout)
        elapsed = time.perf_counter() - t0
    finally:
        await sio.disconnect()
    return {"events": count, "bytes": count * size, "elapsed_s": elapsed}


def worker_main(args: argparse.Namespace) -> int:
    name = args.worker
    mod = "fastsio" if name == "fastsio" else "socketio"
    if args.direction == "recv":
        if name == "raw":
            return common.run_worker(raw_recv(args.url, args.serializer, args.timeout))
        return common.run_worker(sio_recv(mod, args.url, args.serializer, args.timeout))
    if name == "raw":
        return common.run_worker(
            raw_send(args.url, args.serializer, args.size, args.count, args.timeout)
        )
    return common.run_worker(
        sio_send(mod, args.url, args.serializer, args.size, args.count, args.timeout)
    )


# ==============================================================================================
# Parent
# ==============================================================================================


def run_worker(client: str, timeout: float, **options: Any) -> dict[str, Any]:
    cmd = common.worker_argv(__file__, client, **options, timeout=timeout)
    r = common.run_json_worker(cmd, timeout + 30)
    if "error" not in r:
        if r["elapsed_s"] <= 0:
            return {"error": f"empty window: {r}"}
        r["events_per_s"] = r["events"] / r["elapsed_s"]
        r["mb_per_s"] = r["bytes"] / r["elapsed_s"] / (1 << 20)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--serializers", default="json,msgpack")
    parser.add_argument("--directions", default="recv,send")
    parser.add_argument("--clients", default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=float, default=64.0, help="MiB of payload per run")
    common.add_common_options(parser, "binary.json", "1 round, 8 MiB per run")
    parser.add_argument("--recv-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--send-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--direction", help=argparse.SUPPRESS)
    parser.add_argument("--serializer", default="json", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.recv_server:
        return recv_server_main(args.serializer, args.size, args.count)
    if args.send_server:
        return send_server_main(args.serializer)
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.rounds, args.mib = 1, 8.0
    sizes = [int(s) for s in args.sizes.split(",")]
    clients = [c for c in args.clients.split(",") if c]
    started = time.time()
    results: list[dict[str, Any]] = []
    all_runs: list[dict[str, Any]] = []
    for direction in args.directions.split(","):
        for serializer in args.serializers.split(","):
            send_server = (
                common.ServerProcess(
                    [sys.executable, __file__, "--send-server", "--serializer", serializer],
                    "counting server",
                )
                if direction == "send"
                else None
            )
            try:
                for size in sizes:
                    count = max(20, min(MAX_EVENTS, int(args.mib * (1 << 20) / size)))
                    recv_server = (
                        common.ServerProcess(
                            [
                                sys.executable,
                                __file__,
                                "--recv-server",
                                "--serializer",
                                serializer,
                                "--size",
                                str(size),
                                "--count",
                                str(count),
                            ],
                            "binary firehose",
                        )
                        if direction == "recv"
                        else None
                    )
                    url = (send_server or recv_server).url  # type: ignore[union-attr]
                    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
                    try:
                        for rnd in range(args.rounds):
                            for client in clients:
                                r = run_worker(
                                    client,
                                    args.timeout,
                                    direction=direction,
                                    serializer=serializer,
                                    size=size,
                                    count=count,
                                    url=url,
                                )
                                runs[client].append(r)
                                all_runs.append(
                                    {
                                        "client": client,
                                        "direction": direction,
                                        "serializer": serializer,
                                        "size": size,
                                        "round": rnd,
                                        **r,
                                    }
                                )
                                what = f"{direction} {serializer:<7} {size:>8} B {client:<16}"
                                if "error" in r:
                                    print(f"{what} ERROR {r['error']}", flush=True)
                                else:
                                    print(
                                        f"{what} {r['mb_per_s']:9.1f} MB/s "
                                        f"{r['events_per_s']:10.0f} events/s",
                                        flush=True,
                                    )
                    finally:
                        if recv_server is not None:
                            recv_server.stop()
                    for client in clients:
                        ok = [r for r in runs[client] if "error" not in r]
                        row: dict[str, Any] = {
                            "client": client,
                            "direction": direction,
                            "serializer": serializer,
                            "size": size,
                            "runs_ok": len(ok),
                            "count": count,
                        }
                        if ok:
                            row["mb_per_s"] = statistics.median(r["mb_per_s"] for r in ok)
                            row["events_per_s"] = statistics.median(r["events_per_s"] for r in ok)
                        else:
                            row["error"] = runs[client][-1].get("error")
                        results.append(row)
            finally:
                if send_server is not None:
                    send_server.stop()

    targets: dict[str, Any] = {}
    for row in results:
        if row["client"] != "fastsio" or "mb_per_s" not in row:
            continue
        cell = {k: row[k] for k in ("direction", "serializer", "size")}
        ref = common.find_row(results, "raw", "mb_per_s", **cell)
        if ref is None:
            continue
        ratio = row["mb_per_s"] / ref["mb_per_s"]
        row["ratio_vs_raw"] = ratio
        key = f"{row['direction']}_{row['serializer']}_{row['size']}_vs_raw"
        targets[key] = common.target(ratio, ">=", 0.8)
    for row in results:
        if row["client"] != "fastsio" or "mb_per_s" not in row:
            continue
        cell = {k: row[k] for k in ("direction", "serializer", "size")}
        ref = common.find_row(results, "python-socketio", "mb_per_s", **cell)
        if ref is not None:
            row["ratio_vs_python_socketio"] = row["mb_per_s"] / ref["mb_per_s"]

    print()
    print(
        f"{'dir':<5} {'ser':<8} {'size':>8} {'client':<16} {'MB/s':>9} {'events/s':>10}"
        f" {'vs raw':>7}"
    )
    for r in results:
        if "mb_per_s" in r:
            print(
                f"{r['direction']:<5} {r['serializer']:<8} {r['size']:>8} {r['client']:<16} "
                f"{r['mb_per_s']:9.1f} {r['events_per_s']:10.0f} "
                f"{r.get('ratio_vs_raw', float('nan')):7.2f}"
            )
        else:
            print(
                f"{r['direction']:<5} {r['serializer']:<8} {r['size']:>8} {r['client']:<16} "
                f"{r.get('error')}"
            )
    common.print_targets(targets)
    for path, c in COPIES.items():
        print(f"copies {path}: {c['copies']} ({c['forced']} forced by the protocol)")
    common.write_results(
        args,
        "binary.json",
        "binary",
        started,
        {"sizes": sizes, "rounds": args.rounds, "mib_per_run": args.mib},
        results=results,
        targets=targets,
        copies=COPIES,
        runs=all_runs,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
