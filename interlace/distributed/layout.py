"""The first pass over a Dask frame: which columns the model reads, the
global factor levels, and a FrameSpec that codes every partition alike.

The parse stage (``build_model_frame``) is run once, on the driver, on a
small *representative sample*: the first rows plus one row for every value of
every factor-like column the fixed part reads. So formulaic records every
level and the same contrasts; ``FrameSpec.transform`` then builds X, the
term blocks and the offset of each partition identically. The grouping
factors' levels come from the union of the distinct values over all
partitions (R's ``factor()`` order, as ``group_codes`` makes it), and the
terms are ordered by those global level counts, as lme4's mkReTrms does.

Example
-------
>>> cols = model_columns("cbind(s, n - s) ~ x + (1 | g)", ["s", "n", "x", "g", "z"])
>>> cols.used, cols.pure_groups
(['s', 'n', 'x', 'g'], ['g'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interlace.validation import family_name, resolve_family

_STR = pd.StringDtype(na_value=np.nan)


def normalize_strings(pdf: pd.DataFrame) -> pd.DataFrame:
    """Dask stores text as ``string[pyarrow]`` (missing value pd.NA); give it
    pandas' default ``str`` dtype, as an in-memory frame has, so formulaic
    codes it as a factor exactly as in the in-memory fit."""
    conv = {c: _STR for c, dt in pdf.dtypes.items() if isinstance(dt, pd.StringDtype) and dt != _STR}
    return pdf.astype(conv) if conv else pdf


SYNTH_Y = "__interlace_y__"
HEAD_ROWS = 1000


@dataclass
class ModelColumns:
    """The columns one model reads, by role."""

    used: list[str]
    response: str
    bars: list[Any]  # expanded Bar objects, as written
    groups: dict[str, list[str]]  # group name -> its columns
    pure_groups: list[str]  # columns used only as grouping factors
    weights_expr: str | None = None
    offset_expr: str | None = None
    factor_columns: list[str] = field(default_factory=list)  # set from the frame's dtypes
    side: dict[str, str] = field(default_factory=dict)  # "disp"/"zi" -> its formula as given
    side_bars: dict[str, list] = field(default_factory=dict)  # "disp"/"zi" -> its random-effect terms


def _vec_arg(v: Any, arg: str) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    raise TypeError(f"with a Dask frame {arg} must be a column name or an expression (a string), "
                    f"not an in-memory array: it has to be evaluated partition by partition")


def model_columns(formula: str, columns: list[str], groups: Any = None, random: Any = None,
                  weights: Any = None, offset: Any = None, dispformula: str | None = None,
                  ziformula: str | None = None) -> ModelColumns:
    """The columns the model reads (as ``build_model_frame`` selects them), checked against ``columns``."""
    from interlace.data import identifiers
    from interlace.formula.bars import Bar, expand_bars, group_parts, parse_bar, scan_formula
    from interlace.model_frame import _as_list, _side_formula, _split_side

    parsed = scan_formula(formula)
    if parsed.response is None:
        raise ValueError(f"formula {formula!r} has no response (write 'y ~ ...')")
    random_list = _as_list(random, "random")
    groups_list = _as_list(groups, "groups")
    extra = [parse_bar(r) for r in random_list] if random_list else [Bar("1", g) for g in groups_list]
    bars = expand_bars(parsed.bars + extra)
    have = set(columns)

    def need(texts: list[str], role: str) -> list[str]:
        names: list[str] = []
        for t in texts:
            names += identifiers(t)
        unknown = [c for c in dict.fromkeys(names) if c not in have]
        if unknown:  # variables of the caller's scope (R's formula environment) are not columns
            from interlace.formula.namespace import caller_variables

            found = caller_variables(unknown)
            unknown = [c for c in unknown if c not in found]
        if unknown:
            raise ValueError(f"{role} refers to column(s) not in data: {', '.join(unknown)}")
        return [c for c in names if c in have]

    resp = need([parsed.response], f"response {parsed.response!r}")
    other = need([parsed.fixed] if parsed.fixed else [], "fixed-effects formula")
    other += need(parsed.offsets, "offset() in the formula")
    gmap: dict[str, list[str]] = {}
    for b in bars:
        other += need([b.lhs], f"random-effect term {b.text()}")
        gp = group_parts(b.group)
        miss = [g for g in gp if g not in have]
        if miss:
            raise ValueError(f"grouping factor {', '.join(miss)} of term {b.text()} is not a column of data")
        gmap[b.group] = gp
    side, side_bars = {}, {}
    for block, text, arg in (("disp", dispformula, "dispformula"), ("zi", ziformula, "ziformula")):
        fixed, sbars = _split_side(_side_formula(text, arg), parsed, arg)
        if fixed is None:
            continue
        side[block] = text
        other += need([fixed], arg)
        if sbars:
            side_bars[block] = sbars
            for b in sbars:
                other += need([b.lhs], f"random-effect term {b.text()} of {arg}")
                other += need([b.group], f"random-effect term {b.text()} of {arg}")
    w_expr, o_expr = _vec_arg(weights, "weights"), _vec_arg(offset, "offset")
    for expr, arg in ((w_expr, "weights"), (o_expr, "offset")):
        if expr is not None:
            other += [expr] if expr in have else need([expr], arg)
    gcols = [c for gp in gmap.values() for c in gp]
    used = list(dict.fromkeys(resp + other + gcols))
    pure = [c for c in dict.fromkeys(gcols) if c not in set(resp) | set(other)]
    return ModelColumns(used=used, response=parsed.response, bars=bars, groups=gmap, pure_groups=pure,
                        weights_expr=w_expr, offset_expr=o_expr, side=side, side_bars=side_bars)


def is_factor_dtype(dtype: Any) -> bool:
    """Columns whose distinct values are levels (strings, categoricals, booleans)."""
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


# ----------------------------------------------------------------------------- worker side


def scan_partition(pdf: pd.DataFrame, cols: ModelColumns) -> dict:
    """Distinct level combinations per grouping term, one row per value of each
    factor-like column, the first rows, and the missing-value counts of one partition."""
    from interlace.data import missing_mask

    sub = normalize_strings(pdf[cols.used])
    mask, na_cols = missing_mask(sub)
    sub = sub.loc[~mask]
    # each partition's own categories: partitions read from files separately
    # can carry different category sets or orders ("label drift")
    cats = {c: (tuple(s.cat.categories.tolist()), bool(s.cat.ordered))
            for c, s in pdf[cols.used].items() if isinstance(s.dtype, pd.CategoricalDtype)}
    return {
        "n": int(len(sub)),
        "n_na": int(mask.sum()),
        "na_cols": na_cols,
        "cats": cats,
        "groups": {g: sub[gp].drop_duplicates() for g, gp in cols.groups.items()},
        "reps": [sub.drop_duplicates(subset=[c]) for c in cols.factor_columns],
        "head": sub.iloc[:HEAD_ROWS],
    }


def merge_scans(scans: list[dict], cols: ModelColumns) -> dict:
    """Union of the partitions' scans (runs on a worker: the client gets one small object)."""
    out = {"n": 0, "n_na": 0, "na_cols": [], "groups": {}, "reps": [], "head": None, "cats": {}}
    for s in scans:
        for c, v in s.get("cats", {}).items():
            variants = out["cats"].setdefault(c, [])
            if v not in variants:
                variants.append(v)
    heads = []
    nhead = 0
    for s in scans:
        out["n"] += s["n"]
        out["n_na"] += s["n_na"]
        out["na_cols"] += [c for c in s["na_cols"] if c not in out["na_cols"]]
        if nhead < HEAD_ROWS and len(s["head"]):
            heads.append(s["head"].iloc[: HEAD_ROWS - nhead])
            nhead += len(heads[-1])
    first = scans[0]
    out["groups"] = {g: pd.concat([s["groups"][g] for s in scans], ignore_index=True).drop_duplicates()
                     for g in first["groups"]}
    for i, c in enumerate(cols.factor_columns):
        rep = pd.concat([s["reps"][i] for s in scans], ignore_index=True)
        out["reps"].append(rep.drop_duplicates(subset=[c]))
    out["head"] = pd.concat(heads, ignore_index=True) if heads else first["head"]
    return out


# ----------------------------------------------------------------------------- driver side


@dataclass
class Layout:
    """Everything the partitions need to be coded alike."""

    cols: ModelColumns
    spec: Any  # FrameSpec with the global levels and all fixed-effect columns
    terms: list[Any]  # ReTerm metadata (no per-row arrays), in lme4's order
    fe_names_all: list[str]
    n: int
    n_dropped: int
    na_cols: list[str]
    messages: list[str]
    response_dtypes: dict[str, Any]  # global categorical dtypes of factor response columns
    unify: dict[str, Any] = field(default_factory=dict)  # categorical columns recoded by value in every partition
    side_names: dict[str, list[str]] = field(default_factory=dict)  # "disp"/"zi" -> its design's column names


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        else (1, 0, str(v))


def unified_categories(merged_cats: dict[str, list], meta: pd.DataFrame) -> dict[str, pd.CategoricalDtype]:
    """One categorical dtype per categorical column whose partitions (or the
    frame's meta) disagree on the categories: the union of the partitions'
    categories by value, sorted as R's ``factor()`` sorts levels (what an
    in-memory ``pd.concat`` of the partitions is fitted as). Ordered
    categoricals whose orders differ have no common order: ValueError.

    >>> meta = pd.DataFrame({"f": pd.Categorical([], categories=["b", "a"])})
    >>> unified_categories({"f": [(("b", "a"), False), (("c", "a"), False)]}, meta)["f"].categories.tolist()
    ['a', 'b', 'c']
    """
    out: dict[str, pd.CategoricalDtype] = {}
    for c, variants in merged_cats.items():
        mdt = meta[c].dtype if c in meta.columns else None
        meta_v = ((tuple(mdt.categories.tolist()), bool(mdt.ordered))
                  if isinstance(mdt, pd.CategoricalDtype) and len(mdt.categories) else None)
        if len(variants) == 1 and (meta_v is None or meta_v == variants[0]):
            continue  # every partition codes the column alike
        if len(variants) == 1:  # the partitions agree, the meta does not: the partitions' data win
            cats, ordered = variants[0]
            out[c] = pd.CategoricalDtype(list(cats), ordered=ordered)
            continue
        if any(o for _, o in variants):
            shown = "; ".join("[" + ", ".join(map(str, v[:6])) + (", ..." if len(v) > 6 else "") + "]"
                              for v, _ in variants[:3])
            raise ValueError(
                f"column {c!r} is an ordered categorical whose categories differ between partitions ({shown}): "
                "there is no common order; give every partition the same categories, e.g. "
                f"ddf[{c!r}].astype(pd.CategoricalDtype(levels, ordered=True))")
        values = list(dict.fromkeys(v for cats, _ in variants for v in cats))
        out[c] = pd.CategoricalDtype(sorted(values, key=_sort_key), ordered=False)
    return out


def unify_levels(pdf: pd.DataFrame, unify: dict[str, Any]) -> pd.DataFrame:
    """Recode the columns of ``unify`` to their global categorical dtype by value
    (never by a partition's own category codes)."""
    if not unify:
        return pdf
    out = pdf.copy()
    for c, dt in unify.items():
        if c in out.columns:
            s = out[c]
            vals = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
            out[c] = pd.Series(pd.Categorical(vals, dtype=dt), index=s.index, name=c)
    return out


def _global_dtype(meta_dtype: Any, values: pd.Series) -> Any:
    """The categorical dtype a factor column has on the whole frame (R's factor levels)."""
    if isinstance(meta_dtype, pd.CategoricalDtype) and len(meta_dtype.categories):
        present = set(values.dropna().tolist())
        return pd.CategoricalDtype([c for c in meta_dtype.categories if c in present], ordered=meta_dtype.ordered)
    if pd.api.types.is_bool_dtype(meta_dtype):
        return None
    return pd.CategoricalDtype(sorted(set(str(v) for v in values.dropna().tolist())))


def _check_factor_response(c: str, meta_col: pd.Series, vals: pd.Series, family: Any) -> None:
    """The in-memory rules of formula/response.py, on the driver: only a family
    with ``factor_response`` (binomial) reads a factor response, and never
    numbers held as text."""
    from interlace.validation import numeric_values

    fam = family_name(family)
    if not getattr(resolve_family(family), "factor_response", False):
        numeric_values(meta_col, f"{fam} response {c!r}")  # str / category: ValueError naming the dtype
        return
    if isinstance(meta_col.dtype, pd.CategoricalDtype):
        return
    for v in vals.dropna().unique():
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                continue
            raise ValueError(
                f"{fam} response {c!r} holds numbers as strings (dtype {meta_col.dtype}, e.g. {v!r}); lme4 "
                "refuses a character response: convert it with .astype(float), or make it a categorical to use "
                "it as a factor")


def build_layout(merged: dict, cols: ModelColumns, meta: pd.DataFrame, formula: str, family: Any,
                 groups: Any, random: Any, offset: Any) -> Layout:
    """Build the FrameSpec from a representative sample and the global levels."""
    from interlace.formula.namespace import stateful_calls
    from interlace.formula.terms import group_codes, order_terms, vc_names
    from interlace.model_frame import ReTerm, build_model_frame
    from interlace.validation import check_terms

    if merged["n"] == 0:
        raise ValueError("data is empty (no rows left after dropping rows with missing values)")
    unify = unified_categories(merged.get("cats", {}), meta)
    # the sample: the first rows and one row per value of each factor-like column
    parts = [unify_levels(merged["head"], unify)] + [unify_levels(r, unify) for r in merged["reps"]]
    sample = pd.concat(parts, ignore_index=True)
    for c in cols.factor_columns:
        dt = unify.get(c, meta[c].dtype)
        if isinstance(dt, pd.CategoricalDtype) and len(dt.categories):
            sample[c] = unify_levels(sample[[c]], {c: dt})[c]
    while len(sample) < 8:
        sample = pd.concat([sample, sample], ignore_index=True)
    # grouping columns used nowhere else become two-level dummies: their levels
    # come from the global union below, and the sample's validation (n >= q)
    # must not depend on how many groups the first rows happen to hold
    for c in cols.pure_groups:
        sample[c] = np.where(np.arange(len(sample)) % 2 == 0, "level_a", "level_b")
    # the response plays no part in the spec: a synthetic one keeps the
    # sample's response checks (constant, range) from misfiring
    sample[SYNTH_Y] = np.where(np.arange(len(sample)) % 2 == 0, 1.0, 2.0)
    rhs = formula.split("~", 1)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = build_model_frame(f"{SYNTH_Y} ~ {rhs}", sample, family="poisson", groups=groups, random=random,
                               offset=offset, dispformula=cols.side.get("disp"), ziformula=cols.side.get("zi"))
    spec = mf.spec
    stateful = spec.stateful_parts() + ([cols.weights_expr] if stateful_calls(cols.weights_expr) else [])
    if stateful:  # their state (a mean, knots) would come from this sample, not the whole data as in R
        raise NotImplementedError(
            f"{', '.join(stateful)}: stateful transforms (scale, center, poly, splines) are not supported on a "
            "Dask frame (their state would come from a sample of rows); compute the column on the frame first, "
            "e.g. ddf['x_s'] = (ddf['x'] - ddf['x'].mean()) / ddf['x'].std()")
    spec.formula = formula
    names_all = [str(c) for c in spec.fixed_spec.column_names]
    spec.keep_columns = list(range(len(names_all)))
    spec.fe_names = list(names_all)

    # global levels of each grouping term, terms in written order, then lme4's order
    levels = {g: group_codes(merged["groups"][g].reset_index(drop=True), g)[1] for g in cols.groups}
    by_key = {(t.group, " ".join(t.lhs.split())): t for t in spec.terms}
    written = [by_key[(b.group, " ".join(b.lhs.split()))] for b in cols.bars]
    for t in written:
        t.levels = list(levels[t.group])
    order = order_terms([len(t.levels) for t in written])
    tspecs = [written[i] for i in order]
    spec.terms = tspecs
    # each term's covariance structure (ar1(...), cs(...)) as the sample's frame built it
    covs = {(t.group, " ".join(t.lhs.split())): t.cov for t in mf.terms}
    terms = []
    for t, name in zip(tspecs, vc_names([t.group for t in tspecs])):
        k = len(t.cnames)
        terms.append(ReTerm(group=t.group, vc_name=name, codes=np.zeros(0, np.int64), levels=list(t.levels),
                            z=np.zeros((0, k)), cnames=list(t.cnames), lhs=t.lhs,
                            cov=covs.get((t.group, " ".join(t.lhs.split())))))
    check_terms(terms, merged["n"], family)

    messages = []
    if merged["n_na"]:
        msg = (f"{merged['n_na']} row(s) with missing values dropped "
               f"(columns: {', '.join(merged['na_cols'])})")
        warnings.warn(msg, UserWarning, stacklevel=4)
        messages.append(msg)
    resp_dtypes = {}
    from interlace.data import identifiers

    plain = cols.response.strip().strip("`")
    for c in identifiers(cols.response):
        if c in cols.factor_columns and not pd.api.types.is_bool_dtype(meta[c].dtype):
            vals = pd.concat([r[c] for r in merged["reps"]] + [merged["head"][c]], ignore_index=True)
            if c == plain:
                _check_factor_response(c, meta[c], vals, family)
            resp_dtypes[c] = _global_dtype(unify.get(c, meta[c].dtype), vals)
    side_names = {b: list(nm) for b, nm in (("disp", mf.disp_names), ("zi", mf.zi_names)) if nm is not None}
    return Layout(cols=cols, spec=spec, terms=terms, fe_names_all=names_all, n=merged["n"],
                  n_dropped=merged["n_na"], na_cols=merged["na_cols"], messages=messages,
                  response_dtypes=resp_dtypes, unify=unify, side_names=side_names)


def aliased_from_gram(G: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Columns aliased with earlier kept ones, from the cross-product X'X alone.

    The same greedy rule as ``formula.fixed.aliased_columns`` (R's dqrdc2): a
    column is dropped when its residual norm after the earlier kept columns is
    at most ``tol`` times its own norm; the residual's square is the Schur
    complement G_jj - G_jS G_SS^{-1} G_Sj.

    >>> X = np.array([[1.0, 1.0, 2.0], [1.0, 2.0, 4.0], [1.0, 3.0, 6.0]])
    >>> aliased_from_gram(X.T @ X)
    [2]
    """
    p = G.shape[0]
    kept: list[int] = []
    dropped: list[int] = []
    for j in range(p):
        gjj = G[j, j]
        if gjj <= 0.0:
            dropped.append(j)
            continue
        if kept:
            S = G[np.ix_(kept, kept)]
            g = G[kept, j]
            res2 = gjj - g @ np.linalg.solve(S, g)
        else:
            res2 = gjj
        if np.sqrt(max(res2, 0.0)) <= tol * np.sqrt(gjj):
            dropped.append(j)
        else:
            kept.append(j)
    return dropped


def scale_message_from_sums(n: int, colsum: np.ndarray, XtX: np.ndarray, binary: np.ndarray,
                            tol: float = 1e3) -> str | None:
    """lme4's checkScaleX from column sums and X'X (the rule of ``validation.scale_message``)."""
    import math

    if n < 2 or len(colsum) < 1:
        return None
    cont = np.nonzero(~binary)[0]
    if len(cont) < 1:
        return None
    mean = colsum[cont] / n
    var = (np.diag(XtX)[cont] - n * mean * mean) / (n - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    sd = sd[sd > 0]
    if sd.size < 1:
        return None
    logsd = np.log(sd)
    if float(logsd.max() - logsd.min()) > math.log(tol) or float(np.max(np.abs(logsd))) > math.log(tol):
        return "Some predictor variables are on very different scales: consider rescaling"
    return None
