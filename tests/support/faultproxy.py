"""An asyncio TCP proxy that injects network faults between a client and a peer server.

    proxy = FaultProxy("127.0.0.1", server.port)
    await proxy.start()          # listens on 127.0.0.1:<ephemeral>
    client.connect(proxy.url)    # http://127.0.0.1:<proxy port>
    proxy.freeze(); ...; proxy.unfreeze()
    await proxy.stop()

Faults (all take effect immediately, on current and future connections, until changed):

- ``cut()``: abort every current connection on both sides (the kernel closes the sockets; no
  data still queued in the proxy is delivered). New connections are still accepted.
- ``refuse(True)``: accept new connections and close them at once (the client sees the TCP
  connection open then reset/EOF, like a server that crashes on accept). ``refuse(False)`` undoes.
- ``freeze()`` / ``unfreeze()``: forward nothing in either direction while keeping every socket
  open, and do not notice closes either, so both endpoints see a silent, dead link (a network
  partition). Data is BUFFERED, not dropped: the proxy stops reading, what it already read is
  held, the rest waits in kernel buffers (then TCP flow control stalls the sender). On
  ``unfreeze()`` everything is delivered in order, followed by any close that happened meanwhile.
  Connections accepted while frozen are connected upstream but carry nothing.
- ``delay(seconds)``: every chunk is delivered ``seconds`` after it was read (latency, not a
  throughput cap: chunks are pipelined and keep their order).
- ``throttle(bytes_per_sec)``: cap each direction of each connection; ``None`` removes the cap.
- ``chunk(n)``: forward every chunk as n-byte writes, yielding to the event loop between
  them, so that an in-process client really sees n-byte reads; ``None`` restores whole chunks.
- ``heal()``: clear all of the above.

Counters are in ``proxy.stats`` (:class:`ProxyStats`). ``stop()`` closes the listener, aborts all
connections and waits for every task the proxy created.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from dataclasses import dataclass, field
from typing import Any

READ_SIZE = 65536
# Chunks a direction may hold between its reader and its writer; beyond that the reader waits,
# so a slow (delayed/throttled) link pushes back on the sender instead of buffering without end.
QUEUE_CHUNKS = 256

_EOF = None
_Item = tuple[float, bytes] | None


@dataclass
class ProxyStats:
    accepted: int = 0  # TCP connections accepted from clients (refused ones included)
    refused: int = 0  # closed at once because of refuse(True)
    upstream_failures: int = 0  # could not connect to the target
    cuts: int = 0  # connections aborted by cut()
    bytes_up: int = 0  # client -> server, delivered
    bytes_down: int = 0  # server -> client, delivered
    active: int = 0  # connections currently proxied


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket and ours to the target."""

    id: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    subtasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                w.transport.abort()


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Both loops default to TCP_NODELAY; set it anyway because chunk(1) relies on small writes
    # leaving as separate segments.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._ids = itertools.count(1)
        self._closed = False
        # Faults.
        self._refuse = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._delay = 0.0
        self._rate: float | None = None
        self._chunk: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> int:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        # A plain (non-coroutine) callback: asyncio then creates no task of its own, and the one
        # we create is registered before anything can run, so stop() sees every task.
        self._server = await asyncio.start_server(self._on_accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self._closed = True
        self._flowing.set()  # release anything parked on a freeze so it can be cancelled cleanly
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            link.abort()
            if link.task is not None:
                link.task.cancel()
        tasks = [link.task for link in links if link.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- faults ---------------------------------------------------------------------------------

    def cut(self) -> int:
        """Abort all current connections (both sides); returns how many were cut."""
        links = list(self._links)
        for link in links:
            link.abort()
            if link.task is not None:
                link.task.cancel()
        self.stats.cuts += len(links)
        return len(links)

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def freeze(self) -> None:
        self._flowing.clear()

    def unfreeze(self) -> None:
        self._flowing.set()

    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._delay = float(seconds)

    def throttle(self, bytes_per_sec: float | None) -> None:
        if bytes_per_sec is not None and bytes_per_sec <= 0:
            raise ValueError("throttle rate must be > 0 (or None for no cap)")
        self._rate = float(bytes_per_sec) if bytes_per_sec is not None else None

    def chunk(self, n: int | None) -> None:
        if n is not None and n < 1:
            raise ValueError("chunk size must be >= 1 (or None for whole chunks)")
        self._chunk = n

    def heal(self) -> None:
        self._refuse = False
        self._flowing.set()
        self._delay = 0.0
        self._rate = None
        self._chunk = None

    @property
    def active(self) -> int:
        return len(self._links)

    async def wait_accepted(self, n: int, timeout: float = 10.0) -> None:
        """Wait until at least ``n`` connections were accepted in total."""

        async def poll() -> None:
            while self.stats.accepted < n:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)

    # -- data path ------------------------------------------------------------------------------

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self._closed:
            writer.transport.abort()
            return
        if self._refuse:
            self.stats.refused += 1
            writer.transport.abort()
            return
        _set_nodelay(writer)
        link = _Link(next(self._ids), writer)
        self._links.add(link)
        self.stats.active = len(self._links)
        link.task = asyncio.ensure_future(self._serve(link, reader))

    async def _serve(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError:
                # The client sees its connection die, as if the server refused it.
                self.stats.upstream_failures += 1
                return
            link.upstream = up_writer
            _set_nodelay(up_writer)
            up_q: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
            down_q: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
            link.subtasks = [
                asyncio.ensure_future(self._read(client_reader, up_q)),
                asyncio.ensure_future(self._write(up_writer, up_q, "up")),
                asyncio.ensure_future(self._read(up_reader, down_q)),
                asyncio.ensure_future(self._write(link.client, down_q, "down")),
            ]
            writers = {link.subtasks[1], link.subtasks[3]}
            pending = set(link.subtasks)
            # Done when both directions delivered their EOF, or as soon as anything fails (then
            # the whole connection goes, as a real broken link would).
            while writers & pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(not t.cancelled() and t.exception() is not None for t in done):
                    break
        except asyncio.CancelledError:
            pass
        finally:
            for t in link.subtasks:
                t.cancel()
            if link.subtasks:
                await asyncio.gather(*link.subtasks, return_exceptions=True)
            link.abort()
            self._links.discard(link)
            self.stats.active = len(self._links)

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue[_Item]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Not reading while frozen is what turns a freeze into TCP back-pressure and makes a
            # peer's close go unnoticed until unfreeze.
            await self._flowing.wait()
            data = await reader.read(READ_SIZE)
            if not data:
                await queue.put(_EOF)
                return
            await queue.put((loop.time() + self._delay, data))

    async def _write(
        self, writer: asyncio.StreamWriter, queue: asyncio.Queue[_Item], direction: str
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is _EOF:
                await self._flowing.wait()
                # Half-close, so the other direction can still finish delivering.
                if writer.can_write_eof():
                    writer.write_eof()
                return
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            for piece in self._pieces(data):
                await self._flowing.wait()
                writer.write(piece)
                await writer.drain()
                if direction == "up":
                    self.stats.bytes_up += len(piece)
                else:
                    self.stats.bytes_down += len(piece)
                if self._rate is not None:
                    await asyncio.sleep(len(piece) / self._rate)
                elif self._chunk is not None:
                    # Let the loop poll, so an in-process receiver reads this piece on its own.
                    await asyncio.sleep(0)

    def _pieces(self, data: bytes) -> list[bytes]:
        size = len(data)
        if self._chunk is not None:
            size = self._chunk
        if self._rate is not None:
            # ~20 writes per second, so a throttled link trickles rather than bursts.
            size = min(size, max(1, int(self._rate / 20)))
        if size >= len(data):
            return [data]
        view = memoryview(data)
        return [bytes(view[i : i + size]) for i in range(0, len(data), size)]


__all__ = ["FaultProxy", "ProxyStats"]


class ThreadedFaultProxy:
    """A FaultProxy on an event loop of its own thread, for tests of the sync clients.

    Every fault method of :class:`FaultProxy` is available and runs on the proxy's loop::

        proxy = ThreadedFaultProxy(server.port)
        proxy.cut(); proxy.refuse(True)
        proxy.close()
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        self.proxy = FaultProxy(target_host, target_port)
        self._run(self.proxy.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def url(self) -> str:
        return self.proxy.url

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.proxy, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                return method(*args, **kwargs)

            return self._run(run())

        return call

    def close(self) -> None:
        self._run(self.proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
