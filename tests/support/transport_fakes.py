"""The fake of what a transport reports to: the ``TransportHooks`` of fastsio.transports."""

from __future__ import annotations


class SteadySession:
    """The TransportHooks of a session that never fails: a transport error or close reported
    to it fails the test. ``state`` is what a transport's feeding loop looks at."""

    state = "connected"

    def on_transport_error(self, transport: object, exc: BaseException) -> None:
        raise AssertionError(f"unexpected transport error {exc!r}")

    def on_transport_closed(self, transport: object, reason: str, exc: object) -> None:
        raise AssertionError(f"unexpected transport close {reason}")
