# cython: language_level=3
"""The publishing benchmark's server, compiled: a picows server listener that counts Socket.IO
EVENT frames on their first bytes and does nothing else, so that the client under test is the
bottleneck. Built on demand by benchmarks/publish.py; not part of fastsio.

- Engine.IO open on connect (ping interval of an hour: no heartbeat during a run), CONNECT
  answered, everything else ignored but events.
- JSON: ``42[`` counts; ``42<id>[`` (a call) counts and is acked with ``43<id>[<count>]``.
- msgpack: a frame with ``type: 2`` and no ``id`` key counts (found by their bytes: the
  benchmark's payloads hold no such string; socket.io-client also sends an ``options`` key);
  one with an id is decoded in Python and acked ``{type: 3, nsp, id, data: [count]}``.
- Acks of one socket read are written at its end, in one write.
- ``rate`` > 0 (bytes/s) makes it a slow server: after every read, reading pauses for as long
  as the payloads of that read take at that rate.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy

cdef extern from "string.h":
    void* memmem(const void* haystack, size_t hlen, const void* needle, size_t nlen)
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport

import msgpack

cdef bytes _OPEN = (b'0{"sid":"bench","upgrades":[],"pingInterval":3600000,'
                    b'"pingTimeout":3600000,"maxPayload":1000000000}')


cdef class CountListener(WSListener):
    cdef public Py_ssize_t events
    cdef public double rate
    cdef Py_ssize_t read_bytes
    cdef object loop
    cdef bytearray out
    cdef WSTransport transport

    def __init__(self, loop, double rate=0):
        self.loop = loop
        self.rate = rate
        self.read_bytes = 0
        self.events = 0
        self.out = bytearray()

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        transport.send(WSMsgType.TEXT, _OPEN)

    cdef _ack(self, bytes payload, bint binary):
        cdef Py_ssize_t n = len(payload)
        self.out.append(0x82 if binary else 0x81)
        if n < 126:
            self.out.append(n)
        elif n < 65536:
            self.out.append(126)
            self.out += n.to_bytes(2, "big")
        else:
            self.out.append(127)
            self.out += n.to_bytes(8, "big")
        self.out += payload

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef const unsigned char* p = <const unsigned char*>frame.payload_ptr
        cdef Py_ssize_t size = frame.payload_size, i
        cdef unsigned long long ack_id
        cdef const unsigned char* t
        self.read_bytes += size + 6
        if frame.msg_type == WSMsgType.TEXT:
            if size >= 3 and p[0] == 52 and p[1] == 50:  # '42'
                self.events += 1
                if p[2] != 91:  # not '[': an ack id
                    ack_id = 0
                    i = 2
                    while i < size and 48 <= p[i] <= 57:
                        ack_id = ack_id * 10 + (p[i] - 48)
                        i += 1
                    self._ack(b"43%d[%d]" % (ack_id, self.events), False)
            elif size >= 2 and p[0] == 52 and p[1] == 48:  # '40' CONNECT
                transport.send(WSMsgType.TEXT, b'40{"sid":"bench"}')
        elif frame.msg_type == WSMsgType.BINARY:
            t = <const unsigned char*>memmem(p, size, b"\xa4type", 5)
            if t != NULL and t + 5 < p + size and t[5] == 2 \
                    and memmem(p, size, b"\xa2id", 3) == NULL:
                self.events += 1
            elif size >= 1:
                self._binary(transport, PyBytes_FromStringAndSize(frame.payload_ptr, size))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.last_in_buffer:
            if self.out:
                transport.underlying_transport.write(bytes(self.out))
                self.out.clear()
            if self.rate > 0:
                transport.underlying_transport.pause_reading()
                self.loop.call_later(self.read_bytes / self.rate, self._resume)
            self.read_bytes = 0

    def _resume(self):
        if not self.transport.is_disconnected:
            self.transport.underlying_transport.resume_reading()

    cdef _binary(self, WSTransport transport, bytes data):
        pkt = msgpack.unpackb(data)
        t = pkt.get("type")
        if t == 0:
            transport.send(WSMsgType.BINARY, msgpack.packb(
                {"type": 0, "nsp": pkt.get("nsp", "/"), "data": {"sid": "bench"}}))
        elif t == 2:
            self.events += 1
            if pkt.get("id") is not None:
                self._ack(msgpack.packb({"type": 3, "nsp": pkt.get("nsp", "/"),
                                         "id": pkt["id"], "data": [self.events]}), True)
