"""FastsioUser vs Locust's own SocketIOUser: what one Locust worker gets per CPU-second.

One headless, single-process Locust run per (scenario, client) against the same Node socket.io
4.8 peer (tests/peers/server.js), the user classes in benchmarks/locust_users.py:

- calls: ``call('ack', 1)`` back to back from every user: calls per worker CPU-second (``WSC``
  count / the worker's CPU seconds during the run) and Locust's p50/p99/average call latency;
- receive: ``call('burst', N)``, the server sends N ``tick`` events before the ack: received
  events per worker CPU-second (``WSR tick`` count / CPU seconds).

The worker's CPU seconds are its user+sys time between Locust's test_start and test_stop events
(start-up excluded). The Node server shares the machine: on a small one it can be the
bottleneck, which caps both clients' rates but not their CPU per operation.

Usage: .venv/bin/python benchmarks/locust.py [--users 10] [--seconds 8] [--burst 200] [--runs 1]
(needs ``pip install .[locust]`` or the test extra, and ``npm ci --prefix tests/peers``).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import HERE, NodeServer

USERS_FILE = HERE / "locust_users.py"


def run_locust(cls: str, url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cpu_out = work / f"{cls}.cpu"
    env = dict(os.environ, BENCH_CPU_OUT=str(cpu_out), BENCH_BURST=str(args.burst))
    cmd = [
        *(sys.executable, "-m", "locust", "-f", str(USERS_FILE), cls, "--headless"),
        *("-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s"),
        *("--stop-timeout", "10", "--host", url, "--csv", str(work / cls), "--only-summary"),
        "--loglevel",
        "WARNING",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=work, env=env, timeout=args.seconds + 60
    )
    if proc.returncode not in (0, 1):  # 1: some requests failed (reported below)
        raise SystemExit(f"locust {cls} failed:\n{proc.stderr[-3000:]}")
    with open(work / f"{cls}_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    cpu = float(cpu_out.read_text())
    calls = rows.get(("WSC", "ack")) or rows.get(("WSC", "burst"))
    assert calls is not None, rows.keys()
    received = rows.get(("WSR", "tick"))
    failures = int(rows[("", "Aggregated")]["Failure Count"])
    return {
        "cpu_s": cpu,
        "calls": int(calls["Request Count"]),
        "received": int(received["Request Count"]) if received else 0,
        "failures": failures,
        "p50_ms": float(calls["50%"]),
        "p99_ms": float(calls["99%"]),
        "avg_ms": float(calls["Average Response Time"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1, help="runs per case; medians are reported")
    args = ap.parse_args(argv)
    try:
        server = NodeServer()
    except RuntimeError as exc:
        raise SystemExit(f"{exc} (npm ci --prefix tests/peers?)") from None
    url = server.url
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.runs):
                for cls in ("FastsioCalls", "SocketIOCalls", "FastsioReceive", "SocketIOReceive"):
                    results.setdefault(cls, []).append(run_locust(cls, url, args, Path(tmp)))
    finally:
        server.stop()

    def med(cls: str, key: str) -> float:
        return statistics.median(r[key] for r in results[cls])

    def per_cpu(cls: str, key: str) -> float:
        return statistics.median(r[key] / r["cpu_s"] for r in results[cls])

    print(
        f"Locust {args.users} users, {args.seconds} s per run, {args.runs} run(s) per case, "
        f"burst {args.burst}; figures per worker CPU-second (medians)"
    )
    header = f"{'case':<16} {'calls':>8} {'calls/cpu-s':>12} {'recv/cpu-s':>11} "
    header += f"{'p50 ms':>7} {'p99 ms':>7} {'avg ms':>7} {'fails':>6}"
    print(header)
    for cls in results:
        recv = per_cpu(cls, "received") if "Receive" in cls else float("nan")
        print(
            f"{cls:<16} {med(cls, 'calls'):>8.0f} {per_cpu(cls, 'calls'):>12.0f} {recv:>11.0f} "
            f"{med(cls, 'p50_ms'):>7.1f} {med(cls, 'p99_ms'):>7.1f} {med(cls, 'avg_ms'):>7.2f} "
            f"{med(cls, 'failures'):>6.0f}"
        )
    calls_ratio = per_cpu("FastsioCalls", "calls") / per_cpu("SocketIOCalls", "calls")
    recv_ratio = per_cpu("FastsioReceive", "received") / per_cpu("SocketIOReceive", "received")
    print(
        f"fastsio / python-socketio: calls per CPU-second x{calls_ratio:.1f}, "
        f"received events per CPU-second x{recv_ratio:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
