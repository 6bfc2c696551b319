# Engine.IO / Socket.IO codecs. Header parsing runs on char* (often a pointer into picows's
# read buffer); only the JSON body becomes a Python object, through one orjson.loads call.

cdef object _orjson_loads = orjson.loads
cdef object _orjson_dumps = orjson.dumps
cdef int _ORJSON_OPTS = orjson.OPT_NON_STR_KEYS
cdef object _msgpack_unpackb = msgpack.unpackb
cdef object _msgpack_packb = msgpack.packb
cdef object _ExtType = msgpack.ExtType
cdef str _ROOT_NSP = "/"


cdef struct Header:
    int type
    Py_ssize_t nsp_start     # -1: the root namespace "/"
    Py_ssize_t nsp_end
    bint has_id
    uint64_t id
    Py_ssize_t attachments
    Py_ssize_t data_start    # == size: no data


@cython.freelist(64)
cdef class Packet:
    """A decoded Socket.IO packet. ``data`` still holds placeholders while ``attachments`` > 0."""

    cdef public int type
    cdef public str nsp
    cdef public object id
    cdef public object data
    cdef public Py_ssize_t attachments

    def __init__(self, int type, str nsp="/", data=None, id=None, Py_ssize_t attachments=0):
        self.type = type
        self.nsp = nsp
        self.data = data
        self.id = id
        self.attachments = attachments

    def __repr__(self):
        return (f"Packet(type={self.type}, nsp={self.nsp!r}, id={self.id!r}, "
                f"data={self.data!r}, attachments={self.attachments})")

    def __eq__(self, other):
        if not isinstance(other, Packet):
            return NotImplemented
        cdef Packet o = <Packet>other
        return (self.type == o.type and self.nsp == o.nsp and self.id == o.id
                and self.data == o.data and self.attachments == o.attachments)


cdef inline bytes _truncated(const char* buf, Py_ssize_t size):
    return PyBytes_FromStringAndSize(buf, size if size < 200 else 200)


cdef inline bint _is_digit(char c) noexcept:
    return c >= 48 and c <= 57


cdef int _parse_header(const char* buf, Py_ssize_t size, Header* h,
                       Py_ssize_t max_attachments) except -1:
    """Parse `<type>[<attachments>-][<nsp>,][<ack id>]` and leave data_start on the body."""
    cdef Py_ssize_t pos = 1, start
    cdef uint64_t n
    cdef int t
    if size < 1:
        raise ProtocolError("empty Socket.IO packet", b"")
    t = buf[0] - 48
    if t < 0 or t > 6:
        raise ProtocolError("unknown Socket.IO packet type", _truncated(buf, size))
    h.type = t
    h.nsp_start = -1
    h.nsp_end = -1
    h.has_id = False
    h.id = 0
    h.attachments = 0
    if t == SIO_BINARY_EVENT or t == SIO_BINARY_ACK:
        n = 0
        start = pos
        while pos < size and _is_digit(buf[pos]):
            if pos - start >= MAX_ATTACHMENT_DIGITS:
                raise ProtocolError("attachment count too long", _truncated(buf, size))
            n = n * 10 + <uint64_t>(buf[pos] - 48)
            pos += 1
        if pos == start or pos >= size or buf[pos] != 45:  # '-'
            raise ProtocolError("binary packet without a valid attachment count",
                                _truncated(buf, size))
        pos += 1
        if n > <uint64_t>max_attachments:
            raise ProtocolError(f"{n} attachments exceed the limit of {max_attachments}",
                                _truncated(buf, size))
        h.attachments = <Py_ssize_t>n
    if pos < size and buf[pos] == 47:  # '/'
        start = pos
        while pos < size and buf[pos] != 44:  # ','
            pos += 1
        h.nsp_start = start
        h.nsp_end = pos
        if pos < size:
            pos += 1
    if pos < size and _is_digit(buf[pos]):
        start = pos
        n = 0
        while pos < size and _is_digit(buf[pos]):
            if pos - start >= MAX_ACK_ID_DIGITS:
                raise ProtocolError("ack id too long", _truncated(buf, size))
            n = n * 10 + <uint64_t>(buf[pos] - 48)
            pos += 1
        h.has_id = True
        h.id = n
    h.data_start = pos
    return 0


cdef str _header_nsp(const char* buf, Header* h, Py_ssize_t size):
    cdef str nsp
    cdef Py_ssize_t q
    if h.nsp_start < 0:
        return _ROOT_NSP
    try:
        nsp = PyUnicode_DecodeUTF8(buf + h.nsp_start, h.nsp_end - h.nsp_start, NULL)
    except UnicodeDecodeError:
        raise ProtocolError("namespace is not valid UTF-8", _truncated(buf, size)) from None
    q = nsp.find("?")
    if q >= 0:
        nsp = nsp[:q]
    return nsp


cdef object _loads_body(const char* buf, Py_ssize_t start, Py_ssize_t size, object loads):
    if start >= size:
        return None
    try:
        if loads is None:
            return _orjson_loads(PyBytes_FromStringAndSize(buf + start, size - start))
        return loads(PyUnicode_DecodeUTF8(buf + start, size - start, NULL))
    except (ValueError, RecursionError, TypeError) as exc:
        # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        raise ProtocolError(f"invalid JSON payload: {exc}", _truncated(buf, size)) from None


cdef int _validate(int t, object data, bint has_id, str nsp, const char* buf,
                   Py_ssize_t size) except -1:
    """The payload rules of the reference parser (socket.io-parser's isPayloadValid)."""
    cdef bint ok
    if t == SIO_CONNECT:
        ok = data is None or type(data) is dict
    elif t == SIO_DISCONNECT:
        ok = data is None
    elif t == SIO_CONNECT_ERROR:
        ok = type(data) is dict or type(data) is str
    elif t == SIO_EVENT or t == SIO_BINARY_EVENT:
        ok = (type(data) is list and len(<list>data) > 0
              and type((<list>data)[0]) is str)
    else:  # ACK, BINARY_ACK
        ok = type(data) is list and has_id
    if not ok:
        raise ProtocolError(f"invalid payload for packet type {t}", _truncated(buf, size), nsp)
    return 0


cdef Packet _decode_text(const char* buf, Py_ssize_t size, object loads,
                         Py_ssize_t max_attachments):
    cdef Header h
    cdef Packet p
    _parse_header(buf, size, &h, max_attachments)
    p = Packet.__new__(Packet)
    p.type = h.type
    p.nsp = _header_nsp(buf, &h, size)
    p.id = h.id if h.has_id else None
    p.data = _loads_body(buf, h.data_start, size, loads)
    p.attachments = h.attachments
    _validate(h.type, p.data, h.has_id, p.nsp, buf, size)
    return p


def decode_packet(data, json=None, Py_ssize_t max_attachments=DEFAULT_MAX_ATTACHMENTS):
    """Decode one Socket.IO text packet (without the Engine.IO ``4`` prefix).

    Raises ProtocolError on anything the reference parser would reject.
    """
    cdef bytes b
    if isinstance(data, str):
        b = (<str>data).encode("utf-8", "surrogatepass")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        b = bytes(data)
    else:
        raise TypeError(f"expected str or bytes, got {type(data).__name__}")
    return _decode_text(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), _loads_arg(json),
                        max_attachments)


cdef object _loads_arg(object json):
    # None means orjson; a module with loads/dumps (python-socketio's json= option) is honoured.
    if json is None:
        return None
    return json.loads


# --- encoding -------------------------------------------------------------------------------

cdef inline Py_ssize_t _udigits(uint64_t v) noexcept:
    cdef Py_ssize_t n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef inline char* _write_uint(char* p, uint64_t v, Py_ssize_t ndigits) noexcept:
    cdef Py_ssize_t i
    for i in range(ndigits - 1, -1, -1):
        p[i] = <char>(48 + v % 10)
        v //= 10
    return p + ndigits


cdef bytes _dumps(object data, object json):
    cdef object out
    if json is None:
        try:
            return _orjson_dumps(data, option=_ORJSON_OPTS)
        except orjson.JSONEncodeError as exc:
            raise TypeError(f"cannot serialize to JSON: {exc}") from None
    out = json.dumps(data, separators=(",", ":"))
    if isinstance(out, str):
        return (<str>out).encode("utf-8")
    return bytes(out)


cdef bytes _encode_text(int t, str nsp, object data, object ack_id, object json,
                        Py_ssize_t nattachments, bint eio_prefix):
    """`[4]<type>[<n>-][<nsp>,][<id>][<json>]` in one allocation."""
    cdef bytes body = _dumps(data, json) if data is not None else b""
    cdef bytes nsp_b = b""
    cdef Py_ssize_t size, id_digits = 0, att_digits = 0, body_len, nsp_len = 0
    cdef uint64_t id_val = 0
    cdef bytes out
    cdef char* p
    if nsp is not None and nsp != "/":
        nsp_b = nsp.encode("utf-8")
        nsp_len = PyBytes_GET_SIZE(nsp_b)
    if ack_id is not None:
        id_val = ack_id
        id_digits = _udigits(id_val)
    if nattachments or t == SIO_BINARY_EVENT or t == SIO_BINARY_ACK:
        att_digits = _udigits(<uint64_t>nattachments)
    body_len = PyBytes_GET_SIZE(body)
    size = (1 if eio_prefix else 0) + 1 + (att_digits + 1 if att_digits else 0) \
        + (nsp_len + 1 if nsp_len else 0) + id_digits + body_len
    out = PyBytes_FromStringAndSize(NULL, size)
    p = PyBytes_AS_STRING(out)
    if eio_prefix:
        p[0] = 52  # '4'
        p += 1
    p[0] = <char>(48 + t)
    p += 1
    if att_digits:
        p = _write_uint(p, <uint64_t>nattachments, att_digits)
        p[0] = 45  # '-'
        p += 1
    if nsp_len:
        memcpy(p, PyBytes_AS_STRING(nsp_b), nsp_len)
        p += nsp_len
        p[0] = 44  # ','
        p += 1
    if id_digits:
        p = _write_uint(p, id_val, id_digits)
    if body_len:
        memcpy(p, PyBytes_AS_STRING(body), body_len)
    return out


cdef list _encode_json_packet(int t, str nsp, object data, object ack_id, object json,
                              bint eio_prefix):
    """Encode to [text, *attachments]; EVENT/ACK become BINARY_* when data holds bytes."""
    cdef list attachments = None
    if (t == SIO_EVENT or t == SIO_ACK or t == SIO_BINARY_EVENT or t == SIO_BINARY_ACK) \
            and _has_binary(data, 0):
        attachments = []
        data = _deconstruct(data, attachments, 0)
        if t == SIO_EVENT:
            t = SIO_BINARY_EVENT
        elif t == SIO_ACK:
            t = SIO_BINARY_ACK
    elif t == SIO_BINARY_EVENT:
        t = SIO_EVENT
    elif t == SIO_BINARY_ACK:
        t = SIO_ACK
    if attachments is None:
        return [_encode_text(t, nsp, data, ack_id, json, 0, eio_prefix)]
    return [_encode_text(t, nsp, data, ack_id, json, len(attachments), eio_prefix)] + attachments


def encode_packet(int type, str nsp="/", data=None, id=None, json=None):
    """Encode a Socket.IO packet as ``[text, *attachments]`` (text without the Engine.IO prefix).

    EVENT and ACK packets whose data contains bytes are sent as BINARY_EVENT/BINARY_ACK with
    placeholders, as python-socketio and socket.io-parser do.
    """
    if type < 0 or type > 6:
        raise ValueError(f"unknown Socket.IO packet type {type}")
    if id is not None and (not isinstance(id, int) or id < 0):
        raise ValueError("ack id must be a non-negative int")
    return _encode_json_packet(type, nsp, data, id, json, False)


# --- msgpack (socket.io-msgpack-parser / notepack wire format) --------------------------------

cdef object _msgpack_ext_hook(int code, bytes data):
    # notepack encodes `undefined` as fixext1 type 0, Date as fixext8 type 0 (float64 ms since
    # the epoch) and ArrayBuffer as ext type 0 with the raw bytes.
    cdef Py_ssize_t n = len(data)
    if code == 0:
        if n == 1 and data[0] == 0:
            return None
        if n == 8:
            ms = struct.unpack(">d", data)[0]
            if ms == ms and -8.64e15 <= ms <= 8.64e15:
                return _EPOCH + datetime.timedelta(milliseconds=ms)
        return data
    return _ExtType(code, data)


cdef object _msgpack_default(object obj):
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=datetime.timezone.utc)
        return _ExtType(0, struct.pack(">d", (obj - _EPOCH) / datetime.timedelta(milliseconds=1)))
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} to msgpack")


cdef bytes _encode_msgpack(int t, str nsp, object data, object ack_id):
    cdef dict d
    if t == SIO_BINARY_EVENT:
        t = SIO_EVENT
    elif t == SIO_BINARY_ACK:
        t = SIO_ACK
    d = {"type": t, "nsp": nsp or "/"}
    # The JS decoder rejects `data: nil` on DISCONNECT; absent data is left out altogether.
    if data is not None:
        d["data"] = data
    if ack_id is not None:
        d["id"] = ack_id
    return _msgpack_packb(d, use_bin_type=True, default=_msgpack_default)


def encode_msgpack(int type, str nsp="/", data=None, id=None):
    """Encode a Socket.IO packet in socket.io-msgpack-parser's format (one binary frame)."""
    if type < 0 or type > 6:
        raise ValueError(f"unknown Socket.IO packet type {type}")
    return _encode_msgpack(type, nsp, data, id)


cdef Packet _decode_msgpack(const char* buf, Py_ssize_t size):
    cdef object obj
    cdef Packet p
    cdef object t, nsp, ack_id
    try:
        obj = _msgpack_unpackb(PyBytes_FromStringAndSize(buf, size), raw=False,
                               ext_hook=_msgpack_ext_hook, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"invalid msgpack payload: {exc!r}", _truncated(buf, size)) from None
    if type(obj) is not dict:
        raise ProtocolError("msgpack packet is not a map", _truncated(buf, size))
    t = (<dict>obj).get("type")
    nsp = (<dict>obj).get("nsp", "/")
    ack_id = (<dict>obj).get("id")
    if type(t) is not int or not (0 <= t <= 4):
        raise ProtocolError("msgpack packet with an invalid type", _truncated(buf, size))
    if type(nsp) is not str:
        raise ProtocolError("msgpack packet with an invalid nsp", _truncated(buf, size))
    if ack_id is not None and (type(ack_id) is not int or ack_id < 0):
        raise ProtocolError("msgpack packet with an invalid id", _truncated(buf, size), nsp)
    p = Packet.__new__(Packet)
    p.type = t
    p.nsp = nsp
    p.id = ack_id
    p.data = (<dict>obj).get("data")
    p.attachments = 0
    _validate(p.type, p.data, ack_id is not None, nsp, buf, size)
    return p


def decode_msgpack(data):
    """Decode one socket.io-msgpack-parser packet. Raises ProtocolError when malformed."""
    cdef bytes b = bytes(data)
    return _decode_msgpack(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


# --- Engine.IO polling payloads --------------------------------------------------------------

def decode_eio_payload(data, Py_ssize_t max_packets=100000):
    """Split an Engine.IO v4 polling payload into [(type, data)], data str or bytes.

    Binary packets (``b<base64>``) come back as (EIO_MESSAGE, bytes).
    """
    cdef str s
    cdef list out = []
    cdef str part
    cdef Py_ssize_t t
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            s = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("polling payload is not valid UTF-8", bytes(data)) from None
    else:
        s = data
    if not s:
        raise ProtocolError("empty polling payload", b"")
    for part in s.split("\x1e"):
        if len(out) >= max_packets:
            raise ProtocolError("too many packets in one polling payload", s[:200])
        if not part:
            raise ProtocolError("empty packet in polling payload", s[:200])
        if part[0] == "b":
            try:
                out.append((EIO_MESSAGE, base64.b64decode(part[1:], validate=True)))
            except (ValueError, binascii.Error):
                raise ProtocolError("invalid base64 in polling payload", part[:200]) from None
            continue
        t = ord(part[0]) - 48
        if t < 0 or t > 6:
            raise ProtocolError("unknown Engine.IO packet type", part[:200])
        out.append((t, part[1:]))
    return out


def encode_eio_payload(packets):
    """Join [(type, data)] into an Engine.IO v4 polling payload (bytes → ``b`` + base64)."""
    cdef list parts = []
    for t, d in packets:
        if isinstance(d, (bytes, bytearray, memoryview)):
            if t != EIO_MESSAGE:
                raise ValueError("only message packets may carry binary data")
            parts.append("b" + base64.b64encode(bytes(d)).decode("ascii"))
        else:
            parts.append(chr(48 + t) + (d or ""))
    return "\x1e".join(parts)
