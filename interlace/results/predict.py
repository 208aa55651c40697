"""Predictions from a fitted GLMM on the model's own rows or on new data
(lme4's predict.merMod with re.form / allow.new.levels, glmmTMB's
type = "conditional" / "zprob" for zero-inflated and hurdle families).

X and the random-effect blocks are rebuilt by the model frame's stored
recipe (``mf.spec.transform``), so factor levels, contrasts, stateful
transforms and the formula's ``offset()`` are the training ones.

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("cbpp")
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     df, family="binomial")
>>> p = m.predict(df.head(3))
>>> bool(abs(p[0] - m.fittedvalues.iloc[0]) < 1e-12)
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import special

from interlace.results.newdata import (  # re-exported: predict's helpers for new rows
    _needed_columns,
    _nrows,
    _spec_columns,
    _sub_design,
    _unseen_level_message,
    newdata_design,
)

__all__ = ["Prediction", "predict", "term_effects", "design", "zi_probability", "aux_predictors",
           "response_mean", "conditional_link_variance"]

_TYPES = ("response", "link", "conditional", "zprob", "zlink", "disp")


class Prediction(NamedTuple):
    """``predict(..., se_fit=True)`` returns this pair (unpacks as a tuple).

    ``fit`` is on the requested scale; ``se_fit`` is always the standard
    error of the linear predictor (the link scale), as R's predict.glm gives
    ``se.fit`` for ``type = "link"``.
    """

    fit: np.ndarray
    se_fit: np.ndarray


# --------------------------------------------------------------------------- design


def design(result, newdata: Any = None, allow_new_levels: bool = False, offset: Any = None):
    """``(X, [(codes, z) per term], offset)`` for the training rows or ``newdata``.

    A level of a grouping factor that was not seen in fitting raises a
    ValueError naming the factor and the level, unless ``allow_new_levels``;
    its code is then -1.
    """
    mf = result.model_frame
    if mf is None:
        raise ValueError("this result has no model frame; predict needs the fitted model's frame")
    if newdata is None:
        if offset is not None:
            raise ValueError("offset= applies to newdata; the training rows keep their fitted offset")
        return np.asarray(mf.X, dtype=float), [(t.codes, t.z) for t in mf.terms], np.asarray(mf.offset, float)
    X, blocks, off = mf.spec.transform(newdata, allow_new_levels=allow_new_levels, offset=offset)
    return np.asarray(X, dtype=float), blocks, np.asarray(off, dtype=float)


def term_effects(result) -> list[np.ndarray]:
    """Per random-effect term (in model-frame order) its (nlevels, k) conditional modes.

    ``random_effects`` holds one DataFrame per grouping factor with the
    columns of all terms on that factor side by side (as lme4's ranef); this
    cuts it back into the terms.
    """
    mf = result.model_frame
    col: dict[str, int] = {}
    out = []
    for t in mf.terms:
        df = result.random_effects[t.group]
        start = col.get(t.group, 0)
        out.append(np.asarray(df.iloc[:, start:start + t.k].to_numpy(), dtype=float))
        col[t.group] = start + t.k
    return out


def _re_contribution(result, blocks) -> np.ndarray:
    m = blocks[0][0].shape[0] if blocks else 0
    eta = np.zeros(m)
    for b, (codes, z) in zip(term_effects(result), blocks):
        codes = np.asarray(codes, dtype=np.int64)
        z = np.asarray(z, dtype=float)
        ok = codes >= 0  # new levels (allow_new_levels=True) are predicted at zero
        eta[ok] += np.einsum("ik,ik->i", z[ok], b[codes[ok]])
    return eta


# --------------------------------------------------------------------------- standard errors


def _selected_inverse(result):
    """A^{-1} blocks at the optimum, cached on the result.

    The objective's factor is refreshed at the optimum first: other post-fit
    code (profiles, bootstraps) may have moved it since the fit.
    """
    cache = result.__dict__.setdefault("_postfit_cache", {})
    if "selinv" in cache:
        return cache["selinv"]
    obj = result.objective
    if obj is None or not hasattr(obj, "chol") or not hasattr(obj, "re"):
        raise NotImplementedError(
            "se_fit needs the Laplace/LMM objective of the fit (result.objective with a blocked Cholesky)")
    theta = result.theta.to_numpy(dtype=float)
    beta = result.fe_params.to_numpy(dtype=float)
    engine = result.optinfo.get("engine")
    if engine == "lmm":
        obj.deviance(theta)
    elif engine == "general":  # x = (theta, beta, free aux coefficients in block order)
        aux = getattr(result, "aux_params", None) or {}
        parts = [theta, beta] + [np.asarray(aux[b.name], dtype=float) for b in obj.blocks if b.free]
        obj.deviance(np.concatenate(parts))
    else:
        obj.deviance(theta, beta)
    cache["selinv"] = (obj.re, obj.chol.selected_inverse())
    return cache["selinv"]


def conditional_link_variance(result, blocks) -> np.ndarray:
    """Per row z' Var(b | y) z over all terms jointly (cross-term covariances included).

    With b = Lambda u and u | y approximately N(u*, s^2 A^{-1}) (A = U'WU + I,
    s^2 = sigma^2 for LMMs, 1 for GLMMs), z'b = (Lambda' z)'u, so the quadratic
    form uses only the blocks of A^{-1} a row touches: the selected inverse.
    A level unseen in fitting has no data: its conditional distribution is
    the prior, so it adds z' Sigma z with Sigma = s^2 Lambda Lambda'.
    """
    re, (Ainv11, Ainv21, Ainv22) = _selected_inverse(result)
    theta = result.theta.to_numpy(dtype=float)
    lams = re.lambdas(theta)
    s2 = float(result.scale) if result.optinfo.get("engine") == "lmm" else 1.0
    m = blocks[0][0].shape[0]
    var = np.zeros(m)
    W, I, codes0 = [], [], None
    for j, ((codes, z), lam) in enumerate(zip(blocks, lams)):
        codes = np.asarray(codes, dtype=np.int64)
        z = np.asarray(z, dtype=float)
        new = codes < 0
        w = z @ lam  # rows of Lambda' z
        if new.any():
            var[new] += s2 * np.einsum("ik,ik->i", w[new], w[new])
            w = np.where(new[:, None], 0.0, w)
        c = np.where(new, 0, codes)
        k = int(re.kdim[j])
        if j == 0:
            codes0 = c
            W0 = w
        else:
            I.append((re.uoff[j] - re.q0) + c[:, None] * k + np.arange(k)[None, :])
            W.append(w)
    var += s2 * np.einsum("ia,iab,ib->i", W0, Ainv11[codes0], W0)
    if W:
        W2 = np.hstack(W)
        I2 = np.hstack(I)
        k0 = int(re.kdim[0])
        I0 = codes0[:, None] * k0 + np.arange(k0)[None, :]
        cross = Ainv21[I2[:, :, None], I0[:, None, :]]
        var += 2.0 * s2 * np.einsum("ia,iab,ib->i", W2, cross, W0)
        var += s2 * np.einsum("ia,iab,ib->i", W2, Ainv22[I2[:, :, None], I2[:, None, :]], W2)
    return var


# --------------------------------------------------------------------------- family sub-models


def _zero_model(fam) -> str | None:
    """The family's ``zero_model`` ("zi", "hurdle" or None); a duck-typed
    family may say ``hurdle = True`` / ``zi = True`` instead."""
    zm = getattr(fam, "zero_model", None)
    if zm is None and getattr(fam, "hurdle", False) is True:
        return "hurdle"
    if zm is None and getattr(fam, "zi", False) is True:
        return "zi"
    return zm


def _is_zero_inflated(fam) -> bool:
    """True for zero-inflated and hurdle families (a zero probability p per row)."""
    return _zero_model(fam) is not None


def _is_hurdle(fam) -> bool:
    return _zero_model(fam) == "hurdle"


def aux_predictors(result, newdata: Any = None) -> dict[str, np.ndarray]:
    """Per-row linear predictors of the family's own sub-models (``"disp"``,
    ``"zi"``, zoib's ``"coi"``), as the general-likelihood families take them
    in ``mean(eta, aux)`` / ``row_dispersion(aux)``. Fixed blocks (a family
    given e.g. ``theta=2.0``) are constant. Empty for exponential families."""
    fam = result.family
    blocks = tuple(getattr(fam, "aux_blocks", ()) or ())
    if not blocks:
        return {}
    rows = getattr(result, "aux_rows", None)  # the fit's rows, side-model random effects included
    if newdata is None and rows is not None:
        return {b: np.asarray(rows[b], dtype=float) for b in blocks if b in rows}
    m = result.model_frame.n if newdata is None else _nrows(newdata)
    params = dict(getattr(result, "aux_params", None) or {})
    if "disp" not in params and result.disp_params is not None:
        params["disp"] = result.disp_params
    if "zi" not in params and result.zi_params is not None:
        params["zi"] = result.zi_params
    fp = result.family_params or {}
    out = {}
    for b in blocks:
        if b in params:
            coef = np.asarray(params[b], dtype=float)
            X = _sub_design(result, b, newdata) if b in ("disp", "zi") else np.ones((m, 1))
            if X.shape[1] != coef.shape[0]:
                X = np.ones((m, 1)) if coef.shape[0] == 1 else X
            out[b] = X @ coef
        else:
            fixed = fp.get(f"{b}_fixed", getattr(fam, "fixed_aux", {}).get(b))
            if fixed is None:
                raise ValueError(f"no coefficients or fixed value for the family's {b!r} sub-model")
            out[b] = np.full(m, float(fixed))
    return out


def zi_probability(result, newdata: Any = None) -> np.ndarray:
    """Per row the zero-inflation (or hurdle zero) probability p = plogis(X_zi gamma).

    Uses ``result.zi_prob`` for the training rows when an engine stored it,
    otherwise the ``zi_params`` and the ziformula's design (rebuilt on
    ``newdata`` from the stored formulaic spec).
    """
    if newdata is None and getattr(result, "zi_prob", None) is not None:
        return np.asarray(result.zi_prob, dtype=float)
    aux = aux_predictors(result, newdata)
    if "zi" in aux:
        return special.expit(aux["zi"])
    zp = result.zi_params
    if zp is None:
        raise ValueError("this model has no zero-inflation part (fit with a zero-inflated or hurdle family)")
    return special.expit(_sub_design(result, "zi", newdata) @ np.asarray(zp, dtype=float))


def response_mean(result, eta: np.ndarray, newdata: Any = None) -> np.ndarray:
    """E[Y] per row: ``family.mean(eta, aux)`` for the general-likelihood
    families (zero-inflated: (1 - p) mu; hurdle: (1 - p) mu / (1 - f(0));
    zoib: the mixture mean), otherwise the inverse link, with (1 - p) applied
    when an exponential-family result carries ``zi_params``."""
    fam = result.family
    if getattr(fam, "aux_blocks", None) is not None:  # a LikelihoodFamily, with or without aux blocks
        return np.asarray(fam.mean(eta, aux_predictors(result, newdata)), dtype=float)
    mu = np.asarray(fam.linkinv(eta), dtype=float)
    if result.zi_params is not None or _is_zero_inflated(fam):
        p = zi_probability(result, newdata)
        if _is_hurdle(fam):
            return (1.0 - p) * mu / -np.expm1(-mu)
        return (1.0 - p) * mu
    return mu


# --------------------------------------------------------------------------- re_form


def _norm(text: str) -> str:
    return "".join(str(text).split())


def _is_population_form(re_form: Any) -> bool:
    """lme4's ``re.form = NA`` / ``~0``: no random effects."""
    if re_form is None or re_form is True:
        return False
    if re_form is False:
        return True
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    try:
        import pandas as pd

        if re_form is pd.NA or re_form is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    if isinstance(re_form, str):
        t = _norm(re_form)
        return t.upper() in ("NA", "~0", "0", "~-1", "-1", "~NA", "")
    return False


def selected_terms(result, re_form: Any = None) -> list[int]:
    """Indices (model-frame order) of the random-effect terms ``re_form`` keeps.

    ``None``: all terms; ``NA`` / ``"~0"`` / ``False``: none; a formula naming
    bars (``"~ (1 | Subject)"``) keeps those terms (``||`` and ``a/b`` are
    expanded as in fitting). A bar that is not a term of the model is a
    ValueError naming it, as lme4's "re.form's random effects not a subset".

    >>> import interlace
    >>> m = interlace.glmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
    ...                     interlace.datasets.load("sleepstudy"), family="gaussian")
    >>> selected_terms(m, "~ (1 | Subject)"), selected_terms(m, "~0")
    ([0], [])
    """
    terms = result.model_frame.terms
    if re_form is None or re_form is True:
        return list(range(len(terms)))
    if _is_population_form(re_form):
        return []
    if not isinstance(re_form, str):
        raise TypeError(f"re_form must be None, NA/'~0' or a formula string such as '~ (1 | g)', "
                        f"got {type(re_form).__name__}")
    from interlace.formula.bars import expand_bars, scan_formula

    text = re_form.strip()
    if not text.startswith("~"):
        text = "~ " + text
    parsed = scan_formula("y " + text)
    if parsed.fixed and _norm(parsed.fixed) not in ("", "1", "0", "-1"):
        raise ValueError(f"re_form {re_form!r} may name random-effect terms only, not {parsed.fixed!r}")
    wanted = expand_bars(parsed.bars)
    keys = [(_lhs_key(t.lhs), _norm(t.group)) for t in terms]
    out: list[int] = []
    for b in wanted:
        key = (_lhs_key(b.lhs), _norm(b.group))
        hits = [i for i, k in enumerate(keys) if k == key]
        if not hits:
            have = ", ".join(f"({t.lhs} | {t.group})" for t in terms)
            raise ValueError(f"re_form term ({b.lhs} | {b.group}) is not a random-effect term of the model "
                             f"(its terms: {have})")
        out += [i for i in hits if i not in out]
    return sorted(out)


def _lhs_key(lhs: str) -> frozenset:
    """A bar's left side as a set of pieces with R's implicit intercept made explicit."""
    pieces = [p for p in _norm(lhs).replace("-1", "+0").split("+") if p]
    if "0" not in pieces and "1" not in pieces:
        pieces.append("1")
    return frozenset(p for p in pieces if p != "")


# --------------------------------------------------------------------------- newdata design


# --------------------------------------------------------------------------- joint covariance


def _deviance_hessian(f, x0: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of a scalar function (symmetric)."""
    d = x0.shape[0]
    H = np.zeros((d, d))
    f0 = f(x0)
    for i in range(d):
        ei = np.zeros(d)
        ei[i] = h[i]
        H[i, i] = (f(x0 + ei) - 2.0 * f0 + f(x0 - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(d)
            ej[j] = h[j]
            H[i, j] = H[j, i] = (f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)) / (
                4.0 * h[i] * h[j])
    return H


def _steps(x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    return rel * np.maximum(1.0, np.abs(x))


class _ModeMap:
    """The conditional modes b(psi) as a function of the model's parameters psi
    (theta, beta and, for the general engine, the family parameters), their
    estimate and their covariance: what glmmTMB's sdreport propagates."""

    def __init__(self, result):
        self.result = result
        obj = result.objective
        self.obj = obj
        self.re = obj.re
        self.engine = result.optinfo.get("engine")
        self.nt = int(self.re.ntheta)
        theta = result.theta.to_numpy(dtype=float)
        beta = result.fe_params.to_numpy(dtype=float)
        self.p = beta.shape[0]
        if self.engine == "general":
            aux = getattr(result, "aux_params", None) or {}
            parts = [theta, beta] + [np.asarray(aux[b.name], dtype=float) for b in obj.blocks if b.free]
            self.psi = np.concatenate(parts)
        else:
            self.psi = np.concatenate([theta, beta])
        self.V = self._covariance()

    def modes(self, psi: np.ndarray) -> list[np.ndarray]:
        nt, re, obj = self.nt, self.re, self.obj
        theta = psi[:nt]
        if self.engine == "lmm":
            beta = psi[nt:nt + self.p]
            u = self._lmm_u(theta, beta)
        elif self.engine == "general":
            obj.deviance(psi)
            u = np.asarray(obj.u, dtype=float).copy()
        else:
            obj.deviance(theta, psi[nt:nt + self.p])
            u = np.asarray(obj.u, dtype=float).copy()
        return re.u_to_b(theta, u)

    def _lmm_u(self, theta, beta):
        obj, re = self.obj, self.re
        zl = re.zlambda(theta)
        obj.chol.accumulate(obj.w, obj.y - obj.offset - obj.X @ beta, zl)
        obj.chol.factor()
        return obj.chol.solve(obj.chol.rhs)

    def _lmm_deviance(self, x: np.ndarray) -> float:
        """-2 log-likelihood of the LMM at (theta, beta, log sigma^2), not profiled."""
        obj, re, nt, p = self.obj, self.re, self.nt, self.p
        theta, beta, ls2 = x[:nt], x[nt:nt + p], x[-1]
        u = self._lmm_u(theta, beta)
        zl = re.zlambda(theta)
        eta = re.eta_re(zl, u, obj.X @ beta + obj.offset)
        r = obj.y - eta
        prss = float(np.sum(obj.w * r * r) + u @ u)
        n = obj.n
        return obj.chol.logdet - obj.sum_log_w + n * (np.log(2.0 * np.pi) + ls2) + prss / np.exp(ls2)

    def _covariance(self) -> np.ndarray:
        """Cov(psi_hat): 2 H^{-1} of the deviance (the fit's Hessian when it has one)."""
        d = self.psi.shape[0]
        if self.engine == "lmm":
            x0 = np.concatenate([self.psi, [np.log(self.result.scale)]])
            H = _deviance_hessian(self._lmm_deviance, x0, _steps(x0))
            full = 2.0 * np.linalg.pinv(0.5 * (H + H.T))
            return full[:d, :d]
        H = self.result.optinfo.get("hessian")
        if H is not None:
            H = np.asarray(H, dtype=float)
        if H is None or H.shape != (d, d) or not np.all(np.isfinite(H)):
            # no usable Hessian: condition on the covariance parameters (beta block only)
            V = np.zeros((d, d))
            V[self.nt:self.nt + self.p, self.nt:self.nt + self.p] = self.result.vcov.to_numpy(dtype=float)
            return V
        return 2.0 * np.linalg.pinv(0.5 * (H + H.T))

    def jacobians(self) -> list[np.ndarray]:
        """Per term the (nlevels, k, d) derivative of b with respect to psi (central differences)."""
        h = _steps(self.psi)
        d = self.psi.shape[0]
        out = None
        try:
            for j in range(d):
                e = np.zeros(d)
                e[j] = h[j]
                bp, bm = self.modes(self.psi + e), self.modes(self.psi - e)
                if out is None:
                    out = [np.zeros(b.shape + (d,)) for b in bp]
                for t, (a, b) in enumerate(zip(bp, bm)):
                    out[t][..., j] = (a - b) / (2.0 * h[j])
        finally:
            self.modes(self.psi)  # leave the objective at the optimum
            _refresh(self.result)
        return out


def _refresh(result) -> None:
    """Put the objective's state back at the optimum (others read obj.u, obj.chol)."""
    obj = result.objective
    theta = result.theta.to_numpy(dtype=float)
    engine = result.optinfo.get("engine")
    if engine == "lmm":
        obj.deviance(theta)
    elif engine == "general":
        aux = getattr(result, "aux_params", None) or {}
        parts = [theta, result.fe_params.to_numpy(dtype=float)] + [
            np.asarray(aux[b.name], dtype=float) for b in obj.blocks if b.free]
        obj.deviance(np.concatenate(parts))
    else:
        obj.deviance(theta, result.fe_params.to_numpy(dtype=float))


def _mode_map(result) -> _ModeMap:
    cache = result.__dict__.setdefault("_postfit_cache", {})
    if "modemap" not in cache:
        mm = _ModeMap(result)
        mm.J = mm.jacobians()
        cache["modemap"] = mm
    return cache["modemap"]


def link_variance(result, X: np.ndarray, blocks, which: list[int], extra_J: np.ndarray | None = None
                  ) -> np.ndarray:
    """Var of the predicted linear predictor per row, as glmmTMB's sdreport gives it.

    Without random effects x'Vx. With them (Kass and Steffey's delta method,
    TMB's ``sdreport``): z'Var(b | y, psi)z at the estimate plus J Cov(psi) J',
    with J the total derivative of x'beta + z'b(psi) in psi = (theta, beta,
    family parameters), the conditional modes b moving with psi. This is
    smaller than x'Vx + z'Var(b|y)z (the covariance of beta and b is
    negative) and adds the uncertainty of theta. A level unseen in fitting
    adds its prior variance and does not move with psi... except through
    Sigma, which is left out as glmmTMB does (its new level has b = 0).
    ``extra_J`` (rows x psi) adds derivatives the blocks do not carry (the kriging weights of
    new positions moving with theta).
    """
    V = result.vcov.to_numpy(dtype=float)
    if not which:
        return np.einsum("ij,jk,ik->i", X, V, X)
    mm = _mode_map(result)
    nt, p = mm.nt, mm.p
    m = X.shape[0]
    J = np.zeros((m, mm.psi.shape[0]))
    J[:, nt:nt + p] = X
    for ti, (codes, z) in zip(which, blocks):
        codes = np.asarray(codes, dtype=np.int64)
        z = np.asarray(z, dtype=float)
        ok = codes >= 0
        J[ok] += np.einsum("ik,ikd->id", z[ok], mm.J[ti][codes[ok]])
    if extra_J is not None:
        J += extra_J
    var = np.einsum("ij,jk,ik->i", J, mm.V, J)
    return var + conditional_link_variance(result, _full_blocks(result, blocks, which, m))


def _full_blocks(result, blocks, which, m):
    """Blocks for every term (left-out terms with zero covariates), as conditional_link_variance wants."""
    terms = result.model_frame.terms
    full = []
    got = dict(zip(which, blocks))
    for i, t in enumerate(terms):
        if i in got:
            full.append(got[i])
        else:
            full.append((np.zeros(m, dtype=np.int64), np.zeros((m, t.k))))
    return full


# --------------------------------------------------------------------------- predict


def _row_labels(result, newdata):
    """The index a prediction on ``newdata`` carries: newdata's own (pandas), else positions."""
    import pandas as pd

    if isinstance(newdata, pd.DataFrame):
        return newdata.index
    return None


def predict(result, newdata: Any = None, type: str = "response", include_re: bool = True,
            allow_new_levels: bool = False, se_fit: bool = False, offset: Any = None,
            re_form: Any = None, random_only: bool = False):
    """Predictions from ``result`` (see :meth:`GLMMResult.predict`).

    ``type``: ``"link"`` (eta), ``"response"`` (the mean of y: for
    zero-inflated and hurdle families the unconditional mean, as glmmTMB's
    ``type = "response"``), ``"conditional"`` (mean of the conditional count
    model; for a hurdle family the zero-truncated mean, as glmmTMB) or
    ``"zprob"`` (the zero-inflation / hurdle probability).
    ``re_form`` is lme4's ``re.form``; ``include_re=False`` is ``re_form="~0"``.
    ``random_only`` returns the random-effects part alone (no fixed effects,
    no offset), on the link scale or through the inverse link, as lme4.
    ``se_fit=True`` returns ``Prediction(fit, se_fit)`` with the SE on the
    scale of ``type`` (delta method for the response scales).

    Returns pandas Series indexed like ``newdata`` (pandas) or like the
    fitted rows; rows with a missing predictor give NaN (lme4's na.pass).

    Example
    -------
    >>> import interlace
    >>> df = interlace.datasets.load("sleepstudy")
    >>> m = interlace.glmer("Reaction ~ Days + (Days | Subject)", df, family="gaussian")
    >>> fit, se = m.predict(df.head(2), type="link", se_fit=True)
    >>> bool((se > 0).all())
    True
    """
    import pandas as pd

    if type not in _TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, _TYPES))}, got {type!r}")
    fam = result.family
    side = bool(getattr(result, "side_models", None))  # random effects in ziformula / dispformula
    zi_general = (se_fit and result.optinfo.get("engine") == "general" and newdata is None
                  and type in ("response", "zprob")
                  and "zi" in tuple(getattr(result.optinfo.get("engine_family") or fam, "aux_blocks", ())))
    if side or type in ("zlink", "disp") or zi_general:
        return _predict_side(result, newdata, type, se_fit, include_re and re_form is None and not random_only,
                             offset, allow_new_levels)
    if type in ("conditional", "zprob") and not _is_zero_inflated(fam) and result.zi_params is None:
        raise ValueError(f"type={type!r} is for zero-inflated and hurdle families; "
                         f"family {getattr(fam, 'name', fam)!r} has no zero part")
    labels = _row_labels(result, newdata)

    def wrap(values, name):
        if newdata is None:  # the fitted rows: the user's labels, NaN-padded for missing="exclude"
            from interlace.results.align import as_series

            return as_series(result, values, name)
        if newdata.__class__.__module__.split(".")[0] == "polars":  # the input frame's kind
            import polars as pl

            return pl.Series(name, np.asarray(values, dtype=float))
        if labels is None or len(labels) != len(values):
            return pd.Series(values, name=name)
        return pd.Series(values, index=labels, name=name)

    if type == "zprob":
        if se_fit:
            raise ValueError("se_fit is available for the linear predictor of the conditional model only")
        return wrap(zi_probability(result, newdata), "zprob")
    if not include_re:
        if re_form is not None and not _is_population_form(re_form):
            raise ValueError("give either include_re=False or re_form, not both")
        re_form = "~0"
    which = selected_terms(result, re_form)
    if random_only and not which:
        raise ValueError("random_only=True needs at least one random-effect term (re_form keeps none)")
    if newdata is None:
        if offset is not None:
            raise ValueError("offset= applies to newdata; the training rows keep their fitted offset")
        mf = result.model_frame
        X = np.asarray(mf.X, dtype=float)
        blocks = [(mf.terms[i].codes, mf.terms[i].z) for i in which]
        off = np.asarray(mf.offset, float)
        ok = np.ones(X.shape[0], dtype=bool)
        moved = {}
    else:
        # terms of a spatial / ou structure are built apart: their positions may be new
        pos_terms = _position_terms(result, which)
        plain = [i for i in which if i not in pos_terms]
        X, blocks_plain, off, ok = newdata_design(result, newdata, plain, allow_new_levels, offset)
        got = dict(zip(plain, blocks_plain))
        moved = _new_position_effects(result, newdata, ok, pos_terms, X.shape[0], got, allow_new_levels)
        blocks = [got[i] for i in which]
    m = X.shape[0]
    re_part = np.zeros(m)
    if which:
        re_part = _re_contribution_terms(result, blocks, which)
    for codes, z, eff, _names in moved.values():  # effects at new positions / times (kriging)
        sel = codes >= 0
        re_part[sel] += np.einsum("ik,ik->i", z[sel], eff[codes[sel]])
    if random_only:
        eta = re_part
    else:
        eta = X @ result.fe_params.to_numpy(dtype=float) + off + re_part
    if type == "link":
        fit = eta
    elif random_only:
        fit = np.asarray(fam.linkinv(eta), dtype=float)
    elif type == "conditional":  # the count model's mean (the family may define it: hurdle = truncated)
        cm = getattr(fam, "conditional_mean", None)
        fit = np.asarray(cm(eta) if callable(cm) else fam.linkinv(eta), dtype=float)
    else:
        fit = response_mean(result, eta, None if newdata is None else _subset_rows(newdata, ok))
    fit_full = _scatter(fit, ok)
    if not se_fit:
        return wrap(fit_full, "fit")
    if random_only:
        raise ValueError("se_fit is not available with random_only=True")
    if moved:  # new positions: the fitted effects' part through the kriging weights, plus kriging
        blocks, extra_J, krig = _kriging_terms(result, blocks, which, moved)
        var = link_variance(result, X, blocks, which, extra_J) + krig
    else:
        var = link_variance(result, X, blocks, which)
    se = np.sqrt(np.maximum(var, 0.0))
    if type != "link":
        se = se * np.abs(_dmean_deta(result, eta, type, None if newdata is None else _subset_rows(newdata, ok)))
    se_full = _scatter(se, ok)
    return Prediction(wrap(fit_full, "fit"), wrap(se_full, "se_fit"))


def _predict_side(result, newdata, type, se_fit, all_re, offset, allow_new_levels=False):
    """glmmTMB's types on the fitted rows with TMB's SEs (results/predict_side.py); on
    ``newdata`` the side models' fixed parts ("zlink", "disp" of a model whose side models
    have no random effects)."""
    from interlace.results.align import as_series
    from interlace.results.predict_side import side_predict, sigma_rows

    if result.optinfo.get("engine") != "general":
        if type in ("zlink", "disp"):
            if type == "disp":
                fit = np.ones(result.model_frame.n if newdata is None else _nrows(newdata))
                return Prediction(fit, np.zeros_like(fit)) if se_fit else fit
            raise ValueError("type='zlink' is for zero-inflated and hurdle models; this model has no zero part")
    side = bool(getattr(result, "side_models", None))
    if newdata is None and offset is None and (all_re or not side):
        fit, se = side_predict(result, type, se_fit)
        out = as_series(result, fit, "fit")
        return Prediction(out, as_series(result, se, "se_fit")) if se_fit else out
    if side and newdata is not None and all_re:
        import pandas as pd

        from interlace.results.predict_side import side_predict_newdata

        fit, se = side_predict_newdata(result, newdata, type, se_fit, allow_new_levels, offset)
        labels = _row_labels(result, newdata)
        idx = labels if labels is not None and len(labels) == len(fit) else None
        out = pd.Series(fit, index=idx, name="fit")
        return Prediction(out, pd.Series(se, index=idx, name="se_fit")) if se_fit else out
    if side:
        raise NotImplementedError("re_form / random_only / offset= on the fitted rows are not available for a model "
                                  "with random effects in ziformula or dispformula (predict with newdata, or "
                                  "predict() on the fitted rows)")
    if se_fit:
        raise ValueError(f"se_fit for type={type!r} is available on the fitted rows (newdata=None)")
    import pandas as pd

    aux = aux_predictors(result, newdata)
    if type == "zlink":
        if "zi" not in aux:
            raise ValueError("type='zlink' is for zero-inflated and hurdle models; this model has no zero part")
        fit = aux["zi"]
    else:
        fam = result.optinfo.get("engine_family") or result.family
        fit = sigma_rows(fam, aux, _nrows(newdata))
    labels = _row_labels(result, newdata)
    return pd.Series(fit, index=labels if labels is not None and len(labels) == len(fit) else None, name="fit")


def _position_terms(result, which) -> list[int]:
    """The terms among ``which`` whose structure predicts at new positions (``new_effects``)."""
    from interlace.model.covariance import term_covariance

    terms = result.model_frame.terms
    return [i for i in which if callable(getattr(term_covariance(terms[i]), "new_effects", None))]


def _new_position_effects(result, newdata, ok, pos_terms, m, got, allow_new_levels: bool) -> dict:
    """Terms of a structure that predicts effects at positions or times not in the fit (ou,
    exp, gau, mat: ``new_effects``), as glmmTMB's predict does. Each term's left side is built
    afresh on newdata (its columns are newdata's own positions). When every position was
    fitted, the term's block in the fitted column layout goes to ``got`` (so se_fit works);
    otherwise ``got`` gets a zero block and the result holds, per term, the new rows' level
    codes, their left side and the effects at those positions for every fitted level."""
    from interlace.data import identifiers, to_pandas_columns
    from interlace.formula.fixed import formulaic_matrix
    from interlace.formula.namespace import as_env
    from interlace.model.covariance import term_covariance

    mf = result.model_frame
    spec = mf.spec
    theta = result.theta.to_numpy(dtype=float)
    covs = [term_covariance(t) for t in mf.terms]
    offs = np.concatenate([[0], np.cumsum([c.nparams for c in covs])]).astype(int)
    out: dict = {}
    for i in pos_terms:
        ts, term = spec.terms[i], mf.terms[i]
        known = set(spec.columns)
        cols = list(dict.fromkeys(list(ts.parts) + [c for c in identifiers(ts.lhs, known) if c in known]))
        frame = to_pandas_columns(newdata, cols, arg="newdata")
        frame = frame.loc[ok].reset_index(drop=True) if not ok.all() else frame
        env = getattr(ts.lhs_spec, "env", None)
        mm = formulaic_matrix(ts.lhs, frame, as_env(env), f"random-effect term ({ts.lhs} | {ts.group}) in newdata")
        z = np.ascontiguousarray(np.asarray(mm, dtype=np.float64))
        if z.shape[0] != m:
            raise ValueError(f"newdata has missing values in the positions of the term ({ts.lhs} | {ts.group})")
        names = [str(c) for c in mm.columns]
        codes = ts.codes_for(frame, allow_new_levels)
        where = {c: a for a, c in enumerate(term.cnames)}
        if all(nm in where for nm in names):  # only fitted positions: the plain design
            zf = np.zeros((m, term.k))
            zf[:, [where[nm] for nm in names]] = z
            got[i] = (codes, zf)
            continue
        eff = covs[i].new_effects(theta[offs[i]:offs[i + 1]], term_effects(result)[i], names)
        got[i] = (codes, np.zeros((m, term.k)))
        out[i] = (codes, z, eff, names)
    return out


def _kriging_terms(result, blocks, which, moved):
    """se_fit at new positions / times, as glmmTMB's sdreport on its model with the new
    effects appended: eta's random part at a new row is z (b W(theta)), b the fitted effects
    of its level and W the structure's kriging weights. Returns the blocks with the effective
    left side z W' (its conditional variance and its derivative through b), the derivative of
    W in theta (rows x psi) and the kriging variance z K z' (times sigma^2 for an LMM)."""
    from interlace.model.covariance import term_covariance

    mf = result.model_frame
    mm = _mode_map(result)
    covs = [term_covariance(t) for t in mf.terms]
    offs = np.concatenate([[0], np.cumsum([c.nparams for c in covs])]).astype(int)
    theta = result.theta.to_numpy(dtype=float)
    s2 = float(result.scale) if result.optinfo.get("engine") == "lmm" else 1.0
    m = blocks[0][0].shape[0]
    extra_J = np.zeros((m, mm.psi.shape[0]))
    krig = np.zeros(m)
    blocks = list(blocks)
    for i, (codes, z, _eff, names) in moved.items():
        par = theta[offs[i]:offs[i + 1]]
        W, K = covs[i].kriging(par, names)
        blocks[which.index(i)] = (codes, z @ W.T)
        krig += s2 * np.einsum("ia,ab,ib->i", z, K, z)
        b = term_effects(result)[i]
        sel = codes >= 0
        h = _steps(par)
        for a in range(1, par.shape[0]):  # the correlation parameters (W does not depend on the SD)
            e = np.zeros_like(par)
            e[a] = h[a]
            dW = (covs[i].kriging(par + e, names)[0] - covs[i].kriging(par - e, names)[0]) / (2.0 * h[a])
            extra_J[sel, offs[i] + a] = np.einsum("ik,ik->i", z[sel], (b @ dW)[codes[sel]])
    return blocks, extra_J, krig


def _re_contribution_terms(result, blocks, which) -> np.ndarray:
    effects = term_effects(result)
    m = blocks[0][0].shape[0] if blocks else 0
    eta = np.zeros(m)
    for ti, (codes, z) in zip(which, blocks):
        b = effects[ti]
        codes = np.asarray(codes, dtype=np.int64)
        z = np.asarray(z, dtype=float)
        ok = codes >= 0  # new levels (allow_new_levels=True) are predicted at zero
        eta[ok] += np.einsum("ik,ik->i", z[ok], b[codes[ok]])
    return eta


def _dmean_deta(result, eta, type, newdata) -> np.ndarray:
    """d(prediction)/d(eta) for the delta method: mu_eta for the inverse link,
    a central difference of the family's mean for the other response means."""
    fam = result.family
    h = 1e-6 * np.maximum(1.0, np.abs(eta))
    cm = getattr(fam, "conditional_mean", None)
    if type == "conditional" and callable(cm):
        return (np.asarray(cm(eta + h), float) - np.asarray(cm(eta - h), float)) / (2.0 * h)
    if type == "conditional" or not (getattr(fam, "aux_blocks", None) is not None or result.zi_params is not None
                                     or _is_zero_inflated(fam)):
        return np.asarray(fam.mu_eta(eta), dtype=float)
    return (response_mean(result, eta + h, newdata) - response_mean(result, eta - h, newdata)) / (2.0 * h)


def _subset_rows(newdata, ok):
    if ok.all():
        return newdata
    import pandas as pd

    from interlace.data import frame_columns, to_pandas_columns

    frame = to_pandas_columns(newdata, frame_columns(newdata, "newdata"), arg="newdata")
    return frame.loc[ok].reset_index(drop=True) if isinstance(frame, pd.DataFrame) else frame


def _scatter(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    if ok.all():
        return np.asarray(values, dtype=float)
    out = np.full(ok.shape[0], np.nan)
    out[ok] = values
    return out
