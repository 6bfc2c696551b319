"""Engine.IO v3 / Socket.IO protocol v4 pieces: the v3 polling payload codec (vectors from the
protocol documents and from engine.io-parser 2.x, the parser of Socket.IO 2.x servers; bounded
fuzzing), the core's v3 binary framing, and what the client sends a 2.x server on CONNECT."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.core_fakes import CoreRecorder

import fastsio
from fastsio._ext import _core
from fastsio._ext._core import (
    decode_eio3_payload,
    encode_eio3_payload,
    looks_like_eio3_payload,
    split_eio3_payload,
)
from fastsio.eio3 import Protocol, auth_query, namespace_with_query
from fastsio.exceptions import ProtocolError

SCALE = float(os.environ.get("FASTSIO_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=int(1000 * SCALE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (payload, packets). The first two are the examples of the Engine.IO protocol document
# ("Difference between v3 and v4"); the others were produced by engine.io-parser 2.2
# (socket.io 2.5's) `encodePayload(packets, false)`, i.e. what a 2.x server sends a b64 client.
VECTORS: list[tuple[str, list[tuple[int, str | bytes]]]] = [
    ("6:4hello2:4€", [(4, "hello"), (4, "€")]),
    ("6:4hello10:b4AQIDBA==", [(4, "hello"), (4, b"\x01\x02\x03\x04")]),
    ("9:4😀 emoji1:2", [(4, "😀 emoji"), (2, "")]),
    (
        '79:0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40',
        [
            (0, '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}'),
            (4, "0"),
        ],
    ),
    ("1:6", [(6, "")]),
    ('20:42["ev","a:b","𝄞x"]', [(4, '2["ev","a:b","𝄞x"]')]),
]


@pytest.mark.parametrize(("payload", "packets"), VECTORS)
def test_v3_payload_vectors_decode(payload: str, packets: list[Any]) -> None:
    assert decode_eio3_payload(payload) == packets
    assert decode_eio3_payload(payload.encode("utf-8")) == packets


@pytest.mark.parametrize(("payload", "packets"), VECTORS)
def test_v3_payload_vectors_encode(payload: str, packets: list[Any]) -> None:
    assert encode_eio3_payload(packets) == payload


#: Malformed v3 payloads and the error each gives.
MALFORMED = [
    ("", "empty polling payload"),
    ("5:4hi", "runs past the end"),
    ("2:4😀", "splits a character"),
    ("x:4", "invalid record length"),
    (":4", "invalid record length"),
    ("44", "invalid record length"),
    ("12345678901:4", "invalid record length"),
    ("0:", "empty packet"),
    ("3:9ab", "unknown Engine.IO packet type"),
    ("7:b4!!!!!", "invalid base64"),
    ("4:b5AA", "not a message"),
    ("1:b", "not a message"),
    ("6:4hello2", "invalid record length"),
]
#: split_eio3_payload leaves base64 to the core (Dispatcher.feed_poll_record decodes it).
BAD_BASE64 = "7:b4!!!!!"


@pytest.mark.parametrize(("payload", "message"), MALFORMED)
def test_malformed_v3_payloads_raise_protocol_error(payload: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_eio3_payload(payload)


def _as_packet(record: bytes) -> tuple[int, str | bytes]:
    """A record of split_eio3_payload read back as decode_eio3_payload gives its packet."""
    if record[:1] == b"b":
        return 4, base64.b64decode(record[1:], validate=True)
    return record[0] - ord("0"), record[1:].decode("utf-8", "surrogatepass")


@pytest.mark.parametrize(("payload", "packets"), VECTORS)
def test_v3_payload_vectors_split_into_records_for_the_core(
    payload: str, packets: list[Any]
) -> None:
    # Text packets keep their type character and come as bytes (no str round trip), binary
    # ones as the v4 record `b` + base64 that Dispatcher.feed_poll_record decodes.
    for data in (payload, payload.encode("utf-8")):
        records = split_eio3_payload(data)
        assert all(type(r) is bytes for r in records)
        assert [_as_packet(r) for r in records] == packets


@pytest.mark.parametrize(("payload", "message"), [m for m in MALFORMED if m[0] != BAD_BASE64])
def test_split_refuses_what_decode_refuses(payload: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        split_eio3_payload(payload)


def test_split_refuses_a_text_packet_over_the_size_limit() -> None:
    with pytest.raises(fastsio.exceptions.PayloadTooLargeError):
        split_eio3_payload("11:4" + "x" * 10, max_message_size=10)
    assert split_eio3_payload("10:4" + "x" * 9, max_message_size=10) == [b"4" + b"x" * 9]


def test_split_records_fed_to_the_core_reach_it_as_decoded_packets() -> None:
    rec = CoreRecorder()
    conn = _core.Dispatcher(rec)
    conn.eio3 = True
    payload = encode_eio3_payload(
        [(4, '51-["bin",{"_placeholder":true,"num":0}]'), (4, b"\x01\x02\x03"), (4, '2["t","é😀"]')]
    )
    for record in split_eio3_payload(payload):
        conn.feed_poll_record(record)
    assert rec.named("on_event") == [
        ("/", None, ["bin", b"\x01\x02\x03"]),
        ("/", None, ["t", "é😀"]),
    ]


def test_v3_payload_with_too_many_packets_is_refused() -> None:
    with pytest.raises(ProtocolError, match="too many packets"):
        decode_eio3_payload("1:6" * 11, max_packets=10)
    assert len(decode_eio3_payload("1:6" * 10, max_packets=10)) == 10


def test_invalid_utf8_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode_eio3_payload(b"3:4\xff\xfe")


def test_v3_framing_is_recognised_only_on_v3_payloads() -> None:
    assert looks_like_eio3_payload('96:0{"sid":"x"}')
    assert looks_like_eio3_payload(b"6:4hello")
    assert not looks_like_eio3_payload('0{"sid":"x","upgrades":[]}')
    assert not looks_like_eio3_payload("4hello\x1e4world")
    assert not looks_like_eio3_payload("")
    assert not looks_like_eio3_payload("123")


packets_strategy = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 6), st.text(max_size=40)),
        st.tuples(st.just(4), st.binary(max_size=40)),
    ),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(packets_strategy)
def test_v3_payload_round_trips(packets: list[tuple[int, Any]]) -> None:
    # Lengths in UTF-16 units: astral characters and lone surrogates included.
    assert decode_eio3_payload(encode_eio3_payload(packets)) == packets


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_v3_payload_decoder_raises_only_protocol_errors(data: Any) -> None:
    try:
        out = decode_eio3_payload(data)
    except ProtocolError:
        return
    assert out and all(0 <= t <= 6 for t, _ in out)


_RECORD_PIECES = st.sampled_from(["1:", "2:", "10:", "3:", "4", "b4", "AQID", ":", "😀", "€", "6"])


@FUZZ
@given(st.lists(_RECORD_PIECES, max_size=20).map("".join))
def test_v3_payload_decoder_on_near_valid_input(data: str) -> None:
    try:
        out = decode_eio3_payload(data)
    except ProtocolError:
        return
    # Whatever decodes re-encodes to the same text (the format has one spelling per payload,
    # base64 aside).
    if not any(isinstance(d, bytes) for _, d in out):
        assert encode_eio3_payload(out) == data


# -- the core's v3 binary framing ---------------------------------------------------------------


def _v3_conn(msgpack: bool = False) -> tuple[_core.Dispatcher, CoreRecorder, list[tuple[bytes, bool]]]:
    """A Dispatcher speaking Engine.IO 3 (the msgpack parser's with ``msgpack``), what it
    dispatches, and what it hands the polling transport to send."""
    client = CoreRecorder()
    conn = _core.Dispatcher(client, None, msgpack)
    conn.eio3 = True
    sent: list[tuple[bytes, bool]] = []
    conn.poll_sender = lambda data, binary: sent.append((data, binary))
    return conn, client, sent


def test_v3_binary_attachments_reassemble_from_polling_packets() -> None:
    conn, client, _ = _v3_conn()
    conn.feed_text('451-["ev",{"_placeholder":true,"num":0}]')
    conn.feed_binary(b"\x01\x02")  # polling hands the message data over without a type byte
    assert client.events == [("/", None, ["ev", b"\x01\x02"])]


def test_v3_pong_refreshes_the_heartbeat_clock() -> None:
    conn, _, sent = _v3_conn()
    conn.touch_ping()
    time.sleep(0.2)
    before = conn.ping_age()
    conn.feed_text("3")
    assert conn.ping_age() < before  # reset by the pong (not a timing claim: 0.2 s apart)
    assert sent == []  # a pong is never answered


def test_v3_binary_sent_on_polling_has_no_type_byte() -> None:
    conn, _, sent = _v3_conn()
    conn.send_packet(2, "/", ["ev", b"\x09"])
    assert sent == [(b'451-["ev",{"_placeholder":true,"num":0}]', False), (b"\x09", True)]


# -- Socket.IO protocol v4 CONNECT --------------------------------------------------------------


def test_auth_becomes_query_parameters() -> None:
    assert auth_query(None) == []
    assert auth_query({"token": "a b&c", "n": 1, "ok": True, "none": None, "l": [1]}) == [
        ("token", "a b&c"),
        ("n", "1"),
        ("ok", "true"),
        ("none", "null"),
        ("l", "[1]"),
    ]
    assert namespace_with_query("/chat", [("token", "a b&c")]) == "/chat?token=a+b%26c"
    assert namespace_with_query("/chat", []) == "/chat"
    with pytest.raises(ValueError, match="auth must be a dict"):
        auth_query("token")


class _V2Engine:
    version = 3
    sid = "SID"


def test_connect_to_a_2x_server_sends_no_payload_and_no_recovery_data() -> None:
    sio = fastsio.AsyncClient()
    sent: list[tuple[bytes, bool]] = []
    sio._conn.poll_sender = lambda data, binary: sent.append((data, binary))
    sio.lifecycle.eio = _V2Engine()  # type: ignore[assignment]
    sio._conn.slots["/chat"] = _core.NamespaceSlot("/chat")
    sio.lifecycle.pids["/chat"] = "a-pid"  # even if one were known, a v2 server never gets it
    sio.lifecycle.send_connect("/", {"token": "x"})
    sio.lifecycle.send_connect("/chat", {"token": "x"})
    assert sent == [(b"40/chat?token=x,", False)]


def test_protocol_is_reported_by_name() -> None:
    assert str(Protocol(3, 4)) == "Engine.IO 3 / Socket.IO protocol 4 (Socket.IO 2.x)"
    assert fastsio.AsyncClient().protocol is None


def test_eio_version_is_validated() -> None:
    with pytest.raises(ValueError, match="eio_version"):
        fastsio.AsyncClient(eio_version=5)


# -- Socket.IO protocol v4 packet forms (socket.io-protocol v4 document; socket.io 2.5's parser) --

V4_FORMS = [
    ("0", (0, "/", None, None, 0)),  # the server's own CONNECT of "/"
    ("0/admin,", (0, "/admin", None, None, 0)),
    ('4"Not authorized"', (4, "/", "Not authorized", None, 0)),
    ('4/admin,"Invalid namespace"', (4, "/admin", "Invalid namespace", None, 0)),
    ('4/private,{"reason":"bad token"}', (4, "/private", {"reason": "bad token"}, None, 0)),
    (
        '51-/admin,12["ev",{"_placeholder":true,"num":0}]',
        (5, "/admin", ["ev", {"_placeholder": True, "num": 0}], 12, 1),
    ),
    (
        '61-/admin,3[{"_placeholder":true,"num":0}]',
        (6, "/admin", [{"_placeholder": True, "num": 0}], 3, 1),
    ),
    ("1/admin,", (1, "/admin", None, None, 0)),
]


@pytest.mark.parametrize(("text", "expected"), V4_FORMS)
def test_socketio_v4_packet_forms_decode(text: str, expected: tuple[Any, ...]) -> None:
    p = _core.decode_packet(text)
    assert (p.type, p.nsp, p.data, p.id, p.attachments) == expected


def test_connect_with_a_query_encodes_as_socketio_v4() -> None:
    assert _core.encode_packet(0, "/admin?token=x") == [b"0/admin?token=x,"]


def test_msgpack_parser_2_control_packets_are_json_text() -> None:
    conn, client, sent = _v3_conn(msgpack=True)
    conn.feed_text('4{"type":0,"nsp":"/"}')
    conn.feed_text('4{"type":4,"nsp":"/x","data":"Invalid namespace"}')
    conn.feed_text('4{"type":1,"nsp":"/chat"}')
    assert [(p.type, p.nsp, p.data) for p in client.controls] == [
        (0, "/", None),
        (4, "/x", "Invalid namespace"),
        (1, "/chat", None),
    ]
    conn.send_packet(0, "/chat?token=x")
    conn.send_packet(1, "/chat")
    assert sent == [
        (b'4{"type":0,"nsp":"/chat?token=x"}', False),
        (b'4{"type":1,"nsp":"/chat"}', False),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "4not json",
        "4[1,2]",
        '4{"type":2,"nsp":"/","data":["ev"]}',
        '4{"type":0}',
        '4{"type":"0","nsp":"/"}',
        '4{"type":1,"nsp":"/","data":{}}',
        '4{"type":4,"nsp":"/","data":["x"]}',
    ],
)
def test_malformed_json_control_packets_are_protocol_errors(text: str) -> None:
    conn, _, _ = _v3_conn(msgpack=True)
    with pytest.raises(ProtocolError):
        conn.feed_text(text)


def test_msgpack_parser_2_binary_types_are_events_and_acks() -> None:
    import msgpack

    conn, client, _ = _v3_conn(msgpack=True)
    frame = msgpack.packb({"type": 5, "nsp": "/", "data": ["ev", b"\x01"]})
    conn.feed_binary(frame)
    assert client.events == [("/", None, ["ev", b"\x01"])]
    v4_conn = _core.Dispatcher(CoreRecorder(), None, True)  # Socket.IO >= 3: parser 3.x, types 0-4
    with pytest.raises(ProtocolError, match="invalid type"):
        v4_conn.feed_binary(frame)


def test_v3_payload_packets_over_max_message_size_are_refused() -> None:
    from fastsio.exceptions import PayloadTooLargeError

    assert decode_eio3_payload("6:4hello", max_message_size=6) == [(4, "hello")]
    with pytest.raises(PayloadTooLargeError, match="exceeds max_message_size 5"):
        decode_eio3_payload("6:4hello", max_message_size=5)
    with pytest.raises(PayloadTooLargeError, match="of 4 bytes"):
        decode_eio3_payload("2:4€", max_message_size=3)  # 2 UTF-16 units, 4 UTF-8 bytes
    with pytest.raises(PayloadTooLargeError):
        decode_eio3_payload("10:b4AQIDBA==", max_message_size=3)
    assert decode_eio3_payload("10:b4AQIDBA==", max_message_size=4) == [(4, b"\x01\x02\x03\x04")]
