# A JSON decoder for the common shape of Socket.IO payloads, with orjson as the fallback.
#
# Event payloads are small arrays and objects of short ASCII strings and numbers. For those,
# building the Python objects straight from the frame buffer beats orjson.loads: no bytes copy,
# no parse buffer allocated per call, and short strings (object keys, event names, symbols)
# come from a cache (strcache.pxi) instead of being allocated and hashed each time. Anything outside that
# subset -- lone surrogate escapes, nesting deeper than _JSON_MAX_DEPTH, and every syntax
# error -- makes the fast decoder give up (it returns _JSON_BAIL), and the caller decodes the
# payload with orjson, so results and error messages stay orjson's. One deliberate difference:
# integers beyond 64 bits are decoded exactly (as python-socketio does), not rounded to floats.
# A decoder only: nothing of packets' meaning, namespaces or sockets.

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) \
        except? -1.0
    object PyLong_FromLongLong(long long v)
    object PyLong_FromString(const char* s, char** pend, int base)
    object PyFloat_FromDouble(double v)

from libc.math cimport isfinite


cdef object _JSON_BAIL = object()

cdef enum:
    _JSON_MAX_DEPTH = 128
    _JSON_MAX_NUMBER_LEN = 64


cdef struct _JP:
    const unsigned char* p
    const unsigned char* end
    int depth


cdef inline void _json_ws(_JP* s) noexcept:
    cdef unsigned char c
    while s.p < s.end:
        c = s.p[0]
        if c == 32 or c == 10 or c == 13 or c == 9:
            s.p += 1
        else:
            return


cdef object _json_string(_JP* s):
    # s.p is just past the opening quote.
    cdef const unsigned char* start = s.p
    cdef const unsigned char* p = s.p
    cdef const unsigned char* end = s.end
    cdef unsigned char c, high = 0
    while p < end:
        c = p[0]
        if c == 34:  # '"'
            s.p = p + 1
            if high & 0x80:
                try:
                    return PyUnicode_DecodeUTF8(<const char*>start, p - start, NULL)
                except UnicodeDecodeError:
                    return _JSON_BAIL
            return _short_str(start, p - start)
        if c == 92:  # a backslash: the escaped path
            return _json_string_escaped(s, start)
        if c < 32:  # a raw control character (invalid JSON)
            return _JSON_BAIL
        high |= c
        p += 1
    return _JSON_BAIL


cdef inline int _json_hex4(const unsigned char* p) noexcept:
    """The value of four hex digits at p, or -1."""
    cdef int v = 0, i, c
    for i in range(4):
        c = p[i]
        if 48 <= c <= 57:
            c -= 48
        elif 97 <= c <= 102:
            c -= 87
        elif 65 <= c <= 70:
            c -= 55
        else:
            return -1
        v = (v << 4) | c
    return v


cdef object _json_string_escaped(_JP* s, const unsigned char* start):
    """A string with escapes, unescaped into UTF-8 and decoded once; lone surrogates decline."""
    cdef const unsigned char* p = start
    cdef const unsigned char* end = s.end
    cdef unsigned char stack_buf[256]
    cdef unsigned char* out = stack_buf
    cdef unsigned char* grown
    cdef Py_ssize_t n = 0, cap = 256
    cdef unsigned char c
    cdef int cp, lo
    try:
        while True:
            if p >= end:
                return _JSON_BAIL
            if n + 4 > cap:
                grown = <unsigned char*>PyMem_Malloc(cap * 2)
                if grown == NULL:
                    raise MemoryError()
                memcpy(grown, out, n)
                if out != stack_buf:
                    PyMem_Free(out)
                out = grown
                cap *= 2
            c = p[0]
            if c == 34:
                break
            if c < 32:
                return _JSON_BAIL
            if c != 92:
                out[n] = c
                n += 1
                p += 1
                continue
            if p + 1 >= end:
                return _JSON_BAIL
            c = p[1]
            p += 2
            if c == 34 or c == 92 or c == 47:  # " \ /
                out[n] = c
            elif c == 110:  # n
                out[n] = 10
            elif c == 116:  # t
                out[n] = 9
            elif c == 114:  # r
                out[n] = 13
            elif c == 98:  # b
                out[n] = 8
            elif c == 102:  # f
                out[n] = 12
            elif c == 117:  # u
                if end - p < 4:
                    return _JSON_BAIL
                cp = _json_hex4(p)
                if cp < 0:
                    return _JSON_BAIL
                p += 4
                if 0xDC00 <= cp <= 0xDFFF:
                    return _JSON_BAIL  # a lone low surrogate
                if 0xD800 <= cp <= 0xDBFF:
                    if end - p < 6 or p[0] != 92 or p[1] != 117:
                        return _JSON_BAIL  # a lone high surrogate
                    lo = _json_hex4(p + 2)
                    if not (0xDC00 <= lo <= 0xDFFF):
                        return _JSON_BAIL
                    p += 6
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                if cp < 0x80:
                    out[n] = <unsigned char>cp
                elif cp < 0x800:
                    out[n] = <unsigned char>(0xC0 | (cp >> 6))
                    out[n + 1] = <unsigned char>(0x80 | (cp & 0x3F))
                    n += 1
                elif cp < 0x10000:
                    out[n] = <unsigned char>(0xE0 | (cp >> 12))
                    out[n + 1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
                    out[n + 2] = <unsigned char>(0x80 | (cp & 0x3F))
                    n += 2
                else:
                    out[n] = <unsigned char>(0xF0 | (cp >> 18))
                    out[n + 1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
                    out[n + 2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
                    out[n + 3] = <unsigned char>(0x80 | (cp & 0x3F))
                    n += 3
            else:
                return _JSON_BAIL
            n += 1
        s.p = p + 1
        try:
            return PyUnicode_DecodeUTF8(<const char*>out, n, NULL)
        except UnicodeDecodeError:
            return _JSON_BAIL
    finally:
        if out != stack_buf:
            PyMem_Free(out)


# Powers of ten that a double holds exactly (10**22 is the largest).
cdef double _JSON_POW10[23]
for _i in range(23):
    _JSON_POW10[_i] = 10.0 ** _i


cdef object _json_number(_JP* s):
    cdef const unsigned char* start = s.p
    cdef const unsigned char* p = s.p
    cdef const unsigned char* end = s.end
    cdef bint neg = False, is_float = False, exp_neg = False
    cdef uint64_t m = 0          # all digits, integer and fraction part, while they fit
    cdef Py_ssize_t ndigits = 0  # digits in m, leading zeros not counted
    cdef Py_ssize_t int_digits = 0, frac_digits = 0, e10
    cdef long exp = 0
    cdef Py_ssize_t n
    cdef char tmp[_JSON_MAX_NUMBER_LEN + 1]
    cdef char* endptr
    cdef double d
    cdef bytes digits
    if p < end and p[0] == 45:  # '-'
        neg = True
        p += 1
    if p >= end or not (48 <= p[0] <= 57):
        return _JSON_BAIL
    if p[0] == 48 and p + 1 < end and 48 <= p[1] <= 57:
        return _JSON_BAIL  # a leading zero
    while p < end and 48 <= p[0] <= 57:
        if ndigits < 19:
            m = m * 10 + (p[0] - 48)
            if m:
                ndigits += 1
        else:
            ndigits += 1
        int_digits += 1
        p += 1
    if p < end and p[0] == 46:  # '.'
        is_float = True
        p += 1
        if p >= end or not (48 <= p[0] <= 57):
            return _JSON_BAIL
        while p < end and 48 <= p[0] <= 57:
            if ndigits < 19:
                m = m * 10 + (p[0] - 48)
                if m:
                    ndigits += 1
                frac_digits += 1
            else:
                ndigits += 1
            p += 1
    if p < end and (p[0] == 101 or p[0] == 69):  # 'e', 'E'
        is_float = True
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            exp_neg = p[0] == 45
            p += 1
        if p >= end or not (48 <= p[0] <= 57):
            return _JSON_BAIL
        while p < end and 48 <= p[0] <= 57:
            if exp < 100000:
                exp = exp * 10 + (p[0] - 48)
            p += 1
    s.p = p
    if not is_float:
        if int_digits > 18:
            # Exact, as python-socketio's json module gives it (orjson would round integers
            # beyond 64 bits to a float). CPython's limit on digits declines the absurd ones.
            digits = PyBytes_FromStringAndSize(<const char*>start, p - start)
            try:
                return PyLong_FromString(PyBytes_AS_STRING(digits), NULL, 10)
            except ValueError:
                return _JSON_BAIL
        return PyLong_FromLongLong(-<long long>m if neg else <long long>m)
    # Clinger's fast path: a mantissa below 2**53 and a power of ten a double holds exactly
    # give the correctly rounded value in one multiplication or division.
    e10 = (-exp if exp_neg else exp) - frac_digits
    if ndigits <= 15 and -22 <= e10 <= 22:
        d = <double>m
        if e10 < 0:
            d = d / _JSON_POW10[-e10]
        else:
            d = d * _JSON_POW10[e10]
        return PyFloat_FromDouble(-d if neg else d)
    n = p - start
    if n > _JSON_MAX_NUMBER_LEN:
        return _JSON_BAIL
    memcpy(tmp, start, n)
    tmp[n] = 0
    d = PyOS_string_to_double(tmp, &endptr, NULL)
    if endptr != tmp + n or not isfinite(d):
        return _JSON_BAIL
    return PyFloat_FromDouble(d)


cdef object _json_value(_JP* s):
    cdef unsigned char c
    cdef object v, k
    cdef list lst
    cdef dict d
    if s.p >= s.end:
        return _JSON_BAIL
    c = s.p[0]
    if c == 34:
        s.p += 1
        return _json_string(s)
    if c == 123:  # '{'
        if s.depth >= _JSON_MAX_DEPTH:
            return _JSON_BAIL
        s.depth += 1
        s.p += 1
        d = {}
        _json_ws(s)
        if s.p < s.end and s.p[0] == 125:
            s.p += 1
            s.depth -= 1
            return d
        while True:
            if s.p >= s.end or s.p[0] != 34:
                return _JSON_BAIL
            s.p += 1
            k = _json_string(s)
            if k is _JSON_BAIL:
                return _JSON_BAIL
            _json_ws(s)
            if s.p >= s.end or s.p[0] != 58:  # ':'
                return _JSON_BAIL
            s.p += 1
            _json_ws(s)
            v = _json_value(s)
            if v is _JSON_BAIL:
                return _JSON_BAIL
            d[k] = v
            _json_ws(s)
            if s.p >= s.end:
                return _JSON_BAIL
            c = s.p[0]
            s.p += 1
            if c == 125:  # '}'
                s.depth -= 1
                return d
            if c != 44:  # ','
                return _JSON_BAIL
            _json_ws(s)
    if c == 91:  # '['
        if s.depth >= _JSON_MAX_DEPTH:
            return _JSON_BAIL
        s.depth += 1
        s.p += 1
        lst = []
        _json_ws(s)
        if s.p < s.end and s.p[0] == 93:
            s.p += 1
            s.depth -= 1
            return lst
        while True:
            v = _json_value(s)
            if v is _JSON_BAIL:
                return _JSON_BAIL
            lst.append(v)
            _json_ws(s)
            if s.p >= s.end:
                return _JSON_BAIL
            c = s.p[0]
            s.p += 1
            if c == 93:  # ']'
                s.depth -= 1
                return lst
            if c != 44:
                return _JSON_BAIL
            _json_ws(s)
    if c == 45 or 48 <= c <= 57:
        return _json_number(s)
    if c == 116 and s.end - s.p >= 4 and memcmp(s.p, b"true", 4) == 0:
        s.p += 4
        return True
    if c == 102 and s.end - s.p >= 5 and memcmp(s.p, b"false", 5) == 0:
        s.p += 5
        return False
    if c == 110 and s.end - s.p >= 4 and memcmp(s.p, b"null", 4) == 0:
        s.p += 4
        return None
    return _JSON_BAIL


cdef object _json_fast(const char* buf, Py_ssize_t size):
    """Decode one JSON document, or return _JSON_BAIL to have orjson do it."""
    cdef _JP s
    cdef object v
    s.p = <const unsigned char*>buf
    s.end = s.p + size
    s.depth = 0
    _json_ws(&s)
    v = _json_value(&s)
    if v is _JSON_BAIL:
        return v
    _json_ws(&s)
    if s.p != s.end:
        return _JSON_BAIL
    return v


def json_loads(data):
    """Decode JSON as the core does: the fast decoder, orjson for everything it declines."""
    cdef bytes b = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    cdef object v = _json_fast(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    if v is _JSON_BAIL:
        return orjson.loads(b)
    return v


def json_fast(data):
    """The fast decoder alone (for tests): the value, or None if it declines the input."""
    cdef bytes b = bytes(data)
    cdef object v = _json_fast(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    return None if v is _JSON_BAIL else (v,)
