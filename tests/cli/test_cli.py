"""The ``fastsio`` command, driven as a user would: a subprocess against a real server.

The command runs as ``python -m fastsio`` from a temporary directory (so the installed package,
with its compiled core, is the one imported). The servers are fastsio.testing.TestServer in the
test's event loop, or the embedded firehose server that ``fastsio bench`` starts by itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.aio import until

from fastsio.testing import ConnectionRefused, TestServer

pytestmark = pytest.mark.timeout(120)

# The loop runs the in-process server while the command runs in its own process: which loop it
# is does not matter here (test_testing_server.py covers both).
on_one_loop = pytest.mark.asyncio(loop_factories=["uvloop"])

COMMAND_TIMEOUT = 60.0


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def assert_one_line_error(self) -> None:
        assert "Traceback" not in self.err, self.err
        assert len(self.err.strip().splitlines()) == 1, self.err
        assert self.out == "", self.out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # nothing may put the source checkout on sys.path
    env.pop("FASTSIO_BENCH_JSON", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fastsio_sync(cwd: Path, *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "fastsio", *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


async def fastsio(cwd: Path, *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run the command without blocking the loop that serves the in-process server."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastsio",
        *args,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def jsonl(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.lines]


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """A TestServer with a few scripted events (see the handlers below)."""
    srv = TestServer()

    @srv.on("connect")
    def connect(sid: str, auth: Any) -> None:
        if auth and auth.get("token") == "bad":
            raise ConnectionRefused("unauthorized", {"reason": "bad token"})
        if auth and auth.get("feed"):
            # Emitted from the connect handler: delivered right after the CONNECT reply.
            for i in range(5):
                srv.emit("tick", i, to=sid)
            srv.emit("bin", (bytes(range(20)), {"k": b"v"}), to=sid)
            srv.emit("multi", (1, "two", None), to=sid)

    srv.on("add", lambda sid, a, b: a + b)
    srv.on("echo", lambda sid, *args: args)
    srv.on("blob", lambda sid, n: bytes(range(n)))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


# -- help and arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, options",
    [
        ("", ["listen", "emit", "call", "bench", "exit codes", "--version"]),
        (
            "listen",
            [
                "url",
                "--namespace",
                "--event",
                "--format",
                "--count",
                "--duration",
                "--auth",
                "--header",
                "--transport",
                "--msgpack",
                "--no-reconnect",
                "exit codes",
                "jsonl",
                "bytes",
            ],
        ),
        ("emit", ["url", "event", "ARG", "--ack", "--timeout", "--auth", "exit codes"]),
        ("call", ["url", "event", "ARG", "--timeout", "--namespace", "exit codes"]),
        (
            "bench",
            ["url", "--clients", "--duration", "--msgpack", "--compare", "--batch", "exit codes"],
        ),
    ],
)
def test_help_for_every_command(tmp_path: Path, command: str, options: list[str]) -> None:
    args = [command, "--help"] if command else ["--help"]
    result = fastsio_sync(tmp_path, *args)
    assert result.rc == 0 and result.err == ""
    assert result.out.startswith(f"usage: fastsio {command}".rstrip())
    for option in options:
        assert option in result.out, option


def test_version(tmp_path: Path) -> None:
    result = fastsio_sync(tmp_path, "--version")
    assert result.rc == 0 and result.out.startswith("fastsio ")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-command"),
        pytest.param(["listen"], id="missing-url"),
        pytest.param(["listen", "http://127.0.0.1:9", "--auth", "{bad"], id="auth-not-json"),
        pytest.param(["listen", "http://127.0.0.1:9", "--auth", "[1, 2]"], id="auth-not-object"),
        pytest.param(["listen", "http://127.0.0.1:9", "--header", "no-colon"], id="bad-header"),
        pytest.param(["listen", "http://127.0.0.1:9", "--header", ":v"], id="empty-header-name"),
        pytest.param(["listen", "localhost:3000"], id="url-without-scheme"),
        pytest.param(["listen", "ftp://127.0.0.1:9"], id="bad-scheme"),
        pytest.param(["listen", "http://127.0.0.1:9", "--count", "0"], id="count-zero"),
        pytest.param(["listen", "http://127.0.0.1:9", "--duration", "soon"], id="bad-duration"),
        pytest.param(["listen", "http://127.0.0.1:9", "--transport", "carrier"], id="transport"),
        pytest.param(["listen", "http://127.0.0.1:9", "--bogus"], id="unknown-option"),
        pytest.param(["emit", "http://127.0.0.1:9", "ev", "{not json"], id="bad-arg-json"),
        pytest.param(["call", "http://127.0.0.1:9", "ev", "--timeout", "-1"], id="bad-timeout"),
        pytest.param(["bench", "--clients", "0"], id="bench-clients"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    # Port 9 (discard) is never contacted: arguments are checked before connecting.
    result = fastsio_sync(tmp_path, *args)
    assert result.rc == 2, result
    result.assert_one_line_error()
    assert "error:" in result.err


@pytest.mark.parametrize("command", ["listen", "emit", "call", "bench"])
def test_connect_failure_exit_1_with_one_line(
    tmp_path: Path, unused_tcp_port: int, command: str
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    args = [command, url] + (["ev"] if command in ("emit", "call") else [])
    if command == "bench":
        args += ["--duration", "1"]
    result = fastsio_sync(tmp_path, *args)
    assert result.rc == 1, result
    result.assert_one_line_error()
    assert result.err.startswith(f"fastsio: cannot connect to {url}: ")


# -- listen -------------------------------------------------------------------------------------


@on_one_loop
async def test_listen_prints_json_lines_when_piped(tmp_path: Path, server: TestServer) -> None:
    result = await fastsio(tmp_path, "listen", server.url, "--auth", '{"feed": 1}', "--count", "7")
    assert result.rc == 0, result
    events = jsonl(result)
    assert [(e["namespace"], e["event"]) for e in events] == [("/", "tick")] * 5 + [
        ("/", "bin"),
        ("/", "multi"),
    ]
    assert [e["args"] for e in events[:5]] == [[i] for i in range(5)]
    assert all(isinstance(e["t"], float) for e in events)
    # Binary: base64 and its size, wherever it is in the arguments.
    blob, nested = events[5]["args"]
    assert blob["size"] == 20 and base64.b64decode(blob["$binary"]) == bytes(range(20))
    assert nested == {"k": {"$binary": base64.b64encode(b"v").decode(), "size": 1}}
    assert events[6]["args"] == [1, "two", None]
    # Status and totals on stderr, never on stdout.
    assert "connected to /" in result.err
    assert "7 events in" in result.err
    assert "\x1b[" not in result.out + result.err  # no colours or live rate when piped


@on_one_loop
async def test_listen_pretty_format_shows_binary_as_size_and_hex(
    tmp_path: Path, server: TestServer
) -> None:
    result = await fastsio(
        tmp_path,
        "listen",
        server.url,
        "--auth",
        '{"feed": 1}',
        "--format",
        "pretty",
        "--event",
        "bin",
        "--event",
        "multi",
        "--count",
        "2",
    )
    assert result.rc == 0, result
    bin_line, multi_line = result.lines
    stamp, name, rest = bin_line.split(" ", 2)
    assert len(stamp) == 8 and stamp.count(":") == 2
    assert name == "bin"
    assert rest == (
        '<20 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ...> {"k": <1 bytes: 76>}'
    )
    assert multi_line.split(" ", 1)[1] == 'multi 1 "two" null'


@on_one_loop
async def test_listen_namespaces_transport_msgpack_auth_and_headers(tmp_path: Path) -> None:
    srv = TestServer(serializer="msgpack")

    @srv.on("connect", namespace="/chat")
    def connect(sid: str, auth: Any) -> None:
        hs = srv.handshake(sid)
        srv.emit("hello", (auth, hs.headers.get("x-test"), srv.transport(sid)), to=sid)
        srv.emit("bytes", b"\x00\xff", to=sid)

    async with srv:
        result = await fastsio(
            tmp_path,
            "listen",
            srv.url,
            "--namespace",
            "/chat",
            "--msgpack",
            "--transport",
            "polling",
            "--auth",
            '{"token": "t"}',
            "--header",
            "X-Test: yes",
            "--count",
            "2",
        )
    assert result.rc == 0, result
    events = jsonl(result)
    assert [(e["namespace"], e["event"]) for e in events] == [
        ("/chat", "hello"),
        ("/chat", "bytes"),
    ]
    assert events[0]["args"] == [{"token": "t"}, "yes", "polling"]
    assert events[1]["args"] == [{"$binary": base64.b64encode(b"\x00\xff").decode(), "size": 2}]
    assert "connected to /chat (polling)" in result.err


@on_one_loop
async def test_listen_reconnects_and_says_so(tmp_path: Path) -> None:
    srv = TestServer()
    connections: list[str] = []

    @srv.on("connect")
    def connect(sid: str, auth: Any) -> None:
        connections.append(sid)
        srv.emit("n", len(connections), to=sid)
        if len(connections) == 1:
            # Cut the link once the first event is out: the command must reconnect.
            asyncio.get_running_loop().call_later(0.2, srv.drop, sid)

    async with srv:
        result = await fastsio(tmp_path, "listen", srv.url, "--count", "2")
    assert result.rc == 0, result
    assert [e["args"] for e in jsonl(result)] == [[1], [2]]
    assert "disconnected from /: transport close" in result.err
    assert "reconnecting (attempt 1)" in result.err
    assert "reconnected after 1 attempt(s)" in result.err
    assert len(connections) == 2


@on_one_loop
async def test_listen_lost_for_good_exits_1(tmp_path: Path) -> None:
    srv = TestServer()

    @srv.on("connect")
    def connect(sid: str, auth: Any) -> None:
        srv.emit("bye", to=sid)
        asyncio.get_running_loop().call_later(0.2, srv.disconnect, sid)

    async with srv:
        result = await fastsio(tmp_path, "listen", srv.url)
        assert result.rc == 1, result
        assert [e["event"] for e in jsonl(result)] == ["bye"]
        assert "disconnected from /: io server disconnect" in result.err

        no_reconnect = await fastsio(tmp_path, "listen", srv.url, "--no-reconnect", "-q")
        assert no_reconnect.rc == 1 and no_reconnect.err == ""


@on_one_loop
async def test_listen_duration(tmp_path: Path, server: TestServer) -> None:
    # --duration alone ends normally; with --count not reached it is a timeout.
    done = await fastsio(tmp_path, "listen", server.url, "--duration", "0.5")
    assert done.rc == 0 and done.out == "" and "0 events in" in done.err
    timeout = await fastsio(
        tmp_path, "listen", server.url, "--auth", '{"feed": 1}', "--count", "100", "--duration", "1"
    )
    assert timeout.rc == 3, timeout
    assert len(timeout.lines) == 7


@on_one_loop
async def test_listen_refused_namespace_gives_the_reason(
    tmp_path: Path, server: TestServer
) -> None:
    result = await fastsio(tmp_path, "listen", server.url, "--auth", '{"token": "bad"}')
    assert result.rc == 1
    result.assert_one_line_error()
    assert result.err.strip() == (
        f"fastsio: cannot connect to {server.url}: namespace / refused: unauthorized "
        '{"reason": "bad token"}'
    )


# -- emit and call --------------------------------------------------------------------------------


@on_one_loop
async def test_call_and_emit_ack_print_the_ack(tmp_path: Path, server: TestServer) -> None:
    add = await fastsio(tmp_path, "call", server.url, "add", "1", "2")
    assert (add.rc, add.out, add.err) == (0, "3\n", "")
    echo = await fastsio(
        tmp_path, "emit", server.url, "echo", "hello", '{"a": [1, null]}', "2.5", "--ack"
    )
    assert echo.rc == 0, echo
    assert json.loads(echo.out) == ["hello", {"a": [1, None]}, 2.5]
    blob = await fastsio(tmp_path, "call", server.url, "blob", "3", "--transport", "polling")
    assert blob.rc == 0, blob
    assert json.loads(blob.out) == {
        "$binary": base64.b64encode(b"\x00\x01\x02").decode(),
        "size": 3,
    }
    msgpack_server = TestServer(serializer="msgpack")
    msgpack_server.on("echo", lambda sid, *args: args)
    async with msgpack_server:
        packed = await fastsio(tmp_path, "call", msgpack_server.url, "echo", "[1]", "--msgpack")
    assert packed.rc == 0 and json.loads(packed.out) == [1]  # one ack argument: [1]


@on_one_loop
async def test_emit_without_ack_delivers_and_exits_0(tmp_path: Path, server: TestServer) -> None:
    got: list[tuple[Any, ...]] = []
    server.on("note", lambda sid, *args: got.append(args))
    result = await fastsio(tmp_path, "emit", server.url, "note", "hi", "1", "--namespace", "/")
    assert (result.rc, result.out) == (0, "")
    await until(lambda: got)
    assert got == [("hi", 1)]


@on_one_loop
async def test_emit_over_polling_delivers(tmp_path: Path, server: TestServer) -> None:
    got: list[tuple[Any, ...]] = []
    server.on("note", lambda sid, *args: got.append(args))
    result = await fastsio(tmp_path, "emit", server.url, "note", "polled", "--transport", "polling")
    assert result.rc == 0
    await until(lambda: got, timeout=2.0)
    assert got == [("polled",)]


@on_one_loop
async def test_call_timeout_exits_3(tmp_path: Path, server: TestServer) -> None:
    result = await fastsio(tmp_path, "call", server.url, "nobody-handles-this", "--timeout", "0.5")
    assert result.rc == 3, result
    result.assert_one_line_error()
    assert result.err.strip() == "fastsio: no ack for 'nobody-handles-this' within 0.5 s"
    emit_ack = await fastsio(tmp_path, "emit", server.url, "nope", "--ack", "--timeout", "0.5")
    assert emit_ack.rc == 3


@on_one_loop
async def test_call_refused_exits_1(tmp_path: Path, server: TestServer) -> None:
    result = await fastsio(
        tmp_path, "call", server.url, "add", "1", "2", "--auth", '{"token": "bad"}'
    )
    assert result.rc == 1
    result.assert_one_line_error()
    assert "namespace / refused: unauthorized" in result.err


# -- bench --------------------------------------------------------------------------------------


def _table_row(out: str, client: str) -> list[str]:
    for line in out.splitlines():
        if line.startswith(client + " "):
            return line.split()
    raise AssertionError(f"no {client!r} row in:\n{out}")


def test_bench_embedded_prints_the_table(tmp_path: Path) -> None:
    result = fastsio_sync(tmp_path, "bench", "--duration", "1")
    assert result.rc == 0, result
    header = result.lines[0]
    for column in ("client", "conns", "events/s", "per conn", "events", "connect p50", "ack rtt"):
        assert column in header
    row = _table_row(result.out, "fastsio")
    assert row[1] == "1" and int(row[2].replace(",", "")) > 0
    assert "embedded firehose server on http://127.0.0.1:" in result.err
    assert "Traceback" not in result.err


def test_bench_compare_prints_a_ratio(tmp_path: Path) -> None:
    pytest.importorskip("socketio")
    result = fastsio_sync(tmp_path, "bench", "--duration", "1", "--compare", "--msgpack")
    assert result.rc == 0, result
    _table_row(result.out, "fastsio")
    _table_row(result.out, "python-socketio")
    ratio = [line for line in result.lines if line.startswith("fastsio / python-socketio: ")]
    assert len(ratio) == 1 and ratio[0].endswith("x")
    assert float(ratio[0].split(": ")[1].rstrip("x")) > 0


@on_one_loop
async def test_bench_against_a_url(tmp_path: Path) -> None:
    srv = TestServer()
    streams: list[asyncio.Task[int]] = []
    srv.on("rtt", lambda sid, *args: args)

    @srv.on("connect")
    def connect(sid: str, auth: Any) -> None:
        if len(streams) == 2:
            return  # the third connection measures ack round trips: no stream in its way

        async def stream() -> int:
            await asyncio.sleep(0)  # the socket is connected once this handler returns
            return await srv.firehose(sid, 10_000_000, "tick", 1)

        streams.append(asyncio.ensure_future(stream()))

    try:
        async with srv:
            result = await fastsio(
                tmp_path,
                "bench",
                srv.url,
                "--clients",
                "2",
                "--duration",
                "1",
                "--rtt-event",
                "rtt",
            )
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    assert result.rc == 0, result
    row = _table_row(result.out, "fastsio")
    assert row[1] == "2" and int(row[2].replace(",", "")) > 0
    assert row[-1] == "us" and "/" in row[-2]  # ack rtt p50/p99
    assert "events/s per connection min" in result.out


# -- python -m fastsio.testing --------------------------------------------------------------------


def test_firehose_module_serves_until_terminated(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastsio.testing", "--port", "0", "--count", "10"],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), line
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        result = fastsio_sync(tmp_path, "listen", url, "--count", "11", "--format", "jsonl")
        assert result.rc == 0, result
        events = jsonl(result)
        assert [e["event"] for e in events] == ["tick"] * 10 + ["done"]
        assert events[-1]["args"] == [10]
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@on_one_loop
async def test_listen_prints_the_protocol_it_speaks(tmp_path: Path, node_server: Any) -> None:
    server = node_server(server_version=2)
    for extra in ((), ("--eio-version", "3", "--transport", "polling")):
        result = await fastsio(tmp_path, "listen", server.url, "--duration", "0.5", *extra)
        assert result.rc == 0, result
        assert "protocol: Engine.IO 3 / Socket.IO protocol 4 (Socket.IO 2.x)" in result.err
