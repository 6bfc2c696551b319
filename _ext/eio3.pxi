# Engine.IO v3 polling payloads (Socket.IO 2.x servers): `<length>:<packet>` records, the length
# counted in UTF-16 code units as JavaScript's String.length counts them; a binary packet is the
# record `b<type><base64>` (the client asks for text payloads with `b64=1`, so XHR2 binary
# payloads never arrive). Polling runs once per HTTP response, not per frame; the WebSocket path
# differs from v4 only by the 0x04 type byte of binary frames (Dispatcher.eio3).
# A codec only: nothing of sessions, heartbeats or sockets.

cdef extern from "Python.h":
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object o)


cdef inline Py_ssize_t _utf16_units(str s) noexcept:
    cdef Py_ssize_t n = len(s), i
    cdef Py_UCS4 c
    if PyUnicode_MAX_CHAR_VALUE(s) <= 0xFFFF:
        return n
    for i in range(len(s)):
        c = s[i]
        if c > 0xFFFF:
            n += 1
    return n


cdef str _eio3_text(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("polling payload is not valid UTF-8", bytes(data)[:200]) from None
    if isinstance(data, str):
        return data
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


cdef list _eio3_records(str s, Py_ssize_t max_packets):
    """The records of a v3 payload (``<length>:<packet>`` framing only), as str slices."""
    cdef list out = []
    cdef Py_ssize_t pos = 0, end = len(s), n, start, units, digits
    cdef Py_UCS4 c
    if end == 0:
        raise ProtocolError("empty polling payload", b"")
    while pos < end:
        if len(out) >= max_packets:
            raise ProtocolError("too many packets in one polling payload", s[:200])
        n = 0
        digits = 0
        while pos < end:
            c = s[pos]
            if c == u":":
                break
            if c < u"0" or c > u"9" or digits >= 10:
                raise ProtocolError("invalid record length in polling payload", s[:200])
            n = n * 10 + (<Py_ssize_t>c - CHAR_0)
            digits += 1
            pos += 1
        if pos >= end or digits == 0:
            raise ProtocolError("invalid record length in polling payload", s[:200])
        pos += 1  # ':'
        if n == 0:
            raise ProtocolError("empty packet in polling payload", s[:200])
        # `n` counts UTF-16 code units: a character outside the BMP counts twice.
        start = pos
        units = 0
        while units < n:
            if pos >= end:
                raise ProtocolError("polling record runs past the end of the payload", s[:200])
            units += 2 if <Py_UCS4>s[pos] > 0xFFFF else 1
            pos += 1
        if units != n:
            raise ProtocolError("polling record length splits a character", s[:200])
        out.append(s[start:pos])
    return out


cdef int _eio3_check_text(str rec, Py_ssize_t max_message_size) except -1:
    cdef Py_ssize_t size, t
    if max_message_size > 0 and len(rec) > max_message_size // 4:
        size = len(rec.encode("utf-8", "surrogatepass"))
        if size > max_message_size:
            _eio3_too_large(size, max_message_size)
    t = ord(rec[0]) - CHAR_0
    if t < EIO_OPEN or t > EIO_MAX_TYPE:
        raise ProtocolError("unknown Engine.IO packet type", rec[:200])
    return t


cdef int _eio3_check_binary(str rec) except -1:
    if len(rec) < 2 or rec[1] != eio_type_char(EIO_MESSAGE):
        raise ProtocolError("binary polling record is not a message", rec[:200])
    return 0


def decode_eio3_payload(data, Py_ssize_t max_packets=100000, Py_ssize_t max_message_size=0):
    """Split an Engine.IO v3 text polling payload into [(type, data)], data str or bytes.

    Binary records (``b4<base64>``) come back as (EIO_MESSAGE, bytes). Raises ProtocolError on
    a malformed length, a record running past the end or cutting a surrogate pair, an unknown
    packet type, bad base64, an empty payload or more than ``max_packets`` records, and
    PayloadTooLargeError for a packet larger than ``max_message_size`` bytes (0: no limit),
    sized as on a WebSocket (a text packet in UTF-8 with its type, a binary one decoded).
    """
    cdef list out = []
    cdef str rec
    cdef object raw
    for rec in _eio3_records(_eio3_text(data), max_packets):
        if rec[0] == u"b":
            _eio3_check_binary(rec)
            try:
                raw = base64.b64decode(rec[2:], validate=True)
            except (ValueError, binascii.Error):
                raise ProtocolError("invalid base64 in polling payload", rec[:200]) from None
            if max_message_size > 0 and len(raw) > max_message_size:
                _eio3_too_large(len(raw), max_message_size)
            out.append((EIO_MESSAGE, raw))
            continue
        out.append((_eio3_check_text(rec, max_message_size), rec[1:]))
    return out


def split_eio3_payload(data, Py_ssize_t max_packets=100000, Py_ssize_t max_message_size=0):
    """Split an Engine.IO v3 text polling payload into records as
    ``Dispatcher.feed_poll_record`` takes them: a text packet as its UTF-8 bytes, type
    character included (no str and back per packet), a binary one as ``b`` + base64.

    Checks and raises as ``decode_eio3_payload`` does, except for a binary record's base64 and
    decoded size, which ``feed_poll_record`` checks when it decodes it.
    """
    cdef list out = []
    cdef str rec
    for rec in _eio3_records(_eio3_text(data), max_packets):
        if rec[0] == u"b":
            _eio3_check_binary(rec)
            out.append(b"b" + rec[2:].encode("utf-8"))
            continue
        _eio3_check_text(rec, max_message_size)
        out.append(rec.encode("utf-8", "surrogatepass"))
    return out


cdef int _eio3_too_large(Py_ssize_t size, Py_ssize_t limit) except -1:
    raise PayloadTooLargeError(
        f"incoming message of {size} bytes exceeds max_message_size {limit}")


def encode_eio3_payload(packets):
    """Join [(type, data)] into an Engine.IO v3 text polling payload (bytes → ``b4<base64>``)."""
    cdef list parts = []
    cdef str rec
    for t, d in packets:
        if isinstance(d, (bytes, bytearray, memoryview)):
            if t != EIO_MESSAGE:
                raise ValueError("only message packets may carry binary data")
            rec = "b" + eio_type_char(EIO_MESSAGE) + base64.b64encode(bytes(d)).decode("ascii")
        else:
            rec = eio_type_char(t) + (d or "")
        parts.append(str(_utf16_units(rec)))
        parts.append(":")
        parts.append(rec)
    return "".join(parts)


def looks_like_eio3_payload(data):
    """True when a polling response is framed as Engine.IO v3 (`<digits>:`), which a v4 payload
    (starting with its packet type) never is: how a v4 handshake recognises a 2.x server."""
    cdef str s
    cdef Py_ssize_t i = 0, n
    if isinstance(data, (bytes, bytearray, memoryview)):
        s = bytes(data[:16]).decode("latin-1")
    else:
        s = data
    n = len(s)
    while i < n and i < 11 and u"0" <= s[i] <= u"9":
        i += 1
    return 0 < i < n and s[i] == u":"


# socket.io-msgpack-parser 2.x (Socket.IO 2.x servers) sends CONNECT, DISCONNECT and ERROR as a
# JSON text message `{"type": t, "nsp": ..., "data"?: ...}` and only the other packets as msgpack.
# Control packets are rare: a plain orjson.loads per packet is fine.

cdef Packet _mp2_control(const char* buf, Py_ssize_t size):
    cdef object obj, t, nsp, data
    cdef Packet p
    try:
        obj = _orjson_loads(PyBytes_FromStringAndSize(buf, size))
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON control packet: {exc}", _truncated(buf, size)) from None
    if type(obj) is not dict:
        raise ProtocolError("JSON control packet is not an object", _truncated(buf, size))
    t = (<dict>obj).get("type")
    nsp = (<dict>obj).get("nsp")
    data = (<dict>obj).get("data")
    if type(t) is not int or t not in (SIO_CONNECT, SIO_DISCONNECT, SIO_CONNECT_ERROR):
        raise ProtocolError("JSON control packet with an invalid type", _truncated(buf, size))
    if type(nsp) is not str:
        raise ProtocolError("JSON control packet without a namespace", _truncated(buf, size))
    _validate(<int>t, data, False, <str>nsp, buf, size, data is not None)
    p = Packet.__new__(Packet)
    p.type = <int>t
    p.nsp = <str>nsp
    p.id = None
    p.data = data
    p.attachments = 0
    return p


cdef bytes _mp2_control_text(int t, str nsp):
    return eio_text(EIO_MESSAGE, _orjson_dumps({"type": t, "nsp": nsp or "/"}))
