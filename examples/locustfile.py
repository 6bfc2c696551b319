"""A Locust load test with fastsio: ``locust -f examples/locustfile.py --host http://127.0.0.1:3000``.

Against the test peer (``node tests/peers/server.js --port 3000``), which answers ``ack`` with its
arguments, echoes ``echo`` back as an ``echo`` event, and sends ``n`` ``tick`` events on ``burst``.
Switching from Locust's own ``SocketIOUser`` is the import line and, optionally, ``name=``.
"""

from __future__ import annotations

import itertools

from locust import between, task

from fastsio.contrib.locust import FastsioUser

_tokens = itertools.count()


class ChatUser(FastsioUser):
    wait_time = between(0.01, 0.05)
    options = {"reconnection": False}

    def on_start(self) -> None:
        self.ticks = 0
        self.sio.on("tick", self.on_tick)  # runs on this user's handler greenlet, in order
        self.sio.connect(self.host)

    def on_tick(self, seq: int) -> None:
        self.ticks += 1

    @task(5)
    def call(self) -> None:
        # WSC ack: timed from send to ack on the loop thread.
        self.sio.call("ack", {"n": 1}, timeout=5)

    @task(3)
    def emit(self) -> None:
        self.sio.emit("ack", "fire-and-forget")  # WSE ack, response time None

    @task(1)
    def echo_round_trip(self) -> None:
        # WSX echo: from the emit to the echo event carrying this token.
        token = next(_tokens)
        self.sio.expect("echo", token, predicate=lambda got: got == token, timeout=5)

    @task(1)
    def burst(self) -> None:
        # The 20 tick events are counted in bulk as WSR tick.
        self.sio.call("burst", 20, timeout=5)

    def on_stop(self) -> None:
        self.sio.disconnect()
