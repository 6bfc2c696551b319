"""Run every benchmark and put their figures side by side: one table, one JSON, one chart.

Each benchmark script runs as its own subprocess, one after the other (they would compete for
the CPUs otherwise), with its output shown live and kept in ``results/logs/<step>.log``:

==============  ================================================  ===========================
step            command                                           results
==============  ================================================  ===========================
stream-json     ``stream.py --serializer json``                   ``stream-json.json``
stream-msgpack  ``stream.py --serializer msgpack``                ``stream-msgpack.json``
rtt             ``rtt.py``                                        ``rtt.json``
stream-v2       ``stream.py --server-version 2``                  ``stream-json-v2.json``
rtt-v2          ``rtt.py --server-version 2``                     ``rtt-v2.json``
codec           ``codec.py``                                      ``codec.json``
memory          ``memory.py``                                     ``memory.json``
conns           ``conns.py``                                      ``conns.json``
publish         ``publish.py``                                    ``publish.json``
latency         ``latency.py``                                    ``latency.json``
binary          ``binary.py``                                     ``binary.json``
polling         ``polling.py``                                    ``polling.json``
==============  ================================================  ===========================

The scripts share ``common.py`` (server processes, workers, report JSON, columns; see its
docstring). ``--quick`` is passed on to every script that accepts it, and everything then goes to
``results/quick/`` so that a smoke run never replaces the real figures. A script that is
missing, fails or writes no results is reported as such, and the others still run.

Then the runner reads the results files and writes, in ``results/`` (``results/quick/``):

- ``latest.json``: the combined table, each benchmark's report (without per-run details), the
  status of every step, the machine and the exact command;
- ``latest.md``: the table in Markdown, with the command and the machine, ready for the README;
- ``latest.png``: one bar chart per row of the table (needs matplotlib: ``pip install
  matplotlib``; without it the chart is skipped with a note);
- ``latency-cdf.png``: the latency benchmark's CDFs, one panel per rate, one line per client.

Rows are metrics, columns are clients; the last columns say how many times better fastsio
(``AsyncClient`` on uvloop) is than ``raw``, python-socketio and Node socket.io-client, oriented
so that above 1 means fastsio is better (rates: fastsio / other; times, CPU, memory:
other / fastsio).

A results JSON is read as: ``{"benchmark": ..., <part>: [{"client": ..., <metric>: number,
...}, ...], ...}``, every list of per-client rows at the top level being a part. Its optional
``"metrics"`` list, ``[{"key", "label", "better": "higher"|"lower", "kind", "part"}]``, chooses
and names the rows; without it the runner picks known keys or every numeric one.

Usage::

    python benchmarks/run.py                    # everything, full length (tens of minutes)
    python benchmarks/run.py --quick            # smoke run of everything, a few minutes
    python benchmarks/run.py --only rtt,codec   # some steps; the table uses existing results
    python benchmarks/run.py --collect-only     # no runs: rebuild the table from results/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import HERE, RESULTS_DIR, ROOT


@dataclass
class Step:
    name: str
    script: str
    args: list[str]
    results_file: str
    benchmark: str
    #: config values a results file found by its "benchmark" name must also have
    config: dict[str, Any] = field(default_factory=dict)
    # filled in by run_step / collect
    status: str = "not run"
    note: str = ""
    cmd: list[str] = field(default_factory=list)
    returncode: int | None = None
    duration_s: float | None = None
    report_path: Path | None = None
    report: dict[str, Any] | None = None


def make_steps() -> list[Step]:
    return [
        Step(
            "stream-json",
            "stream.py",
            ["--serializer", "json"],
            "stream-json.json",
            "stream",
            {"serializer": "json"},
        ),
        Step(
            "stream-msgpack",
            "stream.py",
            ["--serializer", "msgpack"],
            "stream-msgpack.json",
            "stream",
            {"serializer": "msgpack"},
        ),
        Step("rtt", "rtt.py", [], "rtt.json", "rtt"),
        # Against a Socket.IO 2.x server (Engine.IO 3): fastsio, python-socketio 4.x, Node
        # socket.io-client 2.x.
        Step(
            "stream-v2",
            "stream.py",
            ["--server-version", "2"],
            "stream-json-v2.json",
            "stream",
            {"server_version": 2},
        ),
        Step(
            "rtt-v2",
            "rtt.py",
            ["--server-version", "2"],
            "rtt-v2.json",
            "rtt",
            {"server_version": 2},
        ),
        Step("codec", "codec.py", [], "codec.json", "codec"),
        Step("memory", "memory.py", [], "memory.json", "memory"),
        Step(
            "conns",
            "conns.py",
            ["--conns", "10000", "--servers", "2", "--stream-conns", "200", "--stream-floor"],
            "conns.json",
            "conns",
        ),
        Step("publish", "publish.py", [], "publish.json", "publish"),
        Step("latency", "latency.py", [], "latency.json", "latency"),
        Step("binary", "binary.py", [], "binary.json", "binary"),
        Step("polling", "polling.py", ["--same-cpu", "1"], "polling.json", "polling"),
    ]


# ==============================================================================================
# Running the steps
# ==============================================================================================


def script_options(script: Path) -> tuple[set[str] | None, str]:
    """The long options a script's ``--help`` mentions, or None and why."""
    try:
        proc = subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"--help failed: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f"--help exited {proc.returncode}: " + " | ".join(tail)
    return {w.strip("[],") for w in proc.stdout.split() if w.startswith("--")}, ""


def run_step(step: Step, out_dir: Path, quick: bool, timeout: float, log_dir: Path) -> None:
    script = HERE / step.script
    if not script.exists():
        step.status, step.note = "missing", f"benchmarks/{step.script} does not exist"
        return
    options, why = script_options(script)
    if options is None:
        step.status, step.note = "failed", why
        return
    cmd = [sys.executable, str(script), *step.args]
    notes = []
    if quick:
        if "--quick" in options:
            cmd.append("--quick")
        else:
            notes.append("script has no --quick: ran at full length")
    expected = out_dir / step.results_file
    if "--json-out" in options:
        cmd += ["--json-out", str(expected)]
    step.cmd = cmd
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{step.name}.log"
    print(f"\n=== {step.name}: {display_cmd(cmd)}", flush=True)
    started = time.time()
    with open(log_path, "w") as log:
        log.write(f"$ {display_cmd(cmd)}\n")
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            bufsize=1,
        )
        assert proc.stdout is not None
        deadline = started + timeout
        timed_out = False
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            if time.time() > deadline:
                timed_out = True
                break
        if timed_out:
            proc.kill()
        try:
            proc.wait(max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
    step.duration_s = round(time.time() - started, 1)
    step.returncode = proc.returncode
    path = expected if _fresh(expected, started) else find_report(step, started)
    if path is not None:
        step.report_path = path
        step.report = json.loads(path.read_text())
    if timed_out:
        step.status = "timeout"
        notes.append(f"killed after {timeout:.0f} s")
    elif proc.returncode != 0:
        step.status = "failed"
        notes.append(f"exited {proc.returncode} (log: {rel(log_path)})")
    else:
        step.status = "ok"
    if step.report is None:
        if step.status == "ok":
            step.status = "failed"
        notes.append("wrote no results file")
    step.note = "; ".join(notes)


def _fresh(path: Path, since: float) -> bool:
    return path.exists() and path.stat().st_mtime >= since - 1


def find_report(step: Step, since: float = 0.0, out_dir: Path | None = None) -> Path | None:
    """The newest results JSON (modified after ``since``) of the step's benchmark."""
    dirs = [out_dir] if out_dir is not None else [RESULTS_DIR, RESULTS_DIR / "quick"]
    found = []
    for d in dirs:
        for path in d.glob("*.json"):
            if path.name.startswith("latest") or not _fresh(path, since):
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict) or data.get("benchmark") != step.benchmark:
                continue
            config = data.get("config")
            if not isinstance(config, dict):
                config = {}
            if all(config.get(k) == v for k, v in step.config.items()):
                found.append((path.stat().st_mtime, path))
    return max(found)[1] if found else None


def collect_step(step: Step, out_dir: Path) -> None:
    """Use the results already on disk (--collect-only, or a step left out with --only)."""
    path = out_dir / step.results_file
    if not path.exists():
        path = find_report(step, out_dir=out_dir)  # type: ignore[assignment]
    if path is None or not path.exists():
        step.status, step.note = "no results", f"no {step.results_file} in {rel(out_dir)}"
        return
    step.report_path = path
    step.report = json.loads(path.read_text())
    step.status = "collected"
    step.note = f"existing results of {step.report.get('started', '?')}"


# ==============================================================================================
# The combined table
# ==============================================================================================

CLIENT_ORDER = (
    "null",
    "raw",
    "raw-noafn",
    "raw_orjson",
    "raw-await",
    "fastsio",
    "fastsio-batch",
    "fastsio-big",
    "fastsio-asyncio",
    "fastsio-sync",
    "python-socketio",
    "python-socketio-sync",
    "node",
    "python-socketio-4",
    "node-v2",
)
SUBJECT = "fastsio"
#: (client, column header, JSON key) of the ratio columns
REFERENCES = (
    ("raw", f"{SUBJECT} vs raw", "vs_raw"),
    ("python-socketio", f"{SUBJECT} vs python-socketio", "vs_python_socketio"),
    ("node", f"{SUBJECT} vs node", "vs_node"),
    ("python-socketio-4", f"{SUBJECT} vs python-socketio 4", "vs_python_socketio_4"),
    ("node-v2", f"{SUBJECT} vs node 2.x", "vs_node_v2"),
)


@dataclass
class Row:
    label: str
    better: str  # "higher" | "lower"
    kind: str  # how to format: rate, us, ns, ms, s, mb, kb, pct, count, float
    values: dict[str, float]
    step: str
    ratios: dict[str, float | None] = field(default_factory=dict)


# Known benchmarks: (key, label, better, kind)
STREAM_METRICS = (
    ("events_per_s", "events/s", "higher", "rate"),
    ("cpu_us_per_event", "CPU us/event", "lower", "us"),
    ("peak_rss_mb", "peak RSS MB", "lower", "mb"),
)
RTT_METRICS = (
    ("p50_us", "ack round trip p50 us", "lower", "us"),
    ("p99_us", "ack round trip p99 us", "lower", "us"),
    ("cpu_us_per_call", "CPU us/call", "lower", "us"),
)
#: keys picked (in this order) from the parts of other benchmarks that declare no "metrics":
#: {benchmark: {part: keys}}; a part not listed gets every numeric key
PREFERRED: dict[str, dict[str, tuple[str, ...]]] = {
    "memory": {
        "stream": ("peak_rss_mb",),
        "slow": ("rss_end_mb", "growth_2nd_half_mb_per_s", "backlog_end"),
    },
    "conns": {
        "results": (
            "connects_per_s",
            "connect_ms_p50",
            "connect_ms_p99",
            "kb_per_conn",
            "client_cpu_ms_per_conn",
        ),
    },
}
NOT_METRICS = {
    "count",
    "runs_ok",
    "rounds",
    "round",
    "received",
    "done_count",
    "elapsed_s",
    "duration_s",
    "late_events",
}


def guess_better(key: str) -> str:
    words = key.lower().split("_")
    if {"rss", "mb", "kb", "bytes", "cpu", "backlog", "ms", "us", "ns"} & set(words):
        return "lower"  # memory, CPU, time, backlog (also their growth per second)
    if "per_s" in key.lower() or {"rate", "throughput", "handled", "ok"} & set(words):
        return "higher"
    return "lower"


def guess_kind(key: str) -> str:
    k = key.lower()
    for suffix, kind in (
        ("_mb_per_s", "mb"),
        ("_per_s", "rate"),
        ("_mb", "mb"),
        ("_kb", "kb"),
        ("_ns", "ns"),
        ("_us", "us"),
        ("_ms", "ms"),
        ("_s", "s"),
        ("percent", "pct"),
    ):
        if k.endswith(suffix):
            return kind
    return "float"


_WORDS = {"rss": "RSS", "mb": "MB", "kb": "KB", "cpu": "CPU", "ms": "ms", "us": "us", "ns": "ns"}


def pretty_key(key: str) -> str:
    """``growth_2nd_half_mb_per_s`` -> ``growth 2nd half MB/s``."""
    words = [_WORDS.get(w, w) for w in key.split("_")]
    text = " ".join(words)
    return text.replace(" per s", "/s").replace(" per ", "/")


def is_metric_key(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    k = key.lower()
    return not (
        key in NOT_METRICS
        or k.startswith("ratio")
        or "_vs_" in k
        or k.endswith(("_min", "_max", "_best", "_loops"))
        or k.startswith("server_")
        or k == "cpu_percent"
    )


def _client_value(row: dict[str, Any], key: str) -> float | None:
    if row.get("skipped") or row.get("runs_ok") == 0:
        return None
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def parts_of(report: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for key, value in report.items():
        if key in ("runs", "metrics") or not isinstance(value, list) or not value:
            continue
        rows = [r for r in value if isinstance(r, dict) and "client" in r]
        if rows:
            yield key, rows


def _discriminators(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What tells apart several rows of one client in one part (e.g. ``handler``)."""
    skip = {"client", "loop", "skipped", "errors", "error", "note", "case", "what"}
    return tuple(
        (k, v) for k, v in row.items() if k not in skip and isinstance(v, str) and len(v) <= 40
    )


def rows_from_report(step: Step) -> list[Row]:
    report = step.report or {}
    bench = report.get("benchmark", step.benchmark)
    if bench == "codec":
        return _codec_rows(step, report)
    if bench == "stream":
        serializer = report.get("config", {}).get("serializer", "")
        prefix = f"stream {'JSON' if serializer == 'json' else serializer}".strip()
        if report.get("config", {}).get("server_version") == 2:
            prefix += " (socket.io 2.5 server)"
        return _keyed_rows(step, report.get("results", []), prefix, STREAM_METRICS)
    if bench == "rtt":
        pin = report.get("config", {}).get("pin")
        where = {"same": " (client+server on 1 CPU)", "split": " (1 CPU each)"}.get(pin, "")
        if report.get("config", {}).get("server_version") == 2:
            where = where.replace("(", "(socket.io 2.5 server, ") if where else " (socket.io 2.5)"
        return _keyed_rows(step, report.get("results", []), f"rtt{where}", RTT_METRICS)
    if bench == "latency":
        return _latency_rows(step, report)
    if bench == "binary":
        return _binary_rows(step, report)
    if bench == "polling":
        return _polling_rows(step, report)
    return _generic_rows(step, report, bench)


def _rate_label(rate: float) -> str:
    return f"{rate / 1000:.0f}k/s"


def _latency_rows(step: Step, report: dict[str, Any]) -> list[Row]:
    results = report.get("results", [])
    return _grouped_rows(
        step,
        results,
        "rate",
        sorted({r["rate"] for r in results if "rate" in r}),
        lambda rate: f"latency at {_rate_label(rate)}",
        (
            ("p50_us", "p50 us", "lower", "us"),
            ("p99_us", "p99 us", "lower", "us"),
            ("p999_us", "p99.9 us", "lower", "us"),
        ),
    )


def _size_label(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def _binary_rows(step: Step, report: dict[str, Any]) -> list[Row]:
    results = report.get("results", [])
    out: list[Row] = []
    cells = sorted(
        {(r["direction"], r["serializer"], r["size"]) for r in results},
        key=lambda c: (c[0] != "recv", c[1], c[2]),
    )
    for direction, serializer, size in cells:
        rows = [
            r
            for r in results
            if (r["direction"], r["serializer"], r["size"]) == (direction, serializer, size)
        ]
        what = (
            f"binary {direction} {'JSON' if serializer == 'json' else serializer} "
            f"{_size_label(size)}"
        )
        metrics = [("mb_per_s", "MB/s", "higher", "float")]
        if size <= 1024:
            metrics.append(("events_per_s", "events/s", "higher", "rate"))
        out += _keyed_rows(step, rows, what, metrics)
    return out


def _polling_rows(step: Step, report: dict[str, Any]) -> list[Row]:
    return _grouped_rows(
        step,
        report.get("results", []),
        "direction",
        ("recv", "send"),
        lambda direction: f"polling {direction}",
        (
            ("events_per_s", "events/s", "higher", "rate"),
            ("cpu_us_per_event", "CPU us/event", "lower", "us"),
        ),
    )


def _grouped_rows(
    step: Step,
    results: list[dict[str, Any]],
    key: str,
    values: Iterable[Any],
    label: Callable[[Any], str],
    metrics: tuple[tuple[str, str, str, str], ...],
) -> list[Row]:
    """``_keyed_rows`` for each value of ``results``' ``key`` in ``values``, labelled ``label(value)``."""
    out: list[Row] = []
    for value in values:
        rows = [r for r in results if r.get(key) == value]
        out += _keyed_rows(step, rows, label(value), metrics)
    return out


def _keyed_rows(
    step: Step,
    results: list[dict[str, Any]],
    prefix: str,
    metrics: tuple[tuple[str, str, str, str], ...] | list[tuple[str, str, str, str]],
) -> list[Row]:
    out = []
    for key, label, better, kind in metrics:
        values = {r["client"]: v for r in results if (v := _client_value(r, key)) is not None}
        if values:
            out.append(Row(f"{prefix}: {label}", better, kind, values, step.name))
    return out


def _codec_rows(step: Step, report: dict[str, Any]) -> list[Row]:
    out = []
    for r in report.get("results", []):
        values = {}
        if isinstance(r.get("fastsio_ns"), (int, float)):
            values["fastsio"] = float(r["fastsio_ns"])
        if isinstance(r.get("python_socketio_ns"), (int, float)):
            values["python-socketio"] = float(r["python_socketio_ns"])
        if values:
            out.append(Row(f"codec {r.get('case')}: ns/packet", "lower", "ns", values, step.name))
    return out


def _generic_rows(step: Step, report: dict[str, Any], bench: str) -> list[Row]:
    declared = report.get("metrics")
    out: list[Row] = []
    for part, results in parts_of(report):
        groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
        for r in results:
            groups.setdefault(_discriminators(r), []).append(r)
        for disc, rows in groups.items():
            name = bench if part == "results" else f"{bench} {part}"
            if disc:
                name += " [" + ", ".join(v for _, v in disc) + "]"
            metrics: list[tuple[str, str, str, str]]
            if isinstance(declared, list) and declared:
                metrics = [
                    (
                        str(m["key"]),
                        str(m.get("label", m["key"])),
                        str(m.get("better", guess_better(m["key"]))),
                        str(m.get("kind", guess_kind(m["key"]))),
                    )
                    for m in declared
                    if isinstance(m, dict) and "key" in m and m.get("part", part) == part
                ]
            else:
                keys: list[str] = []
                for r in rows:
                    keys += [k for k, v in r.items() if is_metric_key(k, v) and k not in keys]
                preferred = [k for k in PREFERRED.get(bench, {}).get(part, ()) if k in keys]
                metrics = [
                    (k, pretty_key(k), guess_better(k), guess_kind(k)) for k in (preferred or keys)
                ]
            out += _keyed_rows(step, rows, name, metrics)
    return out


def add_ratios(row: Row) -> None:
    mine = row.values.get(SUBJECT)
    for client, _, key in REFERENCES:
        other = row.values.get(client)
        if mine is None or other is None or client == SUBJECT:
            row.ratios[key] = None
        elif fmt_value(mine, row.kind) == fmt_value(other, row.kind):
            row.ratios[key] = 1.0  # equal as far as the table can tell (e.g. 0.0 and 0.0)
        elif mine <= 0 or other <= 0:
            row.ratios[key] = None
        elif row.better == "higher":
            row.ratios[key] = mine / other
        else:
            row.ratios[key] = other / mine


def client_columns(rows: list[Row]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        seen += [c for c in r.values if c not in seen]
    known = [c for c in CLIENT_ORDER if c in seen]
    return known + sorted(c for c in seen if c not in CLIENT_ORDER)


def fmt_value(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        if value >= 1e4:
            return f"{value / 1e3:.0f}k"
        if value >= 1e3:
            return f"{value / 1e3:.1f}k"
        return f"{value:.0f}"
    if kind in ("us", "ms", "s", "float"):
        if value == 0 or (kind == "float" and value.is_integer()):
            return f"{value:,.0f}"
        return _three_digits(value, ",.0f")
    if kind in ("ns", "kb", "count"):
        return f"{value:,.0f}"
    if kind == "mb":
        return f"{value:.1f}"
    if kind == "pct":
        return f"{value:.0f}%"
    return f"{value:.3g}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio < 0.001:
        return "<0.001x"
    if ratio < 0.1:
        return f"{ratio:.3f}x"
    return f"{_three_digits(ratio, '.0f')}x"


def _three_digits(value: float, whole: str) -> str:
    """About three significant digits: 12.3, 1.23; from 100 on, no decimals (format ``whole``)."""
    if abs(value) >= 100:
        return format(value, whole)
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table_cells(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    clients = client_columns(rows)
    refs = [(c, h, k) for c, h, k in REFERENCES if any(r.ratios.get(k) for r in rows)]
    header = ["metric", *clients, *(h for _, h, _ in refs)]
    body = []
    for r in rows:
        arrow = "\u2191" if r.better == "higher" else "\u2193"
        body.append(
            [
                f"{r.label} {arrow}",
                *(fmt_value(r.values.get(c), r.kind) for c in clients),
                *(fmt_ratio(r.ratios.get(k)) for _, _, k in refs),
            ]
        )
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for i, row in enumerate([header, *body]):
        lines.append(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [
        "| " + " | ".join(esc(h) for h in header) + " |",
        "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


# ==============================================================================================
# Output files
# ==============================================================================================


def rel(path: Path) -> str:
    """The path relative to the checkout when it is inside it (symlinks not followed)."""
    for p in (Path(os.path.abspath(path)), path.resolve()):
        try:
            return str(p.relative_to(ROOT))
        except ValueError:
            pass
    return str(path)


def display_cmd(cmd: list[str]) -> str:
    return shlex.join(rel(Path(c)) if c.startswith("/") else c for c in cmd)


def strip_runs(obj: Any) -> Any:
    """A report without its per-run details (``runs``, raw samples): they stay in its file."""
    if isinstance(obj, dict):
        return {
            k: strip_runs(v) for k, v in obj.items() if k != "runs" and not k.endswith("samples_ns")
        }
    if isinstance(obj, list):
        return [strip_runs(v) for v in obj]
    return obj


def machine_summary(machine: dict[str, Any]) -> str:
    pk = machine.get("packages") or {}
    node = machine.get("node")
    node_s = node.get("node") if isinstance(node, dict) else node
    sio = node.get("socket.io") if isinstance(node, dict) else None
    parts = [
        f"{machine.get('cpu_model') or 'unknown CPU'}, {machine.get('nproc')} CPUs"
        + (
            f" ({machine.get('cpus_usable')} usable)"
            if machine.get("cpus_usable") not in (None, machine.get("nproc"))
            else ""
        ),
        f"Linux {machine.get('kernel')}",
        f"{machine.get('python_implementation', 'Python')} {machine.get('python')}",
    ]
    if node_s:
        parts.append(f"Node {node_s}" + (f" (socket.io {sio})" if sio else ""))
    versions = ", ".join(
        f"{name} {pk[name]}"
        for name in ("fastsio", "picows", "uvloop", "orjson", "python-socketio")
        if pk.get(name)
    )
    if versions:
        parts.append(versions)
    return "; ".join(parts)


def targets_summary(steps: list[Step]) -> list[str]:
    lines = []
    for step in steps:
        targets = (step.report or {}).get("targets") or {}
        for name, t in targets.items():
            if not isinstance(t, dict):
                continue
            if "limit_vs_raw" in t and t.get("ratio_vs_raw") is not None:
                lines.append(
                    f"{step.name}: fastsio {name.replace('_us', '')} {t['ratio_vs_raw']:.2f}x raw "
                    f"(target <= {t['limit_vs_raw']}x): {'met' if t.get('met') else 'NOT met'}"
                )
            elif "op" in t and t.get("value") is not None:
                unit = t.get("unit", "x")
                sep = " " if len(unit) > 1 else ""
                extra = f" ({t['note']})" if t.get("note") else ""
                lines.append(
                    f"{step.name}: {name} {t['value']:.2f}{sep}{unit} "
                    f"(target {t['op']} {t['limit']}{sep}{unit}): "
                    f"{'met' if t.get('met') else 'NOT met'}{extra}"
                )
            elif "min_speedup" in t and t.get("speedup") is not None:
                lines.append(
                    f"{step.name}: {name} {t['speedup']:.1f}x faster than python-socketio "
                    f"(target >= {t['min_speedup']:.0f}x): {'met' if t.get('met') else 'NOT met'}"
                )
    return lines


def write_markdown(
    path: Path,
    header: list[str],
    body: list[list[str]],
    steps: list[Step],
    command: str,
    when: str,
    machine: dict[str, Any],
    quick: bool,
    chart: Path | None,
) -> None:
    lines = []
    if quick:
        lines += ["**Quick smoke run: short runs, not representative figures.**", ""]
    lines += [
        f"Measured with `{command}` on {when}: {machine_summary(machine)}.",
        "",
        markdown_table(header, body),
        "",
        "\u2191 higher is better, \u2193 lower is better. "
        "Each figure is the median of the benchmark's rounds (codec: repeats); all clients ran "
        "one at a time on the same machine, against the same local server. The `fastsio vs` "
        "columns say how many times better fastsio (`AsyncClient` on uvloop) is than each "
        "reference, above 1 meaning better: for rates fastsio / other, for times, CPU and "
        "memory other / fastsio. `raw` is a bare picows WebSocket client doing only the "
        "protocol's minimum in Python (the practical limit); `node` is socket.io-client 4.8. "
        "The rows marked socket.io 2.5 run against a Socket.IO 2.x server (Engine.IO 3), where "
        "`node-v2` is socket.io-client 2.x and `python-socketio-4` python-socketio 4.x. "
        "Per-benchmark details: `benchmarks/results/*.json`, and the docstring of each script "
        "in `benchmarks/`.",
    ]
    targets = targets_summary(steps)
    if targets:
        lines += ["", "Targets:", ""] + [f"- {t}" for t in targets]
    collected = [s for s in steps if s.status == "collected" and s.report_path]
    if collected:
        lines += ["", "Taken from earlier runs (not run by this command):", ""]
        lines += [
            f"- {s.name}: `{rel(s.report_path)}` of {(s.report or {}).get('started', '?')}"
            + (f" (`{(s.report or {}).get('command')}`)" if (s.report or {}).get("command") else "")
            for s in collected
            if s.report_path is not None
        ]
    problems = [s for s in steps if s.status not in ("ok", "collected")]
    if problems:
        lines += ["", "Not in the table:", ""]
        lines += [f"- {s.name}: {s.status}" + (f" ({s.note})" if s.note else "") for s in problems]
    if chart is not None:
        lines += ["", f"![fastsio benchmarks]({rel(chart)})"]
    path.write_text("\n".join(lines) + "\n")


CLIENT_COLORS = {
    "fastsio": "#d62728",
    "python-socketio": "#1f77b4",
    "node": "#2ca02c",
    "raw": "#7f7f7f",
}


def client_color(client: str) -> str:
    if client.startswith("fastsio"):
        return "#d62728" if client == "fastsio" else "#ff9896"
    if client.startswith("python-socketio"):
        return "#1f77b4" if client == "python-socketio" else "#aec7e8"
    if client.startswith("raw"):
        return "#7f7f7f" if client == "raw" else "#c7c7c7"
    return CLIENT_COLORS.get(client, "#9467bd")


def render_chart(path: Path, rows: list[Row], title: str, footer: str) -> str | None:
    """Draw the chart; return None, or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): chart skipped"
    if not rows:
        return "no figures to chart"
    clients = client_columns(rows)
    ncols = 3
    nrows = math.ceil(len(rows) / ncols)
    # Each line of charts is as tall as its chart with the most bars (plus room for titles).
    heights = [
        max(len(r.values) for r in rows[i * ncols : (i + 1) * ncols]) + 2.5 for i in range(nrows)
    ]
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(6.2 * ncols, 0.3 * sum(heights) + 1.0),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    flat = list(axes.flat)
    for ax, row in zip(flat, rows, strict=False):
        names = [c for c in clients if c in row.values][::-1]
        values = [row.values[c] for c in names]
        ax.barh(names, values, height=0.7, color=[client_color(c) for c in names])
        ax.set_ylim(-0.6, len(names) - 0.4)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
        for i, v in enumerate(values):
            ax.text(v, i, " " + fmt_value(v, row.kind), va="center", fontsize=7)
        ax.set_title(f"{row.label}\n({row.better} is better)", fontsize=8.5, loc="left", wrap=True)
        ax.tick_params(axis="both", labelsize=7)
        ax.margins(x=0.25)
    for ax in flat[len(rows) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.003, footer, fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.02, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def render_latency_chart(path: Path, report: dict[str, Any], footer: str) -> str | None:
    """Latency CDFs: one panel per rate, one line per client (x: microseconds, log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: latency chart skipped"
    results = [r for r in report.get("results", []) if r.get("cdf")]
    rates = sorted({r["rate"] for r in results})
    if not rates:
        return "no latency CDFs to chart"
    fig, axes = plt.subplots(1, len(rates), figsize=(6.2 * len(rates), 4.6), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for r in results:
            if r["rate"] != rate:
                continue
            qs = [q for q, _ in r["cdf"]]
            us = [max(v, 0.1) for _, v in r["cdf"]]
            ax.plot(
                us,
                qs,
                label=r["client"],
                color=client_color(r["client"]),
                linestyle="--" if r["client"] in ("null", "raw_orjson") else "-",
            )
        ax.set_xscale("log")
        ax.set_xlabel("handler entry - server stamp (us, log)", fontsize=8)
        ax.set_ylabel("fraction of events", fontsize=8)
        ax.set_title(f"{_rate_label(rate)} events/s", fontsize=10)
        ax.axhline(0.99, color="#cccccc", linewidth=0.8)
        ax.grid(True, which="both", linewidth=0.3)
        ax.tick_params(axis="both", labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"Latency under load, {report.get('started', '')} "
        f"(`{report.get('command', 'latency.py')}`)",
        fontsize=10,
    )
    fig.text(0.01, 0.005, footer, fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ==============================================================================================
# Main
# ==============================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: --quick to every script; results in benchmarks/results/quick/",
    )
    names = [s.name for s in make_steps()]
    parser.add_argument("--only", default=None, help=f"comma-separated steps of: {names}")
    parser.add_argument("--skip", default="", help="comma-separated steps not to run")
    parser.add_argument(
        "--collect-only",
        action="store_true",
        help="run nothing: rebuild latest.* from the results already there",
    )
    parser.add_argument(
        "--step-timeout",
        type=float,
        default=None,
        help="seconds per step before it is killed (default 3600; --quick: 600)",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw latest.png")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    timeout = args.step_timeout or (600.0 if args.quick else 3600.0)
    chosen = set(names)
    if args.only:
        chosen = {s.strip() for s in args.only.split(",") if s.strip()}
    chosen -= {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = chosen - set(names)
    if unknown:
        parser.error(f"unknown step(s) {sorted(unknown)}; known: {', '.join(names)}")

    out_dir = RESULTS_DIR / "quick" if args.quick else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = rel(Path(sys.executable)) if Path(sys.executable).is_absolute() else sys.executable
    command = shlex.join([exe, "benchmarks/run.py", *argv_used])
    started = time.time()
    load_before = os.getloadavg()
    steps = make_steps()
    for step in steps:
        if step.name in chosen and not args.collect_only:
            run_step(step, out_dir, args.quick, timeout, out_dir / "logs")
        else:
            collect_step(step, out_dir)
            if step.status == "collected" and not args.collect_only:
                step.note = "not run now: " + step.note

    rows: list[Row] = []
    for step in steps:
        if step.report is not None:
            try:
                step_rows = rows_from_report(step)
            except Exception as exc:  # a results format this runner does not understand
                step_rows = []
                step.note = f"{step.note}; unreadable results: {type(exc).__name__}: {exc}"
            if not step_rows:
                step.note = (step.note + "; " if step.note else "") + "no figures in its results"
            rows += step_rows
    for row in rows:
        add_ratios(row)
    header, body = table_cells(rows)

    machine = common.machine_info()
    machine["loadavg_before"] = load_before
    machine["loadavg_after"] = os.getloadavg()
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started))

    print("\n" + "=" * 100)
    print(f"fastsio benchmarks{' (QUICK smoke run)' if args.quick else ''}: {command}")
    print(f"{when}: {machine_summary(machine)}\n")
    print(text_table(header, body) if rows else "(no figures)")
    print(
        "\n\u2191 higher is better, \u2193 lower is better; fastsio vs X: how many times better "
        "fastsio is (rates: fastsio/X; times, CPU, memory: X/fastsio)."
    )
    for line in targets_summary(steps):
        print("target", line)
    print("\nsteps:")
    for step in steps:
        src = f" -> {rel(step.report_path)}" if step.report_path else ""
        dur = f" in {step.duration_s:.0f} s" if step.duration_s is not None else ""
        print(
            f"  {step.name:<15} {step.status}{dur}{src}" + (f"  ({step.note})" if step.note else "")
        )

    chart_path: Path | None = out_dir / "latest.png"
    chart_note = None
    if args.no_chart:
        chart_path, chart_note = None, "chart not requested (--no-chart)"
    else:
        assert chart_path is not None
        chart_note = render_chart(
            chart_path,
            rows,
            f"fastsio benchmarks{' (quick smoke run)' if args.quick else ''}, {when}",
            f"{command}  |  {machine_summary(machine)}",
        )
        if chart_note:
            chart_path = None
    if chart_note:
        print(f"\nnote: {chart_note}")
    latency_chart: Path | None = None
    latency_step = next((s for s in steps if s.name == "latency" and s.report), None)
    if latency_step is not None and not args.no_chart:
        latency_chart = out_dir / "latency-cdf.png"
        why = render_latency_chart(
            latency_chart, latency_step.report or {}, f"{command}  |  {machine_summary(machine)}"
        )
        if why:
            print(f"note: {why}")
            latency_chart = None

    md_path = out_dir / "latest.md"
    write_markdown(md_path, header, body, steps, command, when, machine, args.quick, chart_path)
    if latency_chart is not None:
        with open(md_path, "a") as md:
            md.write(f"\n![latency under load]({rel(latency_chart)})\n")
    report = {
        "benchmark": "all",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": command,
        "cwd": str(ROOT),
        "quick": args.quick,
        "machine": machine,
        "steps": [
            {
                "name": s.name,
                "script": f"benchmarks/{s.script}",
                "cmd": display_cmd(s.cmd) if s.cmd else None,
                "status": s.status,
                "note": s.note,
                "returncode": s.returncode,
                "duration_s": s.duration_s,
                "results_file": rel(s.report_path) if s.report_path else None,
            }
            for s in steps
        ],
        "table": {
            "columns": header,
            "rows": [
                {
                    "metric": r.label,
                    "better": r.better,
                    "kind": r.kind,
                    "step": r.step,
                    "values": r.values,
                    "ratios": r.ratios,
                }
                for r in rows
            ],
            "ratio_meaning": "how many times better fastsio is: rates fastsio/other, "
            "times, CPU and memory other/fastsio",
        },
        "targets": targets_summary(steps),
        "chart": rel(chart_path) if chart_path else None,
        "latency_chart": rel(latency_chart) if latency_chart else None,
        "chart_note": chart_note,
        "reports": {s.name: strip_runs(s.report) for s in steps if s.report is not None},
    }
    json_path = out_dir / "latest.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nwrote {rel(json_path)}, {rel(md_path)}" + (f", {rel(chart_path)}" if chart_path else "")
    )
    ran = [s for s in steps if s.name in chosen and not args.collect_only]
    return 1 if any(s.status != "ok" for s in ran) else 0


if __name__ == "__main__":
    sys.exit(main())
