# msgpack -> Python objects, for the `data` of socket.io-msgpack-parser packets. The decoder
# reads the frame in place (often picows's read buffer: borrowed memory, read and never kept)
# and builds what msgpack.unpackb(raw=False, strict_map_key=False) built with notepack's ext
# types retagged for it: the same objects for every input, an exception wherever that raised
# (tests/unit/test_msgpack_native.py keeps the old path as its oracle). Going through unpackb
# cost a bytes copy, a retagging walk, keyword parsing and an Unpacker set-up per packet.
# A decoder only: the envelope (type, nsp, id) is codec.pxi's; nothing of sockets or dispatch.

cdef extern from "Python.h":
    # PyObject* forms, for the containers the decoder's stack holds by borrowed pointers.
    void _mp_list_set "PyList_SET_ITEM"(PyObject* lst, Py_ssize_t i, PyObject* item)
    int _mp_dict_set "PyDict_SetItem"(PyObject* d, PyObject* key, PyObject* item) except -1

cdef object _ExtType = msgpack.ExtType
cdef object _Timestamp = msgpack.Timestamp
cdef object _timedelta = datetime.timedelta

cdef struct _MpFrame:
    PyObject* obj      # the list or dict being filled: borrowed, its parent (or the root) owns it
    Py_ssize_t i       # items (list) or pairs (dict) filled so far
    Py_ssize_t n
    bint is_map


cdef inline uint64_t _be(const unsigned char* p, int n) noexcept:
    # The n-byte big-endian unsigned integer at p (codec.pxi's envelope walk reads with it too).
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef int _mp_fail(str what) except -1:
    # The message becomes part of ProtocolError's ("invalid msgpack payload: ...").
    raise ValueError(what)


cdef object _notepack_date(const unsigned char* p):
    """A notepack Date (fixext8 type 0): milliseconds since the epoch, big-endian, the high word
    signed. None when no datetime holds it (JS's own range is +-8.64e15 ms); the caller then
    keeps the 8 bytes, as the former ext_hook did."""
    cdef int64_t ms = <int64_t>_be(p, 8)
    if ms < -8_640_000_000_000_000 or ms > 8_640_000_000_000_000:
        return None
    try:
        return _EPOCH + _timedelta(milliseconds=ms)
    except OverflowError:
        return None


cdef object _mp_timestamp(const unsigned char* p, Py_ssize_t n):
    """msgpack's own timestamp (ext type -1), as unpackb(timestamp=0) made it: Timestamp raises
    on nanoseconds >= 10**9 (possible in the 8- and 12-byte forms)."""
    cdef uint64_t v
    if n == 4:
        return _Timestamp(<uint32_t>_be(p, 4), 0)
    if n == 8:
        v = _be(p, 8)
        return _Timestamp(<int64_t>(v & 0x3ffffffff), <uint32_t>(v >> 34))
    if n == 12:
        return _Timestamp(<int64_t>_be(p + 4, 8), <uint32_t>_be(p, 4))
    raise ValueError(f"invalid timestamp data (length {n})")


cdef object _mp_ext(signed char code, const unsigned char* p, Py_ssize_t n, bint fixed):
    """An ext value. notepack sends `undefined` as fixext1 type 0 (one zero byte), a Date as
    fixext8 type 0 and an ArrayBuffer as ext8/16/32 type 0 (``fixed`` tells them apart)."""
    cdef object date
    if code == 0:
        if fixed:
            if n == 1 and p[0] == 0:
                return None
            if n == 8:
                date = _notepack_date(p)
                if date is not None:
                    return date
        return PyBytes_FromStringAndSize(<const char*>p, n)
    if code == -128:
        # The reserved code the old retagging walk gave ArrayBuffers: one sent as such was
        # read as bytes too.
        return PyBytes_FromStringAndSize(<const char*>p, n)
    if code == -1:
        return _mp_timestamp(p, n)
    # ExtType itself refuses the other negative codes (ValueError), as it did from the hook.
    return _ExtType(code, PyBytes_FromStringAndSize(<const char*>p, n))


cdef inline Py_ssize_t _mp_sized(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t size,
                                 int width, Py_ssize_t* n) except -1:
    """For a str/bin/ext header with a width-byte length at pos + 1: the offset just past the
    length field, with n set; fails when the header or the n bytes after it are cut short."""
    cdef Py_ssize_t start = pos + 1 + width
    if start > size:
        _mp_fail("truncated msgpack value")
    n[0] = <Py_ssize_t>_be(buf + pos + 1, width)
    if n[0] > size - start:
        _mp_fail("truncated msgpack value")
    return start


cdef inline Py_ssize_t _mp_fixed(Py_ssize_t pos, Py_ssize_t size, Py_ssize_t n) except -1:
    """The offset past a format byte at pos and its n payload bytes; fails if they are cut."""
    if n >= size - pos:
        _mp_fail("truncated msgpack value")
    return pos + 1 + n


cdef object _mp_scalar(const unsigned char* buf, Py_ssize_t* ppos, Py_ssize_t size):
    """The value at ppos[0] (< size), which is not an array or a map; advances ppos."""
    cdef Py_ssize_t pos = ppos[0], start, n
    cdef unsigned char c = buf[pos]
    cdef const unsigned char* p = buf + pos + 1
    cdef uint64_t u
    cdef uint32_t u32
    cdef double d
    cdef float f
    if c <= 0x7f:
        ppos[0] = pos + 1
        return <long>c
    if c >= 0xe0:
        ppos[0] = pos + 1
        return <long><signed char>c
    if c >= 0xa0 and c <= 0xbf:
        n = c & 0x1f
        ppos[0] = _mp_fixed(pos, size, n)
        return _utf8_str(p, n)
    # One comparison chain on c: Cython makes it a C switch, and each width is a constant.
    if c == 0xc0:
        ppos[0] = pos + 1
        return None
    elif c == 0xc2:
        ppos[0] = pos + 1
        return False
    elif c == 0xc3:
        ppos[0] = pos + 1
        return True
    elif c == 0xcb:
        ppos[0] = _mp_fixed(pos, size, 8)
        u = _be(p, 8)
        memcpy(&d, &u, 8)
        return d
    elif c == 0xca:
        ppos[0] = _mp_fixed(pos, size, 4)
        # Widened like msgpack does (a C float to double), NaN payloads included.
        u32 = <uint32_t>_be(p, 4)
        memcpy(&f, &u32, 4)
        return <double>f
    elif c == 0xcc:
        ppos[0] = _mp_fixed(pos, size, 1)
        return <long>p[0]
    elif c == 0xcd:
        ppos[0] = _mp_fixed(pos, size, 2)
        return <long>_be(p, 2)
    elif c == 0xce:
        ppos[0] = _mp_fixed(pos, size, 4)
        return <uint32_t>_be(p, 4)
    elif c == 0xcf:
        ppos[0] = _mp_fixed(pos, size, 8)
        return _be(p, 8)
    elif c == 0xd0:
        ppos[0] = _mp_fixed(pos, size, 1)
        return <long><int8_t>p[0]
    elif c == 0xd1:
        ppos[0] = _mp_fixed(pos, size, 2)
        return <long><int16_t>_be(p, 2)
    elif c == 0xd2:
        ppos[0] = _mp_fixed(pos, size, 4)
        return <long><int32_t>_be(p, 4)
    elif c == 0xd3:
        ppos[0] = _mp_fixed(pos, size, 8)
        return <int64_t>_be(p, 8)
    elif c == 0xd9 or c == 0xda or c == 0xdb:  # str8/16/32
        start = _mp_sized(buf, pos, size, 1 if c == 0xd9 else 2 if c == 0xda else 4, &n)
        ppos[0] = start + n
        return _utf8_str(buf + start, n)
    elif c == 0xc4 or c == 0xc5 or c == 0xc6:  # bin8/16/32
        start = _mp_sized(buf, pos, size, 1 if c == 0xc4 else 2 if c == 0xc5 else 4, &n)
        ppos[0] = start + n
        return PyBytes_FromStringAndSize(<const char*>buf + start, n)
    elif c == 0xd4 or c == 0xd5 or c == 0xd6 or c == 0xd7 or c == 0xd8:
        # fixext1/2/4/8/16: the type byte, then 1 << (c - 0xd4) bytes
        n = 1 << (c - 0xd4)
        ppos[0] = _mp_fixed(pos, size, n + 1)
        return _mp_ext(<signed char>p[0], p + 1, n, True)
    elif c == 0xc7 or c == 0xc8 or c == 0xc9:  # ext8/16/32: length, type byte, data
        start = _mp_sized(buf, pos, size, 1 if c == 0xc7 else 2 if c == 0xc8 else 4, &n)
        if n >= size - start:
            _mp_fail("truncated msgpack value")
        ppos[0] = start + 1 + n
        return _mp_ext(<signed char>buf[start], buf + start + 1, n, False)
    _mp_fail("reserved msgpack byte 0xc1")  # (arrays and maps never get here)


cdef object _mp_item(const unsigned char* buf, Py_ssize_t* ppos, Py_ssize_t size,
                     _MpFrame* stack, Py_ssize_t* depth):
    """The value at ppos[0]; advances ppos past its header (a scalar: past all of it).

    A list comes back with NULL slots and a dict empty, each with a frame pushed for
    _mp_decode to fill it. NULL slots are allowed in a list under construction: its traverse
    and dealloc skip them, and only the garbage collector can reach it before it is full
    (msgpack's unpacker fills its lists the same way).
    """
    cdef Py_ssize_t pos = ppos[0], n
    cdef unsigned char c
    cdef int width
    cdef bint is_map
    cdef object obj
    cdef _MpFrame* f
    if pos >= size:
        _mp_fail("truncated msgpack value")
    c = buf[pos]
    if 0x80 <= c <= 0x9f:
        n = c & 0x0f
        is_map = c <= 0x8f
        pos += 1
    elif 0xdc <= c <= 0xdf:  # array16, array32, map16, map32
        width = 2 if c == 0xdc or c == 0xde else 4
        if 1 + width > size - pos:
            _mp_fail("truncated msgpack value")
        n = <Py_ssize_t>_be(buf + pos + 1, width)
        is_map = c >= 0xde
        pos += 1 + width
    else:
        return _mp_scalar(buf, ppos, size)
    # msgpack's limit, and where it applies it: at any container header (even an empty one)
    # while MP_MAX_DEPTH containers are open.
    if depth[0] >= MP_MAX_DEPTH:
        _mp_fail(f"msgpack value nested deeper than {MP_MAX_DEPTH} levels")
    # Each item takes at least a byte: a count the rest cannot hold fails before any allocation.
    if (2 * <uint64_t>n if is_map else <uint64_t>n) > <uint64_t>(size - pos):
        _mp_fail("truncated msgpack value")
    ppos[0] = pos
    obj = PyDict_New() if is_map else PyList_New(n)
    if n:
        f = &stack[depth[0]]
        f.obj = <PyObject*>obj
        f.i = 0
        f.n = n
        f.is_map = is_map
        depth[0] += 1
    return obj


cdef object _mp_key(const unsigned char* buf, Py_ssize_t* ppos, Py_ssize_t size):
    """A map key at ppos[0]: short str keys go through the cache; arrays and maps are refused
    (unpackb built them, then PyDict_SetItem refused them as unhashable)."""
    cdef Py_ssize_t pos = ppos[0], n
    cdef unsigned char c
    if pos >= size:
        _mp_fail("truncated msgpack value")
    c = buf[pos]
    if 0xa0 <= c <= 0xbf:
        n = c & 0x1f
        pos += 1
    elif c == 0xd9 and size - pos >= 2:
        n = buf[pos + 1]
        pos += 2
    elif 0x80 <= c <= 0x9f or 0xdc <= c <= 0xdf:
        raise TypeError("unhashable type: 'dict'" if c <= 0x8f or c >= 0xde
                        else "unhashable type: 'list'")
    else:
        return _mp_scalar(buf, ppos, size)
    if n > size - pos:
        _mp_fail("truncated msgpack value")
    ppos[0] = pos + n
    return _short_str(buf + pos, n)


cdef object _mp_decode(const unsigned char* buf, Py_ssize_t size):
    """Decode the one msgpack value that fills buf[0:size] (borrowed memory, only read).

    Iterative, with an explicit stack of the open containers, so hostile nesting cannot exhaust
    the C stack; MP_MAX_DEPTH frames (32 KiB) live on the C stack, as msgpack's own do. Each new
    list or dict goes into its parent as soon as it is made, so on any error releasing the root
    releases everything.
    """
    cdef _MpFrame stack[MP_MAX_DEPTH]
    cdef Py_ssize_t depth = 0, pos = 0
    cdef _MpFrame* f
    cdef object root, key, value
    root = _mp_item(buf, &pos, size, stack, &depth)
    while depth:
        f = &stack[depth - 1]
        if f.i == f.n:
            depth -= 1
            continue
        if f.is_map:
            key = _mp_key(buf, &pos, size)
            value = _mp_item(buf, &pos, size, stack, &depth)
            # Later duplicates overwrite (in the first one's place), as in unpackb.
            _mp_dict_set(f.obj, <PyObject*>key, <PyObject*>value)
        else:
            value = _mp_item(buf, &pos, size, stack, &depth)
            Py_INCREF(value)  # PyList_SET_ITEM steals it
            _mp_list_set(f.obj, f.i, <PyObject*>value)
        f.i += 1
    if pos != size:
        _mp_fail("trailing bytes after the msgpack value")
    return root
