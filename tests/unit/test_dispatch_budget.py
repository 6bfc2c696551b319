"""Fairness and backpressure in the compiled listener: frames of one read are held, not
dispatched, once the time slice is used up or the client holds; release() delivers them in
order. Driven frame by frame through EngineListener.on_ws_frame, as picows calls it."""

from __future__ import annotations

import time
from typing import Any

from picows import WSMsgType
from picows.picows import _make_test_ws_frame
from support.core_fakes import CoreRecorder

from fastsio._ext import _core


def setup(handler: Any, budget: float) -> tuple[Any, Any, CoreRecorder]:
    # Only the core's own inline dispatch is under test: nothing may reach the client.
    rec = CoreRecorder(fail_on=("on_event", "on_control_packet", "on_unknown_ack"))
    conn = _core.Dispatcher(rec, rec)
    conn.dispatch_budget = budget
    slot = _core.NamespaceSlot("/")
    slot.fast["tick"] = handler
    conn.slots["/"] = slot
    listener = _core.EngineListener(conn, rec)
    return conn, listener, rec


def frames(n: int) -> list[Any]:
    # picows's test frames each count as a whole read (last_in_buffer); a long run of frames
    # dispatched in one go is made by holding them and releasing them together.
    return [_make_test_ws_frame(WSMsgType.TEXT, b'42["tick",%d]' % i, True, False)
            for i in range(n)]


def hold_frames(conn: Any, listener: Any, n: int) -> None:
    """``n`` tick frames read while the dispatcher holds them (as one long read)."""
    conn.hold()
    for f in frames(n):
        listener.on_ws_frame(None, f)


def slow_tick(seen: list[int]) -> Any:
    """A tick handler that records the tick, then sleeps 0.5 ms."""

    def tick(n: int) -> None:
        seen.append(n)
        time.sleep(0.0005)

    return tick


def test_slow_handler_yields_and_the_rest_is_held_then_released_in_order() -> None:
    seen: list[int] = []
    tick = slow_tick(seen)
    conn, listener, rec = setup(tick, budget=0.005)
    hold_frames(conn, listener, 300)
    assert conn.held == 300 and seen == []
    assert conn.release() is False  # the slice ran out: the loop gets a turn
    assert rec.yields == 1 and not rec.handler_errors and not rec.listener_errors
    assert 0 < len(seen) < 300 and conn.held == 300 - len(seen)
    while not conn.release():
        conn.new_slice()
    assert seen == list(range(300)) and conn.held == 0


def test_without_a_budget_one_read_is_dispatched_at_once() -> None:
    seen: list[int] = []
    tick = slow_tick(seen)
    conn, listener, rec = setup(tick, budget=0.0)
    hold_frames(conn, listener, 300)
    assert conn.release() is True
    assert rec.yields == 0 and conn.held == 0 and seen == list(range(300))


def test_hold_keeps_frames_until_release() -> None:
    seen: list[int] = []
    conn, listener, rec = setup(seen.append, budget=0.0)
    fs = frames(10)
    for f in fs[:3]:
        listener.on_ws_frame(None, f)
    conn.hold()
    for f in fs[3:]:
        listener.on_ws_frame(None, f)
    assert seen == [0, 1, 2] and conn.held == 7
    assert conn.release() is True
    assert seen == list(range(10)) and conn.held == 0


def test_protocol_error_in_held_frames_surfaces_from_release() -> None:
    import pytest

    from fastsio.exceptions import ProtocolError

    seen: list[int] = []
    conn, listener, rec = setup(seen.append, budget=0.0)
    conn.hold()
    listener.on_ws_frame(None, _make_test_ws_frame(WSMsgType.TEXT, b'42["tick",1]', True, False))
    listener.on_ws_frame(None, _make_test_ws_frame(WSMsgType.TEXT, b"42[oops", True, False))
    with pytest.raises(ProtocolError):
        conn.release()
    assert seen == [1]
