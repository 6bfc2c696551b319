"""The compiled msgpack encoder of the send path: byte for byte msgpack.packb (the encoder it
replaced), decodable by python-socketio's msgpack packet and by our own decoder."""

from __future__ import annotations

import datetime
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import msgpack_packet

from fastsio._ext import _core
from fastsio._ext._core import decode_msgpack, encode_msgpack, msgpack_encode


def packb(value: Any) -> bytes:
    """The reference: what the send path used before (msgpack's own Packer per call)."""
    return msgpack.packb(value, use_bin_type=True, default=_core._msgpack_default)  # type: ignore[no-any-return]


def reference_packet(t: int, nsp: str, data: Any, ack_id: int | None) -> bytes:
    d: dict[str, Any] = {"type": t, "nsp": nsp or "/"}
    if data is not None:
        d["data"] = data
    if ack_id is not None:
        d["id"] = ack_id
    return packb(d)


INT_EDGES = [
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -(2**15),
    -(2**15) - 1,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
]


@pytest.mark.parametrize("value", INT_EDGES)
def test_integers_take_msgpacks_smallest_form(value: int) -> None:
    assert msgpack_encode(value) == packb(value)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536])
def test_str_bin_array_and_map_headers_at_each_size_boundary(n: int) -> None:
    assert msgpack_encode("s" * n) == packb("s" * n)
    assert msgpack_encode(b"b" * n) == packb(b"b" * n)
    assert msgpack_encode([0] * n) == packb([0] * n)
    assert msgpack_encode(tuple(range(n))) == packb(list(range(n)))
    d = {f"k{i}": i for i in range(n)}
    assert msgpack_encode(d) == packb(d)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        1.5,
        -0.0,
        float("inf"),
        "",
        "é☃🎉",
        b"",
        bytearray(b"ab"),
        memoryview(b"cd"),
        datetime.datetime(2020, 1, 2, 3, 4, 5, 678000),
        datetime.datetime(1969, 12, 31, tzinfo=datetime.timezone.utc),
        {1: "int key"},
        {"nested": [{"a": (1, 2)}, [[[]]]]},
        2**64 - 1,
    ],
)
def test_other_values_match_msgpack(value: Any) -> None:
    assert msgpack_encode(value) == packb(value)


def test_subclasses_are_encoded_as_msgpack_encodes_them() -> None:
    class S(str):
        pass

    class L(list):  # type: ignore[type-arg]
        pass

    class D(dict):  # type: ignore[type-arg]
        pass

    value = [S("x"), L([1, 2]), D(a=1), True, 3]
    assert msgpack_encode(value) == packb(value)


@pytest.mark.parametrize(
    "value, error",
    [
        (2**64, TypeError),  # beyond 64 bits: msgpack's default hook refuses it
        (-(2**63) - 1, TypeError),
        ("\ud800", UnicodeEncodeError),
        (object(), TypeError),
        ({1, 2}, TypeError),
    ],
)
def test_unencodable_values_raise_what_msgpack_raises(value: Any, error: type) -> None:
    with pytest.raises(error):
        packb(["x", value])
    with pytest.raises(error):
        msgpack_encode(["x", value])
    with pytest.raises(error):
        encode_msgpack(2, "/", ["x", value])


def test_a_self_referencing_list_raises_instead_of_recursing_forever() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        msgpack_encode(loop)


def test_deep_nesting_within_msgpacks_limit_still_encodes() -> None:
    value: Any = "leaf"
    for _ in range(400):
        value = [value]
    assert msgpack_encode(value) == packb(value)


@pytest.mark.parametrize(
    "t, nsp, data, ack_id",
    [
        (2, "/", ["tick", {"sym": "AAPL", "price": 1.5}], None),
        (2, "/chat", ["x", 1, "two", None], 12),
        (3, "/", ["ok"], 2**40),
        (0, "/", {"token": "t"}, None),
        (0, "", None, None),
        (1, "/admin", None, None),
        (5, "/", ["bin", b"\x00"], None),  # BINARY_EVENT is EVENT in this format
        (6, "/", [b"\x01"], 3),
    ],
)
def test_packets_are_byte_for_byte_the_dict_msgpack_would_pack(
    t: int, nsp: str, data: Any, ack_id: int | None
) -> None:
    expected_type = {5: 2, 6: 3}.get(t, t)
    assert encode_msgpack(t, nsp, data, ack_id) == reference_packet(
        expected_type, nsp, data, ack_id
    )


def test_python_socketio_decodes_our_packets() -> None:
    frame = encode_msgpack(2, "/chat", ["tick", {"a": [1, 2.5, None]}, b"\x00\xff"], 9)
    pkt = msgpack_packet.MsgPackPacket(encoded_packet=frame)
    assert (pkt.packet_type, pkt.namespace, pkt.id) == (2, "/chat", 9)
    assert pkt.data == ["tick", {"a": [1, 2.5, None]}, b"\x00\xff"]


def test_disconnect_carries_no_data_key() -> None:
    # The JS decoder rejects `data: nil` on DISCONNECT.
    assert msgpack.unpackb(encode_msgpack(1, "/x")) == {"type": 1, "nsp": "/x"}


leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=20)
        | st.tuples(children, children)
        | st.dictionaries(
            st.text(max_size=10) | st.integers(min_value=-(2**63), max_value=2**64 - 1),
            children,
            max_size=20,
        )
    ),
    max_leaves=60,
)


@given(values)
@settings(max_examples=400, deadline=None)
def test_any_value_encodes_as_msgpack_does(value: Any) -> None:
    assert msgpack_encode(value) == packb(value)


@given(
    st.text(max_size=12),
    st.lists(values, max_size=5),
    st.none() | st.integers(min_value=0, max_value=2**63),
)
@settings(max_examples=300, deadline=None)
def test_event_packets_round_trip_through_our_decoder(
    name: str, args: list[Any], ack_id: int | None
) -> None:
    nsp = "/" if not name else "/" + name
    frame = encode_msgpack(2, nsp, ["ev", *args], ack_id)
    pkt = decode_msgpack(frame)
    assert (pkt.type, pkt.nsp, pkt.id) == (2, nsp, ack_id)
    # msgpack has no tuple: they come back as lists, as from any socket.io peer.
    assert pkt.data == msgpack.unpackb(packb(["ev", *args]), strict_map_key=False)
