"""simulate(): responses drawn from a fitted GLMM (lme4's simulate.merMod,
glmmTMB's simulate).

``re="conditional"`` keeps the random effects at their conditional modes
(lme4's ``use.u = TRUE`` / ``re.form = NULL``); ``re="unconditional"`` draws
new random effects from N(0, Sigma) for every replicate (lme4's default
``re.form = NA``, glmmTMB's simulate). Responses are on the scale of the
model frame's ``y``: for a binomial ``cbind(s, f)`` or ``s / n`` response the
simulated **proportion** of successes (counts divided by the trials), where
lme4 returns a two-column matrix of counts.

Each family draws its own responses with ``simulate(mu, wt, rng, params)``
(``mu`` the conditional mean per row, ``params`` the fitted family parameters
with per-row ``"dispersion"`` and ``"zprob"`` where the model has them); a
custom family provides the same method.

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

__all__ = ["simulate", "simulator", "simulate_eta", "draw_response", "family_parameters"]


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
        if not result.model_frame.terms:  # a GLM: no random effects to draw
            return []
        from interlace.objective.predictor import ReStructure

        re = ReStructure(result.model_frame.terms)
    return re.lambdas(result.theta.to_numpy(dtype=float))


def simulate_eta(result, nsim: int, rng: np.random.Generator, re: str = "conditional") -> np.ndarray:
    """(nsim, n) linear predictors: fixed part plus random effects at their
    conditional modes or freshly drawn from N(0, Sigma)."""
    return _eta_drawer(result, re)(nsim, rng)


def _eta_drawer(result, re: str):
    """``draw(nsim, rng)`` of :func:`simulate_eta`, with what does not change
    between draws (the fixed part, the Lambda blocks) computed once."""
    from interlace.results.predict import _re_contribution

    mf = result.model_frame
    base = mf.X @ result.fe_params.to_numpy(dtype=float) + mf.offset
    if re == "conditional":
        eta_c = base + (_re_contribution(result, [(t.codes, t.z) for t in mf.terms]) if mf.terms else 0.0)
        return lambda nsim, rng: np.broadcast_to(eta_c, (nsim, mf.n)).copy()
    if re != "unconditional":
        raise ValueError(f"re must be 'conditional' or 'unconditional', got {re!r}")
    # b = s Lambda u with u ~ N(0, I): s = sigma for the LMM (theta is relative to sigma)
    s = np.sqrt(result.scale) if result.optinfo.get("engine") == "lmm" else 1.0
    lams = list(zip(mf.terms, _lambdas(result)))

    def draw(nsim: int, rng: np.random.Generator) -> np.ndarray:
        eta = np.broadcast_to(base, (nsim, mf.n)).copy()
        for t, lam in lams:
            u = rng.standard_normal((nsim, t.nlevels, t.k))
            b = s * u @ lam.T  # (nsim, nlevels, k)
            eta += np.einsum("ik,sik->si", t.z, b[:, t.codes, :])
        return eta

    return draw


def draw_response(fam, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator,
                  params: dict[str, Any]) -> np.ndarray:
    """Draw responses with conditional mean ``mu`` (shape (nsim, n)) by the
    family's own ``simulate(mu, wt, rng, params)``.

    ``params``: ``dispersion`` per row on the family's natural scale (NB2
    theta, NB1 / Beta phi, Gamma shape, Gaussian sigma^2, inverse Gaussian phi),
    ``scale`` (GLM dispersion), ``zprob`` per row for zero-inflated and hurdle
    families, ``aux`` (the sub-model linear predictors).
    """
    sim = getattr(fam, "simulate", None)
    if not callable(sim):
        raise NotImplementedError(f"family {getattr(fam, 'name', fam)!r} has no simulator: give the family a "
                                  "simulate(mu, wt, rng, params) method")
    return np.asarray(sim(mu, wt, rng, params), dtype=float)


def simulate(result, nsim: int = 1, seed: int | np.random.Generator | None = None,
             re: str = "conditional") -> np.ndarray:
    """(nsim, n) responses simulated from ``result`` (see the module docstring)."""
    if int(nsim) < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return simulator(result, re)(int(nsim), rng)


def simulator(result, re: str = "conditional"):
    """``draw(nsim, rng) -> (nsim, n)`` responses: :func:`simulate` with the
    result's pieces (fixed part, Lambda, family parameters, side-model
    predictors) prepared once, for many draws (a bootstrap's replicates).
    ``simulator(m, re)(k, rng)`` draws what ``simulate(m, k, rng, re)`` draws.

    >>> draw = simulator(m, "unconditional")  # doctest: +SKIP
    >>> y = draw(1, np.random.default_rng(1))  # doctest: +SKIP
    """
    mf = result.model_frame
    fam = result.family
    eta_draw = _eta_drawer(result, re)
    base_params = family_parameters(result)
    from interlace.results.predict import _is_zero_inflated, aux_predictors, zi_probability

    aux0 = aux_predictors(result)
    side = bool(aux0 and re == "unconditional" and getattr(result, "side_models", None))
    zi = _is_zero_inflated(fam) or (result.zi_params is not None and "zi" not in aux0)
    wt = np.asarray(mf.weights, dtype=float)

    def draw(nsim: int, rng: np.random.Generator) -> np.ndarray:
        eta = eta_draw(nsim, rng)
        mu = np.asarray(fam.linkinv(eta), dtype=float)
        params = dict(base_params)
        aux = _side_draws(result, aux0, nsim, rng) if side else aux0
        if aux:
            params["aux"] = aux
            if hasattr(fam, "row_dispersion"):
                d = fam.row_dispersion(aux)
                if d is not None:
                    params["dispersion"] = np.asarray(d, dtype=float)
        if zi:
            from scipy import special

            zp = special.expit(aux["zi"]) if "zi" in aux else zi_probability(result)
            params["zprob"] = np.broadcast_to(zp, mu.shape)
        return draw_response(fam, mu, wt, rng, params)

    return draw


def _side_draws(result, aux: dict[str, np.ndarray], nsim: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(nsim, n) side-model predictors with fresh random effects (ziformula / dispformula
    random effects drawn from N(0, Sigma) as the conditional model's are)."""
    mf = result.model_frame
    out = dict(aux)
    terms_of = {"zi": mf.zi_terms, "disp": mf.disp_terms}
    for name, sm in result.side_models.items():
        from interlace.objective.predictor import ReStructure

        re = ReStructure(terms_of[name])
        X = mf.zi_X if name == "zi" else mf.disp_X
        val = np.broadcast_to(X @ result.aux_params[name].to_numpy(dtype=float), (nsim, mf.n)).copy()
        for t, lam in zip(re.terms, re.lambdas(sm["theta"].to_numpy(dtype=float))):
            u = rng.standard_normal((nsim, t.nlevels, t.k))
            val += np.einsum("ik,sik->si", t.z, (u @ lam.T)[:, t.codes, :])
        out[name] = val
    return out
