"""FrameSpec: everything predict needs to rebuild X, the term blocks and the offset on new data.

formulaic's ``ModelSpec`` objects are kept, so factor levels, contrasts and
stateful transforms (``center(x)``, ``scale(x)``) are the training ones. For
a fixed part of plain terms the spec is a ``LazyModelSpec`` (formulaic runs on
the training columns the first time new data are transformed).

Example
-------
>>> import pandas as pd
>>> from interlace.model_frame import build_model_frame
>>> df = pd.DataFrame({"y": [0.0, 1, 3, 2, 5, 4], "x": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc")})
>>> mf = build_model_frame("y ~ x + (1 | g)", df, family="poisson")
>>> X, blocks, off = mf.spec.transform(pd.DataFrame({"x": [2.0], "g": ["b"]}))
>>> X.tolist(), blocks[0][0].tolist()
([[1.0, 2.0]], [1])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import to_pandas_columns
from .fixed import LazyModelSpec, evaluate_expression
from .terms import TermSpec

__all__ = ["FrameSpec"]


@dataclass
class FrameSpec:
    """The training-time recipe of a model frame (see ``transform``)."""

    formula: str
    fixed: str
    fixed_spec: Any
    keep_columns: list[int]
    fe_names: list[str]
    terms: list[TermSpec]
    formula_offsets: list[str] = field(default_factory=list)
    offset_expr: str | None = None
    offset_columns: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    context: Any = None  # the formula namespace (FormulaEnv): the caller's variables the formula used
    disp_spec: Any = None
    zi_spec: Any = None

    def stateful_parts(self) -> list[str]:
        """The parts of the model (fixed part, random-effect left sides, offsets) that call
        a stateful transform (``scale(x)``): their state comes from the training rows.

        >>> import pandas as pd
        >>> from interlace.model_frame import build_model_frame
        >>> df = pd.DataFrame({"y": [0.0, 1, 3, 2, 5, 4], "x": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc")})
        >>> build_model_frame("y ~ scale(x) + (1 | g)", df, family="poisson").spec.stateful_parts()
        ['scale(x)']
        """
        from .namespace import stateful_calls

        texts = [self.fixed] + [t.lhs for t in self.terms] + [f"offset({o})" for o in self.formula_offsets]
        if self.offset_expr:
            texts.append(self.offset_expr)
        return [t for t in texts if stateful_calls(t)]

    def transform(
        self, newdata: Any, allow_new_levels: bool = False, offset: Any = None
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """``(X, [(codes, z) per term], offset)`` for ``newdata`` (the response is not needed).

        ``codes`` is -1 for a level not seen in training when
        ``allow_new_levels`` is True; otherwise such a level is a ValueError
        naming the factor. ``offset`` (an array, a column name or an
        expression) replaces the training ``offset=`` argument; the formula's
        ``offset()`` terms are always evaluated on ``newdata``.
        """
        need = list(self.columns)
        if offset is None and self.offset_expr is not None:
            need += self.offset_columns
        if isinstance(offset, str):
            from ..data import frame_columns, identifiers

            have = set(frame_columns(newdata, "newdata"))
            need += [c for c in ([offset] if offset in have else identifiers(offset, have))]
        frame = to_pandas_columns(newdata, need, arg="newdata")
        if offset is not None and not isinstance(offset, str):
            offset = np.asarray(offset, dtype=np.float64).reshape(-1)
            if offset.shape[0] != len(frame):
                raise ValueError(f"offset has length {offset.shape[0]}, but newdata has {len(frame)} rows")
        return self.design(frame, allow_new_levels, offset=offset)

    def design(
        self, frame: Any, allow_new_levels: bool = False, which: list[int] | None = None, offset: Any = None,
        unseen_message: Any = None,
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """``(X, [(codes, z) per term in which], offset)`` of a pandas ``frame`` holding the columns.

        The one place a design is rebuilt from new rows (``transform`` and
        ``predict``). ``which`` picks random-effect terms (all by default);
        ``offset`` is an expression, an array of the frame's length, or None
        (then the training ``offset=`` expression, if any). ``unseen_message(fixed_spec,
        frame)`` may name the column and level of an unseen fixed-effect level.
        """
        from formulaic.errors import DataMismatchWarning

        m = len(frame)
        fixed_spec = self.fixed_spec
        if isinstance(fixed_spec, LazyModelSpec):
            fixed_spec = fixed_spec.spec  # built from the training frame outside the warning filter below
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            try:
                mm = fixed_spec.get_model_matrix(frame)
            except DataMismatchWarning as exc:
                msg = unseen_message(fixed_spec, frame) if unseen_message is not None else None
                raise ValueError(msg or f"newdata has levels of a fixed-effect factor not seen in training: {exc}") \
                    from exc
        X = np.asarray(mm, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[0] != m:
            X = np.broadcast_to(X, (m, X.shape[1])).copy()
        X = np.ascontiguousarray(X[:, self.keep_columns])
        blocks = []
        for t in (self.terms if which is None else [self.terms[i] for i in which]):
            z = t.z_for(frame)
            if z.shape[0] != m:
                z = np.broadcast_to(z, (m, z.shape[1])).copy()
            blocks.append((t.codes_for(frame, allow_new_levels), z))
        off = np.zeros(m)
        for expr in self.formula_offsets:
            off = off + evaluate_expression(expr, frame, self.context, "offset")
        if isinstance(offset, str):
            off = off + evaluate_expression(offset, frame, self.context, "offset")
        elif offset is not None:
            off = off + offset
        elif self.offset_expr is not None:
            off = off + evaluate_expression(self.offset_expr, frame, self.context, "offset")
        return X, blocks, off
