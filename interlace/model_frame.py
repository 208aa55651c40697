"""The parse stage's output: a validated, numeric model frame.

``ModelFrame`` is the only thing the objective stage sees of the user's data
(lme4's ``glFormula`` result). Random-effect terms are typed blocks
(MixedModels.jl's ``ReMat``): per-row level codes plus the per-row covariates
of the bar's left side. Z is never formed as a dense n x q matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interlace.formula.fastframe import fast_model_frame
from interlace.model.re_term import ReTerm  # re-exported: the parse stage's term


@dataclass
class ModelFrame:
    """Numeric model data after parsing, NA handling and validation.

    Attributes
    ----------
    y: float64 (n,) response (binomial: proportion of successes).
    X: float64 (n, p) fixed-effects matrix, aliased columns already dropped.
    fe_names: the p column names in formulaic style (``Intercept``, ``period[T.2]``).
    terms: random-effect terms ordered by decreasing number of levels (stable).
    weights: float64 (n,) prior weights (binomial ``cbind``: the trial counts).
    offset: float64 (n,) total offset (formula ``offset()`` plus ``offset=``).
    response_name: the response's text as written in the formula.
    formula: the full formula text as given (with bars).
    spec: object able to rebuild X, the terms and the offset from new data
        (``spec.transform(newdata, allow_new_levels=...)``); see formula/.
    row_index: positions (in the caller's frame) of the rows used.
    n_dropped: rows dropped for missing values.
    dropped_columns: aliased fixed-effect columns dropped.
    messages: warnings emitted while building the frame (also warned).
    disp_X / disp_names: dispersion sub-model matrix (None without dispformula).
    zi_X / zi_names: zero-inflation sub-model matrix (None without ziformula).
    zi_terms / disp_terms: random-effect terms of ``ziformula`` / ``dispformula``
        (``~ x + (1 | site)``; empty without bars), ordered as the conditional ones.
    """

    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    terms: list[ReTerm]
    weights: np.ndarray
    offset: np.ndarray
    response_name: str = "y"
    formula: str = ""
    spec: Any = None
    row_index: np.ndarray | None = None
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    disp_X: np.ndarray | None = None
    disp_names: list[str] | None = None
    zi_X: np.ndarray | None = None
    zi_names: list[str] | None = None
    zi_terms: list[ReTerm] = field(default_factory=list)
    disp_terms: list[ReTerm] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def covariate_summary(self) -> dict | None:
        """emmeans' reference grid per fixed-part column (results/align.py), computed on
        first use from the data the fit was given (R's emmeans recovers it from the call)."""
        d = self.__dict__
        if "covariate_summary" not in d:
            data = d.get("_covariate_data")
            if data is None:
                return None
            from interlace.results.align import covariate_summary

            try:
                d["covariate_summary"] = covariate_summary(self, data)
            except Exception:  # the reference grid of emmeans is optional; the fit is not
                d["covariate_summary"] = None
        return d["covariate_summary"]

    @covariate_summary.setter
    def covariate_summary(self, value: dict | None) -> None:
        self.__dict__["covariate_summary"] = value


# The formula namespace without the caller's variables (numpy, the transforms):
# what partition workers evaluate responses and weights with. build_model_frame
# makes its own FormulaEnv holding the caller's variables the formula uses.
_CONTEXT: dict = {}


def _as_list(v: Any, arg: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return list(v)
    raise TypeError(f"{arg} must be a string or a list of strings, got {type(v).__name__}")


def _side_formula(text: str | None, arg: str) -> str | None:
    """The right-hand side of ``dispformula`` / ``ziformula`` (``"~ z"`` -> ``"z"``)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{arg} must be a formula string such as '~ 1', got {type(text).__name__}")
    s = text.strip()
    if "~" in s:
        lhs, _, rhs = s.partition("~")
        if lhs.strip():
            raise ValueError(f"{arg} must be one-sided (e.g. '~ z'), got {text!r}")
        s = rhs.strip()
    return s or "1"


def _split_side(rhs: str | None, parsed: Any, arg: str) -> tuple[str | None, list]:
    """(fixed part, bars) of a side formula's right-hand side. ``.`` is the conditional
    formula's right-hand side without its offsets (glmmTMB's ``ziformula = ~.``)."""
    from .formula.bars import expand_bars, scan_formula

    if rhs is None:
        return None, []
    if rhs.replace(" ", "") == ".":
        return (parsed.fixed or "1"), list(parsed.bars)
    if "|" not in rhs:
        return rhs, []
    side = scan_formula(f"y__ ~ {rhs}")
    if side.offsets:
        raise ValueError(f"{arg} cannot have an offset: {rhs!r}")
    return (side.fixed or "1"), expand_bars(side.bars)


def _formula_columns(text: str, columns: list[str], env: Any, role: str) -> list[str]:
    """The data columns a formula part reads, after checking every expression in it
    (and taking the caller's variables it names into ``env``)."""
    from .formula.fixed import _KEYWORDS
    from .formula.namespace import check_formula, r_powers

    pieces = [p.strip() for p in text.split("+")]
    if all(p in ("0", "1", "-1") or (p.isidentifier() and p not in _KEYWORDS) for p in pieces):
        # plain terms (most formulas): columns, or variables formulaic looks up
        names = [p for p in pieces if p not in ("0", "1", "-1")]
        have = set(columns)
        if all(p in have for p in names):
            return names
    return check_formula(r_powers(text), columns, env, role, resolve_caller=True)


def _check_offset_range(family: Any, off: np.ndarray, parts: list[tuple[str, np.ndarray]]) -> None:
    """An offset whose inverse link overflows (exp(800) with a log link) is an
    error naming the offset, before the fit fails somewhere less clear."""
    if not parts or not off.size:
        return
    try:
        from .families import get_family

        fam = get_family(family) if isinstance(family, str) else family
        linkinv = fam.linkinv
    except Exception:  # noqa: BLE001 - a family without linkinv has no such check
        return
    with np.errstate(all="ignore"):
        mu = np.asarray(linkinv(np.asarray(off, dtype=np.float64)), dtype=np.float64)
    if np.all(np.isfinite(mu)):
        return
    i = int(np.argmax(~np.isfinite(mu)))
    name = max(parts, key=lambda p: float(np.max(p[1])) if np.size(p[1]) else -np.inf)[0] if len(parts) > 1 else parts[0][0]
    link = str(getattr(fam, "link", "")).rstrip("()").removesuffix("Link").lower() or "?"
    raise ValueError(
        f"{name} reaches {off[i]:.6g} in row {i}: the inverse link ({link}) of it overflows, so the mean "
        "is infinite before any coefficient is fitted; an offset is on the linear-predictor scale "
        "(for a log link write offset(log(exposure)), not the exposure itself)")


def build_model_frame(
    formula: str,
    data: Any,
    *,
    family: Any,
    groups: str | list[str] | None = None,
    random: list[str] | None = None,
    weights: Any = None,
    offset: Any = None,
    dispformula: str | None = None,
    ziformula: str | None = None,
    missing: str = "drop",
) -> ModelFrame:
    """Parse ``formula`` on ``data`` into a validated :class:`ModelFrame` (lme4's ``glFormula``).

    Random terms come from the formula's bars, from ``random=`` (lme4 strings,
    taking precedence over ``groups``) or from ``groups=`` (random intercepts);
    all forms build the identical model. ``weights`` / ``offset`` are arrays of
    the data's length, column names or expressions. Rows with missing values in
    the used columns are dropped with a warning (``missing="raise"`` raises).

    Example
    -------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"s": [1, 3, 2, 5, 0, 4], "n": [6] * 6,
    ...                    "x": [0.1, 0.4, 0.2, 0.9, 0.0, 0.7], "g": list("aabbcc")})
    >>> mf = build_model_frame("cbind(s, n - s) ~ x + (1 | g)", df, family="binomial")
    >>> mf.fe_names, mf.terms[0].nlevels, mf.weights[:2].tolist()
    (['Intercept', 'x'], 3, [6.0, 6.0])
    """
    import warnings

    from .data import frame_columns, frame_len, missing_mask, to_pandas_columns
    from .formula.bars import Bar, expand_bars, group_parts, parse_bar, scan_formula
    from .formula.fixed import aliased_columns, build_fixed, evaluate_expression
    from .formula.namespace import FormulaEnv, check_expression, r_powers
    from .formula.response import cbind_args, evaluate_response
    from .formula.spec import FrameSpec
    from .formula.terms import build_term, order_terms, vc_names
    from .model.covariance import STRUCTURES
    from .validation import (
        check_finite,
        check_response,
        check_terms,
        check_vector,
        check_weights,
        numeric_values,
        resolve_family,
        scale_message,
    )

    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    family = resolve_family(family)  # a name becomes the registered family (ValueError naming it)
    fast = fast_model_frame(formula, data, family=family, groups=groups, random=random, weights=weights,
                            offset=offset, dispformula=dispformula, ziformula=ziformula, missing=missing)
    if fast is not None:  # the common grammar on a pandas frame, without per-column overhead
        fields, off_parts = fast
        _check_offset_range(family, fields["offset"], off_parts)
        return ModelFrame(**fields)
    columns = frame_columns(data)  # TypeError naming `data` for a non-frame
    n_full = frame_len(data)
    if n_full == 0 or not columns:
        raise ValueError("data is empty (no rows or no columns)")

    parsed = scan_formula(formula)
    if parsed.response is None:
        raise ValueError(f"formula {formula!r} has no response (write 'y ~ ...')")
    random_list = _as_list(random, "random")
    groups_list = _as_list(groups, "groups")
    if random_list:
        extra = [parse_bar(r) for r in random_list]
    else:
        for g in groups_list:
            group_parts(g)  # a malformed name is a ValueError here
        extra = [Bar("1", g) for g in groups_list]
    written = expand_bars(parsed.bars + extra)
    seen: set[tuple[str, str, str | None]] = set()
    for b in written:
        if b.structure is not None and b.structure not in STRUCTURES:
            raise ValueError(f"random-effect term {b.text()}: unknown covariance structure {b.structure!r} "
                             f"(known: {', '.join(sorted(STRUCTURES))})")
        key = (" ".join(b.lhs.split()), b.group.replace(" ", ""), b.structure)
        if key in seen:
            raise ValueError(f"random-effect term {b.text()} is given twice (formula and groups=/random=?)")
        seen.add(key)

    disp_rhs, disp_bars = _split_side(_side_formula(dispformula, "dispformula"), parsed, "dispformula")
    zi_rhs, zi_bars = _split_side(_side_formula(ziformula, "ziformula"), parsed, "ziformula")
    if zi_bars and ziformula is not None and ziformula.replace(" ", "") in ("~.", "."):
        zi_bars = expand_bars(zi_bars)
    have = set(columns)

    # Which columns each part reads. Every expression is checked against the
    # formula namespace before anything runs (namespace.py); names that are
    # neither columns nor formula functions are looked up in the caller's scope.
    env = FormulaEnv()

    def need(texts: list[str], role: str) -> list[str]:
        names: list[str] = []
        for t in texts:
            names += _formula_columns(t, columns, env, role)
        return names

    def need_expr(texts: list[str], role: str) -> list[str]:
        names: list[str] = []
        for t in texts:
            names += check_expression(r_powers(t, everywhere=True), columns, env, role, resolve_caller=True)
        return names

    used: list[str] = []
    cb = cbind_args(parsed.response)
    resp_cols = need_expr(cb if cb is not None else [parsed.response], f"response {parsed.response!r}")
    used += resp_cols
    pred_cols = need([parsed.fixed] if parsed.fixed else [], "fixed-effects formula")
    pred_cols += need_expr(parsed.offsets, "offset() in the formula")
    for b in written:
        pred_cols += need([b.lhs], f"random-effect term {b.text()}")
        gp = group_parts(b.group)
        miss = [g for g in gp if g not in have]
        if miss:
            raise ValueError(f"grouping factor {', '.join(miss)} of term {b.text()} is not a column of data")
        pred_cols += gp
    disp_cols = need([disp_rhs], "dispformula") if disp_rhs else []
    zi_cols = need([zi_rhs], "ziformula") if zi_rhs else []
    for bars, role, cols in ((disp_bars, "dispformula", disp_cols), (zi_bars, "ziformula", zi_cols)):
        for b in bars:
            cols += need([b.lhs], f"random-effect term {b.text()} of {role}")
            gp = group_parts(b.group)
            miss = [g for g in gp if g not in have]
            if miss:
                raise ValueError(f"grouping factor {', '.join(miss)} of term {b.text()} in {role} is not a "
                                 "column of data")
            cols += gp
    model_cols = pred_cols + disp_cols + zi_cols
    if "Intercept" in model_cols:
        raise ValueError(
            "a column named 'Intercept' is used in the formula: it clashes with the name of the intercept "
            "column interlace generates; rename the column (the intercept is '1', included by default)")
    used += model_cols

    def vec_arg(v: Any, arg: str) -> tuple[np.ndarray | None, str | None, list[str]]:
        """(array of full length, or None; expression; columns read)."""
        if v is None:
            return None, None, []
        if isinstance(v, str):
            cols = [v] if v in have else need_expr([v], arg)
            return None, v, cols
        return check_vector(v, n_full, arg), None, []

    w_arr, w_expr, w_cols = vec_arg(weights, "weights")
    o_arr, o_expr, o_cols = vec_arg(offset, "offset")
    used += w_cols + o_cols

    frame = to_pandas_columns(data, list(dict.fromkeys(used)))
    mask, na_cols = missing_mask(frame)
    for arr, arg in ((w_arr, "weights"), (o_arr, "offset")):
        if arr is not None and np.isnan(arr).any():
            mask |= np.isnan(arr)
            na_cols.append(arg)
    messages: list[str] = []
    row_index = np.arange(n_full)
    full = None
    n_dropped = int(mask.sum())
    if n_dropped:
        where = ", ".join(na_cols)
        if missing == "raise":
            raise ValueError(f"{n_dropped} row(s) have missing values in: {where} (missing='raise')")
        msg = f"{n_dropped} row(s) with missing values dropped (columns: {where})"
        warnings.warn(msg, UserWarning, stacklevel=2)
        messages.append(msg)
        keep = ~mask
        # R's model.frame evaluates the terms on the whole data before na.action:
        # stateful transforms (scale(), poly(), splines) see every row (formula/fixed.py).
        full = frame
        frame = frame.loc[keep].reset_index(drop=True)
        row_index = row_index[keep]
        w_arr = None if w_arr is None else w_arr[keep]
        o_arr = None if o_arr is None else o_arr[keep]
    n = len(frame)
    if n == 0:
        raise ValueError("no rows left after dropping rows with missing values")
    # lme4's model frame drops unused factor levels (drop.unused.levels = TRUE).
    # (Only columns that have unused levels are rewritten: the check is cheap, the rewrite is not.)
    unused = []
    for c, s in frame.items():
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = np.asarray(s.array.codes)
            seen = np.zeros(len(s.dtype.categories), dtype=bool)
            seen[codes[codes >= 0]] = True
            if not seen.all():
                unused.append(c)
    for c in unused:
        frame[c] = frame[c].cat.remove_unused_categories()

    # Response, weights, offsets.
    resp = evaluate_response(parsed.response, frame, env, family=family)
    prior = np.ones(n)
    if w_arr is not None:
        prior = w_arr
    elif w_expr is not None:
        prior = (numeric_values(frame[w_expr], f"weights column {w_expr!r}") if w_expr in frame.columns
                 else evaluate_expression(w_expr, frame, env, "weights", full))
    check_finite(prior, "weights", nonnegative=True)
    wts = prior * resp.trials if resp.trials is not None else prior.copy()
    check_weights(prior, wts)
    off = np.zeros(n)
    off_parts: list[tuple[str, np.ndarray]] = []
    for expr in parsed.offsets:
        v = evaluate_expression(expr, frame, env, "offset", full)
        check_finite(v, f"offset({expr})")
        off_parts.append((f"offset({expr})", v))
    if o_arr is not None:
        check_finite(o_arr, "offset")
        off_parts.append(("offset", o_arr))
    elif o_expr is not None:
        v = (numeric_values(frame[o_expr], f"offset column {o_expr!r}") if o_expr in frame.columns
             else evaluate_expression(o_expr, frame, env, "offset", full))
        check_finite(v, f"offset {o_expr!r}")
        off_parts.append((f"offset {o_expr!r}", v))
    for _, v in off_parts:
        off = off + v
    _check_offset_range(family, off, off_parts)

    # Fixed effects, with lme4's rank-deficiency drop and scale check.
    X, names, fixed_spec = build_fixed(parsed.fixed, frame, env, full)
    bad = [nm for j, nm in enumerate(names) if not np.all(np.isfinite(X[:, j]))]
    if bad:
        raise ValueError(f"fixed-effects column(s) with non-finite values: {', '.join(bad)}")
    drop = aliased_columns(X)
    keep_cols = [j for j in range(X.shape[1]) if j not in set(drop)]
    dropped_names = [names[j] for j in drop]
    if drop:
        k = len(drop)
        msg = (
            f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''} / "
            f"coefficient{'s' if k > 1 else ''}: {', '.join(dropped_names)}"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        messages.append(msg)
    X = np.ascontiguousarray(X[:, keep_cols])
    fe_names = [names[j] for j in keep_cols]
    smsg = scale_message(X, fe_names)
    if smsg:
        warnings.warn(smsg, UserWarning, stacklevel=2)
        messages.append(smsg)

    # Random-effect terms, ordered as lme4's mkReTrms orders them.
    built = [build_term(frame, b, env, full) for b in written]
    order = order_terms([t.nlevels for t, _ in built])
    built = [built[i] for i in order]
    terms = [t for t, _ in built]
    for t, name in zip(terms, vc_names([t.group for t in terms])):
        t.vc_name = name
        if not np.all(np.isfinite(t.z)):
            raise ValueError(f"random-effect term ({t.lhs} | {t.group}) has non-finite covariates")
    check_terms(terms, n, family)

    # with zero inflation the family's support need only hold the nonzero responses
    # (glmmTMB's ziGamma, a beta with zeros): the zeros are structural
    keep_rows = (resp.y != 0) if zi_rhs is not None and np.any(resp.y != 0) else slice(None)
    fails = resp.failures if cbind_args(parsed.response) is not None else None
    rmsg = check_response(
        family,
        resp.y[keep_rows],
        wts[keep_rows],
        parsed.response,
        failures=fails[keep_rows] if fails is not None else None,
    )
    messages += rmsg

    disp_X = disp_names = zi_X = zi_names = None
    disp_spec = zi_spec = None
    if disp_rhs is not None:
        disp_X, disp_names, disp_spec = build_fixed(disp_rhs, frame, env, full)
    if zi_rhs is not None:
        zi_X, zi_names, zi_spec = build_fixed(zi_rhs, frame, env, full)

    side_specs: dict[str, list] = {}

    def side_terms(bars: list, role: str) -> list[ReTerm]:
        if not bars:
            return []
        sb = [build_term(frame, b, env, full) for b in bars]
        sb = [sb[i] for i in order_terms([t.nlevels for t, _ in sb])]
        side_specs["disp" if role == "dispformula" else "zi"] = [sp for _, sp in sb]  # predict on newdata
        out = [t for t, _ in sb]
        for t, name in zip(out, vc_names([t.group for t in out])):
            t.vc_name = name
            if not np.all(np.isfinite(t.z)):
                raise ValueError(f"random-effect term ({t.lhs} | {t.group}) of {role} has non-finite covariates")
        check_terms(out, n, family)
        return out

    disp_terms = side_terms(disp_bars, "dispformula")
    zi_terms = side_terms(zi_bars, "ziformula")

    o_cols_spec = [c for c in o_cols]
    spec = FrameSpec(
        formula=formula,
        fixed=parsed.fixed,
        fixed_spec=fixed_spec,
        keep_columns=keep_cols,
        fe_names=fe_names,
        terms=[s for _, s in built],
        formula_offsets=list(parsed.offsets),
        offset_expr=o_expr,
        offset_columns=o_cols_spec,
        columns=list(dict.fromkeys(pred_cols)),
        context=env,
        disp_spec=disp_spec,
        zi_spec=zi_spec,
    )
    if side_specs:
        spec.side_terms = side_specs
    return ModelFrame(
        y=np.ascontiguousarray(resp.y, dtype=np.float64),
        X=X,
        fe_names=fe_names,
        terms=terms,
        weights=np.ascontiguousarray(wts, dtype=np.float64),
        offset=np.ascontiguousarray(off, dtype=np.float64),
        response_name=parsed.response,
        formula=formula,
        spec=spec,
        row_index=row_index,
        n_dropped=n_dropped,
        dropped_columns=dropped_names,
        messages=messages,
        disp_X=disp_X,
        disp_names=disp_names,
        zi_X=zi_X,
        zi_names=zi_names,
        zi_terms=zi_terms,
        disp_terms=disp_terms,
    )
