"""How the polling transport packs its outbox into POSTs: each body (records joined by \\x1e)
fits the server's maxPayload, the first record always goes, records keep their order; a server
that counts packets (python-engineio, or one that announces no maxPayload) gets at most 16 per
POST; each packet is encoded once, when the core hands it over (v4 and v3 records). Emitters
wait while the outbox is over its high-water mark (backpressure)."""

from __future__ import annotations

import asyncio

import pytest
from support.transport_fakes import SteadySession

from fastsio._ext import _core
from fastsio._flag import Flag
from fastsio.handshake import OpenPacket
from fastsio.transports.polling import (
    MAX_PACKETS_PER_POST,
    POLL_OUTBOX_HIGH_WATER,
    PollingTransport,
    PollingTransport3,
)

# The open packets of the two server families, key for key as they write them.
NODE_OPEN = b'{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":%d}'
PY_ENGINEIO_OPEN = (
    b'{"sid":"s","upgrades":[],"pingTimeout":20000,"pingInterval":25000,"maxPayload":%d}'
)


def polling(
    max_payload: int,
    cls: type[PollingTransport] = PollingTransport,
    open_packet: bytes = NODE_OPEN,
) -> PollingTransport:
    transport = cls(_core.Dispatcher(), SteadySession(), "http://h/socket.io/?EIO=4", read_gate=Flag())
    opened = OpenPacket(open_packet % max_payload)
    transport.opened("s", max_payload, 50, opened.counts_packets)
    transport.attach()
    return transport


def fill(t: PollingTransport, records: list[bytes]) -> None:
    for r in records:
        t._enqueue(r, False)


async def test_a_post_is_filled_up_to_max_payload_exactly() -> None:
    t = polling(2000)
    fill(t, [b"x" * 999, b"y" * 1000, b"z"])  # 999 + 1 + 1000 = 2000: fits exactly
    assert t._next_post() == 2
    t = polling(2000)
    fill(t, [b"x" * 1000, b"y" * 1000])  # 2001: the second waits for the next POST
    assert t._next_post() == 1


async def test_a_post_to_python_engineio_holds_at_most_16_records() -> None:
    t = polling(1_000_000, open_packet=PY_ENGINEIO_OPEN)
    assert t.counts_packets
    fill(t, [b"4x"] * 40)
    assert t._next_post() == MAX_PACKETS_PER_POST == 16


async def test_a_post_to_a_node_server_is_bounded_by_max_payload_only() -> None:
    t = polling(1_000_000)
    assert not t.counts_packets
    fill(t, [b"4x"] * 40)
    assert t._next_post() == 40
    t = polling(2000)
    fill(t, [b"x" * 10] * 500)  # i records are 11 * i - 1 bytes: 181 fit in 2000
    assert t._next_post() == 181


async def test_without_a_known_max_payload_only_the_count_limits_a_post() -> None:
    t = polling(0)
    assert t.counts_packets
    fill(t, [b"x" * 10_000_000, b"y"])
    assert t._next_post() == 2


def test_python_engineio_is_told_from_node_by_its_open_packet() -> None:
    assert OpenPacket(PY_ENGINEIO_OPEN % 1_000_000).counts_packets
    assert not OpenPacket(NODE_OPEN % 1_000_000).counts_packets
    assert OpenPacket(NODE_OPEN.replace(b',"maxPayload":%d', b"")).counts_packets


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


async def test_posts_to_a_counting_server_take_records_in_order_from_the_outbox() -> None:
    t = polling(0, RecordingPolling)
    assert isinstance(t, RecordingPolling)
    t.posted = posted = []
    for i in range(40):
        t._enqueue(b"4%d" % i, False)
    await t._flush_outbox()
    assert [len(p) for p in posted] == [16, 16, 8]
    assert [r for p in posted for r in p] == [b"4%d" % i for i in range(40)]
    assert not t._outbox


@pytest.mark.parametrize("max_payload", [1024, 5000, 1_000_000])
async def test_many_emits_go_in_few_posts_within_max_payload_in_order(max_payload: int) -> None:
    t = polling(max_payload, RecordingPolling)
    assert isinstance(t, RecordingPolling)
    t.posted = posted = []
    for i in range(3000):
        payload = {"seq": i, "pad": "p" * (i % 97)}
        assert t.dispatcher.send_event("/", "tick", payload) in (1, 2)
    expected = list(t._outbox)
    await t._flush_outbox()
    assert [r for post in posted for r in post] == expected  # every record once, in order
    assert all(sum(map(len, p)) + len(p) - 1 <= max_payload for p in posted)
    # Greedy filling: no two consecutive POSTs could have been one.
    for a, b in zip(posted, posted[1:], strict=False):
        assert sum(map(len, a)) + len(a) + len(b[0]) > max_payload
    assert not t._outbox and t._outbox_bytes == 0
    assert expected[:2] == [b'42["tick",{"seq":0,"pad":""}]', b'42["tick",{"seq":1,"pad":"p"}]']


async def test_emitters_wait_while_the_outbox_is_over_its_high_water_mark() -> None:
    t = polling(100_000, RecordingPolling)
    assert isinstance(t, RecordingPolling)
    t.posted = posted = []
    assert t._outbox_high == POLL_OUTBOX_HIGH_WATER  # 2 x 100 kB is under the floor
    conn = t.dispatcher
    results = []
    while True:
        result = conn.send_event("/", "tick", "x" * 985)  # a 998-byte record
        results.append(result)
        if result == 2:
            break
    assert results.count(2) == 1 and t._outbox_bytes > t._outbox_high
    assert t._outbox_bytes <= t._outbox_high + len(t._outbox[-1])  # one record past it, no more
    assert conn.writing_paused
    waiter = conn.wait_writable()
    assert waiter is not None and not waiter.done()
    # A POST taking the outbox under half the mark lets the emitters go on.
    await t._flush_outbox()
    assert waiter.done() and not conn.writing_paused and conn.wait_writable() is None
    assert sum(len(p) for p in posted) == len(results)


async def test_emitters_waiting_on_polling_are_released_when_the_link_goes() -> None:
    t = polling(100_000)
    conn = t.dispatcher
    while conn.send_event("/", "tick", "x" * 985) != 2:
        pass
    waiter = conn.wait_writable()
    assert waiter is not None
    conn.detach_transport()
    await asyncio.sleep(0)
    assert waiter.done() and not conn.writing_paused


class SlowPolling(PollingTransport):
    """Each POST waits until the test lets it finish."""

    __slots__ = ("gate",)

    async def _post(self, records: list[bytes]) -> None:
        await self.gate.wait()
        self.gate.clear()


async def test_a_slow_server_keeps_the_outbox_bounded() -> None:
    # A publisher faster than the POSTs: the emitting task waits instead of queuing everything.
    t = polling(100_000, SlowPolling)
    assert isinstance(t, SlowPolling)
    t.gate = gate = asyncio.Event()
    conn = t.dispatcher
    peak = 0

    async def publisher() -> None:
        nonlocal peak
        for _ in range(2000):  # 2 MB of records against a 256 kB mark
            if conn.send_event("/", "tick", "x" * 985) == 2:
                waiter = conn.wait_writable()
                if waiter is not None:
                    await waiter
            peak = max(peak, t._outbox_bytes)

    post_loop = asyncio.ensure_future(t._post_loop())
    task = asyncio.ensure_future(publisher())
    while not task.done():
        await asyncio.sleep(0)
        gate.set()
    t._post_stopping = True
    t._outbox_ready.set()
    while not post_loop.done():
        await asyncio.sleep(0)
        gate.set()
    assert not t._outbox
    assert peak <= t._outbox_high + 1000
