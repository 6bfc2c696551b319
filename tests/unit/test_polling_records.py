"""Engine.IO v4 polling records fed straight to the core (``Dispatcher.feed_poll_record``).

The polling transport splits a GET body on 0x1e and hands each record to the core as bytes.
The oracle is the older path, which the record path must match packet for packet and error
for error: ``decode_eio_payload`` on the record, then ``feed_eio(type, data)`` or
``feed_binary(data)``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.core_fakes import CoreRecorder
from support.transport_fakes import SteadySession

from fastsio._ext import _core
from fastsio._flag import Flag
from fastsio.exceptions import PayloadTooLargeError, ProtocolError
from fastsio.transports.polling import PollingTransport


def seen(rec: CoreRecorder) -> list[tuple[Any, ...]]:
    """The hook calls in order, control packets as (type, nsp, data) so that two runs compare."""
    out: list[tuple[Any, ...]] = []
    for name, *args in rec.calls:
        if name == "on_event":
            out.append(("event", *args))
        elif name == "on_control_packet":
            out.append(("control", args[0].type, args[0].nsp, args[0].data))
        elif name == "on_handler_error":
            out.append(("handler_error", args[0], args[1], repr(args[2])))
        else:
            out.append((name, *args))
    return out


def make_conn(serializer: str = "default") -> tuple[Any, CoreRecorder, list[tuple[bytes, bool]]]:
    rec = CoreRecorder()
    sent: list[tuple[bytes, bool]] = []
    kwargs = {"msgpack_mode": True} if serializer == "msgpack" else {}
    conn = _core.Dispatcher(rec, rec, **kwargs)
    conn.poll_sender = lambda data, binary: sent.append((data, binary))
    return conn, rec, sent


def feed_old(conn: Any, record: bytes, mms: int = 0) -> None:
    for t, data in _core.decode_eio_payload(record, max_message_size=mms):
        if isinstance(data, bytes):
            conn.feed_binary(data)
        else:
            conn.feed_eio(t, data)


def outcome(feed: Any, records: list[bytes], serializer: str = "default", mms: int = 0) -> Any:
    """What the hooks saw and what was sent, or the error type and message."""
    conn, rec, sent = make_conn(serializer)
    try:
        for r in records:
            feed(conn, r, mms)
    except Exception as exc:
        return ("error", type(exc), str(exc), seen(rec), sent)
    return ("ok", seen(rec), sent)


def feed_new(conn: Any, record: bytes, mms: int = 0) -> None:
    conn.feed_poll_record(record, mms)


def poll_records(frames: list[tuple[bytes, bool]]) -> list[bytes]:
    """Frames from the encoder (text ones start with Engine.IO's '4') as polling records."""
    return [b"b" + base64.b64encode(f) if binary else f for f, binary in frames]


VECTORS = [
    [b"2"],
    [b"2probe"],
    [b"6", b"3", b"5"],
    [b'0{"sid":"abc","pingInterval":25000}'],
    [b"1"],
    [b'40{"sid":"x"}'],
    [b'42["tick",{"s":"AAPL","p":123.45}]'],
    [b'42/chat,7["msg","h\xc3\xa9llo \xf0\x9f\x98\x80"]'],
    [b'451-["bin",{"_placeholder":true,"num":0}]', b"b" + base64.b64encode(b"\x00\xff\x01")],
    [
        b'452-["two",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]',
        b"bAA==",
        b"bAQI=",
    ],
    [b'43["ack"]'],
    [b'44{"message":"no"}'],
]
ERRORS = [
    [b""],
    [b"9oops"],
    [b"x"],
    [b"b!!!!"],
    [b"bAA"],
    [b'42["bad \xff utf8"]'],
    [b"b" + base64.b64encode(b"x")],  # binary with no pending binary packet
    [b'42["unterminated'],
]


@pytest.mark.parametrize("records", VECTORS + ERRORS, ids=repr)
def test_a_record_does_what_the_decoded_payload_did(records: list[bytes]) -> None:
    new, old = outcome(feed_new, records), outcome(feed_old, records)
    if records == [b""]:
        # The old path saw a whole empty body ("empty polling payload"); a record is a packet.
        assert new[2].startswith("empty packet in polling payload")
        new, old = new[:2] + new[3:], old[:2] + old[3:]
    assert new == old


@pytest.mark.parametrize("records", ERRORS, ids=repr)
def test_a_bad_record_is_a_protocol_error(records: list[bytes]) -> None:
    conn, _, _ = make_conn()
    with pytest.raises(ProtocolError):
        for r in records:
            conn.feed_poll_record(r)


@pytest.mark.parametrize(
    ("record", "limit"),
    [
        (b'42["x","' + b"y" * 50 + b'"]', 50),
        ('42["é"]'.encode(), 6),
        (b"b" + base64.b64encode(b"\x00" * 100), 99),
    ],
)
def test_a_record_over_max_message_size_is_refused_as_before(record: bytes, limit: int) -> None:
    new = outcome(feed_new, [b'451-["b",{"_placeholder":true,"num":0}]', record], mms=limit)
    old = outcome(feed_old, [b'451-["b",{"_placeholder":true,"num":0}]', record], mms=limit)
    assert new[0] == "error" and new[1] is PayloadTooLargeError
    assert new == old
    # One byte more of room and it goes through.
    assert outcome(feed_new, [record], mms=len(record))[1] is not PayloadTooLargeError


def test_held_records_are_dispatched_in_order_on_release() -> None:
    conn, rec, _ = make_conn()
    conn.hold()
    conn.feed_poll_record(b'42["a",1]')
    conn.feed_poll_record(b'451-["b",{"_placeholder":true,"num":0}]')
    conn.feed_poll_record(b"b" + base64.b64encode(b"\x01\x02"))
    conn.feed_poll_record(b'42["c",3]')
    assert seen(rec) == []
    assert conn.release()
    assert seen(rec) == [
        ("event", "/", None, ["a", 1]),
        ("event", "/", None, ["b", b"\x01\x02"]),
        ("event", "/", None, ["c", 3]),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text() | st.binary(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    args=st.lists(json_values, max_size=4),
    name=st.text(min_size=1, max_size=10),
    serializer=st.sampled_from(["default", "msgpack"]),
)
def test_bytes_in_are_bytes_out_through_polling_records(
    args: list[Any], name: str, serializer: str
) -> None:
    conn, rec, _ = make_conn(serializer)
    encoder, _, _ = make_conn(serializer)
    frames = encoder.encode(_core.EVENT, "/", [name, *args])
    for record in poll_records(frames):
        conn.feed_poll_record(record)
    assert seen(rec) == [("event", "/", None, [name, *args])]
# -- a GET body arriving in chunks (EngineIO._poll_once) ------------------------------------------


class _ChunkedHTTP:
    """A GET whose 200 body arrives in the given chunks (a PollHTTP)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def request(self, method: str, query: str, *, sink: Any, **options: Any) -> Any:
        for c in self.chunks:
            sink(c)
        return 200, b""

    def abort(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _poll_engine(chunks: list[bytes]) -> tuple[Any, CoreRecorder]:
    rec = CoreRecorder()
    session = SteadySession()
    t = PollingTransport(_core.Dispatcher(rec, rec), session, "http://h/?EIO=4", read_gate=Flag())
    t._http = _ChunkedHTTP(chunks)
    t.opened("s", 0, 50)
    t.attach()
    return t, rec


BODY_RECORDS = [
    b'42["a",1]',
    b"2",
    b'42["b","\xc3\xa9t\xc3\xa9"]',
    b'451-["e",{"_placeholder":true,"num":0}]',
    b"b" + base64.b64encode(b"\x00\x01\x02"),
    b'42["c",{"k":[1,2,3]}]',
    b"6",
    b'42["d"]',
]


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(b"\x1e".join(BODY_RECORDS))), max_size=12))
async def test_a_poll_body_cut_anywhere_gives_the_same_packets_in_order(cuts: list[int]) -> None:
    body = b"\x1e".join(BODY_RECORDS)
    bounds = [0, *sorted(cuts), len(body)]
    chunks = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    eio, rec = _poll_engine(chunks)
    await eio._poll_once(5)
    whole, expected = _poll_engine([body])
    await whole._poll_once(5)
    assert seen(rec) == seen(expected)
    assert [e[2][0] for e in rec.events] == ["a", "b", "e", "c", "d"]
    assert rec.events[2][2][1] == b"\x00\x01\x02"


async def test_records_after_a_close_in_the_same_body_are_dropped() -> None:
    body = b"\x1e".join([b'42["a"]', b"1", b'42["b"]'])
    t, rec = _poll_engine([body[:5], body[5:]])

    class Engine:
        def on_eio_open(self, raw: bytes) -> None:
            pass

        def on_eio_close(self) -> None:
            t.hooks.state = "closed"

        def on_eio_noop(self) -> None:
            pass

        def on_dispatch_yield(self) -> None:
            pass

    t.dispatcher.set_engine(Engine())
    await t._poll_once(5)
    assert [e[2][0] for e in rec.events] == ["a"]
