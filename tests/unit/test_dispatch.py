"""The compiled Dispatcher's receive and send paths, driven with a recording fake client.

Nothing here touches a socket: frames go in through feed_text/feed_binary (what the polling
transport and the picows listener call) and out through ``poll_sender``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest
from support.core_fakes import CoreRecorder

from fastsio._ext import _core
from fastsio._ext._core import ACK, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT
from fastsio.exceptions import (
    BufferFullError,
    DisconnectedError,
    PayloadTooLargeError,
    ProtocolError,
)


class Wire:
    """A Dispatcher with a fake client, a fake engine and a recording poll_sender."""

    def __init__(self, **kwargs) -> None:
        self.client = CoreRecorder()
        self.engine = CoreRecorder()
        self.sent: list[tuple[bytes, bool]] = []
        self.conn = _core.Dispatcher(self.client, self.engine, **kwargs)
        self.conn.poll_sender = lambda data, binary: self.sent.append((data, binary))

    def slot(self, nsp: str = "/", **fast) -> _core.NamespaceSlot:
        slot = self.conn.slots.get(nsp)
        if slot is None:
            slot = self.conn.slots[nsp] = _core.NamespaceSlot(nsp)
        slot.fast.update(fast)
        return slot


@pytest.fixture
def wire() -> Wire:
    return Wire()


def pending(nsp: str = "/", **fields) -> _core.PendingAck:
    entry = _core.PendingAck()
    entry.nsp = nsp
    for k, v in fields.items():
        setattr(entry, k, v)
    return entry


# --- Engine.IO packets ------------------------------------------------------------------------

def test_ping_is_answered_with_a_pong_through_the_poll_sender(wire):
    wire.conn.feed_text("2")
    wire.conn.feed_text(b"2")
    assert wire.sent == [(b"3", False), (b"3", False)]


def test_ping_payload_is_echoed(wire):
    wire.conn.feed_text("2probe")
    assert wire.sent == [(b"3probe", False)]


def test_ping_refreshes_the_heartbeat_clock(wire):
    wire.conn.touch_ping()
    time.sleep(0.02)
    assert wire.conn.ping_age() >= 0.015
    wire.conn.feed_text("2")
    assert wire.conn.ping_age() < 0.015


def test_ping_without_a_transport_is_not_answered_and_breaks_nothing():
    # A ping held back and dispatched after its link died (the drain before the close).
    conn = _core.Dispatcher(CoreRecorder())
    assert not conn.has_transport
    conn.feed_text("2")
    conn.feed_text("2probe")
    assert conn.packets_sent == 0


def test_open_close_noop_reach_the_engine(wire):
    wire.conn.feed_text('0{"sid":"abc","pingInterval":25000}')
    wire.conn.feed_text("6")
    wire.conn.feed_text("1")
    assert wire.engine.calls == [("on_eio_open", b'{"sid":"abc","pingInterval":25000}'),
                                 ("on_eio_noop",), ("on_eio_close",)]
    assert wire.client.events == wire.client.controls == []


def test_pong_and_upgrade_are_ignored(wire):
    wire.conn.feed_text("3")
    wire.conn.feed_text("3probe")
    wire.conn.feed_text("5")
    assert wire.sent == [] and wire.engine.calls == []


def test_engine_packets_without_an_engine_are_harmless():
    conn = _core.Dispatcher(CoreRecorder())
    for frame in ("0{}", "1", "6", "3", "5"):
        conn.feed_text(frame)


def test_unknown_engineio_type_is_a_protocol_error(wire):
    with pytest.raises(ProtocolError):
        wire.conn.feed_text("7")
    with pytest.raises(ProtocolError):
        wire.conn.feed_text("")


# --- events -----------------------------------------------------------------------------------

def test_event_without_a_slot_takes_the_slow_path(wire):
    wire.conn.feed_text('42["hello",1,{"a":[true,null]}]')
    assert wire.client.events == [("/", None, ["hello", 1, {"a": [True, None]}])]


@pytest.mark.parametrize(("frame", "args"), [
    ('42["ev"]', ()),
    ('42["ev",1]', (1,)),
    ('42["ev",1,"two"]', (1, "two")),
    ('42["ev",1,"two",[3]]', (1, "two", [3])),
    ('42["ev",null,null,null,null,null]', (None,) * 5),
])
def test_fast_handler_is_called_inline_with_the_arguments(wire, frame, args):
    got = []
    wire.slot(ev=lambda *a: got.append(a))
    wire.conn.feed_text(frame)
    assert got == [args]
    assert wire.client.events == []


@pytest.mark.parametrize(("frame", "args"), [
    ('42["ev", 1, {"a": [2, 3.5]}]', (1, {"a": [2, 3.5]})),  # python json.dumps spacing
    ('42["ev" ,\n1 ]', (1,)),
    ('42["e\\u0076",1]', None),                           # an escaped name: still "ev"
    ('42["ev","a\\nb\\u00e9\\ud83d\\ude00"]', ("a\nb\u00e9\U0001f600",)),
    ('42["ev","\\ud83d"]', ("\ud83d",)),                 # lone surrogate: the fallback decodes
    ('42["ev",123456789012345678901234]', (123456789012345678901234,)),
])
def test_fast_handler_with_unusual_json(wire, frame, args):
    got = []
    wire.slot(ev=lambda *a: got.append(a))
    wire.conn.feed_text(frame)
    assert got == [args if args is not None else (1,)]
    assert wire.client.events == []


@pytest.mark.parametrize("frame", [
    '42["ev",1', '42["ev",1]x', '42["ev",]', '42["ev" 1]', '42["ev",1,]', '42["ev",tru]',
    '42["ev",1]]', '42[true,2]', '42["ev\x01"]', '42["ev","\x01"]', '42[]', '42[ "ev"]x',
])
def test_malformed_events_for_a_fast_handler_are_protocol_errors(wire, frame):
    got = []
    wire.slot(ev=lambda *a: got.append(a))
    with pytest.raises(ProtocolError):
        wire.conn.feed_text(frame)
    assert got == [] and wire.client.events == []


def test_batch_handler_wins_over_a_plain_one_for_the_same_event(wire):
    batches, plain = [], []
    slot = wire.slot(tick=lambda *a: plain.append(a))
    slot.batch = {"tick": batches.append}
    wire.conn.feed_text('42["tick",1]')
    wire.conn.flush_batch()
    assert batches == [[1]] and plain == []


def test_fast_handler_only_for_its_namespace_and_event(wire):
    got = []
    wire.slot("/admin", ev=lambda *a: got.append(a))
    wire.conn.feed_text('42["ev",1]')            # namespace / has no slot
    wire.conn.feed_text('42/admin,["other",2]')  # no fast handler for "other"
    wire.conn.feed_text('42/admin,["ev",3]')
    assert got == [(3,)]
    assert wire.client.events == [("/", None, ["ev", 1]), ("/admin", None, ["other", 2])]


def test_event_with_an_ack_id_always_takes_the_slow_path(wire):
    got = []
    wire.slot(ev=lambda *a: got.append(a))
    wire.conn.feed_text('42/x,7["ev",1]')
    wire.conn.feed_text('4212["ev",1]')
    assert got == []
    assert wire.client.events == [("/x", 7, ["ev", 1]), ("/", 12, ["ev", 1])]


def test_fast_handler_exception_is_reported_and_dispatch_goes_on(wire):
    boom = ValueError("boom")
    got = []

    def bad(*args):
        raise boom

    wire.slot(bad=bad, ev=lambda *a: got.append(a))
    wire.conn.feed_text('42["bad",1]')
    wire.conn.feed_text('42["ev",2]')
    assert wire.client.handler_errors == [("bad", "/", boom)]
    assert got == [(2,)]


def test_events_are_delivered_in_order_across_paths(wire):
    wire.slot(fast=lambda *a: wire.client.calls.append(("fast", a)))
    for frame in ('42["fast",1]', '42["slow",2]', '42["fast",3]', '421["fast",4]'):
        wire.conn.feed_text(frame)
    assert wire.client.calls == [("fast", (1,)), ("on_event", "/", None, ["slow", 2]),
                                 ("fast", (3,)), ("on_event", "/", 1, ["fast", 4])]


def test_counters(wire):
    wire.conn.feed_text('42["a"]')
    wire.conn.feed_text("2")
    wire.conn.feed_text('40{"sid":"x"}')
    stats = wire.conn.stats()
    assert stats["events_received"] == 1
    assert stats["packets_received"] == 2          # Socket.IO messages
    assert stats["bytes_received"] == len('42["a"]') + 1 + len('40{"sid":"x"}')
    assert stats["packets_sent"] == 1 and stats["bytes_sent"] == 1  # the pong


# --- connection-state recovery: the offset at the end of each event ---------------------------

def test_offset_is_recorded_and_arguments_kept(wire):
    # socket.io-client's rule: the arguments are passed on untouched; the last string argument
    # of an ack-less event is remembered as the offset.
    got = []
    slot = wire.slot(ev=lambda *a: got.append(a))
    slot.record_offset = True
    wire.conn.feed_text('42["ev","payload","MzUPkW0"]')
    assert got == [("payload", "MzUPkW0")]
    assert slot.offset == "MzUPkW0"
    wire.conn.feed_text('42["ev","only"]')                      # fast path, one argument
    assert got[-1] == ("only",) and slot.offset == "only"
    wire.conn.feed_text('42["slow",{"k":1},"MzUPkW1"]')         # general path
    assert wire.client.events == [("/", None, ["slow", {"k": 1}, "MzUPkW1"])]
    assert slot.offset == "MzUPkW1"
    wire.conn.feed_text('42["ev",1]')                           # not a string: kept
    wire.conn.feed_text('427["ev","acked"]')                    # an ack id: never an offset
    assert slot.offset == "MzUPkW1"


def test_offset_is_recorded_on_msgpack_fast_path():
    w = Wire(msgpack_mode=True)
    got = []
    slot = w.slot(ev=lambda *a: got.append(a))
    slot.record_offset = True
    w.conn.feed_binary(msgpack.packb({"type": 2, "nsp": "/", "data": ["ev", 1, "off1"]}))
    assert got == [(1, "off1")] and slot.offset == "off1"


def offset_slot(wire: Any) -> tuple[Any, list[Any]]:
    """The "/" slot recording and stripping offsets, and what its ``ev`` handler receives."""
    got: list[Any] = []
    slot = wire.slot(ev=lambda *a: got.append(a))
    slot.record_offset = True
    slot.strip_offset = True
    return slot, got


def test_offset_is_stripped_and_recorded(wire):
    slot, got = offset_slot(wire)
    wire.conn.feed_text('42["ev","payload","MzUPkW0"]')
    assert got == [("payload",)]
    assert slot.offset == "MzUPkW0"
    wire.conn.feed_text('42["slow",{"k":1},"MzUPkW1"]')
    assert wire.client.events == [("/", None, ["slow", {"k": 1}])]
    assert slot.offset == "MzUPkW1"


def test_offset_rules(wire):
    slot, got = offset_slot(wire)
    slot.offset = "before"
    wire.conn.feed_text('42["ev"]')            # no arguments: nothing to strip
    wire.conn.feed_text('42["ev",1]')          # last argument is not a string
    wire.conn.feed_text('425["ev","x","o1"]')  # events with an ack id are never stored/offset
    assert got == [(), (1,)]
    assert wire.client.events == [("/", 5, ["ev", "x", "o1"])]
    assert slot.offset == "before"


def test_offset_only_where_recovery_was_offered(wire):
    got = []
    wire.slot(ev=lambda *a: got.append(a))               # record_offset defaults to False
    admin = wire.slot("/admin", ev=lambda *a: got.append(a))
    admin.record_offset = True
    admin.strip_offset = True
    wire.conn.feed_text('42["ev","a","b"]')
    wire.conn.feed_text('42/admin,["ev","a","b"]')
    assert got == [("a", "b"), ("a",)]
    assert admin.offset == "b" and wire.conn.slots["/"].offset is None


def test_offset_after_binary_reassembly(wire):
    slot, got = offset_slot(wire)
    wire.conn.feed_text('451-["ev",{"_placeholder":true,"num":0},"off9"]')
    wire.conn.feed_binary(b"\x01")
    assert got == [(b"\x01",)]
    assert slot.offset == "off9"


# --- binary packets ---------------------------------------------------------------------------

def test_binary_event_is_reassembled_across_frames(wire):
    got = []
    wire.slot(ev=lambda *a: got.append(a))
    wire.conn.feed_text('452-["ev",{"_placeholder":true,"num":1},{"k":{"_placeholder":true,'
                        '"num":0}}]')
    wire.conn.feed_binary(b"first")
    assert got == []
    wire.conn.feed_binary(bytearray(b"second"))
    assert got == [(b"second", {"k": b"first"})]
    # The stream is back to text: another binary frame has nothing to attach to.
    with pytest.raises(ProtocolError):
        wire.conn.feed_binary(b"extra")


def test_binary_event_with_ack_id_and_namespace(wire):
    wire.conn.feed_text('451-/admin,9["up",{"_placeholder":true,"num":0}]')
    wire.conn.feed_binary(b"")
    assert wire.client.events == [("/admin", 9, ["up", b""])]


def test_binary_ack_resolves_the_pending_ack(wire):
    got = []
    ack_id = wire.conn.acks.add(pending("/admin", callback=lambda *a: got.append(a)))
    wire.conn.feed_text(f'461-/admin,{ack_id}["ok",{{"_placeholder":true,"num":0}}]')
    assert got == []
    wire.conn.feed_binary(b"\xff")
    assert got == [("ok", b"\xff")]
    assert len(wire.conn.acks) == 0


def test_binary_frame_with_no_pending_packet(wire):
    with pytest.raises(ProtocolError):
        wire.conn.feed_binary(b"\x00")


def test_text_while_attachments_are_expected(wire):
    wire.conn.feed_text('452-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    wire.conn.feed_binary(b"a")
    with pytest.raises(ProtocolError):
        wire.conn.feed_text('42["next"]')
    assert wire.client.events == []
    # Engine.IO packets are not Socket.IO text: a ping in between is still answered.
    wire.conn.feed_text("2")
    assert wire.sent == [(b"3", False)]


def test_reset_stream_forgets_a_half_received_packet(wire):
    wire.conn.feed_text('451-["ev",{"_placeholder":true,"num":0}]')
    wire.conn.reset_stream()
    wire.conn.feed_text('42["next"]')
    assert wire.client.events == [("/", None, ["next"])]


def test_detach_transport_forgets_it_too(wire):
    wire.conn.feed_text('451-["ev",{"_placeholder":true,"num":0}]')
    wire.conn.detach_transport()
    assert not wire.conn.has_transport
    with pytest.raises(ProtocolError):
        wire.conn.feed_binary(b"late")


def test_attachment_limit_is_the_connections():
    w = Wire(max_attachments=2)
    w.conn.feed_text('462-1[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    w.conn.reset_stream()
    with pytest.raises(ProtocolError):
        w.conn.feed_text('463-1[]')


# --- acks -------------------------------------------------------------------------------------

def test_ack_ids_count_up_from_one(wire):
    assert [wire.conn.acks.add(pending()) for _ in range(3)] == [1, 2, 3]
    assert wire.conn.acks.ids() == [1, 2, 3]


def test_ack_table_resolve_directly():
    acks = _core.AckTable()
    got = []
    ack_id = acks.add(pending("/n", callback=lambda *a: got.append(a)))
    assert acks.get(ack_id).nsp == "/n"
    assert acks.resolve("/other", ack_id, [1]) is False
    assert acks.resolve("/n", ack_id + 1, [1]) is False
    assert acks.resolve("/n", ack_id, [1, 2]) is True
    assert got == [(1, 2)]
    assert acks.resolve("/n", ack_id, [1]) is False
    assert acks.get(ack_id) is None and len(acks) == 0


def test_ack_calls_the_callback_with_the_arguments(wire):
    got = []
    ack_id = wire.conn.acks.add(pending(callback=lambda *a: got.append(a)))
    wire.conn.feed_text(f'43{ack_id}["a",2,null]')
    assert got == [("a", 2, None)]
    assert len(wire.conn.acks) == 0
    # A second ACK for the same id is unknown now.
    wire.conn.feed_text(f'43{ack_id}[]')
    assert wire.client.unknown_acks == [("/", ack_id)]


def test_ack_resolves_a_future():
    async def main():
        w = Wire()
        fut = asyncio.get_running_loop().create_future()
        ack_id = w.conn.acks.add(pending("/x", future=fut))
        w.conn.feed_text(f'43/x,{ack_id}[1,"b"]')
        return await asyncio.wait_for(fut, 1)

    assert asyncio.run(main()) == (1, "b")


def test_ack_err_first_callback_gets_none_first(wire):
    got = []
    ack_id = wire.conn.acks.add(pending(callback=lambda *a: got.append(a), err_first=True))
    wire.conn.feed_text(f"43{ack_id}[7]")
    assert got == [(None, 7)]


def test_ack_cancels_its_timer(wire):
    class Timer:
        cancelled = False

        def cancel(self):
            self.cancelled = True

    timer = Timer()
    entry = pending(callback=lambda *a: None, timer=timer)
    ack_id = wire.conn.acks.add(entry)
    wire.conn.feed_text(f"43{ack_id}[]")
    assert timer.cancelled and entry.timer is None


def test_ack_for_another_namespace_is_unknown_and_stays_pending(wire):
    got = []
    ack_id = wire.conn.acks.add(pending("/a", callback=lambda *a: got.append(a)))
    wire.conn.feed_text(f'43/b,{ack_id}["x"]')
    assert wire.client.unknown_acks == [("/b", ack_id)]
    assert got == [] and wire.conn.acks.ids("/a") == [ack_id]
    wire.conn.feed_text(f'43/a,{ack_id}["x"]')
    assert got == [("x",)]


def test_unknown_ack_id(wire):
    wire.conn.feed_text('43999["x"]')
    assert wire.client.unknown_acks == [("/", 999)]


def test_fail_all_with_every_kind_of_waiter():
    async def main():
        w = Wire()
        acks = w.conn.acks
        lost, err_first = [], []
        acks.on_ack_lost = lambda entry, exc: lost.append((entry.nsp, exc))
        fut = asyncio.get_running_loop().create_future()
        acks.add(pending("/", future=fut))
        acks.add(pending("/", callback=lambda *a: err_first.append(a), err_first=True))
        acks.add(pending("/", callback=lambda *a: pytest.fail("a plain callback never fails")))
        other = acks.add(pending("/other", callback=lambda *a: None))
        exc = DisconnectedError("gone")
        acks.fail_all(exc, "/")
        assert acks.ids() == [other]
        with pytest.raises(DisconnectedError):
            await fut
        assert err_first == [(exc,)]
        assert lost == [("/", exc)]
        acks.fail_all(exc)
        assert len(acks) == 0

    asyncio.run(main())


def test_callback_errors_and_async_callbacks_go_to_their_hooks(wire):
    acks = wire.conn.acks
    errors, scheduled = [], []
    acks.on_callback_error = lambda entry, exc: errors.append(exc)
    acks.on_async_callback = scheduled.append
    boom = RuntimeError("cb")

    def bad(*args):
        raise boom

    a = acks.add(pending(callback=bad))
    b = acks.add(pending(callback=lambda *a: ("coroutine-ish", a), is_async=True))
    wire.conn.feed_text(f"43{a}[]")
    wire.conn.feed_text(f"43{b}[1]")
    assert errors == [boom]
    assert scheduled == [("coroutine-ish", (1,))]


def test_ack_table_limit(wire):
    wire.conn.acks.max_pending = 2
    wire.conn.acks.add(pending())
    wire.conn.acks.add(pending())
    with pytest.raises(BufferFullError):
        wire.conn.acks.add(pending())


# --- control packets --------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "expected"), [
    ('40{"sid":"abc"}', (CONNECT, "/", None, {"sid": "abc"})),
    ('40/admin,{"sid":"x","pid":"p"}', (CONNECT, "/admin", None, {"sid": "x", "pid": "p"})),
    ("41", (DISCONNECT, "/", None, None)),
    ("41/admin,", (DISCONNECT, "/admin", None, None)),
    ('44{"message":"Not authorized","data":{"code":3}}',
     (CONNECT_ERROR, "/", None, {"message": "Not authorized", "data": {"code": 3}})),
    ('44/x,"legacy string"', (CONNECT_ERROR, "/x", None, "legacy string")),
])
def test_control_packets_go_to_the_client(wire, frame, expected):
    wire.conn.feed_text(frame)
    (pkt,) = wire.client.controls
    assert (pkt.type, pkt.nsp, pkt.id, pkt.data) == expected
    assert pkt.attachments == 0
    assert wire.client.events == []


# --- batch handlers ---------------------------------------------------------------------------

def test_batch_handler_gets_consecutive_events_in_one_call(wire):
    batches = []
    slot = wire.slot()
    slot.batch = {"tick": batches.append}
    for frame in ('42["tick",1]', '42["tick"]', '42["tick",2,3]'):
        wire.conn.feed_text(frame)
    assert batches == []
    wire.conn.flush_batch()
    assert batches == [[1, None, (2, 3)]]
    wire.conn.flush_batch()
    assert batches == [[1, None, (2, 3)]]


def test_other_packets_flush_the_batch_first(wire):
    order = []
    slot = wire.slot(ev=lambda *a: order.append(("ev", a)))
    slot.batch = {"tick": lambda items: order.append(("batch", items))}
    wire.conn.feed_text('42["tick",1]')
    wire.conn.feed_text('42["ev",2]')
    wire.conn.feed_text('42["tick",3]')
    wire.conn.feed_text('40{"sid":"x"}')
    assert order == [("batch", [1]), ("ev", (2,)), ("batch", [3])]
    assert len(wire.client.controls) == 1


def test_batch_is_flushed_at_max_batch_and_errors_are_reported(wire):
    boom = ValueError("batch")
    calls = []

    def handler(items):
        calls.append(list(items))
        raise boom

    wire.slot().batch = {"tick": handler}
    wire.conn.max_batch = 2
    for i in range(5):
        wire.conn.feed_text(f'42["tick",{i}]')
    wire.conn.detach_transport()  # also flushes
    assert calls == [[0, 1], [2, 3], [4]]
    assert wire.client.handler_errors == [("tick", "/", boom)] * 3


# --- msgpack mode -----------------------------------------------------------------------------

def test_msgpack_mode_dispatch():
    w = Wire(msgpack_mode=True)
    got = []
    w.slot(ev=lambda *a: got.append(a))
    ack_got = []
    ack_id = w.conn.acks.add(pending("/", callback=lambda *a: ack_got.append(a)))
    w.conn.feed_binary(_core.encode_msgpack(EVENT, "/", ["ev", b"\x00", {"k": 1}]))
    w.conn.feed_binary(_core.encode_msgpack(EVENT, "/", ["slow"], 4))
    w.conn.feed_binary(_core.encode_msgpack(ACK, "/", [b"r"], ack_id))
    w.conn.feed_binary(_core.encode_msgpack(CONNECT, "/", {"sid": "s"}))
    assert got == [(b"\x00", {"k": 1})]
    assert w.client.events == [("/", 4, ["slow"])]
    assert ack_got == [(b"r",)]
    assert [(p.type, p.data) for p in w.client.controls] == [(CONNECT, {"sid": "s"})]
    # Engine.IO still speaks text: pings work, a Socket.IO text message does not.
    w.conn.feed_text("2")
    assert w.sent == [(b"3", False)]
    with pytest.raises(ProtocolError):
        w.conn.feed_text('42["ev"]')


@pytest.mark.parametrize("data", [
    ["ev"], ["ev", 1], ["ev", 1, "two", [3], {"k": b"\x00"}], ["ev", None], ["ev", {"a": 1.5}],
    ["ev", "x" * 300], ["ev"] + list(range(20)), ["é" * 3, 1], ["a-long-event-name-over-16", 2],
])
def test_msgpack_events_for_a_plain_or_batch_handler(data):
    for batch in (False, True):
        w = Wire(msgpack_mode=True)
        got = []
        slot = w.slot()
        if batch:
            slot.batch = {data[0]: got.extend}
        else:
            slot.fast[data[0]] = lambda *a, got=got: got.append(a)
        w.conn.feed_binary(_core.encode_msgpack(EVENT, "/", data))
        w.conn.flush_batch()
        args = tuple(data[1:])
        expected = args if not batch else (args[0] if len(args) == 1 else None if not args
                                           else args)
        assert got == [expected], (batch, got)
        assert w.client.events == []


def test_msgpack_event_notepack_values_on_the_fast_path():
    w = Wire(msgpack_mode=True)
    got = []
    w.slot(ev=lambda *a: got.append(a))
    # ["ev", undefined, Date(0), ArrayBuffer(b"ab")] as notepack encodes them
    data = b"\x94\xa2ev" + b"\xd4\x00\x00" + b"\xd7\x00" + b"\x00" * 8 + b"\xc7\x02\x00ab"
    frame = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + data
    w.conn.feed_binary(frame)
    assert got == [(None, _core.decode_msgpack_data(b"\xd7\x00" + b"\x00" * 8), b"ab")]


@pytest.mark.parametrize("data", [
    b"\x92\xa2ev\xc1",                # 0xc1 is never valid
    b"\x92\xa2ev\xa3ab",              # truncated str
    b"\x93\xa2ev\x01",                # fewer elements than declared
    b"\x92\xa2ev\x81\x90\x01",          # unhashable key
    b"\x92\xa2ev\xa2\xff\xfe",          # invalid UTF-8
    b"\x92\xc3\x02",                  # the name is neither a str nor a number
    b"\x90",                          # no name at all
])
def test_malformed_msgpack_events_for_a_fast_handler(data):
    w = Wire(msgpack_mode=True)
    got = []
    w.slot(ev=lambda *a: got.append(a))
    with pytest.raises(ProtocolError):
        w.conn.feed_binary(b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + data)
    assert got == [] and w.client.events == []


# --- sending ----------------------------------------------------------------------------------

def test_send_packet_text_and_attachments(wire):
    wire.conn.send_packet(EVENT, "/", ["ev", 1])
    wire.conn.send_packet(EVENT, "/admin", ["up", b"\x01\x02"], 3)
    wire.conn.send_packet(ACK, "/", [b"r"], 9)
    wire.conn.send_packet(CONNECT, "/x", {"token": "t"})
    assert wire.sent == [
        (b'42["ev",1]', False),
        (b'451-/admin,3["up",{"_placeholder":true,"num":0}]', False), (b"\x01\x02", True),
        (b'461-9[{"_placeholder":true,"num":0}]', False), (b"r", True),
        (b'40/x,{"token":"t"}', False),
    ]
    assert wire.conn.stats()["packets_sent"] == 6


def test_encode_gives_frames_and_send_frames_sends_them(wire):
    frames = wire.conn.encode(EVENT, "/", ["ev", b"z"], 1)
    assert frames == [(b'451-1["ev",{"_placeholder":true,"num":0}]', False), (b"z", True)]
    wire.conn.send_frames(frames)
    assert wire.sent == frames


def test_msgpack_mode_sends_one_binary_frame():
    w = Wire(msgpack_mode=True)
    w.conn.send_packet(EVENT, "/", ["ev", b"z"], 2)
    ((frame, binary),) = w.sent
    assert binary is True
    p = _core.decode_msgpack(frame)
    assert (p.type, p.nsp, p.id, p.data) == (EVENT, "/", 2, ["ev", b"z"])
    assert w.conn.encode(EVENT, "/", ["ev"]) == [(_core.encode_msgpack(EVENT, "/", ["ev"]), True)]


def test_send_respects_the_servers_max_payload(wire):
    wire.conn.max_send_size = 20
    with pytest.raises(PayloadTooLargeError):
        wire.conn.send_packet(EVENT, "/", ["ev", "x" * 30])
    # With attachments, every frame is checked before any is sent.
    with pytest.raises(PayloadTooLargeError):
        wire.conn.send_packet(EVENT, "/", ["e", b"y" * 30])
    with pytest.raises(PayloadTooLargeError):
        wire.conn.send_eio(b"4" + b"x" * 30)
    assert wire.sent == []
    wire.conn.send_packet(EVENT, "/", ["ev"])
    assert wire.sent == [(b'42["ev"]', False)]


def test_binary_on_polling_is_checked_as_its_base64_record():
    # 30 bytes of binary are a 41-byte "b" + base64 record on polling: over a limit of 40.
    w = Wire(msgpack_mode=True)
    w.conn.max_send_size = 40
    with pytest.raises(PayloadTooLargeError, match="base64"):
        w.conn.send_eio(b"\x00" * 30, True)
    with pytest.raises(PayloadTooLargeError, match="base64"):
        w.conn.send_frames([(b"\x00" * 30, True)])
    assert w.sent == []
    w.conn.send_eio(b"\x00" * 27, True)  # 1 + 36 bytes
    assert w.sent == [(b"\x00" * 27, True)]
    # Text is counted as is; without a transport the raw size counts (it may go by WebSocket).
    w.conn.send_eio(b"4" + b"x" * 39)
    w.conn.poll_sender = None
    with pytest.raises(DisconnectedError):
        w.conn.send_eio(b"\x00" * 30, True)


def test_send_without_a_transport():
    conn = _core.Dispatcher(CoreRecorder())
    with pytest.raises(DisconnectedError):
        conn.send_packet(EVENT, "/", ["ev"])
    with pytest.raises(DisconnectedError):
        conn.send_eio(b"2")


def test_send_eio_raw(wire):
    wire.conn.send_eio(b"5")
    wire.conn.send_eio(b"\x00\x01", True)
    assert wire.sent == [(b"5", False), (b"\x00\x01", True)]


@pytest.mark.parametrize("frame,name", [
    ("42[42]", "42"), ('42[7,"x"]', "7"), ("42[1.5]", "1.5"), ("42[2.0]", "2"),
    ("42[1e-7]", "1e-7"), ("42[0.00001]", "0.00001"), ("42[-3]", "-3"), ("42[1e21]", "1e+21"),
    ("42[1152921504606846976.0]", "1152921504606847000"), ("42[-0.0]", "0"),
    ("42[1.5e-7]", "1.5e-7"), ("42[123456789012345680000.0]", "123456789012345680000"),
])
def test_numeric_event_name_is_delivered_by_its_string(wire, frame, name):
    # socket.io-parser accepts a number as the event name; socket.io-client's emitter then
    # calls the listeners of String(name).
    got = []
    wire.slot(**{name: lambda *a: got.append(a)})
    wire.conn.feed_text(frame)
    assert len(got) == 1 and wire.client.events == []


def test_feed_eio_takes_packets_as_the_polling_decoders_give_them(wire):
    wire.slot(ev=lambda *a: wire.client.calls.append(("ev", a)))
    for t, data in _core.decode_eio_payload('42["ev",1]\x1e2\x1e42["ev","é"]\x1e6'):
        wire.conn.feed_eio(t, data)
    assert wire.client.calls == [("ev", (1,)), ("ev", ("é",))]
    assert wire.sent == [(b"3", False)]
    assert wire.engine.calls == [("on_eio_noop",)]
    wire.conn.feed_eio(4, '51-["bin",{"_placeholder":true,"num":0}]')
    wire.conn.feed_eio(4, b"\x01\x02")
    assert wire.client.events == [("/", None, ["bin", b"\x01\x02"])]


def test_feed_eio_refuses_what_no_decoder_gives():
    conn = _core.Dispatcher(CoreRecorder())
    with pytest.raises(ValueError, match="unknown Engine.IO packet type"):
        conn.feed_eio(7, "x")
    with pytest.raises(ValueError, match="only message packets"):
        conn.feed_eio(2, b"x")
