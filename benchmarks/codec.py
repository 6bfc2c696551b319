"""Codec benchmark: ns per packet, fastsio's compiled core vs python-socketio's packet modules.

Everything runs in this one process with ``timeit`` (statement strings, so both sides pay the same
loop overhead; the garbage collector is off while timing, as timeit does). Each case times the
fastsio statement and the python-socketio statement alternately, ``repeats`` times each, every
repeat at least ``--min-time`` seconds long; reported: the median and the best repeat in ns per
packet, and the speedup: the median over the repeats of python-socketio's time / fastsio's
time in that repeat (the two were timed back to back); "(best)" is best / best. Before timing,
each pair is checked to produce the same packet.

The clock is this process's CPU time (``time.process_time``), not the wall clock: the work is
CPU-bound and single-threaded, so the two are the same on an idle machine, but on a busy one the
CPU time leaves out the time other processes had the core (``--wall`` uses ``perf_counter``).

Cases (the event is the stream benchmark's tick: ``["tick",{"s":"AAPL","p":123.45,"q":100,
"t":1700000000123}]``; the binary event carries a 1 KiB attachment):

- ``decode json``: ``_core.decode_packet('2["tick",...]')`` vs
  ``Packet(encoded_packet='2["tick",...]')``, the same str on both sides; ``decode json (bytes)``
  gives fastsio bytes instead (what a WebSocket frame is; the real receive path does not go
  through ``decode_packet`` but reads picows's buffer, see ``dispatch json``);
- ``dispatch json``: the whole receive path of one Engine.IO message up to a no-op sync handler:
  ``Dispatcher.feed_text(b'42["tick",...]')`` vs ``engineio.packet.Packet(encoded_packet=...)``
  + ``socketio.Client._handle_eio_message`` (python-socketio's ``AsyncClient`` also creates an
  asyncio Task per message on top of this, not counted: its figure is a lower bound);
- ``encode json``: ``_core.encode_packet(EVENT, '/', data)`` vs
  ``Packet(EVENT, namespace='/', data=data).encode()`` (what an ``emit`` builds);
- ``decode msgpack`` / ``encode msgpack``: ``_core.decode_msgpack`` / ``encode_msgpack`` vs
  ``socketio.msgpack_packet.MsgPackPacket``;
- ``decode binary`` / ``dispatch binary`` / ``encode binary``: the same with a binary event
  (``51-["bin",{"seq":7,"payload":{"_placeholder":true,"num":0}}]`` + one attachment).

Usage::

    python benchmarks/codec.py                 # 11 repeats of >= 0.2 s per side and case
    python benchmarks/codec.py --quick         # smoke run: 3 repeats of >= 0.02 s, written to
                                               # benchmarks/results/quick/codec.json
    python benchmarks/codec.py --cases "decode json,encode json" --repeats 11
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import timeit
from typing import Any

import common
from common import fmt, print_rows

TARGET_SPEEDUP = 10.0  # fastsio must be at least this much faster, for decode and encode json
TARGET_CASES = ("decode json", "encode json")

TICK = ["tick", {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}]
TICK_TEXT = '2["tick",{"s":"AAPL","p":123.45,"q":100,"t":1700000000123}]'
BIN_ATTACHMENT = bytes(range(256)) * 4
BIN_EVENT = ["bin", {"seq": 7, "payload": BIN_ATTACHMENT}]
BIN_TEXT = '51-["bin",{"seq":7,"payload":{"_placeholder":true,"num":0}}]'


def _noop(*args: Any) -> None:
    pass


def build_namespace() -> dict[str, Any]:
    """Everything the timed statements refer to, with the pairs checked against each other."""
    import engineio.packet
    import msgpack
    import socketio
    from socketio.msgpack_packet import MsgPackPacket
    from socketio.packet import EVENT, Packet

    from fastsio._ext import _core

    calls = {"fastsio": 0, "python-socketio": 0}

    def fast_handler(*args: Any) -> None:
        calls["fastsio"] += 1

    def psio_handler(*args: Any) -> None:
        calls["python-socketio"] += 1

    # No ClientHooks: only the core's own inline dispatch is timed, and a packet that would
    # reach the client (the slow path) raises, as a handler's error does.
    conn = _core.Dispatcher()
    slot = _core.NamespaceSlot("/")
    slot.fast["tick"] = fast_handler
    slot.fast["bin"] = fast_handler
    conn.slots["/"] = slot

    psio_client = socketio.Client()
    psio_client.on("tick", psio_handler)
    psio_client.on("bin", psio_handler)
    EioPacket = engineio.packet.Packet

    def psio_dispatch(message: str | bytes) -> None:
        # engineio.Client._receive_packet -> socketio.Client._handle_eio_message
        psio_client._handle_eio_message(EioPacket(encoded_packet=message).data)

    msgpack_tick = msgpack.packb({"type": 2, "data": TICK, "nsp": "/"})
    ns: dict[str, Any] = {
        "core": _core,
        "conn": conn,
        "fast_decode": _core.decode_packet,
        "fast_encode": _core.encode_packet,
        "fast_reconstruct": _core.reconstruct,
        "fast_decode_mp": _core.decode_msgpack,
        "fast_encode_mp": _core.encode_msgpack,
        "feed_text": conn.feed_text,
        "feed_binary": conn.feed_binary,
        "Packet": Packet,
        "MsgPackPacket": MsgPackPacket,
        "EVENT": EVENT,
        "psio_dispatch": psio_dispatch,
        "tick": TICK,
        "tick_b": TICK_TEXT.encode(),
        "tick_s": TICK_TEXT,
        "eio_tick_b": b"4" + TICK_TEXT.encode(),
        "eio_tick_s": "4" + TICK_TEXT,
        "mp_tick": msgpack_tick,
        "bin_event": BIN_EVENT,
        "bin_b": BIN_TEXT.encode(),
        "bin_s": BIN_TEXT,
        "eio_bin_b": b"4" + BIN_TEXT.encode(),
        "eio_bin_s": "4" + BIN_TEXT,
        "att": BIN_ATTACHMENT,
        "_calls": calls,
    }
    _check(ns)
    # Timed with no-op handlers (the counting ones above only prove the handlers are reached).
    slot.fast["tick"] = slot.fast["bin"] = _noop
    psio_client.on("tick", _noop)
    psio_client.on("bin", _noop)
    return ns


# name -> (fastsio statement, python-socketio statement, what)
CASES: dict[str, tuple[str, str, str]] = {
    "decode json": (
        "fast_decode(tick_s)",
        "Packet(encoded_packet=tick_s)",
        "decode an EVENT packet (the same str on both sides)",
    ),
    "decode json (bytes)": (
        "fast_decode(tick_b)",
        "Packet(encoded_packet=tick_s)",
        "decode an EVENT packet, bytes for fastsio",
    ),
    "dispatch json": (
        "feed_text(eio_tick_b)",
        "psio_dispatch(eio_tick_s)",
        "Engine.IO message -> no-op sync handler",
    ),
    "encode json": (
        "fast_encode(2, '/', tick)",
        "Packet(EVENT, namespace='/', data=tick).encode()",
        "encode an emit",
    ),
    "decode msgpack": (
        "fast_decode_mp(mp_tick)",
        "MsgPackPacket(encoded_packet=mp_tick)",
        "decode an EVENT packet (msgpack parser)",
    ),
    "encode msgpack": (
        "fast_encode_mp(2, '/', tick)",
        "MsgPackPacket(EVENT, namespace='/', data=tick).encode()",
        "encode an emit (msgpack parser)",
    ),
    "decode binary": (
        "p = fast_decode(bin_b); fast_reconstruct(p.data, [att])",
        "p = Packet(encoded_packet=bin_s); p.add_attachment(att)",
        "decode a BINARY_EVENT and its 1 KiB attachment",
    ),
    "dispatch binary": (
        "feed_text(eio_bin_b); feed_binary(att)",
        "psio_dispatch(eio_bin_s); psio_dispatch(att)",
        "BINARY_EVENT + attachment -> no-op sync handler",
    ),
    "encode binary": (
        "fast_encode(2, '/', bin_event)",
        "Packet(EVENT, namespace='/', data=bin_event).encode()",
        "encode an emit with a 1 KiB bytes argument",
    ),
}


def _check(ns: dict[str, Any]) -> None:
    """Fail loudly unless both sides of every case do the same work."""
    import msgpack

    core, Packet, MsgPackPacket = ns["core"], ns["Packet"], ns["MsgPackPacket"]

    def same_packet(fast: Any, psio: Any, what: str) -> None:
        got = (fast.type, fast.nsp, fast.id, fast.data)
        want = (psio.packet_type, psio.namespace or "/", psio.id, psio.data)
        if got != want:
            raise AssertionError(f"{what}: fastsio {got!r:.200} != python-socketio {want!r:.200}")

    same_packet(core.decode_packet(ns["tick_b"]), Packet(encoded_packet=ns["tick_s"]), "decode")
    same_packet(core.decode_packet(ns["tick_s"]), Packet(encoded_packet=ns["tick_s"]), "decode")
    same_packet(
        core.decode_msgpack(ns["mp_tick"]), MsgPackPacket(encoded_packet=ns["mp_tick"]), "mp"
    )
    fp = core.decode_packet(ns["bin_b"])
    fp.data = core.reconstruct(fp.data, [ns["att"]])
    pp = Packet(encoded_packet=ns["bin_s"])
    if not pp.add_attachment(ns["att"]):
        raise AssertionError("python-socketio wants more attachments")
    same_packet(fp, pp, "decode binary")
    if fp.data != BIN_EVENT:
        raise AssertionError(f"binary event decoded as {fp.data!r:.100}")

    # JSON encoders: the same text (both write compact JSON), the same attachments.
    for data in (TICK, BIN_EVENT):
        fast = core.encode_packet(2, "/", data)
        psio = Packet(ns["EVENT"], namespace="/", data=data).encode()
        psio = psio if isinstance(psio, list) else [psio]
        psio = [p.encode() if isinstance(p, str) else p for p in psio]
        if fast != psio:
            raise AssertionError(f"encode: fastsio {fast!r:.200} != python-socketio {psio!r:.200}")

    # msgpack: the maps may differ in key order; their contents may not.
    fast_mp = msgpack.unpackb(core.encode_msgpack(2, "/", TICK))
    psio_mp = msgpack.unpackb(MsgPackPacket(ns["EVENT"], namespace="/", data=TICK).encode())
    if fast_mp != psio_mp:
        raise AssertionError(f"encode msgpack: {fast_mp!r} != {psio_mp!r}")

    # Dispatch: each side's handler runs exactly once per fed event.
    calls = ns["_calls"]
    exec("feed_text(eio_tick_b); feed_text(eio_bin_b); feed_binary(att)", ns)
    exec("psio_dispatch(eio_tick_s); psio_dispatch(eio_bin_s); psio_dispatch(att)", ns)
    if calls != {"fastsio": 2, "python-socketio": 2}:
        raise AssertionError(f"dispatch reached the handlers {calls} times, expected 2 each")


def time_case(
    ns: dict[str, Any],
    fast_stmt: str,
    psio_stmt: str,
    repeats: int,
    min_time: float,
    clock: Any,
) -> dict[str, Any]:
    timers = {
        "fastsio": timeit.Timer(fast_stmt, timer=clock, globals=ns),
        "python-socketio": timeit.Timer(psio_stmt, timer=clock, globals=ns),
    }
    numbers = {}
    for side, timer in timers.items():
        # the loop count that takes about min_time, from a first 10 ms calibration
        number = 1
        while (elapsed := timer.timeit(number)) < 0.01:
            number *= 2
        numbers[side] = max(1, math.ceil(number * min_time / elapsed))
    samples: dict[str, list[float]] = {side: [] for side in timers}
    for _ in range(repeats):  # alternate the sides so that noise hits both
        for side, timer in timers.items():
            samples[side].append(timer.timeit(numbers[side]) / numbers[side] * 1e9)
    out: dict[str, Any] = {}
    for side, ns_per in samples.items():
        key = "fastsio" if side == "fastsio" else "python_socketio"
        out[f"{key}_ns"] = statistics.median(ns_per)
        out[f"{key}_ns_best"] = min(ns_per)
        out[f"{key}_loops"] = numbers[side]
        out[f"{key}_samples_ns"] = ns_per
    # Paired: each repeat timed both sides back to back, so their ratio cancels slow drifts
    # of the machine (frequency, other processes) better than the ratio of the medians.
    out["speedup"] = statistics.median(
        p / f for p, f in zip(samples["python-socketio"], samples["fastsio"], strict=True)
    )
    out["speedup_best"] = out["python_socketio_ns_best"] / out["fastsio_ns_best"]
    return out


def print_table(rows: list[dict[str, Any]], repeats: int) -> None:
    def times(r: dict[str, Any], key: str) -> str:
        return fmt(r[key], ".1f") + "x"

    print_rows(
        f"\ncodec benchmark, ns per packet, median (and best) of {repeats} repeats",
        rows,
        [
            ("case", "case", ""),
            ("fastsio ns", "fastsio_ns", ",.0f"),
            ("(best)", "fastsio_ns_best", ",.0f"),
            ("psio ns", "python_socketio_ns", ",.0f"),
            ("(best)", "python_socketio_ns_best", ",.0f"),
            ("speedup", lambda r: times(r, "speedup"), ""),
            ("(best)", lambda r: times(r, "speedup_best"), ""),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="per side and case (11)")
    parser.add_argument(
        "--min-time", type=float, default=None, help="seconds per repeat and side (0.2)"
    )
    parser.add_argument("--cases", default=None, help=f"comma-separated of: {', '.join(CASES)}")
    common.add_common_options(parser, "codec.json", "smoke run: 3 repeats of 0.02 s")
    parser.add_argument(
        "--wall", action="store_true", help="time with the wall clock instead of the CPU time"
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.min_time is None:
        args.min_time = 0.02 if args.quick else 0.2
    names = [c.strip() for c in args.cases.split(",")] if args.cases else list(CASES)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")

    stale = common.warn_if_stale()
    started = time.time()
    load_before = os.getloadavg()
    ns = build_namespace()
    clock = time.perf_counter if args.wall else time.process_time
    rows: list[dict[str, Any]] = []
    for name in names:
        fast_stmt, psio_stmt, what = CASES[name]
        row: dict[str, Any] = {
            "case": name,
            "what": what,
            "fastsio_stmt": fast_stmt,
            "python_socketio_stmt": psio_stmt,
        }
        row.update(time_case(ns, fast_stmt, psio_stmt, args.repeats, args.min_time, clock))
        rows.append(row)
        print(
            f"{name:<18} fastsio {row['fastsio_ns']:>8,.0f} ns   python-socketio "
            f"{row['python_socketio_ns']:>8,.0f} ns   {row['speedup']:5.1f}x",
            file=sys.stderr,
            flush=True,
        )

    print_table(rows, args.repeats)
    targets = {}
    for name in TARGET_CASES:
        found = [r for r in rows if r["case"] == name]
        if not found:
            continue
        speedup = found[0]["speedup"]
        met = speedup >= TARGET_SPEEDUP
        targets[name] = {"min_speedup": TARGET_SPEEDUP, "speedup": speedup, "met": met}
        print(
            f"target {name} >= {TARGET_SPEEDUP:.0f}x python-socketio: {speedup:.1f}x "
            f"({'met' if met else 'NOT met'})"
        )

    import socketio

    machine = common.machine_info()
    machine["loadavg_before"] = load_before
    common.write_results(
        args,
        "codec.json",
        "codec",
        started,
        {
            "repeats": args.repeats,
            "min_time_s": args.min_time,
            "cases": names,
            "python_socketio_json": getattr(socketio.packet.Packet.json, "__name__", None),
            "statistic": "median of the repeats (best in *_best); speedup: median of the "
            "per-repeat ratios psio / fastsio",
            "clock": "perf_counter (wall)" if args.wall else "process_time (CPU time)",
            "fastsio_install_warning": stale,
        },
        machine,
        targets=targets,
        results=rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
