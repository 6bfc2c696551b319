"""Instructions per packet of the codec and dispatch hot paths, counted by valgrind's callgrind.

Wall-clock and CPU-time figures swing by 2x on a busy machine; the number of instructions a
statement executes does not (within a fraction of a percent). For every case of
``benchmarks/codec.py`` (the fastsio statement only), a child Python runs under
``valgrind --tool=callgrind --dump-before=os_getppid``: each ``os.getppid()`` it makes (a call
nothing else in the child makes) closes one dump. Per case it warms up, then runs the
statement N times, then 2N times, each between two marks; instructions per packet =
(Ir(2N) - Ir(N)) / N, which cancels the loop, the marks and everything outside them. The child
runs with ``PYTHONHASHSEED=0`` and the garbage collector off, so two runs agree.

Usage::

    python benchmarks/instructions.py            # print instructions per packet
    python benchmarks/instructions.py --check    # fail if a case grew > 5% over the baseline
    python benchmarks/instructions.py --update   # write the baseline (a deliberate change)

The baseline is ``benchmarks/results/instructions.json`` (committed). ``make bench-check`` and
``make bench-baseline`` run the last two. Needs valgrind (``apt-get install valgrind``); the
counts depend on the CPython, compiler and library versions, so a baseline is compared only on
the same versions (``--check`` says so and fails when they differ: rebuild the baseline there).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "results" / "instructions.json"
TOLERANCE = 0.05  # a case may grow this much over the baseline before --check fails
N = 2000  # statement runs in the shorter measured loop (the longer runs 2N)
WARMUP = 300


def child() -> None:
    """Run under callgrind: mark, run each case N and 2N times, mark; print the case order."""
    sys.path.insert(0, str(HERE))
    from codec import CASES, build_namespace

    ns = build_namespace()
    mark = os.getppid
    names = []
    gc.disable()
    for name, (stmt, _other, _what) in CASES.items():
        code = f"def _run(n):\n    for _ in range(n):\n        {stmt}\n"
        exec(code, ns)  # noqa: S102 (our own statements)
        run = ns["_run"]
        run(WARMUP)
        mark()
        run(N)
        mark()
        run(2 * N)
        mark()
        names.append(name)
    print(json.dumps(names))


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    # Not the venv's Cython: pip builds fastsio with the Cython of its isolated build
    # environment (pyproject's build-system), whatever the venv holds.
    for dist in ("fastsio", "orjson", "msgpack", "picows"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    try:
        vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
        out["valgrind"] = vg.stdout.strip()
    except OSError:
        pass
    return out


def measure() -> dict[str, float]:
    """Instructions per packet for every case, from one callgrind run of the child."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    stdout, totals = common.callgrind_dumps([str(Path(__file__).resolve()), "--child"])
    names = json.loads(stdout.strip().splitlines()[-1])
    # Dump k (from 1, totals[k - 1]) holds what ran before the k-th mark; three marks per case.
    if len(totals) < 3 * len(names):
        raise SystemExit(f"expected {3 * len(names)} dumps, got {len(totals)}")
    result = {}
    for i, name in enumerate(names):
        ir_n, ir_2n = totals[3 * i + 1], totals[3 * i + 2]
        result[name] = round((ir_2n - ir_n) / N, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help="compare with the committed baseline")
    ap.add_argument("--update", action="store_true", help="write the baseline")
    args = ap.parse_args(argv)
    if args.child:
        child()
        return 0
    got = measure()
    ver = versions()
    base: dict[str, Any] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    old = base.get("instructions_per_packet", {})
    print(f"{'case':<22} {'instr/packet':>13} {'baseline':>10} {'change':>8}")
    worse = []
    for name, ir in got.items():
        ref = old.get(name)
        change = f"{(ir / ref - 1) * 100:+.1f}%" if ref else "-"
        print(f"{name:<22} {ir:>13,.0f} {ref or 0:>10,.0f} {change:>8}")
        if ref and ir > ref * (1 + TOLERANCE):
            worse.append(f"{name}: {ir:,.0f} > {ref:,.0f} + {TOLERANCE:.0%}")
    if args.update:
        BASELINE.write_text(
            json.dumps(
                {
                    "what": "instructions per packet (callgrind Ir), benchmarks/instructions.py",
                    "versions": ver,
                    "instructions_per_packet": got,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"baseline written to {BASELINE.relative_to(HERE.parent)}")
        return 0
    if args.check:
        if not old:
            print(f"no baseline in {BASELINE} (make bench-baseline)")
            return 1
        if base.get("versions") != ver:
            print(f"baseline made with {base.get('versions')},\nthis is {ver}: counts differ")
            print("across versions; rebuild the baseline here first (make bench-baseline)")
            return 1
        if worse:
            print("instruction count regressions (over the committed baseline):")
            print("\n".join("  " + w for w in worse))
            return 1
        print(f"ok: no case grew more than {TOLERANCE:.0%} over the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
