"""The ``fastsio`` command: listen to a server, emit/call an event, benchmark a server.

Exit codes: 0 success; 1 connection failed or lost for good; 2 bad arguments; 3 timeout
(no ack in time, or ``--count`` not reached within ``--duration``); 130 interrupted.
A user error is reported in one line on stderr, never with a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_CONNECT = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

_EXIT_CODES = (
    "exit codes: 0 ok, 1 connection failed or lost, 2 bad arguments, 3 timeout, 130 interrupted"
)


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- argument helpers ----------------------------------------------------------------------


def _parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # A bare word is taken as a string, as a shell user would expect: `emit URL ev hello`.
        if (
            text
            and text[0] not in '[{"'
            and not text[0].isdigit()
            and text not in ("true", "false", "null")
        ):
            return text
        raise UsageError(f"{what} is not valid JSON: {text!r}") from None


def _parse_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or any(c in key for c in " \t\r\n"):
            raise UsageError(f"--header expects NAME:VALUE, got {item!r}")
        if "\r" in value or "\n" in value:
            raise UsageError(f"--header value contains a line break: {item!r}")
        headers[key.strip()] = value.strip()
    return headers


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise UsageError(f"URL must be http(s):// or ws(s):// with a host, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"bad port in URL {url!r}") from None


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "serializer": "msgpack" if args.msgpack else "default",
        "eio_version": getattr(args, "eio_version", None),
    }


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


def _check_common(args: argparse.Namespace) -> None:
    """Validate what argparse cannot, before anything touches the network."""
    if getattr(args, "url", None) is not None:
        _check_url(args.url)
    if args.connect_timeout <= 0:
        raise UsageError("--connect-timeout must be positive")
    _connect_options(args)


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
    if hasattr(value, "isoformat"):  # datetime (msgpack Date)
        return value.isoformat()
    return repr(value)


def _pretty(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        preview = raw[:16].hex(" ")
        more = " ..." if len(raw) > 16 else ""
        return f"<{len(raw)} bytes{': ' if raw else ''}{preview}{more}>"
    if isinstance(value, dict):
        items = ", ".join(
            f"{json.dumps(str(k), ensure_ascii=False)}: {_pretty(v)}" for k, v in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_pretty(v) for v in value) + "]"
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


class _Printer:
    """Writes events to stdout: ``pretty`` lines or JSON lines."""

    def __init__(self, fmt: str | None, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        tty = self.stream.isatty()
        self.format = fmt or ("pretty" if tty else "jsonl")
        self.color = tty and self.format == "pretty" and not os.environ.get("NO_COLOR")
        self.broken = False

    def event(self, namespace: str, event: str, args: Sequence[Any]) -> bool:
        """Print one event; False once stdout is gone (a closed pipe)."""
        if self.broken:
            return False
        if self.format == "jsonl":
            line = json.dumps(
                {
                    "t": round(time.time(), 6),
                    "namespace": namespace,
                    "event": event,
                    "args": _jsonable(list(args)),
                },
                ensure_ascii=False,
            )
        else:
            stamp = time.strftime("%H:%M:%S")
            name = f"\x1b[1;36m{event}\x1b[0m" if self.color else event
            nsp = "" if namespace == "/" else f"{namespace} "
            line = f"{stamp} {nsp}{name}"
            if args:
                line += " " + " ".join(_pretty(a) for a in args)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.broken = True
            _silence_stdout()
            return False
        return True


def _silence_stdout() -> None:
    # The reader went away (`fastsio listen URL | head`): point stdout at /dev/null so that
    # the interpreter's final flush does not complain.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _status(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _refusal_text(data: Any) -> str:
    if isinstance(data, dict) and "message" in data:
        text = str(data["message"])
        if data.get("data") is not None:
            text += " " + json.dumps(_jsonable(data["data"]), ensure_ascii=False)
        return text
    if data is None:
        return "refused"
    return str(data) if isinstance(data, str) else json.dumps(_jsonable(data))


def _connect_failure(url: str, exc: BaseException, refusals: dict[str, Any]) -> str:
    """One line saying why connecting failed: the server's refusal, or the innermost cause."""
    if refusals:
        why = "; ".join(
            f"namespace {nsp} refused: {_refusal_text(data)}" for nsp, data in refusals.items()
        )
    else:
        inner: BaseException = exc
        while inner.__cause__ is not None:
            inner = inner.__cause__
        why = str(inner) or type(inner).__name__
        if inner is not exc and str(exc).startswith("Connection timed out"):
            why = str(exc)
    return _one_line(f"fastsio: cannot connect to {url}: {why}")


def _watch_connect_errors(sio: Any, namespaces: Sequence[str], also: Any = None) -> dict[str, Any]:
    """Record the last ``connect_error`` data per namespace (for a refusal, the server's
    reason); ``also(nsp, data)`` is called as well."""
    errors: dict[str, Any] = {}

    def make(nsp: str) -> Any:
        def on_connect_error(*data: Any) -> None:
            errors[nsp] = data[0] if len(data) == 1 else list(data) if data else None
            if also is not None:
                also(nsp, errors[nsp])

        return on_connect_error

    for nsp in namespaces:
        sio.on("connect_error", make(nsp), namespace=nsp)
    return errors


def _refusals(sio: Any, errors: dict[str, Any]) -> dict[str, Any]:
    """The namespaces the server refused, with its reasons."""
    return {nsp: errors.get(nsp) for nsp in getattr(sio, "failed_namespaces", ())}


# -- commands ------------------------------------------------------------------------------


async def _listen(args: argparse.Namespace) -> int:
    import fastsio

    printer = _Printer(args.format)
    namespaces = args.namespace or ["/"]
    wanted = set(args.event or [])
    options = _connect_options(args)
    sio = fastsio.AsyncClient(reconnection=not args.no_reconnect, **_client_options(args))
    total = 0
    window = 0
    done = asyncio.Event()
    connected_once = False
    live_rate = sys.stderr.isatty() and not args.quiet

    def on_any(event: str, namespace: str, *ev_args: Any) -> None:
        nonlocal total, window
        if done.is_set() or (wanted and event not in wanted):
            return
        total += 1
        window += 1
        if not printer.event(namespace, event, ev_args):
            done.set()  # stdout closed: stop quietly
        if args.count and total >= args.count:
            done.set()

    def say(message: str) -> None:
        if not args.quiet:
            if live_rate:
                message = "\r\x1b[K" + message
            _status(message)

    def make_handlers(nsp: str) -> None:
        sio.on("*", lambda event, *a: on_any(event, nsp, *a), namespace=nsp)

        def on_connect() -> None:
            nonlocal connected_once
            if not connected_once:
                say(f"protocol: {sio.protocol}")
            connected_once = True
            say(f"connected to {nsp} ({sio.transport()})")

        sio.on("connect", on_connect, namespace=nsp)
        sio.on(
            "disconnect", lambda reason: say(f"disconnected from {nsp}: {reason}"), namespace=nsp
        )

    for nsp in namespaces:
        make_handlers(nsp)
    sio.on("reconnect_attempt", lambda n: say(f"reconnecting (attempt {n})"))
    sio.on("reconnect", lambda n: say(f"reconnected after {n} attempt(s)"))
    sio.on("reconnect_failed", lambda: say("giving up reconnecting"))

    def on_connect_error(nsp: str, data: Any) -> None:
        if connected_once:  # a failed reconnection attempt (the first failure exits below)
            say(_one_line(f"connection to {nsp} failed: {_refusal_text(data)}"))

    errors = _watch_connect_errors(sio, namespaces, on_connect_error)
    try:
        await sio.connect(args.url, namespaces=namespaces, **options)
    except fastsio.exceptions.ConnectionError as exc:
        _status(_connect_failure(args.url, exc, _refusals(sio, errors)))
        return EXIT_CONNECT

    start = time.monotonic()
    stopped = asyncio.ensure_future(sio.wait())
    finished = asyncio.ensure_future(done.wait())
    deadline = start + args.duration if args.duration else None
    last_rate = start
    lost = False
    try:
        while not finished.done() and not stopped.done():
            timeout = max(0.0, last_rate + 1.0 - time.monotonic())
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            await asyncio.wait({finished, stopped}, timeout=timeout, return_when="FIRST_COMPLETED")
            now = time.monotonic()
            if now - last_rate >= 1.0:
                if live_rate:
                    rate = window / (now - last_rate)
                    sys.stderr.write(f"\r\x1b[K{rate:>11,.0f} ev/s {total:>13,} total")
                    sys.stderr.flush()
                window = 0
                last_rate = now
            if deadline is not None and now >= deadline:
                break
    finally:
        lost = stopped.done() and not finished.done()
        finished.cancel()
        stopped.cancel()
        await sio.disconnect()
        elapsed = time.monotonic() - start
        if not args.quiet:
            _status(
                ("\n" if live_rate else "")
                + f"{total:,} events in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f}/s)"
            )
    if (args.count and total >= args.count) or printer.broken:
        return EXIT_OK
    if lost:
        return EXIT_CONNECT
    if args.count:
        return EXIT_TIMEOUT
    return EXIT_OK


async def _emit(args: argparse.Namespace, want_ack: bool) -> int:
    import fastsio

    data = tuple(_parse_json_arg(a, "argument") for a in args.args)
    options = _connect_options(args)
    sio = fastsio.AsyncClient(reconnection=False, **_client_options(args))
    errors = _watch_connect_errors(sio, [args.namespace])
    try:
        await sio.connect(args.url, namespaces=[args.namespace], **options)
    except fastsio.exceptions.ConnectionError as exc:
        _status(_connect_failure(args.url, exc, _refusals(sio, errors)))
        return EXIT_CONNECT
    try:
        if want_ack:
            try:
                result = await sio.call(
                    args.event, data, namespace=args.namespace, timeout=args.timeout
                )
            except fastsio.exceptions.TimeoutError:
                _status(f"fastsio: no ack for {args.event!r} within {args.timeout:g} s")
                return EXIT_TIMEOUT
            except fastsio.exceptions.DisconnectedError as exc:
                _status(_one_line(f"fastsio: disconnected before the ack: {exc}"))
                return EXIT_CONNECT
            print(json.dumps(_jsonable(result), ensure_ascii=False), flush=True)
        else:
            await sio.emit(args.event, data, namespace=args.namespace)
    finally:
        await sio.disconnect()
    return EXIT_OK


async def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return await run_bench(args)


# -- parser --------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--auth", metavar="JSON", help="auth payload sent with CONNECT (a JSON object)")
    g.add_argument(
        "--header",
        action="append",
        metavar="K:V",
        help="extra HTTP header for the handshake (repeatable)",
    )
    g.add_argument(
        "--transport",
        choices=["websocket", "polling"],
        help="use only this transport (default: websocket, falling back to polling)",
    )
    g.add_argument(
        "--msgpack",
        action="store_true",
        help="use the msgpack parser (the server must use socket.io-msgpack-parser)",
    )
    g.add_argument(
        "--eio-version",
        type=int,
        choices=[3, 4],
        help="Engine.IO version: 3 for Socket.IO 2.x servers, 4 for later ones "
        "(default: negotiated, 4 first)",
    )
    g.add_argument("--path", default="socket.io", help="Engine.IO path (default: socket.io)")
    g.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the namespaces to connect (default: 5)",
    )


_LISTEN_EPILOG = f"""\
output: one line per event on stdout. pretty: time, namespace (if not /), event name and
arguments, binary as <N bytes: hex preview>. jsonl: {{"t": unix time, "namespace", "event",
"args": [...]}}, binary as {{"$binary": base64, "size": N}}. Status (connects, disconnects
with their reason, reconnection attempts) and the final totals go to stderr, with a live rate
when stderr is a terminal. NO_COLOR disables colours.

{_EXIT_CODES}: 0 after --count events, at the end of --duration or when stdout is closed;
1 when the first connection fails or the connection is lost for good (server disconnect,
--no-reconnect, reconnection given up); 3 when --duration ends before --count events."""

_EMIT_EPILOG = f"""\
ARG values: each is parsed as JSON ('42', '"text"', '{{"a": 1}}', 'null'); a bare word that is
not JSON is a string (hello). Several ARGs are several event arguments. The ack is printed on
stdout as one JSON value (null for none, an array for several arguments, binary as
{{"$binary": base64, "size": N}}).

{_EXIT_CODES}: 1 when connecting fails (or the namespace is refused) or the link is lost
before the ack; 3 when no ack comes within --timeout."""

_BENCH_EPILOG = f"""\
Without URL the embedded firehose server (python -m fastsio.testing) runs in a child process
on a free loopback port, streams events to each connection and acks any event (the ack
round trip is measured on a separate connection). With URL the server must emit EVENT to the
connections by itself; ack round trips are measured only with --rtt-event. The final table
gives events/s (all connections), the median per connection, the events counted, the median
connect time and the ack round trip p50/p99; with several connections a line follows with
the min/median/max events/s per connection and connect time p50/max. --compare runs
python-socketio's AsyncClient (one connection) on the same server and prints the ratio.
FASTSIO_BENCH_JSON=1 also prints the figures as JSON.

{_EXIT_CODES}: 1 when a connection fails."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastsio",
        description="See, poke and benchmark Socket.IO servers (Socket.IO v4 / Engine.IO v4).",
        epilog=_EXIT_CODES + ". Run 'fastsio COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "listen",
        help="print events as they arrive",
        formatter_class=fmt,
        description="Connect and print every event the server sends (pretty on a terminal, "
        "JSON lines when piped).\nReconnects as the library does, and says so on stderr.",
        epilog=_LISTEN_EPILOG,
    )
    p.add_argument("url", help="server URL, e.g. http://localhost:3000")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        metavar="NS",
        help="namespace to join (repeatable, default /)",
    )
    p.add_argument(
        "--event",
        "-e",
        action="append",
        metavar="NAME",
        help="only print these events (repeatable)",
    )
    p.add_argument(
        "--format",
        choices=["pretty", "jsonl"],
        help="output format (default: pretty on a terminal, jsonl otherwise)",
    )
    p.add_argument("--count", type=_positive_int, metavar="N", help="exit after N events")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="exit after S seconds")
    p.add_argument(
        "--no-reconnect", action="store_true", help="exit (code 1) when the link is lost"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no status lines on stderr")
    _add_connection_args(p)

    for name, summary in (
        ("emit", "emit one event (and with --ack print the server's ack)"),
        ("call", "emit one event and print the server's ack"),
    ):
        p = sub.add_parser(
            name,
            help=summary,
            formatter_class=fmt,
            description=summary[0].upper() + summary[1:] + ", then disconnect.",
            epilog=_EMIT_EPILOG,
        )
        p.add_argument("url", help="server URL, e.g. http://localhost:3000")
        p.add_argument("event", help="event name")
        p.add_argument("args", nargs="*", metavar="ARG", help="event argument (JSON)")
        p.add_argument("--namespace", "-n", default="/", metavar="NS", help="namespace (default /)")
        if name == "emit":
            p.add_argument("--ack", action="store_true", help="wait for the ack and print it")
        p.add_argument(
            "--timeout",
            type=_positive_float,
            default=10.0,
            metavar="S",
            help="seconds to wait for the ack (default: 10)"
            + (", with --ack" if name == "emit" else ""),
        )
        _add_connection_args(p)

    p = sub.add_parser(
        "bench",
        help="measure receive rate, ack latency and connect time",
        formatter_class=fmt,
        description="Measure fastsio end to end: events/s received, ack round-trip times and "
        "connect times,\nagainst the embedded firehose server (no URL) or a real server.",
        epilog=_BENCH_EPILOG,
    )
    p.add_argument("url", nargs="?", help="server URL (default: the embedded firehose server)")
    p.add_argument(
        "--clients",
        type=_positive_int,
        default=1,
        metavar="N",
        help="concurrent connections (default: 1)",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds to measure (default: 5)",
    )
    p.add_argument(
        "--count",
        type=_positive_int,
        default=0,
        metavar="N",
        help="embedded server: events per connection (default: enough for --duration)",
    )
    p.add_argument("--event", default="tick", help="event to count (default: tick)")
    p.add_argument(
        "--rtt-event",
        metavar="NAME",
        help="measure ack round trips by calling this event (embedded server: always, default rtt)",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="count with a batch handler (on(..., batch=True)) instead of a plain one",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also run python-socketio (when installed) and print the ratio",
    )
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
        sys.stderr.write(
            "fastsio: error: a COMMAND is required: listen, emit, call or bench "
            "(see 'fastsio --help')\n"
        )
        return EXIT_USAGE
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        pass
    try:
        _check_common(args)
        if args.command == "listen":
            return int(runner(_listen(args)))
        if args.command in ("emit", "call"):
            want_ack = args.command == "call" or bool(getattr(args, "ack", False))
            return int(runner(_emit(args, want_ack)))
        if args.command == "bench":
            return int(runner(_bench(args)))
    except UsageError as exc:
        sys.stderr.write(f"fastsio: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
