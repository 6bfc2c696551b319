# Binary attachments: bytes anywhere in the arguments travel as separate frames, referenced by
# {"_placeholder": true, "num": N} in the JSON.
# A pure transformation of Python objects: nothing of frames, transports or dispatch.

cdef enum:
    MAX_NESTING = 512

# Bad values from the server are described by type and a short repr: reprlib stops at a few
# levels and a few items, so a value nested a thousand deep (or megabytes long) cannot make the
# message itself recurse or grow.
cdef object _short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = 40
_short_repr.maxother = 40


cdef str _describe(object value):
    """``<type> <truncated repr>``, safe for any decoded value."""
    cdef str text
    try:
        text = _short_repr.repr(value)
    except Exception:  # a repr that fails is still a bad value to report
        text = "?"
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


cdef bint _has_binary(object obj, int depth) except -1:
    # No generator expression in here: one would make every call allocate a closure scope,
    # and this runs on every argument of every emit.
    cdef object t = type(obj)
    cdef Py_ssize_t pos = 0
    cdef PyObject* k
    cdef PyObject* v
    if t is str or t is int or t is float or obj is None or t is bool:
        return False
    if depth > MAX_NESTING:
        raise ValueError("data nested too deeply")
    if t is bytes or t is bytearray or t is memoryview:
        return True
    if t is list:
        for item in <list>obj:
            if _has_binary(item, depth + 1):
                return True
        return False
    if t is tuple:
        for item in <tuple>obj:
            if _has_binary(item, depth + 1):
                return True
        return False
    if t is dict:
        while PyDict_Next(obj, &pos, &k, &v):
            t = type(<object>v)
            if t is str or t is int or t is float or t is bool or <object>v is None:
                continue  # the common leaves, without a call
            if _has_binary(<object>v, depth + 1):
                return True
        return False
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if isinstance(obj, (list, tuple)):
        for item in obj:
            if _has_binary(item, depth + 1):
                return True
        return False
    if isinstance(obj, dict):
        for item in obj.values():
            if _has_binary(item, depth + 1):
                return True
        return False
    return False


cdef Py_ssize_t _count_binary(object obj, int depth) except -2:
    """How many attachments _deconstruct() would make of ``obj`` (-1: nested too deeply).

    The direct send path has orjson find the bytes (its ``default`` hook); orjson also walks
    dataclasses and enum values, where this walk (python-socketio's) does not look, so the
    direct path compares the counts to send only what the full path would send."""
    cdef object t = type(obj)
    cdef Py_ssize_t n = 0, c, i
    cdef Py_ssize_t pos = 0
    cdef PyObject* k
    cdef PyObject* v
    if t is str or t is int or t is float or obj is None or t is bool:
        return 0
    if depth > MAX_NESTING:
        return -1
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return 1
    # What orjson walked, read as orjson reads it (the storage, no __iter__ or values() of a
    # subclass: no Python code runs here); a tuple subclass made orjson fail already.
    if isinstance(obj, list):
        for i in range(PyList_GET_SIZE(obj)):
            c = _count_binary((<list>obj)[i], depth + 1)
            if c < 0:
                return -1
            n += c
        return n
    if isinstance(obj, tuple):
        for i in range(PyTuple_GET_SIZE(obj)):
            c = _count_binary((<tuple>obj)[i], depth + 1)
            if c < 0:
                return -1
            n += c
        return n
    if isinstance(obj, dict):
        while PyDict_Next(obj, &pos, &k, &v):
            c = _count_binary(<object>v, depth + 1)
            if c < 0:
                return -1
            n += c
        return n
    return 0


cdef object _deconstruct(object obj, list attachments, int depth):
    if depth > MAX_NESTING:
        raise ValueError("data nested too deeply")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        attachments.append(bytes(obj))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(obj, (list, tuple)):
        return [_deconstruct(item, attachments, depth + 1) for item in obj]
    if isinstance(obj, dict):
        return {key: _deconstruct(value, attachments, depth + 1) for key, value in obj.items()}
    return obj


cdef object _reconstruct(object obj, list attachments, bytearray used, int depth):
    cdef object num
    cdef Py_ssize_t n
    if depth > MAX_NESTING:
        raise ProtocolError("binary packet nested too deeply")
    if type(obj) is list:
        return [_reconstruct(item, attachments, used, depth + 1) for item in <list>obj]
    if type(obj) is dict:
        if (<dict>obj).get("_placeholder") is True:
            num = (<dict>obj).get("num")
            if type(num) is not int:
                raise ProtocolError(f"binary placeholder with a non-integer num: {_describe(num)}")
            if num < 0 or num >= len(attachments):
                raise ProtocolError(
                    f"binary placeholder {num} out of range ({len(attachments)} attachments)")
            n = num
            if used[n]:
                raise ProtocolError(f"binary placeholder {num} used twice")
            used[n] = 1
            return attachments[n]
        return {key: _reconstruct(value, attachments, used, depth + 1)
                for key, value in (<dict>obj).items()}
    return obj


def reconstruct(data, list attachments):
    """Replace placeholders in decoded data by their attachments.

    Raises ProtocolError for a placeholder that is out of range or used twice.
    """
    cdef bytearray used = bytearray(len(attachments))
    return _reconstruct(data, attachments, used, 0)


def deconstruct(data):
    """Split bytes out of data: returns (data with placeholders, [attachments])."""
    cdef list attachments = []
    return _deconstruct(data, attachments, 0), attachments
