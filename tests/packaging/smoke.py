"""What a user does first with an installed fastsio: import it and run one connection.

Run by check_dist.py with the python of a fresh venv into which only the artifact under test
(and its dependencies) was installed, from a directory outside the checkout, so that the
checkout's fastsio/ cannot be what gets imported. Exits non-zero, with the reason, on any
failure.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import pathlib
import sys


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"smoke: {message}")


async def one_connection() -> None:
    import fastsio as socketio
    from fastsio.testing import TestServer

    server = TestServer()
    joined: list[str] = []

    @server.on("add")
    def add(sid: str, a: int, b: int) -> int:
        return a + b

    @server.on("connect")
    def connect(sid: str, auth: object) -> None:
        joined.append(sid)

    async with server:
        client = socketio.AsyncClient(reconnection=False)
        got: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def greeting(data: object) -> None:
            if not got.done():
                got.set_result(data)

        client.on("greeting", greeting)
        await client.connect(server.url, wait_timeout=10)
        check(client.connected and joined == [client.get_sid()], "the client did not connect")
        result = await client.call("add", (2, 3), timeout=10)
        check(result == 5, f"call('add', (2, 3)) returned {result!r}, not 5")
        server.emit("greeting", {"hello": "world"}, to=client.get_sid())
        data = await asyncio.wait_for(got, 10)
        check(data == {"hello": "world"}, f"the server's event arrived as {data!r}")
        await client.disconnect()
        check(not client.connected, "the client is still connected after disconnect()")


def main() -> None:
    import fastsio
    import fastsio._ext._core as core

    where = pathlib.Path(fastsio.__file__).resolve().parent
    prefix = pathlib.Path(sys.prefix).resolve()
    check(prefix in where.parents, f"fastsio was imported from {where}, not from {prefix}")
    check(
        pathlib.Path(core.__file__).resolve().parent == where / "_ext",
        f"the compiled core is {core.__file__}, not inside {where}",
    )
    dist_version = importlib.metadata.version("fastsio")
    check(
        fastsio.__version__ == dist_version,
        f"fastsio.__version__ is {fastsio.__version__}, the distribution's version {dist_version}",
    )
    for name in ("py.typed", "_ext/_core.pyi"):
        check((where / name).is_file(), f"{name} is not installed")
    asyncio.run(one_connection())
    print(f"smoke: fastsio {fastsio.__version__} from {where}: connected, called, disconnected")


if __name__ == "__main__":
    main()
