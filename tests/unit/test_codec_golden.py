"""Golden vectors from the official protocol documents, checked in both directions.

Sources (quoted vectors only; comments name the section each one comes from):

- [SIO5] Socket.IO protocol, 5th revision: socketio/socket.io, docs/socket.io-protocol/v5-current.md
  (also socketio/socket.io-protocol Readme.md), sections "Packet encoding" (tables "connection to
  a namespace", "sending and receiving data", "acknowledgement", "disconnection from a
  namespace") and "Sample session".
- [EIO4] Engine.IO protocol, 4th revision: socketio/socket.io, docs/engine.io-protocol/v4-current.md,
  sections "Protocol > Handshake", "Protocol > Heartbeat", "Protocol > Upgrade",
  "Packet encoding > HTTP long-polling" and "Packet encoding > WebSocket".
- [EIOP4] engine.io-parser CHANGELOG, 4.0.0 (2020-09-08), "Encoding changes between v3 and v4".
- [NOTEPACK] notepack.io README (the msgpack dialect of socket.io-msgpack-parser): "undefined is
  encoded as fixext 1 [0, 0]", "Date objects are encoded as fixext 8 [0, ms]", "ArrayBuffer are
  encoded as ext 8/16/32 [0, data]".
- [REF] bytes produced by the reference JavaScript implementation itself
  (socket.io-msgpack-parser 3.0.2 / notepack.io 2.2.0 from tests/peers), for the msgpack
  packet layout the documents describe only in prose.
"""

from __future__ import annotations

import datetime

import msgpack
import pytest
from support.core_fakes import CoreRecorder

from fastsio._ext import _core
from fastsio._ext._core import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
)
from fastsio.exceptions import ProtocolError

B1234 = bytes([1, 2, 3, 4])


def ph(n: int) -> dict:
    return {"_placeholder": True, "num": n}


# (id, packet type as written in the document, nsp, data with bytes, ack id, encoded, attachments)
SIO_VECTORS = [
    # [SIO5] Packet encoding > connection to a namespace
    ("connect-main", CONNECT, "/", None, None, "0", []),
    ("connect-main-sid", CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"}, None,
     '0{"sid":"wZX3oN0bSVIhsaknAAAI"}', []),
    ("connect-admin", CONNECT, "/admin", None, None, "0/admin,", []),
    ("connect-admin-sid", CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}, None,
     '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}', []),
    ("connect-error", CONNECT_ERROR, "/", {"message": "Not authorized"}, None,
     '4{"message":"Not authorized"}', []),
    # [SIO5] Packet encoding > sending and receiving data
    ("event-main", EVENT, "/", ["foo"], None, '2["foo"]', []),
    ("event-admin", EVENT, "/admin", ["bar"], None, '2/admin,["bar"]', []),
    ("binary-event", BINARY_EVENT, "/", ["baz", B1234], None,
     '51-["baz",{"_placeholder":true,"num":0}]', [B1234]),
    ("binary-event-2-attachments", BINARY_EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"], None,
     '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
     [b"\x01\x02", b"\x03\x04"]),
    # [SIO5] Packet encoding > acknowledgement
    ("event-ack-id", EVENT, "/", ["foo"], 12, '212["foo"]', []),
    ("ack-empty", ACK, "/", [], 12, "312[]", []),
    ("event-admin-ack-id", EVENT, "/admin", ["foo"], 13, '2/admin,13["foo"]', []),
    ("ack-admin", ACK, "/admin", ["bar"], 13, '3/admin,13["bar"]', []),
    ("binary-event-ack-id", BINARY_EVENT, "/", ["foo", B1234], 14,
     '51-14["foo",{"_placeholder":true,"num":0}]', [B1234]),
    ("ack-14", ACK, "/", ["bar"], 14, '314["bar"]', []),
    ("event-15", EVENT, "/", ["foo"], 15, '215["foo"]', []),
    ("binary-ack", BINARY_ACK, "/", ["bar", B1234], 15,
     '61-15["bar",{"_placeholder":true,"num":0}]', [B1234]),
    # [SIO5] Packet encoding > disconnection from a namespace
    ("disconnect-main", DISCONNECT, "/", None, None, "1", []),
    ("disconnect-admin", DISCONNECT, "/admin", None, None, "1/admin,", []),
    # [SIO5] Sample session (the Socket.IO part of each frame, after the Engine.IO "4")
    ("session-connect-ok", CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"}, None,
     '0{"sid":"wZX3oN0bSVIhsaknAAAI"}', []),
    ("session-hey-jude", EVENT, "/", ["hey", "Jude"], None, '2["hey","Jude"]', []),
    ("session-admin-ok", CONNECT, "/admin", {"sid": "-G5j-67EZFp-q59rADQM"}, None,
     '0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}', []),
    ("session-tellme", EVENT, "/admin", ["tellme"], 1, '2/admin,1["tellme"]', []),
    ("session-binary-ack", BINARY_ACK, "/admin", [b"\xde\xad"], 1,
     '61-/admin,1[{"_placeholder":true,"num":0}]', [b"\xde\xad"]),
]

SIO_IDS = [v[0] for v in SIO_VECTORS]


def _plain_type(t: int) -> int:
    return {BINARY_EVENT: EVENT, BINARY_ACK: ACK}.get(t, t)


@pytest.mark.parametrize(("name", "t", "nsp", "data", "ack_id", "encoded", "atts"), SIO_VECTORS,
                         ids=SIO_IDS)
def test_encode_matches_the_document(name, t, nsp, data, ack_id, encoded, atts):
    assert _core.encode_packet(t, nsp, data, ack_id) == [encoded.encode(), *atts]
    # The caller may also name the plain type: bytes in the data make it binary on their own.
    assert _core.encode_packet(_plain_type(t), nsp, data, ack_id) == [encoded.encode(), *atts]


@pytest.mark.parametrize(("name", "t", "nsp", "data", "ack_id", "encoded", "atts"), SIO_VECTORS,
                         ids=SIO_IDS)
def test_decode_matches_the_document(name, t, nsp, data, ack_id, encoded, atts):
    for wire in (encoded, encoded.encode()):
        p = _core.decode_packet(wire)
        assert (p.type, p.nsp, p.id, p.attachments) == (t, nsp, ack_id, len(atts))
        assert _core.reconstruct(p.data, list(atts)) == data
        if atts:
            # Until reconstruction the data holds the placeholders exactly as sent.
            assert _core.deconstruct(data) == (p.data, list(atts))
        else:
            assert p.data == data


def test_event_is_sent_with_the_engineio_message_prefix():
    # [SIO5] "Example: { type: EVENT, namespace: "/", data: ["foo"] } will be sent as 42["foo"]"
    conn = _core.Dispatcher()
    assert conn.encode(EVENT, "/", ["foo"]) == [(b'42["foo"]', False)]
    # [SIO5] Sample session: "> 40/admin," and "> 42/admin,1["tellme"]"
    assert conn.encode(CONNECT, "/admin") == [(b"40/admin,", False)]
    assert conn.encode(EVENT, "/admin", ["tellme"], 1) == [(b'42/admin,1["tellme"]', False)]
    # [SIO5] Packet encoding > sending and receiving data: the binary frames follow the text one.
    assert conn.encode(EVENT, "/", ["baz", B1234]) == [
        (b'451-["baz",{"_placeholder":true,"num":0}]', False), (B1234, True)]


# --- Engine.IO v4 -----------------------------------------------------------------------------

OPEN_PAYLOAD = ('{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
                '"pingTimeout":5000,"maxPayload":1000000}')

EIO_PAYLOAD_VECTORS = [
    # [EIO4] Packet encoding > HTTP long-polling: "4hello\x1e2\x1e4world"
    ("polling-text", "4hello\x1e2\x1e4world", [(4, "hello"), (2, ""), (4, "world")]),
    # [EIO4] Packet encoding > HTTP long-polling: "4hello\x1ebAQIDBA==" (buffer <01 02 03 04>)
    ("polling-binary", "4hello\x1ebAQIDBA==", [(4, "hello"), (4, B1234)]),
    # [EIOP4] encodePayload with strings: "4hello\x1e4€€€"
    ("changelog-strings", "4hello\x1e4€€€", [(4, "hello"), (4, "€€€")]),
    # [EIOP4] encodePayload with string and binary: "4hello\x1ebAQID" (buffer <01 02 03>)
    ("changelog-binary", "4hello\x1ebAQID", [(4, "hello"), (4, b"\x01\x02\x03")]),
    # [SIO5] Sample session, request n°1 (the open packet of the handshake)
    ("handshake", "0" + OPEN_PAYLOAD, [(0, OPEN_PAYLOAD)]),
    # [SIO5] Sample session, request n°5: "42["hello"]\x1e42["world"]"
    ("two-events", '42["hello"]\x1e42["world"]', [(4, '2["hello"]'), (4, '2["world"]')]),
    # [EIO4] Protocol > Upgrade / Heartbeat: 2probe, 3probe, 5, 2, 3 (one per frame/payload)
    ("probe", "2probe", [(2, "probe")]),
    ("probe-answer", "3probe", [(3, "probe")]),
    ("upgrade", "5", [(5, "")]),
    ("ping", "2", [(2, "")]),
    ("pong", "3", [(3, "")]),
    # [SIO5] Sample session: "> 1 => Engine.IO "close" packet type"
    ("close", "1", [(1, "")]),
]


@pytest.mark.parametrize(("name", "payload", "packets"), EIO_PAYLOAD_VECTORS,
                         ids=[v[0] for v in EIO_PAYLOAD_VECTORS])
def test_eio_payload_both_directions(name, payload, packets):
    assert _core.decode_eio_payload(payload) == packets
    assert _core.decode_eio_payload(payload.encode("utf-8")) == packets
    assert _core.encode_eio_payload(packets) == payload


def test_eio_type_numbers_match_the_document():
    # [EIO4] Protocol: open 0, close 1, ping 2, pong 3, message 4, upgrade 5, noop 6
    assert _core.EIO_TYPES == {"open": 0, "close": 1, "ping": 2, "pong": 3, "message": 4,
                               "upgrade": 5, "noop": 6}


def test_sio_type_numbers_match_the_document():
    # [SIO5] Exchange protocol: the table of packet types
    assert _core.PACKET_TYPES == {"CONNECT": 0, "DISCONNECT": 1, "EVENT": 2, "ACK": 3,
                                  "CONNECT_ERROR": 4, "BINARY_EVENT": 5, "BINARY_ACK": 6}


# --- the sample session, replayed through the compiled dispatch ------------------------------

def test_sample_session_websocket_frames():
    """[SIO5] Sample session, request n°6: the WebSocket frames the server sends."""
    client, engine, sent = CoreRecorder(), CoreRecorder(), []
    conn = _core.Dispatcher(client, engine)
    conn.poll_sender = lambda data, binary: sent.append((data, binary))

    conn.feed_text("0" + OPEN_PAYLOAD)  # request n°1
    assert engine.calls == [("on_eio_open", OPEN_PAYLOAD.encode())]

    conn.feed_text("40/admin,{\"sid\":\"-G5j-67EZFp-q59rADQM\"}")
    (name, pkt), = client.calls
    assert name == "on_control_packet"
    assert (pkt.type, pkt.nsp, pkt.data) == (CONNECT, "/admin", {"sid": "-G5j-67EZFp-q59rADQM"})

    # > 42/admin,1["tellme"]  (what the client sends: the id comes from the ack table)
    got = []
    entry = _core.PendingAck()
    entry.nsp = "/admin"
    entry.callback = lambda *args: got.append(args)
    ack_id = conn.acks.add(entry)
    assert ack_id == 1
    conn.send_packet(EVENT, "/admin", ["tellme"], ack_id)
    assert sent == [(b'42/admin,1["tellme"]', False)]

    # < 461-/admin,1[{"_placeholder":true,"num":0}]  then  < <binary>
    conn.feed_text('461-/admin,1[{"_placeholder":true,"num":0}]')
    assert got == []
    conn.feed_binary(b"\x00\xff")
    assert got == [(b"\x00\xff",)]
    assert len(conn.acks) == 0

    # < 2  =>  > 3  (heartbeat, [EIO4] Protocol > Heartbeat)
    conn.feed_text("2")
    assert sent[-1] == (b"3", False)
    # < 2probe  =>  > 3probe  ([EIO4] Protocol > Upgrade)
    conn.feed_text("2probe")
    assert sent[-1] == (b"3probe", False)

    conn.feed_text("1")
    assert engine.calls[-1] == ("on_eio_close",)


# --- msgpack (socket.io-msgpack-parser / notepack.io) -----------------------------------------

REF_MSGPACK = [
    # [REF] socket.io-msgpack-parser 3.0.2 Encoder().encode(packet)[0], as hex
    ("event", EVENT, "/", ["foo"], None, "83a47479706502a36e7370a12fa46461746191a3666f6f"),
    ("event-buffer-ack-id", EVENT, "/admin", ["bar", B1234], 13,
     "84a47479706502a36e7370a62f61646d696ea46461746192a3626172c40401020304a269640d"),
    ("ack-empty", ACK, "/", [], 12, "84a47479706503a36e7370a12fa46461746190a269640c"),
    ("connect-sid", CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"}, None,
     "83a47479706500a36e7370a12fa46461746181a3736964b4775a58336f4e30625356496873616b6e41414149"),
    ("disconnect-no-data", DISCONNECT, "/admin", None, None, "82a47479706501a36e7370a62f61646d696e"),
    ("connect-error", CONNECT_ERROR, "/", {"message": "Not authorized"}, None,
     "83a47479706504a36e7370a12fa46461746181a76d657373616765ae4e6f7420617574686f72697a6564"),
    # [NOTEPACK] "undefined is encoded as fixext 1 [0, 0]" (an undefined argument: None here)
    ("undefined-argument", EVENT, "/", ["u", None], None,
     "83a47479706502a36e7370a12fa46461746192a175d40000"),
    # [NOTEPACK] "ArrayBuffer are encoded as ext 8/16/32 [0, data]": Uint8Array.of(1, 2, 3, 4)
    ("arraybuffer", EVENT, "/", ["ab", B1234], None,
     "83a47479706502a36e7370a12fa46461746192a26162c7040001020304"),
]


@pytest.mark.parametrize(("name", "t", "nsp", "data", "ack_id", "hexed"), REF_MSGPACK,
                         ids=[v[0] for v in REF_MSGPACK])
def test_msgpack_reference_bytes_decode(name, t, nsp, data, ack_id, hexed):
    p = _core.decode_msgpack(bytes.fromhex(hexed))
    assert (p.type, p.nsp, p.id, p.data, p.attachments) == (t, nsp, ack_id, data, 0)


@pytest.mark.parametrize(("name", "t", "nsp", "data", "ack_id", "hexed"),
                         [v for v in REF_MSGPACK if v[0] not in ("undefined-argument", "arraybuffer")],
                         ids=[v[0] for v in REF_MSGPACK
                              if v[0] not in ("undefined-argument", "arraybuffer")])
def test_msgpack_encoding_is_what_the_reference_decodes(name, t, nsp, data, ack_id, hexed):
    # Map key order is not part of the format: compare the decoded maps (with the reference's
    # own bytes as the expected value).
    ours = msgpack.unpackb(_core.encode_msgpack(t, nsp, data, ack_id), raw=False)
    theirs = msgpack.unpackb(bytes.fromhex(hexed), raw=False)
    assert ours == theirs


# [NOTEPACK] "new Date('2000-06-13T00:00:00.000Z') => <Buffer d7 00 00 00 00 df b7 62 9c 00>":
# fixext 8, type 0, the milliseconds since the epoch as a big-endian *integer* (notepack writes
# hi = floor(ms / 2**32) and lo = ms >>> 0). [REF] gives the same layout for 2020-01-01.
DATE_VECTORS = [
    ("2000-06-13", datetime.datetime(2000, 6, 13, tzinfo=datetime.timezone.utc),
     "d700000000dfb7629c00"),
    ("2020-01-01", datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
     "d7000000016f5e66e800"),
    ("epoch-minus-1ms", datetime.datetime(1969, 12, 31, 23, 59, 59, 999000,
                                          tzinfo=datetime.timezone.utc), "d700ffffffffffffffff"),
]

@pytest.mark.parametrize(("name", "when", "hexed"), DATE_VECTORS, ids=[v[0] for v in DATE_VECTORS])
def test_msgpack_date_from_javascript(name, when, hexed):
    head = bytes.fromhex("83a47479706502a36e7370a12fa46461746192a164")  # {type,nsp,data:["d", …
    assert _core.decode_msgpack(head + bytes.fromhex(hexed)).data == ["d", when]


@pytest.mark.parametrize(("name", "when", "hexed"), DATE_VECTORS, ids=[v[0] for v in DATE_VECTORS])
def test_msgpack_date_to_javascript(name, when, hexed):
    packed = _core.encode_msgpack(EVENT, "/", ["d", when])
    assert bytes.fromhex(hexed) in packed
    assert _core.encode_msgpack(EVENT, "/", ["d", when.replace(tzinfo=None)]) == packed


def test_msgpack_date_keeps_milliseconds_only():
    when = datetime.datetime(2021, 3, 4, 5, 6, 7, 891_999, tzinfo=datetime.timezone.utc)
    p = _core.decode_msgpack(_core.encode_msgpack(EVENT, "/", ["d", when]))
    assert p.data == ["d", when.replace(microsecond=891_000)]


# [NOTEPACK] ArrayBuffers are ext 8/16/32 type 0, undefined/Date are fixext 1/8 type 0: the
# format byte tells them apart. [REF] notepack.io 2.2.0: Uint8Array.of(0).buffer → c7 01 00 00.
@pytest.mark.parametrize("ext", ["c7010000", "c708000000000000000001", "c708003ff0000000000000",
                                 "c80001" + "00" + "00", "c900000001" + "00" + "00"])
def test_msgpack_arraybuffer_that_looks_like_undefined_or_a_date(ext):
    head = bytes.fromhex("83a47479706502a36e7370a12fa46461746192a26162")  # ..., "ab", <ext>
    raw = bytes.fromhex(ext)
    payload = raw[{0xc7: 3, 0xc8: 4, 0xc9: 6}[raw[0]]:]
    assert _core.decode_msgpack(head + raw).data == ["ab", payload]


def test_decode_rejects_what_the_document_forbids():
    # [SIO5] Sending and receiving data: "The payload is mandatory and MUST be a non-empty
    # array. If that's not the case, then the receiver MUST close the connection."
    for bad in ("2", "2[]", '2{"a":1}', "2/admin,"):
        with pytest.raises(ProtocolError):
            _core.decode_packet(bad)
    # [SIO5] Acknowledgement: "The payload is mandatory and MUST be an array (possibly empty)."
    for bad in ("312", '312{"a":1}', "3/admin,13"):
        with pytest.raises(ProtocolError):
            _core.decode_packet(bad)


def test_engineio_packets_the_python_layer_sends_match_the_document():
    # [EIO4] Protocol > Upgrade: "2probe", "3probe", "5"; Heartbeat: "2", "3"; close: "1"
    assert (_core.EIO_PROBE, _core.EIO_PROBE_ANSWER, _core.EIO_UPGRADE_PACKET) == (
        b"2probe", b"3probe", b"5")
    assert (_core.EIO_PING_PACKET, _core.EIO_PONG_PACKET, _core.EIO_CLOSE_PACKET) == (
        b"2", b"3", b"1")
    assert _core.eio_text(4, b"hello") == b"4hello"
    with pytest.raises(ValueError, match="unknown Engine.IO packet type 7"):
        _core.eio_text(7)
