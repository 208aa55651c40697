"""glmmTMB's ``nbinom2``: negative binomial with Var(Y) = mu + mu^2 / theta.

theta is estimated by maximum likelihood jointly with everything else
(glmmTMB's model; glmer.nb alternates and stops a little short of the joint
maximum). ``dispformula`` models log(theta) per row.

Example
-------
>>> NegativeBinomial2Family().aux_blocks
('disp',)
>>> NegativeBinomial2Family(theta=2.0).fixed_aux["disp"]  # log(2), held fixed
0.6931471805599453
"""

from __future__ import annotations

import numpy as np

from interlace.families import get_family
from interlace.families.base import apply_zprob, fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, nbinom2_parts

__all__ = ["NegativeBinomial2Family"]


class NegativeBinomial2Family(LikelihoodFamily):
    """NB2 with log link; ``theta`` given -> held fixed, else estimated.

    >>> NegativeBinomial2Family(theta=1.5).params
    {'theta': 1.5}
    """

    name = "negativebinomial"
    aux_blocks = ("disp",)
    disp_meaning = "log(theta)"
    response_scale_name = "rate"

    def zero_inflated_family(self):
        """glmmTMB's nbinom2 + ziformula: ZINB2 (theta kept fixed when it was given), from
        the registry (zinb.py builds its derivatives from this module's)."""
        return get_family("zinb", theta=self.params.get("theta"))

    def observation_variance(self, sigma2, params, null_mu):
        """log(1 + 1 / mu0 + 1 / theta) (insight's lognormal approximation)."""
        if "theta" not in params:
            return super().observation_variance(sigma2, params, null_mu)
        return float(np.log1p(1.0 / null_mu() + 1.0 / float(params["theta"])))

    def __init__(self, theta: float | None = None, link: str = "log") -> None:
        super().__init__(link)
        self.hold_disp(theta, "theta")

    def parts(self, y, eta, lphi, order) -> Parts:
        return nbinom2_parts(y, eta, lphi, order)

    def dev_resids_at(self, y, mu, wt, aux):
        """The NB2 deviance at the fitted (per-row) theta, as glmer.nb's residuals."""
        from interlace.families.base import negbin_dev_resids

        th = np.exp(np.asarray(aux["disp"], dtype=float)) if "disp" in aux else self.params["theta"]
        return negbin_dev_resids(y, mu, wt, th)

    def pearson_variance(self, mu, aux):
        """glmmTMB's nbinom2 variance mu + mu^2 / theta at the fitted (per-row) theta."""
        return mu + mu * mu / np.exp(aux["disp"]) if "disp" in aux else self.variance(mu)

    def simulate(self, mu, wt, rng, params):
        theta = np.broadcast_to(fitted_param(params, "theta", self.name), mu.shape)
        return apply_zprob(rng.negative_binomial(theta, theta / (theta + mu)).astype(float), params, rng)

    def variance(self, mu):
        th = np.exp(self._aux_values()["disp"]) if "theta" not in self.params else self.params["theta"]
        mu = np.asarray(mu, dtype=float)
        return mu + mu * mu / th

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"theta": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}
