"""Zero-inflated NB2 (glmmTMB's ``nbinom2`` with ``ziformula``).

P(Y = 0) = p + (1 - p) f(0), f = dnbinom(mu, size = theta), logit(p) =
X_zi @ gamma; log(theta) estimated (or by ``dispformula``). Fitted values are
E[Y] = (1 - p) mu.

Example
-------
>>> ZeroInflatedNB2Family().aux_blocks
('disp', 'zi')
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob, fitted_param
from interlace.families.likelihood import LikelihoodFamily, as_fixed, nbinom2_parts, zero_inflate

__all__ = ["ZeroInflatedNB2Family"]


class ZeroInflatedNB2Family(LikelihoodFamily):
    """ZINB2 with log link; ``theta`` / ``pi`` given -> held fixed.

    >>> ZeroInflatedNB2Family(theta=1.0).fixed_aux
    {'disp': 0.0}
    """

    name = "zinb"
    aux_blocks = ("disp", "zi")
    disp_meaning = "log(theta)"
    response_scale_name = "rate"

    def __init__(self, link: str = "log", theta: float | None = None, pi: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(theta, "theta")
        if pi is not None:
            p = as_fixed(pi, "pi")
            if p >= 1:
                raise ValueError(f"pi must lie in (0, 1), got {pi!r}")
            self.fixed_aux["zi"] = float(special.logit(p))
            self.params["pi"] = p

    def derivs(self, y, wt, eta, aux, order=2):
        P = nbinom2_parts(y, eta, aux["disp"], order)
        return zero_inflate(P, y, wt, aux["zi"], order, True)

    def jet(self, y, wt, eta, aux, names, order=3, aux_re=None):
        """Exact per-row derivatives in every predictor (random effects in the side models)."""
        from interlace.families.negbin2 import NegativeBinomial2Family
        from interlace.families.zi import ZeroInflatedFamily

        return ZeroInflatedFamily(NegativeBinomial2Family()).jet(y, wt, eta, aux, names, order, aux_re=aux_re)

    def mean(self, eta, aux):
        return (1.0 - special.expit(aux["zi"])) * np.exp(eta)

    def pearson_variance(self, mu, aux):
        """glmmTMB's nbinom2 variance mu + mu^2 / theta at the fitted (per-row) theta."""
        return mu + mu * mu / np.exp(aux["disp"]) if "disp" in aux else self.variance(mu)

    def simulate(self, mu, wt, rng, params):
        theta = np.broadcast_to(fitted_param(params, "theta", self.name), mu.shape)
        return apply_zprob(rng.negative_binomial(theta, theta / (theta + mu)).astype(float), params, rng)

    def natural_params(self, coefs):
        out = {}
        d, z = coefs.get("disp", {}), coefs.get("zi", {})
        if list(d) == ["Intercept"]:
            out["theta"] = float(np.exp(d["Intercept"]))
        if list(z) == ["Intercept"]:
            out["pi"] = float(special.expit(z["Intercept"]))
        return out
