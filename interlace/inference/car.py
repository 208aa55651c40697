"""Tests of whole model terms for one fit: car::Anova's Type II / III Wald
chi-square tests and R's drop1 likelihood-ratio tests.

Type III tests each term's coefficients = 0 given all others (intercept
included). Type II tests each term after every term except those that
contain it (its higher-order relatives): car's hypothesis matrix is the
conjugate complement, in the metric of vcov, of the relatives' coefficients
within the span of the term's and the relatives' coefficients (Monette's
``ConjComp``). The statistic is the Wald chi-square (Lb)'(L V L')^{-1}(Lb).
Both depend on the coding of factors (treatment contrasts here, as in R by
default; car warns that Type III needs sum-to-zero contrasts to test
meaningful hypotheses with interactions).

For linear mixed models car's default is the same Wald chi-square; F tests
with Satterthwaite / Kenward-Roger df are lmerTest's ``anova`` (helper
``lmer``'s ``interlace.inference.lmertest.anova_table``).

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> tab = Anova(m)
>>> tab.index.tolist(), int(tab.loc["period", "Df"])
(['period'], 3)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["Anova", "drop1", "term_columns", "wald_chisq"]


def term_columns(result) -> list[tuple[str, list[int], frozenset]]:
    """(term name, its columns in fe_params, its variables) for each term of the
    fixed part, in formula order; the intercept is ``"(Intercept)"``."""
    from interlace.formula.fixed import LazyModelSpec

    spec = result.model_frame.spec
    fs = spec.fixed_spec
    if isinstance(fs, LazyModelSpec):
        fs = fs.spec
    keep = list(spec.keep_columns)
    pos = {c: i for i, c in enumerate(keep)}  # full-matrix column -> kept column
    out = []
    for term, sl in fs.term_slices.items():
        cols = [pos[c] for c in range(sl.start, sl.stop) if c in pos]
        factors = frozenset(str(f) for f in term.factors if str(f) != "1")
        name = "(Intercept)" if not factors else str(term)
        if cols:
            out.append((name, cols, factors))
    return out


def wald_chisq(beta: np.ndarray, V: np.ndarray, L: np.ndarray) -> tuple[float, int]:
    """(Wald chi-square, df) for H0: L beta = 0 (rows of L linearly independent)."""
    Lb = L @ beta
    M = L @ V @ L.T
    return float(Lb @ np.linalg.solve(M, Lb)), int(L.shape[0])


def _conj_comp(X: np.ndarray, Z: np.ndarray, ip: np.ndarray) -> np.ndarray:
    """car's ConjComp(X, Z, ip): the conjugate complement of the projection of
    span(X) into span(Z) with respect to the inner product ``ip``."""
    A = Z.T @ ip @ X
    Q, R = np.linalg.qr(A, mode="complete")
    tol = 1e-7 * max(1.0, np.abs(R).max()) if R.size else 0.0
    rank = int(np.sum(np.abs(np.diag(R)) > tol)) if R.size else 0
    if rank == 0:
        return Z
    return Z @ Q[:, rank:]


def Anova(result, type: int | str = 2, test: str = "Chisq", ddf: str = "Kenward-Roger") -> pd.DataFrame:
    """car::Anova for a mixed model: Wald chi-square tests of each fixed-effect
    term (``type`` 2 / "II" or 3 / "III"). Columns ``Chisq``, ``Df``,
    ``Pr(>Chisq)``, rows named by the terms (Type III includes ``(Intercept)``).
    ``test="F"`` (linear mixed models) gives F tests with Kenward-Roger or
    Satterthwaite denominator df (``ddf``), as car::Anova(test = "F") does
    through pbkrtest: delegated to lmerTest's port
    (``interlace.inference.lmertest.anova_table``, the lmer issue's module);
    Kenward-Roger needs a REML fit, an ML fit gets Satterthwaite's df.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> round(float(Anova(m, type=3).loc["period", "Chisq"]), 2)
    21.62
    """
    t = str(type).upper()
    t = {"2": "II", "3": "III"}.get(t, t)
    if t not in ("II", "III"):
        raise ValueError(f"type must be 2 / 'II' or 3 / 'III', got {type!r}")
    if test not in ("Chisq", "F"):
        raise ValueError(f"test must be 'Chisq' or 'F', got {test!r}")
    if test == "F":
        if result.optinfo.get("engine") != "lmm":
            raise ValueError("test='F' is for linear mixed models; GLMMs use the Wald chi-square (test='Chisq')")
        try:
            from interlace.inference.lmertest import anova_table
        except ImportError as exc:
            raise NotImplementedError("F tests need interlace.inference.lmertest (Kenward-Roger / "
                                      "Satterthwaite df), not available in this build") from exc
        from interlace.inference.emmeans import _lmm_ddf

        return anova_table(result, type=3 if t == "III" else 2, ddf=_lmm_ddf(result, ddf))
    beta = result.fe_params.to_numpy(dtype=float)
    V = result.vcov.to_numpy(dtype=float)
    p = beta.shape[0]
    I = np.eye(p)
    terms = term_columns(result)
    rows = {}
    for name, cols, fac in terms:
        if t == "III":
            L = I[cols]
        else:
            if name == "(Intercept)":
                continue
            rel = [c for n2, c2, f2 in terms if n2 != name and n2 != "(Intercept)" and fac <= f2 for c in c2]
            h2 = I[rel + cols]
            if rel:
                L = _conj_comp(I[rel].T, h2.T, V).T
            else:
                L = h2
            L = L[~np.all(np.abs(L) < 1e-15, axis=1)]
        if L.shape[0] == 0:
            rows[name] = (np.nan, 0, np.nan)
            continue
        chisq, df = wald_chisq(beta, V, L)
        rows[name] = (chisq, df, float(special.chdtrc(df, chisq)))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["Chisq", "Df", "Pr(>Chisq)"])
    out["Df"] = out["Df"].astype(int)
    out.attrs["heading"] = f"Analysis of Deviance Table (Type {t} Wald chisquare tests)"
    return out


def _drop_scope(terms) -> list[str]:
    """R's drop.scope: the terms not contained in any other term (intercept excluded)."""
    names = [(n, f) for n, _c, f in terms if n != "(Intercept)"]
    return [n for n, f in names if not any(f < f2 for _n2, f2 in names)]


def drop1(result, test: str = "Chisq") -> pd.DataFrame:
    """R's drop1 for a mixed model: refit without each droppable fixed-effect
    term (respecting marginality) and test by likelihood ratio. Rows
    ``<none>`` and the terms; columns ``npar`` (parameters removed), ``AIC``,
    ``LRT``, ``Pr(Chi)`` (``test="none"``: the first two only).

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> round(float(drop1(m).loc["period", "LRT"]), 2)
    18.53
    """
    if test not in ("Chisq", "none"):
        raise ValueError(f"test must be 'Chisq' or 'none', got {test!r}")
    from interlace.inference.tidy import update

    terms = term_columns(result)
    scope = _drop_scope(terms)
    rows = {"<none>": (np.nan, float(result.aic), np.nan, np.nan)}
    for name in scope:
        reduced = update(result, f"~ . - {name}")
        npar = int(result.df_model - reduced.df_model)
        lrt = max(0.0, 2.0 * (result.llf - reduced.llf))
        p = float(special.chdtrc(npar, lrt)) if npar > 0 else np.nan
        rows[name] = (npar, float(reduced.aic), lrt, p)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "AIC", "LRT", "Pr(Chi)"])
    if test == "none":
        out = out[["npar", "AIC"]]
    return out
