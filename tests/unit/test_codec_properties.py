"""Round-trip properties of the compiled codecs (hypothesis).

encode → decode → reconstruct gives back the packet, for the JSON text codec (orjson and a
user-supplied ``json`` module), the msgpack codec, the binary (de)construction, the Engine.IO
polling payloads and the Dispatcher's encode → feed path.
"""

from __future__ import annotations

import datetime
import json as stdlib_json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.core_fakes import CoreRecorder
from support.strategies import KEYS, PLAIN_TYPES, TEXT, draw_packet, has_bytes, same

from fastsio._ext import _core
from fastsio._ext._core import ACK, BINARY_ACK, BINARY_EVENT, EVENT

BINARY_OF = {EVENT: BINARY_EVENT, ACK: BINARY_ACK}

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), TEXT)


def _tree(leaf: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                                st.dictionaries(keys, inner, max_size=4)),
        max_leaves=16,
    )


JSON_VALUES = _tree(JSON_LEAF, KEYS)
BINARY_LEAF = st.one_of(st.binary(max_size=32), st.binary(max_size=8).map(bytearray),
                        st.binary(max_size=8).map(memoryview))
JSON_VALUES_BIN = _tree(st.one_of(JSON_LEAF, BINARY_LEAF), KEYS)
JSON_OBJECT = st.dictionaries(KEYS, JSON_VALUES, max_size=4)


def normalized(obj: Any) -> Any:
    """What a value becomes after a trip through the wire: tuples → lists, bytes-likes → bytes."""
    if isinstance(obj, (list, tuple)):
        return [normalized(x) for x in obj]
    if isinstance(obj, dict):
        return {k: normalized(v) for k, v in obj.items()}
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    return obj


@st.composite
def packets(draw, values: st.SearchStrategy[Any] = JSON_VALUES_BIN) -> tuple:
    types = (*PLAIN_TYPES, BINARY_EVENT, BINARY_ACK)
    return draw_packet(draw, types, JSON_OBJECT, values, st.integers(0, 10**18 - 1), max_args=5)


def expected_wire_type(t: int, data: Any) -> int:
    plain = {BINARY_EVENT: EVENT, BINARY_ACK: ACK}.get(t, t)
    return BINARY_OF[plain] if plain in BINARY_OF and has_bytes(data) else plain


# --- JSON text codec --------------------------------------------------------------------------

@SETTINGS
@given(packets(), st.sampled_from([None, stdlib_json]))
def test_json_round_trip(pkt, json_module):
    t, nsp, data, ack_id = pkt
    frames = _core.encode_packet(t, nsp, data, ack_id, json=json_module)
    assert all(type(f) is bytes for f in frames)
    p = _core.decode_packet(frames[0], json=json_module)
    assert p.type == expected_wire_type(t, data)
    assert (p.nsp, p.id, p.attachments) == (nsp, ack_id, len(frames) - 1)
    assert same(_core.reconstruct(p.data, frames[1:]), normalized(data))


@SETTINGS
@given(packets())
def test_decoding_str_and_bytes_is_the_same(pkt):
    text = _core.encode_packet(*pkt)[0]
    assert _core.decode_packet(text) == _core.decode_packet(text.decode("utf-8"))
    assert _core.decode_packet(text) == _core.decode_packet(bytearray(text))
    assert _core.decode_packet(text) == _core.decode_packet(memoryview(text))


@SETTINGS
@given(JSON_VALUES_BIN)
def test_deconstruct_reconstruct_round_trip(data):
    stripped, attachments = _core.deconstruct(data)
    assert not has_bytes(stripped)
    assert all(type(a) is bytes for a in attachments)
    assert same(_core.reconstruct(stripped, attachments), normalized(data))


@SETTINGS
@given(JSON_VALUES_BIN)
def test_attachments_are_numbered_in_order(data):
    stripped, attachments = _core.deconstruct(data)
    seen: list[int] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if obj.get("_placeholder") is True:
                seen.append(obj["num"])
                return
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(stripped)
    assert seen == list(range(len(attachments)))


@SETTINGS
@given(packets(values=JSON_VALUES))
def test_encoding_is_deterministic_and_canonical(pkt):
    """Re-encoding a decoded packet gives the same text (no drift through the codec)."""
    t, nsp, data, ack_id = pkt
    first = _core.encode_packet(t, nsp, data, ack_id)
    p = _core.decode_packet(first[0])
    assert _core.encode_packet(p.type, p.nsp, p.data, p.id) == first


# --- msgpack codec ----------------------------------------------------------------------------

MSGPACK_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False), TEXT, st.binary(max_size=32),
    # Millisecond precision: the wire carries milliseconds since the epoch.
    st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31),
                 timezones=st.just(datetime.timezone.utc)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
)
MSGPACK_VALUES = _tree(MSGPACK_LEAF, TEXT)


@SETTINGS
@given(packets(values=MSGPACK_VALUES))
def test_msgpack_round_trip(pkt):
    t, nsp, data, ack_id = pkt
    encoded = _core.encode_msgpack(t, nsp, data, ack_id)
    assert type(encoded) is bytes
    p = _core.decode_msgpack(encoded)
    assert p.type == {BINARY_EVENT: EVENT, BINARY_ACK: ACK}.get(t, t)
    assert (p.nsp, p.id, p.attachments) == (nsp, ack_id, 0)
    assert same(p.data, normalized(data))


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1, 1, 1),
                    max_value=datetime.datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)))
def test_msgpack_naive_datetime_is_sent_as_utc(when):
    p = _core.decode_msgpack(_core.encode_msgpack(EVENT, "/", ["d", when]))
    assert p.data == ["d", when.replace(tzinfo=datetime.timezone.utc)]


# --- Engine.IO polling payloads ---------------------------------------------------------------

EIO_PACKET = st.one_of(
    st.tuples(st.integers(0, 6),
              st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x1e"),
                      max_size=20)),
    st.tuples(st.just(4), st.binary(max_size=40)),
)


@SETTINGS
@given(st.lists(EIO_PACKET, min_size=1, max_size=8))
def test_eio_payload_round_trip(packets_in):
    payload = _core.encode_eio_payload(packets_in)
    assert type(payload) is str
    assert payload.count("\x1e") == len(packets_in) - 1
    assert _core.decode_eio_payload(payload) == packets_in
    assert _core.decode_eio_payload(payload.encode("utf-8")) == packets_in


@SETTINGS
@given(st.lists(EIO_PACKET, min_size=1, max_size=8))
def test_eio_payload_accepts_bytes_likes(packets_in):
    as_bytes = [(t, bytearray(d)) if isinstance(d, bytes) else (t, d) for t, d in packets_in]
    assert _core.encode_eio_payload(as_bytes) == _core.encode_eio_payload(packets_in)


# --- the Dispatcher: encode on one side, feed on the other ------------------------------------

def _feed(conn: _core.Dispatcher, frames: list[tuple[bytes, bool]]) -> None:
    for frame, binary in frames:
        if binary:
            conn.feed_binary(frame)
        else:
            conn.feed_text(frame)


@SETTINGS
@given(st.lists(packets(), min_size=1, max_size=6), st.booleans())
def test_connection_encode_then_feed(pkts, msgpack_mode):
    sender = _core.Dispatcher(msgpack_mode=msgpack_mode)
    client = CoreRecorder(fail_on=("on_handler_error",))  # no handlers here
    receiver = _core.Dispatcher(client, msgpack_mode=msgpack_mode)
    expected = []
    for t, nsp, data, ack_id in pkts:
        _feed(receiver, sender.encode(t, nsp, data, ack_id))
        plain = {BINARY_EVENT: EVENT, BINARY_ACK: ACK}.get(t, t)
        if plain == EVENT:
            expected.append(("on_event", nsp, ack_id, normalized(data)))
        elif plain == ACK:
            expected.append(("on_unknown_ack", nsp, ack_id))  # nothing pending in receiver.acks
        else:
            expected.append(("on_control_packet", plain, nsp, None, normalized(data)))
    calls = [("on_control_packet", c[1].type, c[1].nsp, c[1].id, c[1].data)
             if c[0] == "on_control_packet" else c for c in client.calls]
    assert len(calls) == len(expected)
    for got, want in zip(calls, expected, strict=True):
        assert same(list(got), list(want))
