# cython: language_level=3
"""fastsio's compiled protocol core: codecs, binary attachments, the ack table, dispatch."""

cimport cython
from cpython.object cimport PyObject_Call
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_New, PyDict_Next, PyDict_Size
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.list cimport PyList_GET_SIZE, PyList_New
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.unicode cimport (PyUnicode_AsUTF8AndSize, PyUnicode_DATA, PyUnicode_DecodeUTF8,
                              PyUnicode_GET_LENGTH, PyUnicode_New)
from cpython.set cimport PySet_Contains
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from picows.picows cimport WSCloseCode, WSCloseInfo, WSFrame, WSListener, WSMsgType, WSTransport

import asyncio
import base64
from json import dumps as _stdlib_json_dumps
from json import loads as _stdlib_json_loads
import binascii
import datetime
import os
import reprlib
import struct

import msgpack
import orjson

from fastsio.exceptions import (
    BufferFullError,
    DisconnectedError,
    PayloadTooLargeError,
    ProtocolError,
)
from fastsio.exceptions import TimeoutError as _AckTimeoutError

cdef object _EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

include "consts.pxi"
include "binary.pxi"
include "strcache.pxi"
include "jsondecode.pxi"
include "mpdecode.pxi"
include "codec.pxi"
include "mpencode.pxi"
include "eio3.pxi"
include "hooks.pxi"
include "acks.pxi"
include "wswriter.pxi"
include "dispatcher.pxi"
include "listener.pxi"
