"""simulate(): responses drawn from a fitted GLMM (lme4's simulate.merMod,
glmmTMB's simulate).

``re="conditional"`` keeps the random effects at their conditional modes
(lme4's ``use.u = TRUE`` / ``re.form = NULL``); ``re="unconditional"`` draws
new random effects from N(0, Sigma) for every replicate (lme4's default
``re.form = NA``, glmmTMB's simulate). Responses are on the scale of the
model frame's ``y``: for a binomial ``cbind(s, f)`` or ``s / n`` response the
simulated **proportion** of successes (counts divided by the trials), where
lme4 returns a two-column matrix of counts.

A family may provide ``simulate(mu, wt, rng, params)`` (``mu`` the
conditional mean per row, ``params`` the fitted family parameters with per-row
``"dispersion"`` and ``"zprob"`` where the model has them); the built-in
families are drawn here.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> m.simulate(3, seed=1).shape
(3, 56)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["simulate", "simulate_eta", "draw_response", "family_parameters"]


def family_parameters(result) -> dict[str, Any]:
    """The fitted family parameters a simulator needs, by name.

    ``scale`` / ``sigma`` (Gaussian), ``theta`` (NB2), ``phi`` (NB1, Beta),
    ``shape`` (Gamma), per-row ``dispersion`` where the engine stored it.
    """
    params: dict[str, Any] = dict(getattr(result, "family_params", None) or {})
    fam = result.family
    for k, v in (getattr(fam, "params", None) or {}).items():
        params.setdefault(k, v)
    params.setdefault("scale", float(result.scale))
    if result.dispersion is not None:
        params.setdefault("dispersion", np.asarray(result.dispersion, dtype=float))
    return params


def _lambdas(result) -> list[np.ndarray]:
    re = getattr(result.objective, "re", None)
    if re is None:
        from interlace.objective.predictor import ReStructure

        re = ReStructure(result.model_frame.terms)
    return re.lambdas(result.theta.to_numpy(dtype=float))


def simulate_eta(result, nsim: int, rng: np.random.Generator, re: str = "conditional") -> np.ndarray:
    """(nsim, n) linear predictors: fixed part plus random effects at their
    conditional modes or freshly drawn from N(0, Sigma)."""
    from interlace.results.predict import _re_contribution

    mf = result.model_frame
    base = mf.X @ result.fe_params.to_numpy(dtype=float) + mf.offset
    if re == "conditional":
        eta = base + _re_contribution(result, [(t.codes, t.z) for t in mf.terms])
        return np.broadcast_to(eta, (nsim, mf.n)).copy()
    if re != "unconditional":
        raise ValueError(f"re must be 'conditional' or 'unconditional', got {re!r}")
    # b = s Lambda u with u ~ N(0, I): s = sigma for the LMM (theta is relative to sigma)
    s = np.sqrt(result.scale) if result.optinfo.get("engine") == "lmm" else 1.0
    eta = np.broadcast_to(base, (nsim, mf.n)).copy()
    for t, lam in zip(mf.terms, _lambdas(result)):
        u = rng.standard_normal((nsim, t.nlevels, t.k))
        b = s * u @ lam.T  # (nsim, nlevels, k)
        eta += np.einsum("ik,sik->si", t.z, b[:, t.codes, :])
    return eta


def _zero_truncated_poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws from Poisson(lam) conditioned on > 0, by inversion of the
    truncated CDF (no rejection loop, so small lam costs nothing extra)."""
    from scipy import stats

    p0 = np.exp(-lam)
    u = rng.uniform(size=lam.shape)
    # P(Y <= y | Y > 0) = (F(y) - p0) / (1 - p0): invert at u
    target = p0 + u * (1.0 - p0)
    y = stats.poisson.ppf(target, lam)
    return np.maximum(y, 1.0)


def draw_response(fam, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator,
                  params: dict[str, Any]) -> np.ndarray:
    """Draw responses with conditional mean ``mu`` (shape (nsim, n)) for the
    built-in families; a family's own ``simulate`` takes precedence.

    ``params``: ``dispersion`` per row on the family's natural scale (NB2
    theta, NB1 / Beta phi, Gamma shape for the glmmTMB-style family,
    Gaussian sigma^2), ``scale`` (GLM dispersion), ``zprob`` per row for
    zero-inflated and hurdle families, ``aux`` (the sub-model linear predictors).
    """
    if hasattr(fam, "simulate"):
        return np.asarray(fam.simulate(mu, wt, rng, params), dtype=float)
    name = str(getattr(fam, "name", "")).lower()
    disp = params.get("dispersion")
    zprob = params.get("zprob")
    aux = params.get("aux") or {}
    hurdle = bool(getattr(fam, "hurdle", False)) or name.startswith("hurdle") or name == "truncated_poisson"

    def need(key: str):
        if disp is not None:
            return np.asarray(disp, dtype=float)
        if key in params:
            return np.asarray(params[key], dtype=float)
        raise ValueError(f"simulating the {name} family needs its fitted {key}")

    if name == "binomial":
        n = np.broadcast_to(wt, mu.shape)
        if not np.allclose(n, np.round(n)):
            raise ValueError("binomial simulation needs integer trials (prior weights times cbind totals)")
        n = np.round(n).astype(np.int64)
        y = rng.binomial(n, np.clip(mu, 0.0, 1.0)) / np.maximum(n, 1)
    elif name in ("poisson", "zip") or (hurdle and "nb" not in name):
        y = _zero_truncated_poisson(mu, rng) if hurdle else rng.poisson(mu).astype(float)
    elif name == "gaussian":
        var = disp if disp is not None else params.get("scale", 1.0)
        y = mu + rng.standard_normal(mu.shape) * np.sqrt(np.asarray(var) / wt)
    elif name in ("negativebinomial", "nbinom2", "zinb", "negative_binomial"):
        theta = np.broadcast_to(need("theta"), mu.shape)
        y = rng.negative_binomial(theta, theta / (theta + mu)).astype(float)
    elif name == "nbinom1":
        size = mu / need("phi")
        y = rng.negative_binomial(size, size / (size + mu)).astype(float)
    elif name == "gamma":
        if aux or "shape" in params:  # glmmTMB-style family: the dispersion is the shape
            shape = need("shape")
        else:  # GLM dispersion phi = 1 / shape
            shape = 1.0 / np.asarray(params.get("scale", 1.0), dtype=float)
        shape = np.broadcast_to(shape, mu.shape)
        y = rng.gamma(shape, mu / shape)
    elif name in ("beta", "zoib"):
        phi = need("phi")
        y = rng.beta(mu * phi, (1.0 - mu) * phi)
        if name == "zoib":  # zero-one inflation: P(0 or 1) = plogis(zi), P(1 | 0 or 1) = plogis(coi)
            from scipy import special

            ends = rng.uniform(size=mu.shape) < special.expit(aux["zi"])
            ones = rng.uniform(size=mu.shape) < special.expit(aux["coi"])
            y = np.where(ends, ones.astype(float), y)
            zprob = None
    elif name in ("inverse_gaussian", "inverse.gaussian"):
        lam = 1.0 / (disp if disp is not None else params.get("scale", 1.0))
        y = rng.wald(mu, np.broadcast_to(lam * wt, mu.shape))
    else:
        raise NotImplementedError(
            f"family {name!r} has no simulator: give the family a simulate(mu, wt, rng, params) method")
    if zprob is not None:  # structural zero (zero-inflation) or the hurdle's zero
        y = np.where(rng.uniform(size=mu.shape) < zprob, 0.0, y)
    return y


def simulate(result, nsim: int = 1, seed: int | np.random.Generator | None = None,
             re: str = "conditional") -> np.ndarray:
    """(nsim, n) responses simulated from ``result`` (see the module docstring)."""
    if int(nsim) < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    nsim = int(nsim)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mf = result.model_frame
    fam = result.family
    eta = simulate_eta(result, nsim, rng, re=re)
    mu = np.asarray(fam.linkinv(eta), dtype=float)
    params = family_parameters(result)
    from interlace.results.predict import _is_zero_inflated, aux_predictors, zi_probability

    aux = aux_predictors(result)
    if aux:
        params["aux"] = aux
        if hasattr(fam, "row_dispersion"):
            d = fam.row_dispersion(aux)
            if d is not None:
                params["dispersion"] = np.asarray(d, dtype=float)
    if _is_zero_inflated(fam) or (result.zi_params is not None and "zi" not in aux):
        params["zprob"] = np.broadcast_to(zi_probability(result), mu.shape)
    return draw_response(fam, mu, np.asarray(mf.weights, dtype=float), rng, params)
