"""The test servers' Socket.IO v5 codec: server packets in, client packets out, JSON or msgpack.

Owns the Socket.IO packet format (text header, binary placeholders and attachments, the msgpack
map), the Engine.IO v4 polling payload, and WebSocket framing of server messages. Must not know
about sessions, transports or handlers. The type numbers come from the compiled core
(``consts.pxi``); the encoding and parsing here are the servers' own, so a codec bug of the client
cannot hide behind the same bug in the server that tests it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any, Literal

import msgpack
import orjson

from fastsio._ext._core import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    EIO_TYPES,
    EVENT,
    PACKET_TYPES,
)

Serializer = Literal["json", "msgpack"]
"""The wire format of a server: Socket.IO's JSON packets or ``socket.io-msgpack-parser``'s."""

#: An Engine.IO packet of a session: ``str`` is a text packet (type digit first), ``bytes`` a
#: binary message.
Frame = str | bytes

# Engine.IO packet types as the first character of a text packet.
EIO_OPEN = str(EIO_TYPES["open"])
EIO_CLOSE = str(EIO_TYPES["close"])
EIO_PING = str(EIO_TYPES["ping"])
EIO_PONG = str(EIO_TYPES["pong"])
EIO_MESSAGE = str(EIO_TYPES["message"])
EIO_UPGRADE = str(EIO_TYPES["upgrade"])
EIO_NOOP = str(EIO_TYPES["noop"])

_SIO_TYPES = frozenset(PACKET_TYPES.values())
_BINARY_TYPES = (BINARY_EVENT, BINARY_ACK)
#: WebSocket close frame with status 1000 (normal closure), unmasked.
WS_CLOSE_NORMAL = b"\x88\x02\x03\xe8"


def check_serializer(serializer: str) -> bool:
    """Validate ``serializer``; True for msgpack."""
    if serializer not in ("json", "msgpack"):
        raise ValueError(f"serializer must be 'json' or 'msgpack', not {serializer!r}")
    return serializer == "msgpack"


def encode_ws_frame(payload: bytes, *, binary: bool = False) -> bytes:
    """Return one complete, unmasked (server-to-client) WebSocket frame carrying ``payload``.

    ``binary`` selects opcode 0x2 (binary) instead of 0x1 (text); FIN is always set.
    """
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def ws_frames(frames: Sequence[Frame]) -> bytes:
    """Engine.IO packets as consecutive WebSocket frames (text for ``str``, binary for bytes)."""
    return b"".join(
        encode_ws_frame(f.encode(), binary=False)
        if isinstance(f, str)
        else encode_ws_frame(f, binary=True)
        for f in frames
    )


class Packet:
    """A decoded client Socket.IO packet (JSON mode may still be waiting for attachments)."""

    __slots__ = ("type", "nsp", "data", "id", "attachments", "buffers")

    def __init__(self, type: int, nsp: str, data: Any, id: int | None, attachments: int) -> None:
        self.type = type
        self.nsp = nsp
        self.data = data
        self.id = id
        self.attachments = attachments
        self.buffers: list[bytes] = []

    @property
    def complete(self) -> bool:
        """Whether every announced attachment has arrived."""
        return len(self.buffers) >= self.attachments


def parse_json_packet(text: str) -> Packet:
    """Parse a Socket.IO v5 text packet ``<type>[<n>-][<nsp>,][<id>][<json>]``."""
    if not text or not text[0].isdigit() or int(text[0]) not in _SIO_TYPES:
        raise ValueError(f"bad Socket.IO packet type in {text[:32]!r}")
    ptype = int(text[0])
    i, end = 1, len(text)
    attachments = 0
    if ptype in _BINARY_TYPES:
        dash = text.index("-", i)
        attachments = int(text[i:dash])
        i = dash + 1
    nsp = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma == -1:
            nsp, i = text[i:], end
        else:
            nsp, i = text[i:comma], comma + 1
    j = i
    while j < end and "0" <= text[j] <= "9":
        j += 1
    ack_id = int(text[i:j]) if j > i else None
    data = orjson.loads(text[j:]) if j < end else None
    return Packet(ptype, nsp, data, ack_id, attachments)


def parse_msgpack_packet(data: bytes) -> Packet:
    """Parse one socket.io-msgpack-parser packet: a map ``{type, data, nsp, [id]}``."""
    obj = msgpack.unpackb(data, strict_map_key=False)
    if not isinstance(obj, dict) or type(obj.get("type")) is not int:
        raise ValueError("msgpack Socket.IO packet is not a map with an int type")
    nsp = obj.get("nsp", "/")
    ack_id = obj.get("id")
    if not isinstance(nsp, str) or (ack_id is not None and type(ack_id) is not int):
        raise ValueError("msgpack Socket.IO packet with a bad nsp or id")
    return Packet(obj["type"], nsp, obj.get("data"), ack_id, 0)


def _has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_binary(v) for v in data)
    if isinstance(data, dict):
        return any(_has_binary(v) for v in data.values())
    return False


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Replace binary values by Socket.IO placeholders, appending them to ``buffers``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(v, buffers) for v in data]
    if isinstance(data, dict):
        return {k: _deconstruct(v, buffers) for k, v in data.items()}
    return data


def reconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Put the attachments back in place of their placeholders."""
    if isinstance(data, list):
        return [reconstruct(v, buffers) for v in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and len(data) == 2:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise ValueError(f"bad attachment placeholder {data!r}")
            return buffers[num]
        return {k: reconstruct(v, buffers) for k, v in data.items()}
    return data


def _bytes_to_bin(data: Any) -> Any:
    """msgpack packs bytes as bin already; bytearray/memoryview become bytes."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (list, tuple)):
        return [_bytes_to_bin(v) for v in data]
    if isinstance(data, dict):
        return {k: _bytes_to_bin(v) for k, v in data.items()}
    return data


def encode_packet(
    msgpack_mode: bool, ptype: int, nsp: str, data: Any = None, ack_id: int | None = None
) -> list[Frame]:
    """Encode one server Socket.IO packet into its Engine.IO packets; ``data=None`` omits data.

    JSON: one text message packet, then one binary message per attachment (an EVENT/ACK whose
    data holds bytes becomes a BINARY_EVENT/BINARY_ACK). msgpack: one binary message holding
    the map ``{type, data, nsp, [id]}`` as socket.io-msgpack-parser writes it.
    """
    if msgpack_mode:
        packet: dict[str, Any] = {"type": ptype}
        if data is not None:
            packet["data"] = _bytes_to_bin(data)
        packet["nsp"] = nsp
        if ack_id is not None:
            packet["id"] = ack_id
        return [msgpack.packb(packet)]
    buffers: list[bytes] = []
    if data is not None and ptype in (EVENT, ACK) and _has_binary(data):
        data = _deconstruct(data, buffers)
        ptype = BINARY_EVENT if ptype == EVENT else BINARY_ACK
    parts = [EIO_MESSAGE, str(ptype)]
    if buffers:
        parts.append(f"{len(buffers)}-")
    if nsp != "/":
        parts.append(nsp + ",")
    if ack_id is not None:
        parts.append(str(ack_id))
    if data is not None:
        parts.append(orjson.dumps(data).decode())
    return ["".join(parts), *buffers]


def encode_poll_payload(frames: Sequence[Frame]) -> str:
    """Engine.IO v4 polling payload: packets joined by ``\\x1e``, binary as ``b`` + base64."""
    return "\x1e".join(
        f if isinstance(f, str) else "b" + base64.b64encode(f).decode("ascii") for f in frames
    )


def decode_poll_payload(body: str) -> list[Frame]:
    """Split an Engine.IO v4 polling payload into its packets."""
    frames: list[Frame] = []
    for part in body.split("\x1e"):
        if not part:
            raise ValueError("empty packet in a polling payload")
        if part[0] == "b":
            frames.append(base64.b64decode(part[1:], validate=True))
        else:
            frames.append(part)
    return frames
