"""The boundary between the compiled core and the Python layers: the core calls the hooks it
was handed (ClientHooks, EngineHooks, ListenerHooks in _ext/_core.pyi) and no private name of a
Python object; the real layers and the shared test fake implement every hook."""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path

import pytest
from support.core_fakes import CoreRecorder

from fastsio import AsyncClient
from fastsio._ext import _core
from fastsio.eio3 import EngineIO3
from fastsio.engine import EngineIO
from fastsio.transports import TransportHooks, WebSocketTransport

EXT = Path(__file__).resolve().parents[2] / "_ext"
HOOK_PROTOCOLS = (_core.ClientHooks, _core.EngineHooks, _core.ListenerHooks)

# `<receiver>._name(` where the receiver is not `self`; dunders (super().__init__) aside.
_UNDERSCORE_CALL = re.compile(r"([A-Za-z_][\w.]*|\))\s*\.\s*(_(?!_)\w*)\s*\(")
_UNDERSCORE_GETATTR = re.compile(r"getattr\([^,]+,\s*[\"'](_(?!_)\w*)[\"']")
# C-level methods and functions of the core itself: calling them on a typed cdef object is a
# C call inside the module, not a call into a Python object.
_CDEF_NAME = re.compile(r"^\s*c(?:p)?def\s+[^(=]*?\b(_\w+)\s*\(", re.M)


def _code(text: str) -> str:
    """The source without comments and docstrings (they may name hooks, not call them)."""
    text = re.sub(r'"""[\s\S]*?"""', '""', text)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _cimported_cdef_names() -> set[str]:
    """C-level methods of the extension types the core cimports (picows's WSTransport): a
    call through a typed reference is a C call, not a call into a Python object."""
    import picows

    return {
        m
        for pxd in Path(picows.__file__).parent.glob("*.pxd")
        for m in _CDEF_NAME.findall(pxd.read_text())
    }


def private_calls(sources: dict[str, str]) -> list[str]:
    """Every call of an underscore name on something other than self that is not a cdef
    method or function of the core or of what it cimports, as ``file: receiver._name(``."""
    cdef_names = {m for text in sources.values() for m in _CDEF_NAME.findall(text)}
    cdef_names |= _cimported_cdef_names()
    found = []
    for name, text in sources.items():
        code = _code(text)
        for receiver, attr in _UNDERSCORE_CALL.findall(code):
            if receiver == "self" or attr in cdef_names:
                continue
            found.append(f"{name}: {receiver}.{attr}(")
        found += [f"{name}: getattr(..., {attr!r})" for attr in _UNDERSCORE_GETATTR.findall(code)]
    return found


def core_sources() -> dict[str, str]:
    paths = sorted(EXT.glob("*.pxi")) + sorted(EXT.glob("*.pyx"))
    assert paths, f"no Cython sources under {EXT}"
    return {p.name: p.read_text() for p in paths}


def test_compiled_core_calls_no_private_name_of_a_python_object() -> None:
    assert private_calls(core_sources()) == []


@pytest.mark.parametrize(
    "line",
    [
        "        self.client._on_event(nsp, ack_id, data)",
        "        self.engine._yield_dispatch()",
        "        engine._on_eio_open(raw)",
        "        f = getattr(self.client, '_on_event')",
    ],
)
def test_the_scan_finds_a_private_call(line: str) -> None:
    sources = core_sources()
    sources["regression.pxi"] = f"cdef class X:\n    def f(self):\n{line}\n"
    assert [f for f in private_calls(sources) if f.startswith("regression.pxi")] != []


def test_the_scan_allows_self_and_cdef_methods() -> None:
    text = (
        "cdef class X:\n"
        "    cdef int _feed(self) except -1:\n"
        "        return 0\n"
        "    def f(self, X other):\n"
        "        self._on_event(1)  # a hook bound on self\n"
        "        other._feed()\n"
        "        super().__init__()\n"
    )
    assert private_calls({"x.pxi": text}) == []


def _hook_names(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) or callable(v)
            if not n.startswith("_")]


@pytest.mark.parametrize("protocol", HOOK_PROTOCOLS, ids=lambda p: p.__name__)
def test_the_shared_fake_implements_every_hook(protocol: type) -> None:
    assert _hook_names(protocol)
    assert isinstance(CoreRecorder(), protocol)


@pytest.mark.parametrize("engine_class", [EngineIO, EngineIO3])
async def test_the_engine_implements_its_hooks(engine_class: type[EngineIO]) -> None:
    eio = engine_class(_core.Dispatcher(), lambda reason: None, logger=logging.getLogger("t"))
    assert isinstance(eio, _core.EngineHooks)
    assert isinstance(eio, TransportHooks)
    _core.Dispatcher(None, eio)  # binds every EngineHooks hook


async def test_the_websocket_transport_implements_the_listener_hooks() -> None:
    eio = EngineIO(_core.Dispatcher(), lambda reason: None, logger=logging.getLogger("t"))
    transport = WebSocketTransport(eio.dispatcher, eio)
    assert isinstance(transport, _core.ListenerHooks)
    _core.EngineListener(eio.dispatcher, transport)  # binds every ListenerHooks hook


def test_the_client_hands_its_hooks_to_the_core(caplog: pytest.LogCaptureFixture) -> None:
    sio = AsyncClient(logger=logging.getLogger("test.boundary"))
    sio._conn.feed_text("4312[]")  # an ACK nobody waits for reaches the client's on_unknown_ack
    assert "Unknown ack id 12 for namespace /" in caplog.text


def test_a_missing_hook_is_a_type_error_naming_it() -> None:
    class Partial:
        def on_event(self, nsp: str, ack_id: int | None, data: list[object]) -> None: ...

    with pytest.raises(TypeError, match=r"Partial does not implement ClientHooks: no on_"):
        _core.Dispatcher(Partial())
    with pytest.raises(TypeError, match=r"does not implement EngineHooks: no on_eio_open"):
        _core.Dispatcher().set_engine(object())
    with pytest.raises(TypeError, match=r"does not implement ListenerHooks"):
        _core.EngineListener(_core.Dispatcher(), object())


def test_without_client_hooks_a_packet_for_the_client_is_an_error() -> None:
    conn = _core.Dispatcher()
    with pytest.raises(RuntimeError, match="no ClientHooks"):
        conn.feed_text('42["ev"]')
    conn.slots["/"] = slot = _core.NamespaceSlot("/")
    slot.fast["boom"] = lambda: 1 / 0
    with pytest.raises(ZeroDivisionError):
        conn.feed_text('42["boom"]')
