"""The binomial family (R's ``binomial()``).

y is the proportion of successes and ``wt`` the number of trials (for
``cbind(s, f)`` the parse stage gives y = s / (s + f), wt = s + f).

Example
-------
>>> import numpy as np
>>> fam = BinomialFamily(link="probit")
>>> fam.fast_path
('binomial', 'probit')
>>> float(fam.initialize(np.array([0.5]), np.array([3.0]))[0])
0.5
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from interlace.families.base import ExponentialFamily, _check_unit_interval, binomial_dev_resids
from interlace.families.links import Link, LogitLink
from interlace.families.variance import BinomialVariance

__all__ = ["BinomialFamily"]


class BinomialFamily(ExponentialFamily):
    """Binomial: V(mu) = mu (1 - mu), links logit (default), probit, cauchit, cloglog, log.

    A custom :class:`Link` instance is accepted too: ``BinomialFamily(link=MyLink())``.

    >>> BinomialFamily().canonical
    True
    """

    canonical_link = LogitLink
    allowed_links = ("logit", "probit", "cauchit", "cloglog", "log")
    _fast_links = ("logit", "probit", "cloglog")
    kernel_code = 0
    factor_response = True  # a two-level factor is read as 0/1, as R's binomial()$initialize
    response_scale_name = "prob"
    #: latent-scale variance of the logistic / normal / extreme-value distribution (Nakagawa's R2)
    _latent_variance = {"logit": np.pi ** 2 / 3.0, "probit": 1.0, "cloglog": np.pi ** 2 / 6.0}

    def observation_variance(self, sigma2, params, null_mu):
        """pi^2 / 3 (logit), 1 (probit), pi^2 / 6 (cloglog), as insight."""
        v = self._latent_variance.get(self.link.name)
        return float(v) if v is not None else super().observation_variance(sigma2, params, null_mu)

    def __init__(self, link: str | Link = "logit") -> None:
        super().__init__(link=link, variance=BinomialVariance(), name="binomial")

    def likelihood_family(self):
        """The binomial log-likelihood as a general-engine family (the base that
        ``ziformula`` zero-inflates).

        >>> BinomialFamily().likelihood_family().name
        'binomial'
        """
        from interlace.families.zi import BinomialLikelihood

        return BinomialLikelihood(link=self.link.name)

    def simulate(self, mu, wt, rng, params):
        """Binomial proportions of the prior-weight trials (lme4 returns the counts)."""
        n = np.broadcast_to(wt, mu.shape)
        if not np.allclose(n, np.round(n)):
            raise ValueError("binomial simulation needs integer trials (prior weights times cbind totals)")
        n = np.round(n).astype(np.int64)
        return rng.binomial(n, np.clip(mu, 0.0, 1.0)) / np.maximum(n, 1)

    def aggregate_rows(self, y, wt, inverse, k):
        """Rows sharing a mean summed into one binomial row (interlace/collapse.py):
        successes and trials add up, and the log-likelihood changes only by the log
        choose terms, a constant. (y, weights, offset shift) of the k summed rows, or
        None for non-integer trials or successes (R rounds those in its logLik).

        >>> BinomialFamily().aggregate_rows(np.array([1.0, 0.0, 1.0]), np.ones(3), np.array([0, 0, 1]), 2)[0]
        array([0.5, 1. ])
        """
        y, wt = np.asarray(y, dtype=np.float64), np.asarray(wt, dtype=np.float64)
        s = wt * y
        if not (np.array_equal(wt, np.rint(wt)) and np.all(np.abs(s - np.rint(s)) <= 1e-9 * np.maximum(1.0, s))):
            return None
        S = np.bincount(inverse, weights=np.rint(s), minlength=k)
        N = np.bincount(inverse, weights=wt, minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            y_c = np.where(N > 0, S / np.where(N > 0, N, 1.0), 0.0)
        return y_c, N, np.zeros(k)

    def dev_resids(self, y, mu, wt):
        return binomial_dev_resids(y, mu, wt)

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """log dbinom(round(wt y), round(wt), mu), as R's ``binomial()$aic``.

        ``scale`` is ignored (the binomial has no dispersion). Rows with
        ``wt == 0`` contribute 0, as in R.
        """
        y, mu, wt = (np.asarray(a, dtype=np.float64) for a in (y, mu, wt))
        m = np.rint(wt)
        k = np.rint(wt * y)
        if np.all(m == 1.0):
            lchoose = 0.0  # Bernoulli rows: choose(1, k) = 1 (skips 3 gammaln passes)
        else:
            lchoose = special.gammaln(m + 1.0) - special.gammaln(k + 1.0) - special.gammaln(m - k + 1.0)
        ll = lchoose + special.xlogy(k, mu) + special.xlog1py(m - k, -mu)
        return np.where(m > 0, ll, 0.0)

    def initialize(self, y, wt):
        """(wt y + 0.5) / (wt + 1), R's binomial ``mustart``."""
        y, wt = np.asarray(y, dtype=np.float64), np.asarray(wt, dtype=np.float64)
        return (wt * y + 0.5) / (wt + 1.0)

    def validate_response(self, y, wt, column: str) -> None:
        """y in [0, 1], weights >= 0; warns for non-integer successes (as R)."""
        y, wt = np.asarray(y, dtype=np.float64), np.asarray(wt, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        _check_unit_interval(y, column, "binomial")
        if np.any(wt < 0):
            raise ValueError(f"weights (number of trials) for {column!r} must be non-negative")
        k = wt * y
        if np.any(np.abs(k - np.rint(k)) > 1e-7 * np.maximum(1.0, np.abs(k))):
            warnings.warn(
                f"non-integer #successes in a binomial glmm (response {column!r})",
                UserWarning,
                stacklevel=3,
            )
