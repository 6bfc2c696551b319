# The Dispatcher: the core's main object, one per client. Engine.IO packet -> Socket.IO packet
# -> handler, acks, held frames (backpressure, fairness), batches, send; it holds the state that
# spans sessions (namespace slots, ack table, counters) and outlives reconnects.
# It owns no socket: the transport feeds it (EngineListener, the polling loop) and it sends
# through whichever link is attached. It calls the Python layers only through their hooks
# (hooks.pxi); it knows nothing of handshakes, transports' life cycles or reconnection.

cdef class NamespaceSlot:
    """Per-namespace dispatch state owned by the compiled core.

    ``fast`` maps event names to plain sync handlers called inline; everything else (async
    handlers, catch-alls, namespace classes, events with an ack id) goes to the client's
    ``on_event`` hook. ``record_offset`` is set when the server offered connection-state recovery:
    the last string argument of each ack-less event is then remembered in ``offset`` (as
    socket.io-client does; a client cannot tell an offset from a string argument, so the
    arguments are passed on untouched). ``strip_offset`` (an opt-in) also removes it.
    """

    cdef public str name
    cdef public dict fast
    cdef public dict batch
    cdef public bint record_offset
    cdef public bint strip_offset
    cdef public object offset

    def __init__(self, str name):
        self.name = name
        self.fast = {}
        self.batch = {}
        self.record_offset = False
        self.strip_offset = False
        self.offset = None


cdef class Dispatcher:
    """The compiled half of one client: codec, dispatch, acks; it outlives reconnects."""

    # The hooks into the layers above (hooks.pxi), bound once: the client's at construction,
    # the Engine.IO session's by set_engine(). Nothing else of a Python object is called.
    cdef object _on_event, _on_control_packet, _on_unknown_ack, _on_handler_error
    cdef readonly object engine
    cdef object _on_eio_open, _on_eio_close, _on_eio_noop, _on_dispatch_yield
    cdef public AckTable acks
    cdef public AckDeadlines deadlines
    cdef public dict slots
    cdef public bint msgpack_mode
    cdef public object json
    cdef public Py_ssize_t max_attachments
    cdef public Py_ssize_t max_send_size      # the server's maxPayload; 0 = unknown
    cdef public Py_ssize_t max_message_size   # the largest message we accept
    cdef public object poll_sender            # callable(bytes, binary) while on polling
    # Backpressure on polling: poll_sender returned True (its queue is over its high-water
    # mark); emitters wait on _poll_resumed until the engine calls poll_writable().
    cdef bint _poll_full
    cdef object _poll_resumed
    # Engine.IO v3 (Socket.IO 2.x servers): binary WebSocket frames carry a leading 0x04 (the
    # message type) both ways, and the server's pong refreshes the heartbeat clock.
    cdef public bint eio3
    cdef WSTransport _ws
    cdef FrameWriter _writer  # the coalescing send path of _ws (wswriter.pxi)
    cdef double _last_ping
    cdef Packet _pending_bin
    cdef list _pending_atts
    # Batch dispatch: consecutive events for one batch handler accumulate here until the end
    # of the socket read (or another kind of packet) flushes them, in order.
    cdef object _batch_handler
    cdef list _batch_items
    cdef str _batch_event
    cdef str _batch_nsp
    cdef public Py_ssize_t max_batch
    # Backpressure: while `holding`, frames that were already read are kept (copied) here
    # instead of dispatched; the socket is paused, so this holds at most one read's worth.
    cdef public bint holding
    # Held frames live in one growing C buffer (payloads back to back) with their offsets,
    # sizes and kinds in C arrays: holding costs a memcpy, not a Python object per frame.
    cdef char* _hdata
    cdef Py_ssize_t _hdata_len, _hdata_cap
    cdef Py_ssize_t* _hoff
    cdef Py_ssize_t* _hsize
    cdef unsigned char* _hbin
    cdef Py_ssize_t _hcount, _hcap, _hpos
    # Fairness: inline dispatch of one read yields back to the event loop after
    # `dispatch_budget` seconds (the rest of the read is held), so that a slow handler under a
    # firehose cannot starve timers, emits, pings and disconnect() for seconds.
    cdef public double dispatch_budget
    cdef double _slice_start
    cdef unsigned int _slice_count
    cdef public uint64_t packets_received
    cdef public uint64_t events_received
    cdef public uint64_t bytes_received
    cdef public uint64_t packets_sent
    cdef public uint64_t bytes_sent
    # emit()'s gate: the namespaces whose ack-less emits may go straight to the wire (connected
    # on a live session, nothing buffered before them, no at-least-once queue). The Python
    # layer adds a namespace once an emit found it so and discards it (or clears the set) on
    # every change that can close that path; a namespace not in it takes the full path.
    cdef public set emit_gate
    # send_event()'s [event, arg] list, reused while no send_event is using it (one that runs
    # inside another, from Python code orjson or an encoder calls, takes a list of its own).
    cdef list _pair

    def __init__(self, client=None, engine=None, bint msgpack_mode=False, json=None,
                 Py_ssize_t max_attachments=DEFAULT_MAX_ATTACHMENTS,
                 Py_ssize_t max_message_size=0):
        if client is None:  # a sender only (tests, benchmarks): nothing may be dispatched
            self._on_event = self._on_control_packet = _no_client_hooks
            self._on_unknown_ack = _no_client_hooks
            self._on_handler_error = _raise_handler_error
        else:
            self._on_event = _hook(client, "on_event", "ClientHooks")
            self._on_control_packet = _hook(client, "on_control_packet", "ClientHooks")
            self._on_unknown_ack = _hook(client, "on_unknown_ack", "ClientHooks")
            self._on_handler_error = _hook(client, "on_handler_error", "ClientHooks")
        self.set_engine(engine)
        self.acks = AckTable()
        self.deadlines = AckDeadlines(self.acks)
        self.slots = {}
        self.msgpack_mode = msgpack_mode
        self.json = json
        self.max_attachments = max_attachments
        self.max_send_size = 0
        self.max_message_size = max_message_size
        self.poll_sender = None
        self._poll_full = False
        self._poll_resumed = None
        self.eio3 = False
        self._ws = None
        self._writer = None
        self._last_ping = _monotonic()
        self._pending_bin = None
        self._pending_atts = None
        self._batch_handler = None
        self._batch_items = None
        self.max_batch = 1024
        self.holding = False
        self.dispatch_budget = 0.02
        self._slice_start = 0
        self._slice_count = 0
        self.emit_gate = set()
        self._pair = [None, None]

    def set_engine(self, engine):
        """Bind the EngineHooks of the session whose frames are dispatched (None: no session)."""
        if engine is None:
            self._on_eio_open = self._on_eio_close = self._on_eio_noop = None
            self._on_dispatch_yield = None
        else:
            self._on_eio_open = _hook(engine, "on_eio_open", "EngineHooks")
            self._on_eio_close = _hook(engine, "on_eio_close", "EngineHooks")
            self._on_eio_noop = _hook(engine, "on_eio_noop", "EngineHooks")
            self._on_dispatch_yield = _hook(engine, "on_dispatch_yield", "EngineHooks")
        self.engine = engine

    # -- transport plumbing (Python layer) --

    def attach_websocket(self, WSTransport transport):
        self._drop_writer()
        self.emit_gate.clear()
        self.poll_writable()
        self._ws = transport
        self._writer = FrameWriter(transport)
        self.poll_sender = None

    cdef int _drop_writer(self) except -1:
        # The link is given up: what is queued is written if the transport still takes it, then
        # emitters waiting are released.
        self.emit_gate.clear()
        if self._writer is not None:
            # What was sent before the link was given up still goes out (picows's send()
            # wrote at once); flush() writes nothing once the link is closed or a CLOSE left.
            self._writer.flush()
            self._writer.discard()
            self._writer = None
        return 0

    def flush_writes(self):
        """Write the frames queued for the WebSocket now (before a CLOSE frame goes out)."""
        if self._writer is not None:
            self._writer.flush()

    @property
    def writing_paused(self):
        """The WebSocket's write buffer, or the polling queue, is over its high-water mark
        (emitters should wait)."""
        return self._poll_full or (self._writer is not None and self._writer.paused)

    def wait_writable(self):
        """A future done once the link takes writes again (None when it does now)."""
        if self._poll_full:
            if self._poll_resumed is None:
                self._poll_resumed = asyncio.get_running_loop().create_future()
            return self._poll_resumed
        if self._writer is None:
            return None
        return self._writer.wait_writable()

    def poll_writable(self):
        """The polling queue is back under its low-water mark, or gone: emitters go on."""
        cdef object waiter = self._poll_resumed
        self._poll_full = False
        self._poll_resumed = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def writer(self):
        """The WebSocket's FrameWriter (None on polling or when not connected)."""
        return self._writer

    cdef int _on_writing(self, WSTransport transport, bint paused) except -1:
        if self._writer is not None and self._ws is transport:
            if paused:
                self._writer.pause()
            else:
                self._writer.resume()
        return 0

    def detach_transport(self):
        self._drop_writer()
        self._ws = None
        self.poll_sender = None
        self.poll_writable()
        self.reset_stream()
        # Frames of a dead session are not dispatched into the next one.
        self.holding = False
        self._held_clear()
        if self._batch_handler is not None:
            self._flush_batch()

    def detach_sender(self):
        """The link is dead but its held frames are still to be dispatched (the drain before
        the close): sends fail with DisconnectedError from now on, so emits of handlers that
        run during the drain go to the offline buffer, and held pings are not answered."""
        self._drop_writer()
        self._ws = None
        self.poll_sender = None
        self.poll_writable()

    def discard_held(self):
        """Drop the frames still held (a protocol error or a CLOSE ended the stream in them).

        Safe from inside release(): the frames are marked consumed, no memory is freed here.
        """
        self.holding = False
        self._hpos = self._hcount

    def reset_stream(self):
        """Forget a half-received binary packet (the transport it came on is gone)."""
        self._pending_bin = None
        self._pending_atts = None

    @property
    def has_transport(self):
        return self._ws is not None or self.poll_sender is not None

    def touch_ping(self):
        self._last_ping = _monotonic()

    def ping_age(self):
        """Seconds since the last server ping (or since touch_ping())."""
        return _monotonic() - self._last_ping

    cdef inline bint _must_hold(self) noexcept:
        return self.holding or self._hpos < self._hcount

    cdef int _hold(self, bint binary, const char* buf, Py_ssize_t size) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        if self._hcount == self._hcap:
            cap = self._hcap * 2 if self._hcap else 1024
            p = PyMem_Realloc(self._hoff, cap * sizeof(Py_ssize_t))
            if p == NULL:
                raise MemoryError()
            self._hoff = <Py_ssize_t*>p
            p = PyMem_Realloc(self._hsize, cap * sizeof(Py_ssize_t))
            if p == NULL:
                raise MemoryError()
            self._hsize = <Py_ssize_t*>p
            p = PyMem_Realloc(self._hbin, cap)
            if p == NULL:
                raise MemoryError()
            self._hbin = <unsigned char*>p
            self._hcap = cap
        if self._hdata_len + size > self._hdata_cap:
            cap = max(self._hdata_cap * 2, self._hdata_len + size, 65536)
            p = PyMem_Realloc(self._hdata, cap)
            if p == NULL:
                raise MemoryError()
            self._hdata = <char*>p
            self._hdata_cap = cap
        if size:
            memcpy(self._hdata + self._hdata_len, buf, size)
        self._hoff[self._hcount] = self._hdata_len
        self._hsize[self._hcount] = size
        self._hbin[self._hcount] = binary
        self._hdata_len += size
        self._hcount += 1
        return 0

    cdef void _held_clear(self) noexcept:
        self._hcount = 0
        self._hpos = 0
        self._hdata_len = 0
        if self._hdata_cap > (1 << 20):
            # Do not keep a big backlog's buffer for the rest of the connection.
            PyMem_Free(self._hdata)
            self._hdata = NULL
            self._hdata_cap = 0

    def __dealloc__(self):
        PyMem_Free(self._hdata)
        PyMem_Free(self._hoff)
        PyMem_Free(self._hsize)
        PyMem_Free(self._hbin)

    def hold(self):
        """Stop dispatching: frames read from now on are kept until release()."""
        self.holding = True

    cdef inline int _account(self) except -1:
        # Checked every 64 frames: a clock read per frame would show in the figures.
        if self._slice_count == 0:
            self._slice_start = _monotonic()
        self._slice_count += 1
        if (self._slice_count & 63) == 0 and self.dispatch_budget > 0:
            if _monotonic() - self._slice_start > self.dispatch_budget:
                self._slice_count = 0
                self.holding = True
                if self._on_dispatch_yield is not None:
                    self._on_dispatch_yield()
        return 0

    def new_slice(self):
        """Start a new dispatch time slice (the engine calls it before release())."""
        self._slice_count = 0

    def release(self):
        """Dispatch the kept frames in order until done or held again; True when all are out."""
        cdef Py_ssize_t i
        self.holding = False
        while self._hpos < self._hcount and not self.holding:
            i = self._hpos
            self._hpos += 1
            # Nothing is appended while this runs (only picows callbacks and feed_* hold, and
            # neither can run from inside a handler), so the pointer stays valid.
            if self._hbin[i]:
                self._feed_binary(self._hdata + self._hoff[i], self._hsize[i])
            else:
                self._feed_text(self._hdata + self._hoff[i], self._hsize[i])
            self._account()
        if self._hpos >= self._hcount:
            self._held_clear()
            if self._batch_handler is not None:
                self._flush_batch()
            return True
        return False

    @property
    def held(self):
        return self._hcount - self._hpos

    def flush_batch(self):
        """Deliver the events accumulated for a batch handler (end of a read)."""
        if self._batch_handler is not None:
            self._flush_batch()

    cdef int _flush_batch(self) except -1:
        cdef object handler = self._batch_handler
        cdef list items = self._batch_items
        self._batch_handler = None
        self._batch_items = None
        try:
            handler(items)
        except Exception as exc:
            self._on_handler_error(self._batch_event, self._batch_nsp, exc)
        return 0

    def feed_text(self, data):
        """Feed one Engine.IO text packet (polling transport, tests)."""
        cdef bytes b
        if type(data) is bytes:
            b = <bytes>data
        elif isinstance(data, str):
            b = data.encode("utf-8", "surrogatepass")
        else:
            b = bytes(data)
        if self._must_hold():
            self._hold(False, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return
        self._feed_text(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def feed_binary(self, data):
        """Feed one Engine.IO binary message (polling transport, tests)."""
        cdef bytes b = <bytes>data if type(data) is bytes else bytes(data)
        if self.eio3:
            b = _EIO3_BINARY_TYPE + b  # framed as a v3 WebSocket frame, as _feed_binary expects
        if self._must_hold():
            self._hold(True, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return
        self._feed_binary(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def feed_eio(self, int t, data):
        """Feed one Engine.IO packet as the polling decoders give it: ``(type, str)``, or
        ``(EIO_MESSAGE, bytes)`` for a binary message."""
        cdef bytes body, b
        if type(data) is not str:
            if t != EIO_MESSAGE:
                raise ValueError("only message packets may carry binary data")
            self.feed_binary(data)
            return
        if t < EIO_OPEN or t > EIO_MAX_TYPE:
            raise ValueError(f"unknown Engine.IO packet type {t}")
        body = (<str>data).encode("utf-8", "surrogatepass")
        b = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(body) + 1)
        PyBytes_AS_STRING(b)[0] = <char>(CHAR_0 + t)
        memcpy(PyBytes_AS_STRING(b) + 1, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
        if self._must_hold():
            self._hold(False, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return
        self._feed_text(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def feed_poll_record(self, bytes record, Py_ssize_t max_message_size=0):
        """Feed one record of an Engine.IO v4 polling payload (the bytes between two 0x1e).

        Checks what decode_eio_payload checks on one record (empty, type, size, UTF-8, base64)
        and raises the same errors, but a text record goes to the parser as the bytes it
        arrived as, as a WebSocket text frame does: no str and back per packet on polling.
        A ``b`` + base64 record is decoded and fed as a binary message.
        """
        cdef const char* buf = PyBytes_AS_STRING(record)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(record)
        cdef Py_ssize_t i, decoded
        cdef object raw
        if size == 0:
            raise ProtocolError("empty packet in polling payload", b"")
        if buf[0] == 98:  # 'b': base64 binary message
            # Refused before decoding: the size base64 announces (exact when well formed).
            decoded = (size - 1) // 4 * 3 - (
                2 if size >= 3 and buf[size - 1] == 61 and buf[size - 2] == 61 else
                1 if buf[size - 1] == 61 else 0)
            if max_message_size > 0 and decoded > max_message_size:
                raise _too_large(decoded, max_message_size, "incoming binary message")
            try:
                raw = base64.b64decode(record[1:], validate=True)
            except (ValueError, binascii.Error):
                raise ProtocolError("invalid base64 in polling payload", _truncated(buf, size)) \
                    from None
            if max_message_size > 0 and len(raw) > max_message_size:
                raise _too_large(len(raw), max_message_size, "incoming binary message")
            self.feed_binary(raw)
            return
        if buf[0] < CHAR_0 + EIO_OPEN or buf[0] > CHAR_0 + EIO_MAX_TYPE:
            raise ProtocolError("unknown Engine.IO packet type", _truncated(buf, size))
        if max_message_size > 0 and size > max_message_size:
            raise _too_large(size, max_message_size, "incoming message")
        for i in range(size):
            if <unsigned char>buf[i] >= 0x80:
                # Not ASCII: the body must still be valid UTF-8, as a decoded payload is.
                try:
                    PyUnicode_DecodeUTF8(buf, size, NULL)
                except UnicodeDecodeError:
                    raise ProtocolError("polling payload is not valid UTF-8",
                                        _truncated(buf, size)) from None
                break
        if self._must_hold():
            self._hold(False, buf, size)
            return
        self._feed_text(buf, size)

    # -- receive --

    cdef int _feed_text(self, const char* buf, Py_ssize_t size) except -1:
        cdef int t
        cdef Packet p
        self.bytes_received += size
        if size < 1:
            raise ProtocolError("empty Engine.IO packet", b"")
        t = buf[0] - CHAR_0
        if t == EIO_MESSAGE:
            self.packets_received += 1
            if self.msgpack_mode:
                # socket.io-msgpack-parser 2.x (Socket.IO 2.x servers) sends CONNECT,
                # DISCONNECT and ERROR as JSON text; 3.x never sends text. Accepted either
                # way: the 2.x server's own CONNECT is how a v4 handshake recognises it.
                p = _mp2_control(buf + 1, size - 1)
                self._route(p.type, p.nsp, None, p.data)
                return 0
            self._on_sio_text(buf + 1, size - 1)
        elif t == EIO_PING:  # answered right here, and the heartbeat deadline refreshed
            self._last_ping = _monotonic()
            if self._ws is None and self.poll_sender is None:
                pass  # a held ping dispatched after the link died: nobody to answer
            elif size == 1:
                self._send(_PONG, False)
            else:
                self._send(_PONG + PyBytes_FromStringAndSize(buf + 1, size - 1), False)
        elif t == EIO_NOOP:
            if self._on_eio_noop is not None:
                self._on_eio_noop()
        elif t == EIO_CLOSE:
            if self._on_eio_close is not None:
                self._on_eio_close()
        elif t == EIO_OPEN:
            if self._on_eio_open is not None:
                self._on_eio_open(PyBytes_FromStringAndSize(buf + 1, size - 1))
        elif t == EIO_PONG:  # the answer to our ping on Engine.IO v3 (never sent on v4)
            self._last_ping = _monotonic()
        elif t == EIO_UPGRADE:  # nothing to do on the client side
            pass
        else:
            raise ProtocolError("unknown Engine.IO packet type", _truncated(buf, size))
        return 0

    cdef int _feed_binary(self, const char* buf, Py_ssize_t size) except -1:
        cdef Packet p
        cdef list atts
        cdef int t
        cdef bint has_id
        cdef uint64_t ack_id = 0
        cdef Py_ssize_t data_start, data_end
        cdef object nsp
        self.bytes_received += size
        if self.eio3:
            if size < 1 or buf[0] != EIO_MESSAGE:
                raise ProtocolError("Engine.IO v3 binary frame is not a message",
                                    _truncated(buf, size))
            buf += 1
            size -= 1
        if self.msgpack_mode:
            self.packets_received += 1
            nsp = _mp_envelope(buf, size, &t, &has_id, &ack_id, &data_start, &data_end,
                               self.eio3)
            if t == SIO_EVENT and not has_id and data_start >= 0 \
                    and self._fast_mp_event(nsp, buf, data_start, data_end):
                return 0
            p = _mp_packet(buf, size, t, nsp, has_id, ack_id, data_start, data_end)
            self._route(p.type, p.nsp, p.id, p.data)
            return 0
        if self._pending_bin is None:
            raise ProtocolError("binary frame with no pending binary packet", _truncated(buf, size))
        self._pending_atts.append(PyBytes_FromStringAndSize(buf, size))
        if len(self._pending_atts) == self._pending_bin.attachments:
            p = self._pending_bin
            atts = self._pending_atts
            self._pending_bin = None
            self._pending_atts = None
            self._route(p.type, p.nsp, p.id,
                        _reconstruct(p.data, atts, bytearray(len(atts)), 0))
        return 0

    cdef int _on_sio_text(self, const char* buf, Py_ssize_t size) except -1:
        cdef Header h
        cdef str nsp
        cdef object data, ack_id
        cdef Packet p
        if self._pending_bin is not None:
            raise ProtocolError("text packet while binary attachments were expected",
                                _truncated(buf, size))
        _parse_header(buf, size, &h, self.max_attachments)
        nsp = _ROOT_NSP if h.nsp_start < 0 else _header_nsp(buf, &h, size)
        if h.type == SIO_EVENT and not h.has_id and self.json is None \
                and self._fast_event(nsp, buf, h.data_start, size):
            return 0
        data = _loads_body(buf, h.data_start, size, self.json)
        if h.type == SIO_EVENT and type(data) is list and len(<list>data) > 0 \
                and type((<list>data)[0]) is str:
            # The common case, checked inline; everything else through the full rules.
            self._dispatch_event(nsp, h.id if h.has_id else None, <list>data)
            return 0
        _validate(h.type, data, h.has_id, nsp, buf, size, h.data_start < size)
        ack_id = h.id if h.has_id else None
        if (h.type == SIO_BINARY_EVENT or h.type == SIO_BINARY_ACK) and h.attachments > 0:
            p = Packet.__new__(Packet)
            p.type = h.type
            p.nsp = nsp
            p.id = ack_id
            p.data = data
            p.attachments = h.attachments
            self._pending_bin = p
            self._pending_atts = []
            return 0
        self._route(h.type, nsp, ack_id, data)
        return 0

    cdef bint _fast_event(self, str nsp, const char* buf, Py_ssize_t start,
                          Py_ssize_t size) except -1:
        """An event for a plain sync or batch handler, decoded straight into the call: no list.

        The name is read first; unless it has such a handler (and no recovery offset is to be
        stripped), nothing more is done. Returns False, having dispatched nothing, whenever the
        general path must decide, including every input the fast JSON decoder declines (the
        general path then raises the right error).
        """
        cdef _JP s
        cdef object name, arg = None, v, handler
        cdef bint is_batch
        cdef list rest = None
        cdef NamespaceSlot slot
        cdef int nargs = 0
        s.p = <const unsigned char*>buf + start
        s.end = <const unsigned char*>buf + size
        s.depth = 1
        if s.end - s.p < 3 or s.p[0] != 91 or s.p[1] != 34:  # '["'
            return False
        s.p += 2
        name = _json_string(&s)
        if name is _JSON_BAIL:
            return False
        slot = <NamespaceSlot>self.slots.get(nsp)
        if slot is None or slot.strip_offset:
            return False
        handler = self._core_handler(slot, name, &is_batch)
        if handler is None:
            return False
        while True:
            _json_ws(&s)
            if s.p >= s.end:
                return False
            if s.p[0] == 93:  # ']'
                s.p += 1
                break
            if s.p[0] != 44:  # ','
                return False
            s.p += 1
            _json_ws(&s)
            v = _json_value(&s)
            if v is _JSON_BAIL:
                return False
            if nargs == 0:
                arg = v
            else:
                if rest is None:
                    rest = [arg]
                rest.append(v)
            nargs += 1
        _json_ws(&s)
        if s.p != s.end:
            return False
        if slot.record_offset and nargs > 0:
            v = arg if nargs == 1 else rest[nargs - 1]
            if type(v) is str:
                slot.offset = v
        return self._core_call(nsp, name, handler, is_batch, nargs, arg, rest)

    cdef inline object _core_handler(self, NamespaceSlot slot, object name, bint* is_batch):
        """The batch or plain sync handler the core calls itself for this event, or None."""
        cdef object handler = slot.batch.get(name) if slot.batch else None
        is_batch[0] = handler is not None
        return handler if handler is not None else slot.fast.get(name)

    cdef bint _core_call(self, str nsp, object name, object handler, bint is_batch, int nargs,
                         object arg, list rest) except -1:
        """Call (or batch) an event's handler: arg is the one argument, rest all of several."""
        self.events_received += 1
        if is_batch:
            if handler is not self._batch_handler:
                if self._batch_handler is not None:
                    self._flush_batch()
                self._batch_handler = handler
                self._batch_items = []
                self._batch_event = name
                self._batch_nsp = nsp
            self._batch_items.append(arg if nargs == 1 else None if nargs == 0 else tuple(rest))
            if len(self._batch_items) >= self.max_batch:
                self._flush_batch()
            return True
        if self._batch_handler is not None:
            self._flush_batch()
        try:
            if nargs == 1:
                handler(arg)
            elif nargs == 0:
                handler()
            else:
                handler(*rest)
        except Exception as exc:
            self._on_handler_error(name, nsp, exc)
        return True

    cdef bint _fast_mp_event(self, str nsp, const char* cbuf, Py_ssize_t start,
                             Py_ssize_t end) except -1:
        """_fast_event for msgpack: `data` (an array) decoded element by element into the call.

        Returns False, having dispatched nothing, whenever the general path must decide; it
        decodes `data` again and raises the right error for what this one declines.
        """
        cdef const unsigned char* buf = <const unsigned char*>cbuf
        cdef Py_ssize_t pos = start, n, i, kpos, klen, vend
        cdef unsigned char c = buf[start]
        cdef object name, arg = None, v, handler
        cdef bint is_batch
        cdef list rest = None
        cdef NamespaceSlot slot
        if 0x90 <= c <= 0x9f:
            n = c & 0x0f
            pos += 1
        elif c == 0xdc and end - pos >= 3:
            n = <Py_ssize_t>_be(buf + pos + 1, 2)
            pos += 3
        else:
            return False
        if n < 1 or pos >= end:
            return False
        kpos = _mp_str(buf, pos, end, &klen)
        if kpos < 0 or kpos + klen > end:
            return False
        try:
            name = _short_str(buf + kpos, klen)
        except UnicodeDecodeError:
            return False
        pos = kpos + klen
        slot = <NamespaceSlot>self.slots.get(nsp)
        if slot is None or slot.strip_offset:
            return False
        handler = self._core_handler(slot, name, &is_batch)
        if handler is None:
            return False
        for i in range(1, n):
            vend = _mp_skip(buf, pos, end)
            if vend < 0:
                return False
            try:
                v = _mp_decode(buf + pos, vend - pos)
            except Exception:
                return False
            if i == 1:
                arg = v
            else:
                if rest is None:
                    rest = [arg]
                rest.append(v)
            pos = vend
        if pos != end:
            return False
        if slot.record_offset and n > 1:
            v = arg if n == 2 else rest[n - 2]
            if type(v) is str:
                slot.offset = v
        return self._core_call(nsp, name, handler, is_batch, n - 1, arg, rest)

    cdef int _route(self, int t, str nsp, object ack_id, object data) except -1:
        cdef Packet p
        if t == SIO_EVENT or t == SIO_BINARY_EVENT:
            self._dispatch_event(nsp, ack_id, <list>data)
            return 0
        if self._batch_handler is not None:
            self._flush_batch()
        if t == SIO_ACK or t == SIO_BINARY_ACK:
            if not self.acks.resolve(nsp, ack_id, data):
                self._on_unknown_ack(nsp, ack_id)
        else:
            p = Packet.__new__(Packet)
            p.type = t
            p.nsp = nsp
            p.id = ack_id
            p.data = data
            p.attachments = 0
            self._on_control_packet(p)
        return 0

    cdef int _dispatch_event(self, str nsp, object ack_id, list data) except -1:
        cdef NamespaceSlot slot = <NamespaceSlot>self.slots.get(nsp)
        cdef object handler
        cdef bint is_batch
        cdef Py_ssize_t n = len(data)
        if type(data[0]) is not str:
            data[0] = _event_name(data[0])
        if slot is not None and ack_id is None:
            if slot.record_offset and n > 1 and type(data[n - 1]) is str:
                slot.offset = data[n - 1]
                if slot.strip_offset:
                    del data[n - 1]
                    n -= 1
            handler = self._core_handler(slot, data[0], &is_batch)
            if handler is not None:
                self._core_call(nsp, data[0], handler, is_batch, n - 1,
                                data[1] if n > 1 else None, data[1:] if n > 2 else None)
                return 0
        self.events_received += 1
        if self._batch_handler is not None:
            self._flush_batch()
        self._on_event(nsp, ack_id, data)
        return 0

    # -- send --

    cdef inline Py_ssize_t _wire_size(self, Py_ssize_t n, bint binary) noexcept:
        """What the server counts against its maxPayload: on polling a binary message is a
        ``b`` + base64 record, a third larger than on a WebSocket."""
        if binary and self._ws is None and self.poll_sender is not None:
            return 1 + 4 * ((n + 2) // 3)
        return n

    cdef int _check_send_size(self, Py_ssize_t n, bint binary) except -1:
        cdef Py_ssize_t wire = self._wire_size(n, binary)
        cdef str size
        if wire > self.max_send_size:
            size = f"{n} bytes" if wire == n else f"{n} bytes ({wire} as base64 on polling)"
            raise PayloadTooLargeError(
                f"message of {size} exceeds the server's maxPayload of {self.max_send_size}")
        return 0

    cdef int _send(self, bytes data, bint binary) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        # One comparison on the common path; binary on polling is counted as base64.
        if self.max_send_size > 0 and (n > self.max_send_size or (binary and self._ws is None)):
            self._check_send_size(n, binary)
        if self._ws is not None:
            if PyThread_get_thread_ident() != self._ws._thread_id:
                raise RuntimeError("fastsio: a WebSocket send from a thread other than its loop's")
            if binary and self.eio3:
                self._writer.frame(WSMsgType.BINARY, PyBytes_AS_STRING(_EIO3_BINARY_TYPE),
                                   PyBytes_GET_SIZE(_EIO3_BINARY_TYPE), PyBytes_AS_STRING(data), n)
            else:
                self._writer.frame(WSMsgType.BINARY if binary else WSMsgType.TEXT, NULL, 0,
                                   PyBytes_AS_STRING(data), n)
        elif self.poll_sender is not None:
            if self.poll_sender(data, binary):
                self._poll_full = True
        else:
            raise DisconnectedError("not connected")
        self.packets_sent += 1
        self.bytes_sent += n
        return 0

    def send_eio(self, bytes data, bint binary=False):
        """Send a raw Engine.IO packet (text including its type character)."""
        self._send(data, binary)

    def encode(self, int t, str nsp, object data=None, object ack_id=None):
        """Encode a Socket.IO packet into the frames to send: [(bytes, binary), ...]."""
        cdef list parts
        cdef list out
        if self.msgpack_mode:
            return [(_encode_msgpack(t, nsp, data, ack_id), True)]
        parts = _encode_json_packet(t, nsp, data, ack_id, self.json, True)
        out = [(parts[0], False)]
        for att in parts[1:]:
            out.append((att, True))
        return out

    def send_frames(self, list frames):
        """Send frames made by encode(); all are checked against the size limit first."""
        if self.max_send_size > 0:
            for frame, binary in frames:
                self._check_send_size(len(frame), binary)
        for frame, binary in frames:
            self._send(frame, binary)

    cdef int _send_msgpack_ws(self, int t, str nsp, object data, object ack_id) except -1:
        """A msgpack packet on the WebSocket, as _encode_msgpack() encodes it, but encoded
        around the bytes values of ``data``: those are masked into the frame straight from the
        caller's objects, so a payload is copied once (the masking a client must do)."""
        cdef _MPBuf b
        cdef const char* ptrs[2 * _MP_SEGS + 1]
        cdef Py_ssize_t lens[2 * _MP_SEGS + 1]
        cdef Py_ssize_t npieces, n = 0, i
        if t == SIO_BINARY_EVENT:
            t = SIO_EVENT
        elif t == SIO_BINARY_ACK:
            t = SIO_ACK
        _mpb_init(&b)
        b.nseg = 0
        try:
            _mp_pack_packet(&b, t, nsp, data, ack_id)
            npieces = _mpb_pieces(&b, ptrs, lens)
            for i in range(npieces):
                n += lens[i]
            if self.max_send_size > 0 and n > self.max_send_size:
                self._check_send_size(n, True)
            if PyThread_get_thread_ident() != self._ws._thread_id:
                raise RuntimeError("fastsio: a WebSocket send from a thread other than its loop's")
            self._writer.frame_pieces(WSMsgType.BINARY, ptrs, lens, <int>npieces)
        finally:
            _mpb_free(&b)
        self.packets_sent += 1
        self.bytes_sent += n
        return 0

    cpdef send_packet(self, int t, str nsp, object data=None, object ack_id=None):
        """Encode and send a Socket.IO packet on the active transport."""
        cdef list parts
        if self.msgpack_mode:
            if self.eio3 and (t == SIO_CONNECT or t == SIO_DISCONNECT):
                self._send(_mp2_control_text(t, nsp), False)
                return
            if self._ws is not None and not self.eio3:
                self._send_msgpack_ws(t, nsp, data, ack_id)
                return
            self._send(_encode_msgpack(t, nsp, data, ack_id), True)
            return
        parts = _encode_json_packet(t, nsp, data, ack_id, self.json, True)
        if len(parts) == 1:
            self._send(<bytes>parts[0], False)
        else:
            self.send_frames([(parts[0], False)] + [(a, True) for a in parts[1:]])

    def emit_direct(self, object namespace, object event, object data):
        """AsyncClient.emit()'s hot path: ``send_event`` when ``namespace`` (None or "" is
        ``"/"``) is in ``emit_gate`` and ``event`` is a str; 0, having done nothing, otherwise.
        """
        cdef object nsp = namespace
        if nsp is None:
            nsp = _ROOT_NSP
        elif type(nsp) is not str:
            return 0
        elif PyUnicode_GET_LENGTH(nsp) == 0:
            nsp = _ROOT_NSP
        if type(event) is not str or not PySet_Contains(self.emit_gate, nsp):
            return 0
        return self.send_event(<str>nsp, <str>event, data)

    cpdef int send_event(self, str nsp, str event, object data) except -1:
        """emit()'s hot path: an ack-less EVENT ``[event, *args]`` (a tuple ``data`` is several
        arguments, None none) on the wire.

        Returns 0, having sent nothing, if the link just went down (the caller then buffers
        the packet); 1 when sent; 2 when sent and the WebSocket is over its high-water mark
        (the caller should wait for wait_writable()).
        """
        cdef list payload
        cdef list pair = None
        cdef bint binary = False
        cdef object t = type(data)
        if t is dict or t is str or t is int or t is float or t is list:
            if self._pair is not None:
                pair = self._pair
                self._pair = None
                pair[0] = event
                pair[1] = data
                payload = pair
            else:
                payload = [event, data]
        elif isinstance(data, tuple):  # a namedtuple too: several arguments, as args_of()
            payload = [event]
            payload.extend(<tuple>data)
            for item in <tuple>data:
                if type(item) is bytes:
                    binary = True
                    break
        elif data is None:
            payload = [event]
        else:
            payload = [event, data]
            binary = t is bytes or t is bytearray or t is memoryview
        try:
            if self._ws is None or self.msgpack_mode or self.json is not None \
                    or not self._send_json_event(nsp, payload, binary):
                self.send_packet(SIO_EVENT, nsp, payload, None)
        except DisconnectedError:
            return 0
        finally:
            if pair is not None:  # encoded and framed (or failed): nothing keeps the list
                pair[0] = None
                pair[1] = None
                self._pair = pair
        if self._poll_full or (self._writer is not None and self._writer.paused):
            return 2
        return 1

    cdef bint _send_json_event(self, str nsp, list payload, bint binary) except -1:
        """``42[<nsp>,]<json>`` framed straight from the header and orjson's bytes (no copy
        into a packet first), on the WebSocket; with bytes in the arguments,
        ``45<n>-[<nsp>,]<json>`` and the n attachments framed from the callers' bytes objects.

        ``binary``: the arguments hold bytes (orjson is asked with placeholders at once).
        Returns False, having sent nothing, when orjson declines the payload (non-str keys,
        big integers, types it does not know); send_packet() decides then.
        """
        cdef char head[32]
        cdef char* p
        cdef const char* hp
        cdef Py_ssize_t n, hlen, i, natt = 0
        cdef bytes body
        cdef bytes header = None
        cdef _Attachments atts = None
        cdef object att
        if not binary:
            try:
                body = _orjson_dumps(payload)
            except orjson.JSONEncodeError:
                binary = True
        if binary:
            atts = _Attachments.__new__(_Attachments)
            atts.items = []
            try:
                body = _orjson_dumps(payload, atts)
            except orjson.JSONEncodeError:
                return False
            natt = len(atts.items)
            if natt != _count_binary(payload, 0):
                # Bytes where the full path does not look (a dataclass field, an enum value):
                # it refuses them, so must this path.
                return False
        head[0] = CHAR_0 + EIO_MESSAGE
        if natt:
            head[1] = CHAR_0 + SIO_BINARY_EVENT
            p = _write_uint(head + 2, <uint64_t>natt, _udigits(<uint64_t>natt))
            p[0] = 45  # '-'
            hlen = p + 1 - head
        else:
            head[1] = CHAR_0 + SIO_EVENT
            hlen = 2
        if nsp != _ROOT_NSP and nsp != "/":
            header = PyBytes_FromStringAndSize(head, hlen) + nsp.encode("utf-8") + b","
            hlen = PyBytes_GET_SIZE(header)
        n = hlen + PyBytes_GET_SIZE(body)
        if self.max_send_size > 0:
            # Every frame of the packet is checked before any is queued.
            if n > self.max_send_size:
                self._check_send_size(n, False)
            for i in range(natt):
                self._check_send_size(PyBytes_GET_SIZE(<bytes>atts.items[i]), True)
        if PyThread_get_thread_ident() != self._ws._thread_id:
            raise RuntimeError("fastsio: a WebSocket send from a thread other than its loop's")
        if header is None:
            hp = &head[0]
        else:
            hp = PyBytes_AS_STRING(header)
        self._writer.frame(WSMsgType.TEXT, hp, hlen, PyBytes_AS_STRING(body),
                           PyBytes_GET_SIZE(body))
        self.packets_sent += 1
        self.bytes_sent += n
        for i in range(natt):
            att = atts.items[i]
            # The caller's bytes, masked into the write buffer: the one copy a client makes.
            if self.eio3:
                self._writer.frame(WSMsgType.BINARY, PyBytes_AS_STRING(_EIO3_BINARY_TYPE), 1,
                                   PyBytes_AS_STRING(att), PyBytes_GET_SIZE(att))
            else:
                self._writer.frame(WSMsgType.BINARY, NULL, 0, PyBytes_AS_STRING(att),
                                   PyBytes_GET_SIZE(att))
            self.packets_sent += 1
            self.bytes_sent += PyBytes_GET_SIZE(att)
        return True

    cpdef bint send_call(self, str nsp, list payload, object future, object timeout,
                         object loop) except -1:
        """call()'s hot path: an ack id for ``future``, the EVENT on the wire, its deadline.

        Returns False, with nothing registered, if the link just went down (the caller then
        buffers the packet); any other failure unregisters the ack and propagates.
        """
        cdef uint64_t ack_id = self.acks.add_new(nsp, None, future, False, False)
        try:
            self.send_packet(SIO_EVENT, nsp, payload, ack_id)
        except DisconnectedError:
            self.acks._pending.pop(ack_id, None)
            return False
        except BaseException:
            self.acks._pending.pop(ack_id, None)
            raise
        if timeout is not None:
            self.deadlines.add(ack_id, timeout, payload[0], loop)
        return True

    def stats(self):
        return {
            "packets_received": self.packets_received,
            "events_received": self.events_received,
            "bytes_received": self.bytes_received,
            "packets_sent": self.packets_sent,
            "bytes_sent": self.bytes_sent,
            "pending_acks": len(self.acks),
        }


cdef bytes _PONG = eio_text(EIO_PONG)
@cython.final
cdef class _Attachments:
    """orjson's ``default`` on the binary send path: each bytes-like value becomes a
    ``{"_placeholder": true, "num": N}`` and is kept (bytes as they are, bytearray and
    memoryview copied once, as _deconstruct does), in the order orjson writes them, which is
    the order of the slow path's walk (lists in order, dicts in insertion order). Anything
    else orjson does not know (subclasses of those too) fails the fast path."""

    cdef list items

    def __call__(self, obj):
        cdef Py_ssize_t num
        cdef object t = type(obj)
        # Exact types only: bytes() of a subclass can run its __bytes__, Python code that
        # must run once per emit, and this path may still give the emit up to the full path.
        if t is bytes or t is bytearray or t is memoryview:
            num = len(self.items)
            self.items.append(obj if t is bytes else bytes(obj))
            return {"_placeholder": True, "num": num}
        raise TypeError(f"Type is not JSON serializable: {t.__name__}")


cdef bytes _EIO3_BINARY_TYPE = bytes((EIO_MESSAGE,))  # the type as a byte, not a digit
cdef double _INF = float("inf")
from decimal import Decimal as _Decimal


cdef str _event_name(object name):
    """A numeric event name (legal in socket.io-parser) as JavaScript's String() spells it."""
    cdef str text
    cdef double v
    if type(name) is int:
        return str(name)
    v = name
    if v != v:
        return "NaN"
    if v == _INF or v == -_INF:
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "0"
    # repr() is the shortest round-trip form, as JavaScript's; only the notation differs.
    text = repr(float(v))
    if "e" in text:
        if 1e-6 <= abs(v) < 1e21:
            text = format(_Decimal(text), "f")  # JavaScript writes these out in full
        else:
            mant, _, exp = text.partition("e")  # "1e-07" -> "1e-7"
            sign = exp[0] if exp[0] in "+-" else "+"
            text = mant + "e" + sign + exp.lstrip("+-").lstrip("0")
    if text.endswith(".0"):
        text = text[:-2]
    return text
