"""The sync Client and SimpleClient in a gevent-monkey-patched process (as under Locust).

Each scenario runs in a subprocess (patch_all() cannot be undone) against the real Node peer and
prints what it observed as JSON; the assertions are here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Only looked up, never imported: importing locust monkey-patches the importing process.
if importlib.util.find_spec("gevent") is None:
    pytest.skip("gevent is not installed (pip install .[test])", allow_module_level=True)
pytestmark = pytest.mark.timeout(120)

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def run_scenario(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SUPPORT / script), *args],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, f"scenario failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def gevent_run(request: pytest.FixtureRequest) -> dict[str, Any]:
    from support.servers import ServerFactory

    factory = ServerFactory("node")
    try:
        server = factory()
        return run_scenario("gevent_scenario.py", server.url)
    finally:
        factory.close()


def test_lone_greenlet_connects_and_calls_without_loop_exit(gevent_run: dict[str, Any]) -> None:
    lone = gevent_run["lone"]
    assert lone["burst"] == 3


def test_loop_and_handlers_run_on_one_real_os_thread(gevent_run: dict[str, Any]) -> None:
    lone = gevent_run["lone"]
    assert lone["handler_threads"] == [lone["loop_ident"]]
    assert lone["loop_ident"] != lone["main_ident"]


def test_concurrent_greenlets_connect_call_emit_and_receive(gevent_run: dict[str, Any]) -> None:
    clients = gevent_run["clients"]
    assert len(clients) == 4
    for c in clients:
        assert c["calls_ok"] and c["echoes_ok"] and c["burst_ok"], c
        assert c["timed_out"] and not c["connected_after"], c


def test_simple_client_from_concurrent_greenlets(gevent_run: dict[str, Any]) -> None:
    simples = gevent_run["simples"]
    assert len(simples) == 3
    for s in simples:
        assert s["received_ok"] and s["call_ok"], s


def test_waiting_greenlets_never_stall_the_hub(gevent_run: dict[str, Any]) -> None:
    # The ticker sleeps 5 ms per tick; during a 0.5 s call() that times out it ticks about 100
    # times if the hub keeps running, and at most once if the wait blocked the hub.
    for c in gevent_run["clients"]:
        assert c["ticks_during_wait"] >= 10, c


def test_handler_thread_handlers_block_on_call_under_gevent(gevent_run: dict[str, Any]) -> None:
    ht = gevent_run["handler_thread"]
    assert ht["answers_ok"] and ht["own_thread"], ht
