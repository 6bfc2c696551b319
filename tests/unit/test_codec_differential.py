"""Differential tests: the compiled codec against python-socketio's pure-Python packets.

python-socketio's ``socketio.packet.Packet`` (JSON + binary attachments) and
``socketio.msgpack_packet.MsgPackPacket`` are the compatibility reference. Both sides encode the
same packets and must agree on the header byte for byte; the JSON bodies are compared as decoded
structures, since python's ``json`` escapes non-ASCII (``ensure_ascii``) and spells some floats
differently from orjson. With ``json=<stdlib json>`` the codec goes through the very same
``dumps`` call as python-socketio, so there the whole text must be identical.
"""

from __future__ import annotations

import json as stdlib_json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from socketio.msgpack_packet import MsgPackPacket
from socketio.packet import Packet as PyPacket
from support.strategies import KEYS, PLAIN_TYPES, TEXT, draw_packet, has_bytes, same

from fastsio._ext import _core
from fastsio._ext._core import ACK, BINARY_ACK, BINARY_EVENT, CONNECT, DISCONNECT, EVENT

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- strategies -------------------------------------------------------------------------------

ACK_ID = st.integers(0, 10**18 - 1)
SAFE_INT = st.integers(-(2**53), 2**53)
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
JSON_LEAF = st.one_of(st.none(), st.booleans(), SAFE_INT, FLOAT, TEXT)


def _json_values(binary: bool) -> st.SearchStrategy[Any]:
    leaf = st.one_of(JSON_LEAF, st.binary(max_size=16)) if binary else JSON_LEAF
    return st.recursive(
        leaf,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(KEYS, inner, max_size=4)),
        max_leaves=12,
    )


# Built once: strategies made inside a @composite on every draw are slow to (re)build.
JSON_VALUES = _json_values(False)
JSON_VALUES_BIN = _json_values(True)
JSON_OBJECT = st.dictionaries(KEYS, JSON_VALUES, max_size=4)


@st.composite
def packets(draw, binary: bool = True) -> tuple[int, str, Any, int | None]:
    """(type, nsp, data, id) valid for both implementations; data may hold bytes."""
    values = JSON_VALUES_BIN if binary else JSON_VALUES
    return draw_packet(draw, PLAIN_TYPES, JSON_OBJECT, values, ACK_ID)


def header(t: int, nsp: str, ack_id: int | None, attachments: int) -> str:
    """The header both encoders must write, built from the format in the protocol document."""
    h = str(t)
    if t in (BINARY_EVENT, BINARY_ACK):
        h += f"{attachments}-"
    if nsp != "/":
        h += nsp + ","
    if ack_id is not None:
        h += str(ack_id)
    return h


def py_encode(t: int, nsp: str, data: Any, ack_id: int | None) -> list:
    out = PyPacket(t, data=data, namespace=nsp, id=ack_id).encode()
    return out if isinstance(out, list) else [out]


def py_decode(frames: list) -> PyPacket:
    pkt = PyPacket(encoded_packet=frames[0])
    for att in frames[1:]:
        pkt.add_attachment(att)
    return pkt


# --- JSON text codec --------------------------------------------------------------------------

@SETTINGS
@given(packets())
def test_encode_agrees_with_python_socketio(pkt):
    t, nsp, data, ack_id = pkt
    ours = _core.encode_packet(t, nsp, data, ack_id)
    theirs = py_encode(t, nsp, data, ack_id)
    wire_type = {EVENT: BINARY_EVENT, ACK: BINARY_ACK}[t] if has_bytes(data) else t
    h = header(wire_type, nsp, ack_id, len(theirs) - 1)

    text = ours[0].decode("utf-8")
    assert theirs[0].startswith(h)
    assert text.startswith(h)
    assert text[:len(h)] == theirs[0][:len(h)]
    body_ours, body_theirs = text[len(h):], theirs[0][len(h):]
    if data is None:
        assert body_ours == body_theirs == ""
    else:
        assert same(stdlib_json.loads(body_ours), stdlib_json.loads(body_theirs))
    # The attachments: same bytes in the same order.
    assert ours[1:] == theirs[1:]


@SETTINGS
@given(packets())
def test_encode_with_stdlib_json_is_identical_to_python_socketio(pkt):
    t, nsp, data, ack_id = pkt
    ours = _core.encode_packet(t, nsp, data, ack_id, json=stdlib_json)
    theirs = py_encode(t, nsp, data, ack_id)
    assert [ours[0].decode("utf-8"), *ours[1:]] == theirs


@SETTINGS
@given(packets())
def test_we_decode_what_python_socketio_encodes(pkt):
    t, nsp, data, ack_id = pkt
    frames = py_encode(t, nsp, data, ack_id)
    for wire in (frames[0], frames[0].encode("utf-8")):
        p = _core.decode_packet(wire)
        assert p.type == ({EVENT: BINARY_EVENT, ACK: BINARY_ACK}[t] if has_bytes(data) else t)
        assert (p.nsp, p.id, p.attachments) == (nsp, ack_id, len(frames) - 1)
        assert same(_core.reconstruct(p.data, frames[1:]), data)


@SETTINGS
@given(packets())
def test_python_socketio_decodes_what_we_encode(pkt):
    t, nsp, data, ack_id = pkt
    frames = _core.encode_packet(t, nsp, data, ack_id)
    theirs = py_decode([frames[0].decode("utf-8"), *frames[1:]])
    assert theirs.packet_type == ({EVENT: BINARY_EVENT, ACK: BINARY_ACK}[t]
                                  if has_bytes(data) else t)
    assert (theirs.namespace or "/") == nsp
    assert theirs.id == ack_id
    assert same(theirs.data, data)


@SETTINGS
@given(packets(binary=False))
def test_decode_agrees_with_python_socketio_on_the_same_text(pkt):
    """Both decoders read one text (ours, written by orjson) to the same packet."""
    t, nsp, data, ack_id = pkt
    text = _core.encode_packet(t, nsp, data, ack_id)[0].decode("utf-8")
    ours = _core.decode_packet(text)
    theirs = py_decode([text])
    assert ours.type == theirs.packet_type
    assert ours.nsp == (theirs.namespace or "/")
    assert ours.id == theirs.id
    assert same(ours.data, theirs.data)


@pytest.mark.parametrize("nsp", ["/admin?token=1", "/a?", "/?x"])
def test_query_string_is_cut_from_the_namespace_like_python_socketio(nsp):
    text = f"2{nsp},7[\"ev\"]"
    ours = _core.decode_packet(text)
    theirs = py_decode([text])
    assert ours.nsp == theirs.namespace
    assert ours.id == theirs.id == 7


def test_deconstruct_and_reconstruct_agree_with_python_socketio():
    data = ["ev", b"a", {"k": [b"b", {"x": b"c"}], "s": "t"}, [[b"d"]], bytearray(b"e")]
    ours = _core.deconstruct(data)
    theirs = PyPacket.deconstruct_binary(data)
    assert ours[0] == theirs[0]
    assert ours[1] == [bytes(x) for x in theirs[1]]
    assert _core.reconstruct(ours[0], ours[1]) == PyPacket.reconstruct_binary(*theirs)


# --- msgpack codec ----------------------------------------------------------------------------

MSGPACK_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), FLOAT, TEXT,
                         st.binary(max_size=16))
MSGPACK_VALUES = st.recursive(
    MSGPACK_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
MSGPACK_OBJECT = st.dictionaries(TEXT, MSGPACK_VALUES, max_size=4)


@st.composite
def msgpack_packets(draw) -> tuple[int, str, Any, int | None]:
    return draw_packet(draw, PLAIN_TYPES, MSGPACK_OBJECT, MSGPACK_VALUES, st.integers(0, 2**64 - 1))


@SETTINGS
@given(msgpack_packets())
def test_msgpack_we_decode_what_python_socketio_encodes(pkt):
    t, nsp, data, ack_id = pkt
    encoded = MsgPackPacket(t, data=data, namespace=nsp, id=ack_id).encode()
    p = _core.decode_msgpack(encoded)
    assert (p.type, p.nsp, p.id, p.attachments) == (t, nsp, ack_id, 0)
    assert same(p.data, data)


@SETTINGS
@given(msgpack_packets())
def test_msgpack_python_socketio_decodes_what_we_encode(pkt):
    t, nsp, data, ack_id = pkt
    theirs = MsgPackPacket(encoded_packet=_core.encode_msgpack(t, nsp, data, ack_id))
    assert (theirs.packet_type, theirs.namespace, theirs.id) == (t, nsp, ack_id)
    assert same(theirs.data, data)


@pytest.mark.parametrize("t", [BINARY_EVENT, BINARY_ACK])
def test_msgpack_has_no_binary_types_on_either_side(t):
    # socket.io-msgpack-parser knows types 0-4 only; bytes travel inline in the map.
    data = ["ev", b"\x00\x01"] if t == BINARY_EVENT else [b"\x00\x01"]
    ours = _core.decode_msgpack(_core.encode_msgpack(t, "/", data, 3))
    theirs = MsgPackPacket(encoded_packet=_core.encode_msgpack(t, "/", data, 3))
    assert ours.type == theirs.packet_type == t - 3
    assert ours.data == theirs.data == data


def test_msgpack_python_socketio_data_nil_is_accepted():
    # python-socketio always writes a "data" key, nil when there is none (DISCONNECT, CONNECT);
    # socket.io-msgpack-parser would refuse nil there, python-socketio servers do send it.
    for t in (CONNECT, DISCONNECT):
        p = _core.decode_msgpack(MsgPackPacket(t, namespace="/x").encode())
        assert (p.type, p.nsp, p.data) == (t, "/x", None)
