# The ack table: ids we issued for emits that carry a callback, and what to resolve when the
# server's ACK comes back (or the connection is lost, or a timeout fires).
# It reaches the client only through the hooks set on it once (on_async_callback, ...); it knows
# nothing of sockets, codecs or namespaces' life cycles.

@cython.freelist(64)
cdef class PendingAck:
    cdef public str nsp
    cdef public object callback      # called with the ack's args (or (err, *args), see err_first)
    cdef public object future        # resolved with the args tuple (call())
    cdef public object timer         # a TimerHandle to cancel when resolved
    cdef public bint err_first       # socket.io-client's timeout style: callback(err, *args)
    cdef public bint is_async
    # The packet is still in the offline buffer (not on the wire): losing a link does not fail
    # it (fail_all skips it), and the server cannot have acked it (resolve ignores it).
    cdef public bint queued
    # Set by AckDeadlines when the ack has a timeout:
    cdef public uint64_t ack_id
    cdef public double deadline      # on _monotonic()'s clock
    cdef public double timeout
    cdef public str event


cdef class AckTable:
    """Pending acks by id. Ids are unique per client, across namespaces and reconnects."""

    cdef uint64_t _next_id
    cdef dict _pending
    cdef public Py_ssize_t max_pending
    cdef public object on_async_callback   # runs a coroutine callback (client-provided)
    cdef public object on_callback_error   # logs an exception raised by a callback
    cdef public object on_ack_lost         # told when a plain callback can never be called
    cdef public object on_unsent_failed    # told (first) when an ack of a still-buffered
                                           # packet fails, so that the packet leaves the buffer

    def __cinit__(self):
        self._next_id = 0
        self._pending = {}
        self.max_pending = DEFAULT_MAX_PENDING_ACKS
        self.on_async_callback = None
        self.on_callback_error = None
        self.on_ack_lost = None
        self.on_unsent_failed = None

    def __len__(self):
        return len(self._pending)

    cpdef uint64_t add(self, PendingAck entry) except? 0:
        if len(self._pending) >= self.max_pending:
            raise BufferFullError(f"too many pending acks (limit {self.max_pending})")
        self._next_id += 1
        self._pending[self._next_id] = entry
        return self._next_id

    cpdef uint64_t add_new(self, str nsp, object callback, object future, bint err_first,
                           bint is_async) except? 0:
        """add() for a PendingAck built here: the emit path sets no attributes from Python."""
        cdef PendingAck entry = PendingAck.__new__(PendingAck)
        entry.nsp = nsp
        entry.callback = callback
        entry.future = future
        entry.err_first = err_first
        entry.is_async = is_async
        return self.add(entry)

    cpdef PendingAck pop(self, uint64_t ack_id):
        return self._pending.pop(ack_id, None)

    cpdef PendingAck get(self, uint64_t ack_id):
        return self._pending.get(ack_id)

    def ids(self, nsp=None):
        if nsp is None:
            return list(self._pending)
        return [k for k, v in self._pending.items() if (<PendingAck>v).nsp == nsp]

    cpdef bint resolve(self, str nsp, uint64_t ack_id, object args) except -1:
        """Deliver an ACK. Returns False for an id we do not know (or of another namespace)."""
        cdef PendingAck entry = self._pending.get(ack_id)
        if entry is None or entry.nsp != nsp or entry.queued:
            return False
        del self._pending[ack_id]
        self._complete(entry, None, args)
        return True

    cpdef fail(self, uint64_t ack_id, object exc):
        cdef PendingAck entry = self._pending.pop(ack_id, None)
        if entry is not None:
            self._complete(entry, exc, ())

    cpdef fail_all(self, object exc, str nsp=None, bint unsent=False):
        """Fail every pending ack (of one namespace, or all) with exc.

        Acks of packets still in the offline buffer are kept unless ``unsent``: a lost link
        says nothing about a packet that was never written to it.
        """
        cdef list ids
        ids = [k for k, v in self._pending.items()
               if (nsp is None or (<PendingAck>v).nsp == nsp)
               and (unsent or not (<PendingAck>v).queued)]
        for ack_id in ids:
            self.fail(ack_id, exc)

    cdef _complete(self, PendingAck entry, object exc, object args):
        cdef object result
        if entry.queued:
            entry.queued = False
            if self.on_unsent_failed is not None:
                self.on_unsent_failed(entry)
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if entry.future is not None:
            if not entry.future.done():
                if exc is not None:
                    entry.future.set_exception(exc)
                else:
                    entry.future.set_result(tuple(args))
            return
        if entry.callback is None:
            return
        if exc is not None and not entry.err_first:
            # A python-socketio style callback only ever receives the server's arguments; the
            # failure is reported to the client's error hook instead of being lost.
            if self.on_ack_lost is not None:
                self.on_ack_lost(entry, exc)
            return
        try:
            if entry.err_first:
                result = entry.callback(exc, *args)
            else:
                result = entry.callback(*args)
            if entry.is_async and self.on_async_callback is not None:
                self.on_async_callback(result)
        except Exception as e:
            if self.on_callback_error is not None:
                self.on_callback_error(entry, e)


cdef inline double _deadline(list heap, Py_ssize_t i):
    return (<PendingAck>heap[i]).deadline


cdef void _heap_up(list heap, Py_ssize_t pos):
    cdef object item = heap[pos]
    cdef double d = (<PendingAck>item).deadline
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if d >= _deadline(heap, parent):
            break
        heap[pos] = heap[parent]
        pos = parent
    heap[pos] = item


cdef void _heap_down(list heap, Py_ssize_t pos):
    cdef Py_ssize_t n = len(heap), child
    cdef object item = heap[pos]
    cdef double d = (<PendingAck>item).deadline
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _deadline(heap, child + 1) < _deadline(heap, child):
            child += 1
        if d <= _deadline(heap, child):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


cdef class AckDeadlines:
    """Ack timeouts without a loop timer per ack.

    The PendingAck entries themselves, ordered by deadline (on the monotonic clock, read without
    a Python call), go into a binary heap kept here in C, and one loop timer, armed for the
    earliest, fails the overdue acks; an ack already resolved is simply not found in the table.
    The TimeoutError is built only when one fires. The heap is compacted when resolved entries
    dominate it, so a high call rate with long timeouts does not accumulate them.
    """

    cdef AckTable acks
    cdef public list heap
    cdef object timer
    cdef double timer_when

    def __init__(self, AckTable acks):
        self.acks = acks
        self.heap = []
        self.timer = None
        self.timer_when = 0.0

    cdef inline bint _live(self, PendingAck entry):
        return self.acks._pending.get(entry.ack_id) is entry

    cpdef add(self, uint64_t ack_id, double timeout, str event, object loop):
        cdef PendingAck entry = self.acks._pending.get(ack_id)
        cdef list heap = self.heap
        cdef Py_ssize_t i
        if entry is None:
            return
        entry.ack_id = ack_id
        entry.deadline = _monotonic() + timeout
        entry.timeout = timeout
        entry.event = event
        heap.append(entry)
        _heap_up(heap, len(heap) - 1)
        if len(heap) > 1024 and len(heap) > 4 * len(self.acks._pending):
            self.heap = heap = [e for e in heap if self._live(<PendingAck>e)]
            for i in range(len(heap) // 2 - 1, -1, -1):
                _heap_down(heap, i)
        if self.timer is None or entry.deadline < self.timer_when:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = loop.call_later(timeout, self._sweep, loop)
            self.timer_when = entry.deadline

    def _sweep(self, loop):
        cdef double now = _monotonic()
        cdef list heap = self.heap
        cdef PendingAck e
        cdef object last
        self.timer = None
        # A loop timer may fire a hair early against this clock: treat "due within 1 ms" as due.
        while heap and _deadline(heap, 0) <= now + 0.001:
            e = <PendingAck>heap[0]
            last = heap.pop()
            if heap:
                heap[0] = last
                _heap_down(heap, 0)
            if self._live(e):
                self.acks.fail(
                    e.ack_id, _AckTimeoutError(f"no ack for {e.event!r} within {e.timeout} s"))
        if heap:
            self.timer_when = _deadline(heap, 0)
            self.timer = loop.call_later(max(self.timer_when - now, 0.0), self._sweep, loop)

    def cancel(self):
        """Stop the timer (the client is done with this loop); entries stay until swept."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
