"""``python -m fastsio.testing``: serve a ``FirehoseServer`` until SIGINT/SIGTERM.

Owns the command line only (arguments, event loop, signals, the ``LISTENING <port>`` line);
must not know how the server works.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import orjson

from .firehose import DEFAULT_EVENT, DEFAULT_PAYLOAD, FirehoseServer


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _serve(args: argparse.Namespace) -> None:
    payload = DEFAULT_PAYLOAD if args.payload is None else orjson.loads(args.payload)
    server = FirehoseServer(
        count=args.count,
        serializer=args.serializer,
        event=args.event,
        payload=payload,
        namespace=args.namespace,
        ack_echo=args.ack_echo,
        rate=args.rate,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
    await server.start(args.host, args.port)
    print(f"LISTENING {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: serve a :class:`FirehoseServer` until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m fastsio.testing",
        description="Socket.IO firehose server: streams COUNT events to each client that "
        "joins a namespace, then a 'done' event. Prints 'LISTENING <port>' when ready.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--count",
        type=int,
        default=1_000_000,
        help="events per connection, 0 for none (default 1000000)",
    )
    parser.add_argument("--serializer", choices=("json", "msgpack"), default="json")
    parser.add_argument("--event", default=DEFAULT_EVENT)
    parser.add_argument(
        "--payload", default=None, help="the event argument as JSON (default: a small tick object)"
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="stream only on this namespace (default: the first one joined)",
    )
    parser.add_argument(
        "--ack-echo",
        action="store_true",
        help="answer client events that request an ack with their arguments",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events per second to each client, paced (default: as fast as possible)",
    )
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="seconds")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    loop = _new_loop(args.loop)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_serve(args))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
