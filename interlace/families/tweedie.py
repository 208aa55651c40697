"""glmmTMB's ``tweedie``: compound Poisson-gamma with Var(Y) = phi mu^p, 1 < p < 2, log link.

glmmTMB 1.1.5's parameters: the dispersion coefficients model log(phi) (``sigma(m)`` is phi);
the power is the extra parameter psi with p = 1 + plogis(psi), estimated unless held fixed
(``tweedie(power=1.6)``). glmmTMB prints it as ``Tweedie power`` (``family_params``), and so
does ``family_params`` here. The density's series is summed by a compiled kernel
(:mod:`interlace.kernels.tweedie`).

Example
-------
>>> TweedieFamily(power=1.6).params
{'Tweedie power': 1.6}
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed

__all__ = ["TweedieFamily"]

_POWER = "Tweedie power"


class TweedieFamily(LikelihoodFamily):
    """Tweedie with log link; ``power`` in (1, 2) given -> held fixed.

    log f(y) = (y mu^(1-p) / (1-p) - mu^(2-p) / (2-p)) / phi - log y + log A(y, phi, p) for y > 0,
    log f(0) = -mu^(2-p) / ((2-p) phi).

    >>> import numpy as np
    >>> fam = TweedieFamily()
    >>> d = fam.derivs(np.array([0.0]), np.ones(1), np.zeros(1), {"disp": np.zeros(1), "psi": np.zeros(1)}, 0)
    >>> round(float(d.l[0]), 6)  # -1 / ((2 - 1.5) * 1)
    -2.0
    """

    name = "tweedie"
    aux_blocks = ("disp", "psi")
    allowed_links = ("log",)
    disp_meaning = "log(phi)"

    def __init__(self, link: str = "log", power: float | None = None) -> None:
        super().__init__(link)
        v = as_fixed(power, "power")
        if v is not None:
            if not 1.0 < v < 2.0:
                raise ValueError(f"the Tweedie power must lie in (1, 2), got {power!r}")
            self.fixed_aux["psi"] = float(special.logit(v - 1.0))
            self.params[_POWER] = v

    def derivs(self, y, wt, eta, aux, order=2):
        from interlace.kernels.tweedie import tweedie_rows

        y = np.ascontiguousarray(y, dtype=float)
        lphi = np.ascontiguousarray(np.broadcast_to(np.asarray(aux["disp"], dtype=float), y.shape))
        psi = np.asarray(aux["psi"], dtype=float)
        # the power is one number per fit (glmmTMB's psi has no model)
        p = float(1.0 + special.expit(psi[0])) if psi.size else 1.5
        la, dla_phi, dla_p = self._series(y, lphi, p)
        r = tweedie_rows(y, np.ascontiguousarray(np.broadcast_to(np.asarray(wt, dtype=float), y.shape)),
                         np.ascontiguousarray(eta, dtype=float), lphi, p, la, dla_phi, dla_p, int(order))
        out = Derivs(l=r[0])
        if order >= 1:
            out.e, out.ee = r[1], r[2]
        if order >= 2:
            out.eee = r[3]
            out.aux["disp"] = r[4:7]
            out.aux["psi"] = r[7:10]
        return out

    def _series(self, y, lphi, p):
        """The series (log A and its derivatives) at (y, phi, p): it does not depend on eta, so
        the inner Newton iterations on the random effects, which move eta only, reuse the last
        one (the dominant cost of a fit: one pass over the rows' series)."""
        from interlace.kernels.tweedie import tweedie_log_series

        cache = self.__dict__.setdefault("_series_cache", [])
        for i, c in enumerate(cache):
            if c[0] == p and np.array_equal(c[1], lphi) and np.array_equal(c[2], y):
                cache.insert(0, cache.pop(i))
                return c[3]
        out = tweedie_log_series(y, lphi, p)
        # a few entries: the Hessian's differences in (beta, theta) return to the base (phi, p)
        cache.insert(0, (p, lphi.copy(), y.copy(), out))
        del cache[4:]
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_series_cache", None)  # a cache of per-row arrays: not part of the family
        return state

    def __copy__(self):
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__getstate__())
        return new

    def aux_default(self, block, y=None):
        """glmmTMB's start: log(phi) = 0 and psi = 0 (p = 1.5)."""
        return 0.0

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 0.0) + 0.1)

    def power_of(self, aux: dict) -> float:
        psi = np.asarray(aux.get("psi", self.fixed_aux.get("psi", 0.0)), dtype=float).ravel()
        return float(1.0 + special.expit(psi[0]))

    def variance(self, mu):
        phi = self.params.get("phi", 1.0)
        p = self.params.get(_POWER, 1.5)
        return phi * np.asarray(mu, dtype=float) ** p

    def pearson_variance(self, mu, aux):
        """glmmTMB's tweedie variance phi mu^p at the fitted phi and power."""
        return np.exp(np.asarray(aux["disp"], dtype=float)) * np.asarray(mu, dtype=float) ** self.power_of(aux)

    def dev_resids(self, y, mu, wt):
        from interlace.families.base import power_dev_resids

        return power_dev_resids(y, mu, wt, self.params.get(_POWER, 1.5))

    def dev_resids_at(self, y, mu, wt, aux):
        """The Tweedie unit deviance at the fitted power (the density is maximal at mu = y)."""
        from interlace.families.base import power_dev_resids

        return power_dev_resids(y, mu, wt, self.power_of(aux))

    def simulate(self, mu, wt, rng, params):
        """Compound Poisson-gamma: N ~ Poisson(mu^(2-p) / (phi (2-p))), Y | N ~ Gamma(N (2-p)/(p-1),
        scale phi (p-1) mu^(p-1)) (Y = 0 when N = 0)."""
        p = float(params[_POWER])
        phi = np.broadcast_to(np.asarray(params.get("dispersion", params.get("phi")), dtype=float), mu.shape)
        lam = mu ** (2.0 - p) / (phi * (2.0 - p))
        N = rng.poisson(lam)
        shape = N * (2.0 - p) / (p - 1.0)
        scale = phi * (p - 1.0) * mu ** (p - 1.0)
        return np.where(N > 0, rng.gamma(np.where(N > 0, shape, 1.0), scale), 0.0)

    def natural_params(self, coefs):
        out = {}
        d = coefs.get("disp", {})
        if list(d) == ["Intercept"]:
            out["phi"] = float(np.exp(d["Intercept"]))
        s = coefs.get("psi", {})
        if list(s) == ["Intercept"]:
            out[_POWER] = float(1.0 + special.expit(s["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)) or np.any(y < 0):
            raise ValueError(f"tweedie response {column!r} must be finite and >= 0 "
                             f"({int(np.sum(~np.isfinite(y) | (y < 0)))} value(s) are not)")
