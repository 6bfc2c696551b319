"""The Locust side's one event loop thread per worker process, and what it reports in bulk.

Owns the loop thread (started lazily, so after ``--processes`` forks; stopped on Locust's
``quitting`` event), the hand-over of operations from greenlets to it (one queue, one wake-up
however many operations queue meanwhile; completions back through the gevent hub bridge), the
``call()`` operation (``CallOp``), and the figures counted on the loop thread and handed to
Locust in bulk: received events (``WSR``) and the bytes of every connection, per worker and on
the master. It must not know the user-facing API (``locust.LocustClient``) nor packets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust import events as locust_events
from locust.env import Environment

from .. import _green, exceptions
from ..async_client import AsyncClient
from ..client import new_event_loop

logger = logging.getLogger("fastsio.locust")

#: how often the loop thread hands the bulk counts of received events to Locust (seconds)
FLUSH_INTERVAL = 1.0
#: operations queued for the loop thread beyond which ``emit()`` waits for it to catch up
MAX_QUEUED_OPS = 10_000

_perf_counter = time.perf_counter


class WorkerLoop:
    """This process's one event loop thread, carrying every user's connection."""

    def __init__(self, environment: Environment) -> None:
        bridge = _green.hub_bridge()
        if bridge is None:
            raise RuntimeError("fastsio.contrib.locust must be used from a greenlet")
        self.bridge = bridge
        self.environment = environment
        self.pid = os.getpid()
        self.loop = new_event_loop()
        self.ops: collections.deque[Callable[[], None]] = collections.deque()
        self._scheduled = False
        self.stopped = False
        #: received events per (request name), counted on the loop thread
        self.received: dict[str, int] = {}
        self.clients: set[AsyncClient] = set()
        self.bytes_closed = [0, 0]  # sent, received by clients no longer connected
        self.bytes_reported = [0, 0]
        _green.start_real_thread(self._run, "fastsio-locust")
        self.loop.call_soon_threadsafe(self._flush_later)
        environment.events.quitting.add_listener(self._on_quitting)
        environment.events.test_stop.add_listener(self._on_test_stop)
        environment.events.report_to_master.add_listener(self._on_report_to_master)

    def _run(self) -> None:
        self.loop.run_forever()

    # -- greenlets -> loop thread ------------------------------------------------------------

    def submit(self, op: Callable[[], None]) -> None:
        """Queue ``op`` for the loop thread: one wake-up however many ops queue meanwhile."""
        self.ops.append(op)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._run_ops)

    def _run_ops(self) -> None:
        # Cleared before draining: an op queued after this line schedules a new run.
        self._scheduled = False
        ops = self.ops
        while ops:
            ops.popleft()()

    def wait(self, start: Callable[[Callable[[Any], None]], Any]) -> Any:
        """Run ``start(done)`` on the loop thread; this greenlet waits for ``done(item)``."""
        return self.bridge.wait(self.submit, start)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the loop thread, wait for its result (a task: for rare steps)."""

        def start(done: Callable[[Any], None]) -> Any:
            task = self.loop.create_task(coro)

            task.add_done_callback(
                lambda t: done(_green.task_outcome(t, exceptions.DisconnectedError("cancelled")))
            )
            return task

        return _green.unwrap(self.wait(start))

    # -- received events ------------------------------------------------------------------------

    def count_received(self, name: str) -> None:  # loop thread
        received = self.received
        received[name] = received.get(name, 0) + 1

    def _take_received(self) -> tuple[dict[str, int], int, int]:  # loop thread
        counts, self.received = self.received, {}
        sent, got = self.bytes_closed
        for c in self.clients:
            s = c.stats()
            sent += s["bytes_sent"]
            got += s["bytes_received"]
        return counts, sent, got

    def _flush_later(self) -> None:  # loop thread
        if self.stopped:
            return
        if self.received or self.clients:
            self.bridge.post(self._log_received, self._take_received())
        self.loop.call_later(FLUSH_INTERVAL, self._flush_later)

    def flush(self) -> None:
        """Log every received event counted so far (from a greenlet)."""
        if self.stopped or gevent.getcurrent() is gevent.get_hub():
            return
        self._log_received(self.wait(lambda done: done(self._take_received())))

    def _log_received(self, item: tuple[dict[str, int], int, int]) -> None:  # hub
        counts, sent, got = item
        stats = self.environment.stats
        for name, n in counts.items():
            _log_bulk(stats, "WSR", name, n)
        self.bytes_total = (sent, got)

    bytes_total: tuple[int, int] = (0, 0)

    # -- Locust events --------------------------------------------------------------------------

    def _on_test_stop(self, **_: Any) -> None:
        self.flush()
        sent, got = self.bytes_total
        logger.info("fastsio: %d bytes sent, %d bytes received", sent, got)

    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        sent, got = self.bytes_total
        data["fastsio_bytes"] = [sent - self.bytes_reported[0], got - self.bytes_reported[1]]
        self.bytes_reported = [sent, got]

    def _on_quitting(self, **_: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        global _worker
        if _worker is self:
            _worker = None

        async def close_all() -> None:
            # All at once: a disconnect can wait (up to request_timeout) for a stuck link's
            # write buffer, and one user's stuck link must not hold up the others' closes.
            await asyncio.gather(
                *(c.disconnect() for c in list(self.clients)), return_exceptions=True
            )
            self.loop.stop()

        try:
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(close_all()))
        except RuntimeError:
            pass  # already closed


def _log_bulk(stats: Any, method: str, name: str, n: int) -> None:
    """Log ``n`` requests with response time None at once (Locust's StatsEntry.log, n times)."""
    now = time.time()
    t = int(now)
    for entry in (stats.get(name, method), stats.total):
        if (
            entry.use_response_times_cache
            and entry.last_request_timestamp
            and t > int(entry.last_request_timestamp)
        ):
            entry._cache_response_times(t - 1)
        entry.num_requests += n
        entry.num_none_requests += n
        entry.num_reqs_per_sec[t] += n
        entry.last_request_timestamp = now


_worker: WorkerLoop | None = None


def worker_loop(environment: Environment) -> WorkerLoop:
    global _worker
    if _worker is None or _worker.pid != os.getpid():
        # New process (or a fork of one that had a loop thread, which the child does not have).
        _worker = WorkerLoop(environment)
    return _worker


def _sum_worker_bytes(client_id: str, data: dict[str, Any], **_: Any) -> None:  # master
    got = data.get("fastsio_bytes")
    if got:
        _master_bytes[0] += got[0]
        _master_bytes[1] += got[1]


def _log_master_bytes(**_: Any) -> None:
    if _master_bytes != [0, 0]:
        logger.info("fastsio: %d bytes sent, %d bytes received by all workers", *_master_bytes)


_master_bytes = [0, 0]
# The master runs no user, so it never builds a WorkerLoop: listen from the start.
locust_events.worker_report.add_listener(_sum_worker_bytes)
locust_events.quitting.add_listener(_log_master_bytes)


def bytes_totals(environment: Environment | None = None) -> dict[str, int]:
    """Bytes sent and received by every FastsioUser: this process's, or on a master its workers'."""
    if _master_bytes != [0, 0]:
        return {"sent": _master_bytes[0], "received": _master_bytes[1]}
    sent, got = _worker.bytes_total if _worker is not None else (0, 0)
    return {"sent": sent, "received": got}


@dataclass(slots=True, eq=False)
class CallOp:
    """One ``call()`` in flight: built on the user's greenlet, sent and timed on the loop thread,
    handed back through the hub bridge. One object per call: no closure, task or future.

    Its one outcome ``(error, ack args, seconds from send to ack)`` is set by the first of: the
    ack, the ack's timeout, the disconnection that fails it, or the send failing.
    """

    client: AsyncClient
    event: str
    data: Any
    namespace: str | None
    timeout: float
    post: Callable[[Callable[[Any], Any], Any], None]
    waiter: Any = None  # the parked greenlet's gevent Waiter, set by park()
    outcome: tuple[BaseException | None, tuple[Any, ...], float] | None = None
    abandoned: bool = False
    t0: float = 0.0

    def __call__(self) -> None:  # loop thread
        if self.abandoned:
            return  # its greenlet is gone (killed, timed out): never sent, never reported
        self.t0 = _perf_counter()
        try:
            self.client._emit(
                self.event, self.data, self.namespace, self.acked, self.timeout, False, None
            )
        except Exception as exc:
            self.acked(exc)

    def acked(self, err: BaseException | None, *args: Any) -> None:  # loop thread
        if self.outcome is None:
            self.outcome = (err, args, _perf_counter() - self.t0)
            self.post(_green.switch_op, self)
