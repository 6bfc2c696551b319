# Packet type numbers and limits: the one place they are written down.
# Only constants: every other piece (and the Python layer, through the exported copies below)
# names them from here instead of spelling a number or a character code.

cdef enum:
    # Engine.IO v4 packet types (the first character of a text frame).
    EIO_OPEN = 0
    EIO_CLOSE = 1
    EIO_PING = 2
    EIO_PONG = 3
    EIO_MESSAGE = 4
    EIO_UPGRADE = 5
    EIO_NOOP = 6

    # Socket.IO v5 packet types.
    SIO_CONNECT = 0
    SIO_DISCONNECT = 1
    SIO_EVENT = 2
    SIO_ACK = 3
    SIO_CONNECT_ERROR = 4
    SIO_BINARY_EVENT = 5
    SIO_BINARY_ACK = 6

    # The highest type number of each protocol (anything above is unknown).
    EIO_MAX_TYPE = EIO_NOOP
    SIO_MAX_TYPE = SIO_BINARY_ACK

    # Both protocols write a packet type (and every number) as decimal digits: type t is the
    # character CHAR_0 + t ('0' is ASCII 48).
    CHAR_0 = 48
    CHAR_9 = 57

    # An ack id longer than this many digits cannot be an id we issued (nor fit in 63 bits).
    MAX_ACK_ID_DIGITS = 18
    # Attachment counts are parsed as at most this many digits: 10**9 is refused by the limit
    # check below, never preallocated.
    MAX_ATTACHMENT_DIGITS = 10
    # msgpack's unpacker refuses a container inside this many open ones (StackError); the
    # native decoder keeps the limit (mpdecode.pxi).
    MP_MAX_DEPTH = 1024

# Defaults of the limits (each overridable per client).
DEFAULT_MAX_ATTACHMENTS = 1000
DEFAULT_MAX_PENDING_ACKS = 1_000_000
# The largest incoming message (an Engine.IO packet: a WebSocket message or one packet of a poll
# response). No real feed sends one this big; a hostile or broken server that announces more is
# refused before the bytes are read, so one cannot make a client hold gigabytes.
DEFAULT_MAX_MESSAGE_SIZE = 100 * 1024 * 1024
# A poll response holds several packets: it may be this many times max_message_size, plus
# POLL_BODY_SLACK (room for one binary message at the limit in base64 and what surrounds it, and
# for a backlog of small packets under a small limit).
POLL_BODY_FACTOR = 2
POLL_BODY_SLACK = 1024 * 1024

# Python-visible copies, for the Python layer and the tests.
PACKET_TYPES = {
    "CONNECT": SIO_CONNECT, "DISCONNECT": SIO_DISCONNECT, "EVENT": SIO_EVENT, "ACK": SIO_ACK,
    "CONNECT_ERROR": SIO_CONNECT_ERROR, "BINARY_EVENT": SIO_BINARY_EVENT,
    "BINARY_ACK": SIO_BINARY_ACK,
}
CONNECT = SIO_CONNECT
DISCONNECT = SIO_DISCONNECT
EVENT = SIO_EVENT
ACK = SIO_ACK
CONNECT_ERROR = SIO_CONNECT_ERROR
BINARY_EVENT = SIO_BINARY_EVENT
BINARY_ACK = SIO_BINARY_ACK
EIO_TYPES = {
    "open": EIO_OPEN, "close": EIO_CLOSE, "ping": EIO_PING, "pong": EIO_PONG,
    "message": EIO_MESSAGE, "upgrade": EIO_UPGRADE, "noop": EIO_NOOP,
}


cpdef bytes eio_text(int t, bytes data=b""):
    """An Engine.IO text packet: the type's digit, then ``data``."""
    if t < EIO_OPEN or t > EIO_MAX_TYPE:
        raise ValueError(f"unknown Engine.IO packet type {t}")
    return bytes((CHAR_0 + t,)) + data


cdef inline str eio_type_char(int t):
    return chr(CHAR_0 + t)


# The Engine.IO packets the Python layer sends whole.
EIO_CLOSE_PACKET = eio_text(EIO_CLOSE)
EIO_PING_PACKET = eio_text(EIO_PING)
EIO_PONG_PACKET = eio_text(EIO_PONG)
EIO_UPGRADE_PACKET = eio_text(EIO_UPGRADE)
EIO_PROBE = eio_text(EIO_PING, b"probe")           # the upgrade's probe ...
EIO_PROBE_ANSWER = eio_text(EIO_PONG, b"probe")    # ... and the server's answer to it


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9
