"""The core's JSON decoder: the fast path must agree with orjson wherever it accepts input.

``_core.json_fast(b)`` is the fast decoder alone: ``(value,)``, or ``None`` when it declines
(lone surrogate escapes, deep nesting, anything invalid), in which case the core hands the
payload to orjson. The property that matters: whenever it accepts, orjson accepts too and
returns an equal value of the same types, integers beyond 64 bits excepted (the fast decoder
keeps them exact, as the standard library and so python-socketio do; orjson rounds them to
floats); where it declines, ``_core.json_loads`` (fast path + fallback) equals ``orjson.loads``.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsio._ext import _core

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

SCALE = float(os.environ.get("FASTSIO_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=int(800 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down; floats compared bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def orjson_or_error(data: bytes) -> tuple[bool, Any]:
    try:
        return True, orjson.loads(data)
    except orjson.JSONDecodeError:
        return False, None


def check(data: bytes) -> bool:
    """The fast decoder agrees with orjson on data; returns whether it accepted it."""
    fast = _core.json_fast(data)
    ok, ref = orjson_or_error(data)
    if fast is not None:
        assert ok, f"fast decoder accepted what orjson rejects: {data!r}"
        # Integers beyond 64 bits: exact, as the standard library (python-socketio) decodes
        # them; orjson rounds them to floats.
        assert same(fast[0], ref) or same(fast[0], json.loads(data)), (data, fast[0], ref)
    if ok and fast is None:
        assert same(_core.json_loads(data), ref), data
    return fast is not None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20).filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=10).filter(
        lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)), children, max_size=6),
    max_leaves=30,
)


@FUZZ
@given(JSON)
def test_documents_from_orjson_and_json_dumps(value: Any) -> None:
    check(orjson.dumps(value))
    check(json.dumps(value, ensure_ascii=False).encode())
    check(json.dumps(value, ensure_ascii=True).encode())
    check(json.dumps(value, indent=2, ensure_ascii=False).encode())


@FUZZ
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_bit_for_bit(x: float) -> None:
    for text in (repr(x), f"{x:.17g}", f"{x:e}", f"{x:.3e}", f"{x:.12f}"):
        if "inf" in text or "nan" in text or not any(c in text for c in ".eE"):
            continue  # (an integer literal is an int in JSON)
        got = _core.json_fast(text.encode())
        if got is None:
            # Only overlong literals and overflows (orjson rejects those) are declined.
            assert len(text) > 64 or math.isinf(float(text)), text
        else:
            assert same(got[0], float(text)), text


DIGITS = st.text("0123456789", min_size=1, max_size=25)


@FUZZ
@given(
    st.booleans(),
    DIGITS.filter(lambda d: d == "0" or d[0] != "0"),
    st.one_of(st.none(), DIGITS),
    st.one_of(st.none(), st.tuples(st.sampled_from(["e", "E", "e+", "e-", "E-"]), DIGITS)),
)
def test_decimal_numbers_are_correctly_rounded(
    neg: bool, whole: str, frac: str | None, exp: tuple[str, str] | None
) -> None:
    text = ("-" if neg else "") + whole
    if frac is not None:
        text += "." + frac
    if exp is not None:
        text += exp[0] + exp[1]
    data = text.encode()
    check(data)
    got = _core.json_fast(data)
    if got is not None and isinstance(got[0], float):
        assert same(got[0], float(text)), text


@pytest.mark.parametrize(
    "text",
    [
        "0", "-0", "-0.0", "0.0", "1", "-1", "999999999999999999", "-999999999999999999",
        "1000000000000000000", "9223372036854775807", "-9223372036854775808",
        "18446744073709551615", "123.45", "0.1", "1e22", "1e23", "9007199254740993",
        "9007199254740993.0", "1.7976931348623157e308", "1e308", "1e309", "-1e309", "5e-324",
        "2e-324", "1e-400", "1E5", "1e+5", "1.5E-5", "0.0000001", "123456789012345.6",
        "01", "-", "--1", "+1", "1.", ".5", "1e", "1e+", "1.e5", "0x10", "NaN", "Infinity",
        "-Infinity", "1_000", "١",
    ],
)
def test_number_edge_cases(text: str) -> None:
    check(text.encode())


@pytest.mark.parametrize(
    "data",
    [
        b"", b" ", b"[", b"]", b"{", b"}", b"[1,]", b"[,1]", b"[1 2]", b'{"a"}', b'{"a":}',
        b'{"a":1,}', b'{a:1}', b"{'a':1}", b'{"a":1 "b":2}', b'["a"', b'"abc', b'"a\\"b"',
        b'"\\u00e9"', b'"\\ud83d"', b'"\\ud83d\\ude00"', b'"tab\there"', b'"nl\nhere"',
        b'"\x7f"', b'"\xc3\xa9"', b'"\xc3"', b'"\xed\xa0\x80"', b'"\xf0\x9f\x8e\x89"',
        b'"\xef\xbf\xbf"', b'"\xc0\xaf"', b"true", b"false", b"null", b"tru", b"nul",
        b"truex", b"[true,false,null]", b" \t\r\n[ 1 , 2 ]\n ", b"[1]x", b"\xef\xbb\xbf[1]",
        b"[]", b"{}", b"[[]]", b'{"":""}', b'{"a":1,"a":2}', b"[" * 127 + b"]" * 127,
        b"[" * 129 + b"]" * 129, b"[" * 5000 + b"]" * 5000, b"[1]\x00",
    ],
)
def test_syntax_edge_cases(data: bytes) -> None:
    check(data)


def test_the_common_shapes_take_the_fast_path() -> None:
    for data in (
        b'["tick",{"s":"AAPL","p":123.45,"q":100,"t":1700000000123}]',
        b'["chat","h\xc3\xa9llo",[1,2.5,-3],{"nested":{"ok":true,"none":null}}]',
        b'[{"_placeholder":true,"num":0}]',
        b'{"sid":"abc","pid":"def"}',
    ):
        assert check(data), data


def test_escapes_are_decoded() -> None:
    for data in (
        b'["a\\nb"]', b'["\\u00e9"]', b'["\\"\\\\\\/\\b\\f\\n\\r\\t"]',
        b'["\\ud83d\\ude00 \\u0000 \\uFFFF"]', b'{"k\\u0041y":"\\u65e5\\u672c"}',
        b'["' + b"\\n" * 300 + b'"]', b'["\\u00e9' + "é".encode() * 200 + b'"]',
    ):
        assert check(data), data


def test_integers_beyond_64_bits_are_exact() -> None:
    for text in ("123456789012345678901", "-98765432109876543210987654321", "1" + "0" * 400):
        assert _core.json_fast(f"[{text}]".encode()) == ([int(text)],)
    assert _core.json_fast(b"[" + b"1" * 5000 + b"]") is None  # over CPython's digit limit


def test_lone_surrogates_fall_back() -> None:
    for data in (b'["\\ud83d"]', b'["\\ude00"]', b'["\\ud83d\\u0041"]', b'["\\ud83dx"]'):
        assert _core.json_fast(data) is None
        ok, ref = orjson_or_error(data)
        if ok:
            assert same(_core.json_loads(data), ref)


@pytest.mark.parametrize(
    "data",
    [b'"\\x"', b'"\\u12"', b'"\\u12g4"', b'"\\', b'"\\u', b'"a\\"', b'"\\\n"',
     b'"\\u00e9\xff"', b'"\\n\x01"'],
)
def test_bad_escapes(data: bytes) -> None:
    assert not check(data)


def test_string_cache_survives_collisions_and_eviction() -> None:
    rng = random.Random(7)
    keys = {"".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in
                    range(rng.randint(0, 16))) for _ in range(20000)}
    for key in keys:
        doc = {key: key, "k" + key: [key, key[:3]]}
        assert same(_core.json_loads(orjson.dumps(doc)), doc)


@FUZZ
@given(st.binary(max_size=80))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(JSON, st.data())
def test_mutated_documents(value: Any, data: st.DataObject) -> None:
    doc = bytearray(orjson.dumps(value))
    for _ in range(data.draw(st.integers(1, 3))):
        if not doc:
            break
        i = data.draw(st.integers(0, len(doc) - 1))
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if op == "flip":
            doc[i] = data.draw(st.sampled_from(b'[]{}",:0123456789.eE+-tfn \\\x00\x80\xff'))
        elif op == "delete":
            del doc[i]
        elif op == "insert":
            doc.insert(i, data.draw(st.integers(0, 255)))
        else:
            del doc[i:]
    check(bytes(doc))
