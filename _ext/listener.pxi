# The picows listener of one WebSocket link and the read cap in front of it: each frame's payload
# pointer goes straight to the Dispatcher; the link's owner hears of probes, errors and the close
# through ListenerHooks. Nothing here decodes a packet or knows about sessions.

cdef class EngineListener(WSListener):
    """picows listener for one WebSocket. Frames go straight to the Dispatcher.

    It reports to its owner through ListenerHooks (hooks.pxi), bound once. While ``probing``
    (the polling → websocket upgrade), frames go to the owner's ``on_probe_frame`` instead.
    """

    cdef public Dispatcher dispatcher
    cdef object _on_probe_frame, _on_listener_error, _on_ws_disconnected
    cdef public bint probing
    cdef public object transport
    cdef public bint failed
    cdef bytearray _frag
    cdef int _frag_type

    def __init__(self, Dispatcher dispatcher, owner, bint probing=False):
        self.dispatcher = dispatcher
        self._on_probe_frame = _hook(owner, "on_probe_frame", "ListenerHooks")
        self._on_listener_error = _hook(owner, "on_listener_error", "ListenerHooks")
        self._on_ws_disconnected = _hook(owner, "on_ws_disconnected", "ListenerHooks")
        self.probing = probing
        self.transport = None
        self.failed = False
        self._frag = None
        self._frag_type = 0

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        # picows fails it with its WSProtocolError on a framing error; close_sent() reports
        # that error itself, so it must never surface as an unretrieved exception.
        transport.disconnected_future.add_done_callback(_retrieve_exception)

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType msg_type = frame.msg_type
        cdef Py_ssize_t size
        if self.failed:
            return
        try:
            if self.probing:
                if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
                    self._on_probe_frame(self, frame.get_payload_as_bytes(),
                                         msg_type == WSMsgType.BINARY)
                return
            if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
                if self._frag is not None:
                    raise ProtocolError("data frame inside a fragmented message")
                if not frame.fin:
                    # picows refused a frame over the limit at its header; the message's
                    # accumulated size is checked here, before each fragment is copied.
                    self._check_size(frame.payload_size)
                    self._frag = bytearray(frame.get_payload_as_memoryview())
                    self._frag_type = msg_type
                    return
                # Borrowed memory: payload_ptr points into picows's read buffer and is valid
                # only during this call; everything kept is copied by the decoders.
                size = frame.payload_size
                if self.dispatcher.max_message_size > 0 and size > self.dispatcher.max_message_size:
                    self._check_size(size)
                if self.dispatcher._must_hold():
                    self.dispatcher._hold(msg_type == WSMsgType.BINARY, frame.payload_ptr, size)
                    if frame.last_in_buffer:
                        self.dispatcher._slice_count = 0
                    return
                if msg_type == WSMsgType.TEXT:
                    self.dispatcher._feed_text(frame.payload_ptr, size)
                else:
                    self.dispatcher._feed_binary(frame.payload_ptr, size)
                self.dispatcher._account()
                if frame.last_in_buffer:
                    self.dispatcher._slice_count = 0
                    if self.dispatcher._batch_handler is not None:
                        self.dispatcher._flush_batch()
            elif msg_type == WSMsgType.CONTINUATION:
                if self._frag is None:
                    raise ProtocolError("continuation frame without a first fragment")
                self._check_size(len(self._frag) + frame.payload_size)
                self._frag += frame.get_payload_as_memoryview()
                if frame.fin:
                    data = bytes(self._frag)
                    self._frag = None
                    if self.dispatcher._must_hold():
                        self.dispatcher._hold(self._frag_type == WSMsgType.BINARY,
                                        PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
                        return
                    if self._frag_type == WSMsgType.TEXT:
                        self.dispatcher._feed_text(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
                    else:
                        self.dispatcher._feed_binary(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            elif msg_type == WSMsgType.CLOSE:
                if self.dispatcher._ws is transport:
                    self.dispatcher.flush_writes()  # what was sent before goes out before the CLOSE
                transport.send_close(frame.get_close_code())
                transport.disconnect()
        except Exception as exc:
            # Never let an exception escape into picows: report it and stop reading this link.
            self.failed = True
            self._on_listener_error(self, exc)

    cdef int _check_size(self, Py_ssize_t size) except -1:
        if self.dispatcher.max_message_size > 0 and size > self.dispatcher.max_message_size:
            self._frag = None
            raise _too_large(size, self.dispatcher.max_message_size, "incoming message")
        return 0

    def close_sent(self):
        """picows sent a CLOSE on this link (ReadCap checks after every read, on_ws_disconnected
        at the end): a frame refused for its size, or any framing error picows found, is
        reported as the parse error it is.

        picows refuses a frame whose header announces more than max_frame_size (which is
        max_message_size) before reading its payload, sends CLOSE 1009 and disconnects a
        moment later; the caller stops reading at once, so the payload is never buffered.
        """
        cdef WSTransport transport = <WSTransport>self.transport
        cdef WSCloseInfo sent
        if self.failed or transport is None or transport.close_handshake is None:
            return
        sent = transport.close_handshake.sent
        if sent is None or transport.close_handshake.recv_then_sent \
                or sent.code == WSCloseCode.OK:
            return  # no close sent, an answer to the server's, or our own clean close
        self.failed = True
        self._frag = None
        # picows fails disconnected_future with its WSProtocolError: reported here instead.
        transport.disconnected_future.add_done_callback(_retrieve_exception)
        if sent.code == WSCloseCode.MESSAGE_TOO_BIG:
            exc = _too_large(
                _announced_size(sent.reason), self.dispatcher.max_message_size, "incoming message")
        else:
            # picows found a framing error (reserved opcode, oversized control frame, ...).
            exc = ProtocolError(f"WebSocket protocol error ({int(sent.code)}): {sent.reason}")
        self._on_listener_error(self, exc)

    cpdef pause_writing(self):
        # The transport's write buffer crossed its high-water mark (picows passes it on).
        if self.transport is not None:
            self.dispatcher._on_writing(<WSTransport>self.transport, True)

    cpdef resume_writing(self):
        if self.transport is not None:
            self.dispatcher._on_writing(<WSTransport>self.transport, False)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.close_sent()
        self._on_ws_disconnected(self)


def _retrieve_exception(future):
    if not future.cancelled():
        future.exception()


cdef Py_ssize_t _announced_size(str reason):
    # picows's close reason ends in "<announced> > <max_frame_size>"; -1 if it does not.
    cdef str head = reason.rpartition(" > ")[0].rpartition(" ")[2]
    return int(head) if head.isdigit() and len(head) < 19 else -1


cdef class _ProtocolBase:
    pass


cdef class ReadCap(_ProtocolBase, asyncio.BufferedProtocol):
    """A buffered protocol in front of picows's: no single socket read exceeds ``cap`` bytes
    (0: no cap), and no read at all follows a CLOSE that picows sent.

    picows doubles its read buffer whenever one read fills 90% of it, and never shrinks it.
    Under a firehose that outruns the handlers, every read finds the kernel queue full, so the
    buffer grows towards the socket's (autotuned, multi-megabyte) receive queue, and so does
    the copy the core holds while reading is paused. Capping each read keeps picows's buffer at
    about twice the cap; the TCP window is left alone, so a long-RTT link keeps its throughput.
    A frame larger than the cap still grows the buffer as far as that frame needs.
    """

    cdef object inner
    cdef object _get_buffer
    cdef object _buffer_updated
    cdef readonly Py_ssize_t cap
    cdef WSTransport _ws
    cdef EngineListener _listener

    def __init__(self, inner, Py_ssize_t cap, WSTransport ws=None,
                 EngineListener listener=None):
        if cap != 0 and cap < 4096:
            raise ValueError("the read cap must be 0 (none) or at least 4096 bytes")
        self.inner = inner
        self.cap = cap
        self._get_buffer = inner.get_buffer
        self._buffer_updated = inner.buffer_updated
        self._ws = ws
        self._listener = listener

    # Both run once per socket read, around picows's own: the loop's arguments are passed on
    # as the objects they are (no unboxing and boxing again: an int allocated per read).
    def get_buffer(self, sizehint):
        cdef object mv = self._get_buffer(sizehint)
        if self.cap and len(mv) > self.cap:
            return mv[:self.cap]
        return mv

    def buffer_updated(self, nbytes):
        self._buffer_updated(nbytes)
        if self._ws is not None and self._ws.is_close_frame_sent:
            # Once a CLOSE went out nothing more is wanted from this link; picows keeps reading
            # until its delayed disconnect, and would buffer a refused frame's payload.
            self._ws.underlying_transport.pause_reading()
            if self._listener is not None:
                self._listener.close_sent()

    def connection_made(self, transport):
        self.inner.connection_made(transport)

    def connection_lost(self, exc):
        self.inner.connection_lost(exc)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()
