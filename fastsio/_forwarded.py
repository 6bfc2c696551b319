"""Attributes a façade reads from one of its parts, declared in one line each.

Owns the ``Forwarded`` descriptor only; must not know the classes that use it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Forwarded(Generic[T]):
    """``obj.<name>`` is ``obj.<part>.<name>``: a façade's view of an attribute of one of its
    parts (AsyncClient's namespace life cycle and outbox; the wrapped client of a sync façade).
    Read-only unless ``writable``; ``doc`` is what ``help()`` shows."""

    def __init__(self, part: str, doc: str | None = None, *, writable: bool = False) -> None:
        self._part = part
        self._writable = writable
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Forwarded[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else getattr(getattr(obj, self._part), self._name)

    def __set__(self, obj: object, value: T) -> None:
        if not self._writable:
            raise AttributeError(f"{self._name} is read-only")
        setattr(getattr(obj, self._part), self._name, value)
