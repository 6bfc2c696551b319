"""Model-based test of the delivery invariants (hypothesis stateful) against TestServer.

A client and a TestServer share an event loop on a thread of their own. Hypothesis interleaves
emits (ack-less, with a callback and a timeout, volatile), calls (with short and long
timeouts), server-to-client streams, and faults: a dropped link, a freeze, a server-side
namespace kick (then a fresh connect()), a server restart. After every step it checks:

- every emit with a callback or a future gets at most one outcome, and by the end exactly one;
- the server executes each packet at most once (no retries configured);
- an acked packet was executed by the server; a packet refused at emit time (buffer full, no
  namespace) or timed out while it was still in the offline buffer never is;
- the events the server streams arrive in order, without duplicates, arguments unaltered.

TestServer has no connection-state recovery, so events streamed while the client is away are
lost by design; the Node tests cover recovery (tests/faults/test_delivery*.py).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import fastsio
from fastsio import exceptions
from fastsio.testing import TestServer

SCALE = float(os.environ.get("FASTSIO_FUZZ_SCALE", "1"))


class _LoopThread:
    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.loop = factory()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _payload(seq: int) -> dict[str, Any]:
    # Something an offset-stripping or re-encoding bug would alter: a trailing string too.
    return {"seq": seq, "tags": ["a", str(seq)], "f": seq / 7, "nested": {"s": "x" * (seq % 5)}}


class _Emit:
    __slots__ = ("n", "kind", "buffered_at", "connects_at", "outcomes")

    def __init__(self, n: int, kind: str, buffered: bool, connects: int) -> None:
        self.n = n
        self.kind = kind
        self.buffered_at = buffered
        self.connects_at = connects
        self.outcomes: list[tuple[str, int]] = []  # (outcome, connects when reported)


class DeliveryMachine(RuleBasedStateMachine):
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
    #: 0: at most once; N: at-least-once queues (socket.io-client's retries)
    retries = 0
    #: the server offers connection-state recovery (TestServer(recovery=...))
    recovery = False

    def __init__(self) -> None:
        super().__init__()
        self.lt = _LoopThread(type(self).loop_factory)
        self.ids = itertools.count()
        self.executed: collections.Counter[int] = collections.Counter()
        self.execution_order: list[int] = []
        self.emits: dict[int, _Emit] = {}
        self.refused: set[int] = set()
        self.received: list[tuple[int, Any]] = []
        self.connects = 0
        self.disconnects = 0
        self.unrecovered_reconnects = 0
        self.feed_seq = itertools.count()
        self.lt.run(self._setup())

    async def _setup(self) -> None:
        self.server = TestServer(
            ping_interval=0.3, ping_timeout=0.3, recovery=5.0 if self.recovery else None
        )

        def work(sid: str, n: int) -> int:
            self.executed[n] += 1
            self.execution_order.append(n)
            return n

        def note(sid: str, n: int) -> None:
            self.executed[n] += 1
            self.execution_order.append(n)

        self.server.on("work", work)
        self.server.on("note", note)
        await self.server.start()
        self.port = self.server.port
        self.sio = fastsio.AsyncClient(
            # Long enough for emits to land in the offline buffer between a fault and the
            # reconnection, short enough to reconnect within a few steps.
            reconnection_delay=0.3,
            reconnection_delay_max=0.3,
            randomization_factor=0,
            max_buffer=8,
            buffer_policy="drop_oldest",
            retries=self.retries,
            ack_timeout=0.3 if self.retries else None,
        )

        def on_connect() -> None:
            self.connects += 1
            if self.connects > 1 and not self.sio.is_recovered():
                self.unrecovered_reconnects += 1

        def on_disconnect(reason: str) -> None:
            self.disconnects += 1

        self.sio.on("connect", on_connect)
        self.sio.on("disconnect", on_disconnect)
        def on_feed(seq: int, payload: Any, *offset: Any) -> None:
            # With recovery the server's offset arrives as a last argument, untouched.
            assert len(offset) == (1 if self.recovery else 0), offset
            self.received.append((seq, payload))

        self.sio.on("feed", on_feed)
        await self.sio.connect(self.server.url, transports=["websocket"])

    # -- helpers ---------------------------------------------------------------------------

    def _new(self, kind: str) -> _Emit:
        e = _Emit(next(self.ids), kind, not self.sio.connected, self.connects)
        self.emits[e.n] = e
        return e

    def _outcome(self, e: _Emit, what: str) -> None:
        e.outcomes.append((what, self.connects))

    async def _settle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # -- rules: client side ----------------------------------------------------------------

    @rule()
    def emit_plain(self) -> None:
        e = self._new("plain")

        async def go() -> None:
            try:
                await self.sio.emit("note", e.n)
            except (exceptions.BadNamespaceError, exceptions.BufferFullError):
                self.refused.add(e.n)

        self.lt.run(go())

    @rule()
    def emit_volatile(self) -> None:
        e = self._new("volatile")
        self.lt.run(self.sio.emit("note", e.n, volatile=True))

    @rule(timeout=st.sampled_from([0.02, 0.3, 30.0]))
    def emit_with_callback(self, timeout: float) -> None:
        e = self._new("callback")

        def cb(err: BaseException | None, *args: Any) -> None:
            if err is None:
                assert args == (e.n,), f"ack altered: {args!r}"
                self._outcome(e, "acked")
            else:
                self._outcome(e, type(err).__name__)

        async def go() -> None:
            try:
                await self.sio.emit("work", e.n, callback=cb, timeout=timeout)
            except (exceptions.BadNamespaceError, exceptions.BufferFullError) as exc:
                self.refused.add(e.n)
                self._outcome(e, type(exc).__name__)

        self.lt.run(go())

    @rule(timeout=st.sampled_from([0.02, 0.3, 30.0]))
    def call(self, timeout: float) -> None:
        e = self._new("call")

        async def go() -> None:
            try:
                result = await self.sio.call("work", e.n, timeout=timeout)
            except exceptions.SocketIOError as exc:
                if isinstance(exc, (exceptions.BadNamespaceError, exceptions.BufferFullError)):
                    self.refused.add(e.n)
                self._outcome(e, type(exc).__name__)
            else:
                assert result == e.n, f"ack altered: {result!r}"
                self._outcome(e, "acked")

        self.lt.loop.call_soon_threadsafe(lambda: self.lt.loop.create_task(go()))

    @rule()
    def connect_again(self) -> None:
        # A no-op unless the client stopped for good (after a kick): a precondition on that
        # timing-dependent state would make hypothesis's replays draw differently.
        async def go() -> None:
            if self.sio.lifecycle.stopped is None or not self.sio.lifecycle.stopped.is_set():
                return
            try:
                await self.sio.connect(self.server.url, transports=["websocket"])
            except exceptions.ConnectionError:
                pass

        self.lt.run(go())

    # -- rules: server side and faults -----------------------------------------------------

    @rule(k=st.integers(1, 20))
    def server_feed(self, k: int) -> None:
        async def go() -> None:
            # A broadcast to the namespace: with recovery, a socket that is away gets what it
            # missed when it comes back.
            for _ in range(k):
                seq = next(self.feed_seq)
                await self.server.emit("feed", (seq, _payload(seq)))

        self.lt.run(go())

    @rule()
    def drop_link(self) -> None:
        async def go() -> None:
            self.server.drop()

        self.lt.run(go())

    @rule(seconds=st.sampled_from([0.05, 0.4, 0.9]))
    def freeze(self, seconds: float) -> None:
        async def go() -> None:
            self.server.freeze()
            await asyncio.sleep(seconds)
            self.server.freeze(frozen=False)

        self.lt.run(go())

    @rule()
    def kick(self) -> None:
        async def go() -> None:
            for sid in self.server.sids():
                await self.server.disconnect(sid)

        self.lt.run(go())

    @rule()
    def restart(self) -> None:
        async def go() -> None:
            await self.server.stop(disconnect=False)
            await asyncio.sleep(0.05)
            await self.server.start(port=self.port)

        self.lt.run(go())

    @rule(seconds=st.sampled_from([0.01, 0.1, 0.4]))
    def let_time_pass(self, seconds: float) -> None:
        self.lt.run(self._settle(seconds))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self.lt.run(self._settle(0))  # observe a consistent state between two loop turns
        reliable = {n for n, e in self.emits.items() if e.kind != "volatile"}
        for n, count in self.executed.items():
            if not (self.retries and n in reliable):
                assert count <= 1, f"packet {n} executed {count} times"
        if self.retries:
            # At least once, in order: first executions follow the emit order.
            first = list(dict.fromkeys(n for n in self.execution_order if n in reliable))
            assert first == sorted(first), f"reliable packets reordered: {first}"
        for n in self.refused:
            assert self.executed[n] == 0, f"packet {n} was refused at emit, yet executed"
        for e in self.emits.values():
            assert len(e.outcomes) <= 1, f"packet {e.n}: several outcomes {e.outcomes}"
            if not e.outcomes:
                continue
            what, connects = e.outcomes[0]
            if what == "acked":
                assert self.executed[e.n] == 1, f"packet {e.n} acked but not executed"
            if (
                not self.retries
                and what == "TimeoutError"
                and e.buffered_at
                and connects == e.connects_at
            ):
                # Timed out before any reconnection: it was still in the buffer.
                assert self.executed[e.n] == 0, f"packet {e.n} timed out in the buffer, sent"
        seqs = [s for s, _ in self.received]
        assert seqs == sorted(set(seqs)), "stream reordered or duplicated"
        for seq, payload in self.received:
            assert payload == _payload(seq), f"event {seq} altered: {payload!r}"
        assert self.disconnects <= self.connects

    def teardown(self) -> None:
        try:
            self.lt.run(self._finish(), timeout=60)
            for e in self.emits.values():
                if e.kind in ("callback", "call"):
                    assert len(e.outcomes) == 1, f"packet {e.n} ({e.kind}): {e.outcomes}"
            self.invariants_hold()
            assert self.disconnects == self.connects, "a connect without its disconnect"
            if self.recovery and self.connects and not self.unrecovered_reconnects:
                # Every reconnection restored the session: nothing the server sent is missing
                # (counting from the first event sent after the first connect).
                seqs = [s for s, _ in self.received]
                if seqs:
                    expected = list(range(seqs[0], next(self.feed_seq)))
                    assert seqs == expected, f"events lost despite recovery: {seqs}"
        finally:
            self.lt.run(self.server.stop())
            self.lt.close()

    async def _finish(self) -> None:
        self.server.freeze(frozen=False)
        if self.sio._reconnect_task is not None and not self.sio._reconnect_task.done():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not self.sio.connected and loop.time() < deadline:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # answers in flight come back
        await self.sio.disconnect()
        await asyncio.sleep(0.1)  # calls scheduled on the loop finish


_SETTINGS = settings(
    max_examples=max(1, int(6 * SCALE)),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # Real time and a real network: a replay does not retrace a run exactly, so failures are
    # reported as generated (no shrinking, no example database).
    phases=[Phase.generate],
    database=None,
)


class TestDeliveryAsyncio(DeliveryMachine.TestCase):  # type: ignore[misc,name-defined]
    settings = _SETTINGS


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


class UvloopDeliveryMachine(DeliveryMachine):
    loop_factory = staticmethod(_uvloop_factory)  # type: ignore[assignment]


class TestDeliveryUvloop(UvloopDeliveryMachine.TestCase):  # type: ignore[misc,name-defined]
    settings = _SETTINGS


class RetriesDeliveryMachine(UvloopDeliveryMachine):
    retries = 2


class RecoveryDeliveryMachine(DeliveryMachine):
    recovery = True


class TestDeliveryRecovery(RecoveryDeliveryMachine.TestCase):  # type: ignore[misc,name-defined]
    settings = _SETTINGS


class TestDeliveryRetries(RetriesDeliveryMachine.TestCase):  # type: ignore[misc,name-defined]
    settings = _SETTINGS


pytestmark = pytest.mark.timeout(600)
