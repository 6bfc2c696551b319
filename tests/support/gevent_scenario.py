"""Run by tests/integration/test_gevent.py in a subprocess: fastsio's sync clients under
gevent.monkey.patch_all(). Prints one JSON object with what it observed; the test asserts on it.

Usage: python gevent_scenario.py URL
"""

from gevent import monkey

monkey.patch_all()

import faulthandler  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

import fastsio  # noqa: E402
from fastsio import exceptions  # noqa: E402

URL = sys.argv[1]
faulthandler.dump_traceback_later(45, exit=True)  # a hang shows where, then fails
real_get_ident = monkey.get_original("_thread", "get_ident")
ticks = 0
stop_ticker = False


def ticker() -> None:
    global ticks
    while not stop_ticker:
        ticks += 1
        gevent.sleep(0.005)


def lone_main_greenlet() -> dict:
    # Nothing else runs on the hub: a wait that did not keep the hub's loop alive would end in
    # gevent's LoopExit here.
    sio = fastsio.Client(reconnection=False)
    handler_threads = set()
    sio.on("tick", lambda i: handler_threads.add(real_get_ident()))
    sio.connect(URL)
    try:
        n = sio.call("burst", 3, timeout=10)
    finally:
        sio.disconnect()
    return {
        "burst": n,
        "handler_threads": sorted(handler_threads),
        "loop_ident": sio._thread.ident,
        "main_ident": real_get_ident(),
    }


def client_worker(k: int) -> dict:
    sio = fastsio.Client(reconnection=False)
    ticks_seen: list = []
    echoes: list = []
    sio.on("tick", ticks_seen.append)
    sio.on("echo", echoes.append)
    sio.connect(URL)
    try:
        calls = [sio.call("ack", [k, i], timeout=10) for i in range(20)]
        for i in range(10):
            sio.emit("echo", f"{k}-{i}")
        # The echoes are sent before this ack, and handlers run before the ack resolves.
        sio.call("ack", 0, timeout=10)
        burst = sio.call("burst", 50, timeout=10)
        before = ticks
        try:
            sio.call("never_acked", timeout=0.5)
            timed_out = False
        except exceptions.TimeoutError:
            timed_out = True
        during_wait = ticks - before
    finally:
        sio.disconnect()
    return {
        "calls_ok": calls == [[k, i] for i in range(20)],
        "echoes_ok": echoes == [f"{k}-{i}" for i in range(10)],
        "burst_ok": burst == 50 and ticks_seen == list(range(50)),
        "timed_out": timed_out,
        "ticks_during_wait": during_wait,
        "connected_after": sio.connected,
    }


def simple_worker(k: int) -> dict:
    with fastsio.SimpleClient(reconnection=False) as sc:
        sc.connect(URL)
        got = []
        for i in range(10):
            sc.emit("echo", [k, i])
            got.append(sc.receive(timeout=10))
        answer = sc.call("ack", k, timeout=10)
    return {"received_ok": got == [["echo", [k, i]] for i in range(10)], "call_ok": answer == k}


def handler_thread_worker() -> dict:
    # Handlers on their own real thread may block on call(); a greenlet waits meanwhile.
    sio = fastsio.Client(reconnection=False, handler_thread=True)
    answers: list = []
    idents: set = set()

    @sio.on("tick")
    def tick(i: int) -> None:
        idents.add(real_get_ident())
        answers.append(sio.call("ack", i, timeout=10))

    sio.connect(URL)
    try:
        sio.call("burst", 10, timeout=10)
        while len(answers) < 10:
            gevent.sleep(0.01)
    finally:
        sio.disconnect()
    own = {sio._thread.ident, real_get_ident()}
    return {"answers_ok": answers == list(range(10)), "own_thread": not (idents & own)}


def main() -> None:
    global stop_ticker
    out: dict = {"lone": lone_main_greenlet()}
    tick = gevent.spawn(ticker)
    clients = [gevent.spawn(client_worker, k) for k in range(4)]
    simples = [gevent.spawn(simple_worker, k) for k in range(3)]
    threaded = gevent.spawn(handler_thread_worker)
    gevent.joinall([*clients, *simples, threaded], raise_error=True)
    stop_ticker = True
    tick.join()
    out["clients"] = [g.value for g in clients]
    out["simples"] = [g.value for g in simples]
    out["handler_thread"] = threaded.value
    out["ticks"] = ticks
    print(json.dumps(out))


main()
