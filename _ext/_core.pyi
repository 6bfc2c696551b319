"""Stubs for fastsio's compiled protocol core (fastsio._ext._core)."""

import asyncio
from collections.abc import Callable
from typing import Any

from picows import WSListener

CONNECT: int
DISCONNECT: int
EVENT: int
ACK: int
CONNECT_ERROR: int
BINARY_EVENT: int
BINARY_ACK: int
PACKET_TYPES: dict[str, int]
EIO_TYPES: dict[str, int]
DEFAULT_MAX_ATTACHMENTS: int
DEFAULT_MAX_PENDING_ACKS: int
DEFAULT_MAX_MESSAGE_SIZE: int

class Packet:
    type: int
    nsp: str
    id: int | None
    data: Any
    attachments: int
    def __init__(
        self, type: int, nsp: str = "/", data: Any = None, id: int | None = None,
        attachments: int = 0,
    ) -> None: ...

def decode_packet(data: str | bytes, json: Any = None, max_attachments: int = ...) -> Packet: ...
def encode_packet(
    type: int, nsp: str = "/", data: Any = None, id: int | None = None, json: Any = None
) -> list[bytes]: ...
def reconstruct(data: Any, attachments: list[bytes]) -> Any: ...
def deconstruct(data: Any) -> tuple[Any, list[bytes]]: ...
def encode_msgpack(type: int, nsp: str = "/", data: Any = None, id: int | None = None) -> bytes: ...
def decode_msgpack(data: bytes) -> Packet: ...
def decode_msgpack_data(data: bytes) -> Any: ...
def decode_eio_payload(
    data: str | bytes, max_packets: int = ..., max_message_size: int = 0
) -> list[tuple[int, str | bytes]]: ...
def poll_body_limit(max_message_size: int) -> int: ...
def encode_eio_payload(packets: list[tuple[int, str | bytes]]) -> str: ...

class PendingAck:
    nsp: str
    callback: Callable[..., Any] | None
    future: Any
    timer: Any
    err_first: bool
    is_async: bool
    queued: bool
    ack_id: int
    deadline: float
    timeout: float
    event: str | None

class AckTable:
    max_pending: int
    on_async_callback: Callable[[Any], Any] | None
    on_callback_error: Callable[[PendingAck, BaseException], Any] | None
    on_ack_lost: Callable[[PendingAck, BaseException], Any] | None
    on_unsent_failed: Callable[[PendingAck], Any] | None
    def __len__(self) -> int: ...
    def add(self, entry: PendingAck) -> int: ...
    def add_new(
        self,
        nsp: str,
        callback: Callable[..., Any] | None,
        future: Any,
        err_first: bool,
        is_async: bool,
    ) -> int: ...
    def pop(self, ack_id: int) -> PendingAck | None: ...
    def get(self, ack_id: int) -> PendingAck | None: ...
    def ids(self, nsp: str | None = None) -> list[int]: ...
    def resolve(self, nsp: str, ack_id: int, args: Any) -> bool: ...
    def fail(self, ack_id: int, exc: BaseException) -> None: ...
    def fail_all(
        self, exc: BaseException, nsp: str | None = None, unsent: bool = False
    ) -> None: ...

class AckDeadlines:
    heap: list[PendingAck]
    def __init__(self, acks: AckTable) -> None: ...
    def add(
        self, ack_id: int, timeout: float, event: str, loop: asyncio.AbstractEventLoop
    ) -> None: ...
    def cancel(self) -> None: ...

class NamespaceSlot:
    name: str
    fast: dict[str, Callable[..., Any]]
    batch: dict[str, Callable[[list[Any]], Any]]
    record_offset: bool
    strip_offset: bool
    offset: Any
    def __init__(self, name: str) -> None: ...

class Connection:
    client: Any
    engine: Any
    acks: AckTable
    deadlines: AckDeadlines
    slots: dict[str, NamespaceSlot]
    msgpack_mode: bool
    json: Any
    max_attachments: int
    max_send_size: int
    max_message_size: int
    max_batch: int
    poll_sender: Callable[[bytes, bool], None] | None
    packets_received: int
    events_received: int
    bytes_received: int
    packets_sent: int
    bytes_sent: int
    def __init__(
        self, client: Any, engine: Any = None, msgpack_mode: bool = False, json: Any = None,
        max_attachments: int = ..., max_message_size: int = 0,
    ) -> None: ...
    def attach_websocket(self, transport: Any) -> None: ...
    def detach_transport(self) -> None: ...
    def detach_sender(self) -> None: ...
    def discard_held(self) -> None: ...
    def reset_stream(self) -> None: ...
    @property
    def has_transport(self) -> bool: ...
    def touch_ping(self) -> None: ...
    def ping_age(self) -> float: ...
    holding: bool
    dispatch_budget: float
    def new_slice(self) -> None: ...
    @property
    def held(self) -> int: ...
    def hold(self) -> None: ...
    def release(self) -> bool: ...
    def flush_batch(self) -> None: ...
    def feed_text(self, data: str | bytes) -> None: ...
    def feed_binary(self, data: bytes) -> None: ...
    def send_eio(self, data: bytes, binary: bool = False) -> None: ...
    def encode(
        self, t: int, nsp: str, data: Any = None, ack_id: int | None = None
    ) -> list[tuple[bytes, bool]]: ...
    def send_frames(self, frames: list[tuple[bytes, bool]]) -> None: ...
    def send_packet(self, t: int, nsp: str, data: Any = None, ack_id: int | None = None) -> None: ...
    def send_call(
        self,
        nsp: str,
        payload: list[Any],
        future: asyncio.Future[Any],
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> bool: ...
    def stats(self) -> dict[str, int]: ...

class EngineListener(WSListener):
    conn: Connection
    engine: Any
    probing: bool
    transport: Any
    failed: bool
    def __init__(self, conn: Connection, engine: Any, probing: bool = False) -> None: ...
    def close_sent(self) -> None: ...

class ReadCap(asyncio.BufferedProtocol):
    cap: int
    def __init__(
        self, inner: Any, cap: int, ws: Any = None, listener: EngineListener | None = None
    ) -> None: ...

def json_loads(data: bytes | bytearray | memoryview | str) -> Any: ...
def json_fast(data: bytes | bytearray | memoryview) -> tuple[Any] | None: ...
