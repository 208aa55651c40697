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

__all__ = ["Prediction", "predict", "term_effects", "design", "zi_probability", "aux_predictors",
           "response_mean", "conditional_link_variance"]

_TYPES = ("response", "link", "conditional", "zprob")


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


def _is_zero_inflated(fam) -> bool:
    """True for zero-inflated and hurdle families (a zero probability p per row)."""
    name = str(getattr(fam, "name", "")).lower()
    if bool(getattr(fam, "zi", False) or getattr(fam, "hurdle", False)):
        return True
    return "zi" in tuple(getattr(fam, "aux_blocks", ())) and name != "zoib"


def _is_hurdle(fam) -> bool:
    return bool(getattr(fam, "hurdle", False)) or str(getattr(fam, "name", "")).lower().startswith("hurdle")


def _sub_design(result, block: str, newdata: Any) -> np.ndarray:
    """Design matrix of the ``dispformula`` ("disp") or ``ziformula`` ("zi")
    sub-model for the training rows or ``newdata`` (intercept only when the
    model has no such formula)."""
    mf = result.model_frame
    X_train = {"disp": mf.disp_X, "zi": mf.zi_X}.get(block)
    spec = getattr(mf.spec, {"disp": "disp_spec", "zi": "zi_spec"}.get(block, ""), None)
    if newdata is None:
        return np.asarray(X_train, dtype=float) if X_train is not None else np.ones((mf.n, 1))
    if spec is None or X_train is None:
        return np.ones((_nrows(newdata), 1))
    from interlace.data import to_pandas_columns

    frame = to_pandas_columns(newdata, _spec_columns(spec, newdata), arg="newdata")
    X = np.asarray(spec.get_model_matrix(frame), dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):
        X = np.broadcast_to(X, (len(frame), X.shape[1])).copy()
    return X


def aux_predictors(result, newdata: Any = None) -> dict[str, np.ndarray]:
    """Per-row linear predictors of the family's own sub-models (``"disp"``,
    ``"zi"``, zoib's ``"coi"``), as the general-likelihood families take them
    in ``mean(eta, aux)`` / ``row_dispersion(aux)``. Fixed blocks (a family
    given e.g. ``theta=2.0``) are constant. Empty for exponential families."""
    fam = result.family
    blocks = tuple(getattr(fam, "aux_blocks", ()) or ())
    if not blocks:
        return {}
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


def _nrows(data: Any) -> int:
    from interlace.data import frame_len

    return frame_len(data, "newdata")


def _spec_columns(spec, data) -> list[str]:
    from interlace.data import frame_columns

    have = frame_columns(data, "newdata")
    try:
        needed = set(spec.required_variables)
    except Exception:  # older formulaic: read every column the frame has
        return list(have)
    return [c for c in have if c in needed]


def response_mean(result, eta: np.ndarray, newdata: Any = None) -> np.ndarray:
    """E[Y] per row: ``family.mean(eta, aux)`` for the general-likelihood
    families (zero-inflated: (1 - p) mu; hurdle: (1 - p) mu / (1 - f(0));
    zoib: the mixture mean), otherwise the inverse link, with (1 - p) applied
    when an exponential-family result carries ``zi_params``."""
    fam = result.family
    if getattr(fam, "aux_blocks", None):
        return np.asarray(fam.mean(eta, aux_predictors(result, newdata)), dtype=float)
    mu = np.asarray(fam.linkinv(eta), dtype=float)
    if result.zi_params is not None or _is_zero_inflated(fam):
        p = zi_probability(result, newdata)
        if _is_hurdle(fam):
            return (1.0 - p) * mu / -np.expm1(-mu)
        return (1.0 - p) * mu
    return mu


# --------------------------------------------------------------------------- predict


def predict(result, newdata: Any = None, type: str = "response", include_re: bool = True,
            allow_new_levels: bool = False, se_fit: bool = False, offset: Any = None):
    """Predictions from ``result`` (see :meth:`GLMMResult.predict`).

    ``type``: ``"link"`` (eta), ``"response"`` (the mean of y: for
    zero-inflated and hurdle families the unconditional mean, as glmmTMB's
    ``type = "response"``), ``"conditional"`` (mean of the conditional count
    model; for a hurdle family the zero-truncated mean, as glmmTMB) or
    ``"zprob"`` (the zero-inflation / hurdle probability).
    ``se_fit=True`` returns ``Prediction(fit, se_fit)`` with the SE of eta.

    Example
    -------
    >>> import interlace
    >>> df = interlace.datasets.load("sleepstudy")
    >>> m = interlace.glmer("Reaction ~ Days + (Days | Subject)", df, family="gaussian")
    >>> fit, se = m.predict(df.head(2), type="link", se_fit=True)
    >>> bool((se > 0).all())
    True
    """
    if type not in _TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, _TYPES))}, got {type!r}")
    fam = result.family
    if type in ("conditional", "zprob") and not _is_zero_inflated(fam) and result.zi_params is None:
        raise ValueError(f"type={type!r} is for zero-inflated and hurdle families; "
                         f"family {getattr(fam, 'name', fam)!r} has no zero part")
    if type == "zprob":
        if se_fit:
            raise ValueError("se_fit is available for the linear predictor of the conditional model only")
        return zi_probability(result, newdata)
    # without the random effects the grouping levels are irrelevant, new ones included
    X, blocks, off = design(result, newdata, allow_new_levels=allow_new_levels or not include_re, offset=offset)
    eta = X @ result.fe_params.to_numpy(dtype=float) + off
    if include_re and blocks:
        eta = eta + _re_contribution(result, blocks)
    if type == "link":
        fit = eta
    elif type == "conditional":  # the count model's mean (the family may define it: hurdle = truncated)
        cm = getattr(fam, "conditional_mean", None)
        fit = np.asarray(cm(eta) if callable(cm) else fam.linkinv(eta), dtype=float)
    else:
        fit = response_mean(result, eta, newdata)
    if not se_fit:
        return fit
    V = result.vcov.to_numpy(dtype=float)
    var = np.einsum("ij,jk,ik->i", X, V, X)
    if include_re and blocks:
        var = var + conditional_link_variance(result, blocks)
    return Prediction(fit, np.sqrt(np.maximum(var, 0.0)))
