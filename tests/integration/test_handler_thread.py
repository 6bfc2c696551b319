"""The sync Client's handler modes: inline on the loop thread (default) and handler_thread=True."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from support.aio import connected_sync, on_with_threads, wait_until

import fastsio
from fastsio import ClientNamespace

pytestmark = pytest.mark.timeout(60)


def test_inline_handler_cannot_block_on_call(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False)
    errors: list[BaseException] = []

    @sio.on("tick")
    def tick(i: int) -> None:
        try:
            sio.call("ack", i, timeout=5)
        except RuntimeError as exc:
            errors.append(exc)

    with connected_sync(sio, server.url):
        assert sio.call("burst", 1, timeout=10) == 1
        assert len(errors) == 1 and "handler_thread=True" in str(errors[0])


def test_handler_thread_handlers_block_on_call_in_arrival_order(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False, handler_thread=True)
    answers: list[Any] = []
    threads = on_with_threads(
        sio, "tick", lambda i: answers.append(sio.call("ack", i * 10, timeout=5))
    )

    with connected_sync(sio, server.url):
        assert sio.call("burst", 30, timeout=10) == 30
        wait_until(lambda: len(answers) == 30)
        assert answers == [i * 10 for i in range(30)]
        assert sio._handlers is not None and sio._thread is not None
        assert threads == {sio._handlers.ident}
        assert sio._handlers.ident not in (sio._thread.ident, threading.get_ident())


def test_handler_thread_return_value_is_the_ack(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False, handler_thread=True)
    answers: list[Any] = []

    @sio.on("question")
    def question(payload: Any) -> Any:
        return {"answer": payload}

    sio.on("answer", answers.append)
    with connected_sync(sio, server.url):
        sio.emit("ask", 7)
        wait_until(lambda: answers)
        assert answers == [[{"answer": 7}]]


def test_handler_thread_full_queue_pauses_reading(node_server: Any) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False, handler_thread=True, handler_queue=50)
    gate = threading.Event()
    seen: list[int] = []
    burst_acked = threading.Event()

    @sio.on("tick")
    def tick(i: int) -> None:
        gate.wait(20)
        seen.append(i)

    sio.connect(server.url)
    try:
        sio.emit("burst", 3000, callback=lambda n: burst_acked.set())
        ht = sio._handlers
        assert ht is not None
        wait_until(lambda: ht.peak >= 50)
        time.sleep(0.2)  # room for the queue to overflow if reading were not paused
        assert ht.peak == 50 and not burst_acked.is_set()
        gate.set()
        assert burst_acked.wait(20)
        wait_until(lambda: len(seen) == 3000)
        assert seen == list(range(3000))
        assert ht.peak <= 50
    finally:
        gate.set()
        sio.disconnect()


def test_handler_thread_runs_namespace_methods_and_survives_a_raising_handler(
    node_server: Any,
) -> None:
    server = node_server()
    sio = fastsio.Client(reconnection=False, handler_thread=True)
    seen: list[Any] = []
    threads: set[int] = set()

    class Chat(ClientNamespace):
        def on_tick(self, i: int) -> None:
            threads.add(threading.get_ident())
            if i == 1:
                raise ValueError("handler bug")
            seen.append(i)

    sio.register_namespace(Chat("/"))
    with connected_sync(sio, server.url):
        assert sio.call("burst", 4, timeout=10) == 4
        wait_until(lambda: len(seen) == 3)
        assert seen == [0, 2, 3]
        assert sio._handlers is not None and threads == {sio._handlers.ident}
