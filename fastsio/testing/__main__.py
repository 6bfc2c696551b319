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
from typing import Any

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


#: FirehoseServer's options on the command line, each passed on under its own name:
#: flag -> argparse keywords (``--payload`` is parsed as JSON first).
_SERVER_OPTIONS: dict[str, dict[str, Any]] = {
    "--count": {
        "type": int,
        "default": 1_000_000,
        "help": "events per connection, 0 for none (default 1000000)",
    },
    "--serializer": {"choices": ("json", "msgpack"), "default": "json"},
    "--event": {"default": DEFAULT_EVENT},
    "--payload": {"help": "the event argument as JSON (default: a small tick object)"},
    "--namespace": {"help": "stream only on this namespace (default: the first one joined)"},
    "--ack-echo": {
        "action": "store_true",
        "help": "answer client events that request an ack with their arguments",
    },
    "--rate": {
        "type": float,
        "help": "events per second to each client, paced (default: as fast as possible)",
    },
    "--ping-interval": {"type": float, "default": 25.0, "help": "seconds"},
    "--ping-timeout": {"type": float, "default": 20.0, "help": "seconds"},
}


async def _serve(args: argparse.Namespace) -> None:
    names = [flag[2:].replace("-", "_") for flag in _SERVER_OPTIONS]
    options = {name: getattr(args, name) for name in names}
    payload = options.pop("payload")
    server = FirehoseServer(
        payload=DEFAULT_PAYLOAD if payload is None else orjson.loads(payload), **options
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
    for flag, keywords in _SERVER_OPTIONS.items():
        parser.add_argument(flag, **keywords)
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
