"""interlace-skellam: the Skellam distribution as an interlace family plugin.

Y = N1 - N2 with independent N1 ~ Poisson(mu1), N2 ~ Poisson(mu2): a signed count
(a goal difference, a change in a count). No peer mixed-model package ships it.
log(mu1) = eta is the conditional model (random effects allowed); log(mu2) is the
family's "disp" parameter (estimated, modelled by ``dispformula`` or held fixed
with ``mu2=``). E[Y] = mu1 - mu2, Var(Y) = mu1 + mu2.

    log f(y) = -(mu1 + mu2) + (y / 2) log(mu1 / mu2) + log I_|y|(2 sqrt(mu1 mu2))

The Bessel part depends on eta + log(mu2) only; its derivatives follow from the
modified Bessel equation (I'' = (1 + v^2 / x^2) I - I' / x), evaluated through the
exponentially scaled ``scipy.special.ive`` so that large arguments do not overflow.

    >>> import interlace                                          # doctest: +SKIP
    >>> m = interlace.glmer("d ~ x + (1 | g)", df, family="skellam")  # doctest: +SKIP
    >>> m.family_params["mu2"]                                    # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import LikelihoodFamily, Parts, as_fixed
from interlace.plugins import hookimpl

__all__ = ["SkellamFamily", "skellam_parts", "interlace_register_families"]
__version__ = "0.1.0"


def _log_bessel_derivs(v: np.ndarray, x: np.ndarray):
    """log I_v(x) and its first three derivatives in x."""
    iv = special.ive(v, x)
    k0 = np.log(iv) + x
    r = special.ive(v + 1.0, x) / iv
    k1 = r + v / x
    k2 = 1.0 + v * v / (x * x) - k1 / x - k1 * k1
    k3 = -2.0 * v * v / x ** 3 - k2 / x + k1 / (x * x) - 2.0 * k1 * k2
    return k0, k1, k2, k3


def skellam_parts(y: np.ndarray, eta: np.ndarray, lmu2: np.ndarray, order: int) -> Parts:
    """Log density and derivatives in eta = log(mu1) and p = log(mu2).

    With x = 2 sqrt(mu1 mu2), dx/deta = dx/dp = x / 2, the Bessel term B(eta + p) has
    B1 = k1 x / 2, B2 = k2 x^2 / 4 + k1 x / 4, B3 = k3 x^3 / 8 + 3 k2 x^2 / 8 + k1 x / 8,
    the same for every mix of eta and p."""
    y = np.asarray(y, dtype=float)
    mu1, mu2 = np.exp(eta), np.exp(lmu2)
    v = np.abs(y)
    x = 2.0 * np.exp(0.5 * (eta + lmu2))
    k0, k1, k2, k3 = _log_bessel_derivs(v, x)
    P = Parts(g=-(mu1 + mu2) + 0.5 * y * (eta - lmu2) + k0)
    if order < 1:
        return P
    B1 = 0.5 * k1 * x
    B2 = 0.25 * (k2 * x * x + k1 * x)
    P.e = -mu1 + 0.5 * y + B1
    P.ee = -mu1 + B2
    if order < 2:
        return P
    B3 = 0.125 * (k3 * x ** 3 + 3.0 * k2 * x * x + k1 * x)
    P.eee = -mu1 + B3
    P.p = -mu2 - 0.5 * y + B1
    P.ep = B2
    P.eep = B3
    return P


class SkellamFamily(LikelihoodFamily):
    """Skellam with log link for mu1 and log(mu2) as the family parameter.

    >>> SkellamFamily(mu2=2.0).params
    {'mu2': 2.0}
    """

    name = "skellam"
    aux_blocks = ("disp",)
    disp_meaning = "log(mu2)"

    def __init__(self, link: str = "log", mu2: float | None = None) -> None:
        super().__init__(link)
        m2 = as_fixed(mu2, "mu2")
        if m2 is not None:
            self.fixed_aux["disp"] = float(np.log(m2))
            self.params["mu2"] = m2

    def parts(self, y, eta, lphi, order) -> Parts:
        return skellam_parts(y, eta, lphi, order)

    def start_eta(self, y):
        y = np.asarray(y, dtype=float)
        m2 = 0.5 * max(float(np.var(y) - np.mean(y)), 0.2)
        return np.log(np.maximum(y + m2, 0.0) + 0.5)

    def aux_default(self, block, y=None):
        if block != "disp" or y is None:
            return 0.0
        y = np.asarray(y, dtype=float)
        return float(np.log(0.5 * max(float(np.var(y) - np.mean(y)), 0.2)))

    def mean(self, eta, aux):
        return np.exp(eta) - np.exp(aux["disp"])

    def variance(self, mu):
        m2 = self.params.get("mu2", float(np.exp(self._aux_values()["disp"])))
        return np.asarray(mu, dtype=float) + 2.0 * m2  # mu1 + mu2 with mu1 = mu + mu2

    def pearson_variance(self, mu, aux):
        return np.asarray(mu, dtype=float) + 2.0 * np.exp(aux["disp"])

    def dev_resids(self, y, mu, wt):
        return np.asarray(wt, dtype=float) * (np.asarray(y, float) - np.asarray(mu, float)) ** 2

    def simulate(self, mu, wt, rng, params):
        m2 = np.asarray(params["dispersion"] if params.get("dispersion") is not None else params["mu2"], float)
        m2 = np.broadcast_to(m2, mu.shape)
        return (rng.poisson(mu + m2) - rng.poisson(m2)).astype(float)

    def row_dispersion(self, aux):
        return np.exp(aux["disp"])

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"mu2": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | (y != np.round(y))
        if np.any(bad):
            raise ValueError(f"skellam response {column!r} must hold whole numbers (differences of counts); "
                             f"{int(bad.sum())} value(s) are not")


@hookimpl
def interlace_register_families(registry) -> None:
    """Register ``"skellam"``."""
    registry.add("skellam", SkellamFamily)
