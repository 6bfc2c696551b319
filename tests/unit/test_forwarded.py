"""Forwarded: a façade's one-line view of an attribute of one of its parts."""

from __future__ import annotations

import pytest

import fastsio
from fastsio._forwarded import Forwarded


class Part:
    def __init__(self) -> None:
        self.size = 1
        self.mode = "a"


class Facade:
    size = Forwarded[int]("part", "The part's size.")
    mode = Forwarded[str]("part", writable=True)

    def __init__(self) -> None:
        self.part = Part()


def test_a_forwarded_attribute_reads_the_parts_current_value() -> None:
    f = Facade()
    assert f.size == 1
    f.part.size = 5
    assert f.size == 5


def test_a_read_only_forwarded_attribute_refuses_assignment() -> None:
    f = Facade()
    with pytest.raises(AttributeError, match="size is read-only"):
        f.size = 2  # type: ignore[misc]
    assert f.part.size == 1


def test_a_writable_forwarded_attribute_sets_the_part() -> None:
    f = Facade()
    f.mode = "b"
    assert f.part.mode == "b" and "mode" not in vars(f)


def test_on_the_class_the_descriptor_carries_its_doc() -> None:
    assert isinstance(Facade.size, Forwarded)
    assert Facade.size.__doc__ == "The part's size."


def test_async_client_options_forward_to_its_parts() -> None:
    sio = fastsio.AsyncClient(strip_offsets=True, retries=2, ack_timeout=1.0)
    assert sio.strip_offsets is True and sio.retries == 2 and sio.connected is False
    sio.strip_offsets = False
    assert sio.lifecycle.strip_offsets is False
    with pytest.raises(AttributeError):
        sio.retries = 3  # type: ignore[misc]
