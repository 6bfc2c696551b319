"""The user classes of benchmarks/locust.py: one scenario, two clients (select one by name).

- ``*Calls``: ``call('ack', 1)`` back to back (no wait time), reported ``WSC ack``.
- ``*Receive``: ``call('burst', BENCH_BURST)``: the server sends that many ``tick`` events
  before the ack, each reported (or, for fastsio, counted in bulk) as ``WSR tick``.

With ``BENCH_CPU_OUT`` set, the process writes its CPU seconds (user + sys) between Locust's
``test_start`` and ``test_stop`` events there: the worker's cost of the run, start-up excluded.

The data sent are strings because SocketIOUser reports ``len(data)`` and so fails any call or
emit whose data has no length (a number), after sending it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from locust import constant, events, task
from locust.contrib.socketio import SocketIOUser

from fastsio.contrib.locust import FastsioUser

BURST = int(os.environ.get("BENCH_BURST", "200"))
_cpu: list[float] = []


@events.test_start.add_listener
def _test_start(**_: Any) -> None:
    _cpu[:] = [time.process_time()]


@events.test_stop.add_listener
def _test_stop(**_: Any) -> None:
    out = os.environ.get("BENCH_CPU_OUT")
    if out and _cpu:
        with open(out, "w") as f:
            f.write(str(time.process_time() - _cpu[0]))


class _Calls:
    """The scenario, on either client: ``call('ack')`` back to back over one connection."""

    wait_time = constant(0)
    options = {"reconnection": False}
    sio: Any
    host: str

    def on_start(self) -> None:
        self.sio.connect(self.host, transports=["websocket"])

    def call(self) -> None:
        self.sio.call("ack", "1", timeout=10)

    # Locust collects the tasks of User bases only: a plain mixin declares them in ``tasks``.
    tasks = [call]

    def on_stop(self) -> None:
        self.sio.disconnect()


class FastsioCalls(_Calls, FastsioUser):
    pass


class FastsioReceive(FastsioCalls):
    @task
    def call(self) -> None:
        self.sio.call("burst", str(BURST), timeout=30)


class SocketIOCalls(_Calls, SocketIOUser):
    pass


class SocketIOReceive(SocketIOCalls):
    def on_start(self) -> None:
        # SocketIOClient.on_message reports len(data), which fails on the int ticks: the same
        # report, without the len().
        def tick(seq: int) -> None:
            self.sio.request_event.fire(
                request_type="WSR",
                name="tick",
                response_time=0,
                response_length=0,
                exception=None,
                context={},
            )

        self.sio.on("tick", tick)
        super().on_start()

    @task
    def call(self) -> None:
        self.sio.call("burst", str(BURST), timeout=30)
