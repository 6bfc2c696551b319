"""The one fake of the layers above the compiled core: it implements the hooks the core calls
(``ClientHooks``, ``EngineHooks``, ``ListenerHooks``, declared in ``_ext/_core.pyi``) and records
every call, in order, with the argument shapes the stubs promise checked as they arrive.

Pass one instance as both client and engine (``Dispatcher(fake, fake)``), or only as the client.
Renaming a hook in the core breaks the wiring check in tests/unit/test_core_boundary.py, not
silently every test that drives the core.
"""

from __future__ import annotations

from typing import Any

from fastsio._ext import _core


class CoreRecorder:
    """Records every hook call as ``(hook_name, *args)`` in ``calls``.

    ``fail_on`` names hooks that must not be reached (they raise AssertionError), e.g. the
    client's ``on_event`` when only the core's own inline dispatch is under test.
    """

    def __init__(self, *, fail_on: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on = frozenset(fail_on)

    def _record(self, name: str, *args: Any) -> None:
        if name in self.fail_on:
            raise AssertionError(f"{name} reached with {args!r:.200}")
        self.calls.append((name, *args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of one hook, in order."""
        return [c[1:] for c in self.calls if c[0] == name]

    # -- views of the calls that most tests look at --

    @property
    def events(self) -> list[tuple[Any, ...]]:
        """``(nsp, ack_id, data)`` of each event handed to the client."""
        return self.named("on_event")

    @property
    def controls(self) -> list[_core.Packet]:
        return [args[0] for args in self.named("on_control_packet")]

    @property
    def unknown_acks(self) -> list[tuple[Any, ...]]:
        return self.named("on_unknown_ack")

    @property
    def handler_errors(self) -> list[tuple[Any, ...]]:
        return self.named("on_handler_error")

    @property
    def listener_errors(self) -> list[BaseException]:
        return [args[1] for args in self.named("on_listener_error")]

    @property
    def yields(self) -> int:
        return len(self.named("on_dispatch_yield"))

    # -- ClientHooks --

    def on_event(self, nsp: str, ack_id: int | None, data: list[Any]) -> None:
        assert type(nsp) is str
        assert ack_id is None or (type(ack_id) is int and ack_id >= 0)
        assert type(data) is list and data and type(data[0]) is str
        self._record("on_event", nsp, ack_id, data)

    def on_control_packet(self, packet: _core.Packet) -> None:
        assert type(packet) is _core.Packet
        assert packet.type in (_core.CONNECT, _core.DISCONNECT, _core.CONNECT_ERROR)
        assert packet.attachments == 0
        self._record("on_control_packet", packet)

    def on_unknown_ack(self, nsp: str, ack_id: int) -> None:
        assert type(nsp) is str and type(ack_id) is int
        self._record("on_unknown_ack", nsp, ack_id)

    def on_handler_error(self, event: str, nsp: str, exc: BaseException) -> None:
        assert type(event) is str and type(nsp) is str and isinstance(exc, BaseException)
        self._record("on_handler_error", event, nsp, exc)

    # -- EngineHooks --

    def on_eio_open(self, raw: bytes) -> None:
        assert type(raw) is bytes
        self._record("on_eio_open", raw)

    def on_eio_close(self) -> None:
        self._record("on_eio_close")

    def on_eio_noop(self) -> None:
        self._record("on_eio_noop")

    def on_dispatch_yield(self) -> None:
        self._record("on_dispatch_yield")

    # -- ListenerHooks --

    def on_probe_frame(self, listener: _core.EngineListener, data: bytes, binary: bool) -> None:
        assert type(data) is bytes
        self._record("on_probe_frame", listener, data, binary)

    def on_listener_error(self, listener: _core.EngineListener, exc: BaseException) -> None:
        assert isinstance(exc, BaseException)
        self._record("on_listener_error", listener, exc)

    def on_ws_disconnected(self, listener: _core.EngineListener) -> None:
        self._record("on_ws_disconnected", listener)
