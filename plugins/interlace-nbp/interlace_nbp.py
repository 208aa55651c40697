"""interlace-nbp: Greene's NB-P negative binomial as an interlace family plugin.

Var(Y) = mu + mu^P / theta: the negative binomial with size k = theta mu^(2 - P). P = 2 is
glmmTMB's nbinom2, P = 1 its nbinom1 (theta = 1/phi); any other power, which no peer
mixed-model package offers, interpolates (P = 1.5) or goes beyond. P is fixed by the user
(``interlace.family("nbp", power=1.5)``, default 1.5); log(theta) is estimated (or
modelled by ``dispformula``) on interlace's general-likelihood Laplace engine.

With kappa = log k = log(theta) + (2 - P) eta, the log density is NB2's in (eta, kappa),
h(eta, kappa); the derivatives in (eta, log theta) follow by the linear chain rule
(c = 2 - P): g_e = h_e + c h_k, g_ee = h_ee + 2c h_ek + c^2 h_kk, and so on.

    >>> import interlace                                                    # doctest: +SKIP
    >>> m = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
    ...                     family=interlace.family("nbp", power=1.5))      # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import LikelihoodFamily, Parts, as_fixed, check_counts, nbinom2_parts
from interlace.plugins import hookimpl

__all__ = ["NBPFamily", "nbp_parts", "nb2_kappa_derivs", "interlace_register_families"]
__version__ = "0.1.0"


def nb2_kappa_derivs(y, eta, kappa):
    """NB2 (log mean eta, log size kappa): the third-order derivatives with two kappas,
    h_ekk and h_kkk, which nbinom2_parts does not give.

    With theta = e^kappa, m = mu/(mu + theta), s = 1 - m, R = (y + theta)/(mu + theta):
    h_ek = -theta m + (y + theta) m s, so h_ekk = -theta m + 2 theta m s - (y + theta)(1 - 2m) m s;
    h_kk = theta A + theta^2 D1 + theta B (B = 1 - 2s + sR), so
    h_kkk = h_kk + 2 theta^2 D1 + theta^3 D2 + theta B + theta dB, dB = s m (R - 2) + s^2 (1 - R),
    D_j = psi_j(y + theta) - psi_j(theta)."""
    th = np.exp(kappa)
    lmt = np.logaddexp(eta, kappa)
    m = np.exp(eta - lmt)
    s = 1.0 - m
    yt = y + th
    R = yt * np.exp(-lmt)
    D1 = special.polygamma(1, yt) - special.polygamma(1, th)
    D2 = special.polygamma(2, yt) - special.polygamma(2, th)
    P = nbinom2_parts(y, eta, kappa, 2)
    h_ekk = -th * m + 2.0 * th * m * s - yt * (1.0 - 2.0 * m) * m * s
    B = 1.0 - 2.0 * s + s * R
    dB = s * m * (R - 2.0) + s * s * (1.0 - R)
    h_kkk = P.pp + 2.0 * th * th * D1 + th ** 3 * D2 + th * B + th * dB
    return P, h_ekk, h_kkk


def nbp_parts(y: np.ndarray, eta: np.ndarray, lth: np.ndarray, power: float, order: int) -> Parts:
    """Log density and derivatives in eta and p = log(theta) for the NB-P with power P."""
    y = np.asarray(y, dtype=float)
    c = 2.0 - power
    kappa = lth + c * eta
    if order < 2:
        h = nbinom2_parts(y, eta, kappa, 2 if order >= 1 else 0)
        P = Parts(g=h.g)
        if order >= 1:
            P.e = h.e + c * h.p
            P.ee = h.ee + 2.0 * c * h.ep + c * c * h.pp
        return P
    h, h_ekk, h_kkk = nb2_kappa_derivs(y, eta, kappa)
    P = Parts(g=h.g)
    P.e = h.e + c * h.p
    P.ee = h.ee + 2.0 * c * h.ep + c * c * h.pp
    P.eee = h.eee + 3.0 * c * h.eep + 3.0 * c * c * h_ekk + c ** 3 * h_kkk
    P.p = h.p
    P.ep = h.ep + c * h.pp
    P.eep = h.eep + 2.0 * c * h_ekk + c * c * h_kkk
    P.pp = h.pp
    P.epp = h_ekk + c * h_kkk
    P.ppp = h_kkk
    return P


class NBPFamily(LikelihoodFamily):
    """NB-P with log link: Var = mu + mu^power / theta; ``theta`` given -> held fixed.

    >>> NBPFamily(power=1.2).power
    1.2
    """

    name = "nbp"
    aux_blocks = ("disp",)
    disp_meaning = "log(theta)"

    def __init__(self, link: str = "log", power: float = 1.5, theta: float | None = None) -> None:
        super().__init__(link)
        power = float(power)
        if not np.isfinite(power):
            raise ValueError(f"power must be a finite number, got {power!r}")
        self.power = power
        self.params["power"] = power
        th = as_fixed(theta, "theta")
        if th is not None:
            self.fixed_aux["disp"] = float(np.log(th))
            self.params["theta"] = th

    def parts(self, y, eta, lphi, order) -> Parts:
        return nbp_parts(y, eta, lphi, self.power, order)

    def mean(self, eta, aux):
        return np.exp(eta)

    def variance(self, mu):
        th = self.params.get("theta", float(np.exp(self._aux_values()["disp"])))
        mu = np.asarray(mu, dtype=float)
        return mu + mu ** self.power / th

    def pearson_variance(self, mu, aux):
        mu = np.asarray(mu, dtype=float)
        return mu + mu ** self.power / np.exp(aux["disp"]) if "disp" in aux else self.variance(mu)

    def simulate(self, mu, wt, rng, params):
        th = params.get("dispersion") if params.get("dispersion") is not None else params["theta"]
        size = np.asarray(th, dtype=float) * mu ** (2.0 - self.power)
        y = rng.negative_binomial(size, size / (size + mu)).astype(float)
        zp = params.get("zprob")
        return y if zp is None else np.where(rng.uniform(size=y.shape) < zp, 0.0, y)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"theta": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_counts(y, column, "nbp")


@hookimpl
def interlace_register_families(registry) -> None:
    """Register ``"nbp"``."""
    registry.add("nbp", NBPFamily)
