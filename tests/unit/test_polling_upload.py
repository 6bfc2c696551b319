"""How the polling transport packs its outbox into POSTs: each body (records joined by \\x1e)
fits the server's maxPayload, at most 16 records per POST, the first record always goes; each
packet is encoded once, when the core hands it over (v4 and v3 records)."""

from __future__ import annotations

from collections import deque

import pytest

from fastsio._ext import _core
from fastsio._flag import Flag
from fastsio.transports.polling import MAX_PACKETS_PER_POST, PollingTransport, PollingTransport3


class Session:
    """The TransportHooks of a session that never fails."""

    state = "connected"

    def on_transport_error(self, transport: object, exc: BaseException) -> None:
        raise AssertionError(f"unexpected transport error {exc!r}")

    def on_transport_closed(self, transport: object, reason: str, exc: object) -> None:
        raise AssertionError(f"unexpected transport close {reason}")


def polling(max_payload: int, cls: type[PollingTransport] = PollingTransport) -> PollingTransport:
    transport = cls(_core.Dispatcher(), Session(), "http://h/socket.io/?EIO=4", read_gate=Flag())
    transport.opened("s", max_payload, 50)
    return transport


async def test_a_post_is_filled_up_to_max_payload_exactly() -> None:
    t = polling(2000)
    t._outbox = deque([b"x" * 999, b"y" * 1000, b"z"])  # 999 + 1 + 1000 = 2000: fits exactly
    assert t._next_post() == 2
    t._outbox = deque([b"x" * 1000, b"y" * 1000])  # 2001: the second waits for the next POST
    assert t._next_post() == 1


async def test_a_post_holds_at_most_16_records() -> None:
    t = polling(1_000_000)
    t._outbox = deque([b"4x"] * 40)
    assert t._next_post() == MAX_PACKETS_PER_POST == 16


async def test_without_a_known_max_payload_only_the_count_limits_a_post() -> None:
    t = polling(0)
    t._outbox = deque([b"x" * 10_000_000, b"y"])
    assert t._next_post() == 2


@pytest.mark.parametrize("binary", [False, True])
async def test_records_are_encoded_once_at_enqueue(binary: bool) -> None:
    t = polling(2000)
    t._enqueue(b"\x00\x01\x02" if binary else b'42["ev"]', binary)
    assert list(t._outbox) == [b"bAAEC" if binary else b'42["ev"]']


@pytest.mark.parametrize(
    ("data", "binary", "record"),
    [
        (b'42["ev"]', False, b'8:42["ev"]'),
        # The length counts UTF-16 code units, as JavaScript's String.length: one for "é",
        # two for a character outside the BMP.
        ('42["é😀"]'.encode(), False, b'9:42["\xc3\xa9\xf0\x9f\x98\x80"]'),
        (b"\x00\x01\x02", True, b"6:b4AAEC"),
    ],
    ids=["ascii", "utf16-units", "binary"],
)
async def test_engineio3_records_are_length_prefixed_at_enqueue(
    data: bytes, binary: bool, record: bytes
) -> None:
    t = polling(0, PollingTransport3)
    t._enqueue(data, binary)
    assert list(t._outbox) == [record]


class RecordingPolling(PollingTransport):
    """POSTs nothing: records what each POST would carry."""

    __slots__ = ("posted",)

    async def _post(self, records: list[bytes]) -> None:
        self.posted.append(records)


async def test_posts_take_records_in_order_from_the_outbox() -> None:
    t = polling(0, RecordingPolling)
    assert isinstance(t, RecordingPolling)
    t.posted = posted = []
    for i in range(40):
        t._enqueue(b"4%d" % i, False)
    await t._flush_outbox()
    assert [len(p) for p in posted] == [16, 16, 8]
    assert [r for p in posted for r in p] == [b"4%d" % i for i in range(40)]
    assert not t._outbox
