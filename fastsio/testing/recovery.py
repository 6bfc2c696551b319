"""Connection-state recovery of ``TestServer``, as socket.io >= 4.6 with its in-memory adapter.

Owns the log of ack-less events (with their offsets and targets) and the sockets lost with their
link that may still come back; answers which session a ``{pid, offset}`` restores and which
events it missed. Must not know about sessions, transports or the wire format.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, eq=False)
class _Logged:
    """One ack-less event as emitted."""

    offset: str
    nsp: str
    payload: list[Any]
    rooms: set[str] | None
    skip: set[str]
    at: float


@dataclass(slots=True, eq=False)
class LostSession:
    """A socket lost with its link, which may come back."""

    pid: str
    sid: str
    nsp: str
    rooms: set[str]
    offset: str | None
    expires: float


class RecoveryLog:
    """Events and lost sockets kept ``delay`` seconds (a delay of None keeps nothing)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self._offsets = itertools.count()
        # Every ack-less event emitted, with its targets, in order; and the lost sockets that
        # may still come back, by pid.
        self._events: collections.deque[_Logged] = collections.deque()
        self._lost: dict[str, LostSession] = {}

    def log_event(
        self,
        payload: list[Any],
        to: str | Iterable[str] | None,
        namespace: str | None,
        skip: str | Iterable[str] | None,
    ) -> list[Any]:
        """Log an emitted event; return its payload with the offset appended."""
        assert self.delay is not None
        offset = format(next(self._offsets), "x")
        rooms = None if to is None else ({to} if isinstance(to, str) else set(to))
        skipped = {skip} if isinstance(skip, str) else set(skip or ())
        now = time.monotonic()
        log = self._events
        while log and log[0].at < now - self.delay:
            log.popleft()
        log.append(_Logged(offset, namespace or "/", payload, rooms, skipped, now))
        return [*payload, offset]

    def lose(self, pid: str, sid: str, nsp: str, rooms: set[str]) -> None:
        """A socket lost its link (not closed on purpose): it may come back within the delay."""
        assert self.delay is not None
        self._lost[pid] = LostSession(pid, sid, nsp, rooms, None, time.monotonic() + self.delay)

    def take_lost(self, nsp: str, auth: Any) -> LostSession | None:
        """The lost socket that a CONNECT's ``auth`` (``{pid, offset}``) restores, if any."""
        if self.delay is None or not isinstance(auth, dict):
            return None
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None  # as socket.io: both are needed
        lost = self._lost.pop(pid, None)
        if lost is None or lost.nsp != nsp or lost.expires < time.monotonic():
            return None
        if not any(e.offset == offset for e in self._events):
            return None  # too old: the log no longer reaches back to it
        lost.offset = offset
        return lost

    def missed(self, sid: str, nsp: str, rooms: set[str], offset: str | None) -> list[list[Any]]:
        """Payloads (offset appended) of the events after ``offset`` that reach this socket."""
        out: list[list[Any]] = []
        after = False
        for entry in self._events:
            if not after:
                after = entry.offset == offset
                continue
            if entry.nsp != nsp or sid in entry.skip:
                continue
            if entry.rooms is None or entry.rooms & (rooms | {sid}):
                out.append([*entry.payload, entry.offset])
        return out
