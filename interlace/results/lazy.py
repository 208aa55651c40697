"""Result attributes built on first access.

A fit computes its numbers (beta, the vcov matrix, the modes, the conditional SDs,
VarCorr's columns) as NumPy arrays; wrapping them in labelled pandas objects costs more
than the numbers on a small model (pandas 3 builds a string Index per object), and most
scripts read a few of them. ``build_result`` therefore hands the dataclass a
:class:`Deferred` (a closure over the arrays) for those attributes, and :class:`LazyField`,
installed on the class for each such field, turns it into the pandas object the first
time it is read and stores it in its place. Nothing numeric is deferred: the closures
hold arrays computed at the optimum, so a later evaluation of the objective at another
theta (profiles, bootstrap) cannot change what they return.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass
... class R:
...     x: object
>>> install_lazy_fields(R, ["x"])
>>> r = R(Deferred(lambda: [1, 2]))
>>> r.__dict__["x"].__class__.__name__, r.x, r.__dict__["x"]
('Deferred', [1, 2], [1, 2])
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

__all__ = ["Deferred", "LazyField", "install_lazy_fields", "peek", "resolve_all"]


class Deferred:
    """A value to build on first access (a zero-argument callable)."""

    __slots__ = ("build", "values")

    def __init__(self, build: Callable[[], Any], values: Any = None) -> None:
        self.build = build
        self.values = values  # the numbers underneath, when one array holds them


class LazyField:
    """A data descriptor storing the value in the instance ``__dict__`` under the
    field's own name (so pickles, ``vars()`` and older pickles see the usual keys)
    and resolving a :class:`Deferred` there on first read."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        d = obj.__dict__
        try:
            v = d[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        if isinstance(v, Deferred):
            v = v.build()
            d[self.name] = v
        return v

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


def install_lazy_fields(cls: type, names: Iterable[str]) -> None:
    """Put a :class:`LazyField` on ``cls`` for each of ``names`` (after @dataclass ran:
    its ``__init__`` assigns through the descriptor)."""
    for name in names:
        setattr(cls, name, LazyField(name))
    cls._lazy_fields = tuple(getattr(cls, "_lazy_fields", ())) + tuple(names)


def peek(obj: Any, name: str) -> Any:
    """``obj.name``'s numbers without building a deferred pandas object when the
    numbers are at hand (checks that only need the values)."""
    v = getattr(obj, "__dict__", {}).get(name)
    if isinstance(v, Deferred) and v.values is not None:
        return v.values
    return getattr(obj, name, None)


def resolve_all(obj: Any) -> None:
    """Build every deferred attribute of ``obj`` now (before pickling or copying)."""
    d = obj.__dict__
    for name in getattr(type(obj), "_lazy_fields", ()):
        if isinstance(d.get(name), Deferred):
            getattr(obj, name)
