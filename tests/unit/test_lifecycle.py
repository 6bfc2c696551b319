"""The namespace life cycle (fastsio.lifecycle.NamespaceLifecycle) alone, without a network.

Its collaborators are fakes of the callables it is handed: a core that records the packets
it is asked to send, an outbox that records what it is told, a session object.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import fastsio
from fastsio._ext import _core
from fastsio.lifecycle import NamespaceLifecycle


class FakeCore:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.slots: dict[str, Any] = {}
        self.engine: Any = None
        self.eio3 = False
        self.emit_gate: set[str] = set()

    def send_packet(self, ptype: int, nsp: str, data: Any = None, ack_id: Any = None) -> None:
        self.sent.append((ptype, nsp, data))

    def set_engine(self, engine: Any) -> None:
        self.engine = engine


class FakeOutbox:
    def __init__(self) -> None:
        self.final = False
        self.calls: list[tuple[Any, ...]] = []

    def flush(self, nsp: str) -> None:
        self.calls.append(("flush", nsp))

    def drain(self) -> None:
        self.calls.append(("drain",))

    def drop(self, nsp: str | None, reason: str) -> None:
        self.calls.append(("drop", nsp, reason))

    def link_lost(self, reason: str, nsp: str | None = None) -> None:
        self.calls.append(("link_lost", reason, nsp))


class FakeSession:
    version = 4

    def __init__(self, sid: str = "EIO-SID") -> None:
        self.sid = sid
        self.closed = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def _fail(self, reason: str, exc: BaseException | None) -> None:
        raise AssertionError("not expected")

    async def close(self) -> None:
        self.closed = True


class Rig:
    def __init__(self, *namespaces: str) -> None:
        self.core = FakeCore()
        self.outbox = FakeOutbox()
        self.events: list[tuple[Any, ...]] = []
        self.spawned: list[Any] = []
        self.ended = 0
        self.life = NamespaceLifecycle(
            self.core,  # type: ignore[arg-type]
            self.outbox,  # type: ignore[arg-type]
            logging.getLogger("test.lifecycle"),
            lambda event, nsp, *args: self.events.append((event, nsp, *args)),
            self.spawned.append,
            lambda: False,
            self._ended,
        )
        for nsp in namespaces:
            self.core.slots[nsp] = _core.NamespaceSlot(nsp)
        self.life.start(list(namespaces))

    def _ended(self) -> None:
        self.ended += 1

    def attempt(self, wait: bool = True, auth: Any = None) -> FakeSession:
        eio = FakeSession()
        self.life.begin_attempt(wait)
        self.life.use(eio, 4)  # type: ignore[arg-type]
        self.life.opened(eio)  # type: ignore[arg-type]
        self.life.send_connects(auth)
        return eio


def test_a_session_is_kept_only_once_every_namespace_is_accepted() -> None:
    rig = Rig("/", "/chat")
    rig.attempt()
    assert [(t, nsp) for t, nsp, _ in rig.core.sent] == [
        (_core.CONNECT, "/"),
        (_core.CONNECT, "/chat"),
    ]
    rig.life.handle_connect("/", {"sid": "a"})
    assert not rig.life.connected and rig.events == [] and rig.outbox.calls == []
    rig.life.handle_connect("/chat", {"sid": "b"})
    assert rig.life.connected
    assert rig.life.namespaces == {"/": "a", "/chat": "b"}
    # Per namespace its buffer is flushed before `connect` fires.
    assert rig.outbox.calls == [("flush", "/"), ("flush", "/chat"), ("drain",)]
    assert rig.events == [("connect", "/"), ("connect", "/chat")]


def test_with_wait_false_each_namespace_is_kept_as_it_is_accepted() -> None:
    rig = Rig("/", "/chat")
    rig.attempt(wait=False)
    rig.life.handle_connect("/", {"sid": "a"})
    assert rig.events == [("connect", "/")]
    assert rig.life.namespaces == {"/": "a"}


def test_a_reconnection_sends_the_pid_and_offset_and_reports_recovery() -> None:
    rig = Rig("/")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "a", "pid": "P1"})
    assert rig.life.recovered_namespaces["/"] is False
    slot = rig.core.slots["/"]
    assert slot.record_offset
    slot.offset = "offset-7"
    assert rig.life.end_session("transport close") == ["/"]
    assert ("disconnect", "/", "transport close") in rig.events
    rig.core.sent.clear()
    rig.attempt(auth={"token": "t"})
    assert rig.core.sent == [
        (_core.CONNECT, "/", {"pid": "P1", "offset": "offset-7", "token": "t"})
    ]
    rig.life.handle_connect("/", {"sid": "b", "pid": "P1"})
    assert rig.life.recovered_namespaces["/"] is True


def test_a_connect_without_a_pid_forgets_the_offset() -> None:
    rig = Rig("/")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "a", "pid": "P1"})
    rig.core.slots["/"].offset = "offset-7"
    rig.life.end_session("transport close")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "b"})
    assert rig.life.pids == {}
    assert rig.core.slots["/"].offset is None and not rig.core.slots["/"].record_offset


def test_a_refusal_on_a_kept_session_forgets_the_namespace_and_its_packets() -> None:
    rig = Rig("/", "/chat")
    rig.attempt(wait=False)
    rig.life.handle_connect("/", {"sid": "a"})
    rig.life.handle_connect_error("/chat", {"message": "not allowed"})
    assert ("connect_error", "/chat", {"message": "not allowed"}) in rig.events
    assert rig.life.failed_namespaces == ["/chat"]
    assert rig.life.connection_namespaces == ["/"]
    assert ("drop", "/chat", "namespace refused") in rig.outbox.calls


async def test_the_server_closing_the_last_namespace_is_final() -> None:
    rig = Rig("/")
    eio = rig.attempt()
    rig.life.handle_connect("/", {"sid": "a"})
    rig.life.handle_server_disconnect("/")
    assert rig.events[-2:] == [
        ("disconnect", "/", "io server disconnect"),
        ("__disconnect_final", "/"),
    ]
    assert rig.life.final and rig.outbox.final
    assert rig.life.stopped is not None and rig.life.stopped.is_set()
    assert not rig.life.connected and rig.life.connection_namespaces == []
    assert len(rig.spawned) == 1  # the session's close, in the background
    await rig.spawned[0]
    assert eio.closed


def test_a_kept_session_ending_tells_the_handlers_before_the_disconnects() -> None:
    rig = Rig("/")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "a"})
    assert rig.life.engine_lost("transport close") == ["/"]
    assert rig.ended == 1
    assert rig.life.eio is None and rig.core.engine is None


def test_a_session_lost_while_connecting_is_no_disconnection() -> None:
    rig = Rig("/")
    rig.attempt()
    assert rig.life.engine_lost("transport close") is None
    assert rig.events == [] and rig.ended == 0
    assert ("link_lost", "transport close", None) in rig.outbox.calls


@pytest.mark.parametrize("nsp", ["/", "/other"])
def test_an_ack_is_not_sent_to_a_namespace_that_is_not_connected(nsp: str) -> None:
    rig = Rig("/")
    rig.attempt()
    rig.core.sent.clear()
    rig.life.send_ack(nsp, 3, "x")
    assert rig.core.sent == []


def test_an_ack_goes_back_on_the_session_that_asked_only() -> None:
    rig = Rig("/")
    first = rig.attempt()
    rig.life.handle_connect("/", {"sid": "a"})
    rig.core.sent.clear()
    rig.life.send_ack("/", 3, ("x", 1), first)
    assert rig.core.sent == [(_core.ACK, "/", ["x", 1])]
    rig.life.end_session("transport close")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "b"})
    rig.core.sent.clear()
    rig.life.send_ack("/", 4, "late", first)
    assert rig.core.sent == []


async def test_a_2x_server_shown_before_connect_without_wait_returns_is_a_version_error() -> None:
    # The 2.x server's own CONNECT of "/" arrived in the open packet's read (before the
    # session was set up): connect(wait=False) must not keep a session it has paused.
    rig = Rig("/chat")
    eio = FakeSession()
    rig.life.begin_attempt(False)
    rig.life.use(eio, 4)  # type: ignore[arg-type]
    rig.life.handle_connect("/", None)  # early, unasked, no sid payload
    rig.life.opened(eio)  # type: ignore[arg-type]
    rig.life.send_connects(None)
    with pytest.raises(fastsio.exceptions.ProtocolVersionError) as info:
        await rig.life.wait_kept(eio, False, 1.0)  # type: ignore[arg-type]
    assert info.value.server_version == 3
    assert eio.closed and rig.life.established is not eio and not rig.life.connected


def test_a_new_or_lost_session_and_a_closed_namespace_close_the_emit_gate() -> None:
    rig = Rig("/", "/chat")
    rig.attempt()
    rig.life.handle_connect("/", {"sid": "a"})
    rig.life.handle_connect("/chat", {"sid": "b"})
    gate = rig.core.emit_gate
    gate.update({"/", "/chat"})
    rig.life.handle_server_disconnect("/chat")
    assert gate == {"/"}
    gate.add("/chat")
    rig.life.end_session("transport close")
    assert gate == set()
    gate.add("/")
    rig.attempt()
    assert gate == set()
