"""What every benchmark script shares; a script imports it as ``import common``.

(A script's own directory is first on ``sys.path``, so no path juggling is needed.)

It owns:

- where things are: ``ROOT``, ``RESULTS_DIR``, ``NODE_DIR`` (the Node clients), ``NODE_PEERS``;
- the servers a benchmark runs against, each its own process that prints ``LISTENING <port>``:
  ``ServerProcess`` (any such command), ``FirehoseProcess`` (fastsio's embedded firehose) and
  ``NodeServer`` (``tests/peers/server.js``, socket.io 4.8, 3.1 or 2.5);
- measuring: instructions under callgrind (``callgrind_dumps``), CPU time of this process
  (``cpu_s``), of another one (``proc_cpu_s``), of the finished children (``children_cpu_s``),
  of the whole machine (``system_busy_s``), RSS (``rss_kb``, ``peak_rss_kb``), CPU pinning
  (``pinner``);
- workers: client names (``split_client``), running one client on a fresh loop and printing its
  result as one JSON line (``run_worker``), the worker's hidden options
  (``add_worker_options``), the parent's side of it (``worker_argv``, ``run_json_worker``,
  ``parse_worker_output``, ``keep_run``); the venv of python-socketio 4.x, the line that talks
  to Socket.IO 2.x servers (``legacy_psio_python``, ``worker_pythons``, ``LEGACY_PSIO``: its
  client name);
- options: ``add_common_options`` (``--quick``, ``--json-out``), ``add_sized_options`` and
  ``fill_sized_options`` (defaults that depend on ``--quick``), ``add_client_options`` and
  ``chosen_clients`` (``--clients``, ``--timeout``, ``--server-version``), ``comma_list``,
  ``comma_ints``;
- reports: ``machine_info``, ``installed_fastsio_is_stale``, ``results_path``,
  ``command_line``, ``write_results`` (the JSON layout ``run.py`` reads: ``benchmark``,
  ``started``, ``duration_s``, ``command``, ``config``, ``machine``, then the parts), ``finish``
  (targets printed, results, targets and runs written);
- columns: ``median``, ``median_row``, ``find_row``, ``fmt``, ``print_columns``, ``print_rows``,
  ``print_targets``;
- server processes' side: ``serve_forever`` (the ``LISTENING <port>`` line).

It knows nothing of any one benchmark's clients or metrics, and imports nothing of fastsio:
the installed fastsio is what is measured, and only the workers load it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
NODE_DIR = HERE / "node"
NODE_PEERS = ROOT / "tests" / "peers"
#: The one line a server process prints on stdout once it accepts connections.
LISTENING = re.compile(r"^LISTENING (\d+)$")
#: Packages whose versions go into every report.
PACKAGES = (
    "picows",
    "aiofastnet",
    "orjson",
    "msgpack",
    "uvloop",
    "aiohttp",
    "python-socketio",
    "python-engineio",
    "websocket-client",
    "fastsio",
)
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ==============================================================================================
# Measuring
# ==============================================================================================


def cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished (waited for) children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def system_busy_s(cpus: set[int] | None = None) -> float:
    """CPU seconds that ``cpus`` (default: all) spent not idle since boot."""
    names = {f"cpu{c}" for c in cpus} if cpus else {"cpu"}
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in names:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    return busy / _TICK


def rss_kb() -> int:
    """This process's resident set size now, KiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KB


def peak_rss_kb() -> int:
    """This process's peak resident set size (``ru_maxrss``), KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def pinner(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child process to ``cpus`` (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# ==============================================================================================
# Server processes
# ==============================================================================================


class ServerProcess:
    """A server in a child process that prints ``LISTENING <port>`` once it accepts connections;
    ``url`` is then ``http://127.0.0.1:<port>``. A context manager; ``stop()`` is idempotent."""

    def __init__(
        self,
        argv: Sequence[str],
        what: str,
        cwd: Path | str = HERE,
        cpus: set[int] | None = None,
        stdin_pipe: bool = False,
    ) -> None:
        self.cpus = cpus
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else None,
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd,
            preexec_fn=pinner(cpus),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        match = LISTENING.match(line)
        if not match:
            self.stop()
            raise RuntimeError(f"{what} did not start (got {line!r})")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def firehose_argv() -> tuple[list[str], Path]:
    """How to start fastsio's embedded servers: ``python -m fastsio.testing`` from a neutral
    directory (``-m`` puts the cwd first on sys.path; there no source tree or benchmark script
    shadows an installed module)."""
    return [sys.executable, "-m", "fastsio.testing"], Path(tempfile.gettempdir())


class FirehoseProcess(ServerProcess):
    """fastsio's firehose server: ``count`` pre-encoded ``tick`` events to every client that
    joins a namespace, then a ``done`` event (``count`` 0: handshake and pings only)."""

    def __init__(
        self,
        count: int,
        serializer: str,
        ping_interval: float | None = None,
        rate: float | None = None,
    ) -> None:
        argv, cwd = firehose_argv()
        argv += ["--port", "0", "--count", str(count), "--serializer", serializer]
        argv += ["--loop", "uvloop"]
        if rate is not None:
            argv += ["--rate", str(rate)]
        if ping_interval is not None:
            argv += ["--ping-interval", str(ping_interval)]
        super().__init__(argv, "firehose server", cwd=cwd)


class NodeServer(ServerProcess):
    """tests/peers/server.js (socket.io ``server_version`` 4.8, 3.1 or 2.5) in its own process;
    it exits when our end of its stdin closes, so it never outlives the benchmark."""

    def __init__(
        self, cpus: set[int] | None = None, server_version: int = 4, extra: Sequence[str] = ()
    ) -> None:
        if not (NODE_PEERS / "node_modules" / "socket.io").is_dir():
            raise RuntimeError(
                "tests/peers/node_modules is missing: run `npm ci --prefix tests/peers`"
            )
        argv = ["node", str(NODE_PEERS / "server.js"), "--port", "0", "--stdin-watch"]
        argv += ["--server-version", str(server_version), *extra]
        super().__init__(argv, "node server", cwd=NODE_PEERS, cpus=cpus, stdin_pipe=True)


# ==============================================================================================
# Workers
# ==============================================================================================


def split_client(name: str) -> tuple[str, str]:
    """A client's name -> (base name, loop): ``"fastsio-asyncio"`` -> ``("fastsio",
    "asyncio")``; no suffix means uvloop; ``node`` runs on Node's loop, python-socketio's sync
    client on its threads."""
    if name.endswith("-asyncio"):
        return name[: -len("-asyncio")], "asyncio"
    if name == "node" or name.startswith("node-"):
        return name, "node"
    if name == "python-socketio-sync":
        return name, "threads"
    return name, "uvloop"


#: python-socketio 4.x (Engine.IO 3), the client name under which the benchmarks run it against
#: a Socket.IO 2.x server, its venv (made on first use, outside the test venv: it pins
#: python-engineio 3.x) and what goes in it.
LEGACY_PSIO = "python-socketio-4"
LEGACY_PSIO_VENV = ROOT / ".venv-psio4"
LEGACY_PSIO_REQUIREMENTS = (
    "python-socketio[asyncio_client]>=4.6,<5",
    "python-engineio<4",
    "uvloop",
)


def legacy_psio_python() -> tuple[str | None, str]:
    """The interpreter of the python-socketio 4.x venv, creating it if needed; or None and why
    it cannot be had (no network, no wheel for this Python, ...)."""
    python = LEGACY_PSIO_VENV / "bin" / "python"
    check = [str(python), "-c", "import socketio, engineio, uvloop; print(socketio.__version__)"]
    if python.exists():
        ok = subprocess.run(check, capture_output=True, text=True)
        if ok.returncode == 0:
            return str(python), ok.stdout.strip()
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(LEGACY_PSIO_VENV)],
        [str(python), "-m", "pip", "install", "-q", *LEGACY_PSIO_REQUIREMENTS],
        check,
    ]
    print(f"creating {LEGACY_PSIO_VENV.name} (python-socketio 4.x)...", file=sys.stderr)
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"{shlex.join(cmd[:4])}: {exc}"
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            return None, f"{shlex.join(cmd[:4])} failed: {tail}"
    return str(python), proc.stdout.strip()


def worker_pythons(clients: Sequence[str]) -> tuple[dict[str, str | None], dict[str, Any]]:
    """The interpreter of each Python client's worker (None: not available, warned about), and
    what to report of the python-socketio 4.x venv when ``LEGACY_PSIO`` is among them."""
    pythons: dict[str, str | None] = dict.fromkeys(clients, sys.executable)
    legacy: dict[str, Any] = {}
    if LEGACY_PSIO in clients:
        python, legacy["version_or_error"] = legacy_psio_python()
        legacy["python"] = python
        if python is None:
            print(f"warning: {LEGACY_PSIO} skipped: {legacy['version_or_error']}", file=sys.stderr)
        pythons[LEGACY_PSIO] = python
    return pythons, legacy


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop()


def run_worker(coro: Coroutine[Any, Any, dict[str, Any]], loop_kind: str = "uvloop") -> int:
    """Run a client coroutine on a fresh loop; print its result (or its error) as one JSON line,
    with ``loop`` and ``maxrss_kb`` added. The exit status is 0 either way: the parent reads
    the line."""
    loop = new_loop(loop_kind)
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(coro)
    except Exception as exc:  # reported to the parent, which marks the run failed
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    result["loop"] = loop_kind
    result.setdefault("maxrss_kb", peak_rss_kb())
    print(json.dumps(result), flush=True)
    return 0


def parse_worker_output(returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    """A worker's result: its last JSON line; ``{"error": ...}`` with the tail of its output
    when it exited badly without reporting an error or a skip itself."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    last: dict[str, Any] | None = json.loads(lines[-1]) if lines else None
    if last is not None and ("error" in last or "skipped" in last):
        return last
    if returncode != 0 or last is None:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"error": f"worker exited {returncode}: " + " | ".join(tail)}
    return last


def worker_argv(script: str, worker: str, python: str | None = None, **options: Any) -> list[str]:
    """The command of a script's worker mode: ``python script --worker WORKER`` and one
    ``--name value`` per option (``max_rate=5`` gives ``--max-rate 5``; ``True``: the bare
    flag), in the order given."""
    argv = [python or sys.executable, str(Path(script).resolve()), "--worker", worker]
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def run_json_worker(cmd: Sequence[str], timeout: float, **popen: Any) -> dict[str, Any]:
    """Run a worker command to its end (killed after ``timeout`` s) and return its result."""
    popen.setdefault("cwd", HERE)
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **popen)
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    return parse_worker_output(proc.returncode, proc.stdout, proc.stderr)


def pin_plan(mode: str) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs) for a ``--pin`` option: ``none``, ``same`` (both on the last
    usable CPU) or ``split`` (the server on the first, the client on the second)."""
    if mode == "none":
        return None, None
    usable = sorted(os.sched_getaffinity(0))
    if mode == "same":
        return {usable[-1]}, {usable[-1]}
    if len(usable) < 2:
        raise SystemExit("--pin split needs two usable CPUs")
    return {usable[0]}, {usable[1]}


def run_watched_worker(
    cmd: Sequence[str],
    timeout: float,
    server: ServerProcess | None = None,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """``run_json_worker`` pinned to ``cpus``, its result with ``other_cpu_percent``: the CPU
    other processes used meanwhile, over the run's wall time, in % of one CPU (the busy time of
    the client's and the server's CPUs when both are pinned, of all CPUs otherwise, less the
    client's and the server's own CPU time)."""
    watched = (cpus | server.cpus) if cpus and server and server.cpus else None
    t0, busy0, kids0 = time.perf_counter(), system_busy_s(watched), children_cpu_s()
    server0 = server.cpu_seconds() if server else 0.0
    result = run_json_worker(cmd, timeout, preexec_fn=pinner(cpus))
    wall = time.perf_counter() - t0
    ours = children_cpu_s() - kids0 + (server.cpu_seconds() - server0 if server else 0.0)
    result["other_cpu_percent"] = max(0.0, system_busy_s(watched) - busy0 - ours) / wall * 100
    return result


# ==============================================================================================
# Reports
# ==============================================================================================


def node_version() -> dict[str, str | None] | None:
    """Node and its socket.io packages (from tests/peers), or None without node."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    info: dict[str, str | None] = {"node": version}
    for pkg in (
        "socket.io",
        "socket.io-client",
        "socket.io-msgpack-parser",
        "socket.io-v2",
        "socket.io-client-v2",
    ):
        try:
            meta = json.loads((NODE_PEERS / "node_modules" / pkg / "package.json").read_text())
            info[pkg] = meta.get("version")
        except (OSError, ValueError):
            info[pkg] = None
    return info


def machine_info() -> dict[str, Any]:
    """The machine, its load now, and the versions of Python, Node and the packages."""
    from importlib import metadata

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "node": node_version(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": versions,
    }


def installed_fastsio_is_stale() -> str | None:
    """Say why the installed fastsio differs from the source tree, or None if it matches."""
    try:
        from importlib.util import find_spec

        spec = find_spec("fastsio")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return "fastsio is not installed"
    installed = Path(spec.origin).parent
    source = ROOT / "fastsio"
    if installed.resolve() == source.resolve():
        return None
    for src in sorted(source.rglob("*.py")):
        other = installed / src.relative_to(source)
        if not other.exists():
            return f"{src.relative_to(source)} is missing from the installed copy ({installed})"
        if hashlib.sha256(src.read_bytes()).digest() != hashlib.sha256(other.read_bytes()).digest():
            return f"installed {src.relative_to(source)} differs from the source tree ({installed})"
    return None


def warn_if_stale(needed: bool = True) -> str | None:
    """``installed_fastsio_is_stale`` printed as a warning on stderr (when ``needed``)."""
    stale = installed_fastsio_is_stale() if needed else None
    if stale:
        print(
            f"warning: {stale}; the benchmark runs the installed fastsio "
            "(reinstall with `pip install .`)",
            file=sys.stderr,
        )
    return stale


def results_path(json_out: Path | None, quick: bool, name: str) -> Path:
    """``--json-out`` if given, else ``results/<name>`` (``results/quick/<name>`` for a smoke
    run, so that it never replaces the real figures)."""
    return json_out or (RESULTS_DIR / "quick" if quick else RESULTS_DIR) / name


def command_line(script: str) -> str:
    """This run as typed from the checkout, e.g. ``.venv/bin/python benchmarks/rtt.py --quick``."""
    try:
        exe = str(Path(os.path.abspath(sys.executable)).relative_to(ROOT))
    except ValueError:
        exe = sys.executable
    return shlex.join([exe, f"benchmarks/{script}", *sys.argv[1:]])


def add_common_options(parser: argparse.ArgumentParser, name: str, quick_help: str) -> None:
    """``--quick`` and ``--json-out``, as ``run.py`` passes them to every script: ``name`` is
    the results file's name (see ``results_path``)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{quick_help}; results go to benchmarks/results/quick/ unless --json-out is given",
    )
    parser.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help=f"default benchmarks/results/{name} (--quick: benchmarks/results/quick/{name})",
    )


#: An option whose default depends on ``--quick``: flag, type, default, default with
#: ``--quick``, help (which gains both defaults). See ``add_sized_options``.
SizedOption = tuple[str, Callable[[str], Any], float, float, str]


def add_sized_options(parser: argparse.ArgumentParser, options: Sequence[SizedOption]) -> None:
    """The options that size a run, whose defaults depend on ``--quick``; after parsing,
    ``fill_sized_options`` with the same table puts in the defaults of those not given."""

    def shown(value: float) -> str:
        return str(int(value)) if value == int(value) else str(value)

    for flag, kind, normal, quick, text in options:
        parser.add_argument(
            flag,
            type=kind,
            default=None,
            help=f"{text} (default {shown(normal)}; --quick: {shown(quick)})",
        )


def fill_sized_options(args: argparse.Namespace, options: Sequence[SizedOption]) -> None:
    """The default (or ``--quick`` one) of each of ``options`` that was not given."""
    for flag, _, normal, quick, _ in options:
        key = flag.lstrip("-").replace("-", "_")
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else normal)


def callgrind_dumps(script_argv: Sequence[str]) -> tuple[str, list[int]]:
    """Run ``python *script_argv`` under callgrind with a dump before each ``os.getppid()``
    call (the marks a script's child sets), from outside the source tree (a source fastsio/
    would shadow the compiled one): the child's stdout, and the instructions each dump counted,
    in order (dump k holds what ran before the k-th mark)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "cg.out"
        cmd = [
            *("valgrind", "--tool=callgrind", "--dump-before=os_getppid"),
            f"--callgrind-out-file={out_file}",
            sys.executable,
            *script_argv,
        ]
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        if run.returncode != 0:
            raise SystemExit(f"callgrind run failed:\n{run.stderr[-3000:]}")
        dumps = sorted(
            (int(p.name.rsplit(".", 1)[1]), p)
            for p in Path(tmp).iterdir()
            if re.fullmatch(r"cg\.out\.\d+", p.name)
        )
        return run.stdout, [_callgrind_total(p) for _, p in dumps]


def _callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def comma_list(text: str) -> list[str]:
    """A comma-separated option's values, blanks dropped (an argparse ``type``)."""
    return [v.strip() for v in text.split(",") if v.strip()]


def comma_ints(text: str) -> list[int]:
    """``comma_list`` of whole numbers (an argparse ``type``)."""
    return [int(v) for v in comma_list(text)]


def add_client_options(
    parser: argparse.ArgumentParser, clients: str, timeout: float, server_versions: str
) -> None:
    """``--clients`` (comma-separated, default ``clients``), ``--timeout`` (seconds per client
    run) and ``--server-version`` 4 (default) or 2, as ``server_versions`` explains;
    ``chosen_clients`` reads them back."""
    parser.add_argument("--clients", default=clients, help=f"comma-separated (default {clients})")
    parser.add_argument("--timeout", type=float, default=timeout, help="per client run, seconds")
    parser.add_argument(
        "--server-version",
        type=int,
        choices=(2, 4),
        default=4,
        help=server_versions,
    )


def chosen_clients(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    defaults: tuple[str, str],
    known: tuple[Sequence[str], Sequence[str]],
    no_asyncio: Sequence[str],
) -> list[str]:
    """``--clients`` (see ``add_client_options``) as a list, for ``--server-version`` 4 or 2:
    the first or second of ``defaults`` (the default for that version) and of ``known`` (the
    clients that version may run). A client may end in ``-asyncio`` (the asyncio loop instead
    of uvloop) unless it is one of ``no_asyncio``; anything else is a usage error."""
    v2 = args.server_version == 2
    text = defaults[1] if v2 and args.clients == defaults[0] else args.clients
    allowed = known[1] if v2 else known[0]
    clients = comma_list(text)
    unknown = [
        c
        for c in clients
        if split_client(c)[0] not in allowed
        or (c.endswith("-asyncio") and split_client(c)[0] in no_asyncio)
    ]
    if unknown:
        parser.error(
            f"unknown client(s) {unknown}; known: {', '.join(allowed)} "
            f"(each except {', '.join(no_asyncio)} optionally suffixed with -asyncio)"
        )
    return clients


def add_worker_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    """The hidden options by which a script runs one client in a subprocess of its own
    (``worker_argv``): ``--worker CLIENT``, ``--url`` of the server, ``--timeout`` in seconds."""
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=timeout, help=argparse.SUPPRESS)


def keep_run(
    runs: dict[str, list[dict[str, Any]]],
    all_runs: list[dict[str, Any]],
    client: str,
    result: dict[str, Any],
    **tags: Any,
) -> None:
    """One run of ``client``: its ``result`` under the client (for the medians) and, after the
    client's name and ``tags`` (e.g. ``round``), in the list of every run of the report."""
    runs[client].append(result)
    all_runs.append({"client": client, **tags, **result})


def write_results(
    args: argparse.Namespace,
    file_name: str,
    benchmark: str,
    started: float,
    config: dict[str, Any],
    machine: dict[str, Any] | None = None,
    **parts: Any,
) -> None:
    """Write a results JSON as ``run.py`` reads it, to ``--json-out`` or ``results_path``
    (``args`` from ``add_common_options``): the common keys (``config`` gains ``quick`` and
    the load average), then ``parts`` (e.g. ``results=rows``, ``targets=...``, ``runs=...``)
    in the order given. ``machine`` defaults to ``machine_info()`` now."""
    out = results_path(args.json_out, args.quick, file_name)
    report: dict[str, Any] = {
        "benchmark": benchmark,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": command_line(Path(sys.argv[0]).name),
        "config": {**config, "quick": args.quick, "loadavg": os.getloadavg()},
        "machine": machine if machine is not None else machine_info(),
        **parts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


def finish(
    args: argparse.Namespace,
    benchmark: str,
    started: float,
    config: dict[str, Any],
    results: list[dict[str, Any]],
    targets: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
    **parts: Any,
) -> int:
    """The end of a script that checks its results against targets: print the targets, write
    ``<benchmark>.json`` (``results``, ``targets``, then ``parts``, then every run) and give
    the exit status."""
    print_targets(targets)
    write_results(
        args,
        f"{benchmark}.json",
        benchmark,
        started,
        config,
        results=results,
        targets=targets,
        **parts,
        runs=runs,
    )
    return 0


#: A column of ``print_rows``: header, the row's key (or a function of the row), format spec
#: (``""``: the value as it is, e.g. a string the function already formatted).
Column = tuple[str, "str | Callable[[dict[str, Any]], Any]", str]


# The columns several scripts print, labelled and formatted alike everywhere.
CLIENT: Column = ("client", "client", "")
EVENTS_PER_S: Column = ("events/s", "events_per_s", ",.0f")
CPU_US_PER_EVENT: Column = ("CPU us/ev", "cpu_us_per_event", ".2f")
CPU_PERCENT: Column = ("CPU %", "cpu_percent", ".0f")
PEAK_RSS_MB: Column = ("RSS MB", "peak_rss_mb", ".1f")
SERVER_CPU_PERCENT: Column = ("srv CPU %", "server_cpu_percent", ".0f")
DISCONNECT_S: Column = ("disc s", "disconnect_s", ".2f")


def print_rows(
    title: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    left: int = 1,
    label: Callable[[dict[str, Any]], str] = lambda r: str(r["client"]),
    notes: Callable[[dict[str, Any]], list[str]] = lambda r: [],
) -> None:
    """``title``, then ``rows`` as aligned ``columns`` (see ``print_columns``), then for each
    row its ``notes(row)`` and its ``errors`` (``<label>: FAILED - <error>``)."""
    table = [tuple(header for header, _, _ in columns)]
    for r in rows:
        cells = []
        for _, get, spec in columns:
            value = r.get(get) if isinstance(get, str) else get(r)
            cells.append(str(value) if not spec else fmt(value, spec))
        table.append(tuple(cells))
    print(title)
    print_columns(table, left)
    for r in rows:
        for note in notes(r):
            print(note)
        for err in r.get("errors") or ():
            print(f"{label(r)}: FAILED - {err}")


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, limit: v >= limit,
    ">": lambda v, limit: v > limit,
    "<=": lambda v, limit: v <= limit,
    "<": lambda v, limit: v < limit,
}


def target(value: float, op: str, limit: float, **extra: Any) -> dict[str, Any]:
    """A target as the reports keep it: ``value``, ``op``, ``limit``, whether it is ``met``,
    then ``extra`` (``unit``, ``note``, figures behind it)."""
    return {"value": value, "op": op, "limit": limit, "met": _OPS[op](value, limit), **extra}


def print_targets(targets: dict[str, dict[str, Any]], prefix: str = "target ") -> None:
    """One line per target: ``value`` against ``op`` ``limit`` (in ``unit``, default ``x``),
    met or not, and its ``note`` when it has one."""
    for name, t in targets.items():
        unit = t.get("unit", "x")
        note = f" ({t['note']})" if t.get("note") else ""
        print(
            f"{prefix}{name}: {t['value']:.2f}{unit} ({t['op']} {t['limit']}{unit}): "
            f"{'met' if t['met'] else 'NOT met'}{note}"
        )


# ==============================================================================================
# Columns
# ==============================================================================================


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def median_row(runs: Sequence[dict[str, Any]], keys: Sequence[str], **tags: Any) -> dict[str, Any]:
    """A results row of one client's ``runs``: ``tags``, how many runs succeeded (``runs_ok``:
    no error, the first of ``keys`` set), then the median of each of ``keys`` over those; the
    last run's error when none did."""
    ok = [r for r in runs if "error" not in r and r.get(keys[0])]
    row: dict[str, Any] = {**tags, "runs_ok": len(ok)}
    if not ok:
        row["error"] = runs[-1].get("error") if runs else "not run"
    for key in keys if ok else ():
        row[key] = statistics.median(r[key] for r in ok)
    return row


def find_row(
    rows: Sequence[dict[str, Any]], client: str, metric: str, **match: Any
) -> dict[str, Any] | None:
    """The first row of ``client`` that has ``metric`` and the values of ``match`` (None)."""
    for r in rows:
        if r["client"] == client and metric in r and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_columns(table: Sequence[Sequence[str]], left: int = 1) -> None:
    """Print rows (the first is the header) in aligned columns, the first ``left`` of them
    left-aligned, with a rule under the header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print(
            "  ".join(
                c.ljust(w) if j < left else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


# ==============================================================================================
# A scripted Engine.IO v4 WebSocket server (picows), for benchmarks that shape their own stream
# ==============================================================================================


def ws_frame(payload: bytes, binary: bool = False) -> bytes:
    """One complete, unmasked (server-to-client) WebSocket frame with FIN set."""
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


def serve_forever(start: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """A server process's main: on uvloop, ``await start()`` (which starts listening on a free
    loopback port and returns it), print ``LISTENING <port>``, then serve until interrupted."""
    import uvloop

    async def serve() -> None:
        port = await start()
        print(f"LISTENING {port}", flush=True)
        await asyncio.get_running_loop().create_future()

    try:
        uvloop.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


#: ``stream(transport, nsp, drained)``: what the server does once a client joined ``nsp``;
#: ``await drained()`` waits while the transport's write buffer is over its high-water mark.
StreamScript = Callable[
    [Any, str, Callable[[], Coroutine[Any, Any, None]]], Coroutine[Any, Any, None]
]


def serve_stream(
    stream: StreamScript, msgpack_mode: bool = False, max_frame_size: int = 4 << 20
) -> int:
    """Serve Engine.IO v4 over WebSocket on a free loopback port (uvloop): the open packet, a
    CONNECT reply to the first namespace a client joins, then ``stream`` for it. Prints
    ``LISTENING <port>`` and serves until killed. It decodes nothing but CONNECT packets and
    never pings (``pingInterval`` 60 s), so it costs next to nothing beyond the stream itself;
    it shares no code with fastsio."""
    import msgpack
    import orjson
    from picows import WSListener, WSMsgType, ws_create_server

    opening = b"0" + orjson.dumps(
        {
            "sid": "bench",
            "upgrades": [],
            "pingInterval": 60000,
            "pingTimeout": 60000,
            "maxPayload": max_frame_size,
        }
    )

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport
            self.task: asyncio.Task[None] | None = None
            self.writable = asyncio.Event()
            self.writable.set()
            transport.underlying_transport.set_write_buffer_limits(high=4 << 20, low=1 << 20)
            transport.send(WSMsgType.TEXT, opening)

        def pause_writing(self) -> None:
            self.writable.clear()

        def resume_writing(self) -> None:
            self.writable.set()

        async def drained(self) -> None:
            await self.writable.wait()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
                return
            if self.task is not None or frame.payload_size > 1000:
                return
            data = frame.get_payload_as_bytes()
            nsp = None
            if frame.msg_type == WSMsgType.TEXT and data[:2] == b"40":
                rest = data[2:]
                if rest[:1] == b"/":
                    nsp = (rest.split(b",", 1)[0]).decode()
                else:
                    nsp = "/"
            elif frame.msg_type == WSMsgType.BINARY and msgpack_mode:
                pkt = msgpack.unpackb(data)
                if isinstance(pkt, dict) and pkt.get("type") == 0:
                    nsp = pkt.get("nsp") or "/"
            if nsp is None:
                return
            if msgpack_mode:
                reply = {"type": 0, "nsp": nsp, "data": {"sid": "x"}}
                transport.send(WSMsgType.BINARY, msgpack.packb(reply))
            else:
                prefix = b"" if nsp == "/" else nsp.encode() + b","
                transport.send(WSMsgType.TEXT, b"40" + prefix + b'{"sid":"x"}')
            self.task = asyncio.get_running_loop().create_task(stream(transport, nsp, self.drained))

        def on_ws_disconnected(self, transport: Any) -> None:
            if self.task is not None:
                self.task.cancel()
            self.writable.set()

    async def start() -> int:
        server = await ws_create_server(
            lambda request: Listener(), "127.0.0.1", 0, max_frame_size=max_frame_size
        )
        return int(server.sockets[0].getsockname()[1])

    return serve_forever(start)
