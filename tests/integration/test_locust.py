"""fastsio.contrib.locust: what FastsioUser reports to Locust, and a distributed Locust run.

Locust monkey-patches the process it is imported in, so everything runs in subprocesses against
the real Node peer; the assertions are here.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.aio import connected_sync

# Only looked up, never imported: importing locust monkey-patches the importing process.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed (pip install .[test])", allow_module_level=True)
pytestmark = pytest.mark.timeout(120)

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    from support.servers import ServerFactory

    factory = ServerFactory("node")
    try:
        server = factory()
        proc = subprocess.run(
            [
                sys.executable,
                str(SUPPORT / "locust_scenario.py"),
                server.url,
                f"http://127.0.0.1:{free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=100,
        )
    finally:
        factory.close()
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def between(reports: list[list[Any]], start: str, end: str) -> list[list[Any]]:
    """The reports fired between two step marks of the scenario."""
    names = [r[1] if r[0] == "step" else None for r in reports]
    i, j = names.index(start), names.index(end)
    return reports[i + 1 : j]


def test_connect_reported_once_with_a_response_time(scenario: dict[str, Any]) -> None:
    first = scenario["reports"][0]
    assert first[:2] == ["WS", "connect"] and first[2] > 0 and first[3] is None


def test_call_reported_once_per_call_as_wsc_and_returns_the_ack(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "calls", "call_timeout")
    assert [r[:2] for r in got] == [["WSC", "ack"]] * 6
    assert all(r[2] > 0 and r[3] is None for r in got)
    assert scenario["call_results"] == [0, 1, 2, 3, 4]  # numbers as data are fine
    assert scenario["call_tuple"] == [1, "two"]


def test_call_timeout_is_one_failure_and_returns_none(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "call_timeout", "concurrent")
    assert len(got) == 1 and got[0][:2] == ["WSC", "slow"] and got[0][3] == "TimeoutError"
    assert got[0][2] >= 300 * 0.9  # the timeout, in ms: timed on the loop thread
    assert scenario["timeout_result"] is None


def test_concurrent_calls_each_get_their_own_ack_reported_exactly_once(
    scenario: dict[str, Any],
) -> None:
    # 8 greenlets x 25 calls through one batched hand-off queue and one coalesced hub watcher.
    assert scenario["conc_results"] == {str(g): [[g, i] for i in range(25)] for g in range(8)}
    got = between(scenario["reports"], "concurrent", "emits")
    conc = [r for r in got if r[1] == "conc"]
    assert len(conc) == 200 and all(r[0] == "WSC" and r[3] is None and r[2] > 0 for r in conc)


def test_batched_emits_reach_the_server_in_order_from_each_greenlet(
    scenario: dict[str, Any],
) -> None:
    assert scenario["conc_counted"] == {t: list(range(100)) for t in ("a", "b")}
    got = between(scenario["reports"], "concurrent", "emits")
    assert [r for r in got if r[1] == "count"] == [["WSE", "count", None, None]] * 200
    assert [r[:2] + [r[3]] for r in got if r[1] == "counted"] == [["WSC", "counted", None]] * 2


def test_concurrent_call_timeouts_are_one_failure_each(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "concurrent", "emits")
    timeouts = [r for r in got if r[1] == "conc_timeout"]
    assert [r[0] + " " + r[3] for r in timeouts] == ["WSC TimeoutError"] * 2
    assert all(r[2] >= 200 * 0.9 for r in timeouts)
    assert scenario["conc_timeouts"] == [None, None]


def test_call_of_a_killed_greenlet_is_never_reported_and_the_client_goes_on(
    scenario: dict[str, Any],
) -> None:
    assert scenario["conc_killed"] == "timeout"
    got = between(scenario["reports"], "concurrent", "emits")
    assert not [r for r in got if r[1] == "killed"]
    assert [r[:2] + [r[3]] for r in got if r[1] == "after_kill"] == [["WSC", "after_kill", None]]
    assert scenario["conc_after_kill"] == "still"


def test_emit_reported_as_wse_with_no_response_time(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "emits", "expect")
    wse = [r for r in got if r[0] == "WSE"]
    assert wse == [["WSE", "ack", None, None]] * 3
    assert [r[:2] for r in got if r[0] != "WSE"] == [["WSC", "burst"]]


def test_received_events_counted_in_bulk_without_response_time(scenario: dict[str, Any]) -> None:
    assert scenario["ticks"] == list(range(50))  # the handler ran, in order
    assert scenario["wsr_tick"] == 50 and scenario["wsr_none"] == 50
    assert not [r for r in scenario["reports"] if r[0] == "WSR" and r[1] == "tick"]


def test_expect_times_emit_to_reply_and_reports_timeouts_and_broken_predicates(
    scenario: dict[str, Any],
) -> None:
    got = between(scenario["reports"], "expect", "server_disconnect")
    assert [r[:2] + [r[3]] for r in got] == [
        ["WSX", "echo", None],
        ["WSX", "noreply", "TimeoutError"],
        ["WSX", "badpred", "ZeroDivisionError"],
    ]
    assert scenario["expect_result"] == ["tok"]
    assert scenario["expect_timeout"] is None and scenario["expect_bad_predicate"] is None


def test_server_disconnect_is_one_failure(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "server_disconnect", "after_disconnect")
    assert [r[:2] + [r[3]] for r in got] == [
        ["WSE", "disconnect_me", None],
        ["WS", "disconnect", "ConnectionError"],
    ]
    assert scenario["connected_after_kick"] is False


def test_emit_and_call_while_disconnected_are_failures(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "after_disconnect", "dead_connect")
    assert [r[:2] + [r[3]] for r in got] == [
        ["WSE", "ack", "BadNamespaceError"],
        ["WSC", "ack", "BadNamespaceError"],
    ]
    assert scenario["call_after_disconnect"] is None


def test_failed_connect_is_reported_then_raised(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "dead_connect", "user_disconnect")
    assert [r[:2] + [r[3]] for r in got] == [["WS", "connect", "ConnectionError"]]
    assert scenario["dead_connect_raised"] == "ConnectionError"


def test_user_disconnect_is_not_a_failure(scenario: dict[str, Any]) -> None:
    got = between(scenario["reports"], "user_disconnect", "end")
    assert [r[:2] + [r[3]] for r in got] == [["WS", "connect", None]]


def test_distributed_run_counts_agree_with_the_server(node_server: Any, tmp_path: Path) -> None:
    import fastsio

    server = node_server()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "locust"),
            *("-f", str(SUPPORT / "locustfile_dist.py"), "--headless", "--processes", "2"),
            *("-u", "6", "-r", "6", "-t", "3s", "--stop-timeout", "10"),
            *("--host", server.url, "--csv", str(tmp_path / "run"), "--only-summary"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "2 workers connected" in proc.stderr
    with open(tmp_path / "run_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}

    def count(kind: str, name: str) -> int:
        row = rows.get((kind, name))
        return int(row["Request Count"]) if row else 0

    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    sio = fastsio.Client(reconnection=False)
    with connected_sync(sio, server.url):
        seen = sio.call("server_counts", timeout=10)
    # Every user connected once (our own query connection excluded).
    assert count("WS", "connect") == 6 == seen["connections"] - 1
    # Each call and each emit the server received is counted exactly once: a call counted as
    # both WSC and WSE would make the sum exceed the server's count.
    assert count("WSC", "ack") > 0 and count("WSE", "ack") > 0
    assert count("WSC", "ack") + count("WSE", "ack") == seen["events"]["ack"]
    assert count("WSC", "burst") == seen["events"]["burst"] > 0
    # Every tick the server sent before acking a burst is counted as received.
    assert count("WSR", "tick") == 10 * seen["events"]["burst"]
