#!/usr/bin/env python3
"""python-socketio test peer: the contract of tests/peers/README.md on ``socketio.AsyncServer``.

    python pyserver.py [--port N] [--host H] [--parser json|msgpack] [--ping-interval MS]
                       [--ping-timeout MS] [--transports websocket,polling]
                       [--max-payload BYTES] [--stdin-watch]

Prints exactly one line, ``LISTENING <port>``, on stdout once it accepts connections; logs go to
stderr. Connection state recovery does not exist in python-socketio: ``--recovery`` is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp import web

NAMESPACES = ("/", "/chat", "/private")
ASK_TIMEOUT = 5.0
# The message socket.io's own ack timeout error carries, so both peers report the same thing.
TIMEOUT_MESSAGE = "operation has timed out"
# 2024-01-02T03:04:05.678Z, the Date the Node peer sends for `emit_undefined`.
DATE_MS = 1704164645678


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--parser", choices=("json", "msgpack"), default="json")
    p.add_argument("--ping-interval", type=int, default=25000, metavar="MS")
    p.add_argument("--ping-timeout", type=int, default=20000, metavar="MS")
    p.add_argument("--transports", default="polling,websocket")
    p.add_argument("--max-payload", type=int, default=1_000_000, metavar="BYTES")
    p.add_argument("--stdin-watch", action="store_true")
    p.add_argument("--recovery", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.recovery:
        p.error("--recovery: python-socketio has no connection state recovery")
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or any(t not in ("websocket", "polling") for t in transports):
        p.error(f"--transports: bad value {args.transports!r}")
    args.transports = transports
    return args


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.msgpack = args.parser == "msgpack"
        # async_handlers=True (the default) is required: `ask` waits for the client's ack, which
        # is read by the same loop that runs the handler. Each event then runs in its own task;
        # tasks start in arrival order and no handler suspends before it emits, so replies keep
        # the order of the requests.
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            serializer="msgpack" if self.msgpack else "default",
            ping_interval=args.ping_interval / 1000,
            ping_timeout=args.ping_timeout / 1000,
            transports=args.transports,
            max_http_buffer_size=args.max_payload,
            cors_allowed_origins="*",
            namespaces=list(NAMESPACES),
            async_handlers=True,
        )
        self.auth: dict[tuple[str, str], Any] = {}
        self.streams: dict[str, asyncio.Task[None]] = {}
        for ns in NAMESPACES:
            self._install(ns)

    # -- helpers -----------------------------------------------------------------------------

    def _request(self, sid: str, ns: str) -> web.Request | None:
        environ = self.sio.get_environ(sid, ns) or {}
        return environ.get("aiohttp.request")

    def _headers(self, sid: str, ns: str) -> dict[str, str]:
        req = self._request(sid, ns)
        if req is None:
            return {}
        out: dict[str, str] = {}
        for k, v in req.headers.items():
            k = k.lower()
            # Node joins repeated headers with ", " in handshake.headers.
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    def _query(self, sid: str, ns: str) -> dict[str, Any]:
        req = self._request(sid, ns)
        if req is None:
            return {}
        out: dict[str, Any] = {}
        for k in req.query.keys():
            vals = req.query.getall(k)
            out[k] = vals[0] if len(vals) == 1 else list(vals)
        return out

    def _undefined_payloads(self) -> tuple[tuple[Any, ...], Any, Any]:
        if self.msgpack:
            import msgpack  # noqa: PLC0415 - only needed in msgpack mode

            # Byte-for-byte what notepack (socket.io-msgpack-parser) emits for these JS values.
            undefined = msgpack.ExtType(0, b"\x00")
            date = msgpack.ExtType(
                0,
                (DATE_MS >> 32).to_bytes(4, "big", signed=True)
                + (DATE_MS & 0xFFFFFFFF).to_bytes(4, "big"),
            )
            arraybuffer = msgpack.ExtType(0, b"\x01\x02\x03")
            return (undefined, None, 1), date, arraybuffer
        # What socket.io-parser (JSON) puts on the wire for undefined, a Date and an ArrayBuffer.
        return (None, None, 1), "2024-01-02T03:04:05.678Z", b"\x01\x02\x03"

    async def _close_transport(self, sid: str, ns: str) -> None:
        await self.close_eio(self.sio.manager.eio_sid_from_sid(sid, ns))

    async def close_eio(self, eio_sid: str) -> None:
        """Close one Engine.IO connection the way Node's ``socket.conn.close()`` does."""
        eio_socket = self.sio.eio.sockets.get(eio_sid)
        if eio_socket is None or eio_socket.closed:
            return
        if eio_socket.upgraded:
            # Node's socket.conn.close() closes the WebSocket without an Engine.IO CLOSE packet;
            # a None in the socket's queue makes python-engineio's writer do exactly that.
            await eio_socket.queue.put(None)
        else:
            # On polling Node sends a CLOSE packet, as python-engineio's disconnect does; but
            # that waits until a GET has fetched it, which a departed client never sends.
            await eio_socket.close(wait=False, reason=self.sio.eio.reason.SERVER_DISCONNECT)
            self.sio.eio.sockets.pop(eio_sid, None)

    # -- contract ----------------------------------------------------------------------------

    def _install(self, ns: str) -> None:
        sio = self.sio

        def on(event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
                sio.on(event, fn, namespace=ns)
                return fn

            return deco

        @on("connect")
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            if ns == "/private" and not (isinstance(auth, dict) and auth.get("token") == "secret"):
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", {"reason": "bad token"}
                )
            # Node's handshake.auth is {} when the client sends none.
            self.auth[(ns, sid)] = auth if auth is not None else {}

        @on("disconnect")
        async def disconnect(sid: str, reason: Any = None) -> None:
            self.auth.pop((ns, sid), None)

        @on("echo")
        async def echo(sid: str, *args: Any) -> None:
            await sio.emit("echo", args, to=sid, namespace=ns)

        @on("ack")
        async def ack(sid: str, *args: Any) -> tuple[Any, ...]:
            return args

        @on("auth")
        async def auth(sid: str) -> Any:
            return self.auth.get((ns, sid), {})

        @on("headers")
        async def headers(sid: str) -> dict[str, str]:
            return self._headers(sid, ns)

        @on("query")
        async def query(sid: str) -> dict[str, Any]:
            return self._query(sid, ns)

        @on("recovered")
        async def recovered(sid: str) -> bool:
            return False

        @on("join")
        async def join(sid: str, room: Any) -> bool:
            await sio.enter_room(sid, room, namespace=ns)
            return True

        @on("leave")
        async def leave(sid: str, room: Any) -> bool:
            await sio.leave_room(sid, room, namespace=ns)
            return True

        @on("to_room")
        async def to_room(sid: str, room: Any, *args: Any) -> None:
            await sio.emit("room_msg", (room, *args), room=room, namespace=ns)

        @on("ask")
        async def ask(sid: str, payload: Any = None) -> None:
            fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

            def on_answer(*answer: Any) -> None:
                if not fut.done():
                    fut.set_result(list(answer))

            await sio.emit("question", payload, to=sid, namespace=ns, callback=on_answer)
            try:
                answer = await asyncio.wait_for(fut, ASK_TIMEOUT)
            except asyncio.TimeoutError:
                await sio.emit("answer_error", TIMEOUT_MESSAGE, to=sid, namespace=ns)
            else:
                # A list is sent as ONE argument (the array), like the Node peer.
                await sio.emit("answer", answer, to=sid, namespace=ns)

        @on("burst")
        async def burst(sid: str, n: Any = 0) -> int:
            count = int(n or 0)
            for i in range(count):
                await sio.emit("tick", i, to=sid, namespace=ns)
            return count

        @on("burst_binary")
        async def burst_binary(sid: str, n: Any = 0) -> int:
            count = int(n or 0)
            for i in range(count):
                await sio.emit("bin_tick", (i, i.to_bytes(4, "big")), to=sid, namespace=ns)
            return count

        @on("burst_kick")
        async def burst_kick(sid: str, n: Any = 0) -> None:
            eio_sid = sio.manager.eio_sid_from_sid(sid, ns)
            for i in range(int(n or 0)):
                await sio.emit("tick", i, to=sid, namespace=ns)
            # Node's socket.disconnect(true): the DISCONNECT packet, then the connection closes.
            await sio.disconnect(sid, namespace=ns)
            await self.close_eio(eio_sid)

        @on("stream_start")
        async def stream_start(sid: str, interval_ms: Any = 100) -> bool:
            self._stop_stream(ns)
            interval = max(1.0, float(interval_ms or 1)) / 1000
            self.streams[ns] = asyncio.ensure_future(self._stream(ns, interval))
            return True

        @on("stream_stop")
        async def stream_stop(sid: str) -> bool:
            self._stop_stream(ns)
            return True

        @on("disconnect_me")
        async def disconnect_me(sid: str) -> None:
            await sio.disconnect(sid, namespace=ns)

        @on("close_transport")
        async def close_transport(sid: str) -> None:
            await self._close_transport(sid, ns)

        @on("big")
        async def big(sid: str, nbytes: Any = 0) -> int:
            n = max(0, int(nbytes or 0))
            await sio.emit("big", "x" * n, to=sid, namespace=ns)
            return n

        @on("emit_undefined")
        async def emit_undefined(sid: str) -> None:
            undef, date, arraybuffer = self._undefined_payloads()
            await sio.emit("undef", undef, to=sid, namespace=ns)
            # 1-tuples: ExtType is a namedtuple, which emit() would spread into several args.
            await sio.emit("date", (date,), to=sid, namespace=ns)
            await sio.emit("arraybuffer", (arraybuffer,), to=sid, namespace=ns)

    async def _stream(self, ns: str, interval: float) -> None:
        # Fixed-rate schedule so that a slow emit does not stretch the period.
        loop = asyncio.get_running_loop()
        seq = 0
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            await self.sio.emit("seq", seq, namespace=ns)
            seq += 1

    def _stop_stream(self, ns: str) -> None:
        task = self.streams.pop(ns, None)
        if task is not None:
            task.cancel()


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # The fixture holds our stdin open; EOF means the test process died without cleaning up.
    def run() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=run, name="stdin-watch", daemon=True).start()


async def main(args: argparse.Namespace) -> None:
    peer = Peer(args)
    app = web.Application()
    peer.sio.attach(app)

    # Bind ourselves so that port 0 works and the real port is known before announcing it;
    # SO_REUSEADDR lets a restarted peer take the same port while old connections sit in
    # TIME_WAIT.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=0.1)
    await site.start()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.stdin_watch:
        watch_stdin(loop, stop)

    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()

    await stop.wait()
    for ns in list(peer.streams):
        peer._stop_stream(ns)
    try:
        # Like Node's io.close(): every client sees its transport close (and may reconnect to a
        # restarted server), rather than a server-side disconnect.
        await asyncio.wait_for(
            asyncio.gather(*(peer.close_eio(s) for s in list(peer.sio.eio.sockets))), 1.0
        )
        await asyncio.wait_for(runner.cleanup(), 2.0)
    except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - best effort on the way out
        print(f"pyserver.py: cleanup: {exc!r}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
    # Skip interpreter teardown: engineio's leftover per-client tasks only add noise on stderr.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
