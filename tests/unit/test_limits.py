"""The decoders' limits, directly: sizes counted as on the wire, refusals before the work."""

from __future__ import annotations

import base64
import logging
import struct
import tracemalloc

import picows
import pytest

import fastsio
from fastsio import exceptions
from fastsio._ext import _core

MiB = 1024 * 1024


def _peak_bytes(fn: object, *args: object, **kwargs: object) -> tuple[int, BaseException | None]:
    """Peak bytes allocated through Python's allocators while fn runs, and what it raised."""
    tracemalloc.start()
    try:
        error = None
        try:
            fn(*args, **kwargs)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            error = exc
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


# -- polling payloads -----------------------------------------------------------------------------


def test_payload_packet_of_exactly_the_limit_passes_one_more_byte_is_refused() -> None:
    packet = '4["ok","' + "x" * 90 + '"]'
    assert _core.decode_eio_payload(packet, max_message_size=len(packet)) == [(4, packet[1:])]
    with pytest.raises(exceptions.PayloadTooLargeError, match=f"of {len(packet)} bytes"):
        _core.decode_eio_payload(packet, max_message_size=len(packet) - 1)


def test_payload_text_is_sized_in_utf8_bytes_like_a_websocket_frame() -> None:
    packet = '4["' + "é" * 50 + '"]'  # 56 characters, 106 bytes
    size = len(packet.encode())
    assert _core.decode_eio_payload(packet, max_message_size=size)[0][1] == packet[1:]
    with pytest.raises(exceptions.PayloadTooLargeError, match=f"of {size} bytes"):
        _core.decode_eio_payload(packet.encode(), max_message_size=size - 1)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1000, 1001, 1002])
def test_payload_binary_is_sized_decoded(n: int) -> None:
    part = "b" + base64.b64encode(b"\x01" * n).decode()
    assert _core.decode_eio_payload(part, max_message_size=max(n, 1)) == [(4, b"\x01" * n)]
    if n > 1:  # (a limit of 0 is none)
        with pytest.raises(exceptions.PayloadTooLargeError, match=f"binary message of {n} bytes"):
            _core.decode_eio_payload(part, max_message_size=n - 1)


def test_payload_without_a_message_limit_takes_any_size() -> None:
    packet = "4" + "x" * 100_000
    assert _core.decode_eio_payload(packet, max_message_size=0) == [(4, packet[1:])]


def test_payload_splitting_stops_at_the_packet_limit() -> None:
    payload = "\x1e".join(["6"] * 1_000_000)
    peak, error = _peak_bytes(_core.decode_eio_payload, payload, max_packets=10)
    assert isinstance(error, exceptions.ProtocolError)
    assert "too many packets" in str(error)
    # Splitting all of it first cost a million strings (tens of MB) before the check.
    assert peak < MiB


def test_payload_packet_limit_is_reached_before_a_later_bad_packet() -> None:
    with pytest.raises(exceptions.ProtocolError, match="too many packets"):
        _core.decode_eio_payload("6\x1e6\x1e6\x1e\x1e", max_packets=2)


def test_poll_body_limit_scales_the_message_limit() -> None:
    assert _core.poll_body_limit(0) == 0
    assert _core.poll_body_limit(MiB) == 2 * MiB + MiB
    assert _core.poll_body_limit(100) == 200 + MiB


# -- msgpack ----------------------------------------------------------------------------------------


def test_decode_msgpack_data_walks_before_allocating_nested_array32() -> None:
    # Every level claims as many slots as bytes remain; the decoder would allocate them all.
    size = 16 * 1024
    raw = b"".join(struct.pack(">BI", 0xDD, size) for _ in range(size // 5))
    peak, error = _peak_bytes(_core.decode_msgpack_data, raw)
    assert isinstance(error, exceptions.ProtocolError)
    assert "truncated or invalid" in str(error)
    assert peak < MiB


def test_decode_msgpack_data_refuses_trailing_bytes() -> None:
    with pytest.raises(exceptions.ProtocolError, match="trailing bytes"):
        _core.decode_msgpack_data(b"\x01\x02")


def test_decode_msgpack_data_still_decodes_nested_values() -> None:
    import msgpack

    value = {"a": [1, [2, [3, {"b": b"x"}]]], "c": "d"}
    assert _core.decode_msgpack_data(msgpack.packb(value)) == value


# -- placeholders -------------------------------------------------------------------------------------


def test_placeholder_num_is_described_by_type_and_a_short_repr() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(exceptions.ProtocolError) as info:
        _core.reconstruct(["ok", {"_placeholder": True, "num": deep}], [b"x"])
    message = str(info.value)
    assert "non-integer num: list [[[[...]]]]" in message
    assert len(message) < 200


def test_placeholder_num_long_string_is_truncated() -> None:
    with pytest.raises(exceptions.ProtocolError) as info:
        _core.reconstruct({"_placeholder": True, "num": "9" * 100_000}, [b"x"])
    assert "non-integer num: str '9999" in str(info.value)
    assert len(str(info.value)) < 200


# -- the client option and picows's log --------------------------------------------------------------


def test_max_message_size_defaults_to_100_mib_and_refuses_negative_values() -> None:
    assert _core.DEFAULT_MAX_MESSAGE_SIZE == 100 * MiB
    assert fastsio.AsyncClient().max_message_size == 100 * MiB
    assert fastsio.AsyncClient(max_message_size=0).max_message_size == 0
    with pytest.raises(ValueError, match="max_message_size"):
        fastsio.AsyncClient(max_message_size=-1)


def test_picows_logger_drops_only_its_size_refusal_line(caplog: pytest.LogCaptureFixture) -> None:
    from fastsio.transports.websocket import PICOWS_LOGGER

    too_big = (picows.WSCloseCode.MESSAGE_TOO_BIG, "Received frame ..., 5 > 4")
    other = (picows.WSCloseCode.PROTOCOL_ERROR, "Received frame with invalid opcode=0x3")
    with caplog.at_level(logging.INFO, logger="picows.client"):
        PICOWS_LOGGER.error("WS parser error: %s, initiate disconnect", too_big)
        PICOWS_LOGGER.error("WS parser error: %s, initiate disconnect", other)
        PICOWS_LOGGER.info("WS connection established: %s", "x")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "invalid opcode" in messages[0] and "established" in messages[1]
