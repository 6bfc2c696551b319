"""The reconnection loop: wait, try again, give up; one loop at a time, abortable.

Owns the loop's task, its abort signal and the ``reconnect_attempt``/``reconnect``/
``reconnect_failed`` events. The delays come from ``backoff.py`` (the only place that math is
written); the settings are read at every attempt from an object with python-socketio's
attribute names (the client), so changing them on a running client takes effect.

It must not know what an attempt does (``connect_once``), what ends a session
(``close_session``) or what "final" means for packets and namespaces (``stop_for_good``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from . import exceptions
from ._flag import Flag
from .backoff import reconnect_delay
from .reasons import Reason


class ReconnectionSettings(Protocol):
    """python-socketio's reconnection options, as the client carries them."""

    reconnection_attempts: int
    reconnection_delay: float
    reconnection_delay_max: float
    randomization_factor: float


@dataclass(eq=False)
class Reconnector:
    """Runs the reconnection loop of a client.

    :param connect_once: one connection attempt; raises ``ConnectionError`` when it fails.
    :param is_final: true once no reconnection may follow (the user disconnected).
    :param close_session: ends a session an attempt opened after the user disconnected.
    :param stop_for_good: ``stop_for_good(reason)``: the loop ended without a connection.
    :param trigger: ``trigger(event, nsp, *args)`` fires a client life-cycle event.
    """

    settings: ReconnectionSettings
    logger: logging.Logger
    connect_once: Callable[[], Awaitable[None]]
    is_final: Callable[[], bool]
    close_session: Callable[[str], Awaitable[None]]
    stop_for_good: Callable[[str], None]
    trigger: Callable[..., None]
    task: asyncio.Task[None] | None = field(default=None, init=False)
    _abort: Flag | None = field(default=None, init=False)

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        self.task = loop.create_task(self.run())
        return self.task

    def reset(self) -> None:
        """A new ``connect()``: a fresh abort signal."""
        self._abort = Flag()

    async def abort(self) -> None:
        """Stop the loop and wait until it has ended (closing what an attempt opened)."""
        if self._abort is not None:
            self._abort.set()
        task = self.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            try:
                # Shielded: cancelling the caller must not cancel the loop mid-attempt (it
                # ends on its own now that is_final() holds, closing what it opened).
                await asyncio.shield(task)
            except Exception:
                pass

    async def run(self) -> None:
        if self._abort is None:
            self._abort = Flag()
        self._abort.clear()
        s = self.settings
        attempt = 0
        reason = "reconnection ended"
        while True:
            delay = reconnect_delay(
                attempt, s.reconnection_delay, s.reconnection_delay_max, s.randomization_factor
            )
            self.logger.info("Reconnecting in %.2f s", delay)
            try:
                await asyncio.wait_for(self._abort.wait(), delay)
                reason = Reason.CLIENT_DISCONNECT
                break  # aborted
            except asyncio.TimeoutError:
                pass
            if self.is_final():
                reason = Reason.CLIENT_DISCONNECT
                break
            attempt += 1
            self.trigger("reconnect_attempt", "/", attempt)
            try:
                await self.connect_once()
            except exceptions.ConnectionError as exc:
                self.logger.info("Reconnection attempt %d failed: %s", attempt, exc)
            else:
                if self.is_final():
                    # The user disconnected during the attempt: it ends like any session.
                    await self.close_session(Reason.CLIENT_DISCONNECT)
                    return
                self.logger.info("Reconnected after %d attempt(s)", attempt)
                self.trigger("reconnect", "/", attempt)
                return
            if s.reconnection_attempts and attempt >= s.reconnection_attempts:
                self.logger.info("Giving up after %d reconnection attempts", attempt)
                self.trigger("reconnect_failed", "/")
                break
        self.stop_for_good(reason)
