"""The native msgpack decoder (_ext/mpdecode.pxi) against the msgpack.unpackb path it replaced.

Until the decoder was native, the ``data`` of a msgpack packet was copied, walked once to retag
notepack ArrayBuffers (ext8/16/32 of type 0) with the reserved type -128, and handed to
``msgpack.unpackb(raw=False, ext_hook=..., strict_map_key=False)``. That path is kept below,
in behaviour, as the oracle (``old_decode_data``): for every input the native decoder must build
the same objects (same types, floats bit for bit, same dict order) or, wherever the oracle
raises, raise ProtocolError.

Each check goes through both doors: ``decode_msgpack_data`` (the decoder alone, which sees
truncated and trailing input that the envelope walk would stop first) and ``decode_msgpack``
with the value as the argument of an event.
"""

from __future__ import annotations

import datetime
import gc
import math
import os
import struct
import time
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.strategies import KEYS, TEXT, fails_fast, mutated

from fastsio._ext import _core
from fastsio.exceptions import ProtocolError

# FASTSIO_FUZZ_SCALE multiplies the examples, as in test_fuzz_decoders.py (make asan).
SCALE = float(os.environ.get("FASTSIO_FUZZ_SCALE", "1"))
DIFF = settings(max_examples=int(400 * SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- the oracle: the decode path before mpdecode.pxi ------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _old_ext_hook(code: int, data: bytes) -> Any:
    """codec.pxi's former _msgpack_ext_hook."""
    if code == -128:  # an ArrayBuffer, retagged by _old_retag
        return data
    if code == 0:
        if len(data) == 1 and data[0] == 0:
            return None  # undefined
        if len(data) == 8:  # a Date: milliseconds, signed high word, unsigned low word
            hi, lo = struct.unpack(">iI", data)
            ms = hi * 4294967296 + lo
            if -8_640_000_000_000_000 <= ms <= 8_640_000_000_000_000:
                try:
                    return _EPOCH + datetime.timedelta(milliseconds=ms)
                except OverflowError:
                    pass
        return data
    return msgpack.ExtType(code, data)


_FIXED_SIZE = {0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3,
               0xD2: 5, 0xD3: 9, 0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18}
_LEN_WIDTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin, str
_EXT_WIDTH = {0xC7: 1, 0xC8: 2, 0xC9: 4}
_CONTAINER_WIDTH = {0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}


def _old_retag(data: bytes) -> bytes:
    """The former ``_mp_skip(..., retag)`` walk: ext8/16/32 of type 0 get type -128 (0x80)."""
    buf = bytearray(data)
    pos, todo, size = 0, 1, len(buf)
    while todo and pos < size:
        c = buf[pos]
        todo -= 1
        if c <= 0x7F or c >= 0xE0 or c in (0xC0, 0xC2, 0xC3):
            pos += 1
        elif c <= 0x8F:
            todo += 2 * (c & 0x0F)
            pos += 1
        elif c <= 0x9F:
            todo += c & 0x0F
            pos += 1
        elif c <= 0xBF:
            pos += 1 + (c & 0x1F)
        elif c in _LEN_WIDTH:
            w = _LEN_WIDTH[c]
            pos += 1 + w + int.from_bytes(buf[pos + 1:pos + 1 + w], "big")
        elif c in _EXT_WIDTH:
            tpos = pos + 1 + _EXT_WIDTH[c]
            if tpos >= size:
                break
            if buf[tpos] == 0:
                buf[tpos] = 0x80
            pos = tpos + 1 + int.from_bytes(buf[pos + 1:tpos], "big")
        elif c in _FIXED_SIZE:
            pos += _FIXED_SIZE[c]
        elif c in _CONTAINER_WIDTH:
            w = _CONTAINER_WIDTH[c]
            n = int.from_bytes(buf[pos + 1:pos + 1 + w], "big")
            todo += 2 * n if c in (0xDE, 0xDF) else n
            pos += 1 + w
        else:  # 0xc1
            break
    return bytes(buf)


def old_decode_data(raw: bytes) -> Any:
    """What the former codec made of the msgpack value ``raw`` (raises where it raised)."""
    return msgpack.unpackb(_old_retag(raw), raw=False, ext_hook=_old_ext_hook,
                           strict_map_key=False)


# --- comparing results --------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """Equal, with identical types all the way down, floats bit for bit and dicts in order.

    Iterative: the depth-limit tests compare 1024 levels, beyond Python's recursion limit.
    """
    todo = [(a, b)]
    while todo:
        x, y = todo.pop()
        if type(x) is not type(y):
            return False
        if type(x) is float:
            if struct.pack(">d", x) != struct.pack(">d", y):
                return False
        elif type(x) is list:
            if len(x) != len(y):
                return False
            todo.extend(zip(x, y, strict=True))
        elif type(x) is dict:
            if len(x) != len(y):
                return False
            for (kx, vx), (ky, vy) in zip(x.items(), y.items(), strict=True):
                todo.append((kx, ky))
                todo.append((vx, vy))
        elif type(x) is msgpack.ExtType:
            todo.append((x.code, y.code))
            todo.append((x.data, y.data))
        elif type(x) is datetime.datetime:
            if x != y or x.utcoffset() != y.utcoffset():
                return False
        elif x != y:
            return False
    return True


ENVELOPE = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data"


def _compare(decode, raw: bytes) -> Any:
    try:
        expected = old_decode_data(raw)
    except Exception as exc:
        with pytest.raises(ProtocolError) as info:
            decode(raw)
        assert isinstance(info.value, ValueError)
        return exc
    got = decode(raw)
    assert same(got, expected), f"{got!r:.300} != {expected!r:.300}"
    return expected


def _decode_event_args(data: bytes) -> Any:
    return _core.decode_msgpack(ENVELOPE + data).data


def check(raw: bytes) -> Any:
    """Decode ``raw`` alone and as the argument of an event, each compared with the oracle;
    return the oracle's value for ``raw`` (or the exception it raised)."""
    outcome = _compare(_core.decode_msgpack_data, raw)
    _compare(_decode_event_args, b"\x92\xa2ev" + raw)
    return outcome


# --- msgpack bytes in every encoding ------------------------------------------------------------
# msgpack.packb always picks the shortest form; a peer may not (notepack writes every float as a
# float64, 0 as a uint8 in places, ...). These strategies pick any form that holds the value.

_INT_FORMS = ((0xCC, ">B", 0, 2**8 - 1), (0xCD, ">H", 0, 2**16 - 1), (0xCE, ">I", 0, 2**32 - 1),
              (0xCF, ">Q", 0, 2**64 - 1), (0xD0, ">b", -(2**7), 2**7 - 1),
              (0xD1, ">h", -(2**15), 2**15 - 1), (0xD2, ">i", -(2**31), 2**31 - 1),
              (0xD3, ">q", -(2**63), 2**63 - 1))


def int_forms(v: int) -> list[bytes]:
    out = [bytes([code]) + struct.pack(fmt, v) for code, fmt, lo, hi in _INT_FORMS
           if lo <= v <= hi]
    if 0 <= v <= 0x7F:
        out.append(bytes([v]))
    if -32 <= v < 0:
        out.append(struct.pack(">b", v))
    return out


def sized_forms(payload: bytes, fix: tuple[int, int] | None, codes: tuple[int, int, int]
                ) -> list[bytes]:
    """Header + payload for each form whose length field holds len(payload)."""
    n = len(payload)
    out = []
    if fix is not None and n <= fix[1]:
        out.append(bytes([fix[0] | n]) + payload)
    for code, width in zip(codes, (1, 2, 4), strict=True):
        if n < 1 << (8 * width):
            out.append(bytes([code]) + n.to_bytes(width, "big") + payload)
    return out


def str_forms(payload: bytes) -> list[bytes]:
    return sized_forms(payload, (0xA0, 31), (0xD9, 0xDA, 0xDB))


def ext_forms(code: int, payload: bytes) -> list[bytes]:
    t = struct.pack(">b", code)
    out = []
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if len(payload) in fixed:
        out.append(bytes([fixed[len(payload)]]) + t + payload)
    for c, width in ((0xC7, 1), (0xC8, 2), (0xC9, 4)):
        if len(payload) < 1 << (8 * width):
            out.append(bytes([c]) + len(payload).to_bytes(width, "big") + t + payload)
    return out


def container_forms(n: int, is_map: bool) -> list[bytes]:
    fix, codes = (0x80, (0xDE, 0xDF)) if is_map else (0x90, (0xDC, 0xDD))
    out = [bytes([codes[0]]) + n.to_bytes(2, "big"), bytes([codes[1]]) + n.to_bytes(4, "big")]
    if n <= 15:
        out.append(bytes([fix | n]))
    return out


@st.composite
def any_form(draw, values: st.SearchStrategy, forms) -> bytes:
    return draw(st.sampled_from(forms(draw(values))))


INT_EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
             2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769,
             -(2**31), -(2**31) - 1, -(2**63)]
FLOAT32_EDGES = [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x3F800000,
                 0x3DCCCCCD, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF]
EXT_CODES = st.one_of(st.sampled_from([0, 0, 0, -1, -1, -128, 1, 5, 127, -2, -127]),
                      st.integers(-128, 127))
EXT_PAYLOADS = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"", b"\x00", b"\x01", b"\x00" * 8, b"\x00" * 4, b"\x00" * 12,
                     b"\xff" * 8, b"\xff" * 12]),
    # notepack Dates (in and out of datetime's range) and msgpack timestamps (4, 8, 12 bytes)
    st.integers(-(2**63), 2**63 - 1).map(lambda ms: struct.pack(">q", ms)),
    st.integers(-62135596800000, 253402300799999).map(lambda ms: struct.pack(">q", ms)),
    st.integers(0, 2**32 - 1).map(lambda s: struct.pack(">I", s)),
    st.tuples(st.integers(0, 2**30 - 1), st.integers(0, 2**34 - 1)).map(
        lambda t: struct.pack(">Q", t[0] << 34 | t[1])),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1)).map(
        lambda t: struct.pack(">Iq", *t)),
)

SCALAR_BYTES = st.one_of(
    st.sampled_from([b"\xc0", b"\xc2", b"\xc3"]),
    any_form(st.one_of(st.integers(-(2**63), 2**64 - 1), st.sampled_from(INT_EDGES)), int_forms),
    st.floats().map(lambda f: b"\xcb" + struct.pack(">d", f)),
    st.floats(width=32).map(lambda f: b"\xca" + struct.pack(">f", f)),
    st.one_of(st.sampled_from(FLOAT32_EDGES), st.integers(0, 2**32 - 1)).map(
        lambda u: b"\xca" + struct.pack(">I", u)),
    any_form(st.one_of(st.text(max_size=40), TEXT, st.sampled_from(["s", "p", "ü", "日本"])).map(
        lambda s: s.encode("utf-8")), str_forms),
    any_form(st.binary(max_size=6), str_forms),  # mostly invalid UTF-8
    any_form(st.binary(max_size=20), lambda b: sized_forms(b, None, (0xC4, 0xC5, 0xC6))),
    any_form(st.tuples(EXT_CODES, EXT_PAYLOADS), lambda t: ext_forms(*t)),
)
# Keys from a small pool, so that maps often repeat one (the last value wins).
KEY_BYTES = st.one_of(
    any_form(st.sampled_from(["s", "p", "q", "t", "", "é", "x" * 16, "x" * 17]).map(
        lambda s: s.encode("utf-8")), str_forms),
    any_form(st.integers(-3, 3), int_forms),
    SCALAR_BYTES,
)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    arrays = st.lists(children, max_size=5).flatmap(
        lambda items: st.sampled_from(container_forms(len(items), False)).map(
            lambda head: head + b"".join(items)))
    pairs = st.tuples(st.one_of(KEY_BYTES, KEY_BYTES, KEY_BYTES, children), children)
    maps = st.lists(pairs, max_size=4).flatmap(
        lambda items: st.sampled_from(container_forms(len(items), True)).map(
            lambda head: head + b"".join(k + v for k, v in items)))
    return st.one_of(arrays, maps)


MSGPACK_BYTES = st.recursive(SCALAR_BYTES, _extend, max_leaves=20)

# Python values packed by msgpack itself, as python-socketio and our encoder send them.
PY_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.sampled_from(INT_EDGES),
    st.floats(), st.text(max_size=30), TEXT, st.binary(max_size=20),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=17)),
    st.builds(msgpack.Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 10**9 - 1)),
    st.datetimes(timezones=st.just(datetime.timezone.utc)),  # packed as Timestamps
    st.integers(-62135596800000, 253402300799999).map(  # notepack Dates
        lambda ms: msgpack.ExtType(0, struct.pack(">q", ms))),
)
PY_KEYS = st.one_of(KEYS, st.sampled_from(["s", "p", "q", "t"]), st.integers(-(2**63), 2**64 - 1),
                    st.binary(max_size=4), st.floats(), st.none(), st.booleans())
PY_VALUES = st.recursive(
    PY_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(PY_KEYS, inner, max_size=5)),
    max_leaves=20,
)


# --- differential tests -------------------------------------------------------------------------

@DIFF
@given(MSGPACK_BYTES)
def test_every_encoding_decodes_as_before(raw):
    check(raw)


@DIFF
@given(PY_VALUES, st.booleans())
def test_packb_output_decodes_as_before(value, single_float):
    try:
        raw = msgpack.packb(value, use_bin_type=True, use_single_float=single_float,
                            datetime=True)
    except OverflowError:  # a float beyond float32's range, with use_single_float
        assume(False)
    check(raw)


@DIFF
@given(st.one_of(st.binary(max_size=64), mutated([msgpack.packb(
    ["tick", {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123, "u": None, "b": b"\x01"}],
    use_bin_type=True), bytes.fromhex("92a164d700000000dfb7629cc70300616263d40000")])))
def test_arbitrary_bytes_decode_as_before_or_raise_protocol_error(raw):
    check(raw)


@DIFF
@given(st.one_of(st.binary(max_size=80), mutated([
    msgpack.packb({"type": 2, "nsp": "/", "data": ["tick", {"s": "AAPL", "p": 123.45}]}),
    msgpack.packb({"type": 3, "nsp": "/x", "data": [{"k": [1.5, None, b"\x00"]}], "id": 9},
                  use_bin_type=True),
    ENVELOPE + bytes.fromhex("93a2657600c9000000030061626300"),
    ENVELOPE + bytes.fromhex("92a2657681a17391929190"),
])))
def test_mutated_packets_return_or_raise_protocol_error(raw):
    try:
        _core.decode_msgpack(raw)
    except ProtocolError:
        pass


# --- hand-built vectors -------------------------------------------------------------------------

def _full_value(c: int) -> bytes:
    """A complete value whose first byte is c (0xc1 alone: never valid)."""
    if c <= 0x7F or c >= 0xE0 or c in (0xC0, 0xC1, 0xC2, 0xC3):
        return bytes([c])
    if c <= 0x8F:
        return bytes([c]) + b"".join(bytes([i, 0xC0]) for i in range(c & 0x0F))
    if c <= 0x9F:
        return bytes([c]) + bytes(range(c & 0x0F))
    if c <= 0xBF:
        return bytes([c]) + b"x" * (c & 0x1F)
    return {
        0xC4: b"\xc4\x03abc", 0xC5: b"\xc5\x00\x03abc", 0xC6: b"\xc6\x00\x00\x00\x03abc",
        0xC7: b"\xc7\x03\x00abc", 0xC8: b"\xc8\x00\x03\x05abc",
        0xC9: b"\xc9\x00\x00\x00\x0c\xff" + bytes(12),
        0xCA: b"\xca" + struct.pack(">f", 0.1), 0xCB: b"\xcb" + struct.pack(">d", -0.0),
        0xCC: b"\xcc\xff", 0xCD: b"\xcd\xff\xff", 0xCE: b"\xce" + b"\xff" * 4,
        0xCF: b"\xcf" + b"\xff" * 8, 0xD0: b"\xd0\x80", 0xD1: b"\xd1\x80\x00",
        0xD2: b"\xd2\x80" + bytes(3), 0xD3: b"\xd3\x80" + bytes(7),
        0xD4: b"\xd4\x00\x00", 0xD5: b"\xd5\x05ab", 0xD6: b"\xd6\xff" + b"\x00\x00\x00\x07",
        0xD7: b"\xd7\x00\x00\x00\x01\x8b\xcf\xe5\x68\x00", 0xD8: b"\xd8\x07" + bytes(16),
        0xD9: b"\xd9\x03abc", 0xDA: b"\xda\x00\x03abc", 0xDB: b"\xdb\x00\x00\x00\x03abc",
        0xDC: b"\xdc\x00\x02\x01\x02", 0xDD: b"\xdd\x00\x00\x00\x02\x01\x02",
        0xDE: b"\xde\x00\x01\xa1k\x02", 0xDF: b"\xdf\x00\x00\x00\x01\xa1k\x02",
    }[c]


@pytest.mark.parametrize("c", range(256), ids=lambda c: f"{c:02x}")
def test_each_format_byte_whole_and_truncated(c):
    full = _full_value(c)
    outcome = check(full)
    assert isinstance(outcome, Exception) == (c == 0xC1)
    for cut in range(len(full)):
        assert isinstance(check(full[:cut]), Exception)
        check(full[:cut] + b"\xc0" * (len(full) - cut - 1))  # the same length, other bytes


def test_trailing_bytes_are_refused():
    for raw in (b"\x01\x02", b"\x90\x90", b"\xc0\xc0", b"\xa1a\x00", b"\x81\x01\x02\x03"):
        assert isinstance(check(raw), Exception)


@pytest.mark.parametrize("bits", FLOAT32_EDGES, ids=hex)
def test_float32_widens_like_msgpack(bits):
    raw = b"\xca" + struct.pack(">I", bits)
    value = check(raw)
    assert type(value) is float
    assert math.isnan(value) or value == struct.unpack(">f", struct.pack(">I", bits))[0]


@pytest.mark.parametrize("raw, value", [
    (b"\xcf" + b"\xff" * 8, 2**64 - 1),
    (b"\xcf\x80" + bytes(7), 2**63),
    (b"\xd3\x80" + bytes(7), -(2**63)),
    (b"\xd3\x7f" + b"\xff" * 7, 2**63 - 1),
    (b"\xd3" + b"\xff" * 8, -1),
    (b"\xce" + b"\xff" * 4, 2**32 - 1),
    (b"\xd2\x80" + bytes(3), -(2**31)),
    (b"\xd0\x80", -128),
    (b"\xe0", -32),
    (b"\x7f", 127),
    (b"\xcc\x00", 0),
])
def test_integer_extremes(raw, value):
    got = check(raw)
    assert type(got) is int and got == value


@pytest.mark.parametrize("raw", [
    b"\x81\x91\x01\x02",        # [1]: 2
    b"\x81\x90\x02",            # []: 2
    b"\x81\x80\x02",            # {}: 2
    b"\x82\xa1a\x01\x91\x01\x02",
    b"\x81\xdc\x00\x00\x02",    # array16 of 0 as a key
], ids=["list", "empty-list", "empty-map", "after-a-good-pair", "array16"])
def test_unhashable_keys_are_refused(raw):
    assert isinstance(check(raw), Exception)


@pytest.mark.parametrize("raw", [
    b"\xa1\xff", b"\xa2\xc3\x28", b"\xa3\xed\xa0\x80", b"\xa4\xf4\x90\x80\x80", b"\xa2\xc0\xaf",
    b"\xd9\x01\x80", b"\xa1\xc3",
    b"\x81\xa1\xff\x01",            # a short key (the key cache's path)
    b"\x81\xa2a\xff\x01",
    b"\x81\xb1" + b"k" * 16 + b"\xff\x01",  # a key too long for the cache
], ids=lambda r: r.hex())
def test_invalid_utf8_is_refused(raw):
    assert isinstance(check(raw), Exception)


def test_reserved_byte_is_refused():
    for raw in (b"\xc1", b"\x91\xc1", b"\x81\xc1\x01", b"\x81\x01\xc1"):
        assert isinstance(check(raw), Exception)


def _nested(levels: int, innermost: bytes, is_map: bool) -> bytes:
    return (b"\x81\xa1k" if is_map else b"\x91") * levels + innermost


@pytest.mark.parametrize("is_map", [False, True], ids=["arrays", "maps"])
def test_nesting_limit_is_msgpacks(is_map):
    # msgpack refuses a container inside 1024 open ones; the limit counts from `data`.
    for levels in (1023, 1024):
        raw = _nested(levels, b"\x01", is_map)
        assert not isinstance(check(raw), Exception)
        assert not isinstance(check(_nested(levels - 1, b"\x90", is_map)), Exception)
    assert isinstance(check(_nested(1025, b"\x01", is_map)), Exception)
    assert isinstance(check(_nested(1024, b"\x90", is_map)), Exception)
    assert isinstance(check(_nested(1024, b"\x80", is_map)), Exception)
    # Inside an event the arguments are one level down.
    with pytest.raises(ProtocolError):
        _core.decode_msgpack(ENVELOPE + b"\x92\xa2ev" + _nested(1023, b"\x90", is_map))


@pytest.mark.parametrize("is_map", [False, True], ids=["arrays", "maps"])
def test_hostile_nesting_is_refused_without_exhausting_the_stack(is_map):
    raw = _nested(100_000, b"\xc0", is_map)
    start = time.perf_counter()
    with pytest.raises(ProtocolError):
        _core.decode_msgpack_data(raw)
    with pytest.raises(ProtocolError):
        _core.decode_msgpack(ENVELOPE + b"\x92\xa2ev" + raw)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("raw", [
    b"\xdd\xff\xff\xff\xff\x01\x02\x03\x04\x05",
    b"\xdf\xff\xff\xff\xff\x01\x02\x03\x04\x05",
    b"\xdc\xff\xff" + b"\x01" * 100,
    b"\xde\x00\x33" + b"\x01" * 100,   # 51 pairs need 102 bytes
    b"\x91\xdd\x7f\xff\xff\xff\xc0",
    b"\xdb\xff\xff\xff\xff" + b"a" * 10,
    b"\xc6\xff\xff\xff\xff" + b"a" * 10,
    b"\xc9\xff\xff\xff\xff\x05" + b"a" * 10,
    b"\xc9\xff\xff\xff\xff\x00" + b"a" * 10,
], ids=lambda r: r[:6].hex())
def test_huge_declared_lengths_fail_fast_without_allocating(raw):
    with fails_fast(), pytest.raises(ProtocolError):
        _core.decode_msgpack_data(raw)
    assert isinstance(check(raw), Exception)


def test_key_cache_collisions_and_evictions():
    # Far more distinct short keys than cache slots, each seen twice (the second time: last
    # wins), plus keys that share prefixes and lengths around the cache's limit.
    keys = [f"k{i}" for i in range(3000)] + ["x" * n for n in range(20)] + ["é", "ü", "日"]
    pairs = [(k, i) for i, k in enumerate(keys)] + [(k, -i) for i, k in enumerate(keys)]
    raw = b"\xdf" + len(pairs).to_bytes(4, "big") + b"".join(
        msgpack.packb(k) + msgpack.packb(v) for k, v in pairs)
    expected = check(raw)
    assert list(expected) == keys
    for _ in range(3):  # the cache now holds some of these: the same answer again
        assert same(_core.decode_msgpack_data(raw), expected)
    assert same(_core.decode_msgpack_data(msgpack.packb({"k1": 1, "k10": 2, "k100": 3})),
                {"k1": 1, "k10": 2, "k100": 3})


def test_notepack_ext_rules():
    cases = {
        b"\xd4\x00\x00": None,                                   # undefined
        b"\xd4\x00\x01": b"\x01",
        b"\xc7\x01\x00\x00": b"\x00",                            # an ArrayBuffer of one 0 byte
        b"\xc7\x08\x00" + bytes(8): bytes(8),                    # an ArrayBuffer, not a Date
        b"\xd7\x00" + bytes(8): _EPOCH,                          # a Date
        b"\xd7\x00\x7f" + bytes(7): b"\x7f" + bytes(7),          # a Date out of range: bytes
        b"\xd6\x80abcd": b"abcd",                                # type -128: bytes
        b"\xd6\xffabcd": msgpack.Timestamp(0x61626364),
        b"\xd5\x05ab": msgpack.ExtType(5, b"ab"),
    }
    for raw, value in cases.items():
        assert same(check(raw), value), raw
    for raw in (b"\xd6\xfeabcd", b"\xd4\xff\x00", b"\xd7\xff" + b"\xff" * 8, b"\xc7\x03\xffabc"):
        assert isinstance(check(raw), Exception), raw


def test_errors_release_everything():
    # Each input builds part of a structure before it fails; none of it may stay allocated.
    bad = [
        b"\x93\x01\x92\xa3abc\x81\xa1k\x91\xa2\xff\xff\x03",         # invalid UTF-8, deep inside
        b"\x92\x81\xa1k\x92\x01\x02\x81\x91\x01\x02",                 # unhashable key
        b"\x92\x91\x91\xd6\xfeabcd\x01",                               # ExtType refuses -2
        _nested(1025, b"\x01", False),
        _nested(1025, b"\x01", True),
    ]
    good = msgpack.packb(["tick", {"s": "AAPL", "p": 123.45, "q": 100, "t": 1700000000123}])

    def run() -> None:
        for _ in range(300):
            for raw in bad:
                try:
                    _core.decode_msgpack_data(raw)
                except ProtocolError:
                    pass
            _core.decode_msgpack_data(good)

    run()  # warm up (the key cache fills)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        run()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16 * 1024


def test_bytes_like_input():
    raw = msgpack.packb({"a": [1, b"x"]}, use_bin_type=True)
    for data in (raw, bytearray(raw), memoryview(raw)):
        assert same(_core.decode_msgpack_data(data), {"a": [1, b"x"]})
