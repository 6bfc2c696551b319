"""Fixtures shared by every fastsio test suite.

- Every async test runs twice, on the default asyncio loop and on uvloop (ids ``asyncio`` and
  ``uvloop``), through pytest-asyncio's ``pytest_asyncio_loop_factories`` hook. Restrict with
  ``FASTSIO_TEST_LOOPS=uvloop`` (comma-separated) or per test with
  ``@pytest.mark.asyncio(loop_factories=["uvloop"])``.
- ``node_server`` / ``py_server``: factories ``start(**opts) -> ServerHandle`` for the peers in
  tests/peers (see tests/peers/README.md for what they do).
- ``fault_proxy``: async factory ``await make(target) -> FaultProxy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest runs in importlib mode, which does not put test directories on sys.path; the shared
# helpers are imported as `support.*` from here and from the test modules.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.faultproxy import FaultProxy, ThreadedFaultProxy  # noqa: E402
from support.servers import PeerSetupError, ServerFactory, ServerHandle  # noqa: E402

# -- event loops --------------------------------------------------------------------------------


def _loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # SelectorEventLoop directly rather than asyncio.new_event_loop(): the latter follows the
    # global policy, which uvloop.install() (by anyone) would silently turn into uvloop.
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.SelectorEventLoop
    }
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every CI platform
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    wanted = os.environ.get("FASTSIO_TEST_LOOPS")
    if wanted:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        unknown = [n for n in names if n not in factories]
        if unknown:
            raise pytest.UsageError(
                f"FASTSIO_TEST_LOOPS: unknown or unavailable loop(s) {unknown}; "
                f"available: {sorted(factories)}"
            )
        factories = {n: factories[n] for n in names}
    return factories


LOOP_FACTORIES = _loop_factories()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # pytest-asyncio >= 1.3 parametrizes each async test over these (ids = keys). Overriding the
    # `event_loop_policy` fixture is deprecated in pytest-asyncio 1.5 and warns.
    return LOOP_FACTORIES


# -- peer servers -------------------------------------------------------------------------------


def _server_fixture(kind: str) -> Iterator[Callable[..., ServerHandle]]:
    factory = ServerFactory(kind)  # type: ignore[arg-type]

    def start(**opts: Any) -> ServerHandle:
        try:
            return factory(**opts)
        except PeerSetupError as exc:
            problem = str(exc)
        # Outside the except block, so the report is the one-line fix, not a chained traceback.
        pytest.fail(problem, pytrace=False)

    try:
        yield start
    finally:
        factory.close()


@pytest.fixture
def node_server() -> Iterator[Callable[..., ServerHandle]]:
    """``start(parser="json", recovery=False, ping_interval=None, ping_timeout=None,
    transports=None, max_payload=None, port=0, timeout=10.0) -> ServerHandle`` for the Node
    socket.io 4.8 peer; every server started is stopped at teardown."""
    yield from _server_fixture("node")


@pytest.fixture
def py_server() -> Iterator[Callable[..., ServerHandle]]:
    """Same as ``node_server`` for the python-socketio peer (``recovery=True`` is a ValueError)."""
    yield from _server_fixture("python")


# -- fault proxy --------------------------------------------------------------------------------


def port_of(target: int | ServerHandle) -> int:
    """A proxy's target: a port, or a server handle's port."""
    return target if isinstance(target, int) else target.port


@pytest.fixture
async def fault_proxy() -> AsyncIterator[Callable[..., Awaitable[FaultProxy]]]:
    """``await make(target, host="127.0.0.1") -> FaultProxy`` (started); ``target`` is a port or
    anything with ``.port`` (a ServerHandle). All proxies are stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(target: int | ServerHandle, host: str = "127.0.0.1") -> FaultProxy:
            proxy = FaultProxy(host, port_of(target))
            await proxy.start()
            stack.push_async_callback(proxy.stop)
            return proxy

        yield make


@pytest.fixture
def proxied_node(
    node_server: ServerFactory, fault_proxy: Callable[..., Awaitable[FaultProxy]]
) -> Callable[..., Awaitable[tuple[ServerHandle, FaultProxy]]]:
    """``await make(**server_options) -> (server, proxy)``: a Node peer behind a fault proxy
    (clients connect to ``proxy.url``; the proxy cuts, freezes or refuses their link)."""

    async def make(**opts: Any) -> tuple[ServerHandle, FaultProxy]:
        server = node_server(**opts)
        return server, await fault_proxy(server)

    return make


@pytest.fixture
def fault_proxy_sync() -> Iterator[Callable[..., ThreadedFaultProxy]]:
    """``make(target) -> ThreadedFaultProxy``: a fault proxy on a thread of its own, for tests
    of the sync clients (no running loop in the test). Stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def make(target: int | ServerHandle) -> ThreadedFaultProxy:
            proxy = ThreadedFaultProxy(port_of(target))
            stack.callback(proxy.close)
            return proxy

        yield make
