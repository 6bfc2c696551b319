"""The locustfile of tests/integration/test_locust.py's distributed run (Node peer as --host)."""

from locust import constant, task

from fastsio.contrib.locust import FastsioUser


class DistUser(FastsioUser):
    wait_time = constant(0.005)
    options = {"reconnection": False}

    def on_start(self) -> None:
        self.sio.connect(self.host)

    @task(3)
    def call(self) -> None:
        self.sio.call("ack", 1, timeout=10)

    @task(2)
    def emit(self) -> None:
        self.sio.emit("ack", 2)

    @task(1)
    def burst(self) -> None:
        self.sio.call("burst", 10, timeout=10)

    def on_stop(self) -> None:
        self.sio.disconnect()
