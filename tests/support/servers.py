"""Start and control the Socket.IO peer servers of tests/peers as subprocesses.

``start_node_server(**opts)`` / ``start_py_server(**opts)`` return a :class:`ServerHandle`; the
``node_server`` / ``py_server`` fixtures in conftest.py wrap them and stop everything at teardown.
The behaviour both peers implement is documented in tests/peers/README.md.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

PEERS_DIR = Path(__file__).resolve().parent.parent / "peers"
NODE_SERVER = PEERS_DIR / "server.js"
PY_SERVER = PEERS_DIR / "pyserver.py"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
HOST = "127.0.0.1"

_LISTENING = re.compile(rb"^LISTENING (\d+)$", re.M)

Kind = Literal["node", "python"]


class PeerSetupError(RuntimeError):
    """The peer cannot run at all here (node or node_modules missing)."""


class ServerStartError(RuntimeError):
    """The peer process did not come up (crashed, bad option, timed out)."""


@dataclass(frozen=True)
class ServerOptions:
    """Peer options; ``None`` means the peer's default (ping 25000/20000 ms, both transports,
    1e6-byte max payload)."""

    parser: Literal["json", "msgpack"] = "json"
    recovery: bool = False
    ping_interval: int | None = None  # ms
    ping_timeout: int | None = None  # ms
    transports: tuple[str, ...] | None = None
    max_payload: int | None = None  # bytes (maxHttpBufferSize)
    adapter: Literal["memory", "base", "cluster"] = "memory"  # Node only (tests/peers/README.md)
    server_version: Literal[2, 3, 4] = 4  # Node only: socket.io 2.5, 3.1 or 4.8
    allow_eio3: bool = False  # Node only: allowEIO3 (3.1 and 4.8)
    root_auth: bool = False  # Node only: "/" requires the token as /private does
    firehose: int | None = None  # Node only: N `tick`s, then `done`, to every client of "/"

    def argv(self) -> list[str]:
        args = ["--parser", self.parser]
        if self.recovery:
            args.append("--recovery")
        if self.ping_interval is not None:
            args += ["--ping-interval", str(int(self.ping_interval))]
        if self.ping_timeout is not None:
            args += ["--ping-timeout", str(int(self.ping_timeout))]
        if self.transports is not None:
            args += ["--transports", ",".join(self.transports)]
        if self.max_payload is not None:
            args += ["--max-payload", str(int(self.max_payload))]
        if self.adapter != "memory":
            args += ["--adapter", self.adapter]
        if self.server_version != 4:
            args += ["--server-version", str(self.server_version)]
        if self.allow_eio3:
            args.append("--allow-eio3")
        if self.root_auth:
            args.append("--root-auth")
        if self.firehose is not None:
            args += ["--firehose", str(self.firehose)]
        return args


def make_options(
    *,
    parser: Literal["json", "msgpack"] = "json",
    recovery: bool = False,
    ping_interval: int | None = None,
    ping_timeout: int | None = None,
    transports: Sequence[str] | str | None = None,
    max_payload: int | None = None,
    adapter: Literal["memory", "base", "cluster"] = "memory",
    server_version: Literal[2, 3, 4] = 4,
    allow_eio3: bool = False,
    root_auth: bool = False,
    firehose: int | None = None,
) -> ServerOptions:
    if isinstance(transports, str):
        transports = [t.strip() for t in transports.split(",") if t.strip()]
    return ServerOptions(
        parser=parser,
        recovery=recovery,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        transports=tuple(transports) if transports is not None else None,
        max_payload=max_payload,
        adapter=adapter,
        server_version=server_version,
        allow_eio3=allow_eio3,
        root_auth=root_auth,
        firehose=firehose,
    )


def check_node_peer() -> str:
    """Return the node executable, or raise PeerSetupError saying how to fix the checkout."""
    node = shutil.which("node")
    if node is None:
        raise PeerSetupError("`node` is not on PATH; the Node peer server needs Node.js >= 18")
    missing = [
        pkg
        for pkg in ("socket.io", "socket.io-msgpack-parser", "socket.io-v2", "socket.io-v3")
        if not (PEERS_DIR / "node_modules" / pkg / "package.json").is_file()
    ]
    if missing:
        raise PeerSetupError(
            f"tests/peers/node_modules is missing {', '.join(missing)}: "
            "run `npm ci --prefix tests/peers` from the repository root"
        )
    return node


@dataclass
class ServerHandle:
    """One peer server process (and its successors after :meth:`restart`, on the same port).

    The blocking methods wait for the process (up to a few seconds); from a coroutine use the
    ``a``-prefixed variants so that the event loop, and the client under test, keep running.
    """

    kind: Kind
    options: ServerOptions
    base_argv: list[str]
    workdir: Path
    port: int = 0
    host: str = HOST
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0
    _stderr_paths: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        """Everything the server wrote on stderr, across restarts."""
        parts = []
        for p in self._stderr_paths:
            try:
                parts.append(p.read_text(errors="replace"))
            except OSError:
                pass
        return "".join(parts)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> ServerHandle:
        """Start the process; on a restart the port is the one of the first start."""
        if self.running:
            raise RuntimeError(f"{self.kind} server already running (pid {self.pid})")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._spawn_once(deadline, timeout)
                return self
            except _PortBusy:
                # The previous generation's listening socket can outlive its process by a few
                # ms; only a restart on a fixed port can hit this.
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        f"{self.kind} server: port {self.port} still in use after {timeout:.0f}s"
                        f"\n--- stderr ---\n{self.stderr()}"
                    ) from None
                time.sleep(0.05)

    def _spawn_once(self, deadline: float, timeout: float) -> None:
        self.generation += 1
        out_path = self.workdir / f"{self.kind}-{id(self):x}-{self.generation}.out"
        err_path = self.workdir / f"{self.kind}-{id(self):x}-{self.generation}.err"
        self._stderr_paths.append(err_path)
        argv = [*self.base_argv, "--port", str(self.port), "--stdin-watch", *self.options.argv()]
        # Files rather than pipes: nothing to drain, and stderr stays readable after a crash.
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                cwd=PEERS_DIR,
                # The server exits when this pipe closes, so it cannot outlive a killed pytest.
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                # Keep terminal signals (Ctrl-C) for pytest; teardown stops the server itself.
                start_new_session=True,
            )
        while True:
            data = out_path.read_bytes()
            m = _LISTENING.search(data)
            if m:
                self.port = int(m.group(1))
                return
            code = self.proc.poll()
            if code is not None:
                self._close_stdin()
                errtext = err_path.read_text(errors="replace")
                if self.port and ("EADDRINUSE" in errtext or "Address already in use" in errtext):
                    raise _PortBusy()
                raise ServerStartError(
                    f"{self.kind} server exited with code {code} before listening\n"
                    f"argv: {argv}\n--- stderr ---\n{errtext}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(
                    f"{self.kind} server did not print LISTENING within {timeout:.0f}s\n"
                    f"argv: {argv}\n--- stderr ---\n{err_path.read_text(errors='replace')}"
                )
            time.sleep(0.01)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. A no-op if not running."""
        self._signal(signal.SIGTERM)
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL (the server gets no chance to close connections) and reap."""
        self._signal(signal.SIGKILL)
        self._reap(STOP_TIMEOUT)

    def restart(self, timeout: float = START_TIMEOUT) -> ServerHandle:
        """Stop (gracefully) if running, then start again on the same port with the same options."""
        self.stop()
        return self.start(timeout)

    async def astop(self, timeout: float = STOP_TIMEOUT) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self, timeout: float = START_TIMEOUT) -> ServerHandle:
        return await asyncio.to_thread(self.restart, timeout)

    async def astart(self, timeout: float = START_TIMEOUT) -> ServerHandle:
        return await asyncio.to_thread(self.start, timeout)

    # -- internals ------------------------------------------------------------------------------

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _reap(self, timeout: float) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_stdin()

    def _close_stdin(self) -> None:
        stdin: IO[bytes] | None = self.proc.stdin if self.proc is not None else None
        if stdin is not None:
            try:
                stdin.close()
            except OSError:
                pass


class _PortBusy(Exception):
    pass


class ServerFactory:
    """Starts peers of one kind and remembers them so that :meth:`close` stops them all."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.handles: list[ServerHandle] = []
        self._workdir: Path | None = None

    def _base_argv(self) -> list[str]:
        if self.kind == "node":
            return [check_node_peer(), str(NODE_SERVER)]
        # The same interpreter as the tests, so the peer sees the venv's python-socketio.
        return [sys.executable, str(PY_SERVER)]

    def __call__(
        self, *, port: int = 0, timeout: float = START_TIMEOUT, **opts: Any
    ) -> ServerHandle:
        """Start a peer with ``make_options(**opts)`` on ``port`` (0: a free one)."""
        options = make_options(**opts)
        if self.kind == "python" and options.recovery:
            raise ValueError("python-socketio has no connection state recovery (recovery=True)")
        if self.kind == "python" and (
            options.adapter != "memory"
            or options.server_version != 4
            or options.allow_eio3
            or options.root_auth
            or options.firehose is not None
        ):
            raise ValueError(
                "adapter=, server_version=, allow_eio3=, root_auth=, firehose= are Node options"
            )
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"fastsio-{self.kind}-peer-"))
        handle = ServerHandle(
            kind=self.kind,
            options=options,
            base_argv=self._base_argv(),
            workdir=self._workdir,
            port=port,
        )
        self.handles.append(handle)
        return handle.start(timeout)

    def close(self) -> None:
        # Signal everything first, then reap: shutdowns overlap instead of adding up.
        for h in self.handles:
            h._signal(signal.SIGTERM)
        for h in self.handles:
            h._reap(STOP_TIMEOUT)
        self.handles.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def start_node_server(**opts: object) -> ServerHandle:
    """Start one Node peer outside a fixture (benchmarks, manual runs); the caller stops it."""
    return ServerFactory("node")(**opts)  # type: ignore[arg-type]


def start_py_server(**opts: object) -> ServerHandle:
    """Start one python-socketio peer outside a fixture; the caller stops it."""
    return ServerFactory("python")(**opts)  # type: ignore[arg-type]


__all__ = [
    "PEERS_DIR",
    "PeerSetupError",
    "ServerFactory",
    "ServerHandle",
    "ServerOptions",
    "ServerStartError",
    "check_node_peer",
    "start_node_server",
    "start_py_server",
]
