"""The ``fastsio`` command line: the argument parser and the dispatch to a command.

Owns the parser (every command's options and help texts) and ``main``: run the chosen
command on uvloop (asyncio without it), map a bad argument or Ctrl-C to its exit code. The
commands live in ``listen.py`` and ``bench.py``; neither imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .bench import run_bench
from .common import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, check_common
from .listen import emit, listen

_EXIT_CODES = (
    "exit codes: 0 ok, 1 connection failed or lost, 2 bad arguments, 3 timeout, 130 interrupted"
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


def _seconds(p: Any, flag: str, help: str, default: float | None = None) -> None:
    """An option taking a positive number of seconds (metavar S)."""
    p.add_argument(flag, type=_positive_float, default=default, metavar="S", help=help)


def _count(p: Any, flag: str, help: str, default: int | None = None) -> None:
    """An option taking a positive whole number (metavar N)."""
    p.add_argument(flag, type=_positive_int, default=default, metavar="N", help=help)


def _repeatable(p: Any, *flags: str, metavar: str, help: str) -> None:
    """An option that may be given several times; its values are collected in a list."""
    p.add_argument(*flags, action="append", metavar=metavar, help=help)


def _switch(p: Any, *flags: str, help: str) -> None:
    """An option without a value (``True`` when given)."""
    p.add_argument(*flags, action="store_true", help=help)


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--auth", metavar="JSON", help="auth payload sent with CONNECT (a JSON object)")
    _repeatable(
        g, "--header", metavar="K:V", help="extra HTTP header for the handshake (repeatable)"
    )
    g.add_argument(
        "--transport",
        choices=["websocket", "polling"],
        help="use only this transport (default: websocket, falling back to polling)",
    )
    _switch(
        g, "--msgpack", help="use the msgpack parser (the server must use socket.io-msgpack-parser)"
    )
    g.add_argument(
        "--eio-version",
        type=int,
        choices=[3, 4],
        help="Engine.IO version: 3 for Socket.IO 2.x servers, 4 for later ones "
        "(default: negotiated, 4 first)",
    )
    g.add_argument("--path", default="socket.io", help="Engine.IO path (default: socket.io)")
    _seconds(
        g, "--connect-timeout", "seconds to wait for the namespaces to connect (default: 5)", 5.0
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
    _repeatable(
        p, "--namespace", "-n", metavar="NS", help="namespace to join (repeatable, default /)"
    )
    _repeatable(p, "--event", "-e", metavar="NAME", help="only print these events (repeatable)")
    p.add_argument(
        "--format",
        choices=["pretty", "jsonl"],
        help="output format (default: pretty on a terminal, jsonl otherwise)",
    )
    _count(p, "--count", "exit after N events")
    _seconds(p, "--duration", "exit after S seconds")
    _switch(p, "--no-reconnect", help="exit (code 1) when the link is lost")
    _switch(p, "--quiet", "-q", help="no status lines on stderr")
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
            _switch(p, "--ack", help="wait for the ack and print it")
        with_ack = ", with --ack" if name == "emit" else ""
        _seconds(p, "--timeout", f"seconds to wait for the ack (default: 10){with_ack}", 10.0)
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
    _count(p, "--clients", "concurrent connections (default: 1)", 1)
    _seconds(p, "--duration", "seconds to measure (default: 5)", 5.0)
    _count(
        p, "--count", "embedded server: events per connection (default: enough for --duration)", 0
    )
    p.add_argument("--event", default="tick", help="event to count (default: tick)")
    p.add_argument(
        "--rtt-event",
        metavar="NAME",
        help="measure ack round trips by calling this event (embedded server: always, default rtt)",
    )
    _switch(
        p, "--batch", help="count with a batch handler (on(..., batch=True)) instead of a plain one"
    )
    _switch(p, "--compare", help="also run python-socketio (when installed) and print the ratio")
    p.add_argument("--namespace", "-n", default="/", metavar="NS", help="namespace (default /)")
    _add_connection_args(p)
    return parser


def _version() -> str:
    from .. import __version__

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
        check_common(args)
        if args.command == "listen":
            return int(runner(listen(args)))
        if args.command in ("emit", "call"):
            want_ack = args.command == "call" or bool(getattr(args, "ack", False))
            return int(runner(emit(args, want_ack)))
        if args.command == "bench":
            return int(runner(run_bench(args)))
    except UsageError as exc:
        sys.stderr.write(f"fastsio: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_USAGE
