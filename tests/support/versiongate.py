"""A TCP front for a real server that refuses one Engine.IO version, as some servers do.

    async with VersionGate(server.port, refuse="4") as gate:
        await sio.connect(gate.url)

Each connection's first HTTP request is read whole (its head): a handshake (no ``sid``) whose
``EIO`` is ``refuse`` gets python-engineio 3.x's answer to a version it does not speak, HTTP 400
with the JSON string "The client is using an unsupported version of the Socket.IO or Engine.IO
protocols", on polling and on a WebSocket upgrade alike, and the connection is closed; anything
else is passed on, both ways, to the server behind. ``gate.seen`` lists the ``EIO`` value of
every handshake, in order, with whether it was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse

from support.aio import close_server

REFUSAL = b'"The client is using an unsupported version of the Socket.IO or Engine.IO protocols"'


class VersionGate:
    def __init__(self, target_port: int, refuse: str, host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.refuse = refuse
        self.host = host
        self.seen: list[tuple[str | None, bool]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> VersionGate:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await close_server(self._server, self._tasks)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            if "sid" not in query:
                eio = query.get("EIO", [None])[0]
                refused = eio == self.refuse
                self.seen.append((eio, refused))
                if refused:
                    writer.write(
                        b"HTTP/1.1 400 BAD REQUEST\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(REFUSAL), REFUSAL)
                    )
                    await writer.drain()
                    return
            up_reader, upstream = await asyncio.open_connection(self.host, self.target_port)
            upstream.write(head)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()
