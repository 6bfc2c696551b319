"""Malformed input: every decoder raises ProtocolError (a ValueError), never anything else.

``pytest.raises(ProtocolError)`` lets any other exception through as a test error, so each case
also proves that no TypeError/KeyError/IndexError/RecursionError/MemoryError leaks out.
"""

from __future__ import annotations

import json as stdlib_json
import time

import msgpack
import pytest
from support.core_fakes import CoreRecorder
from support.strategies import fails_fast

from fastsio._ext import _core
from fastsio.exceptions import ProtocolError

EVENT, ACK = _core.EVENT, _core.ACK


def rejects(fn, *args, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, ValueError)  # ProtocolError is catchable as a ValueError
    return info.value


# --- decode_packet ----------------------------------------------------------------------------

MALFORMED_TEXT = {
    # empty input
    "empty": "",
    # unknown packet type
    "type-7": '7["a"]',
    "type-9": "9",
    "type-letter": 'x["a"]',
    "type-space": ' 2["a"]',
    "type-slash": '/admin,["a"]',
    "type-minus": '-2["a"]',
    "type-bracket": '["a"]',
    # bad JSON
    "json-unterminated": '2["a"',
    "json-bare-word": "2[a]",
    "json-single-quotes": "2['a']",
    "json-trailing-comma": '2["a",]',
    "json-trailing-garbage": '2["a"]x',
    "json-two-documents": '2["a"]["b"]',
    "json-nan": '2["a",NaN]',
    "json-infinity": '2["a",Infinity]',
    "json-comment": '2["a"/*c*/]',
    "json-control-char": '2["a\x01"]',
    "json-bad-escape": '2["\\x41"]',
    "json-only-comma": "2,",
    # payload not valid for its type (socket.io-parser's isPayloadValid)
    "connect-list": "0[]",
    "connect-str": '0"sid"',
    "connect-number": "0-1",
    "connect-true": "0true",
    "disconnect-object": "1{}",
    "disconnect-list": "1[]",
    "disconnect-str": '1"bye"',
    "connect-error-list": '4["x"]',
    "connect-error-number": "44",
    "connect-error-null": "4null",
    "connect-error-empty": "4",
    "event-no-data": "2",
    "event-null": "2null",
    "event-empty-list": "2[]",
    "event-object": '2{"a":1}',
    "event-str": '2"a"',
    "event-null-name": "2[null]",
    "event-list-name": '2[["a"]]',
    "event-with-id-no-data": "212",
    "ack-without-id": '3["a"]',
    "ack-without-id-empty": "3[]",
    "ack-no-data": "312",
    "ack-object": '312{"a":1}',
    "ack-str": '312"a"',
    "ack-null": "312null",
    "binary-event-no-data": "51-",
    "binary-ack-without-id": "61-[{\"_placeholder\":true,\"num\":0}]",
    # namespace without its comma: the rest of the packet is read as the namespace
    "nsp-no-comma-event": '2/admin["foo"]',
    "nsp-no-comma-ack": "3/admin12[]",
    "nsp-no-comma-binary": '51-/admin["a",{"_placeholder":true,"num":0}]',
    "nsp-comma-no-data": "2/admin,",
    "nsp-id-no-data": "2/admin,12",
    # ack ids too long (more than 18 digits) or past 64 bits
    "ack-id-19-digits": '2' + "1" * 19 + '["a"]',
    "ack-id-2**64": f'2{2**64}["a"]',
    "ack-id-2**64+1-ack": f"3{2**64 + 1}[]",
    "ack-id-huge": "3" + "9" * 400 + "[]",
    "ack-id-huge-nsp": "3/x," + "9" * 40 + "[]",
    # attachment counts
    "attachments-missing": '5-["a"]',
    "attachments-no-dash": '51["a"]',
    "attachments-letters": '5x-["a"]',
    "attachments-sign": '5+1-["a"]',
    "attachments-only": "51",
    "attachments-no-number": "5",
    "attachments-10**9": '51000000000-["a",{"_placeholder":true,"num":0}]',
    "attachments-2**64": f'5{2**64}-["a"]',
    "attachments-11-digits": '599999999999-["a"]',
    "attachments-400-digits": "5" + "9" * 400 + '-["a"]',
    "attachments-over-limit": '51001-["a"]',
}


# python's json module reads these JavaScript-only literals; with json=<stdlib json> the codec
# honours the caller's module (as python-socketio does), so only the default path refuses them.
STDLIB_JSON_EXTENSIONS = {"json-nan", "json-infinity"}


@pytest.mark.parametrize("name", list(MALFORMED_TEXT))
def test_malformed_text_packet(name):
    text = MALFORMED_TEXT[name]
    rejects(_core.decode_packet, text)
    rejects(_core.decode_packet, text.encode("utf-8"))
    if name not in STDLIB_JSON_EXTENSIONS:
        rejects(_core.decode_packet, text, json=stdlib_json)


def test_the_error_carries_the_payload_and_namespace():
    err = rejects(_core.decode_packet, '2/admin,{"a":1}')
    assert err.payload == b'2/admin,{"a":1}'
    assert err.namespace == "/admin"
    err = rejects(_core.decode_packet, "2" + "x" * 1000)
    assert len(err.payload) == 200


def test_the_last_accepted_lengths():
    # 18-digit ack ids and counts up to the limit are fine; one more is refused (above).
    assert _core.decode_packet("2" + "9" * 18 + '["a"]').id == 10**18 - 1
    assert _core.decode_packet('51000-["a"]').attachments == 1000
    assert _core.decode_packet('53-["a"]', max_attachments=3).attachments == 3
    rejects(_core.decode_packet, '54-["a"]', max_attachments=3)
    rejects(_core.decode_packet, '51-["a"]', max_attachments=0)


@pytest.mark.parametrize("text", [
    '51000000000-["a",{"_placeholder":true,"num":0}]',
    '61000000000-/x,1[{"_placeholder":true,"num":999999999}]',
    "5999999999-" + '["a"]',
])
def test_huge_attachment_count_fails_fast_without_allocating(text):
    for max_attachments in (1000, 2**62):  # also when a (silly) limit lets the count through
        with fails_fast():
            conn = _core.Dispatcher(max_attachments=max_attachments)
            try:
                _core.decode_packet(text, max_attachments=max_attachments)
                conn.feed_text("4" + text)
            except ProtocolError:
                assert max_attachments == 1000
    # With the default limit the Dispatcher refuses it at the header, before waiting for frames.
    conn = _core.Dispatcher()
    rejects(conn.feed_text, "4" + text)


INVALID_UTF8 = {
    "lone-continuation": b'2["\x80"]',
    "ff-byte": b'2["\xff"]',
    "truncated-sequence": b'2["\xc3"]',
    "overlong-slash": b'2["\xc0\xaf"]',
    "cesu-surrogate": b'2["\xed\xa0\x80"]',
    "above-u10ffff": b'2["\xf4\x90\x80\x80"]',
    "in-namespace": b'2/\xff,["a"]',
    "truncated-in-namespace": b'2/ad\xe2\x82,["a"]',
    "in-event-name": b'2["\xfe"]',
    "in-object-key": b'0{"\xff":1}',
    "outside-strings": b'2["a"]\xff',
}


@pytest.mark.parametrize("raw", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
def test_invalid_utf8(raw):
    rejects(_core.decode_packet, raw)
    rejects(_core.decode_packet, raw, json=stdlib_json)
    conn = _core.Dispatcher()
    rejects(conn.feed_text, b"4" + raw)


@pytest.mark.parametrize("text", ['2["\ud800"]', '2/\udc00,["a"]', '2["a","\udbff"]'])
def test_str_with_lone_surrogates(text):
    # A str that cannot be UTF-8: its surrogates become invalid UTF-8 bytes, refused as such.
    rejects(_core.decode_packet, text)
    conn = _core.Dispatcher()
    rejects(conn.feed_text, "4" + text)


# orjson refuses JSON escapes of lone UTF-16 surrogates, which JSON.parse (socket.io-parser) and
# python's json accept; Node's JSON.stringify writes them for strings cut inside a surrogate pair.
@pytest.mark.parametrize("text", ['2["a","\\ud83d"]', '2["a","\\udc00x"]', '0{"\\ud800":1}'])
def test_escaped_lone_surrogates_are_valid_json(text):
    # socket.io-parser 4.2.7's Encoder gives '2["a","\\ud83d"]' for ["a", "😀".slice(0, 1)].
    expected = stdlib_json.loads(text[1:])
    assert _core.decode_packet(text).data == expected


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_json_nested_very_deep(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = '2["a",' + opener * depth + "1" + closer * depth + "]"
    start = time.perf_counter()
    rejects(_core.decode_packet, text)
    rejects(_core.decode_packet, text, json=stdlib_json)
    rejects(_core.decode_packet, "0" + '{"a":' * depth + "1" + "}" * depth, json=stdlib_json)
    conn = _core.Dispatcher()
    rejects(conn.feed_text, "4" + text)
    assert time.perf_counter() - start < 2


def test_nesting_that_json_accepts_but_reconstruct_refuses():
    # orjson takes up to 1024 levels; placeholder reconstruction stops at 512.
    deep = "[" * 600 + '{"_placeholder":true,"num":0}' + "]" * 600
    p = _core.decode_packet('51-["a",' + deep + "]")
    rejects(_core.reconstruct, p.data, [b"x"])
    conn = _core.Dispatcher()
    conn.feed_text('451-["a",' + deep + "]")
    rejects(conn.feed_binary, b"x")


# --- reconstruct ------------------------------------------------------------------------------

def ph(num) -> dict:
    return {"_placeholder": True, "num": num}


BAD_PLACEHOLDERS = {
    "out-of-range": (["a", ph(1)], [b"x"]),
    "far-out-of-range": (["a", ph(10**30)], [b"x"]),
    "negative": (["a", ph(-1)], [b"x"]),
    "no-attachments": (["a", ph(0)], []),
    "duplicated": (["a", ph(0), ph(0)], [b"x"]),
    "duplicated-nested": (["a", {"k": [ph(1)]}, [ph(1)]], [b"x", b"y"]),
    "num-str": (["a", ph("0")], [b"x"]),
    "num-float": (["a", ph(0.0)], [b"x"]),
    "num-bool": (["a", ph(True)], [b"x", b"y"]),
    "num-null": (["a", ph(None)], [b"x"]),
    "num-list": (["a", ph([0])], [b"x"]),
    "in-object": ({"k": ph(3)}, [b"x"]),
}


@pytest.mark.parametrize(("data", "atts"), list(BAD_PLACEHOLDERS.values()),
                         ids=list(BAD_PLACEHOLDERS))
def test_bad_placeholders(data, atts):
    rejects(_core.reconstruct, data, atts)


@pytest.mark.parametrize(("data", "atts"), list(BAD_PLACEHOLDERS.values()),
                         ids=list(BAD_PLACEHOLDERS))
def test_bad_placeholders_through_the_connection(data, atts):
    if not atts:
        return  # a binary packet announces at least one attachment (the count is checked)
    conn = _core.Dispatcher(CoreRecorder(fail_on=("on_event",)))
    body = stdlib_json.dumps(data if isinstance(data, list) else ["ev", data])
    conn.feed_text(f"45{len(atts)}-{body}")
    for att in atts[:-1]:
        conn.feed_binary(att)
    rejects(conn.feed_binary, atts[-1])
    # The half-received packet is gone: the next binary frame has nothing to attach to.
    rejects(conn.feed_binary, b"late")


def test_placeholder_lookalikes_are_plain_data():
    # Not a placeholder unless "_placeholder" is exactly true and "num" is present.
    for data in ([{"_placeholder": 1, "num": 0}], [{"_placeholder": "true", "num": 0}],
                 [{"num": 0}]):
        assert _core.reconstruct(data, [b"x"]) == data


# --- inputs socket.io-parser 4.2.7 refuses ----------------------------------------------------
# Each was checked against the reference (tests/peers/node_modules/socket.io-parser and
# socket.io-msgpack-parser): the codec's contract is "ProtocolError for anything socket.io-parser
# would reject".


@pytest.mark.parametrize("text", [
    "0null",       # CONNECT: isObject(null) is false ("invalid payload")
    "1null",       # DISCONNECT: the payload must be undefined, null is not ("invalid payload")
    "0/admin,null",
    '50-["a"]',    # "Illegal attachments": a binary packet has at least one attachment
    "60-1[]",
])
def test_reference_rejects_text(text):
    rejects(_core.decode_packet, text)


def test_reference_rejects_placeholder_without_num():
    # reconstructPacket: `_placeholder === true` with no valid num → "illegal attachments"
    rejects(_core.reconstruct, ["a", {"_placeholder": True}], [b"x"])


def test_reference_msgpack_rejects_missing_nsp():
    # socket.io-msgpack-parser checkPacket: isString(decoded.nsp) or "invalid namespace"
    rejects(_core.decode_msgpack, msgpack.packb({"type": 2, "data": ["ev"]}))


# --- decode_msgpack ---------------------------------------------------------------------------

def mp(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


GOOD = mp({"type": 2, "nsp": "/", "data": ["ev", 1, b"\x00"], "id": 7})

MALFORMED_MSGPACK = {
    "empty": b"",
    "reserved-byte": b"\xc1",
    "not-a-map-list": mp([2, "/", ["ev"]]),
    "not-a-map-int": mp(2),
    "not-a-map-str": mp("2"),
    "not-a-map-nil": mp(None),
    "not-a-map-bin": mp(b"\x83"),
    "empty-map": mp({}),
    "type-missing": mp({"nsp": "/", "data": ["ev"]}),
    "type-str": mp({"type": "2", "nsp": "/", "data": ["ev"]}),
    "type-float": mp({"type": 2.0, "nsp": "/", "data": ["ev"]}),
    "type-bool": mp({"type": True, "nsp": "/", "data": ["ev"]}),
    "type-nil": mp({"type": None, "nsp": "/", "data": ["ev"]}),
    "type-negative": mp({"type": -1, "nsp": "/", "data": ["ev"]}),
    "type-binary-event": mp({"type": 5, "nsp": "/", "data": ["ev"]}),
    "type-binary-ack": mp({"type": 6, "nsp": "/", "data": [], "id": 1}),
    "type-huge": mp({"type": 2**64 - 1, "nsp": "/", "data": ["ev"]}),
    "nsp-int": mp({"type": 2, "nsp": 1, "data": ["ev"]}),
    "nsp-bin": mp({"type": 2, "nsp": b"/", "data": ["ev"]}),
    "nsp-nil": mp({"type": 2, "nsp": None, "data": ["ev"]}),
    "nsp-list": mp({"type": 2, "nsp": ["/"], "data": ["ev"]}),
    "id-negative": mp({"type": 3, "nsp": "/", "data": [], "id": -1}),
    "id-float": mp({"type": 3, "nsp": "/", "data": [], "id": 1.5}),
    "id-str": mp({"type": 3, "nsp": "/", "data": [], "id": "1"}),
    "id-bool": mp({"type": 3, "nsp": "/", "data": [], "id": True}),
    "ack-without-id": mp({"type": 3, "nsp": "/", "data": []}),
    "ack-data-map": mp({"type": 3, "nsp": "/", "data": {}, "id": 1}),
    "event-no-data": mp({"type": 2, "nsp": "/"}),
    "event-empty": mp({"type": 2, "nsp": "/", "data": []}),
    "event-bin-name": mp({"type": 2, "nsp": "/", "data": [b"ev"]}),
    "event-map": mp({"type": 2, "nsp": "/", "data": {"0": "ev"}}),
    "connect-list": mp({"type": 0, "nsp": "/", "data": []}),
    "connect-str": mp({"type": 0, "nsp": "/", "data": "x"}),
    "disconnect-data": mp({"type": 1, "nsp": "/", "data": {}}),
    "connect-error-nil": mp({"type": 4, "nsp": "/", "data": None}),
    "connect-error-list": mp({"type": 4, "nsp": "/", "data": ["x"]}),
    "connect-error-bin": mp({"type": 4, "nsp": "/", "data": b"x"}),
    # ext types in the header fields (undefined, a Date, an unknown ext code)
    "type-ext-undefined": b"\x83\xa4type\xd4\x00\x00\xa3nsp\xa1/\xa4data\x91\xa2ev",
    "type-ext-5": mp({"type": msgpack.ExtType(5, b"\x02"), "nsp": "/", "data": ["ev"]}),
    "nsp-ext-0": mp({"type": 2, "nsp": msgpack.ExtType(0, b"/"), "data": ["ev"]}),
    "nsp-ext-date": mp({"type": 2, "nsp": msgpack.ExtType(0, b"\x00" * 8), "data": ["ev"]}),
    "id-ext": mp({"type": 3, "nsp": "/", "data": [], "id": msgpack.ExtType(1, b"\x01")}),
    "event-name-ext": mp({"type": 2, "nsp": "/", "data": [msgpack.ExtType(3, b"ev")]}),
    "event-name-undefined": b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x91\xd4\x00\x00",
    # structural problems
    "extra-data": GOOD + b"\x00",
    "two-packets": GOOD + GOOD,
    "unhashable-key": b"\x81\x91\x01\x02",
    "map-key-map": b"\x81\x80\x01",
    "array32-huge": b"\xdd\xff\xff\xff\xff",
    "map32-huge": b"\xdf\xff\xff\xff\xff",
    "str32-huge": b"\xdb\xff\xff\xff\xff",
    "bin32-huge": b"\xc6\xff\xff\xff\xff",
    "ext32-huge": b"\xc9\xff\xff\xff\xff\x00",
    "nested-deep": b"\x91" * 100_000 + b"\xc0",
    "nested-deep-maps": b"\x81\xa1a" * 100_000 + b"\xc0",
    "invalid-utf8-str": b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x91\xa2\xff\xfe",
    "invalid-utf8-key": b"\x83\xa4typ\xff\x02\xa3nsp\xa1/\xa4data\x91\xa2ev",
}


@pytest.mark.parametrize("raw", list(MALFORMED_MSGPACK.values()), ids=list(MALFORMED_MSGPACK))
def test_malformed_msgpack(raw):
    start = time.perf_counter()
    rejects(_core.decode_msgpack, raw)
    conn = _core.Dispatcher(msgpack_mode=True)
    rejects(conn.feed_binary, raw)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("cut", range(len(GOOD)))
def test_truncated_msgpack(cut):
    rejects(_core.decode_msgpack, GOOD[:cut])


def test_msgpack_unknown_ext_codes_in_the_data_pass_through():
    # Like python-socketio (whose ext_hook is msgpack.ExtType): ext types other than
    # notepack's type 0 are not the codec's business inside the arguments.
    raw = mp({"type": 2, "nsp": "/", "data": ["ev", msgpack.ExtType(7, b"\x01\x02")]})
    assert _core.decode_msgpack(raw).data == ["ev", msgpack.ExtType(7, b"\x01\x02")]


def test_msgpack_rejects_non_bytes_input_as_type_error_only():
    with pytest.raises(TypeError):
        _core.decode_msgpack("not bytes")


# --- Engine.IO polling payloads ---------------------------------------------------------------

MALFORMED_PAYLOADS = {
    "empty": "",
    "only-separator": "\x1e",
    "empty-first": "\x1e4a",
    "empty-last": "4a\x1e",
    "empty-middle": "4a\x1e\x1e4b",
    "unknown-type-7": "7x",
    "unknown-type-letter": "x",
    "unknown-type-9-after-good": "4a\x1e9",
    "unknown-type-space": " 4a",
    "unknown-type-unicode-digit": "\u0664a",  # ARABIC-INDIC DIGIT FOUR
    "base64-bad-char": "b!!!!",
    "base64-missing-padding": "bAQIDBA",
    "base64-bad-length": "bAQIDB==",
    "base64-leading-padding": "b=AQID",
    "base64-discontinuous-padding": "bAQ=D",
    "base64-padding-in-middle": "bAQ==ID",
    "base64-non-ascii": "b€€€€",
    "base64-whitespace": "bAQID BA==",
    "base64-newline": "bAQID\nBA==",
    "base64-one-char": "bA",
    "base64-after-good": "4a\x1eb*",
}


@pytest.mark.parametrize("payload", list(MALFORMED_PAYLOADS.values()), ids=list(MALFORMED_PAYLOADS))
def test_malformed_polling_payload(payload):
    rejects(_core.decode_eio_payload, payload)
    try:
        raw = payload.encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - all cases are encodable today
        return
    rejects(_core.decode_eio_payload, raw)


@pytest.mark.parametrize("raw", [b"4\xff", b"4a\x1e4\xc3", b"\xed\xa0\x80", b"b\xff"])
def test_polling_payload_not_utf8(raw):
    rejects(_core.decode_eio_payload, raw)


def test_polling_payload_packet_count_limit():
    rejects(_core.decode_eio_payload, "\x1e".join(["6"] * 11), max_packets=10)
    assert len(_core.decode_eio_payload("\x1e".join(["6"] * 10), max_packets=10)) == 10


def test_empty_binary_polling_packet_is_accepted():
    # "b" with no base64 is an empty binary message, as engine.io-parser decodes it.
    assert _core.decode_eio_payload("b") == [(4, b"")]


# --- the Dispatcher's framing errors ----------------------------------------------------------

@pytest.mark.parametrize("frame", ["", b"", "7", "9abc", "x", "\u0664", "4", "4x", '42/a["x"]',
                                   "4" + "2" + "1" * 19 + '["a"]'])
def test_connection_malformed_text_frames(frame):
    conn = _core.Dispatcher(CoreRecorder(), CoreRecorder())
    conn.poll_sender = lambda data, binary: None
    rejects(conn.feed_text, frame)


def test_connection_binary_frame_without_a_pending_packet():
    conn = _core.Dispatcher(CoreRecorder())
    rejects(conn.feed_binary, b"\x01\x02")
    rejects(conn.feed_binary, b"")


def test_connection_text_while_attachments_are_expected():
    client = CoreRecorder()
    conn = _core.Dispatcher(client)
    conn.feed_text('452-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    conn.feed_binary(b"a")
    rejects(conn.feed_text, '42["other"]')
    assert client.calls == []


def test_connection_text_message_on_a_msgpack_connection():
    conn = _core.Dispatcher(CoreRecorder(), msgpack_mode=True)
    rejects(conn.feed_text, '42["ev"]')


# --- the encoders: caller mistakes are ValueError/TypeError, never ProtocolError ---------------

def test_encoder_argument_errors():
    for t in (-1, 7):
        with pytest.raises(ValueError):
            _core.encode_packet(t, "/", ["ev"])
        with pytest.raises(ValueError):
            _core.encode_msgpack(t, "/", ["ev"])
    for bad_id in (-1, 1.0, "1"):
        with pytest.raises(ValueError):
            _core.encode_packet(EVENT, "/", ["ev"], bad_id)
    with pytest.raises(TypeError):
        _core.encode_packet(EVENT, "/", ["ev", object()])
    with pytest.raises(TypeError):
        _core.encode_msgpack(EVENT, "/", ["ev", object()])
    # Beyond orjson's 64-bit integers the encoder falls back to the standard library, as
    # python-socketio encodes them.
    assert _core.encode_packet(EVENT, "/", ["ev", 2**64]) == [b'2["ev",18446744073709551616]']
    assert _core.encode_packet(EVENT, "/", ["ev", 2**64], json=stdlib_json) == [
        b'2["ev",18446744073709551616]']


@pytest.mark.parametrize("text", ["2[1]", '2[1.5,"x"]', "2/admin,7[42]"])
def test_numeric_event_name_is_legal(text):
    # socket.io-parser accepts a number as the event name (isPayloadValid); so does the core.
    pkt = _core.decode_packet(text)
    assert pkt.type == _core.EVENT and type(pkt.data[0]) in (int, float)


def test_numeric_event_name_is_legal_in_msgpack():
    pkt = _core.decode_msgpack(mp({"type": 2, "nsp": "/", "data": [1, "x"]}))
    assert pkt.data == [1, "x"]
