"""Is this a Dask frame? Answered without importing Dask (the in-memory path never loads it).

Example
-------
>>> import pandas as pd
>>> is_dask_frame(pd.DataFrame({"a": [1]}))
False
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_dask_frame", "native_dask"]


def native_dask(data: Any) -> Any:
    """The Dask DataFrame behind ``data`` (itself, or a narwhals frame's native object)."""
    mod = type(data).__module__.split(".")[0]
    if mod == "narwhals":
        import narwhals as nw

        try:
            return nw.to_native(data)
        except TypeError:
            return data
    return data


def is_dask_frame(data: Any) -> bool:
    """True for a Dask DataFrame (or a narwhals frame wrapping one), without importing Dask."""
    obj = native_dask(data)
    mod = type(obj).__module__.split(".")[0]
    return mod in ("dask", "dask_expr") and hasattr(obj, "npartitions") and hasattr(obj, "columns")
