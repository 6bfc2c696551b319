"""How the polling transport packs its outbox into POSTs: each body (records joined by \\x1e)
fits the server's maxPayload, at most 16 records per POST, the first record always goes."""

from __future__ import annotations

import logging

import pytest

from fastsio._ext import _core
from fastsio.engine import MAX_PACKETS_PER_POST, EngineIO, OpenPacket


def engine(max_payload: int) -> EngineIO:
    eio = EngineIO(_core.Dispatcher(), lambda reason: None, logger=logging.getLogger("t"))
    eio.open = OpenPacket(
        b'{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":%d}'
        % max_payload
    )
    return eio


async def test_a_post_is_filled_up_to_max_payload_exactly() -> None:
    eio = engine(2000)
    eio._outbox = [b"x" * 999, b"y" * 1000, b"z"]  # 999 + 1 + 1000 = 2000: fits exactly
    assert eio._next_post() == 2
    eio._outbox = [b"x" * 1000, b"y" * 1000]  # 2001: the second waits for the next POST
    assert eio._next_post() == 1


async def test_a_post_holds_at_most_16_records() -> None:
    eio = engine(1_000_000)
    eio._outbox = [b"4x"] * 40
    assert eio._next_post() == MAX_PACKETS_PER_POST == 16


async def test_without_a_known_max_payload_only_the_count_limits_a_post() -> None:
    eio = engine(0)
    eio._outbox = [b"x" * 10_000_000, b"y"]
    assert eio._next_post() == 2


@pytest.mark.parametrize("binary", [False, True])
async def test_records_are_encoded_once_at_enqueue(binary: bool) -> None:
    eio = engine(2000)
    eio._enqueue(b"\x00\x01\x02" if binary else b'42["ev"]', binary)
    assert eio._outbox == [b"bAAEC" if binary else b'42["ev"]']
