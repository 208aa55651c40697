"""Zero-inflated Poisson (glmmTMB's ``poisson`` with ``ziformula``).

P(Y = 0) = p + (1 - p) exp(-mu), P(Y = y) = (1 - p) dpois(y, mu) for y > 0,
logit(p) = X_zi @ gamma (``ziformula``, default ``"~1"``). Fitted values are
E[Y] = (1 - p) mu.

Example
-------
>>> ZeroInflatedPoissonFamily().aux_blocks
('zi',)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob
from interlace.families.likelihood import LikelihoodFamily, as_fixed, poisson_parts, zero_inflate

__all__ = ["ZeroInflatedPoissonFamily"]


class ZeroInflatedPoissonFamily(LikelihoodFamily):
    """ZIP with log link; ``pi`` given -> the zero-inflation probability is fixed.

    >>> ZeroInflatedPoissonFamily(pi=0.25).params
    {'pi': 0.25}
    """

    name = "zip"
    aux_blocks = ("zi",)
    response_scale_name = "rate"

    def __init__(self, link: str = "log", pi: float | None = None) -> None:
        super().__init__(link)
        if pi is not None:
            p = as_fixed(pi, "pi")
            if p >= 1:
                raise ValueError(f"pi must lie in (0, 1), got {pi!r}")
            self.fixed_aux["zi"] = float(special.logit(p))
            self.params["pi"] = p

    def derivs(self, y, wt, eta, aux, order=2):
        return zero_inflate(poisson_parts(y, eta, order), y, wt, aux["zi"], order, False)

    def jet(self, y, wt, eta, aux, names, order=3, aux_re=None):
        """Exact per-row derivatives in every predictor (random effects in the side models)."""
        from interlace.families.zi import PoissonLikelihood, ZeroInflatedFamily

        return ZeroInflatedFamily(PoissonLikelihood()).jet(y, wt, eta, aux, names, order, aux_re=aux_re)

    def mean(self, eta, aux):
        return (1.0 - special.expit(aux["zi"])) * np.exp(eta)

    def row_dispersion(self, aux):
        return None

    def pearson_variance(self, mu, aux):
        """Poisson's mu (the caller mixes in the zero-inflation)."""
        return np.asarray(mu, dtype=float).copy()

    def simulate(self, mu, wt, rng, params):
        return apply_zprob(rng.poisson(mu).astype(float), params, rng)

    def natural_params(self, coefs):
        z = coefs.get("zi", {})
        return {"pi": float(special.expit(z["Intercept"]))} if list(z) == ["Intercept"] else {}
