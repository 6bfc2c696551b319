"""The reconnection loop (fastsio.reconnection.Reconnector) alone, with fake attempts."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from fastsio import exceptions
from fastsio.reasons import Reason
from fastsio.reconnection import Reconnector


class Rig:
    def __init__(self, attempts: int = 0, delay: float = 0.001, fail: int = 1000) -> None:
        self.settings = SimpleNamespace(
            reconnection_attempts=attempts,
            reconnection_delay=delay,
            reconnection_delay_max=delay,
            randomization_factor=0,
        )
        self.fail = fail
        self.tries = 0
        self.final = False
        self.events: list[tuple[Any, ...]] = []
        self.stopped: list[str] = []
        self.closed: list[str] = []
        self.r = Reconnector(
            self.settings,
            logging.getLogger("test.reconnection"),
            self.connect_once,
            lambda: self.final,
            self.close_session,
            self.stopped.append,
            lambda event, nsp, *args: self.events.append((event, *args)),
        )

    async def connect_once(self) -> None:
        self.tries += 1
        if self.tries <= self.fail:
            raise exceptions.ConnectionError("refused")

    async def close_session(self, reason: str) -> None:
        self.closed.append(reason)


async def test_reconnection_gives_up_after_the_attempts_and_says_so() -> None:
    rig = Rig(attempts=2)
    await rig.r.start(asyncio.get_running_loop())
    assert rig.events == [("reconnect_attempt", 1), ("reconnect_attempt", 2), ("reconnect_failed",)]
    assert rig.stopped == ["reconnection ended"]
    assert not rig.r.running()


async def test_a_successful_attempt_fires_reconnect_and_does_not_stop() -> None:
    rig = Rig(fail=1)
    await rig.r.start(asyncio.get_running_loop())
    assert rig.events == [("reconnect_attempt", 1), ("reconnect_attempt", 2), ("reconnect", 2)]
    assert rig.stopped == []


async def test_abort_ends_the_wait_without_an_attempt() -> None:
    rig = Rig(delay=3600)
    task = rig.r.start(asyncio.get_running_loop())
    await asyncio.sleep(0)
    assert rig.r.running()
    rig.final = True
    await rig.r.abort()
    assert task.done()
    assert rig.tries == 0 and rig.events == []
    assert rig.stopped == [Reason.CLIENT_DISCONNECT]


async def test_an_attempt_that_succeeds_after_the_user_disconnected_is_closed() -> None:
    rig = Rig(fail=0)

    async def connect_once() -> None:
        rig.tries += 1
        rig.final = True  # disconnect() while the attempt was under way

    rig.r.connect_once = connect_once
    await rig.r.start(asyncio.get_running_loop())
    assert rig.closed == [Reason.CLIENT_DISCONNECT]
    assert ("reconnect", 1) not in rig.events
