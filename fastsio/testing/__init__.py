"""Local Socket.IO servers for tests, demos and benchmarks.

Two in-process asyncio Engine.IO v4 / Socket.IO v5 servers, both independent of fastsio's
client code (their codec is their own, so they cannot share a codec bug with the client):

- :class:`TestServer`: a scriptable server for tests and demos, on HTTP long-polling and
  WebSocket (with the upgrade) on one port, JSON or msgpack. Handlers and acks both ways,
  rooms, binary attachments, a pre-encoded firehose, and fault hooks (drop the link, stop
  pinging, ignore pongs, freeze, slow polling uploads)::

      import asyncio
      import fastsio
      from fastsio.testing import ConnectionRefused, TestServer

      async def main() -> None:
          server = TestServer()

          @server.on("connect")
          def connect(sid, auth):
              if not auth or auth.get("token") != "secret":
                  raise ConnectionRefused("unauthorized")

          @server.on("add")
          def add(sid, a, b):
              return a + b                      # acks the client's call()

          async with server:                    # a free loopback port: server.url
              client = fastsio.AsyncClient()
              await client.connect(server.url, auth={"token": "secret"})
              print(await client.call("add", (1, 2)))                 # 3
              client.on("question", lambda q: q.upper())
              print(await server.call("question", "hi", to=client.get_sid()))  # HI
              server.drop()                     # the client reconnects ('transport close')
              await client.disconnect()

      asyncio.run(main())

- :class:`FirehoseServer`: a WebSocket-only server built on picows that streams ``count``
  identical pre-encoded events to each client as fast as the socket takes them, then one
  ``done`` event (argument ``count``); with ``ack_echo=True`` it acks every client event with
  its arguments. It is built not to be the bottleneck of a benchmark: the event frame is
  encoded once, repeated into a ~256 KiB blob of complete, unmasked WebSocket frames, and that
  blob is written straight to the asyncio transport, with write-buffer flow control. Pings are
  sent and pongs counted, but a client that misses pongs is *not* disconnected (a client
  saturated by the stream may answer late, and that is not what a benchmark measures).

The servers keep a codec of their own (independent of the client's compiled one), so a codec
bug of the client cannot hide behind the same bug in the server. ``python -m fastsio.testing``
serves a :class:`FirehoseServer` (``fastsio bench`` runs it this way)::

    python -m fastsio.testing --port 0 --count 1000000 --serializer json

It prints ``LISTENING <port>`` once the socket is bound, then serves until SIGINT/SIGTERM.
Each new connection gets its own stream.

The package, one module a part: ``codec`` (Socket.IO packets, JSON and msgpack), ``engineio``
(sessions and the server life cycle), ``transports`` (aiohttp polling + WebSocket, picows
WebSocket), ``faults`` (the fault hooks), ``recovery`` (connection-state recovery), ``sockets`` (a
session's namespaces for ``TestServer``), ``testserver`` and ``firehose`` (the two servers),
``__main__`` (the command line).
"""

from __future__ import annotations

from collections.abc import Sequence

from .codec import Serializer, encode_ws_frame
from .firehose import DEFAULT_EVENT, DEFAULT_PAYLOAD, FirehoseServer, ServerStats
from .sockets import ClientGone, Handler
from .testserver import ConnectionRefused, Handshake, TestServer, TestServerStats

__all__ = [
    "DEFAULT_EVENT",
    "DEFAULT_PAYLOAD",
    "ClientGone",
    "ConnectionRefused",
    "FirehoseServer",
    "Handler",
    "Handshake",
    "Serializer",
    "ServerStats",
    "TestServer",
    "TestServerStats",
    "encode_ws_frame",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``python -m fastsio.testing``): serve a :class:`FirehoseServer`
    until SIGINT/SIGTERM; ``--help`` lists the options."""
    from .__main__ import main as run

    return run(argv)
