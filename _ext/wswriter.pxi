# The WebSocket send path: frames are coalesced into one write per loop iteration.
#
# picows writes every frame with its own send() system call; a publisher emitting small
# events spends most of its time in the kernel. Here each frame is framed and masked into one
# buffer, and the buffer is written once: at the next turn of the event loop (call_soon), or at
# once when it reaches ``flush_size`` bytes. Everything the client sends on the link goes
# through this buffer (events, acks, pongs, CONNECT/DISCONNECT), so the order on the wire is
# the order of the sends; whoever writes to the transport directly (a CLOSE frame) flushes
# first.

cdef inline uint32_t _next_mask(uint64_t* state) noexcept:
    # xorshift64*: the masking key only has to be unpredictable to intermediaries that see
    # the stream (RFC 6455 10.3), as picows's rand() is; it is seeded from os.urandom.
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return <uint32_t>((x * <uint64_t>0x2545F4914F6CDD1D) >> 32)


cdef inline void _mask_copy(char* dst, const char* src, Py_ssize_t n, uint32_t mask) noexcept:
    """dst[i] = src[i] ^ key[i % 4], eight bytes at a time (key = the mask's bytes in memory)."""
    cdef uint64_t m64 = (<uint64_t>mask << 32) | mask  # the key twice, in memory order
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    cdef const unsigned char* key = <const unsigned char*>&mask
    while i + 8 <= n:
        memcpy(&w, src + i, 8)
        w ^= m64
        memcpy(dst + i, &w, 8)
        i += 8
    while i < n:
        dst[i] = <char>(<unsigned char>src[i] ^ key[i & 3])
        i += 1


cdef inline uint32_t _rotated_key(uint32_t mask, Py_ssize_t offset) noexcept:
    """The key that masks the bytes from ``offset`` on: its bytes rotated by offset % 4."""
    cdef unsigned char k[4]
    cdef unsigned char r[4]
    cdef int i
    memcpy(k, &mask, 4)
    for i in range(4):
        r[i] = k[(i + offset) & 3]
    memcpy(&mask, r, 4)
    return mask


cdef class FrameWriter:
    """Frames, masks and coalesces the client's frames for one picows WebSocket.

    ``pending`` bytes wait in the buffer until the next loop iteration (a lone frame is not
    delayed beyond it) or until ``flush_size`` bytes are queued. ``paused`` mirrors the
    transport's flow control (its write buffer is over the high-water mark): emitters wait on
    ``wait_writable()`` so that a publisher faster than the link does not grow memory.
    """

    cdef WSTransport ws
    cdef object _loop
    cdef object _flush_cb
    cdef char* _buf
    cdef Py_ssize_t _len, _cap
    cdef bint _scheduled
    cdef uint64_t _rng
    cdef public Py_ssize_t flush_size
    cdef readonly bint paused
    cdef object _resumed
    #: write calls made (one per flush), for the tests and stats
    cdef readonly uint64_t writes

    def __init__(self, WSTransport ws, Py_ssize_t flush_size=65536):
        self.ws = ws
        self._loop = ws._loop
        self._flush_cb = self._flush_soon
        self.flush_size = flush_size
        self._rng = int.from_bytes(os.urandom(8), "little") | 1
        self.paused = False
        self._resumed = None

    def __dealloc__(self):
        PyMem_Free(self._buf)

    @property
    def pending(self):
        return self._len

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        if self._len + extra <= self._cap:
            return 0
        cap = max(self._cap * 2, self._len + extra, 4096)
        p = PyMem_Realloc(self._buf, cap)
        if p == NULL:
            raise MemoryError()
        self._buf = <char*>p
        self._cap = cap
        return 0

    cdef inline char* _begin(self, int opcode, Py_ssize_t n, uint32_t* mask) except NULL:
        """Reserve and write the header of a final frame of n payload bytes and draw its
        mask; returns where the masked payload goes."""
        cdef char* p
        cdef Py_ssize_t i
        self._reserve(14 + n)
        p = self._buf + self._len
        p[0] = <char>(0x80 | opcode)
        if n < 126:
            p[1] = <char>(0x80 | n)
            p += 2
        elif n < 65536:
            p[1] = <char>(0x80 | 126)
            p[2] = <char>(n >> 8)
            p[3] = <char>(n & 0xff)
            p += 4
        else:
            p[1] = <char>(0x80 | 127)
            for i in range(8):
                p[2 + i] = <char>((<uint64_t>n >> (56 - 8 * i)) & 0xff)
            p += 10
        mask[0] = _next_mask(&self._rng)
        memcpy(p, mask, 4)
        return p + 4

    cdef inline int _end(self, char* end) except -1:
        """The frame ends at ``end``: flush at the flush size, else once the loop turns."""
        self._len = end - self._buf
        if self._len >= self.flush_size:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_cb)
        return 0

    cdef int frame(self, int opcode, const char* prefix, Py_ssize_t plen,
                   const char* data, Py_ssize_t size) except -1:
        """Queue one final frame whose payload is prefix + data (a packet header and its body)."""
        cdef uint32_t mask
        cdef char* p = self._begin(opcode, plen + size, &mask)
        if plen:
            _mask_copy(p, prefix, plen, mask)
            mask = _rotated_key(mask, plen)
        _mask_copy(p + plen, data, size, mask)
        return self._end(p + plen + size)

    cdef int frame_pieces(self, int opcode, const char** ptrs, const Py_ssize_t* lens,
                          int npieces) except -1:
        """Queue one final frame whose payload is the pieces end to end (a packet encoded
        around the caller's buffers: each piece is masked straight into the write buffer)."""
        cdef uint32_t mask
        cdef Py_ssize_t n = 0, off = 0
        cdef int i
        cdef char* p
        for i in range(npieces):
            n += lens[i]
        p = self._begin(opcode, n, &mask)
        for i in range(npieces):
            if lens[i]:
                _mask_copy(p + off, ptrs[i], lens[i], _rotated_key(mask, off))
                off += lens[i]
        return self._end(p + n)

    def _flush_soon(self):
        self._scheduled = False
        self.flush()

    cpdef flush(self):
        """Write what is queued now, in one write (a CLOSE frame must follow it)."""
        cdef Py_ssize_t n = self._len
        if n == 0:
            return
        self._len = 0
        if self.ws.is_disconnected or self.ws.is_close_frame_sent:
            return  # as picows's send(): nothing is written after a CLOSE
        self.writes += 1
        self.ws._fast_write(self._buf, n)
        if self._cap > (1 << 20) or n < 2048:
            # Do not keep a big frame's buffer for the rest of the connection, nor a buffer
            # for a link that writes little (pongs, a lone emit): idle connections are counted
            # by the thousand, and one allocation is small next to the write system call.
            PyMem_Free(self._buf)
            self._buf = NULL
            self._cap = 0

    def discard(self):
        """The link is gone: drop what is queued and release whoever waits to write."""
        self._len = 0
        self.resume()

    def pause(self):
        self.paused = True

    def resume(self):
        cdef object waiter = self._resumed
        self.paused = False
        self._resumed = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait_writable(self):
        """A future done when the transport can take more (None if it can now)."""
        if not self.paused:
            return None
        if self._resumed is None:
            self._resumed = self._loop.create_future()
        return self._resumed

