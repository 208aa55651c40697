"""Tidy frames as broom.mixed makes them, statsmodels-style accessors and R's update().

``tidy(m, effects=...)``: ``"fixed"`` (term, estimate, std.error, statistic,
p.value; ``conf_int=True`` adds conf.low / conf.high, Wald), ``"ran_pars"``
(group, term ``sd__X`` / ``cor__X.Y``, estimate; LMMs add ``Residual``
``sd__Observation``), ``"ran_vals"`` (group, level, term, estimate,
std.error: the conditional modes and their conditional SDs). Term names are
interlace's (``Intercept``, ``period[T.2]``); broom.mixed prints R's
(``(Intercept)``, ``period2``). LMMs have no p.value column, as broom.mixed
for lmer fits without lmerTest.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> list(m.tidy(conf_int=True).columns)
['effect', 'term', 'estimate', 'std.error', 'statistic', 'p.value', 'conf.low', 'conf.high']
>>> m.update("~ . - period").fe_params.index.tolist()
['Intercept']
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["tidy", "glance", "conf_int", "wald_pvalues", "update", "update_formula", "EFFECTS"]

EFFECTS = ("fixed", "ran_pars", "ran_vals")


def _is_lmm(result) -> bool:
    return result.optinfo.get("engine") == "lmm"


def wald_pvalues(result) -> pd.Series:
    """Two-sided normal p-values of the fixed effects (summary's Pr(>|z|))."""
    z = (result.fe_params / result.fe_bse).to_numpy(dtype=float)
    return pd.Series(2.0 * special.ndtr(-np.abs(z)), index=result.fe_params.index, name="pvalues")


def conf_int(result, alpha: float = 0.05) -> pd.DataFrame:
    """Wald confidence intervals of the fixed effects, columns 0 and 1 (statsmodels' layout)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    q = special.ndtri(1.0 - alpha / 2.0)
    est, se = result.fe_params, result.fe_bse
    return pd.DataFrame({0: est - q * se, 1: est + q * se})


def _fixed(result, conf: bool, level: float) -> pd.DataFrame:
    est = result.fe_params.to_numpy(dtype=float)
    se = result.fe_bse.to_numpy(dtype=float)
    out = pd.DataFrame({"effect": "fixed", "term": list(result.fe_params.index), "estimate": est,
                        "std.error": se, "statistic": est / se})
    if not _is_lmm(result):
        out["p.value"] = 2.0 * special.ndtr(-np.abs(est / se))
    if conf:
        q = special.ndtri(0.5 * (1.0 + level))
        out["conf.low"] = est - q * se
        out["conf.high"] = est + q * se
    return out


def _r_term(name: Any) -> str:
    return "(Intercept)" if name == "Intercept" else str(name)


def _ran_pars(result) -> pd.DataFrame:
    vc = result.varcorr
    rows = []
    for grp, sub in vc.groupby("grp", sort=False):
        if grp == "Residual":
            continue
        var = sub[sub["var2"].isna()]
        names = [str(v) for v in var["var1"]]
        sd = dict(zip(names, var["sdcor"].astype(float)))
        cor = {(str(a), str(b)): float(c) for a, b, c in
               sub[sub["var2"].notna()][["var1", "var2", "sdcor"]].itertuples(index=False)}
        for i, a in enumerate(names):
            rows.append((grp, f"sd__{_r_term(a)}", sd[a]))
            for b in names[i + 1:]:
                c = cor.get((a, b), cor.get((b, a), np.nan))
                rows.append((grp, f"cor__{_r_term(a)}.{_r_term(b)}", c))
    if _is_lmm(result):
        rows.append(("Residual", "sd__Observation", float(np.sqrt(result.scale))))
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    return out


def _ran_vals(result) -> pd.DataFrame:
    frames = []
    for grp, modes in result.random_effects.items():
        sds = result.random_effects_sd.get(grp)
        for col in modes.columns:
            frames.append(pd.DataFrame({
                "effect": "ran_vals", "group": grp, "level": [str(v) for v in modes.index],
                "term": _r_term(col), "estimate": modes[col].to_numpy(dtype=float),
                "std.error": (sds[col].to_numpy(dtype=float) if sds is not None and col in sds.columns
                              else np.nan)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["effect", "group", "level", "term", "estimate", "std.error"])


def tidy(result, effects: str | list[str] = "fixed", conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
    """broom.mixed's ``tidy``: one row per estimate (see the module docstring).
    ``effects`` is one of ``"fixed"``, ``"ran_pars"``, ``"ran_vals"`` or a list of them."""
    which = [effects] if isinstance(effects, str) else list(effects)
    bad = [e for e in which if e not in EFFECTS]
    if bad:
        raise ValueError(f"effects must be among {', '.join(EFFECTS)}; got {', '.join(map(repr, bad))}")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    parts = []
    for e in which:
        if e == "fixed":
            parts.append(_fixed(result, conf_int, conf_level))
        elif e == "ran_pars":
            parts.append(_ran_pars(result))
        else:
            parts.append(_ran_vals(result))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def glance(result) -> pd.DataFrame:
    """broom.mixed's ``glance``: nobs, sigma, logLik, AIC, BIC, deviance, df.residual.

    ``deviance`` is lme4's: -2 logLik for an LMM fitted by ML, the sum of the
    squared deviance residuals for a GLMM."""
    sigma = float(np.sqrt(result.scale)) if _is_lmm(result) else 1.0
    dev = -2.0 * result.llf if _is_lmm(result) else float(result.deviance)
    return pd.DataFrame({"nobs": [int(result.nobs)], "sigma": [sigma], "logLik": [float(result.llf)],
                         "AIC": [float(result.aic)], "BIC": [float(result.bic)], "deviance": [dev],
                         "df.residual": [int(result.df_resid)]})


# --------------------------------------------------------------------------- update


def _split_top(text: str) -> list[tuple[str, str]]:
    """Top-level additive pieces of a formula side as (sign, text)."""
    out, depth, cur, sign = [], 0, "", "+"
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if depth == 0 and ch in "+-":
            if cur.strip():
                out.append((sign, cur.strip()))
            cur, sign = "", ch
            continue
        cur += ch
    if cur.strip():
        out.append((sign, cur.strip()))
    return out


def _expand_star(piece: str) -> list[str]:
    """``a * b`` -> ``a``, ``b``, ``a:b`` (R's crossing), other pieces unchanged."""
    if "*" not in piece or "|" in piece or "(" in piece:
        return [piece]
    parts = [p.strip() for p in piece.split("*")]
    out: list[str] = []
    n = len(parts)
    for size in range(1, n + 1):
        from itertools import combinations

        for combo in combinations(parts, size):
            out.append(":".join(combo))
    return out


def _key(piece: str) -> str:
    s = "".join(piece.split())
    if "|" in s:
        return s
    return ":".join(sorted(s.split(":")))


def update_formula(old: str, new: str) -> str:
    """R's ``update.formula``: ``.`` stands for the old side; ``- term`` removes a
    term (interactions in either order; ``a * b`` is expanded first).

    >>> update_formula("y ~ a * b + (1 | g)", "~ . - a:b")
    'y ~ a + b + (1 | g)'
    >>> update_formula("y ~ x + (1 | g)", "log(y) ~ . + z")
    'log(y) ~ x + (1 | g) + z'
    """
    if "~" not in old:
        raise ValueError(f"the fitted formula {old!r} has no '~'")
    o_lhs, _, o_rhs = old.partition("~")
    if "~" in new:
        n_lhs, _, n_rhs = new.partition("~")
    else:
        n_lhs, n_rhs = "", new
    n_lhs = n_lhs.strip()
    lhs = o_lhs.strip() if n_lhs in ("", ".") else re.sub(r"(?<![\w.])\.(?![\w.])", o_lhs.strip(), n_lhs)
    terms: list[str] = []
    intercept: str | None = None
    for sign, piece in _split_top(n_rhs):
        if piece == ".":
            items = [(s, x) for s, x in _split_top(o_rhs)]
        else:
            items = [(sign, piece)]
        for s, x in items:
            if piece == "." and sign == "-":
                s = "-" if s == "+" else "+"
            if x in ("0", "1"):  # "+ 0" or "- 1" removes the intercept, "+ 1" restores it
                intercept = None if (s, x) == ("+", "1") else "0"
                continue
            for e in _expand_star(x) if (s == "-" or piece != ".") else [x]:
                if s == "+":
                    if _key(e) not in map(_key, terms):
                        terms.append(e)
                else:
                    keys = [_key(t) for t in terms]
                    hit = [i for i, k in enumerate(keys) if k == _key(e)]
                    if not hit:
                        # the term may sit inside an unexpanded a * b of the old formula
                        for i, t in enumerate(list(terms)):
                            ex = _expand_star(t)
                            if len(ex) > 1 and _key(e) in map(_key, ex):
                                terms[i:i + 1] = [u for u in ex if _key(u) != _key(e)]
                                hit = [-1]
                                break
                    if not hit:
                        raise ValueError(f"update: term {e!r} is not in the model formula {old!r}")
                    for i in sorted((h for h in hit if h >= 0), reverse=True):
                        del terms[i]
    rhs = " + ".join(([intercept] if intercept else []) + terms) or "1"
    return f"{lhs} ~ {rhs}"


def update(result, formula: str | None = None, data: Any = None, **kwargs):
    """R's ``update``: refit ``result`` with a changed formula (``"~ . - x"``,
    ``". ~ . + z"``), other ``data`` (same columns) and/or other arguments of
    :func:`interlace.glmer` (``family=``, ``nAGQ=``, ...).

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> m.update("~ . - period").formula
    'cbind(incidence, size - incidence) ~ (1 | herd)'
    """
    call = getattr(result.model_frame, "call", None)
    if call is None:
        raise ValueError("this fit does not carry its call (fitted before interlace recorded it, or on Dask); "
                         "refit with interlace.glmer")
    args = dict(call)
    fit = args.pop("__fit__", None)  # the function that fitted it (glmer or lmer), held by reference
    if not callable(fit):
        raise ValueError("this fit does not record the function that fitted it; refit with interlace.glmer")
    unknown = [k for k in kwargs if k not in args]
    if unknown:
        raise TypeError(f"update() got unknown argument(s): {', '.join(unknown)}")
    args.update(kwargs)
    if formula is not None:
        if not isinstance(formula, str):
            raise TypeError(f"formula must be a string such as '~ . - x', got {type(formula).__name__}")
        args["formula"] = update_formula(call["formula"], formula)
    if data is not None:
        args["data"] = data
    return fit(**args)
