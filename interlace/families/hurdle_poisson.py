"""Hurdle Poisson (glmmTMB's ``truncated_poisson`` with ``ziformula``).

P(Y = 0) = p with logit(p) = X_zi @ gamma; positives follow a zero-truncated
Poisson with (untruncated) mean mu = exp(eta). Fitted values are the true mean
E[Y] = (1 - p) mu / (1 - exp(-mu)).

Example
-------
>>> HurdlePoissonFamily().aux_blocks
('zi',)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob
from interlace.families.likelihood import LikelihoodFamily, hurdle, poisson_parts

__all__ = ["HurdlePoissonFamily"]


class HurdlePoissonFamily(LikelihoodFamily):
    """Hurdle Poisson with log link.

    >>> HurdlePoissonFamily().name
    'hurdle_poisson'
    """

    name = "hurdle_poisson"
    aux_blocks = ("zi",)
    zero_model = "hurdle"
    response_scale_name = "rate"

    def derivs(self, y, wt, eta, aux, order=2):
        P = poisson_parts(y, eta, order)
        P0 = poisson_parts(np.zeros_like(y), eta, order)
        return hurdle(P, P0, y, wt, aux["zi"], order, False)

    def mean(self, eta, aux):
        mu = np.exp(eta)
        return (1.0 - special.expit(aux["zi"])) * mu / -np.expm1(-mu)

    def conditional_mean(self, eta):
        """Mean of the zero-truncated count part, lambda / (1 - exp(-lambda)) (glmmTMB's
        ``predict(type = "conditional")`` for a truncated family)."""
        lam = np.exp(np.asarray(eta, dtype=float))
        return lam / -np.expm1(-lam)

    def row_dispersion(self, aux):
        return None

    def pearson_variance(self, mu, aux):
        """Poisson's mu (the caller builds the hurdle's exact variance from it)."""
        return np.asarray(mu, dtype=float).copy()

    def simulate(self, mu, wt, rng, params):
        """Zero-truncated Poisson(mu) draws, zero with the hurdle probability."""
        return apply_zprob(zero_truncated_poisson(mu, rng), params, rng)

    def natural_params(self, coefs):
        z = coefs.get("zi", {})
        return {"pi": float(special.expit(z["Intercept"]))} if list(z) == ["Intercept"] else {}


def zero_truncated_poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws from Poisson(lam) conditioned on > 0, by inversion of the
    truncated CDF (no rejection loop, so small lam costs nothing extra)."""
    from scipy import stats

    p0 = np.exp(-lam)
    u = rng.uniform(size=lam.shape)
    # P(Y <= y | Y > 0) = (F(y) - p0) / (1 - p0): invert at u
    target = p0 + u * (1.0 - p0)
    y = stats.poisson.ppf(target, lam)
    return np.maximum(y, 1.0)
