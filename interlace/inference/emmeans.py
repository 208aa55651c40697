"""Estimated marginal means and contrasts, as R's emmeans does for merMod fits.

The reference grid crosses every factor of the fixed part at its levels with
every numeric covariate at its mean (over the rows used in fitting), or at the
values given in ``at``. The marginal mean of a level of the ``specs`` factors
is the equally weighted average of the grid's linear predictors over the
other factors (emmeans' default ``weights = "equal"``): a linear function
``L beta`` of the fixed effects, with standard error ``sqrt(L V L')``.

Degrees of freedom: asymptotic (``Inf``, z statistics) for GLMMs, as emmeans
gives for glmer fits. For linear mixed models emmeans uses Kenward-Roger (or
Satterthwaite) df; they come from :mod:`interlace.inference.lmertest` when it
is available (``lmer_df=``), asymptotic otherwise (``df_method`` says which).

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> emm = m.emmeans("period")
>>> emm.table["emmean"].round(3).tolist()
[-1.399, -2.39, -2.527, -2.979]
>>> emm.pairs().table["contrast"].tolist()[:2]
['1 - 2', '1 - 3']
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["emmeans", "EMMeans", "Contrasts", "adjust_pvalues", "ADJUSTMENTS"]

ADJUSTMENTS = ("tukey", "scheffe", "sidak", "bonferroni", "holm", "hochberg", "fdr", "BH", "BY", "none")


# --------------------------------------------------------------------------- p-value adjustment


def adjust_pvalues(p: np.ndarray, method: str) -> np.ndarray:
    """R's ``p.adjust`` for one family of tests: "bonferroni", "holm", "hochberg",
    "fdr"/"BH", "BY", "sidak" (emmeans' ``1 - (1 - p)^m``) or "none".

    >>> adjust_pvalues(np.array([0.01, 0.02, 0.04]), "holm").round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p, dtype=float)
    m = p.shape[0]
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, m * p)
    if method == "sidak":
        return -np.expm1(m * np.log1p(-np.minimum(p, 1.0)))
    if method == "holm":
        o = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[o]))
        out = np.empty(m)
        out[o] = adj
        return out
    if method in ("hochberg", "fdr", "BH", "BY"):
        o = np.argsort(p, kind="stable")[::-1]  # decreasing
        i = np.arange(m, 0, -1)
        if method == "hochberg":
            raw = (m - i + 1) * p[o]
        else:
            q = np.sum(1.0 / np.arange(1, m + 1)) if method == "BY" else 1.0
            raw = q * m / i * p[o]
        adj = np.minimum(1.0, np.minimum.accumulate(raw))
        out = np.empty(m)
        out[o] = adj
        return out
    raise ValueError(f"unknown adjust {method!r}; use one of {', '.join(ADJUSTMENTS)}")


def _two_sided(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    stat = np.abs(np.asarray(stat, dtype=float))
    df = np.asarray(df, dtype=float)
    z = 2.0 * special.ndtr(-stat)
    with np.errstate(invalid="ignore"):
        t = 2.0 * special.stdtr(np.where(np.isfinite(df), df, 1.0), -stat)
    return np.where(np.isfinite(df), t, z)


def _tukey_p(stat: np.ndarray, nmeans: int, df: np.ndarray) -> np.ndarray:
    from scipy.stats import studentized_range  # scipy.stats only when a Tukey p is asked for

    raw = _two_sided(stat, df)
    if nmeans <= 2:  # the range of two means: Tukey's p is the unadjusted one, exactly
        return raw
    out = np.empty(len(stat))
    for i, (s, d) in enumerate(zip(np.abs(stat), df)):
        out[i] = studentized_range.sf(np.sqrt(2.0) * s, nmeans, d if np.isfinite(d) else np.inf)
    # far in the tail the numerical integral underflows to 0; Tukey's p is never below the raw p
    return np.minimum(1.0, np.maximum(out, raw))


def _scheffe_p(stat: np.ndarray, rank: int, df: np.ndarray) -> np.ndarray:
    F = np.asarray(stat, float) ** 2 / rank
    out = np.empty(len(F))
    for i, (f, d) in enumerate(zip(F, df)):
        out[i] = special.chdtrc(rank, rank * f) if not np.isfinite(d) else special.fdtrc(rank, d, f)
    return out


# --------------------------------------------------------------------------- helpers


_PROB_LINKS = ("logit", "probit", "cloglog", "cauchit", "loglog")


def _link_name(result) -> str:
    return str(getattr(getattr(result.family, "link", None), "name", "identity"))


def _response_name(result) -> str:
    """emmeans' column name on the response scale: prob / rate / response."""
    link = _link_name(result)
    own = getattr(result.family, "response_scale_name", None)  # the family's word: "prob", "rate"
    if link in _PROB_LINKS or own == "prob":
        return "prob"
    if link == "log" and own == "rate":
        return "rate"
    return "response"


def _parse_specs(specs: Any, by: Any) -> tuple[list[str], list[str], str | None]:
    """(spec variables, by variables, contrast method named on a formula's left side)."""
    method = None
    if isinstance(specs, str) and "~" in specs:
        lhs, _, rhs = specs.partition("~")
        method = lhs.strip() or None
        main, _, bys = rhs.partition("|")
        spec_vars = [v.strip() for v in re.split(r"[+*:]", main) if v.strip()]
        by_vars = [v.strip() for v in re.split(r"[+*:]", bys) if v.strip()]
    else:
        spec_vars = [specs] if isinstance(specs, str) else list(specs)
        by_vars = []
    if by is not None:
        by_vars += [by] if isinstance(by, str) else list(by)
    return spec_vars, by_vars, method


def _rank(C: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(C)) if C.size else 0


# --------------------------------------------------------------------------- reference grid


def reference_grid(result, at: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The reference grid frame and its factor variables (``at`` fixes or lists values)."""
    mf = result.model_frame
    summ = getattr(mf, "covariate_summary", None)
    if summ is None:
        raise ValueError("this fit has no reference-grid information (fitted before interlace recorded it)")
    at = dict(at or {})
    unknown = [k for k in at if k not in summ]
    if unknown:
        raise ValueError(f"at= names variable(s) not in the fixed part of the model: {', '.join(unknown)}")
    axes: dict[str, list] = {}
    for col, (kind, val) in summ.items():
        if col in at:
            v = at[col]
            axes[col] = list(v) if isinstance(v, (list, tuple, np.ndarray, pd.Series)) else [v]
        else:
            axes[col] = list(val) if kind == "factor" else [val]
    names = list(axes)
    rows = list(itertools.product(*[axes[c] for c in names])) if names else [()]
    grid = pd.DataFrame(rows, columns=names)
    for c in names:
        if summ[c][0] == "factor":
            grid[c] = grid[c].astype(object)
    factors = [c for c in names if summ[c][0] == "factor" or len(axes[c]) > 1]
    return grid, factors


def _grid_X(result, grid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-effects rows and formula offsets of the grid (the training spec)."""
    from interlace.formula.fixed import LazyModelSpec, evaluate_expression

    spec = result.model_frame.spec
    fixed_spec = spec.fixed_spec
    if isinstance(fixed_spec, LazyModelSpec):
        fixed_spec = fixed_spec.spec
    mm = fixed_spec.get_model_matrix(grid)
    X = np.asarray(mm, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(grid):
        X = np.broadcast_to(X, (len(grid), X.shape[1])).copy()
    X = X[:, spec.keep_columns]
    off = np.zeros(len(grid))
    for expr in spec.formula_offsets:
        off = off + evaluate_expression(expr, grid, spec.context, "offset")
    return X, off


# --------------------------------------------------------------------------- degrees of freedom


def _df(result, L: np.ndarray, lmer_df: str | Callable | float | None) -> tuple[np.ndarray, str]:
    """Per row of L its df and the method's name."""
    n = L.shape[0]
    if callable(lmer_df):
        return np.array([float(lmer_df(result, row)) for row in L]), "user"
    if isinstance(lmer_df, (int, float)) and not isinstance(lmer_df, bool):
        return np.full(n, float(lmer_df)), "fixed"
    if result.optinfo.get("engine") != "lmm" or lmer_df in (None, "asymptotic"):
        return np.full(n, np.inf), "asymptotic"
    try:  # the lmer issue's Satterthwaite / Kenward-Roger df (helper `lmer`)
        from interlace.inference.lmertest import contest
    except ImportError:
        return np.full(n, np.inf), "asymptotic"
    ddf = _lmm_ddf(result, lmer_df)
    out = np.array([float(contest(result, row, ddf=ddf)["df"].iloc[0]) for row in L])
    return out, ddf


def _lmm_ddf(result, wanted: str) -> str:
    """Kenward-Roger needs a REML fit (pbkrtest); an ML fit gets Satterthwaite's df."""
    w = str(wanted).lower().replace("_", "-")
    if w.startswith("k") and not result.optinfo.get("REML", False):
        return "Satterthwaite"
    return "Kenward-Roger" if w.startswith("k") else "Satterthwaite"


# --------------------------------------------------------------------------- results


@dataclass
class Contrasts:
    """Contrasts of marginal means (emmeans' ``contrast()`` / ``pairs()`` summary).

    ``table`` columns: ``contrast``, the by variables, ``estimate`` (or
    ``ratio`` / ``odds.ratio`` on the response scale of a log / logit link),
    ``SE``, ``df``, ``z.ratio`` (``t.ratio`` with finite df), ``p.value``.
    ``L`` holds the contrasts as linear functions of the fixed effects.
    """

    table: pd.DataFrame
    L: np.ndarray
    adjust: str
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return self.table.to_string(index=False) + (("\n" + "\n".join(self.notes)) if self.notes else "")

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False) + "".join(f"<p>{n}</p>" for n in self.notes)


@dataclass
class EMMeans:
    """Estimated marginal means (emmeans' ``emmGrid`` summary).

    ``table``: the spec and by variables, ``emmean`` (link scale) or
    ``prob`` / ``rate`` / ``response`` (``type="response"``), ``SE``, ``df``
    and the confidence limits (``asymp.LCL`` / ``asymp.UCL`` with asymptotic
    df, ``lower.CL`` / ``upper.CL`` otherwise). ``L`` maps beta to the link-scale means.
    """

    result: Any
    specs: list[str]
    by: list[str]
    levels: pd.DataFrame
    L: np.ndarray
    offset: np.ndarray
    type: str
    level: float
    lmer_df: Any
    table: pd.DataFrame = None
    df: np.ndarray = None
    df_method: str = "asymptotic"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.df, self.df_method = _df(self.result, self.L, self.lmer_df)
        self.table = self._table()

    # ---------------------------------------------------------------- values
    @property
    def estimate(self) -> np.ndarray:
        """The marginal means on the link scale."""
        return self.L @ self.result.fe_params.to_numpy(dtype=float) + self.offset

    @property
    def se(self) -> np.ndarray:
        V = self.result.vcov.to_numpy(dtype=float)
        return np.sqrt(np.einsum("ij,jk,ik->i", self.L, V, self.L))

    def _crit(self) -> np.ndarray:
        a = 0.5 * (1.0 + self.level)
        z = special.ndtri(a)
        with np.errstate(invalid="ignore"):
            t = special.stdtrit(np.where(np.isfinite(self.df), self.df, 1.0), a)
        return np.where(np.isfinite(self.df), t, z)

    def _table(self) -> pd.DataFrame:
        est, se = self.estimate, self.se
        crit = self._crit()
        lo, hi = est - crit * se, est + crit * se
        tab = self.levels.copy().reset_index(drop=True)
        asym = not np.all(np.isfinite(self.df))
        lcl, ucl = ("asymp.LCL", "asymp.UCL") if asym else ("lower.CL", "upper.CL")
        if self.type == "response":
            fam = self.result.family
            name = _response_name(self.result)
            tab[name] = np.asarray(fam.linkinv(est), float)
            tab["SE"] = se * np.abs(np.asarray(fam.mu_eta(est), float))
            a, b = np.asarray(fam.linkinv(lo), float), np.asarray(fam.linkinv(hi), float)
            tab["df"] = self.df
            tab[lcl], tab[ucl] = np.minimum(a, b), np.maximum(a, b)
        else:
            tab["emmean"] = est
            tab["SE"] = se
            tab["df"] = self.df
            tab[lcl], tab[ucl] = lo, hi
        return tab

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """The table with confidence limits at ``level``."""
        return EMMeans(self.result, self.specs, self.by, self.levels, self.L, self.offset, self.type,
                       level, self.lmer_df).table

    # ---------------------------------------------------------------- contrasts
    def contrast(self, method: str | dict = "pairwise", adjust: str | None = None, by: Any = "same",
                 ref: int = 0) -> Contrasts:
        """Contrasts among the means within each by group (emmeans' ``contrast``).

        ``method``: "pairwise" (``a - b`` for every pair in level order),
        "revpairwise", "trt.vs.ctrl" (each level minus level ``ref``),
        "consec" (adjacent levels), "eff" (each level minus the mean), or a dict
        ``{name: coefficients over the levels}``. ``adjust`` (default as
        emmeans: "tukey" for pairwise, "none" for a dict, "sidak" for the
        others in place of emmeans' dunnettx / mvt): see :data:`ADJUSTMENTS`;
        Tukey applies to pairwise comparisons only (else Sidak, with a note,
        as emmeans). On the response scale of a log or logit link the
        contrasts are ratios (``ratio`` / ``odds.ratio``), as emmeans reports them.
        """
        by_vars = self.by if by == "same" else ([] if by is None else ([by] if isinstance(by, str) else list(by)))
        if isinstance(method, dict):
            default = "none"
        elif method in ("pairwise", "revpairwise"):
            default = "tukey"
        elif method in ("trt.vs.ctrl", "consec", "eff"):
            default = "sidak" if method != "eff" else "fdr"
        else:
            raise ValueError(f"unknown contrast method {method!r}; use 'pairwise', 'revpairwise', "
                             "'trt.vs.ctrl', 'consec', 'eff' or a dict of coefficients")
        adjust = default if adjust is None else adjust
        if adjust not in ADJUSTMENTS:
            raise ValueError(f"unknown adjust {adjust!r}; use one of {', '.join(ADJUSTMENTS)}")
        notes: list[str] = []
        pairwise = method in ("pairwise", "revpairwise")
        if adjust == "tukey" and not pairwise:
            notes.append("Note: adjust = 'tukey' was changed to 'sidak' because 'tukey' is only "
                         "appropriate for one set of pairwise comparisons")
            adjust = "sidak"
        lev = self.levels.reset_index(drop=True)
        inner = [v for v in self.specs + self.by if v not in by_vars]
        groups = (lev.groupby([lev[b].astype(str) for b in by_vars], sort=False).indices
                  if by_vars else {(): np.arange(len(lev))})
        beta = self.result.fe_params.to_numpy(dtype=float)
        V = self.result.vcov.to_numpy(dtype=float)
        est_all = self.estimate
        ratio = self.type == "response" and _link_name(self.result) in ("log", "logit")
        sep = " / " if ratio else " - "
        rows, Ls = [], []
        for key, idx in groups.items():
            idx = np.asarray(idx)
            labels = [" ".join(_label(v, lev.loc[i, v], lev[v]) for v in inner) for i in idx]
            C, names = _contrast_matrix(method, labels, ref, sep)
            Lc = C @ self.L[idx]
            est = C @ est_all[idx]
            se = np.sqrt(np.einsum("ij,jk,ik->i", Lc, V, Lc))
            df, _ = _df(self.result, Lc, self.lmer_df) if self.df_method not in ("asymptotic",) else (
                np.full(len(est), np.inf), "asymptotic")
            stat = est / se
            p = _two_sided(stat, df)
            if adjust == "tukey":
                p = _tukey_p(stat, len(idx), df)
            elif adjust == "scheffe":
                p = _scheffe_p(stat, _rank(C), df)
            else:
                p = adjust_pvalues(p, adjust)
            keyt = key if isinstance(key, tuple) else (key,)
            for j in range(len(est)):
                row = {"contrast": names[j]}
                for b, kv in zip(by_vars, keyt):
                    row[b] = lev.loc[idx[0], b]
                if ratio:
                    row["odds.ratio" if _link_name(self.result) == "logit" else "ratio"] = float(np.exp(est[j]))
                    row["SE"] = float(np.exp(est[j]) * se[j])
                else:
                    row["estimate"] = float(est[j])
                    row["SE"] = float(se[j])
                row["df"] = float(df[j])
                row["t.ratio" if np.isfinite(df[j]) else "z.ratio"] = float(stat[j])
                row["p.value"] = float(p[j])
                rows.append(row)
            Ls.append(Lc)
        if adjust not in ("none",):
            sizes = {len(g) for g in groups.values()}
            notes.append(f"P value adjustment: {adjust} method"
                         + (f" for comparing a family of {next(iter(sizes))} estimates" if pairwise
                            and adjust == "tukey" and len(sizes) == 1 else ""))
        if ratio:
            notes.append("Tests are performed on the log(odds ratio) scale" if _link_name(self.result) == "logit"
                         else "Tests are performed on the log scale")
        del beta
        return Contrasts(pd.DataFrame(rows), np.vstack(Ls) if Ls else np.zeros((0, self.L.shape[1])), adjust,
                         notes)

    def pairs(self, adjust: str | None = None, reverse: bool = False, by: Any = "same") -> Contrasts:
        """All pairwise differences (emmeans' ``pairs``), Tukey-adjusted by default."""
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust, by=by)

    def plot(self, ax=None):
        """Means with their confidence intervals, one panel row per by group
        (emmeans' ``plot``); a matplotlib Figure built without pyplot.

        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> fig = m.emmeans("period", type="response").plot()  # doctest: +SKIP
        """
        from interlace.results.plots import _figure

        tab = self.table
        est_col = [c for c in tab.columns if c in ("emmean", "prob", "rate", "response")][0]
        lo, hi = [c for c in tab.columns if c.endswith("LCL") or c == "lower.CL"][0], \
            [c for c in tab.columns if c.endswith("UCL") or c == "upper.CL"][0]
        groups = (tab.groupby([tab[b].astype(str) for b in self.by], sort=False).indices
                  if self.by else {"": np.arange(len(tab))})
        fig = None
        if ax is None:
            fig = _figure(figsize=(5.5, 1.0 + 0.45 * len(tab) + 0.3 * len(groups)))
            axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
        else:
            axes = [ax] * len(groups)
            fig = ax.figure
        for a, (key, idx) in zip(axes, groups.items()):
            idx = np.asarray(idx)
            y = np.arange(len(idx))
            labels = [" ".join(str(tab.loc[i, v]) for v in self.specs) for i in idx]
            a.errorbar(tab[est_col].to_numpy()[idx], y,
                       xerr=[tab[est_col].to_numpy()[idx] - tab[lo].to_numpy()[idx],
                             tab[hi].to_numpy()[idx] - tab[est_col].to_numpy()[idx]],
                       fmt="o", color="C0", ecolor="C0", capsize=3)
            a.set_yticks(y)
            a.set_yticklabels(labels)
            a.set_ylim(-0.6, len(idx) - 0.4)
            if self.by:
                k = key if isinstance(key, tuple) else (key,)
                a.set_title(", ".join(f"{b} = {v}" for b, v in zip(self.by, k)), fontsize=9, loc="left")
        axes[-1].set_xlabel(f"{est_col} ({self.level:.0%} CI)")
        if ax is None:
            fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        lines = [self.table.to_string(index=False)]
        if self.type == "response":
            lines.append("Intervals are back-transformed from the " + _link_name(self.result) + " scale")
        lines.append(f"Confidence level used: {self.level:g}; degrees of freedom: {self.df_method}")
        return "\n".join(lines + self.notes)

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False)


def _is_number(x) -> bool:
    try:
        float(str(x))
        return True
    except ValueError:
        return False


def _label(var: str, value, column: pd.Series) -> str:
    """A level in a contrast label as emmeans writes it: prefixed by the variable
    when every level is a number (``period1``), parenthesized when it holds an
    operator (``(3+)``)."""
    s = str(value)
    if all(_is_number(v) for v in column.unique()):
        s = f"{var}{s}"
    if any(ch in s for ch in "+-*/"):
        s = f"({s})"
    return s


def _contrast_matrix(method, labels: list[str], ref: int, sep: str) -> tuple[np.ndarray, list[str]]:
    k = len(labels)
    rows, names = [], []
    if isinstance(method, dict):
        for name, coef in method.items():
            coef = np.asarray(coef, dtype=float)
            if coef.shape != (k,):
                raise ValueError(f"contrast {name!r} has {coef.shape[0] if coef.ndim else 1} coefficients for "
                                 f"{k} means ({', '.join(labels)})")
            rows.append(coef)
            names.append(str(name))
    elif method in ("pairwise", "revpairwise"):
        for i in range(k):
            for j in range(i + 1, k):
                c = np.zeros(k)
                if method == "pairwise":
                    c[i], c[j] = 1.0, -1.0
                    names.append(f"{labels[i]}{sep}{labels[j]}")
                else:
                    c[j], c[i] = 1.0, -1.0
                    names.append(f"{labels[j]}{sep}{labels[i]}")
                rows.append(c)
        if method == "revpairwise":  # emmeans lists them by the later level
            order = sorted(range(len(rows)), key=lambda r: (int(np.argmax(rows[r])), int(np.argmin(rows[r]))))
            rows, names = [rows[r] for r in order], [names[r] for r in order]
    elif method == "trt.vs.ctrl":
        for i in range(k):
            if i == ref:
                continue
            c = np.zeros(k)
            c[i], c[ref] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]}{sep}{labels[ref]}")
    elif method == "consec":
        for i in range(1, k):
            c = np.zeros(k)
            c[i], c[i - 1] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]}{sep}{labels[i - 1]}")
    elif method == "eff":
        for i in range(k):
            c = np.full(k, -1.0 / k)
            c[i] += 1.0
            rows.append(c)
            names.append(f"{labels[i]} effect")
    return np.vstack(rows), names


# --------------------------------------------------------------------------- entry point


def emmeans(result, specs: Any, by: Any = None, at: dict | None = None, type: str = "link",
            level: float = 0.95, lmer_df: Any = "kenward-roger"):
    """Estimated marginal means of ``result`` for the factor(s) ``specs`` (emmeans' ``emmeans``).

    ``specs``: a factor name, a list of names, or a formula ``"~ a | b"``
    (means of ``a`` within each level of ``b``); ``"pairwise ~ a | b"``
    returns ``(means, means.pairs())`` as emmeans' ``$emmeans`` / ``$contrasts``.
    ``by``: by-group variables (also after ``|``). ``at``: values for
    covariates (default their means) or a subset of a factor's levels.
    ``type``: ``"link"`` (default) or ``"response"`` (back-transformed, SEs by
    the delta method). ``lmer_df``: for LMMs "kenward-roger" / "satterthwaite"
    (from interlace.inference.lmertest when present), "asymptotic", a number
    or a callable ``f(result, L_row) -> df``.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> m.emmeans("period", type="response").table["prob"].round(3).tolist()
    [0.198, 0.084, 0.074, 0.048]
    """
    if type not in ("link", "response"):
        raise ValueError(f"type must be 'link' or 'response', got {type!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    spec_vars, by_vars, method = _parse_specs(specs, by)
    grid, factors = reference_grid(result, at)
    wanted = spec_vars + by_vars
    if not spec_vars:
        raise ValueError("specs names no variable")
    bad = [v for v in wanted if v not in grid.columns]
    if bad:
        raise ValueError(f"specs/by name variable(s) not in the fixed part of the model: {', '.join(bad)} "
                         f"(its variables: {', '.join(grid.columns)})")
    dup = [v for v in by_vars if v in spec_vars]
    if dup:
        raise ValueError(f"{', '.join(dup)} is both a spec and a by variable")
    X, off = _grid_X(result, grid)
    axes = {v: list(dict.fromkeys(grid[v].tolist())) for v in wanted}
    # emmeans' order: the first variable varies fastest, by groups slowest
    combos = [tuple(reversed(c)) for c in itertools.product(*[axes[v] for v in reversed(wanted)])]
    L, O, keep = [], [], []
    key = grid[wanted].astype(str).agg("\x1f".join, axis=1).to_numpy() if wanted else None
    for c in combos:
        sel = key == "\x1f".join(map(str, c))
        if not sel.any():
            continue
        L.append(X[sel].mean(axis=0))
        O.append(off[sel].mean())
        keep.append(c)
    levels = pd.DataFrame(keep, columns=wanted)
    notes = []
    others = [f for f in factors if f not in wanted]
    if others:
        notes.append(f"Results are averaged over the levels of: {', '.join(others)}")
    emm = EMMeans(result, spec_vars, by_vars, levels, np.vstack(L), np.asarray(O), type, level, lmer_df,
                  notes=notes)
    if method:
        return emm, emm.contrast(method)
    return emm
