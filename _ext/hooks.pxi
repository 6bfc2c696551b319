# The boundary between the core and the Python layers above it: the hooks the core calls, as
# typing.Protocols (typed in _core.pyi). The core binds each hook once, when it is handed the
# object that implements them, and calls nothing else of a Python object (no private names).
# This file knows nothing of sockets, codecs or handlers.

import typing


@typing.runtime_checkable
class ClientHooks(typing.Protocol):
    """The client layer, as the Dispatcher calls it (bound once, at construction)."""

    def on_event(self, nsp, ack_id, data):
        """An event the core does not dispatch itself (async, catch-all, with an ack id, ...)."""

    def on_control_packet(self, packet):
        """A CONNECT, DISCONNECT or CONNECT_ERROR packet (a Packet)."""

    def on_unknown_ack(self, nsp, ack_id):
        """An ACK for an id that is not pending (or of another namespace)."""

    def on_handler_error(self, event, nsp, exc):
        """A handler the core called inline raised ``exc``."""


@typing.runtime_checkable
class EngineHooks(typing.Protocol):
    """The Engine.IO session, as the Dispatcher calls it (bound by set_engine, per session)."""

    def on_eio_open(self, raw):
        """An Engine.IO OPEN packet: its JSON body (bytes)."""

    def on_eio_close(self):
        """An Engine.IO CLOSE packet."""

    def on_eio_noop(self):
        """An Engine.IO NOOP packet."""

    def on_dispatch_yield(self):
        """The dispatch time slice is used up: the rest of the read is held until release()."""


@typing.runtime_checkable
class ListenerHooks(typing.Protocol):
    """The owner of a WebSocket link (fastsio.transports.WebSocketTransport), as its
    EngineListener calls it."""

    def on_probe_frame(self, listener, data, binary):
        """A data frame received while the link is a probe (polling -> websocket upgrade)."""

    def on_listener_error(self, listener, exc):
        """Reading the link failed (protocol error, refused size): the listener stops reading."""

    def on_ws_disconnected(self, listener):
        """The link is closed."""


cdef object _hook(object obj, str name, str protocol):
    """``obj.name``, checked once: a missing hook is a TypeError at wiring time, not later."""
    fn = getattr(obj, name, None)
    if fn is None or not callable(fn):
        raise TypeError(f"{type(obj).__name__} does not implement {protocol}: no {name}()")
    return fn


def _no_client_hooks(*args):
    raise RuntimeError("a packet for the client layer, but the Dispatcher has no ClientHooks")


def _raise_handler_error(event, nsp, exc):
    # No ClientHooks to report to: the handler's error propagates to whoever fed the frame.
    raise exc
