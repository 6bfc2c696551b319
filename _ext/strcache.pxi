# Short strings shared by both decoders (jsondecode.pxi, mpdecode.pxi): a stream repeats the
# same few keys ("s", "p", "q", "t"), event names and symbols in every event, so strings up to
# STR_CACHE_MAX_LEN bytes of ASCII are looked up in _str_cache before a str is built.
# Nothing of packets or frames: it only turns bytes into (cached) str.

cdef extern from "Python.h":
    Py_ssize_t _str_len "PyUnicode_GET_LENGTH"(PyObject* s)
    const unsigned char* _str_data "PyUnicode_DATA"(PyObject* s)

cdef enum:
    STR_CACHE_MAX_LEN = 16
    STR_CACHE_SETS = 256  # a power of two; two slots each

# Two-way set-associative, the last string used first in its set (so two hot strings sharing a
# set do not evict each other on every packet). A slot holds one strong reference to a compact
# ASCII str, or NULL. Only touched with the GIL held and without running Python code in between.
cdef PyObject* _str_cache[2 * STR_CACHE_SETS]


cdef inline bint _str_same(const unsigned char* a, const unsigned char* b,
                           Py_ssize_t n) noexcept:
    # At most STR_CACHE_MAX_LEN bytes: a loop beats a call to memcmp.
    cdef Py_ssize_t i
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True


cdef object _utf8_str(const unsigned char* p, Py_ssize_t n):
    """A str from n bytes of UTF-8; invalid UTF-8 raises UnicodeDecodeError, as msgpack's strict
    decoding did. Short ASCII strings are copied straight into a new str."""
    cdef Py_ssize_t i
    cdef object s
    if 1 < n <= STR_CACHE_MAX_LEN:
        for i in range(n):
            if p[i] & 0x80:
                return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
        s = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA(s), p, n)
        return s
    # Longer strings: its own ASCII scan goes a word at a time. One character: it hands out
    # the cached latin-1 singletons.
    return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)


cdef object _cached_str(const unsigned char* p, Py_ssize_t n):
    """A short string: the str of _str_cache when these bytes were cached, else a new one."""
    cdef uint32_t h = 2166136261u  # FNV-1a
    cdef unsigned char seen = 0
    cdef Py_ssize_t i
    cdef PyObject** slot
    cdef PyObject* hit
    cdef object s
    for i in range(n):
        seen |= p[i]
        h = (h ^ p[i]) * 16777619u
    if seen & 0x80:
        return _utf8_str(p, n)  # not cached: a slot is compared as ASCII bytes
    # FNV's low bits alone collide on keys one digit apart ("key2", "key3"): mix first.
    h ^= h >> 16
    h *= 0x45d9f3bu
    h ^= h >> 16
    slot = &_str_cache[2 * (h & (STR_CACHE_SETS - 1))]
    hit = slot[0]
    if hit != NULL and _str_len(hit) == n and _str_same(_str_data(hit), p, n):
        return <object>hit
    hit = slot[1]
    if hit != NULL and _str_len(hit) == n and _str_same(_str_data(hit), p, n):
        slot[1] = slot[0]
        slot[0] = hit
        return <object>hit
    s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(s), p, n)
    # Not interned (msgpack interned every str key): a hostile peer's stream of distinct keys
    # must not grow the interpreter's interned table, which 3.12 makes immortal.
    Py_INCREF(s)
    Py_XDECREF(slot[1])  # a str: its deallocation runs no Python code
    slot[1] = slot[0]
    slot[0] = <PyObject*>s
    return s


cdef inline object _short_str(const unsigned char* p, Py_ssize_t n):
    """A str from n bytes of UTF-8, from the cache when short and ASCII."""
    if 1 < n <= STR_CACHE_MAX_LEN:
        return _cached_str(p, n)
    # (One character: CPython's own latin-1 singletons are the cache.)
    return _utf8_str(p, n)
