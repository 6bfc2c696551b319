"""Hypothesis strategies shared by the codec tests, and the comparisons they assert with."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st

from fastsio._ext._core import ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT

# orjson refuses lone surrogates when encoding (python's json escapes them): keep them out of
# generated *outgoing* data; tests/unit/test_codec_errors.py covers them on the decode side.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
KEYS = TEXT.filter(lambda k: k != "_placeholder")
# Namespaces: "/" + anything but the comma (no escape exists in the format) and "?" (both
# decoders cut a query string off the namespace).
NSP = st.one_of(
    st.just("/"),
    st.sampled_from(["/admin", "/chat", "/a-b_c.d", "/ünï", "/日本", "/emoji🎉", "/12", "//x"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=",?"),
            min_size=1, max_size=10).map(lambda s: "/" + s),
)


PLAIN_TYPES = (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR)


def draw_packet(
    draw: Any,
    types: Any,
    obj: st.SearchStrategy[Any],
    values: st.SearchStrategy[Any],
    ack_ids: st.SearchStrategy[int],
    max_args: int = 4,
) -> tuple[int, str, Any, int | None]:
    """(type, nsp, data, id) of a valid packet of one of ``types``: ``obj`` is the payload of
    CONNECT and CONNECT_ERROR, ``values`` the arguments of events and acks."""
    t = draw(st.sampled_from(types))
    nsp = draw(NSP)
    ack_id = None
    if t == CONNECT:
        data = draw(st.one_of(st.none(), obj))
    elif t == DISCONNECT:
        data = None
    elif t == CONNECT_ERROR:
        data = draw(st.one_of(TEXT, obj))
    elif t in (EVENT, BINARY_EVENT):
        data = [draw(TEXT)] + draw(st.lists(values, max_size=max_args))
        ack_id = draw(st.one_of(st.none(), ack_ids))
    else:
        data = draw(st.lists(values, max_size=max_args))
        ack_id = draw(ack_ids)
    return t, nsp, data, ack_id


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid seed with a few byte-level edits: flips, insertions, deletions, truncation."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == 2:
            del data[pos:pos + draw(st.integers(1, 3))]
        else:
            del data[pos:]
    return bytes(data)


def same(a: Any, b: Any) -> bool:
    """Structural equality that also tells bool from int from float and bytes from str."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def has_bytes(obj: Any) -> bool:
    """Whether binary data (bytes, bytearray, memoryview) is anywhere in ``obj``."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(has_bytes(x) for x in obj)
    if isinstance(obj, dict):
        return any(has_bytes(x) for x in obj.values())
    return False


@contextmanager
def fails_fast(seconds: float = 0.5, peak_bytes: int = 256 * 1024) -> Iterator[None]:
    """The block runs within ``seconds`` and allocates at most ``peak_bytes`` at its peak: a
    decoder refuses a huge declared length before allocating or waiting for it."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < seconds
    assert peak < peak_bytes
