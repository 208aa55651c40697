"""glmmTMB's ``t_family``: Y = mu + sigma T, T ~ Student t with df degrees of freedom.

glmmTMB 1.1.5's parameters: the dispersion coefficients model log(sigma) (``sigma(m)`` is
sigma, the scale, not the SD), and the extra parameter psi = log(df) is estimated unless
held fixed (glmmTMB: ``map = list(psi = factor(NA))``; here ``t(df=4)``). glmmTMB prints df
as ``Student-t df`` (``family_params``), and so does ``family_params`` here.

Example
-------
>>> StudentTFamily(df=4).params
{'Student-t df': 4.0}
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import LikelihoodFamily, SigmaScale, as_fixed
from interlace.families.mean_chain import derivs_from_mean

__all__ = ["StudentTFamily"]

_DF = "Student-t df"


class StudentTFamily(SigmaScale, LikelihoodFamily):
    """Student t regression, links identity (default), log or inverse.

    log f = lgamma((df + 1)/2) - lgamma(df/2) - log(df pi)/2 - log sigma
            - (df + 1)/2 log(1 + r^2 / (df sigma^2)),   r = y - mu.

    >>> import numpy as np
    >>> fam = StudentTFamily()
    >>> d = fam.derivs(np.array([1.0]), np.ones(1), np.zeros(1), {"disp": np.zeros(1), "psi": np.log([3.0])}, 0)
    >>> from scipy import stats
    >>> bool(np.isclose(d.l[0], stats.t.logpdf(1.0, 3)))
    True
    """

    name = "t"
    aux_blocks = ("disp", "psi")
    allowed_links = ("identity", "log", "inverse")
    disp_meaning = "log(sigma)"

    def __init__(self, link: str = "identity", df: float | None = None) -> None:
        super().__init__(link)
        v = as_fixed(df, "df")
        if v is not None:
            self.fixed_aux["psi"] = float(np.log(v))
            self.params[_DF] = v

    def aux_default(self, block, y=None):
        """log SD of y for log(sigma); log(5) for log(df) (glmmTMB starts at df = 1, Cauchy)."""
        if block == "psi":
            return float(np.log(5.0))
        return 0.0 if y is None else float(np.log(max(np.std(np.asarray(y, float)), 1e-8)))

    def start_eta(self, y):
        y = np.asarray(y, dtype=float)
        if self.link.name in ("log", "inverse"):  # mu > 0: start non-positive responses at a small value
            y = np.maximum(y, 1e-3 * max(float(np.mean(np.abs(y))), 1e-8))
        return np.asarray(self.linkfun(y), dtype=float)

    def initialize(self, y, wt):
        return np.asarray(y, dtype=float)

    def derivs(self, y, wt, eta, aux, order=2):
        s = aux["disp"]
        nu = np.exp(aux["psi"])
        mu = eta if self.link.name == "identity" else self.linkinv(eta)
        r = y - mu
        sig2 = np.exp(2.0 * s)
        B = nu * sig2
        A = B + r * r
        g = (special.gammaln(0.5 * (nu + 1.0)) - special.gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi) - s
             - 0.5 * (nu + 1.0) * (np.log(A) - np.log(B)))
        if order < 1:
            return derivs_from_mean(self.link, eta, wt, g, None, None, 0)
        n1 = nu + 1.0
        g1 = n1 * r / A
        g2 = n1 * (r * r - B) / (A * A)
        g3 = 2.0 * n1 * r * (r * r - 3.0 * B) / A ** 3
        ga = None
        if order >= 2:
            ga = {"disp": (-1.0 + n1 * r * r / A, -2.0 * n1 * r * B / (A * A),
                           -2.0 * B * n1 * (3.0 * r * r - B) / A ** 3)}
            dnu = (0.5 * special.digamma(0.5 * n1) - 0.5 * special.digamma(0.5 * nu) - 0.5 / nu
                   - 0.5 * (np.log(A) - np.log(B)) + n1 * r * r / (2.0 * nu * A))
            dmu_nu = r * (r * r - sig2) / (A * A)
            dmumu_nu = (((r * r - B) - n1 * sig2) * A - 2.0 * n1 * sig2 * (r * r - B)) / A ** 3
            ga["psi"] = (nu * dnu, nu * dmu_nu, nu * dmumu_nu)
        return derivs_from_mean(self.link, eta, wt, g, (g1, g2, g3), ga, order)

    def mean(self, eta, aux):
        return np.asarray(self.linkinv(eta), dtype=float)

    def dev_resids_at(self, y, mu, wt, aux):
        """The likelihood deviance at the fitted sigma and df: the density is maximal at mu = y,
        so 2 (l(y | y) - l(y | mu)) = (df + 1) log(1 + r^2 / (df sigma^2))."""
        nu = np.exp(np.asarray(aux["psi"], dtype=float))
        sig2 = np.exp(2.0 * np.asarray(aux["disp"], dtype=float))
        r = np.asarray(y, float) - np.asarray(mu, float)
        return np.asarray(wt, float) * (nu + 1.0) * np.log1p(r * r / (nu * sig2))

    def simulate(self, mu, wt, rng, params):
        sig = np.asarray(params.get("dispersion", params.get("sigma")), dtype=float)
        df = float(params[_DF])
        return mu + sig * rng.standard_t(df, size=mu.shape)

    def natural_params(self, coefs):
        out = {}
        d = coefs.get("disp", {})
        if list(d) == ["Intercept"]:
            out["sigma"] = float(np.exp(d["Intercept"]))
        p = coefs.get("psi", {})
        if list(p) == ["Intercept"]:
            out[_DF] = float(np.exp(p["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        if not np.all(np.isfinite(np.asarray(y, float))):
            raise ValueError(f"response {column!r} has non-finite values")
