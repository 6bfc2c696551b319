"""The Engine.IO handshake's pieces: the URLs asked for, the open packet, a version refusal.

Shared by the Engine.IO 4 and 3 sessions (``engine.py``, ``eio3.py``) and their transports.
"""

from __future__ import annotations

import re
import urllib.parse

import orjson

from .exceptions import ProtocolError

# Heartbeat values a sane server sends; anything outside is refused as a protocol error
# rather than trusted (a ping interval of 0 would spin, one of a year would never detect loss).
_MAX_PING_MS = 24 * 3600 * 1000
_MIN_MAX_PAYLOAD = 1024

#: Slack added to pingInterval + pingTimeout before a silent link is declared dead.
HEARTBEAT_MARGIN = 0.5

#: How servers word their HTTP 400 for an Engine.IO version they do not speak: engine.io >= 4
#: (Socket.IO 3/4 without allowEIO3: ``{"code":5,"message":"Unsupported protocol version"}``)
#: and python-engineio (3.x refuses EIO=4, 4.x refuses EIO=3: "The client is using an
#: unsupported version of the Socket.IO or Engine.IO protocols"). Lower case.
_VERSION_REFUSALS = (b"unsupported protocol version", b"unsupported version of the socket.io")


def version_refusal(body: bytes) -> str | None:
    """The server's message when an HTTP error ``body`` refuses the Engine.IO version."""
    head = body[:512]
    if not any(marker in head.lower() for marker in _VERSION_REFUSALS):
        return None
    try:
        parsed = orjson.loads(head)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    if isinstance(parsed, str):
        return parsed
    return head.decode("utf-8", "replace").strip()


class OpenPacket:
    """The parsed Engine.IO open packet."""

    __slots__ = (
        "sid",
        "upgrades",
        "ping_interval",
        "ping_timeout",
        "max_payload",
        "counts_packets",
    )

    def __init__(self, raw: bytes) -> None:
        try:
            info = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProtocolError("open packet is not valid JSON", raw) from None
        if not isinstance(info, dict):
            raise ProtocolError("open packet is not a JSON object", raw)
        sid = info.get("sid")
        if not isinstance(sid, str) or not sid or len(sid) > 1024:
            raise ProtocolError("open packet without a valid sid", raw)
        upgrades = info.get("upgrades", [])
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise ProtocolError("open packet with invalid upgrades", raw)
        values = []
        for key in ("pingInterval", "pingTimeout"):
            v = info.get(key)
            if type(v) is not int or not 0 < v <= _MAX_PING_MS:
                raise ProtocolError(f"open packet with an invalid {key}: {v!r}", raw)
            values.append(v)
        max_payload = info.get("maxPayload", 0)
        if type(max_payload) is not int or (max_payload != 0 and max_payload < _MIN_MAX_PAYLOAD):
            raise ProtocolError(f"open packet with an invalid maxPayload: {max_payload!r}", raw)
        self.sid: str = sid
        self.upgrades: list[str] = upgrades
        self.ping_interval: int = values[0]
        self.ping_timeout: int = values[1]
        self.max_payload: int = max_payload
        # python-engineio's server (it drops a POST of more than 16 packets) writes pingTimeout
        # before pingInterval, Node's engine.io and its ports the other way round; a server that
        # does not announce maxPayload is not trusted with more either.
        keys = list(info)
        self.counts_packets: bool = not max_payload or (
            keys.index("pingTimeout") < keys.index("pingInterval")
        )


def build_urls(url: str, path: str, eio: int = 4) -> tuple[str, str]:
    """Return (http_base, ws_base) URLs, each ending in a query with ``EIO=<eio>``."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "ws"):
        http_scheme, ws_scheme = "http", "ws"
    elif scheme in ("https", "wss"):
        http_scheme, ws_scheme = "https", "wss"
    else:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    if not parts.hostname:
        raise ValueError(f"URL without a host: {url!r}")
    path = "/" + path.strip("/") + "/"
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("EIO", "transport", "sid", "t")
    ]
    query.append(("EIO", str(eio)))
    q = urllib.parse.urlencode(query)
    http = urllib.parse.urlunsplit((http_scheme, parts.netloc, path, q, ""))
    ws = urllib.parse.urlunsplit((ws_scheme, parts.netloc, path, q, ""))
    return http, ws


#: The session id in an open packet (URL-safe characters only, as every server makes them).
SID_IN_OPEN = re.compile(rb'"sid":"([A-Za-z0-9_\-]{1,100})"')
