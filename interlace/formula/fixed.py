"""The fixed-effects part: formulaic's model matrix, then lme4's rank check.

formulaic builds X with treatment contrasts and R-like term order; aliased
columns that survive its structural full-rank coding (exact collinearity in
the numbers) are found with a pivoted QR in R's (LINPACK ``dqrdc2``) manner:
a column whose residual after the earlier kept columns is negligible is
dropped, so earlier columns are kept.

Example
-------
>>> import numpy as np
>>> X = np.array([[1.0, 1.0, 2.0], [1.0, 2.0, 4.0], [1.0, 3.0, 6.0]])
>>> aliased_columns(X)
[2]
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["build_fixed", "fast_fixed", "formulaic_matrix", "BoundSpec", "LazyModelSpec", "aliased_columns",
           "evaluate_expression"]


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns linearly dependent on earlier ones (R's ``qr(X, tol = 1e-7)``).

    dqrdc2's criterion: column j is aliased when the norm of its residual after
    the earlier kept columns is at most ``tol`` times its own norm. Householder
    QR gives those residual norms as ``|R[j, j]|``; after each aliased column is
    found it is removed and the QR redone, so a noise direction never enters
    the basis (dqrdc2 moves such columns to the end for the same reason).
    """
    X = np.asarray(X, dtype=np.float64)
    if _clearly_full_rank(X):
        return []
    cols = list(range(X.shape[1]))
    dropped: list[int] = []
    norms = np.linalg.norm(X, axis=0) if X.size else np.zeros(X.shape[1])
    for j in list(cols):
        if norms[j] == 0.0:
            dropped.append(j)
            cols.remove(j)
    while cols:
        A = X[:, cols]
        if A.shape[0] >= A.shape[1]:
            R = np.linalg.qr(A, mode="r")
            diag = np.abs(np.diag(R))
        else:  # more columns than rows: the trailing ones are aliased regardless
            R = np.linalg.qr(A[:, : A.shape[0]], mode="r")
            diag = np.concatenate([np.abs(np.diag(R)), np.zeros(A.shape[1] - A.shape[0])])
        bad = np.nonzero(diag <= tol * norms[cols])[0]
        if bad.size == 0:
            break
        j = cols[int(bad[0])]
        dropped.append(j)
        cols.remove(j)
    return sorted(dropped)


class LazyModelSpec:
    """A formulaic ``ModelSpec`` built on first use, for X made by the fast path.

    The fast path does not run formulaic, but predict needs its ``ModelSpec``
    (levels, contrasts, the unseen-level warning). Building it costs more than
    the whole fast path, and most fits never predict, so the training frame
    (only the used columns; our own copy) is kept and formulaic runs on it the
    first time anything but ``column_names`` is asked for. The frame is
    released once the spec exists.

    Example
    -------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "f": ["b", "a", "b"]})
    >>> X, names, spec = build_fixed("x + f", df, {})
    >>> spec.column_names, spec.get_model_matrix(df.head(1)).shape
    (('Intercept', 'x', 'f[T.b]'), (1, 3))
    """

    __slots__ = ("_text", "_frame", "_names", "_spec")

    def __init__(self, text: str, frame: pd.DataFrame, names: list[str]) -> None:
        # No evaluation context is kept: plain terms read only columns (and a
        # context of modules would not pickle).
        self._text = text
        self._frame = frame
        self._names = tuple(names)
        self._spec = None

    @property
    def spec(self) -> Any:
        """The formulaic ``ModelSpec`` (built from the training frame on first use)."""
        if self._spec is None:
            from formulaic import model_matrix

            from .namespace import RMaterializer

            frame = self._frame
            if not isinstance(frame, pd.DataFrame):  # fastframe's copied columns
                frame = frame.frame()
            with np.errstate(all="ignore"):
                mm = model_matrix(self._text, frame, na_action="ignore", materializer=RMaterializer)
            self._spec = mm.model_spec
            self._frame = None
        return self._spec

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def get_model_matrix(self, data: Any, **kwargs: Any) -> Any:
        return self.spec.get_model_matrix(data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here; never for the slots (so
        # pickling and copying, which probe dunders before __init__, are safe).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        return f"LazyModelSpec({self._text!r}, built={self._spec is not None})"


_KEYWORDS = frozenset(__import__("keyword").kwlist)


def _categorical_levels(s: pd.Series) -> tuple[np.ndarray, list[Any]] | None:
    """(codes, levels) of a column formulaic treats as categorical, in its level order.

    formulaic encodes ``object``/``str`` columns through ``astype("category")``
    (levels sorted, which is ``factorize(sort=True)``) and keeps a pandas
    categorical's own category order, unused categories included. None for
    anything this fast path does not reproduce exactly.
    """
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        cats = dt.categories
        if len(cats) == 0 or dt.ordered:  # ordered: R's contr.poly, built by formulaic (RMaterializer)
            return None
        if cats.dtype.kind not in "iu" and not (cats.dtype == "str" or pd.api.types.infer_dtype(cats) == "string"):
            return None
        return np.asarray(s.array.codes, dtype=np.int64), cats.tolist()  # (list(cats) iterates an Arrow Index: slow)
    if dt == "str" or dt == object:
        if dt == object and pd.api.types.infer_dtype(s, skipna=True) != "string":
            return None
        codes, uniq = pd.factorize(s, sort=True, use_na_sentinel=True)
        if len(uniq) == 0:
            return None
        return np.asarray(codes, dtype=np.int64), list(uniq)
    return None


def fast_fixed(text: str, frame: pd.DataFrame, context: dict | None = None) -> tuple[np.ndarray, list[str]] | None:
    """X and its names for a formula of plain terms, exactly as formulaic builds them; else None.

    Handled: ``+``-separated ``1``, ``0``/``-1`` (the last intercept token
    wins, as in formulaic), numeric (non-bool numpy dtype) columns and
    categorical columns (``object`` strings, pandas ``str`` or a categorical of
    strings/integers) named by a plain identifier. Term order is as written
    (all terms have degree one), repeats are dropped, the intercept comes
    first. Categoricals get treatment contrasts ``f[T.level]``, except that
    without an intercept the first categorical is coded in full ``f[level]``
    (formulaic's full-rank rule). Anything else returns None and formulaic runs.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "f": ["b", "a", "c"]})
    >>> X, names = fast_fixed("0 + f + x", df)
    >>> names, X[0].tolist()
    (['f[a]', 'f[b]', 'f[c]', 'x'], [0.0, 1.0, 0.0, 1.0])
    """
    context = context or {}
    intercept = True
    terms: list[str] = []
    for piece in text.split("+"):
        p = piece.strip()
        if p == "1":
            intercept = True
        elif p in ("0", "-1"):
            intercept = False
        elif p.isidentifier() and p not in _KEYWORDS and p not in context and p != "Intercept":
            # (a column named "Intercept" collides with formulaic's intercept column name)
            if p not in terms:
                terms.append(p)
        else:
            return None
    if any(t not in frame.columns for t in terms):
        return None
    n = len(frame)
    cols: list[tuple[str, Any]] = []  # ("num", values) or ("cat", (codes, levels, full))
    width = int(intercept)
    full_done = intercept
    for t in terms:
        s = frame[t]
        dt = s.dtype
        if isinstance(dt, np.dtype) and dt.kind in "iuf":
            cols.append(("num", s))
            width += 1
            continue
        cat = _categorical_levels(s)
        if cat is None:
            return None
        codes, levels = cat
        full = not full_done  # no intercept: the first categorical spans it
        full_done = True
        cols.append(("cat", (codes, levels, full)))
        width += len(levels) - (0 if full else 1)
    X = np.zeros((n, width), dtype=np.float64)
    names: list[str] = []
    j = 0
    if intercept:
        X[:, 0] = 1.0
        names.append("Intercept")
        j = 1
    rows = np.arange(n)
    for t, (kind, val) in zip(terms, cols):
        if kind == "num":
            X[:, j] = val.to_numpy(dtype=np.float64)
            names.append(t)
            j += 1
            continue
        codes, levels, full = val
        drop = 0 if full else 1  # treatment contrasts drop the first level
        sel = codes >= drop
        X[rows[sel], j + codes[sel] - drop] = 1.0
        names += [f"{t}[{lev}]" for lev in levels] if full else [f"{t}[T.{lev}]" for lev in levels[1:]]
        j += len(levels) - drop
    return X, names


def _clearly_full_rank(X: np.ndarray) -> bool:
    """True when no column can be aliased, decided from the Cholesky factor
    of X'X (p x p) instead of a QR of the n x p matrix (5x faster at 100k rows).

    The Cholesky diagonal of X'X equals |R[j, j]| of X's QR. Forming X'X and
    factoring it perturbs R[j, j]^2 by about (n + p) eps ||x_j||^2, so a ratio
    R[j, j] / ||x_j|| above 1e-4 is certainly far above the 1e-7 tolerance;
    anything closer goes to the QR."""
    n, p = X.shape
    if p == 0 or n < p or n * p < 2000:
        return False
    G = X.T @ X
    d = np.diag(G).copy()
    if not (np.all(d > 0) and np.all(np.isfinite(G))):
        return False
    try:
        L = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.diag(L) > 1e-4 * np.sqrt(d)))


class BoundSpec:
    """A formulaic ``ModelSpec`` with the formula namespace it was built in.

    New data are evaluated with the same names (numpy, the transforms, the
    caller's variables the formula used); everything else is the ModelSpec's.
    Pickles (the namespace keeps only the caller's values).
    """

    __slots__ = ("spec", "env")

    def __init__(self, spec: Any, env: Any) -> None:
        self.spec = spec
        self.env = env

    def get_model_matrix(self, data: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("context", self.env.mapping())
        return self.spec.get_model_matrix(data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in BoundSpec.__slots__:
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "env": self.env}

    def __setstate__(self, state: dict) -> None:
        self.spec = state["spec"]
        self.env = state["env"]

    def __repr__(self) -> str:
        return f"BoundSpec({self.spec.formula!r}, {self.env!r})"


def _error_text(exc: BaseException) -> str:
    """formulaic's message without its nested prefixes and coloured source excerpt."""
    text = str(exc).split("\n")[0]
    m = re.search(r"\[(\w+Error): (.*)\]\s*$", text)
    return m.group(2) if m else text


def _check_clash(mm: Any, text: str, what: str) -> None:
    """Refuse two generated columns with one name (a column named like a generated
    term, e.g. ``Intercept`` or ``f[T.b]``): formulaic would keep only one."""
    structure = getattr(mm.model_spec, "structure", None) or []
    names = [c for st in structure for c in st.columns]
    if len(names) == mm.shape[1]:
        return
    seen: dict[str, int] = {}
    for c in names:
        seen[c] = seen.get(c, 0) + 1
    dup = [c for c, k in seen.items() if k > 1]
    raise ValueError(
        f"{what} {text!r} generates the column name(s) {', '.join(map(repr, dup))} twice: a data column is named "
        "like a term interlace generates; rename the column")


def formulaic_matrix(text: str, frame: pd.DataFrame, env: Any, what: str, full: pd.DataFrame | None = None) -> Any:
    """formulaic's model matrix of ``text`` on ``frame`` with R's semantics.

    ``^`` is a power inside calls, ordered factors get ``contr.poly``, names
    come from the formula namespace (``env``). With ``full`` (the rows before
    missing values were dropped), stateful transforms (``scale``, ``center``,
    ``poly``, splines) take their state from the whole data, as R's
    ``model.frame`` evaluates terms before ``na.action``; factor levels still
    come from the rows kept (R's ``drop.unused.levels``).
    """
    import copy

    from formulaic import ModelSpec, model_matrix

    from .namespace import RMaterializer, r_powers

    text = r_powers(text)
    ctx = env.mapping()
    with np.errstate(all="ignore"):  # non-finite values are reported by the caller
        if full is not None and len(full) != len(frame) and "(" in text:
            mm0 = model_matrix(text, full, na_action="ignore", context=ctx, materializer=RMaterializer)
            state = copy.deepcopy(dict(mm0.model_spec.transform_state))
            if state:
                spec = ModelSpec.from_spec(text, na_action="ignore", materializer=RMaterializer)
                spec = spec.update(transform_state=state)
                mm = spec.get_model_matrix(frame, context=ctx)
                _check_clash(mm, text, what)
                return mm
        mm = model_matrix(text, frame, na_action="ignore", context=ctx, materializer=RMaterializer)
    _check_clash(mm, text, what)
    return mm


def build_fixed(fixed: str, frame: pd.DataFrame, context: Any,
                full: pd.DataFrame | None = None) -> tuple[np.ndarray, list[str], Any]:
    """X (float64, n x p), its formulaic column names and the formulaic ``ModelSpec``.

    Formulas of plain terms take ``fast_fixed`` (the spec is then a
    :class:`LazyModelSpec`); everything else goes through formulaic
    (:func:`formulaic_matrix`, with R's semantics; ``full`` is the frame before
    rows with missing values were dropped).
    """
    from .namespace import as_env

    env = as_env(context)
    text = fixed.strip() or "1"
    fast = fast_fixed(text, frame, env.caller)
    if fast is not None:
        X, names = fast
        return X, names, LazyModelSpec(text, frame, names)
    try:
        mm = formulaic_matrix(text, frame, env, "fixed-effects formula", full)
    except ValueError as exc:
        if "generates the column name" in str(exc):
            raise
        raise ValueError(f"cannot build the fixed-effects matrix from {text!r}: {_error_text(exc)}") from exc
    except Exception as exc:
        raise ValueError(f"cannot build the fixed-effects matrix from {text!r}: {_error_text(exc)}") from exc
    X = np.asarray(mm, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):
        X = np.broadcast_to(X, (len(frame), X.shape[1])).copy()
    return np.ascontiguousarray(X), [str(c) for c in mm.columns], BoundSpec(mm.model_spec, env)


_ARITH_TOKEN = re.compile(r"\s*(?:([^\W\d]\w*)|\d+\.?\d*(?:[eE][+-]?\d+)?|\*\*|[-+*/()])")


def _numeric_column(frame: pd.DataFrame, name: str, what: str) -> np.ndarray:
    s = frame[name]
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iufb":
        # numpy columns hold no missing marker but NaN; astype gives our own array
        return s.to_numpy().astype(np.float64)
    if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
        raise TypeError(f"{what} column {name!r} must be numeric, got dtype {s.dtype}")
    return np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


@functools.lru_cache(maxsize=256)
def _parse_arithmetic(expr: str) -> tuple[tuple[str, ...], Any] | None:
    """(names read, compiled code) of plain arithmetic, or None; cached (responses repeat)."""
    pos, names = 0, []
    while pos < len(expr):
        m = _ARITH_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            return None
        if m.group(1):
            names.append(m.group(1))
        pos = m.end()
    if not names:
        return None
    try:
        code = compile(expr.strip(), "<expr>", "eval")
    except SyntaxError:
        return None
    return tuple(names), code


def _fast_arithmetic(expr: str, frame: pd.DataFrame, what: str) -> np.ndarray | None:
    """Plain arithmetic of numeric columns and numbers (``size - incidence``) without formulaic.

    Gives what formulaic's ``I(...)`` gives, in a fraction of the time; anything
    else (functions, attributes, non-numeric columns) returns None.
    """
    parsed = _parse_arithmetic(expr)
    if parsed is None:
        return None
    names, code = parsed
    if any(nm not in frame.columns for nm in names):
        return None
    env = {}
    for nm in names:
        if nm in env:
            continue
        s = frame[nm]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            return None
        env[nm] = _numeric_column(frame, nm, what)
    try:
        with np.errstate(all="ignore"):
            out = eval(code, {"__builtins__": {}}, env)  # noqa: S307
    except Exception:
        return None
    out = np.asarray(out, dtype=np.float64)
    return np.broadcast_to(out, (len(frame),)).copy() if out.ndim == 0 else out


def evaluate_expression(expr: str, frame: pd.DataFrame, context: Any, what: str,
                        full: pd.DataFrame | None = None) -> np.ndarray:
    """A numeric vector from a column name or an expression (``log(t)``, ``t^2``).

    ``^`` is a power (R's reading of an expression); the expression is checked
    against the formula namespace (see :mod:`interlace.formula.namespace`)
    before it runs. ``full``: the rows before missing values were dropped, for
    stateful transforms (``scale(x)``).
    """
    from .namespace import as_env, check_expression, r_powers

    name = expr.strip().strip("`")
    if name in frame.columns:
        return _numeric_column(frame, name, what)
    env = as_env(context)
    expr = r_powers(expr, everywhere=True)
    check_expression(expr, frame.columns, env, what)
    fast = _fast_arithmetic(expr, frame, what)
    if fast is not None:
        return fast
    try:
        mm = formulaic_matrix(f"0 + I({expr})", frame, env, what, full)
    except Exception as exc:
        raise ValueError(f"cannot evaluate {what} {expr!r}: {_error_text(exc)}") from exc
    v = np.asarray(mm, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] != 1:
        raise ValueError(f"{what} {expr!r} must evaluate to one numeric column, got {v.shape[1]}")
    v = v.reshape(-1)
    if v.shape[0] != len(frame):
        v = np.broadcast_to(v, (len(frame),)).copy()
    return v
