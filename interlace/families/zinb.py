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
from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed, nb2_tables, nbinom2_parts, zero_inflate

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

    def _fused(self, y, wt, eta, aux):
        """(tables, contiguous eta, zi predictor, weights) when the rows can take the compiled
        one-pass kernels (one theta for all rows, see ``nb2_tables``), else None."""
        z = aux.get("zi")
        if z is None or np.shape(eta) != np.shape(y):
            return None
        tabs = nb2_tables(y, aux.get("disp"))
        if tabs is None:
            return None
        n = y.shape[0]
        return (tabs, np.ascontiguousarray(eta, dtype=np.float64),
                np.ascontiguousarray(np.broadcast_to(np.asarray(z, dtype=np.float64), (n,))),
                np.ascontiguousarray(np.broadcast_to(np.asarray(wt, dtype=np.float64), (n,))))

    def derivs(self, y, wt, eta, aux, order=2):
        if order == 0:  # the log-likelihood alone (step halving): NB2 and the mixing in one pass
            f = self._fused(y, wt, eta, aux)
            if f is not None:
                from interlace.kernels.zi_jet import zinb2_loglik  # numba: loaded at the first fit

                (th, inv, tlg, _tdg, _ttg, lg1, lgth, _dg, _tg), e, z, lw = f
                l = np.empty(y.shape[0])
                zinb2_loglik(y, inv, e, float(aux["disp"][0]), th, tlg, lg1, lgth, z, lw, l)
                return Derivs(l=l)
        if order in (1, 2):
            f = self._fused(y, wt, eta, aux)
            if f is not None:  # zero_inflate(nbinom2_parts(...)) in one compiled pass, bit for bit
                from interlace.kernels.zi_jet import zinb2_derivs

                (th, inv, tlg, tdg, ttg, lg1, lgth, dgth, tgth), e, z, lw = f
                n = y.shape[0]
                a = [np.empty(n) for _ in range(10 if order == 2 else 3)]
                a += [a[0]] * (10 - len(a))
                zinb2_derivs(y, inv, e, float(aux["disp"][0]), th, tlg, tdg, ttg, lg1, lgth, dgth, tgth, z, lw,
                             int(order), *a)
                d = Derivs(l=a[0], e=a[1], ee=a[2])
                if order == 2:
                    d.eee = a[3]
                    d.aux["zi"] = (a[4], a[5], a[6])
                    d.aux["disp"] = (a[7], a[8], a[9])
                return d
        P = nbinom2_parts(y, eta, aux["disp"], order)
        return zero_inflate(P, y, wt, aux["zi"], order, True)

    def jet(self, y, wt, eta, aux, names, order=3, aux_re=None):
        """Exact per-row derivatives in every predictor (random effects in the side models).
        Without random effects in the dispersion model and with one theta for all rows:
        one compiled pass (``kernels.zi_jet.zinb2_jet``, the formulas of ``zi_jet`` over
        ``nbinom2_parts``)."""
        from interlace.families.negbin2 import NegativeBinomial2Family
        from interlace.families.zi import ZeroInflatedFamily

        f = (self._fused(y, wt, eta, aux) if aux_re is not None and "disp" not in aux_re and len(names) == 3
             and names[0] == "cond" and "disp" in names and "zi" in names else None)
        if f is not None:
            from interlace.kernels.zi_jet import zinb2_jet

            (th, inv, tlg, tdg, ttg, lg1, lgth, dgth, tgth), e, z, lw = f
            n, K = y.shape[0], len(names)
            l = np.empty(n)
            G = np.empty((n, K))
            H = np.empty((n, K, K))
            T = np.empty((n, K, K, K)) if order >= 3 else np.empty((1, 1, 1, 1))
            bad = zinb2_jet(y, inv, e, float(aux["disp"][0]), th, tlg, tdg, ttg, lg1, lgth, dgth, tgth, z, lw,
                            names.index("disp"), names.index("zi"), l, G, H, T, int(order))
            if bad == 0:
                return l, G, H, (T if order >= 3 else None)
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
