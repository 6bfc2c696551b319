"""One connection attempt: which Engine.IO version, which session, and the CONNECTs over it.

Owns opening an attempt: evaluating ``url``/``headers``/``auth`` (values, or callables sync or
async, evaluated again at every attempt), choosing the Engine.IO version (the one that worked
before, the forced one, or 4 first and then 3 when the server shows it is a Socket.IO 2.x
server), building the Engine.IO session with the client's options and handing it to the
namespace life cycle, which sends the CONNECTs and decides whether the session is kept.

The options are read at every attempt from an object with python-socketio's attribute names
(the client), so that changing them on a running client takes effect, as ``reconnection.py``
does. It must not know when to attempt (``connect()`` and the reconnection loop decide), what
is kept or refused (``lifecycle.NamespaceLifecycle``), nor how handlers are looked up.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import exceptions
from ._ext._core import Dispatcher
from .eio3 import EngineIO3, auth_query
from .engine import EngineIO
from .lifecycle import NamespaceLifecycle

VALID_TRANSPORTS = ("websocket", "polling")


def transports_of(transports: str | list[str] | None) -> list[str]:
    """``connect()``'s ``transports`` as a list of known names (websocket, then polling, when
    None); ``ValueError`` when none is left."""
    if isinstance(transports, str):
        transports = [transports]
    if transports is None:
        transports = ["websocket", "polling"]
    transports = [t for t in transports if t in VALID_TRANSPORTS]
    if not transports:
        raise ValueError("No valid transports provided")
    return transports


async def resolve(value: Any) -> Any:
    """``value``, or what it returns when it is a callable (awaited when that is awaitable)."""
    if not callable(value):
        return value
    result = value()
    if inspect.isawaitable(result):
        result = await result
    return result


class ConnectionSettings(Protocol):
    """What an attempt reads from the client (python-socketio's names and fastsio's options)."""

    connection_url: Any
    connection_headers: Any
    connection_auth: Any
    connection_transports: list[str] | None
    socketio_path: str
    request_timeout: float
    ssl_verify: bool
    ssl_context: Any
    http_session: Any
    websocket_extra_options: Any
    max_message_size: int
    max_read_size: int


@dataclass(eq=False)
class Connector:
    """Runs connection attempts for a client.

    :param on_lost: ``on_lost(reason)``, handed to every Engine.IO session: it died unasked.
    :param trigger: ``trigger(event, nsp, *args)`` fires a client life-cycle event.
    :param sync_slot: ``sync_slot(nsp)`` refreshes the core's dispatch table of a namespace.
    """

    settings: ConnectionSettings
    lifecycle: NamespaceLifecycle
    dispatcher: Dispatcher
    logger: logging.Logger
    on_lost: Callable[[str], None]
    trigger: Callable[..., None]
    sync_slot: Callable[[str], None]
    #: ``connect()``'s ``wait_timeout``: seconds for every namespace to be accepted
    wait_timeout: float = 1

    async def connect_once(self, wait: bool = True) -> None:
        """One attempt, in the Engine.IO version that worked before, the forced one, or 4 first
        and then 3 when the server shows it is a Socket.IO 2.x server."""
        forced = self.lifecycle.eio_version
        version = forced or self.lifecycle.eio_in_use or 4
        try:
            await self.connect_version(version, wait)
        except exceptions.ProtocolVersionError as exc:
            other = exc.server_version
            if forced is not None or other is None or other == version:
                for nsp in self.lifecycle.connection_namespaces:
                    self.trigger("connect_error", nsp, str(exc))
                raise
            self.logger.info("%s: connecting again with Engine.IO %d", exc, other)
            await self.connect_version(other, wait)

    async def connect_version(self, version: int, wait: bool) -> None:
        """One attempt: Engine.IO session, then CONNECT every namespace.

        With ``wait``, the session is kept (buffers flushed, ``connect`` fired) only when every
        namespace is accepted; otherwise it is abandoned with nothing sent but the CONNECTs,
        so that no packet is written onto a session that is then dropped.
        """
        s = self.settings
        url = await resolve(s.connection_url)
        headers = await resolve(s.connection_headers)
        assert s.connection_transports is not None
        life = self.lifecycle
        life.begin_attempt(wait)
        auth: Any = None
        query: list[tuple[str, str]] = []
        if version == 3:
            # A 2.x server connects the default namespace from the handshake's own query.
            auth = await resolve(s.connection_auth)
            try:
                query = auth_query(auth)
            except ValueError as exc:
                raise exceptions.ConnectionError(str(exc)) from exc
        eio = (EngineIO3 if version == 3 else EngineIO)(
            self.dispatcher,
            self.on_lost,
            logger=self.logger,
            request_timeout=s.request_timeout,
            ssl_verify=s.ssl_verify,
            ssl_context=s.ssl_context,
            http_session=s.http_session,
            websocket_extra_options=s.websocket_extra_options,
            max_message_size=s.max_message_size,
            max_read_size=s.max_read_size,
        )
        if isinstance(eio, EngineIO3):
            eio.extra_query = query
        life.use(eio, version)
        for nsp in life.connection_namespaces:
            self.sync_slot(nsp)
        try:
            await eio.connect(url, headers, s.connection_transports, s.socketio_path)
        except exceptions.ProtocolVersionError:
            life.open_failed()
            raise  # connect_once retries or reports it
        except exceptions.ConnectionError as exc:
            life.open_failed()
            for nsp in life.connection_namespaces:
                self.trigger("connect_error", nsp, str(exc))
            raise
        except ValueError as exc:
            life.open_failed()
            raise exceptions.ConnectionError(str(exc)) from exc
        life.opened(eio)
        if version != 3:
            auth = await resolve(s.connection_auth)
        life.send_connects(auth)
        await life.wait_kept(eio, wait, self.wait_timeout)
