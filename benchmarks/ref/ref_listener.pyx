# cython: language_level=3
"""The issue's reference ceiling, compiled: a Cython subclass of picows's WSListener that reads
each payload through its pointer, runs one orjson.loads (msgpack: one unpackb) and calls a plain
Python handler — no Socket.IO protocol beyond the minimum handshake. Built on demand by
benchmarks/stream.py (client ``cy_orjson``); not part of fastsio."""

from cpython.bytes cimport PyBytes_FromStringAndSize
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport

import msgpack
import orjson

cdef object _loads = orjson.loads
cdef object _unpackb = msgpack.unpackb


cdef class RefListener(WSListener):
    cdef public object handler, on_done, on_first
    cdef public bint is_msgpack
    cdef public Py_ssize_t n
    cdef bytes connect_packet

    def __init__(self, handler, on_done, on_first, bint is_msgpack):
        self.handler = handler
        self.on_done = on_done
        self.on_first = on_first
        self.is_msgpack = is_msgpack
        self.n = 0
        self.connect_packet = (msgpack.packb({"type": 0, "nsp": "/"}) if is_msgpack
                               else b"40")

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef char* p = frame.payload_ptr
        cdef Py_ssize_t size = frame.payload_size
        cdef object data
        if frame.msg_type == WSMsgType.TEXT:
            if size >= 2 and p[0] == b'4' and p[1] == b'2' and not self.is_msgpack:
                data = _loads(PyBytes_FromStringAndSize(p + 2, size - 2))
                self._event(data)
            elif size >= 1 and p[0] == b'2':
                transport.send(WSMsgType.TEXT, b"3")
            elif size >= 1 and p[0] == b'0':
                transport.send(WSMsgType.BINARY if self.is_msgpack else WSMsgType.TEXT,
                               self.connect_packet)
        elif frame.msg_type == WSMsgType.BINARY and self.is_msgpack:
            data = _unpackb(PyBytes_FromStringAndSize(p, size))
            if data["type"] == 2:
                self._event(data["data"])

    cdef _event(self, list data):
        if data[0] == "done":
            self.on_done(data[1], self.n)
            return
        if self.n == 0:
            self.on_first()
        self.n += 1
        self.handler(data[1])
