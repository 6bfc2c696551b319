"""The outgoing packet life cycle (fastsio.delivery.Outbox) on a real core Dispatcher.

States: buffered -> sent -> acked/failed, one outcome each, nothing written after a failure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from fastsio import exceptions
from fastsio._ext import _core
from fastsio.delivery import Outbox


class Link:
    """A Dispatcher whose transport is a list (or nothing, while 'down')."""

    def __init__(self, **outbox: Any) -> None:
        self.conn = _core.Dispatcher()
        self.sent: list[bytes] = []
        self.up = False
        self.writable_nsps: set[str] = set()
        self.invoked: list[tuple[Any, ...]] = []
        self.outbox = Outbox(
            self.conn,
            logging.getLogger("test.outbox"),
            lambda nsp: self.up and nsp in self.writable_nsps,
            lambda h, args, event, nsp: h(*args),
            **outbox,
        )

    def connect(self, *nsps: str) -> None:
        self.up = True
        self.writable_nsps = set(nsps) or {"/"}
        self.conn.poll_sender = lambda data, binary: self.sent.append(data)

    def drop(self) -> None:
        self.up = False
        self.conn.poll_sender = None

    def events(self) -> list[str]:
        return [d.decode() for d in self.sent]


async def test_emits_while_down_are_buffered_and_flushed_in_order() -> None:
    link = Link()
    for n in range(3):
        link.outbox.emit("/", ["ev", n], None, None, None, False, True)
    assert link.outbox.buffered == 3 and link.sent == []
    link.connect()
    link.outbox.flush("/")
    assert link.events() == ['42["ev",0]', '42["ev",1]', '42["ev",2]']
    assert link.outbox.buffered == 0


async def test_timeout_takes_a_buffered_packet_out_before_the_caller_is_told() -> None:
    link = Link()
    seen: list[Any] = []

    def cb(err: BaseException | None, *args: Any) -> None:
        seen.append((type(err).__name__, link.outbox.buffered))

    link.outbox.emit("/", ["ev", 1], cb, None, 0.01, False, True)
    await asyncio.sleep(0.05)
    assert seen == [("TimeoutError", 0)]  # already out of the buffer when told
    link.connect()
    link.outbox.flush("/")
    assert link.sent == []  # never written after its failure


async def test_link_loss_fails_written_packets_only() -> None:
    link = Link()
    link.connect()
    outcomes: list[Any] = []
    link.outbox.emit("/", ["sent"], lambda e, *a: outcomes.append(("sent", e)), None, 5, False, True)
    link.drop()
    link.outbox.emit("/", ["held"], lambda e, *a: outcomes.append(("held", e)), None, 5, False, True)
    link.outbox.link_lost("transport close")
    assert [name for name, _ in outcomes] == ["sent"]
    assert isinstance(outcomes[0][1], exceptions.DisconnectedError)
    # The server cannot ack a packet it never received: an ACK for its id is ignored.
    held_id = next(iter(link.outbox._by_ack))
    assert not link.conn.acks.resolve("/", held_id, ["forged"])
    link.connect()
    link.outbox.flush("/")
    assert link.events()[-1].startswith('42') and '"held"' in link.events()[-1]
    assert link.conn.acks.resolve("/", held_id, [])
    assert [name for name, _ in outcomes] == ["sent", "held"] and outcomes[1][1] is None
    link.outbox.drop(None, "end")


async def test_an_emit_from_a_failure_callback_during_flush_is_not_stranded() -> None:
    link = Link()
    link.outbox.emit(
        "/",
        ["big", "x" * 2000],
        lambda err, *a: link.outbox.emit("/", ["after"], None, None, None, False, True),
        None,
        5,
        False,
        True,
    )
    link.outbox.emit("/", ["next"], None, None, None, False, True)
    link.connect()
    link.conn.max_send_size = 1024  # the new session's maxPayload is smaller
    link.outbox.flush("/")
    assert link.events() == ['42["next"]', '42["after"]']
    assert link.outbox.buffered == 0


async def test_drop_fails_buffered_acks_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    link = Link()
    outcomes: list[Any] = []
    fut = asyncio.get_running_loop().create_future()
    link.outbox.emit("/a", ["x"], lambda e, *a: outcomes.append(e), None, 5, False, True)
    link.outbox.emit("/b", ["y"], None, fut, 5, False, True)
    link.outbox.drop("/a", "io server disconnect")
    assert isinstance(outcomes[0], exceptions.DisconnectedError) and not fut.done()
    assert link.outbox.buffered == 1 and "Discarding 1 buffered" in caplog.text
    link.outbox.drop(None, "io client disconnect")
    assert isinstance(fut.exception(), exceptions.DisconnectedError)


async def test_buffer_policies() -> None:
    for policy, expected in (("drop_oldest", [1, 2]), ("drop_newest", [0, 1])):
        link = Link(max_buffer=2, buffer_policy=policy)
        failed: list[int] = []
        for n in range(3):
            link.outbox.emit(
                "/", ["ev", n], lambda e, *a, n=n, failed=failed: failed.append(n), None, 5, False, True
            )
        link.connect()
        link.outbox.flush("/")
        assert [int(e.split(",")[1].rstrip("]")) for e in link.events()] == expected
        assert len(failed) == 1
        link.outbox.drop(None, "end")
    link = Link(max_buffer=1)
    link.outbox.emit("/", ["ev"], None, None, None, False, True)
    with pytest.raises(exceptions.BufferFullError):
        link.outbox.emit("/", ["ev"], None, None, None, False, True)


async def test_not_bufferable_raises_and_volatile_is_dropped() -> None:
    link = Link()
    with pytest.raises(exceptions.BadNamespaceError):
        link.outbox.emit("/", ["ev"], None, None, None, False, False)
    link.outbox.emit("/", ["ev"], None, None, None, True, True)
    assert link.outbox.buffered == 0 and len(link.conn.acks) == 0


async def test_newer_emits_queue_behind_buffered_ones_of_their_namespace() -> None:
    link = Link()
    link.outbox.emit("/", ["old"], None, None, None, False, True)
    link.connect()  # writable, but "old" is not flushed yet
    link.outbox.emit("/", ["new"], None, None, None, False, True)
    assert link.sent == []
    link.outbox.flush("/")
    assert link.events() == ['42["old"]', '42["new"]']


# -- emit()'s gate (Dispatcher.emit_gate) ----------------------------------------------------


def test_the_emit_gate_opens_only_for_a_writable_namespace_with_nothing_buffered() -> None:
    link = Link()
    link.outbox.open_gate("/")
    assert link.conn.emit_gate == set()  # not connected
    link.outbox.emit("/", ["ev", 0], None, None, None, False, True)  # buffered
    link.connect()
    link.outbox.open_gate("/")
    assert link.conn.emit_gate == set()  # a packet is still buffered before it
    link.outbox.flush("/")
    link.outbox.open_gate("/")
    link.outbox.open_gate("/other")
    assert link.conn.emit_gate == {"/"}


def test_the_emit_gate_stays_closed_with_retries() -> None:
    link = Link(retries=1, ack_timeout=5)
    link.connect()
    link.outbox.open_gate("/")
    assert link.conn.emit_gate == set()


async def test_buffering_a_packet_closes_the_emit_gate_so_later_emits_queue_behind_it() -> None:
    link = Link()
    link.connect("/", "/chat")
    link.outbox.open_gate("/")
    link.outbox.open_gate("/chat")
    link.drop()  # the link went down under the outbox: the next emit is buffered
    link.up = True  # ... while the namespace still looks writable
    link.outbox.emit("/", ["ev", 0], None, None, None, False, True)
    assert link.outbox.buffered == 1
    assert link.conn.emit_gate == {"/chat"}
    # The direct path now declines "/": emit() takes the full path, behind the buffer.
    assert link.conn.emit_direct("/", "ev", 1) == 0
    assert link.conn.emit_direct("/chat", "ev", 1) == 0  # no transport: not sent either


def test_emit_direct_sends_only_through_an_open_gate() -> None:
    link = Link()
    link.connect("/", "/chat")
    conn = link.conn
    assert conn.emit_direct(None, "tick", {"a": 1}) == 0  # gate closed: nothing sent
    assert link.sent == []
    conn.emit_gate.update({"/", "/chat"})
    assert conn.emit_direct(None, "tick", {"a": 1}) == 1
    assert conn.emit_direct("", "tick", (1, 2)) == 1
    assert conn.emit_direct("/chat", "tick", None) == 1
    assert conn.emit_direct("/chat", 7, "x") == 0  # not a str event: the full path decides
    assert conn.emit_direct(b"/", "tick", "x") == 0
    assert link.events() == ['42["tick",{"a":1}]', '42["tick",1,2]', '42/chat,["tick"]']


def test_a_volatile_emit_the_link_refuses_is_dropped_not_buffered() -> None:
    # The link went down under the outbox (the session has not ended yet): a volatile emit
    # is dropped as it is while disconnected, never sent after the reconnection.
    link = Link()
    link.connect()
    link.drop()
    link.up = True  # the namespace still looks writable
    assert link.outbox.emit("/", ["tick", 1], None, None, None, True, True) is None
    assert link.outbox.buffered == 0
    link.connect()
    link.outbox.flush("/")
    assert link.sent == []


def test_the_emit_gate_stays_closed_while_the_link_is_gone() -> None:
    link = Link()
    link.connect()
    link.drop()
    link.up = True  # the session has not ended yet: the namespace still looks writable
    link.outbox.emit("/", ["tick", 1], None, None, None, True, True)
    link.outbox.open_gate("/")
    assert link.conn.emit_gate == set()
