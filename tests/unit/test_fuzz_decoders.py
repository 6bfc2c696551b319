"""Fuzzing the decoders: whatever arrives, only ProtocolError may come out.

Arbitrary bytes rarely get past the first byte, so each decoder is also fed "near-valid" input
assembled from protocol tokens and mutations of valid packets. Whenever a decoder accepts
something, what it returns must satisfy the documented packet rules. The examples are bounded
so that the whole file runs in well under 20 s (see FASTSIO_FUZZ_SCALE below).
"""

from __future__ import annotations

import json as stdlib_json
import os
from typing import Any

import msgpack
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.core_fakes import CoreRecorder
from support.strategies import mutated

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

# FASTSIO_FUZZ_SCALE=10 (say) runs ten times as many examples, for a deeper soak (make asan).
SCALE = float(os.environ.get("FASTSIO_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(1000 * SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# --- input strategies -------------------------------------------------------------------------

SIO_TOKENS = [
    "0", "1", "2", "3", "4", "5", "6", "7", "9", "-", "1-", "2-", "0-", "/", "/admin", "/a?b=1",
    ",", "12", "9" * 18, "9" * 19, str(2**64), "[", "]", "{", "}", '"', '"ev"', '"é"', ":",
    "null", "true", "1e400", "NaN", "-0", "0.5", '{"_placeholder":true,"num":0}',
    '{"_placeholder":true,"num":1}', '{"_placeholder":true,"num":-1}', '{"_placeholder":true}',
    '{"sid":"x"}', '"\\ud800"', "\\", " ", "\x00", "\x1e", "€", "\ud800", "😀",
]
TEXT_FROM_TOKENS = st.lists(st.sampled_from(SIO_TOKENS), max_size=14).map("".join)
BYTES_FROM_TOKENS = st.lists(
    st.one_of(st.sampled_from(SIO_TOKENS).map(lambda t: t.encode("utf-8", "surrogatepass")),
              st.binary(max_size=3)),
    max_size=14,
).map(b"".join)

VALID_TEXT = [
    b"0", b'0{"sid":"abc"}', b"0/admin,", b"1", b"1/admin,", b'2["ev",1,{"a":[true,null]}]',
    b'2/admin,12["ev"]', b"312[]", b'3/x,7["r"]', b'4{"message":"no"}', b'4"no"',
    b'51-["ev",{"_placeholder":true,"num":0}]', b'62-/x,9[{"_placeholder":true,"num":1},'
    b'{"_placeholder":true,"num":0}]',
]


# Packets assembled from header parts and a JSON body: mostly well-formed, often valid.
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from(["ev", "tick", "boom", "other", "é", ""]),
              st.builds(lambda n: {"_placeholder": True, "num": n}, st.integers(-1, 3))),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["sid", "message", "a"]), inner,
                                            max_size=3)),
    max_leaves=8,
)
ARGS = st.builds(lambda name, rest: [name, *rest],
                 st.sampled_from(["ev", "tick", "boom", "other", "é"]), st.lists(JSONISH, max_size=3))
# The body that suits each type (most of the time), else any JSON-ish value or nothing.
SUITED_BODY = {
    "0": st.one_of(st.just(None), st.dictionaries(st.sampled_from(["sid", "a"]), JSONISH)),
    "1": st.just(None),
    "2": ARGS,
    "3": st.lists(JSONISH, max_size=3),
    "4": st.one_of(st.text(max_size=5), st.fixed_dictionaries({"message": st.text(max_size=5)})),
    "5": ARGS,
    "6": st.lists(JSONISH, max_size=3),
    "7": ARGS,
}


@st.composite
def structured_text(draw) -> str:
    """`<type>[<n>-][<nsp>,][<id>][<json>]` with parts that are right most of the time."""
    t = draw(st.sampled_from("012345677"))
    if draw(st.integers(0, 9)):
        att = f"{draw(st.integers(1, 3))}-" if t in "56" else ""
    else:
        att = draw(st.sampled_from(["", "0-", "1000-", "1001-", "x-", "-", f"{10**9}-"]))
    nsp = draw(st.sampled_from(["", "", "", "/admin,", "/x,", "/ü,", "/x?y=1,", "/nocomma"]))
    if t in "36" or draw(st.booleans()):
        ack_id = str(draw(st.one_of(st.integers(0, 4), st.integers(0, 10**20))))
    else:
        ack_id = ""
    body = draw(st.one_of(SUITED_BODY[t], SUITED_BODY[t], JSONISH))
    text = "" if body is None else stdlib_json.dumps(body, allow_nan=False)
    return f"{t}{att}{nsp}{ack_id}{text}"


STRUCTURED_TEXT = structured_text()

SIO_TEXT_INPUT = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    TEXT_FROM_TOKENS,
    BYTES_FROM_TOKENS,
    mutated(VALID_TEXT),
    STRUCTURED_TEXT,
    STRUCTURED_TEXT,
    STRUCTURED_TEXT.map(lambda s: s.encode("utf-8")),
)

# --- checks on what decoders accept -----------------------------------------------------------


def check_payload(t: int, data: Any, ack_id: Any) -> None:
    """The payload rules of socket.io-parser's isPayloadValid (with the codec's id rule)."""
    if t == CONNECT:
        assert data is None or type(data) is dict
    elif t == DISCONNECT:
        assert data is None
    elif t == CONNECT_ERROR:
        assert type(data) in (dict, str)
    elif t in (EVENT, BINARY_EVENT):
        assert type(data) is list and data and type(data[0]) in (str, int, float)
    else:
        assert type(data) is list and ack_id is not None


def check_text_packet(p: _core.Packet, max_attachments: int) -> None:
    assert 0 <= p.type <= 6
    assert type(p.nsp) is str and (p.nsp == "/" or p.nsp.startswith("/"))
    assert "?" not in p.nsp and "," not in p.nsp
    assert p.id is None or (type(p.id) is int and 0 <= p.id < 10**18)
    assert 0 <= p.attachments <= max_attachments
    if p.type not in (BINARY_EVENT, BINARY_ACK):
        assert p.attachments == 0
    check_payload(p.type, p.data, p.id)


# --- decode_packet ----------------------------------------------------------------------------

def check_decoded(check: Any, decode: Any, *args: Any, **kwargs: Any) -> None:
    """``decode(*args, **kwargs)`` either refuses its input with ProtocolError (the one error a
    decoder may raise) or returns what ``check`` accepts; hypothesis counts either outcome (and
    the type of each packet accepted)."""
    try:
        out = decode(*args, **kwargs)
    except ProtocolError:
        event("rejected")
        return
    event(f"accepted type {out.type}" if isinstance(out, _core.Packet) else "accepted")
    check(out)


@FUZZ
@given(SIO_TEXT_INPUT, st.sampled_from([None, stdlib_json]), st.sampled_from([0, 1, 2, 1000]))
def test_decode_packet_fuzz(data, json_module, max_attachments):
    check_decoded(
        lambda p: check_text_packet(p, max_attachments),
        _core.decode_packet,
        data,
        json=json_module,
        max_attachments=max_attachments,
    )


# --- reconstruct ------------------------------------------------------------------------------

PLACEHOLDER = st.builds(
    lambda num: {"_placeholder": True, "num": num},
    st.one_of(st.integers(-2, 5), st.sampled_from([None, "0", 0.0, True, [0], 2**70])),
)
TREE = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=4), PLACEHOLDER),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["_placeholder", "num", "a"]), inner,
                                            max_size=3)),
    max_leaves=10,
)


def _no_placeholders_left(out: Any) -> None:
    assert not _placeholders_left(out)


def _placeholders_left(obj: Any) -> bool:
    if isinstance(obj, dict):
        if obj.get("_placeholder") is True and "num" in obj:
            return True
        return any(_placeholders_left(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_placeholders_left(v) for v in obj)
    return False


@settings(FUZZ, max_examples=int(500 * SCALE))
@given(TREE, st.lists(st.binary(max_size=4), max_size=4))
def test_reconstruct_fuzz(data, attachments):
    check_decoded(_no_placeholders_left, _core.reconstruct, data, attachments)


# --- decode_msgpack ---------------------------------------------------------------------------

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=6),
    st.binary(max_size=6), st.lists(st.integers(-9, 2**32), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=3),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=9)),
    st.sampled_from([2, "/", "ev", ["ev"], ["ev", 1], [], {}, 0, 3, 4, 5, 6, -1]),
)
MSGPACK_MAPS = st.dictionaries(
    st.one_of(st.sampled_from(["type", "nsp", "data", "id"]), st.text(max_size=4),
              st.integers(-9, 9)),
    ODD_VALUES, max_size=5,
).map(lambda d: msgpack.packb(d, use_bin_type=True))
VALID_MSGPACK = [
    msgpack.packb(d, use_bin_type=True) for d in (
        {"type": 2, "nsp": "/", "data": ["ev", 1, b"\x00", {"k": [1.5, None]}]},
        {"type": 3, "nsp": "/x", "data": ["r"], "id": 9},
        {"type": 0, "nsp": "/", "data": {"sid": "abc"}},
        {"type": 1, "nsp": "/admin"},
        {"type": 4, "nsp": "/", "data": {"message": "no"}},
    )
] + [bytes.fromhex("83a47479706502a36e7370a12fa46461746192a164d700000000dfb7629c00"),
     bytes.fromhex("83a47479706502a36e7370a12fa46461746192a175d40000")]
LIKELY_VALUES = {
    "type": st.one_of(st.integers(-1, 7), ODD_VALUES),
    "nsp": st.one_of(st.sampled_from(["/", "/admin", "/x"]), ODD_VALUES),
    "data": st.one_of(
        st.builds(lambda name, rest: [name, *rest], st.sampled_from(["ev", "tick", "boom", "z"]),
                  st.lists(ODD_VALUES, max_size=3)),
        st.dictionaries(st.sampled_from(["sid", "message"]), ODD_VALUES, max_size=2),
        ODD_VALUES),
    "id": st.one_of(st.integers(0, 4), ODD_VALUES),
}
STRUCTURED_MSGPACK = st.one_of(
    st.fixed_dictionaries({}, optional=LIKELY_VALUES),
    st.fixed_dictionaries({"type": st.integers(0, 4), "nsp": st.sampled_from(["/", "/admin"])},
                          optional={"data": LIKELY_VALUES["data"], "id": st.integers(0, 4)}),
).map(lambda d: msgpack.packb(d, use_bin_type=True))
MSGPACK_INPUT = st.one_of(st.binary(max_size=64), MSGPACK_MAPS, mutated(VALID_MSGPACK),
                          STRUCTURED_MSGPACK, STRUCTURED_MSGPACK)


def check_msgpack_packet(p: _core.Packet) -> None:
    assert 0 <= p.type <= 4
    assert type(p.nsp) is str
    assert p.id is None or (type(p.id) is int and p.id >= 0)
    assert p.attachments == 0
    check_payload(p.type, p.data, p.id)


@FUZZ
@given(MSGPACK_INPUT)
def test_decode_msgpack_fuzz(data):
    check_decoded(check_msgpack_packet, _core.decode_msgpack, data)


# --- decode_eio_payload -----------------------------------------------------------------------

EIO_TOKENS = ["0", "1", "2", "3", "4", "5", "6", "7", "b", "bAQID", "AQIDBA==", "=", "\x1e",
              "probe", "hello", "€", "{", '"sid"', " ", "\n", "\ud800"]
EIO_INPUT = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.lists(st.sampled_from(EIO_TOKENS), max_size=12).map("".join),
    mutated([b"4hello\x1e2\x1e4world", b"4hello\x1ebAQIDBA==", '4hello\x1e4€€€'.encode()]),
)


def check_eio_payload(out: Any) -> None:
    assert type(out) is list and out
    for t, d in out:
        assert type(t) is int and 0 <= t <= 6
        assert type(d) in (str, bytes)
        if type(d) is bytes:
            assert t == 4
        assert "\x1e" not in (d if type(d) is str else "")


@FUZZ
@given(EIO_INPUT)
def test_decode_eio_payload_fuzz(data):
    check_decoded(check_eio_payload, _core.decode_eio_payload, data)


# --- the Dispatcher ---------------------------------------------------------------------------

def make_connection(msgpack_mode: bool) -> tuple[_core.Dispatcher, CoreRecorder, list]:
    # The recorder checks every hook's arguments against the documented shapes as they arrive.
    client, sent = CoreRecorder(), []
    conn = _core.Dispatcher(client, CoreRecorder(), msgpack_mode=msgpack_mode,
                            max_attachments=3)
    conn.poll_sender = lambda data, binary: sent.append((data, binary))
    for nsp in ("/", "/admin"):
        slot = _core.NamespaceSlot(nsp)
        slot.fast = {"ev": lambda *args: None, "boom": lambda *args: 1 / 0}
        slot.batch = {"tick": lambda items: None}
        slot.strip_offset = nsp == "/admin"
        conn.slots[nsp] = slot
    for nsp in ("/", "/x", "/admin"):  # ids 1, 2, 3 pending
        entry = _core.PendingAck()
        entry.nsp = nsp
        entry.callback = lambda *args: None
        conn.acks.add(entry)
    return conn, client, sent


TEXT_FRAMES = st.one_of(
    st.binary(max_size=40),
    STRUCTURED_TEXT.map(lambda s: "4" + s),
    STRUCTURED_TEXT.map(lambda s: "4" + s),
    TEXT_FROM_TOKENS.map(lambda s: "4" + s),
    BYTES_FROM_TOKENS.map(lambda b: b"4" + b),
    mutated([b"4" + v for v in VALID_TEXT] + [b"2", b"2probe", b"3", b"5", b"6", b"1",
                                               b'0{"sid":"x"}', b'42["ev",1]', b'42["boom"]',
                                               b'42["tick",1]', b'42/admin,["ev","off"]',
                                               b"431[]", b'43/x,2["r"]']),
    st.sampled_from([b'42["ev",1]', b'42["tick",2]', b'42["boom"]', b'42/admin,["ev","o1"]',
                     b"431[1]", b"43/admin,3[]", b'452-["ev",{"_placeholder":true,"num":1}]',
                     b'451-["tick",{"_placeholder":true,"num":0}]', b"2", b"6", b"1", b"0{}"]),
)
FRAMES = st.lists(
    st.one_of(TEXT_FRAMES.map(lambda f: (f, False)),
              st.one_of(st.binary(max_size=12), MSGPACK_INPUT).map(lambda f: (f, True))),
    min_size=1, max_size=8,
)


@settings(FUZZ, max_examples=int(600 * SCALE))
@given(FRAMES, st.booleans())
def test_connection_feed_fuzz(frames, msgpack_mode):
    conn, client, sent = make_connection(msgpack_mode)
    for frame, binary in frames:
        try:
            if binary:
                conn.feed_binary(frame)
            else:
                conn.feed_text(frame)
        except ProtocolError:
            event("a frame was rejected")
            continue
    conn.flush_batch()
    for call in client.calls:
        event(f"client got {call[0]}")
    for pkt in client.controls:
        check_payload(pkt.type, pkt.data, pkt.id)
    for _, _, exc in client.handler_errors:
        assert isinstance(exc, ZeroDivisionError)
    for data, binary in sent:  # only pongs are ever sent from the receive path
        assert binary is False and data.startswith(b"3")
    # The counters never go backwards and agree with what was fed.
    stats = conn.stats()
    assert stats["bytes_received"] == sum(
        len(f.encode("utf-8", "surrogatepass") if isinstance(f, str) else f) for f, _ in frames)
    assert stats["packets_sent"] == len(sent)


# --- the msgpack envelope parser against msgpack.unpackb --------------------------------------

def _has_ext(obj: Any) -> bool:
    if isinstance(obj, (msgpack.ExtType, msgpack.Timestamp)):
        return True
    if isinstance(obj, list):
        return any(_has_ext(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_ext(k) or _has_ext(v) for k, v in obj.items())
    return False


def _clean_envelope(raw: bytes) -> dict | None:
    """The packet msgpack.unpackb sees, when it is one socket.io-msgpack-parser must accept."""
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:
        return None
    if type(obj) is not dict or not set(obj) <= {"type", "nsp", "data", "id"}:
        return None
    t, nsp, data, ack_id = obj.get("type"), obj.get("nsp"), obj.get("data"), obj.get("id")
    if type(t) is not int or not 0 <= t <= 4 or type(nsp) is not str or _has_ext(data):
        return None
    if ack_id is not None and (type(ack_id) is not int or ack_id < 0):
        return None
    ok = {CONNECT: data is None or type(data) is dict, DISCONNECT: data is None,
          CONNECT_ERROR: type(data) in (dict, str),
          EVENT: type(data) is list and bool(data) and type(data[0]) in (str, int, float),
          ACK: type(data) is list and ack_id is not None}[t]
    return {"type": t, "nsp": nsp, "data": data, "id": ack_id} if ok else None


@FUZZ
@given(MSGPACK_INPUT)
def test_decode_msgpack_agrees_with_unpackb(raw):
    """Whatever the envelope parser accepts, unpackb reads the same; clean envelopes pass."""
    expected = _clean_envelope(raw)
    try:
        p = _core.decode_msgpack(raw)
    except ProtocolError:
        assert expected is None, f"rejected a clean packet {expected!r}"
        return
    check_msgpack_packet(p)
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False,
                              ext_hook=lambda code, data: msgpack.ExtType(code, data))
    except UnicodeDecodeError:
        # The envelope parser skips the keys and values it does not use without decoding
        # them (as notepack does); unpackb insists on valid UTF-8 everywhere.
        event("ignored entry with invalid UTF-8")
        return
    assert type(obj) is dict
    assert p.type == obj["type"]
    assert p.nsp == obj.get("nsp")
    assert p.id == obj.get("id")
    if not _has_ext(obj.get("data")):
        assert p.data == obj.get("data")
    if expected is not None:
        assert (p.type, p.nsp, p.data, p.id) == tuple(expected.values())
