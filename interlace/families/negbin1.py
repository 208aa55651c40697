"""glmmTMB's ``nbinom1``: negative binomial with Var(Y) = mu (1 + phi).

The density is dnbinom(y, mu = mu, size = mu / phi); log(phi) is estimated
(or modelled by ``dispformula``).

Example
-------
>>> NegativeBinomial1Family().disp_meaning
'log(phi)'
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import LikelihoodFamily, Parts, as_fixed

__all__ = ["NegativeBinomial1Family"]


class NegativeBinomial1Family(LikelihoodFamily):
    """NB1 with log link; ``phi`` given -> held fixed.

    >>> NegativeBinomial1Family(phi=2.0).params
    {'phi': 2.0}
    """

    name = "nbinom1"
    aux_blocks = ("disp",)
    disp_meaning = "log(phi)"

    def __init__(self, phi: float | None = None, link: str = "log") -> None:
        super().__init__(link)
        ph = as_fixed(phi, "phi")
        if ph is not None:
            self.fixed_aux["disp"] = float(np.log(ph))
            self.params["phi"] = ph

    def parts(self, y, eta, lphi, order) -> Parts:
        # k = mu / phi is the NB size; log f = lgamma(y + k) - lgamma(k) - lgamma(y + 1)
        #   - k log(1 + phi) + y (log phi - log(1 + phi)).
        k = np.exp(eta - lphi)
        l1p = np.logaddexp(0.0, lphi)  # log(1 + phi)
        g = (special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1.0)
             - k * l1p + y * (lphi - l1p))
        P = Parts(g=g)
        if order >= 1:
            T0 = special.digamma(y + k) - special.digamma(k) - l1p
            T1 = special.polygamma(1, y + k) - special.polygamma(1, k)
            P.e = k * T0
            P.ee = k * T0 + k * k * T1
            if order >= 2:
                T2 = special.polygamma(2, y + k) - special.polygamma(2, k)
                c = np.exp(lphi - l1p)  # phi / (1 + phi)
                P.eee = k * T0 + 3.0 * k * k * T1 + k ** 3 * T2
                P.p = -k * T0 - k * c + y * (1.0 - c)
                P.ep = -k * T0 - k * k * T1 - k * c
                P.eep = -k * T0 - 3.0 * k * k * T1 - k ** 3 * T2 - k * c
        return P

    def variance(self, mu):
        ph = self.params.get("phi", float(np.exp(self._aux_values()["disp"])))
        return np.asarray(mu, dtype=float) * (1.0 + ph)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}
