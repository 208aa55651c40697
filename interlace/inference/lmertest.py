"""lmerTest's inference for linear mixed models: t-tests and F-tests with
Satterthwaite's or Kenward-Roger's (pbkrtest) denominator degrees of freedom,
the Type I/II/III F-tables of ``anova(<lmerModLmerTest>)`` and ``ranova``.

Satterthwaite (lmerTest's ``contest1D`` / ``contestMD``): the variance
parameters are varpar = (theta, sigma); their covariance is 2 H^{-1}, H the
Hessian of the unprofiled deviance (REML or ML, as fitted) in varpar, here by
central differences of its exact gradient; the Jacobian of
vcov(beta) = sigma^2 (RX RX')^{-1} in varpar by central differences. For a
contrast L, df = 2 (L'CL)^2 / (g' A g), g_k = L' (dC/dvarpar_k) L.

Kenward-Roger (pbkrtest's ``vcovAdj`` and ``Lb_ddf``/``.KR_adjust``): the
adjusted covariance of beta and the df from the marginal covariance
Sigma = sum_r gamma_r G_r (dense n x n; for n up to a few thousand rows). As
pbkrtest, prior weights are not used in Sigma (its residual G is I).

Example
-------
>>> import interlace
>>> m = interlace.lmer("Reaction ~ Days + (Days | Subject)", interlace.datasets.load("sleepstudy"))
>>> tab = coef_table(m)
>>> round(float(tab.loc["Days", "df"]), 2)  # lmerTest: 17
17.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["coef_table", "contest", "anova_table", "ranova", "vcov_varpar", "kr_vcov"]

DDF_METHODS = ("Satterthwaite", "Kenward-Roger")


def _check_lmm(result) -> None:
    if result.optinfo.get("engine") != "lmm" or result.model_frame is None:
        raise TypeError("lmerTest's tests are defined for linear mixed models (interlace.lmer fits)")


def _ddf_name(ddf: str) -> str:
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    for m in DDF_METHODS:
        if key in (m.lower(), m.lower()[:4], "kr" if m.startswith("K") else "satt"):
            return m
    raise ValueError(f"unknown ddf {ddf!r}; use 'Satterthwaite' or 'Kenward-Roger'")


def _cache(result) -> dict:
    return result.__dict__.setdefault("_lmertest_cache", {})


def _objective(result):
    from interlace.objective.lmm import LMMObjective

    # a fresh objective: the fit's own keeps its state at the optimum
    return LMMObjective(result.model_frame, reml=bool(result.optinfo.get("REML", False)))


def _varpar(result) -> np.ndarray:
    return np.append(result.theta.to_numpy(dtype=float), np.sqrt(result.scale))


# --------------------------------------------------------------------------- Satterthwaite


def vcov_varpar(result) -> tuple[np.ndarray, list[np.ndarray]]:
    """(covariance of varpar = (theta, sigma), Jacobian of vcov(beta) as a list of p x p
    matrices, one per varpar), as lmerTest's ``vcov_varpar`` and ``Jac_list``."""
    c = _cache(result)
    if "satt" in c:
        return c["satt"]
    obj = _objective(result)
    x0 = _varpar(result)
    k = len(x0)

    def grad(x):
        return obj.gradient_varpar(x[:-1], x[-1])

    def vcov_beta(x):
        obj._solve(x[:-1])
        return x[-1] ** 2 * obj.rx_inverse()

    H = np.empty((k, k))
    J = []
    for i in range(k):
        h = 1e-4 * max(1.0, abs(x0[i]))
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        H[:, i] = (grad(xp) - grad(xm)) / (2 * h)
        J.append((vcov_beta(xp) - vcov_beta(xm)) / (2 * h))
    H = 0.5 * (H + H.T)
    A = 2.0 * np.linalg.pinv(H)  # lmerTest: 2 * MASS::ginv(h)
    c["satt"] = (A, J)
    return A, J


def _satt_1d(result, L: np.ndarray) -> tuple[float, float]:
    """(variance of L'beta, Satterthwaite df)."""
    A, J = vcov_varpar(result)
    C = result.vcov.to_numpy(dtype=float)
    var = float(L @ C @ L)
    g = np.array([L @ Jk @ L for Jk in J])
    return var, 2.0 * var * var / float(g @ A @ g)


# --------------------------------------------------------------------------- Kenward-Roger


def _sigma_g(result) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """pbkrtest's SigmaG: the marginal covariance Sigma = sum gamma_r G_r, the G_r and gamma."""
    from interlace.objective.predictor import ReStructure

    mf = result.model_frame
    re = ReStructure(mf.terms)
    n = mf.n
    theta = result.theta.to_numpy(dtype=float)
    s2 = float(result.scale)
    G, gam = [], []
    for j, lam in enumerate(re.lambdas(theta)):
        k = int(re.kdim[j])
        cov = s2 * lam @ lam.T
        codes = re.codes[j]
        nl = int(re.nlev[j])
        Zs = []
        for a in range(k):
            Za = np.zeros((n, nl))
            Za[np.arange(n), codes] = re.z[:, re.kcol[j] + a]
            Zs.append(Za)
        for b in range(k):  # lower triangle, column by column (R's lower.tri order)
            for a in range(b, k):
                M = Zs[a] @ Zs[b].T
                G.append(M if a == b else M + M.T)
                gam.append(cov[a, b])
    G.append(np.eye(n))
    gam.append(s2)
    gam = np.array(gam)
    Sigma = sum(g * Gr for g, Gr in zip(gam, G))
    return Sigma, G, gam


def kr_vcov(result) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """pbkrtest's ``vcovAdj``: (adjusted vcov of beta PhiA, the P matrices, W)."""
    _check_lmm(result)
    if not result.optinfo.get("REML", False):
        raise ValueError("Kenward-Roger's method is only available for REML fits (lmer(..., REML=True))")
    c = _cache(result)
    if "kr" in c:
        return c["kr"]
    n = result.nobs
    if n > 3000:
        raise ValueError(f"Kenward-Roger needs dense {n} x {n} matrices here; use ddf='Satterthwaite' "
                         "for a model of this size")
    import scipy.linalg as sla

    X = np.asarray(result.model_frame.X, float)
    Phi = result.vcov.to_numpy(dtype=float)
    Sigma, G, _gam = _sigma_g(result)
    cf = sla.cho_factor(Sigma)
    SigmaInv = sla.cho_solve(cf, np.eye(n))
    TT = SigmaInv @ X
    HH = [Gr @ SigmaInv for Gr in G]
    OO = [H @ X for H in HH]
    r = len(G)
    PP = [-(O.T @ TT) for O in OO]
    PP = [0.5 * (P + P.T) for P in PP]
    QQ = {}
    for a in range(r):
        for b in range(a, r):
            QQ[a, b] = OO[a].T @ SigmaInv @ OO[b]
    IE2 = np.empty((r, r))
    for a in range(r):
        PhiPa = Phi @ PP[a]
        for b in range(a, r):
            kt = float(np.sum(HH[a].T * HH[b]))
            IE2[a, b] = IE2[b, a] = kt - 2.0 * float(np.sum(Phi * QQ[a, b])) + float(np.sum(PhiPa * (PP[b] @ Phi)))
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2.0 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    p = X.shape[1]
    UU = np.zeros((p, p))
    for a in range(r - 1):
        for b in range(a + 1, r):
            UU += W[a, b] * (QQ[a, b] - PP[a] @ Phi @ PP[b])
    UU = UU + UU.T
    for a in range(r):
        UU += W[a, a] * (QQ[a, a] - PP[a] @ Phi @ PP[a])
    PhiA = Phi + 2.0 * Phi @ UU @ Phi
    c["kr"] = (PhiA, PP, W)
    return c["kr"]


def _kr_adjust(result, L: np.ndarray) -> dict:
    """pbkrtest's .KR_adjust for the hypothesis L beta = 0 (L: q x p, full row rank)."""
    PhiA, P, W = kr_vcov(result)
    Phi = result.vcov.to_numpy(dtype=float)
    beta = result.fe_params.to_numpy(dtype=float)
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    ThetaPhi = Theta @ Phi
    A1 = A2 = 0.0
    r = len(P)
    us = [ThetaPhi @ Pi @ Phi for Pi in P]
    for a in range(r):
        for b in range(a, r):
            e = 1.0 if a == b else 2.0
            A1 += e * W[a, b] * np.trace(us[a]) * np.trace(us[b])
            A2 += e * W[a, b] * float(np.sum(us[a] * us[b].T))
    q = int(np.linalg.matrix_rank(L))
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = 0.0 if V1 == 0 else (1 - A2 / q) / V1  # pbkrtest's .divZero
    rho = ratio ** 2 * V0 / V2 / q
    df2 = 4 + (q + 2) / (q * rho - 1)
    fscale = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
    Lb = L @ beta
    wald = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
    return {"ndf": q, "ddf": float(df2), "FstatU": wald / q, "Fscale": float(fscale), "PhiA": PhiA}


# --------------------------------------------------------------------------- t and F tests


def _pt2(t: float, df: float) -> float:
    return float(2.0 * special.stdtr(df, -abs(t)))


def contest(result, L, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's ``contest``: a t-test for one contrast (L a vector) or an F-test
    for several (L a matrix, one row per contrast), with ``ddf``
    "Satterthwaite" or "Kenward-Roger"."""
    _check_lmm(result)
    meth = _ddf_name(ddf)
    L = np.asarray(L, dtype=float)
    p = len(result.fe_params)
    if L.shape[-1] != p:
        raise ValueError(f"L must have {p} columns (one per fixed effect), got shape {L.shape}")
    if L.ndim == 1:
        est, se, df = _contest1d(result, L, meth)
        t = est / se
        return pd.DataFrame({"Estimate": [est], "Std. Error": [se], "df": [df], "t value": [t],
                             "Pr(>|t|)": [_pt2(t, df)]})
    return pd.DataFrame([_contest_md(result, L, meth)])


def _contest1d(result, L: np.ndarray, meth: str) -> tuple[float, float, float]:
    est = float(L @ result.fe_params.to_numpy(dtype=float))
    if meth == "Kenward-Roger":
        PhiA = kr_vcov(result)[0]
        df = _kr_adjust(result, L[None, :])["ddf"]
        return est, float(np.sqrt(L @ PhiA @ L)), df
    var, df = _satt_1d(result, L)
    return est, float(np.sqrt(var)), df


def _ftable_row(F: float, ndf: float, ddf: float, sigma: float, fscale: float = 1.0) -> dict:
    ms = F * sigma ** 2
    Fv = F * fscale
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf, "F value": Fv,
            "Pr(>F)": float(special.fdtrc(ndf, ddf, Fv))}


def _contest_md(result, L: np.ndarray, meth: str, eps: float = np.sqrt(np.finfo(float).eps)) -> dict:
    sigma = float(np.sqrt(result.scale))
    if L.shape[0] == 0:
        return {k: np.nan for k in ("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")}
    if meth == "Kenward-Roger":
        kr = _kr_adjust(result, L)
        return _ftable_row(kr["FstatU"], kr["ndf"], kr["ddf"], sigma, kr["Fscale"])
    if L.shape[0] == 1:
        est, se, df = _contest1d(result, L[0], meth)
        return _ftable_row((est / se) ** 2, 1, df, sigma)
    beta = result.fe_params.to_numpy(dtype=float)
    C = result.vcov.to_numpy(dtype=float)
    d, P = np.linalg.eigh(L @ C @ L.T)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    pos = d > max(eps * d[0], 0)
    q = int(pos.sum())
    PtL = (P.T @ L)[:q]
    if q == 1:
        est, se, df = _contest1d(result, PtL[0], meth)
        return _ftable_row((est / se) ** 2, 1, df, sigma)
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(t2.sum() / q)
    A, J = vcov_varpar(result)
    nu = []
    for mrow in range(q):
        g = np.array([PtL[mrow] @ Jk @ PtL[mrow] for Jk in J])
        nu.append(2 * d[mrow] ** 2 / float(g @ A @ g))
    nu = np.array(nu)
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        ddf = float(nu.mean())
    elif np.any(nu <= 2):
        ddf = 2.0
    else:
        E = float(np.sum(nu / (nu - 2)))
        ddf = 2 * E / (E - q)
    return _ftable_row(F, q, ddf, sigma)


def coef_table(result, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """``coef(summary(<lmerTest fit>, ddf = ...))``: Estimate, Std. Error, df,
    t value, Pr(>|t|) for each fixed effect (Kenward-Roger: adjusted SEs)."""
    _check_lmm(result)
    meth = _ddf_name(ddf)
    p = len(result.fe_params)
    rows = []
    for j in range(p):
        e = np.zeros(p)
        e[j] = 1.0
        est, se, df = _contest1d(result, e, meth)
        t = est / se
        rows.append((est, se, df, t, _pt2(t, df)))
    tab = pd.DataFrame(rows, index=result.fe_params.index.copy(),
                       columns=["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"])
    tab.attrs["ddf"] = meth
    return tab


# --------------------------------------------------------------------------- the hypotheses


def _terms(result):
    """[(label, [X columns], [variables], {variable: numeric?})] of the fixed part, without the intercept."""
    mf = result.model_frame
    fs = mf.spec.fixed_spec
    spec = getattr(fs, "spec", fs)
    keep = list(mf.spec.keep_columns)
    pos = {c: i for i, c in enumerate(keep)}
    factors = {str(k): v for k, v in getattr(spec, "factor_contrasts", {}).items()}
    out = []
    intercept = False
    for term, idx in spec.term_indices.items():
        label = str(term)
        cols = [pos[i] for i in idx if i in pos]
        if label == "1":
            intercept = True
            continue
        vars_ = [f.expr for f in term.factors]
        out.append((label, cols, vars_, {v: v not in factors for v in vars_}))
    return out, intercept, factors


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    mx = np.max(np.abs(x)) if x.size else 0.0
    if mx > 0:
        d = max(0, digits - int(np.ceil(np.log10(mx))))
        return np.round(x, d)
    return np.round(x, digits)


def _doolittle_L(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """lmerTest's doolittle(x)$L (unit lower triangular factor of x = LU without pivoting)."""
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = x[i, j] - L[i, :i] @ U[:i, j]
        for j in range(i + 1, n):
            v = x[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else v / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def _containment(terms) -> dict[str, list[str]]:
    """lmerTest's containment: F1 is contained in F2 when F1's variables are a strict
    subset of F2's and both have the same numeric variables."""
    out = {}
    for lab1, _c1, v1, num1 in terms:
        s1 = set(v1)
        n1 = {v for v in v1 if num1[v]}
        lst = []
        for lab2, _c2, v2, num2 in terms:
            s2 = set(v2)
            n2 = {v for v in v2 if num2[v]}
            if s1 < s2 and n1 == n2:
                lst.append(lab2)
        out[lab1] = lst
    return out


def _contrasts_type1(result, terms) -> dict[str, np.ndarray]:
    X = np.asarray(result.model_frame.X, float)
    p = X.shape[1]
    L = _doolittle_L(X.T @ X).T if p > 1 else np.ones((1, 1))
    return {lab: L[cols] for lab, cols, _v, _n in terms}


def _contrasts_type2(result, terms) -> dict[str, np.ndarray]:
    X = np.asarray(result.model_frame.X, float)
    p = X.shape[1]
    contained = _containment(terms)
    bycol = {lab: cols for lab, cols, _v, _n in terms}
    out = {}
    for lab, cols, _v, _n in terms:
        if not contained[lab]:  # marginal: the term's coefficients
            out[lab] = np.eye(p)[cols]
            continue
        ct = list(cols) + [c for other in contained[lab] for c in bycol[other]]
        rest = [c for c in range(p) if c not in ct]
        order = rest + ct
        Xn = X[:, order]
        Lc = _doolittle_L(Xn.T @ Xn).T  # rows/cols in `order`
        rows = [order.index(c) for c in cols]
        M = np.zeros((len(cols), p))
        M[:, order] = Lc[rows]
        out[lab] = M
    return out


def _contrasts_type3(result, terms, factors) -> dict[str, np.ndarray]:
    """lmerTest's extract_contrasts_type3 for treatment coding: the over-parameterised
    design rdX (every level of every factor) is rebuilt from X's own columns."""
    X = np.asarray(result.model_frame.X, float)
    names = list(result.fe_params.index)
    n, p = X.shape
    main = {}  # variable -> (n, m) full coding and its column names
    for lab, cols, vars_, num in terms:
        if len(vars_) != 1:
            continue
        v = vars_[0]
        if num[v]:
            main[v] = (X[:, cols], [names[c] for c in cols])
        else:
            ind = X[:, cols]
            ref = 1.0 - ind.sum(axis=1)
            main[v] = (np.column_stack([ref, ind]), [f"{v}[REF]"] + [names[c] for c in cols])
    blocks, bnames, rmap = [np.ones((n, 1))], ["Intercept"], {}
    for lab, cols, vars_, num in terms:
        missing = [v for v in vars_ if v not in main]
        if missing:
            raise NotImplementedError(f"Type III contrasts need the main effect of {missing[0]!r} in the model "
                                      f"(term {lab!r}); use type=2 or type=1")
        M, nm = main[vars_[0]]
        for v in vars_[1:]:
            M2, nm2 = main[v]
            M = (M[:, :, None] * M2[:, None, :]).reshape(n, -1)
            nm = [f"{a}:{b}" for a in nm for b in nm2]
        rmap[lab] = (len(bnames), len(nm))
        blocks.append(M)
        bnames += nm
    rdX = np.hstack(blocks)
    L = _zapsmall((np.linalg.pinv(X) @ rdX).T)  # rdX columns x X columns
    contained = _containment(terms)
    bycol = {lab: cols for lab, cols, _v, _n in terms}
    order = sorted(terms, key=lambda t: len(t[2]), reverse=True)
    for lab, cols, _v, _n in order:
        if contained[lab]:
            xc = L[:, [c for o in contained[lab] for c in bycol[o]]]
            y = L[:, cols]
            coef, *_ = np.linalg.lstsq(xc, y, rcond=None)
            L[:, cols] = _zapsmall(y - xc @ coef)
    idx = []
    for nm in names:
        if nm not in bnames:
            raise NotImplementedError(f"Type III contrasts: cannot match column {nm!r} (use type=2 or type=1)")
        idx.append(bnames.index(nm))
    L = L[idx]  # X columns x X columns
    out = {}
    for lab, cols, _v, _n in terms:
        Lt = L[:, cols].T
        out[lab] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out


def anova_table(result, type: int | str = 3, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """``anova(<lmerTest fit>, type, ddf)``: one row per fixed-effect term with
    Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F). ``type`` 1, 2 or 3 (or
    "I", "II", "III") as lmerTest defines the hypotheses (Type II: marginal
    for terms contained in no other; Type III: SAS's, from treatment coding).
    The heading is in ``attrs["heading"]``."""
    _check_lmm(result)
    meth = _ddf_name(ddf)
    t = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}.get(str(type).upper())
    if t is None:
        raise ValueError(f"type must be 1, 2 or 3, got {type!r}")
    terms, _intercept, factors = _terms(result)
    p = len(result.fe_params)
    if p <= 1 or len(terms) <= 1:
        Ls = _contrasts_type1(result, terms)
    elif t == 1:
        Ls = _contrasts_type1(result, terms)
    elif t == 2:
        Ls = _contrasts_type2(result, terms)
    else:
        Ls = _contrasts_type3(result, terms, factors)
    rows = [_contest_md(result, Ls[lab], meth) for lab, *_ in terms]
    tab = pd.DataFrame(rows, index=pd.Index([lab for lab, *_ in terms]),
                       columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])
    tab.attrs["heading"] = (f"Type {'I' * t} Analysis of Variance Table with "
                            f"{'Satterthwaite' if meth == 'Satterthwaite' else 'Kenward-Roger'}'s method")
    return tab


# --------------------------------------------------------------------------- ranova


def ranova(result) -> pd.DataFrame:
    """lmerTest's ``ranova(m)``: likelihood-ratio tests of each random-effect
    term by single-term deletion (``reduce.terms = TRUE``: a term with slopes
    is reduced to its intercept, an intercept-only term is removed). Columns
    npar, logLik, AIC, LRT, Df, Pr(>Chisq); row "<none>" is the model itself.
    The reduced models are refitted with the same criterion (REML or ML);
    a model left without random effects is the linear model (R's ``lm``)."""
    _check_lmm(result)

    mf = result.model_frame
    reml = bool(result.optinfo.get("REML", False))
    rows = [("<none>", int(result.df_model), float(result.llf))]
    names = []
    # one entry per random term of the formula (a term with k columns is one bar)
    for j, term in enumerate(mf.terms):
        cn = list(term.cnames)
        if len(cn) > 1 and "Intercept" in cn:
            # reduce (x | g) to (1 | g): keep the intercept column only
            new = _term_subset(term, [cn.index("Intercept")])
            label = f"{' + '.join(c for c in cn if c != 'Intercept')} in ({term.lhs} | {term.group})"
            terms = list(mf.terms[:j]) + [new] + list(mf.terms[j + 1:])
        else:
            if "Intercept" in cn:
                label = f"({term.lhs} | {term.group})"
            else:  # lmerTest reduces (0 + x | g) to nothing: "x in (0 + x | g)"
                label = f"{' + '.join(cn)} in ({term.lhs} | {term.group})"
            terms = list(mf.terms[:j]) + list(mf.terms[j + 1:])
        if terms:
            import dataclasses

            mf2 = dataclasses.replace(mf, terms=terms)
            res = result.fitter.fit_lmm(mf2, reml=reml, formula=f"{result.formula} [{label} removed]")
            rows.append((label, int(res.df_model), float(res.llf)))
        else:
            rows.append((label, len(result.fe_params) + 1, _lm_loglik(mf, reml)))
        names.append(label)
    npar = np.array([r[1] for r in rows], float)
    ll = np.array([r[2] for r in rows])
    aic = -2 * ll + 2 * npar
    lrt = np.full(len(rows), np.nan)
    df = np.full(len(rows), np.nan)
    lrt[1:] = -2 * (ll[1:] - ll[0])
    df[1:] = npar[0] - npar[1:]
    p = np.full(len(rows), np.nan)
    ok = df > 0
    p[ok] = special.chdtrc(df[ok], np.maximum(lrt[ok], 0.0))
    return pd.DataFrame({"npar": npar.astype(int), "logLik": ll, "AIC": aic, "LRT": lrt, "Df": df,
                         "Pr(>Chisq)": p}, index=pd.Index([r[0] for r in rows]))


def _r(c: str) -> str:
    return "1" if c == "Intercept" else c


def _term_subset(term, keep: list[int]):
    import dataclasses

    return dataclasses.replace(term, z=np.ascontiguousarray(np.asarray(term.z)[:, keep]),
                               cnames=[term.cnames[i] for i in keep], lhs="1")


def _lm_loglik(mf, reml: bool) -> float:
    """R's logLik(lm(...), REML = reml) with prior weights."""
    X = np.asarray(mf.X, float)
    y = np.asarray(mf.y, float) - np.asarray(mf.offset, float)
    w = np.asarray(mf.weights, float)
    sw = np.sqrt(w)
    Q, R = np.linalg.qr(X * sw[:, None])
    beta = np.linalg.solve(R, Q.T @ (y * sw))
    res = y - X @ beta
    n, p = X.shape
    N = n - p if reml else n
    val = 0.5 * (np.sum(np.log(w)) - N * (np.log(2 * np.pi) + 1 - np.log(N) + np.log(np.sum(w * res * res))))
    if reml:
        val -= np.sum(np.log(np.abs(np.diag(R))))
    return float(val)
