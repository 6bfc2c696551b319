# The msgpack encoder of the send path: exactly msgpack.packb(obj, use_bin_type=True,
# default=_msgpack_default), byte for byte, without a Packer object or an envelope dict per
# packet. The exact builtin types are written here into one buffer (on the C stack while it
# fits); anything else (subclasses, datetimes, integers beyond 64 bits, deep nesting) is handed
# to msgpack.packb for that one value, so that the output and the errors stay msgpack's.

cdef enum:
    _MP_SMALL = 512          # bytes encoded on the C stack before the buffer moves to the heap
    _MP_NATIVE_DEPTH = 256   # nesting written here; deeper values go to msgpack (its limit)
    _MP_SEGS = 8             # bytes values referenced instead of copied (frame_pieces)
    _MP_SEG_MIN = 64         # smaller ones are copied: a piece costs more than the copy


cdef object _UINT64_MAX = 2 ** 64 - 1


cdef struct _MPBuf:
    char* p
    Py_ssize_t len
    Py_ssize_t cap
    char small[_MP_SMALL]
    # Segments (the WebSocket send path only; nseg == -1 elsewhere): the content of a bytes
    # value that belongs at offset seg_at[i] of the encoding is left in the object (a
    # reference held) instead of copied; frame_pieces() masks it into the frame from there.
    int nseg
    Py_ssize_t seg_at[_MP_SEGS]
    PyObject* seg_obj[_MP_SEGS]


cdef inline void _mpb_init(_MPBuf* b) noexcept:
    b.p = b.small
    b.len = 0
    b.cap = _MP_SMALL
    b.nseg = -1


cdef inline void _mpb_free(_MPBuf* b) noexcept:
    cdef int i
    if b.p != b.small:
        PyMem_Free(b.p)
    for i in range(b.nseg):
        Py_XDECREF(b.seg_obj[i])
    b.nseg = -1


cdef int _mpb_grow(_MPBuf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = max(b.cap * 2, b.len + extra)
    cdef char* p
    if b.p == b.small:
        p = <char*>PyMem_Malloc(cap)
        if p == NULL:
            raise MemoryError()
        memcpy(p, b.small, b.len)
    else:
        p = <char*>PyMem_Realloc(b.p, cap)
        if p == NULL:
            raise MemoryError()
    b.p = p
    b.cap = cap
    return 0


cdef inline int _mpb_put(_MPBuf* b, const char* s, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        _mpb_grow(b, n)
    memcpy(b.p + b.len, s, n)
    b.len += n
    return 0


cdef inline int _mpb_head(_MPBuf* b, unsigned char c, uint64_t v, int nbytes) except -1:
    """A type byte followed by v in nbytes (0, 1, 2, 4 or 8) big-endian bytes."""
    cdef int i
    cdef char* p
    if b.len + 9 > b.cap:
        _mpb_grow(b, 9)
    p = b.p + b.len
    p[0] = <char>c
    for i in range(nbytes):
        p[1 + i] = <char>((v >> (8 * (nbytes - 1 - i))) & 0xff)
    b.len += 1 + nbytes
    return 0


cdef inline int _mpb_len(_MPBuf* b, Py_ssize_t n, unsigned char fix, int fixmax,
                         unsigned char c8, unsigned char c16, unsigned char c32) except -1:
    """A str/bin/array/map header (fix: 0 when the type has no fix form, c8: 0 without 8-bit)."""
    if fix and n < fixmax:
        return _mpb_head(b, fix | <unsigned char>n, 0, 0)
    if c8 and n < 256:
        return _mpb_head(b, c8, <uint64_t>n, 1)
    if n < 65536:
        return _mpb_head(b, c16, <uint64_t>n, 2)
    return _mpb_head(b, c32, <uint64_t>n, 4)


cdef int _mp_pack_int(_MPBuf* b, object o) except -1:
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(o, &overflow)
    cdef unsigned long long u
    if overflow:
        if overflow > 0 and o <= _UINT64_MAX:
            u = PyLong_AsUnsignedLongLong(o)
            return _mpb_head(b, 0xcf, u, 8)
        return _mp_pack_delegated(b, o)  # beyond 64 bits: msgpack's error (or default hook)
    if v >= 0:
        if v < 128:
            return _mpb_head(b, <unsigned char>v, 0, 0)
        if v < 256:
            return _mpb_head(b, 0xcc, <uint64_t>v, 1)
        if v < 65536:
            return _mpb_head(b, 0xcd, <uint64_t>v, 2)
        if v < 4294967296:
            return _mpb_head(b, 0xce, <uint64_t>v, 4)
        return _mpb_head(b, 0xcf, <uint64_t>v, 8)
    if v >= -32:
        return _mpb_head(b, <unsigned char>(v & 0xff), 0, 0)
    if v >= -128:
        return _mpb_head(b, 0xd0, <uint64_t>v & 0xff, 1)
    if v >= -32768:
        return _mpb_head(b, 0xd1, <uint64_t>v & 0xffff, 2)
    if v >= -2147483648:
        return _mpb_head(b, 0xd2, <uint64_t>v & 0xffffffff, 4)
    return _mpb_head(b, 0xd3, <uint64_t>v, 8)


cdef int _mp_pack_delegated(_MPBuf* b, object o) except -1:
    cdef bytes out = PyObject_Call(_msgpack_packb, (o,), _PACK_KW)
    return _mpb_put(b, PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out))


cdef int _mp_pack(_MPBuf* b, object o, int depth) except -1:
    cdef type t = type(o)
    cdef Py_ssize_t n, i, pos
    cdef const char* s
    cdef double d
    cdef uint64_t bits
    cdef PyObject* k
    cdef PyObject* v
    cdef object key, val
    if t is str:
        s = PyUnicode_AsUTF8AndSize(o, &n)  # raises on lone surrogates, as msgpack does
        if n > <Py_ssize_t>0xffffffff:
            return _mp_pack_delegated(b, o)
        _mpb_len(b, n, 0xa0, 32, 0xd9, 0xda, 0xdb)
        return _mpb_put(b, s, n)
    if t is int:
        return _mp_pack_int(b, o)
    if o is None:
        return _mpb_head(b, 0xc0, 0, 0)
    if o is True:
        return _mpb_head(b, 0xc3, 0, 0)
    if o is False:
        return _mpb_head(b, 0xc2, 0, 0)
    if t is float:
        d = PyFloat_AS_DOUBLE(o)
        memcpy(&bits, &d, 8)
        return _mpb_head(b, 0xcb, bits, 8)
    if depth >= _MP_NATIVE_DEPTH:
        return _mp_pack_delegated(b, o)
    if t is list:
        n = PyList_GET_SIZE(o)
        if n > <Py_ssize_t>0xffffffff:
            return _mp_pack_delegated(b, o)
        _mpb_len(b, n, 0x90, 16, 0, 0xdc, 0xdd)
        for i in range(n):
            # A value handed to msgpack can run Python code (its default hook) that changes
            # the list; its header is already written, so that is an error.
            if i >= PyList_GET_SIZE(o):
                raise RuntimeError("list changed size during msgpack encoding")
            _mp_pack(b, (<list>o)[i], depth + 1)
        return 0
    if t is tuple:
        n = PyTuple_GET_SIZE(o)
        if n > <Py_ssize_t>0xffffffff:
            return _mp_pack_delegated(b, o)
        _mpb_len(b, n, 0x90, 16, 0, 0xdc, 0xdd)
        for i in range(n):
            _mp_pack(b, (<tuple>o)[i], depth + 1)
        return 0
    if t is dict:
        n = PyDict_Size(o)
        _mpb_len(b, n, 0x80, 16, 0, 0xde, 0xdf)
        pos = 0
        i = 0
        while PyDict_Next(o, &pos, &k, &v):
            i += 1
            if i > n:
                break
            key = <object>k  # owned references: packing may run Python code
            val = <object>v
            _mp_pack(b, key, depth + 1)
            _mp_pack(b, val, depth + 1)
        if i != n or PyDict_Size(o) != n:
            raise RuntimeError("dict changed size during msgpack encoding")
        return 0
    if t is bytes:
        n = PyBytes_GET_SIZE(o)
        if n > <Py_ssize_t>0xffffffff:
            return _mp_pack_delegated(b, o)
        _mpb_len(b, n, 0, 0, 0xc4, 0xc5, 0xc6)
        if 0 <= b.nseg < _MP_SEGS and n >= _MP_SEG_MIN:
            Py_INCREF(o)
            b.seg_obj[b.nseg] = <PyObject*>o
            b.seg_at[b.nseg] = b.len
            b.nseg += 1
            return 0
        return _mpb_put(b, PyBytes_AS_STRING(o), n)
    return _mp_pack_delegated(b, o)


cdef inline int _mp_pack_packet(_MPBuf* b, int t, str nsp, object data, object ack_id) except -1:
    """{type, nsp[, data][, id]}: msgpack.packb of that dict, in that key order."""
    _mpb_head(b, 0x80 | (2 + (data is not None) + (ack_id is not None)), 0, 0)
    _mpb_put(b, b"\xa4type", 5)
    _mpb_head(b, <unsigned char>t, 0, 0)  # 0..6: a positive fixint
    _mpb_put(b, b"\xa3nsp", 4)
    _mp_pack(b, nsp if nsp else _ROOT_NSP, 0)
    if data is not None:
        _mpb_put(b, b"\xa4data", 5)
        _mp_pack(b, data, 0)
    if ack_id is not None:
        _mpb_put(b, b"\xa2id", 3)
        _mp_pack(b, ack_id, 0)
    return 0


cdef bytes _mp_encode_packet(int t, str nsp, object data, object ack_id):
    cdef _MPBuf b
    cdef bytes out
    _mpb_init(&b)
    try:
        _mp_pack_packet(&b, t, nsp, data, ack_id)
        out = PyBytes_FromStringAndSize(b.p, b.len)
    finally:
        _mpb_free(&b)
    return out


cdef Py_ssize_t _mpb_pieces(_MPBuf* b, const char** ptrs, Py_ssize_t* lens) noexcept:
    """The encoding as pieces (at most 2 * _MP_SEGS + 1): the buffer's runs between the
    segments, and the segments' bytes. Returns the number of pieces."""
    cdef int i, k = 0
    cdef Py_ssize_t at = 0
    cdef object o
    for i in range(b.nseg):
        ptrs[k] = b.p + at
        lens[k] = b.seg_at[i] - at
        k += 1
        o = <object>b.seg_obj[i]
        ptrs[k] = PyBytes_AS_STRING(o)
        lens[k] = PyBytes_GET_SIZE(o)
        k += 1
        at = b.seg_at[i]
    ptrs[k] = b.p + at
    lens[k] = b.len - at
    return k + 1


def msgpack_encode(obj):
    """One value as the send path encodes it: ``msgpack.packb(obj, use_bin_type=True)`` with
    notepack's Date (datetime) and tuples, bytearray and memoryview as arrays and bin."""
    cdef _MPBuf b
    cdef bytes out
    _mpb_init(&b)
    try:
        _mp_pack(&b, obj, 0)
        out = PyBytes_FromStringAndSize(b.p, b.len)
    finally:
        _mpb_free(&b)
    return out
