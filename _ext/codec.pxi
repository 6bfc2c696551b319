# Engine.IO / Socket.IO codecs. Header parsing runs on char* (often a pointer into picows's
# read buffer); only the JSON body becomes a Python object, through one orjson.loads call.
# Pure functions of bytes and objects: nothing of sessions, handlers, hooks or sockets.

cdef object _orjson_loads = orjson.loads
cdef object _orjson_dumps = orjson.dumps
cdef object _ORJSON_OPTS = orjson.OPT_NON_STR_KEYS  # boxed once, passed positionally
cdef object _msgpack_packb = msgpack.packb
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
    return c >= CHAR_0 and c <= CHAR_9


cdef int _parse_header(const char* buf, Py_ssize_t size, Header* h,
                       Py_ssize_t max_attachments) except -1:
    """Parse `<type>[<attachments>-][<nsp>,][<ack id>]` and leave data_start on the body."""
    cdef Py_ssize_t pos = 1, start
    cdef uint64_t n
    cdef int t
    if size < 1:
        raise ProtocolError("empty Socket.IO packet", b"")
    t = buf[0] - CHAR_0
    if t < SIO_CONNECT or t > SIO_MAX_TYPE:
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
            n = n * 10 + <uint64_t>(buf[pos] - CHAR_0)
            pos += 1
        if pos == start or pos >= size or buf[pos] != 45 or n == 0:  # '-'
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
            n = n * 10 + <uint64_t>(buf[pos] - CHAR_0)
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
    cdef object fast
    cdef bytes body
    if start >= size:
        return None
    if loads is None:
        fast = _json_fast(buf + start, size - start)
        if fast is not _JSON_BAIL:
            return fast
    body = PyBytes_FromStringAndSize(buf + start, size - start)
    try:
        if loads is None:
            return _orjson_loads(body)
        return loads(PyUnicode_DecodeUTF8(buf + start, size - start, NULL))
    except (ValueError, RecursionError, TypeError) as exc:
        # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        if loads is None and b"\\u" in body:
            # orjson refuses escaped lone surrogates ("\ud83d"), which JSON.stringify produces
            # for a string cut inside an emoji; the standard library accepts them.
            try:
                return _stdlib_json_loads(body.decode("utf-8"), parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                pass
        raise ProtocolError(f"invalid JSON payload: {exc}", _truncated(buf, size)) from None


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


cdef int _validate(int t, object data, bint has_id, str nsp, const char* buf,
                   Py_ssize_t size, bint has_body=True) except -1:
    """The payload rules of the reference parser (socket.io-parser's isPayloadValid).

    ``has_body`` tells an explicit JSON ``null`` (invalid for CONNECT and DISCONNECT) from no
    payload at all.
    """
    cdef bint ok
    if t == SIO_CONNECT:
        ok = (data is None and not has_body) or type(data) is dict
    elif t == SIO_DISCONNECT:
        ok = data is None and not has_body
    elif t == SIO_CONNECT_ERROR:
        ok = type(data) is dict or type(data) is str
    elif t == SIO_EVENT or t == SIO_BINARY_EVENT:
        # socket.io-parser accepts a number as the event name too (delivered by its string).
        ok = (type(data) is list and len(<list>data) > 0
              and (type((<list>data)[0]) is str or type((<list>data)[0]) is int
                   or type((<list>data)[0]) is float))
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
    _validate(h.type, p.data, h.has_id, p.nsp, buf, size, h.data_start < size)
    return p


def decode_packet(data, json=None, Py_ssize_t max_attachments=DEFAULT_MAX_ATTACHMENTS):
    """Decode one Socket.IO text packet (without the Engine.IO ``4`` prefix).

    Raises ProtocolError on anything the reference parser would reject.
    """
    cdef bytes b
    if isinstance(data, str):
        b = (<str>data).encode("utf-8", "surrogatepass")
    elif type(data) is bytes:
        b = <bytes>data
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
        p[i] = <char>(CHAR_0 + v % 10)
        v //= 10
    return p + ndigits


cdef bytes _dumps(object data, object json):
    cdef object out
    if json is None:
        try:
            # Without OPT_NON_STR_KEYS first: orjson takes a slower path for every dict with
            # it. A dict with a non-str key fails here and is encoded again with the option.
            return _orjson_dumps(data)
        except orjson.JSONEncodeError:
            pass
        try:
            return _orjson_dumps(data, None, _ORJSON_OPTS)
        except orjson.JSONEncodeError as exc:
            # orjson stops at 64-bit integers; the standard library (python-socketio's
            # encoder) does not. Anything else it cannot encode stays a TypeError.
            try:
                return _stdlib_json_dumps(data, separators=(",", ":"),
                                          ensure_ascii=False).encode("utf-8")
            except (TypeError, ValueError, RecursionError):
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
        p[0] = <char>(CHAR_0 + EIO_MESSAGE)
        p += 1
    p[0] = <char>(CHAR_0 + t)
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
    if type < SIO_CONNECT or type > SIO_MAX_TYPE:
        raise ValueError(f"unknown Socket.IO packet type {type}")
    _check_ack_id(id)
    return _encode_json_packet(type, nsp, data, id, json, False)


cdef _check_ack_id(object id):
    if id is not None and (type(id) is not int or id < 0 or id >= (1 << 64)):
        raise ValueError("ack id must be an int in [0, 2**64)")


# --- msgpack (socket.io-msgpack-parser / notepack wire format) --------------------------------

def _msgpack_default(obj):
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=datetime.timezone.utc)
        ms = (obj - _EPOCH) // datetime.timedelta(milliseconds=1)
        return _ExtType(0, struct.pack(">iI", ms >> 32, ms & 0xFFFFFFFF))
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} to msgpack")


cdef bytes _encode_msgpack(int t, str nsp, object data, object ack_id):
    if t == SIO_BINARY_EVENT:
        t = SIO_EVENT
    elif t == SIO_BINARY_ACK:
        t = SIO_ACK
    # The JS decoder rejects `data: nil` on DISCONNECT; absent data is left out altogether.
    return _mp_encode_packet(t, nsp, data, ack_id)


def encode_msgpack(int type, str nsp="/", data=None, id=None):
    """Encode a Socket.IO packet in socket.io-msgpack-parser's format (one binary frame)."""
    if type < SIO_CONNECT or type > SIO_MAX_TYPE:
        raise ValueError(f"unknown Socket.IO packet type {type}")
    _check_ack_id(id)
    return _encode_msgpack(type, nsp, data, id)


cdef Py_ssize_t _mp_skip(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t size) except -2:
    """Return the offset just past the msgpack value at pos, or -1 if it is truncated/invalid.

    Iterative (a count of values still to skip), so hostile nesting cannot exhaust the stack;
    every value consumes at least one byte, so the loop is bounded by the input size.
    """
    cdef uint64_t todo = 1
    cdef Py_ssize_t tpos
    cdef unsigned char c
    cdef uint64_t n
    while todo:
        if pos >= size:
            return -1
        c = buf[pos]
        todo -= 1
        if c <= 0x7f or c >= 0xe0 or c == 0xc0 or c == 0xc2 or c == 0xc3:
            pos += 1
        elif c <= 0x8f:
            todo += 2 * <uint64_t>(c & 0x0f)
            pos += 1
        elif c <= 0x9f:
            todo += c & 0x0f
            pos += 1
        elif c <= 0xbf:
            pos += 1 + (c & 0x1f)
        elif c == 0xc4 or c == 0xd9:  # bin8, str8
            if pos + 2 > size:
                return -1
            pos += 2 + buf[pos + 1]
        elif c == 0xc5 or c == 0xda:  # bin16, str16
            if pos + 3 > size:
                return -1
            pos += 3 + <Py_ssize_t>_be(buf + pos + 1, 2)
        elif c == 0xc6 or c == 0xdb:  # bin32, str32
            if pos + 5 > size:
                return -1
            pos += 5 + <Py_ssize_t>_be(buf + pos + 1, 4)
        elif c == 0xc7 or c == 0xc8 or c == 0xc9:  # ext8, ext16, ext32
            tpos = pos + (2 if c == 0xc7 else 3 if c == 0xc8 else 5)
            if tpos + 1 > size:
                return -1
            if c == 0xc7:
                pos = tpos + 1 + buf[pos + 1]
            elif c == 0xc8:
                pos = tpos + 1 + <Py_ssize_t>_be(buf + pos + 1, 2)
            else:
                pos = tpos + 1 + <Py_ssize_t>_be(buf + pos + 1, 4)
        elif c == 0xca or c == 0xce or c == 0xd2:
            pos += 5
        elif c == 0xcb or c == 0xcf or c == 0xd3:
            pos += 9
        elif c == 0xcc or c == 0xd0:
            pos += 2
        elif c == 0xcd or c == 0xd1:
            pos += 3
        elif c == 0xd4:
            pos += 3
        elif c == 0xd5:
            pos += 4
        elif c == 0xd6:
            pos += 6
        elif c == 0xd7:
            pos += 10
        elif c == 0xd8:
            pos += 18
        elif c == 0xdc or c == 0xde:  # array16, map16
            if pos + 3 > size:
                return -1
            n = _be(buf + pos + 1, 2)
            todo += n * 2 if c == 0xde else n
            pos += 3
        elif c == 0xdd or c == 0xdf:  # array32, map32
            if pos + 5 > size:
                return -1
            n = _be(buf + pos + 1, 4)
            todo += n * 2 if c == 0xdf else n
            pos += 5
        else:  # 0xc1: never used
            return -1
    return pos if pos <= size else -1


cdef int _mp_uint(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                  uint64_t* out) except -1:
    """Read an unsigned integer value at pos; returns 1 if it is one, 0 otherwise."""
    cdef unsigned char c = buf[pos]
    if c <= 0x7f:
        out[0] = c
        return 1
    if c == 0xcc and pos + 2 <= end:
        out[0] = buf[pos + 1]
        return 1
    if c == 0xcd and pos + 3 <= end:
        out[0] = _be(buf + pos + 1, 2)
        return 1
    if c == 0xce and pos + 5 <= end:
        out[0] = _be(buf + pos + 1, 4)
        return 1
    if c == 0xcf and pos + 9 <= end:
        out[0] = _be(buf + pos + 1, 8)
        return 1
    return 0


cdef inline Py_ssize_t _mp_str(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                               Py_ssize_t* length) noexcept:
    """If a str is at pos, return the offset of its bytes and set length; else -1."""
    cdef unsigned char c = buf[pos]
    if 0xa0 <= c <= 0xbf:
        length[0] = c & 0x1f
        return pos + 1
    if c == 0xd9 and pos + 2 <= end:
        length[0] = buf[pos + 1]
        return pos + 2
    if c == 0xda and pos + 3 <= end:
        length[0] = <Py_ssize_t>_be(buf + pos + 1, 2)
        return pos + 3
    return -1


cdef object _loads_msgpack(const char* buf, Py_ssize_t start, Py_ssize_t end,
                           Py_ssize_t size):
    # Whatever the decoder raises (ValueError, UnicodeDecodeError, TypeError for an unhashable
    # key, ValueError from ExtType or Timestamp) is the peer's doing.
    try:
        return _mp_decode(<const unsigned char*>buf + start, end - start)
    except Exception as exc:
        raise ProtocolError(f"invalid msgpack payload: {exc!r}", _truncated(buf, size)) from None


cdef object _mp_envelope(const char* cbuf, Py_ssize_t size, int* t, bint* has_id,
                         uint64_t* ack_id, Py_ssize_t* data_start, Py_ssize_t* data_end,
                         bint binary_types=False):
    """Parse the envelope {type, nsp, data, id} on the buffer; return nsp.

    Sets the type, the ack id (has_id) and where `data` lies (data_start -1: no data; `data:
    undefined` counts as none). No Python object is built but the namespace.
    """
    cdef const unsigned char* buf = <const unsigned char*>cbuf
    cdef Py_ssize_t pos = 0, npairs, i, kpos, klen, vend, spos, slen
    cdef uint64_t v
    cdef object nsp = None
    cdef unsigned char c
    t[0] = -1
    has_id[0] = False
    data_start[0] = -1
    data_end[0] = -1
    if size < 1:
        raise ProtocolError("empty msgpack packet", b"")
    c = buf[0]
    if 0x80 <= c <= 0x8f:
        npairs = c & 0x0f
        pos = 1
    elif c == 0xde and size >= 3:
        npairs = <Py_ssize_t>_be(buf + 1, 2)
        pos = 3
    else:
        raise ProtocolError("msgpack packet is not a map", _truncated(cbuf, size))
    for i in range(npairs):
        if pos >= size:
            raise ProtocolError("truncated msgpack packet", _truncated(cbuf, size))
        kpos = _mp_str(buf, pos, size, &klen)
        if kpos < 0 or kpos + klen > size:
            raise ProtocolError("msgpack packet with a non-string key", _truncated(cbuf, size))
        pos = kpos + klen
        vend = _mp_skip(buf, pos, size)
        if vend < 0:
            raise ProtocolError("truncated or invalid msgpack packet", _truncated(cbuf, size))
        if klen == 4 and memcmp(buf + kpos, b"type", 4) == 0:
            if not _mp_uint(buf, pos, vend, &v) \
                    or v > (SIO_MAX_TYPE if binary_types else SIO_CONNECT_ERROR):
                raise ProtocolError("msgpack packet with an invalid type", _truncated(cbuf, size))
            # socket.io-msgpack-parser 2.x keeps Socket.IO 2.x's BINARY_EVENT/BINARY_ACK types.
            if v == SIO_BINARY_EVENT:
                t[0] = SIO_EVENT
            elif v == SIO_BINARY_ACK:
                t[0] = SIO_ACK
            else:
                t[0] = <int>v
        elif klen == 4 and memcmp(buf + kpos, b"data", 4) == 0:
            data_start[0] = pos
            data_end[0] = vend
        elif klen == 3 and memcmp(buf + kpos, b"nsp", 3) == 0:
            spos = _mp_str(buf, pos, vend, &slen)
            if spos < 0 or spos + slen != vend:
                raise ProtocolError("msgpack packet with an invalid nsp", _truncated(cbuf, size))
            if slen == 1 and buf[spos] == 47:
                nsp = _ROOT_NSP
            else:
                try:
                    nsp = PyUnicode_DecodeUTF8(cbuf + spos, slen, NULL)
                except UnicodeDecodeError:
                    raise ProtocolError("msgpack nsp is not valid UTF-8",
                                        _truncated(cbuf, size)) from None
        elif klen == 2 and memcmp(buf + kpos, b"id", 2) == 0:
            if buf[pos] == 0xc0:
                has_id[0] = False
            elif _mp_uint(buf, pos, vend, &v):
                has_id[0] = True
                ack_id[0] = v
            else:
                raise ProtocolError("msgpack packet with an invalid id", _truncated(cbuf, size))
        pos = vend
    if pos != size:
        raise ProtocolError("trailing bytes after the msgpack packet", _truncated(cbuf, size))
    if t[0] < 0:
        raise ProtocolError("msgpack packet without a type", _truncated(cbuf, size))
    if nsp is None:
        raise ProtocolError("msgpack packet without a namespace", _truncated(cbuf, size))
    if data_start[0] >= 0 and buf[data_start[0]] == 0xd4 \
            and data_end[0] - data_start[0] == 3 and buf[data_start[0] + 1] == 0:
        data_start[0] = -1  # `data: undefined` is the same as no data
        data_end[0] = -1
    return nsp


cdef Packet _mp_packet(const char* cbuf, Py_ssize_t size, int t, object nsp, bint has_id,
                       uint64_t ack_id, Py_ssize_t data_start, Py_ssize_t data_end):
    """The packet of a parsed envelope: `data` decoded (mpdecode.pxi) and validated."""
    cdef object data = None
    cdef Packet p
    if data_start >= 0:
        data = _loads_msgpack(cbuf, data_start, data_end, size)
    p = Packet.__new__(Packet)
    p.type = t
    p.nsp = nsp
    p.id = ack_id if has_id else None
    p.data = data
    p.attachments = 0
    # python-socketio sends `data: nil` on CONNECT/DISCONNECT: treated as no data.
    _validate(t, data, has_id, nsp, cbuf, size, data is not None)
    return p


cdef Packet _decode_msgpack(const char* cbuf, Py_ssize_t size):
    # The envelope is parsed on the buffer; only `data` becomes Python objects.
    cdef int t
    cdef bint has_id
    cdef uint64_t ack_id = 0
    cdef Py_ssize_t data_start, data_end
    cdef object nsp = _mp_envelope(cbuf, size, &t, &has_id, &ack_id, &data_start, &data_end)
    return _mp_packet(cbuf, size, t, nsp, has_id, ack_id, data_start, data_end)


cdef dict _PACK_KW = {"use_bin_type": True, "default": _msgpack_default}


def decode_msgpack(data):
    """Decode one socket.io-msgpack-parser packet. Raises ProtocolError when malformed."""
    # bytes(b) hands back b itself, but through a type call that costs as much as the envelope.
    cdef bytes b = <bytes>data if type(data) is bytes else bytes(data)
    return _decode_msgpack(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


def decode_msgpack_data(data):
    """Decode one msgpack value the way a packet's ``data`` is decoded (notepack's undefined,
    Date and ArrayBuffer included). Raises ProtocolError when malformed or not one whole value.
    """
    cdef bytes b = <bytes>data if type(data) is bytes else bytes(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(b)
    cdef Py_ssize_t end
    if size:
        # Walked first, as the receive path's envelope does: container headers claim slots the
        # decoder allocates up front, and nested ones could each claim as many as there are
        # bytes left. Once the walk has seen every claimed value in the input, the slots are
        # bounded by its size. (The decoder reports what an empty input lacks.)
        end = _mp_skip(<const unsigned char*>PyBytes_AS_STRING(b), 0, size)
        if end < 0:
            raise ProtocolError("invalid msgpack payload: truncated or invalid msgpack value",
                                _truncated(PyBytes_AS_STRING(b), size))
        if end != size:
            raise ProtocolError("invalid msgpack payload: trailing bytes after the msgpack value",
                                _truncated(PyBytes_AS_STRING(b), size))
    return _loads_msgpack(PyBytes_AS_STRING(b), 0, size, size)


# --- Engine.IO polling payloads --------------------------------------------------------------

cdef object _too_large(Py_ssize_t size, Py_ssize_t limit, str what):
    return PayloadTooLargeError(
        f"{what} of {size} bytes exceeds max_message_size ({limit} bytes); raise the limit "
        f"with AsyncClient(max_message_size=...), 0 for none")


def poll_body_limit(Py_ssize_t max_message_size):
    """The most bytes read from one poll response under ``max_message_size`` (0: no limit)."""
    if max_message_size <= 0:
        return 0
    return POLL_BODY_FACTOR * max_message_size + POLL_BODY_SLACK


cdef Py_ssize_t _utf8_len(str s, Py_ssize_t limit) except -1:
    # The UTF-8 size of s, exact only when it could exceed limit (a character is 1 to 4 bytes).
    cdef Py_ssize_t n = len(s)
    if n > limit or 4 * n <= limit:
        return n
    return len(s.encode("utf-8", "surrogatepass"))


def decode_eio_payload(data, Py_ssize_t max_packets=100000, Py_ssize_t max_message_size=0):
    """Split an Engine.IO v4 polling payload into [(type, data)], data str or bytes.

    Binary packets (``b<base64>``) come back as (EIO_MESSAGE, bytes). Splitting stops at the
    packet that breaks a limit: more than ``max_packets`` packets, or one packet larger than
    ``max_message_size`` bytes (PayloadTooLargeError; 0: no limit) - sized as on a WebSocket:
    a text packet with its type character, a binary one decoded.
    """
    cdef str s
    cdef list out = []
    cdef str part
    cdef Py_ssize_t t, pos = 0, end, n, size
    cdef object raw
    if isinstance(data, (bytes, bytearray, memoryview)):
        if isinstance(data, memoryview):
            data = bytes(data)
        try:
            s = data.decode("utf-8")  # (a bytearray decodes in place: no copy of the body)
        except UnicodeDecodeError:
            raise ProtocolError("polling payload is not valid UTF-8", bytes(data[:200])) from None
    else:
        s = data
    n = len(s)
    if not n:
        raise ProtocolError("empty polling payload", b"")
    while pos <= n:
        if len(out) >= max_packets:
            raise ProtocolError(f"too many packets in one polling payload (over {max_packets})",
                                s[:200])
        end = s.find("\x1e", pos)
        if end < 0:
            end = n
        if end == pos:
            raise ProtocolError("empty packet in polling payload", s[:200])
        part = s[pos:end]
        pos = end + 1
        if part[0] == "b":
            # Refused before decoding: the size base64 announces (exact when well formed).
            size = (len(part) - 1) // 4 * 3 - (2 if part.endswith("==") else
                                                1 if part.endswith("=") else 0)
            if max_message_size > 0 and size > max_message_size:
                raise _too_large(size, max_message_size, "incoming binary message")
            try:
                raw = base64.b64decode(part[1:], validate=True)
            except (ValueError, binascii.Error):
                raise ProtocolError("invalid base64 in polling payload", part[:200]) from None
            if max_message_size > 0 and len(raw) > max_message_size:
                raise _too_large(len(raw), max_message_size, "incoming binary message")
            out.append((EIO_MESSAGE, raw))
            continue
        t = ord(part[0]) - CHAR_0
        if t < EIO_OPEN or t > EIO_MAX_TYPE:
            raise ProtocolError("unknown Engine.IO packet type", part[:200])
        if max_message_size > 0:
            size = _utf8_len(part, max_message_size)
            if size > max_message_size:
                raise _too_large(size, max_message_size, "incoming message")
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
            parts.append(eio_type_char(t) + (d or ""))
    return "\x1e".join(parts)
