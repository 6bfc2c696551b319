"""Run by tests/integration/test_locust.py in a subprocess (importing locust monkey-patches the
process): FastsioUser's reporting, step by step, against the Node peer. Prints one JSON object.

Usage: python locust_scenario.py URL DEAD_URL
"""

import faulthandler
import json
import sys

import gevent
from locust import task
from locust.env import Environment

from fastsio.contrib.locust import FastsioUser

URL, DEAD_URL = sys.argv[1], sys.argv[2]
faulthandler.dump_traceback_later(60, exit=True)  # a hang shows where, then fails
reports: list = []


class U(FastsioUser):
    options = {"reconnection": False}

    @task
    def nothing(self) -> None:
        pass


def record(request_type, name, response_time, exception, **_):
    reports.append(
        [request_type, name, response_time, type(exception).__name__ if exception else None]
    )


def mark(step: str) -> int:
    reports.append(["step", step, None, None])
    return len(reports)


def concurrent_calls(u: U) -> dict:
    """Many greenlets calling, emitting and timing out at once through one loop thread: the
    hand-offs are batched, the acks must still reach the right caller, once each, in order."""
    results: dict = {}

    def caller(g: int) -> None:
        results[g] = [u.sio.call("ack", [g, i], timeout=10, name="conc") for i in range(25)]

    def emitter(tag: str) -> None:
        for i in range(100):
            u.sio.emit("count", (tag, i), name="count")  # a tuple: two arguments
        results[tag] = u.sio.call("counted", tag, timeout=10, name="counted")

    def timing_out() -> None:
        results["timeouts"] = [
            u.sio.call("never_acked", timeout=0.2, name="conc_timeout") for _ in range(2)
        ]

    def killed() -> None:
        try:
            with gevent.Timeout(0.05):
                u.sio.call("never_acked", timeout=0.5, name="killed")
            results["killed"] = "returned"
        except gevent.Timeout:
            results["killed"] = "timeout"

    greenlets = [gevent.spawn(caller, g) for g in range(8)]
    greenlets += [gevent.spawn(emitter, t) for t in ("a", "b")]
    greenlets += [gevent.spawn(timing_out), gevent.spawn(killed)]
    gevent.joinall(greenlets, raise_error=True)
    gevent.sleep(0.7)  # past the killed call's ack timeout: it must stay unreported
    return {
        "conc_results": {str(g): results[g] for g in range(8)},
        "conc_counted": {t: results[t] for t in ("a", "b")},
        "conc_timeouts": results["timeouts"],
        "conc_killed": results["killed"],
        "conc_after_kill": u.sio.call("ack", "still", timeout=5, name="after_kill"),
    }


def main() -> dict:
    env = Environment(user_classes=[U])
    env.events.request.add_listener(record)
    out: dict = {}
    u = U(env)
    u.sio.connect(URL)
    mark("calls")
    out["call_results"] = [u.sio.call("ack", i, timeout=5) for i in range(5)]
    out["call_tuple"] = u.sio.call("ack", (1, "two"), timeout=5)
    mark("call_timeout")
    out["timeout_result"] = u.sio.call("never_acked", timeout=0.3, name="slow")
    mark("concurrent")
    out.update(concurrent_calls(u))
    mark("emits")
    for i in range(3):
        u.sio.emit("ack", i)
    ticks: list = []
    u.sio.on("tick", ticks.append)
    u.sio.call("burst", 50, timeout=5)
    for _ in range(500):  # the handler greenlet runs them soon after
        if len(ticks) == 50:
            break
        gevent.sleep(0.01)
    out["ticks"] = ticks
    mark("expect")
    out["expect_result"] = u.sio.expect("echo", "tok", predicate=lambda t: t == "tok", timeout=5)
    out["expect_timeout"] = u.sio.expect("ack", 1, timeout=0.3, name="noreply")
    out["expect_bad_predicate"] = u.sio.expect(
        "echo", "x", predicate=lambda t: 1 / 0, timeout=5, name="badpred"
    )
    mark("server_disconnect")
    u.sio.emit("disconnect_me")
    for _ in range(500):
        if not u.sio.connected:
            break
        gevent.sleep(0.01)
    out["connected_after_kick"] = u.sio.connected
    gevent.sleep(0.05)
    mark("after_disconnect")
    u.sio.emit("ack", 1)
    out["call_after_disconnect"] = u.sio.call("ack", 1, timeout=1)
    gevent.sleep(0.05)
    u.sio.disconnect()  # flushes the bulk WSR counts
    out["wsr_tick"] = env.stats.get("tick", "WSR").num_requests
    out["wsr_none"] = env.stats.get("tick", "WSR").num_none_requests
    mark("dead_connect")
    try:
        U(env).sio.connect(DEAD_URL)
        out["dead_connect_raised"] = None
    except Exception as exc:
        out["dead_connect_raised"] = type(exc).__name__
    mark("user_disconnect")
    u2 = U(env)
    u2.sio.connect(URL)
    u2.sio.disconnect()
    mark("end")
    out["reports"] = reports
    return out


print(json.dumps(gevent.spawn(main).get()))
