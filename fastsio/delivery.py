"""The outgoing packet life cycle: every emit reaches exactly one outcome, reported once.

A packet is in one of these states::

    BUFFERED --flush--> SENT --ack--> ACKED
       |                  |----timeout / link lost--> FAILED
       |--timeout / drop / end of the client--> FAILED (never written afterwards)

- BUFFERED: in the offline buffer, written to no link yet. Its ack entry (if it has one) is
  marked ``queued``: losing a link does not fail it (the server never saw it) and an ACK from
  the server cannot resolve it; a timeout takes the packet out of the buffer before the caller
  is told.
- SENT: handed to the transport. An ack-less packet is done here; an ack waits in the core's
  AckTable, which guarantees one outcome (resolved, timed out, or failed on loss).
- With ``retries`` (at-least-once, like socket.io-client), packets wait in a queue instead, one
  in flight at a time, resent on ack timeout and after a reconnection until acked or out of
  tries.

Also here: ``call`` (emit, then wait for the ack), what the ack table reports about callbacks
(an ack callback that raised, an ack that will never come, an ack for no packet), and the
argument conventions of python-socketio (``args_of``, ``ack_result``).

This module knows the transport only through ``Dispatcher.send_packet`` and the namespaces
only through the ``writable`` predicate the client hands it; it never fires client events.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import logging
from collections.abc import Callable
from typing import Any

from . import exceptions
from ._ext._core import EVENT, AckTable, Dispatcher, PendingAck

Handler = Callable[..., Any]

BUFFER_POLICIES = ("error", "drop_oldest", "drop_newest")


def args_of(data: Any) -> list[Any]:
    """The arguments of an emit or an ack: python-socketio's rule is that a tuple is several
    arguments, None is none, anything else is one."""
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def ack_result(args: tuple[Any, ...]) -> Any:
    """What ``call()`` returns for an ack's arguments: one value, a tuple of several, or None."""
    if len(args) > 1:
        return args
    if len(args) == 1:
        return args[0]
    return None


class _Buffered:
    # Encoded when buffered: what is sent is what the caller passed at emit time, even if
    # the caller mutates its objects afterwards, and an unencodable argument fails the emit.
    __slots__ = ("nsp", "event", "frames", "ack_id")

    def __init__(
        self, nsp: str, event: Any, frames: list[tuple[bytes, bool]], ack_id: int | None
    ) -> None:
        self.nsp = nsp
        self.event = event
        self.frames = frames
        self.ack_id = ack_id


class _Queued:
    __slots__ = ("nsp", "payload", "callback", "future", "tries", "pending")

    def __init__(
        self,
        nsp: str,
        payload: list[Any],
        callback: Handler | None,
        future: asyncio.Future[Any] | None,
    ) -> None:
        self.nsp = nsp
        self.payload = payload
        self.callback = callback
        self.future = future
        self.tries = 0
        self.pending = False


class Outbox:
    """Owns every outgoing EVENT from ``emit``/``call`` to its one outcome.

    :param conn: the compiled core (encoding, the ack table and its deadlines).
    :param writable: ``writable(nsp)`` is true when the namespace is connected on a live
        session (packets may be written now).
    :param invoke: ``invoke(handler, args, event, nsp)`` runs a user callback the way handlers
        are run (sync or async, errors logged).
    """

    def __init__(
        self,
        conn: Dispatcher,
        logger: logging.Logger,
        writable: Callable[[str], bool],
        invoke: Callable[[Handler, tuple[Any, ...], str, str], None],
        *,
        max_buffer: int = 1000,
        buffer_policy: str = "error",
        retries: int = 0,
        ack_timeout: float | None = None,
    ) -> None:
        if buffer_policy not in BUFFER_POLICIES:
            raise ValueError("buffer_policy must be 'error', 'drop_oldest' or 'drop_newest'")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if retries and not ack_timeout:
            raise ValueError("retries needs an ack_timeout (seconds)")
        self.conn = conn
        self.acks: AckTable = conn.acks
        self.logger = logger
        self.writable = writable
        self.invoke = invoke
        self.max_buffer = max_buffer
        self.buffer_policy = buffer_policy
        self.retries = retries
        self.ack_timeout = ack_timeout
        #: True once the client is done for good (user disconnect, server kick, gave up):
        #: a lost at-least-once packet then fails instead of waiting for a reconnection.
        self.final = False
        self.loop: asyncio.AbstractEventLoop | None = None
        # The offline buffer, in emit order: insertion-ordered so that a packet leaving it
        # early (timeout) costs O(1), with its position by ack id and a count per namespace.
        self._buffer: dict[int, _Buffered] = {}
        self._seq = itertools.count()
        self._by_ack: dict[int, int] = {}
        #: namespace -> number of its packets in the buffer (only namespaces that have some)
        self.buffered_per_nsp: dict[str, int] = {}
        # At-least-once queues, one per namespace (one packet in flight in each), as
        # socket.io-client has one per socket.
        self._queues: dict[str, collections.deque[_Queued]] = {}
        self.acks.on_unsent_failed = self._on_unsent_failed
        self.acks.on_callback_error = self._on_callback_error
        self.acks.on_ack_lost = self._on_ack_lost

    # -- reports from the ack table ------------------------------------------------------

    def _on_callback_error(self, entry: PendingAck, exc: BaseException) -> None:
        self.logger.error("Ack callback for namespace %s raised", entry.nsp, exc_info=exc)

    def _on_ack_lost(self, entry: PendingAck, exc: BaseException) -> None:
        # Logged as an error: without a timeout the callback has no way to learn about it, and
        # nothing may vanish silently. emit(..., timeout=...) gets the error instead.
        self.logger.error(
            "Ack callback %r in namespace %s will not be called: %s", entry.callback, entry.nsp, exc
        )

    def unknown_ack(self, nsp: str, ack_id: int) -> None:
        """An ACK for no packet waiting for one (late after a timeout, or a confused server)."""
        self.logger.warning("Unknown ack id %s for namespace %s, ignored", ack_id, nsp)

    # -- counters ------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def has_buffered(self, nsp: str) -> bool:
        return nsp in self.buffered_per_nsp

    # -- emit ----------------------------------------------------------------------------

    def emit(
        self,
        nsp: str,
        payload: list[Any],
        callback: Handler | None,
        future: asyncio.Future[Any] | None,
        timeout: float | None,
        volatile: bool,
        bufferable: bool,
    ) -> int | None:
        """Send ``payload`` (``[event, *args]``) now, or buffer it, or raise.

        ``bufferable``: the client would send the packet later (reconnecting, or the opt-in to
        buffer while disconnected). Raises ``BadNamespaceError`` when the packet can be neither
        sent nor buffered, ``BufferFullError`` with the ``'error'`` policy. Returns the ack id
        (None without a callback or future, or with ``retries``).
        """
        if self.retries and not volatile:
            self._emit_reliable(nsp, payload, callback, future, bufferable)
            return None
        # Older buffered packets of the namespace go first (they are flushed before anything
        # new is written, so this only matters while a flush is under way).
        writable = self.writable(nsp) and nsp not in self.buffered_per_nsp
        if not writable:
            if volatile:
                self.logger.debug("Dropping volatile event %r: not connected", payload[0])
                return None
            if not bufferable or self.max_buffer <= 0:
                raise exceptions.BadNamespaceError(f"{nsp} is not a connected namespace.")
        ack_id = None
        if callback is not None or future is not None:
            ack_id = self.acks.add_new(
                nsp,
                callback,
                future,
                timeout is not None and future is None,
                callback is not None and inspect.iscoroutinefunction(callback),
            )
            if timeout is not None:
                self.conn.deadlines.add(ack_id, timeout, payload[0], self._loop())
        try:
            if writable:
                try:
                    self.conn.send_packet(EVENT, nsp, payload, ack_id)
                    return ack_id
                except exceptions.DisconnectedError:
                    # The link went down under us; the client learns it in a moment.
                    if volatile:
                        # Dropped, as while disconnected: never sent after a reconnection.
                        self.logger.debug("Dropping volatile event %r: link lost", payload[0])
                        if ack_id is not None:
                            self.acks.pop(ack_id)
                        return None
                    if not bufferable or self.max_buffer <= 0:
                        raise
            frames = self.conn.encode(EVENT, nsp, payload, ack_id)
            self._buffer_packet(_Buffered(nsp, payload[0], frames, ack_id))
        except BaseException:
            if ack_id is not None:
                self.acks.pop(ack_id)
            raise
        return ack_id

    def open_gate(self, nsp: str) -> None:
        """Let the next ack-less emits of ``nsp`` go straight to the wire (the core's
        ``emit_gate``) if they would be written at once: connected, nothing buffered before
        them, no at-least-once queue. Whatever closes that path closes the gate."""
        if (
            not self.retries
            and nsp not in self.buffered_per_nsp
            and self.writable(nsp)
            and self.conn.has_transport  # not while a lost link's frames are drained
        ):
            self.conn.emit_gate.add(nsp)

    async def call(
        self, nsp: str, payload: list[Any], timeout: float | None, bufferable: bool
    ) -> tuple[Any, ...]:
        """Emit ``payload`` and wait for its ack; returns the ack's arguments.

        On a connected namespace with nothing buffered before it (and no ``retries``) the
        packet goes straight to the core's round-trip path; otherwise through ``emit``. A call
        cancelled while its packet is still buffered is never sent.
        """
        loop = self._loop()
        future: asyncio.Future[Any] = loop.create_future()
        ack_id = None
        if (
            type(payload[0]) is not str
            or not self.writable(nsp)
            or nsp in self.buffered_per_nsp
            or self.retries
            or not self.conn.send_call(nsp, payload, future, timeout, loop)
        ):
            ack_id = self.emit(nsp, payload, None, future, timeout, False, bufferable)
        try:
            return await future  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            if ack_id is not None:
                entry = self.acks.get(ack_id)
                if entry is not None and entry.queued:
                    self.acks.fail(ack_id, exceptions.DisconnectedError("call cancelled"))
            raise

    def _loop(self) -> asyncio.AbstractEventLoop:
        return self.loop or asyncio.get_running_loop()

    # -- offline buffer ------------------------------------------------------------------

    def _buffer_packet(self, item: _Buffered) -> None:
        if len(self._buffer) >= self.max_buffer:
            if self.buffer_policy == "error":
                raise exceptions.BufferFullError(f"offline buffer full ({self.max_buffer} packets)")
            if self.buffer_policy == "drop_newest":
                self.logger.warning("Offline buffer full: dropping event %r", item.event)
                if item.ack_id is not None:
                    self.acks.fail(item.ack_id, exceptions.BufferFullError("offline buffer full"))
                return
            old = self._take(next(iter(self._buffer)))
            # The new packet takes its place first, so that a callback emitting again from
            # the dropped packet's failure finds the buffer as full as it is.
            self._put(next(self._seq), item)
            self.logger.warning("Offline buffer full: dropping oldest event %r", old.event)
            if old.ack_id is not None:
                self.acks.fail(old.ack_id, exceptions.BufferFullError("offline buffer full"))
            return
        self._put(next(self._seq), item)

    def _put(self, seq: int, item: _Buffered, front: bool = False) -> None:
        # Later emits of the namespace must queue behind this one: close its direct path.
        self.conn.emit_gate.discard(item.nsp)
        if front:
            rest = self._buffer
            self._buffer = {seq: item}
            self._buffer.update(rest)
        else:
            self._buffer[seq] = item
        self.buffered_per_nsp[item.nsp] = self.buffered_per_nsp.get(item.nsp, 0) + 1
        if item.ack_id is not None:
            entry = self.acks.get(item.ack_id)
            if entry is not None:
                entry.queued = True
                entry.ack_id = item.ack_id
            self._by_ack[item.ack_id] = seq

    def _take(self, seq: int) -> _Buffered:
        item = self._buffer.pop(seq)
        left = self.buffered_per_nsp[item.nsp] - 1
        if left:
            self.buffered_per_nsp[item.nsp] = left
        else:
            del self.buffered_per_nsp[item.nsp]
        if item.ack_id is not None:
            self._by_ack.pop(item.ack_id, None)
            entry = self.acks.get(item.ack_id)
            if entry is not None:
                entry.queued = False
        return item

    def _on_unsent_failed(self, entry: PendingAck) -> None:
        # The core calls this before telling the caller: a packet reported failed (timeout,
        # drop) must never be written afterwards.
        seq = self._by_ack.get(entry.ack_id)
        if seq is not None:
            self._take(seq)

    def flush(self, nsp: str) -> None:
        """Write the buffered packets of a namespace that just connected, in emit order.

        Runs until none is left, including any buffered meanwhile by a callback that a failed
        packet's outcome ran (such an emit queues behind the older packets, never ahead).
        """
        while nsp in self.buffered_per_nsp:
            seq = next(s for s, item in self._buffer.items() if item.nsp == nsp)
            item = self._take(seq)
            if item.ack_id is not None and self.acks.get(item.ack_id) is None:
                continue  # its outcome is already decided (it failed): never written
            try:
                self.conn.send_frames(item.frames)
            except exceptions.DisconnectedError:
                # Lost again while flushing: put it back at the front of what is left.
                self._put(seq, item, front=True)
                return
            except exceptions.PayloadTooLargeError as exc:
                # Cannot be written on this session (a smaller maxPayload): its one outcome.
                self.logger.error("Buffered event %r cannot be sent: %s", item.event, exc)
                if item.ack_id is not None:
                    self.acks.fail(item.ack_id, exc)

    def drop(self, nsp: str | None, reason: str) -> None:
        """The buffered and queued packets of ``nsp`` (or all) will never be sent: fail them."""
        dropped = [s for s, item in self._buffer.items() if nsp is None or item.nsp == nsp]
        for seq in dropped:
            item = self._take(seq)
            if item.ack_id is not None:
                self.acks.fail(item.ack_id, exceptions.DisconnectedError(reason))
        if dropped:
            self.logger.warning("Discarding %d buffered packet(s): %s", len(dropped), reason)
        self._fail_queue(nsp, reason)

    # -- the link ------------------------------------------------------------------------

    def link_lost(self, reason: str, nsp: str | None = None) -> None:
        """Fail the acks of packets that were written (of ``nsp``, or all); buffered ones stay."""
        self.acks.fail_all(exceptions.DisconnectedError(reason), nsp)

    # -- at-least-once queues (retries) --------------------------------------------------

    def _emit_reliable(
        self,
        nsp: str,
        payload: list[Any],
        callback: Handler | None,
        future: asyncio.Future[Any] | None,
        bufferable: bool,
    ) -> None:
        if not self.writable(nsp) and not bufferable:
            raise exceptions.BadNamespaceError(f"{nsp} is not a connected namespace.")
        if self.max_buffer and self.queued >= self.max_buffer:
            raise exceptions.BufferFullError(f"retry queue full ({self.max_buffer} packets)")
        self.conn.encode(EVENT, nsp, payload, 0)  # an unencodable argument fails the emit
        self._queues.setdefault(nsp, collections.deque()).append(
            _Queued(nsp, payload, callback, future)
        )
        self.drain(nsp)

    def drain(self, nsp: str | None = None) -> None:
        """Send the head of each retry queue (of ``nsp``, or all) unless it is in flight.

        Never raises: it also runs from ack callbacks and from the namespace's connect.
        """
        for name in [nsp] if nsp is not None else list(self._queues):
            queue = self._queues.get(name)
            while queue:
                item = queue[0]
                if item.pending or not self.writable(name):
                    break
                if item.future is not None and item.future.done():
                    queue.popleft()  # a call cancelled while it waited
                    continue
                if self._send_reliable(item):
                    break
                queue.popleft()
            if queue is not None and not queue:
                del self._queues[name]

    def _send_reliable(self, item: _Queued) -> bool:
        """Write ``item`` with a fresh ack id; False when it failed for good (reported)."""
        item.pending = True
        item.tries += 1
        entry = PendingAck()
        entry.nsp = item.nsp
        entry.err_first = True
        entry.callback = lambda err, *args: self._on_reliable_ack(item, err, args)
        try:
            ack_id = self.acks.add(entry)
        except exceptions.BufferFullError as exc:
            item.pending = False
            self._report_reliable(item, exc, ())
            return False
        assert self.ack_timeout is not None
        self.conn.deadlines.add(ack_id, self.ack_timeout, item.payload[0], self._loop())
        try:
            self.conn.send_packet(EVENT, item.nsp, item.payload, ack_id)
        except exceptions.DisconnectedError:
            pass  # the ack fails with the connection; the packet is resent on reconnect
        except Exception as exc:  # e.g. larger than this session's maxPayload
            self.acks.pop(ack_id)
            item.pending = False
            self._report_reliable(item, exc, ())
            return False
        return True

    def _on_reliable_ack(
        self, item: _Queued, err: BaseException | None, args: tuple[Any, ...]
    ) -> None:
        queue = self._queues.get(item.nsp)
        if not queue or queue[0] is not item:
            return
        item.pending = False
        if err is None:
            queue.popleft()
            self._report_reliable(item, None, args)
        elif isinstance(err, exceptions.DisconnectedError) and not self.final:
            item.tries -= 1  # not the server's fault: resent as is once reconnected
            return
        elif item.tries > self.retries or self.final:
            queue.popleft()
            self._report_reliable(item, err, ())
        self.drain(item.nsp)

    def _report_reliable(
        self, item: _Queued, err: BaseException | None, args: tuple[Any, ...]
    ) -> None:
        if item.future is not None:
            if not item.future.done():
                if err is None:
                    item.future.set_result(args)
                else:
                    item.future.set_exception(err)
            return
        if item.callback is None:
            if err is not None:
                self.logger.warning("Event %r was not acknowledged: %s", item.payload[0], err)
            return
        self.invoke(item.callback, (err, *args), item.payload[0], item.nsp)

    def _fail_queue(self, nsp: str | None, reason: str) -> None:
        names = [nsp] if nsp is not None else list(self._queues)
        for name in names:
            queue = self._queues.pop(name, None)
            for item in queue or ():
                self._report_reliable(item, exceptions.DisconnectedError(reason), ())
