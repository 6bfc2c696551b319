"""How the session hears its transports (TransportHooks): a loss or an error of the link it
reads from ends the session once, with the transport's reason; what a link it gave up (or a
probe of the upgrade) reports does not touch it; teardown aborts the link and waits for it."""

from __future__ import annotations

import asyncio
import logging

from fastsio._ext import _core
from fastsio.engine import EngineIO
from fastsio.exceptions import ProtocolError
from fastsio.reasons import Reason


class FakeTransport:
    """A Transport that records what the session asks of it."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def attach(self) -> None:
        self.calls.append("attach")

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    async def close(self, timeout: float) -> None:
        self.calls.append("close")

    def abort(self) -> None:
        self.calls.append("abort")

    async def wait_closed(self) -> None:
        self.calls.append("wait_closed")


def connected_engine() -> tuple[EngineIO, FakeTransport, list[str]]:
    lost: list[str] = []
    eio = EngineIO(_core.Dispatcher(), lost.append, logger=logging.getLogger("t"))
    link = FakeTransport()
    eio._transport = link
    eio.state = "connected"
    return eio, link, lost


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_loss_of_the_current_link_ends_the_session_with_its_reason() -> None:
    eio, link, lost = connected_engine()
    eio.on_transport_closed(link, Reason.TRANSPORT_ERROR, ConnectionError("HTTP 500"))
    eio.on_transport_closed(link, Reason.TRANSPORT_CLOSE, None)  # reported once only
    await settle()
    assert lost == [Reason.TRANSPORT_ERROR]
    assert eio.state == "closed"
    assert link.calls == ["abort", "wait_closed"]


async def test_a_read_error_of_the_current_link_is_a_parse_error() -> None:
    eio, link, lost = connected_engine()
    eio.on_transport_error(link, ProtocolError("bad frame", b"x"))
    await settle()
    assert lost == [Reason.PARSE_ERROR]


async def test_what_a_link_given_up_reports_does_not_touch_the_session() -> None:
    eio, link, lost = connected_engine()
    old = FakeTransport()
    eio.on_transport_closed(old, Reason.TRANSPORT_CLOSE, None)
    eio.on_transport_error(old, ProtocolError("bad frame", b"x"))
    await settle()
    assert lost == [] and eio.state == "connected"
    assert old.calls == ["abort"]  # the erring link is dropped
    assert link.calls == []


async def test_close_closes_the_link_gracefully_then_tears_it_down() -> None:
    eio, link, lost = connected_engine()
    await eio.close()
    assert link.calls == ["close", "abort", "wait_closed"]
    assert lost == []


async def test_backpressure_pauses_and_resumes_the_link() -> None:
    eio, link, _ = connected_engine()
    eio.pause_reading()
    eio.resume_reading()
    assert link.calls == ["pause_reading", "resume_reading"]
