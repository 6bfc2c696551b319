"""The ``fastsio`` command: listen to a server, emit/call an event, benchmark a server.

Exit codes: 0 success; 1 connection failed or lost for good; 2 bad arguments; 3 timeout
(no ack in time, or ``--count`` not reached within ``--duration``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_CONNECT = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


# -- argument helpers ----------------------------------------------------------------------


def _parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # A bare word is taken as a string, as a shell user would expect: `emit URL ev hello`.
        if text and text[0] not in "[{\"" and not text[0].isdigit() and text not in (
                "true", "false", "null"):
            return text
        raise UsageError(f"{what} is not valid JSON: {text!r}") from None


def _parse_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise UsageError(f"--header expects NAME:VALUE, got {item!r}")
        headers[key.strip()] = value.strip()
    return headers


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"serializer": "msgpack" if args.msgpack else "default"}


def _connect_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "headers": _parse_headers(args.header or []),
        "transports": [args.transport] if args.transport else None,
        "wait_timeout": args.connect_timeout,
        "socketio_path": args.path,
    }
    if args.auth is not None:
        auth = _parse_json_arg(args.auth, "--auth")
        if not isinstance(auth, dict):
            raise UsageError("--auth must be a JSON object")
        opts["auth"] = auth
    return opts


# -- output --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"$binary": base64.b64encode(raw).decode("ascii"), "size": len(raw)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _pretty(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        preview = raw[:16].hex(" ")
        return f"<{len(raw)} bytes: {preview}{' ...' if len(raw) > 16 else ''}>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_pretty(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_pretty(v) for v in value) + "]"
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


class _Printer:
    def __init__(self, fmt: str | None, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        tty = self.stream.isatty()
        self.format = fmt or ("pretty" if tty else "jsonl")
        self.color = tty and self.format == "pretty" and not os.environ.get("NO_COLOR")

    def event(self, namespace: str, event: str, args: Sequence[Any]) -> None:
        if self.format == "jsonl":
            line = json.dumps({"t": round(time.time(), 6), "namespace": namespace,
                               "event": event, "args": _jsonable(list(args))},
                              ensure_ascii=False)
        else:
            stamp = time.strftime("%H:%M:%S")
            name = f"\x1b[1;36m{event}\x1b[0m" if self.color else event
            nsp = "" if namespace == "/" else f"{namespace} "
            line = f"{stamp} {nsp}{name} " + " ".join(_pretty(a) for a in args)
        self.stream.write(line + "\n")
        self.stream.flush()


def _status(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# -- commands ------------------------------------------------------------------------------


async def _listen(args: argparse.Namespace) -> int:
    import fastsio

    printer = _Printer(args.format)
    namespaces = args.namespace or ["/"]
    wanted = set(args.event or [])
    sio = fastsio.AsyncClient(reconnection=not args.no_reconnect, **_client_options(args))
    total = 0
    window = 0
    done = asyncio.Event()
    live_rate = sys.stderr.isatty() and not args.quiet

    def on_any(event: str, namespace: str, *ev_args: Any) -> None:
        nonlocal total, window
        if wanted and event not in wanted:
            return
        total += 1
        window += 1
        printer.event(namespace, event, ev_args)
        if args.count and total >= args.count:
            done.set()

    def say(message: str) -> None:
        if not args.quiet:
            _status(message)

    for nsp in namespaces:
        sio.on("*", lambda event, *a, nsp=nsp: on_any(event, nsp, *a), namespace=nsp)
        sio.on("connect", lambda nsp=nsp: say(f"connected to {nsp}"), namespace=nsp)
        sio.on("disconnect", lambda reason, nsp=nsp: say(f"disconnected from {nsp}: {reason}"),
               namespace=nsp)
    sio.on("reconnect_attempt", lambda n: say(f"reconnecting (attempt {n})"))
    sio.on("reconnect", lambda n: say(f"reconnected after {n} attempt(s)"))

    try:
        await sio.connect(args.url, namespaces=namespaces, **_connect_options(args))
    except fastsio.exceptions.ConnectionError as exc:
        _status(f"fastsio: cannot connect to {args.url}: {exc}")
        return EXIT_CONNECT

    start = time.monotonic()
    stopped = asyncio.ensure_future(sio.wait())
    finished = asyncio.ensure_future(done.wait())
    deadline = start + args.duration if args.duration else None
    try:
        while not finished.done() and not stopped.done():
            timeout = 1.0
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            await asyncio.wait({finished, stopped}, timeout=timeout)
            if live_rate:
                sys.stderr.write(f"\r{window:>9,} ev/s  {total:>12,} total ")
                sys.stderr.flush()
                window = 0
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        finished.cancel()
        lost = stopped.done()
        stopped.cancel()
        await sio.disconnect()
    elapsed = time.monotonic() - start
    if not args.quiet:
        _status(f"\n{total:,} events in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f}/s)")
    if lost and not (args.count and total >= args.count):
        return EXIT_CONNECT
    if args.count and total < args.count:
        return EXIT_TIMEOUT
    return EXIT_OK


async def _emit(args: argparse.Namespace, want_ack: bool) -> int:
    import fastsio

    data = tuple(_parse_json_arg(a, "argument") for a in args.args)
    sio = fastsio.AsyncClient(reconnection=False, **_client_options(args))
    try:
        await sio.connect(args.url, namespaces=[args.namespace], **_connect_options(args))
    except fastsio.exceptions.ConnectionError as exc:
        _status(f"fastsio: cannot connect to {args.url}: {exc}")
        return EXIT_CONNECT
    try:
        if want_ack:
            try:
                result = await sio.call(args.event, data, namespace=args.namespace,
                                        timeout=args.timeout)
            except fastsio.exceptions.TimeoutError:
                _status(f"fastsio: no ack for {args.event!r} within {args.timeout} s")
                return EXIT_TIMEOUT
            except fastsio.exceptions.DisconnectedError as exc:
                _status(f"fastsio: disconnected before the ack: {exc}")
                return EXIT_CONNECT
            print(json.dumps(_jsonable(result), ensure_ascii=False))
        else:
            await sio.emit(args.event, data, namespace=args.namespace)
    finally:
        await sio.disconnect()
    return EXIT_OK


async def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return await run_bench(args)


# -- parser --------------------------------------------------------------------------------


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auth", metavar="JSON", help="auth payload sent with CONNECT (JSON object)")
    p.add_argument("--header", action="append", metavar="K:V",
                   help="extra HTTP header for the handshake (repeatable)")
    p.add_argument("--transport", choices=["websocket", "polling"],
                   help="force one transport (default: websocket, falling back to polling)")
    p.add_argument("--msgpack", action="store_true",
                   help="use the msgpack parser (socket.io-msgpack-parser on the server)")
    p.add_argument("--path", default="socket.io", help="server path (default: socket.io)")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for the namespaces to connect (default: 5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastsio",
        description="See, poke and benchmark Socket.IO servers (Socket.IO v4 / Engine.IO v4).",
        epilog="Exit codes: 0 ok, 1 connection failed or lost, 2 bad arguments, 3 timeout.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("listen", help="print events as they arrive",
                       description="Connect and print every event (pretty on a terminal, JSON "
                       "lines when piped); live rate and totals on stderr. Reconnects as the "
                       "library does and says so on stderr.")
    p.add_argument("url", help="server URL, e.g. http://localhost:3000")
    p.add_argument("--namespace", "-n", action="append", metavar="NS",
                   help="namespace to join (repeatable, default /)")
    p.add_argument("--event", "-e", action="append", metavar="NAME",
                   help="only print these events (repeatable)")
    p.add_argument("--format", choices=["pretty", "jsonl"],
                   help="output format (default: pretty on a terminal, jsonl otherwise)")
    p.add_argument("--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")
    p.add_argument("--no-reconnect", action="store_true", help="exit when the link is lost")
    p.add_argument("--quiet", "-q", action="store_true", help="no status lines on stderr")
    _add_connection_args(p)

    for name, helptext in (("emit", "emit one event"),
                           ("call", "emit one event and print the server's ack")):
        p = sub.add_parser(name, help=helptext, description=helptext.capitalize() + ". Each "
                           "ARG is JSON (a bare word is a string); several ARGs are several "
                           "arguments.")
        p.add_argument("url", help="server URL")
        p.add_argument("event", help="event name")
        p.add_argument("args", nargs="*", metavar="ARG", help="event arguments, JSON each")
        p.add_argument("--namespace", "-n", default="/", metavar="NS", help="namespace (default /)")
        p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for the ack (default: 10)")
        if name == "emit":
            p.add_argument("--ack", action="store_true", help="wait for the ack and print it")
        _add_connection_args(p)

    p = sub.add_parser("bench", help="measure receive rate and ack latency",
                       description="Without URL: start the embedded firehose server on a free "
                       "loopback port and measure fastsio end to end. With URL: measure a real "
                       "server (it must emit events, or answer --rtt-event acks).")
    p.add_argument("url", nargs="?", help="server URL (default: embedded firehose server)")
    p.add_argument("--clients", type=int, default=1, metavar="N",
                   help="concurrent connections (default: 1)")
    p.add_argument("--duration", type=float, default=5.0, metavar="S",
                   help="seconds to measure (default: 5)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="embedded server: events per connection (default: enough for "
                        "--duration)")
    p.add_argument("--event", default="tick", help="event to count (default: tick)")
    p.add_argument("--rtt-event", metavar="NAME",
                   help="also measure ack round trips by calling this event")
    p.add_argument("--batch", action="store_true",
                   help="count with a batch handler (on(..., batch=True)) instead of a plain one")
    p.add_argument("--compare", action="store_true",
                   help="also run python-socketio (when installed) and print the ratio")
    p.add_argument("--namespace", "-n", default="/", metavar="NS", help="namespace (default /)")
    _add_connection_args(p)
    return parser


def _version() -> str:
    from . import __version__

    return f"fastsio {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        pass
    try:
        if args.command == "listen":
            if args.count is not None and args.count <= 0:
                raise UsageError("--count must be positive")
            return int(runner(_listen(args)))
        if args.command in ("emit", "call"):
            want_ack = args.command == "call" or bool(getattr(args, "ack", False))
            return int(runner(_emit(args, want_ack)))
        if args.command == "bench":
            if args.clients <= 0 or args.duration <= 0:
                raise UsageError("--clients and --duration must be positive")
            return int(runner(_bench(args)))
    except UsageError as exc:
        sys.stderr.write(f"fastsio: error: {exc}\n")
        return EXIT_USAGE
    except ValueError as exc:
        sys.stderr.write(f"fastsio: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
