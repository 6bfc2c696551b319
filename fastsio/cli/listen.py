"""``fastsio listen``, ``emit`` and ``call``: see what a server sends, poke it once.

Owns the event printer (pretty lines or JSON lines, a closed stdout) and the two commands'
connection life: connect, run, disconnect, exit code. It must not know the argument parser
(it receives the parsed namespace) nor the bench command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .common import (
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_TIMEOUT,
    client_options,
    connect_failure,
    connect_options,
    jsonable,
    one_line,
    parse_json_arg,
    refusal_text,
    refusals,
    status,
    watch_connect_errors,
)


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
                    "args": jsonable(list(args)),
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


async def listen(args: argparse.Namespace) -> int:
    import fastsio

    printer = _Printer(args.format)
    namespaces = args.namespace or ["/"]
    wanted = set(args.event or [])
    options = connect_options(args)
    sio = fastsio.AsyncClient(reconnection=not args.no_reconnect, **client_options(args))
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
            status(message)

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
            say(one_line(f"connection to {nsp} failed: {refusal_text(data)}"))

    errors = watch_connect_errors(sio, namespaces, on_connect_error)
    try:
        await sio.connect(args.url, namespaces=namespaces, **options)
    except fastsio.exceptions.ConnectionError as exc:
        status(connect_failure(args.url, exc, refusals(sio, errors)))
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
            status(
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


async def emit(args: argparse.Namespace, want_ack: bool) -> int:
    import fastsio

    data = tuple(parse_json_arg(a, "argument") for a in args.args)
    options = connect_options(args)
    sio = fastsio.AsyncClient(reconnection=False, **client_options(args))
    errors = watch_connect_errors(sio, [args.namespace])
    try:
        await sio.connect(args.url, namespaces=[args.namespace], **options)
    except fastsio.exceptions.ConnectionError as exc:
        status(connect_failure(args.url, exc, refusals(sio, errors)))
        return EXIT_CONNECT
    try:
        if want_ack:
            try:
                result = await sio.call(
                    args.event, data, namespace=args.namespace, timeout=args.timeout
                )
            except fastsio.exceptions.TimeoutError:
                status(f"fastsio: no ack for {args.event!r} within {args.timeout:g} s")
                return EXIT_TIMEOUT
            except fastsio.exceptions.DisconnectedError as exc:
                status(one_line(f"fastsio: disconnected before the ack: {exc}"))
                return EXIT_CONNECT
            print(json.dumps(jsonable(result), ensure_ascii=False), flush=True)
        else:
            await sio.emit(args.event, data, namespace=args.namespace)
    finally:
        await sio.disconnect()
    return EXIT_OK
