"""Fitting on a Dask DataFrame: the same ``interlace.glmer`` call, with the
rows kept on the cluster.

``interlace.glmer(formula, ddf, family)`` routes here when ``ddf`` is a Dask
DataFrame (or a narwhals LazyFrame over one). Every pass over the rows is a
sum, so each partition runs the engine's numba kernels on its own rows and
the driver adds the results; the blocked Cholesky, the solves and the
optimizer run on the client. See ``docs/cluster.md``.

This module imports nothing from Dask at import time: the in-memory path
(``is_dask_frame`` on a pandas frame) never loads it.

Example
-------
>>> import pandas as pd
>>> is_dask_frame(pd.DataFrame({"a": [1]}))
False
"""

from __future__ import annotations

from typing import Any

from interlace.distributed.frames import is_dask_frame, native_dask

__all__ = ["is_dask_frame", "native_dask", "glmer_dask"]


def glmer_dask(*args: Any, **kwargs: Any):
    """``glmer`` on a Dask DataFrame (see :func:`interlace.distributed.fit.glmer_dask`)."""
    import importlib.util

    missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"fitting on a Dask DataFrame needs {' and '.join(missing)}: "
                          "pip install 'interlace[dask]'")
    from interlace.distributed.fit import glmer_dask as _fit

    return _fit(*args, **kwargs)
