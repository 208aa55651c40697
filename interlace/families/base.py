"""The ``GLMMFamily`` protocol and the ``ExponentialFamily`` base class.

``GLMMFamily`` is the API document's protocol: anything with ``name``,
``link``, ``linkinv``, ``mu_eta``, ``variance`` and ``dev_resids`` can be
passed as ``family=``. ``ExponentialFamily`` composes a :class:`Link` and a
:class:`VarianceFunction` and adds what the engine uses:

===========================  ===============================================
``name``                     ``"binomial"``, ``"poisson"``, ...
``link``                     the Link object (callable: ``family.link(mu)``)
``linkfun(mu)``              eta = g(mu)
``linkinv(eta)``             mu = g^{-1}(eta)
``mu_eta(eta)``              dmu/deta
``variance(mu)``             V(mu)
``dev_resids(y, mu, wt)``    per-observation weighted unit deviances
``loglik(y, mu, wt, scale)`` per-observation full log-likelihood
``loglik_eta_derivs``        first and second derivatives of it in eta
``initialize(y, wt)``        starting mu, as R's ``family$initialize``
``validate_response``        raises ValueError naming the column
``fast_path``                ``("binomial", "logit")`` etc. or ``None``
``estimates_scale``          True when the engine estimates a dispersion
``canonical``                True for the canonical link
``params`` / ``param_bounds`` / ``param_start``  extra family parameters
===========================  ===============================================

Example
-------
>>> import numpy as np
>>> from interlace.families import ExponentialFamily, LogitLink, BinomialVariance
>>> fam = ExponentialFamily(link=LogitLink(), variance=BinomialVariance(), name="mybinom")
>>> fam.link.name, float(fam.linkinv(np.array([0.0]))[0])
('logit', 0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import special

from interlace.families.links import _LINKS as _LINK_CLASSES
from interlace.families.links import Link, get_link
from interlace.families.variance import (
    BinomialVariance,
    ConstantVariance,
    MuCubedVariance,
    MuSquaredVariance,
    MuVariance,
    NegBinVariance,
    PowerVariance,
    VarianceFunction,
)

__all__ = [
    "GLMMFamily",
    "SupportsLogLik",
    "SupportsEtaDerivatives",
    "SupportsParams",
    "SupportsValidation",
    "SupportsFastPath",
    "FamilyTraits",
    "ExponentialFamily",
    "ProtocolFamilyAdapter",
]


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class GLMMFamily(Protocol):
    """The minimal family of the API document.

    Any object with these members can be passed as ``family=`` to ``glmer``;
    it runs on the generic NumPy path with a quasi-likelihood
    (``-dev_resids / 2``) unless it also supplies ``loglik``.

    Example
    -------
    >>> from interlace.families import BinomialFamily
    >>> isinstance(BinomialFamily(), GLMMFamily)
    True
    """

    name: str

    def link(self, mu: np.ndarray) -> np.ndarray: ...

    def linkinv(self, eta: np.ndarray) -> np.ndarray: ...

    def mu_eta(self, eta: np.ndarray) -> np.ndarray: ...

    def variance(self, mu: np.ndarray) -> np.ndarray: ...

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class SupportsLogLik(Protocol):
    """Optional: the per-observation full log-likelihood (sum = logLik)."""

    def loglik(
        self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, scale: float = 1.0
    ) -> np.ndarray: ...


@runtime_checkable
class SupportsEtaDerivatives(Protocol):
    """Optional: d loglik / d eta and d^2 loglik / d eta^2 per observation.

    Non-exponential families (issue 13's general-likelihood engine) supply
    these; exponential families derive them from link and variance.
    """

    def loglik_eta_derivs(
        self, y: np.ndarray, eta: np.ndarray, wt: np.ndarray, scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class SupportsParams(Protocol):
    """Optional: extra family parameters with bounds and start values."""

    params: dict[str, float]
    param_bounds: dict[str, tuple[float, float]]
    param_start: dict[str, float]


@runtime_checkable
class SupportsValidation(Protocol):
    """Optional: a validity check of the response before fitting."""

    def validate_response(self, y: np.ndarray, wt: np.ndarray, column: str) -> None: ...


@runtime_checkable
class SupportsFastPath(Protocol):
    """Optional: the (family, link) pair of the engine's numba kernels, or None."""

    @property
    def fast_path(self) -> tuple[str, str] | None: ...


# --------------------------------------------------------------------------- simulation helpers


def fitted_param(params: dict[str, Any], key: str, family: str) -> np.ndarray:
    """A fitted family parameter for ``simulate``: the per-row ``dispersion``
    when the engine stored it, else ``params[key]`` (theta, phi, shape, ...)."""
    disp = params.get("dispersion")
    if disp is not None:
        return np.asarray(disp, dtype=float)
    if key in params:
        return np.asarray(params[key], dtype=float)
    raise ValueError(f"simulating the {family} family needs its fitted {key}")


def apply_zprob(y: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Structural (or hurdle) zeros with the per-row probability ``params["zprob"]``."""
    zprob = params.get("zprob")
    if zprob is None:
        return y
    return np.where(rng.uniform(size=y.shape) < zprob, 0.0, y)


# --------------------------------------------------------------------------- deviances


def _ylogy_ratio(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y * log(y / mu), 0 where y == 0 (R's y_log_y)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = special.xlogy(y, y) - special.xlogy(y, mu)
    return np.where(y == 0, 0.0, out)


def binomial_dev_resids(y, mu, wt) -> np.ndarray:
    """2 wt (y log(y/mu) + (1-y) log((1-y)/(1-mu)))."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    return 2.0 * wt * (_ylogy_ratio(y, mu) + _ylogy_ratio(1.0 - y, 1.0 - mu))


def poisson_dev_resids(y, mu, wt) -> np.ndarray:
    """2 wt (y log(y/mu) - (y - mu))."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    return 2.0 * wt * (_ylogy_ratio(y, mu) - (y - mu))


def gaussian_dev_resids(y, mu, wt) -> np.ndarray:
    """wt (y - mu)^2."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    r = y - mu
    return wt * r * r


def gamma_dev_resids(y, mu, wt) -> np.ndarray:
    """-2 wt (log(y/mu) - (y - mu)/mu)."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    with np.errstate(divide="ignore"):
        lr = np.where(y == 0, 0.0, np.log(np.where(y == 0, 1.0, y) / mu))
    return -2.0 * wt * (lr - (y - mu) / mu)


def inverse_gaussian_dev_resids(y, mu, wt) -> np.ndarray:
    """wt (y - mu)^2 / (y mu^2)."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    return wt * (y - mu) ** 2 / (y * mu * mu)


def negbin_dev_resids(y, mu, wt, theta: float) -> np.ndarray:
    """2 wt (y log(y/mu) - (y + theta) log((y + theta)/(mu + theta)))."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    return 2.0 * wt * (_ylogy_ratio(y, mu) - (y + theta) * np.log((y + theta) / (mu + theta)))


# Gauss-Legendre nodes for the quasi-deviance of an arbitrary variance function.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(40)


def quasi_dev_resids(y, mu, wt, variance: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """2 wt * integral_mu^y (y - t) / V(t) dt, the quasi-deviance (McCullagh & Nelder).

    Closed forms are used for the built-in variance classes; any other
    variance is integrated with 40-point Gauss-Legendre quadrature.

    >>> import numpy as np
    >>> from interlace.families.variance import MuVariance
    >>> y, mu, wt = np.array([3.0]), np.array([2.0]), np.ones(1)
    >>> bool(np.allclose(quasi_dev_resids(y, mu, wt, MuVariance()), poisson_dev_resids(y, mu, wt)))
    True
    """
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    kind = type(variance)
    if kind is ConstantVariance:
        return gaussian_dev_resids(y, mu, wt)
    if kind is MuVariance:
        return poisson_dev_resids(y, mu, wt)
    if kind is BinomialVariance:
        return binomial_dev_resids(y, mu, wt)
    if kind is MuSquaredVariance:
        return gamma_dev_resids(y, mu, wt)
    if kind is MuCubedVariance:
        return inverse_gaussian_dev_resids(y, mu, wt)
    if kind is NegBinVariance:
        return negbin_dev_resids(y, mu, wt, variance.theta)  # type: ignore[attr-defined]
    if kind is PowerVariance:
        return power_dev_resids(y, mu, wt, variance.p)  # type: ignore[attr-defined]
    # t runs from mu to y: t = mu + (y - mu) s. With s = 1 - w^2 the nodes crowd
    # towards t = y, where the integrand can be singular (y = 0 under V = mu^p):
    # the integral becomes int_0^1 (y - mu)^2 w^2 / V(t) 2 w dw.
    w = 0.5 * (_GL_X + 1.0)
    gw = 0.5 * _GL_W
    s = 1.0 - w * w
    d = (y - mu)[:, None]
    t = mu[:, None] + d * s[None, :]
    v = _arr(variance(t.ravel())).reshape(t.shape)
    integrand = d * d * (w * w)[None, :] / v * (2.0 * w)[None, :]
    return 2.0 * wt * (integrand @ gw)


def power_dev_resids(y, mu, wt, p: float) -> np.ndarray:
    """Quasi-deviance of V(mu) = mu^p (the Tweedie deviance; p = 0, 1, 2 as gaussian, poisson, gamma)."""
    y, mu, wt = _arr(y), _arr(mu), _arr(wt)
    if p == 0:
        return gaussian_dev_resids(y, mu, wt)
    if p == 1:
        return poisson_dev_resids(y, mu, wt)
    if p == 2:
        return gamma_dev_resids(y, mu, wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        y2p = np.where(y == 0, 0.0, np.abs(y) ** (2 - p))
        return 2.0 * wt * (
            y2p / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p)
        )


# --------------------------------------------------------------------------- traits


class FamilyTraits:
    """What the rest of the package asks a family, with the defaults of a plain
    GLM family. Both base classes (:class:`ExponentialFamily`,
    :class:`~interlace.families.likelihood.LikelihoodFamily`) inherit it; a
    family (built-in or plugin) overrides what differs. No code outside
    ``interlace/families/`` tests a family's name: it reads these instead.

    Example
    -------
    >>> from interlace.families import BinomialFamily, PoissonFamily
    >>> BinomialFamily().factor_response, PoissonFamily().response_scale_name
    (True, 'rate')
    """

    #: a two-level factor (or string) response is read as 0/1 (R's binomial)
    factor_response: bool = False
    #: "zi" (zero-inflated mixture), "hurdle" or None: the meaning of a zero probability per row
    zero_model: str | None = None
    #: unit deviances exist (``resid(type="deviance")``); False for mixtures without one
    deviance_residuals: bool = True
    #: emmeans' name of the response-scale column ("prob", "rate") or None ("response")
    response_scale_name: str | None = None
    #: the density is scale-equivariant in y (y / c is the same family with a mapped eta):
    #: the engine may refit on a rescaled response (interlace.rescale)
    scale_equivariant: bool = False
    #: the numba kernels' family code (interlace.kernels.glm), None for the generic path
    kernel_code: int | None = None
    #: a normal error per observation (the LMM): lmer's identifiability rule n > q holds
    #: for every random-effect term, not glmer's n >= q
    normal_errors: bool = False

    def zero_inflated_family(self) -> Any:
        """The family glmmTMB fits for this family with a ``ziformula`` (the
        zero-inflated version), or None when zero inflation is not available."""
        return None

    def observation_variance(self, sigma2: float, params: dict[str, Any],
                             null_mu: Callable[[], float]) -> float:
        """The distribution-specific variance on the latent scale for Nakagawa's
        R2 / ICC (insight's ``get_variance_distribution``): ``sigma2`` the
        residual variance of a Gaussian fit, ``params`` the fitted family
        parameters, ``null_mu()`` the mean of the intercept-only model."""
        link = getattr(getattr(self, "link", None), "name", "?")
        raise NotImplementedError(f"R2 / ICC for family {getattr(self, 'name', '?')!r} with link {link!r} "
                                  "is not implemented (the family defines no observation_variance)")


# --------------------------------------------------------------------------- base class


class ExponentialFamily(FamilyTraits):
    """A GLM family built from a :class:`Link` and a :class:`VarianceFunction`.

    Parameters
    ----------
    link:
        A Link instance (or a link name such as ``"logit"``).
    variance:
        A VarianceFunction instance.
    name:
        The family's name (``"custom"`` by default).
    loglik:
        Optional ``loglik(y, mu, wt, scale) -> array``: the per-observation
        full log-likelihood. Without it the family uses the quasi-likelihood
        ``-dev_resids / (2 scale)``, which gives the same estimates for a
        fixed-scale family but an llf without the normalizing constant.
    dev_resids:
        Optional ``dev_resids(y, mu, wt) -> array``; defaults to the
        quasi-deviance of ``variance`` (closed form for the built-in
        variance classes).
    initialize:
        Optional ``initialize(y, wt) -> mustart``; defaults to R's quasi
        rule ``y + 0.1 (y == 0)`` (``(wt y + 0.5)/(wt + 1)`` for a binomial
        variance, ``y`` for a constant one).
    estimates_scale:
        True when the engine should estimate a dispersion (residual variance).

    Example
    -------
    >>> import numpy as np
    >>> from interlace.families import ExponentialFamily, CauchitLink, BinomialVariance
    >>> fam = ExponentialFamily(link=CauchitLink(), variance=BinomialVariance(), name="bc")
    >>> fam.fast_path is None
    True
    >>> round(float(fam.link(np.array([0.75]))[0]), 12)
    1.0
    """

    #: Canonical link class of the family, if it has one (set by subclasses).
    canonical_link: type[Link] | None = None
    #: Link names accepted as strings (None: any known link name).
    allowed_links: tuple[str, ...] | None = None
    # Built-in classes list, in their own class body, the links for which the
    # engine has numba kernels (see ``fast_path``).

    def __init__(
        self,
        link: Link | str,
        variance: VarianceFunction,
        name: str = "custom",
        *,
        loglik: Callable[..., np.ndarray] | None = None,
        dev_resids: Callable[..., np.ndarray] | None = None,
        initialize: Callable[..., np.ndarray] | None = None,
        estimates_scale: bool = False,
    ) -> None:
        if isinstance(link, str) and self.allowed_links is not None and link not in self.allowed_links:
            raise ValueError(
                f"link {link!r} is not available for the {name} family; "
                f"use one of {', '.join(self.allowed_links)} or pass a Link instance"
            )
        self.link: Link = get_link(link)
        if not callable(variance):
            raise TypeError(f"variance must be a VarianceFunction, got {type(variance).__name__}")
        self.variance_function: VarianceFunction = variance
        self.name: str = name
        self._loglik = loglik
        self._dev_resids = dev_resids
        self._initialize = initialize
        self.estimates_scale: bool = bool(estimates_scale)
        self.params: dict[str, float] = {}
        self.param_bounds: dict[str, tuple[float, float]] = {}
        self.param_start: dict[str, float] = {}

    # ---- link pieces ------------------------------------------------------------
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """eta = g(mu)."""
        return self.link.link(mu)

    link_fun = linkfun

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """mu = g^{-1}(eta)."""
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """dmu/deta."""
        return self.link.mu_eta(eta)

    def d2mu_deta2(self, eta: np.ndarray) -> np.ndarray:
        """d^2 mu / d eta^2."""
        fn = getattr(self.link, "d2mu_deta2", None)
        if fn is None:
            eta = _arr(eta)
            h = 1e-5 * np.maximum(1.0, np.abs(eta))
            return (self.link.mu_eta(eta + h) - self.link.mu_eta(eta - h)) / (2.0 * h)
        return fn(eta)

    # ---- variance pieces --------------------------------------------------------
    def variance(self, mu: np.ndarray) -> np.ndarray:
        """V(mu)."""
        return self.variance_function(mu)

    def variance_deriv(self, mu: np.ndarray) -> np.ndarray:
        """dV/dmu."""
        fn = getattr(self.variance_function, "deriv", None)
        if fn is None:
            mu = _arr(mu)
            h = 1e-6 * np.maximum(1.0, np.abs(mu))
            return (self.variance(mu + h) - self.variance(mu - h)) / (2.0 * h)
        return fn(mu)

    # ---- likelihood ---------------------------------------------------------------
    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Per-observation weighted unit deviances (R's ``family$dev.resids``)."""
        if self._dev_resids is not None:
            return _arr(self._dev_resids(y, mu, wt))
        return quasi_dev_resids(y, mu, wt, self.variance_function)

    def deviance(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> float:
        """Sum of ``dev_resids``."""
        return float(np.sum(self.dev_resids(y, mu, wt)))

    def loglik(
        self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, scale: float = 1.0
    ) -> np.ndarray:
        """Per-observation log-likelihood; its sum is the conditional logLik."""
        if self._loglik is not None:
            return _arr(self._loglik(y, mu, wt, scale))
        return -0.5 * self.dev_resids(y, mu, wt) / scale

    def glm_aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
        """R's ``family$aic(y, n, mu, wt, dev)``: -2 loglik of a GLM fit without the 2 rank
        term (families with a dispersion add 2 for it and evaluate it at deviance / n).
        Default: -2 sum(loglik) at scale 1 (binomial, Poisson)."""
        return -2.0 * float(np.sum(self.loglik(y, mu, wt, 1.0)))

    @property
    def has_full_loglik(self) -> bool:
        """False when ``loglik`` is the quasi-likelihood (no normalizing constant)."""
        return self._loglik is not None or type(self).loglik is not ExponentialFamily.loglik

    def loglik_eta_derivs(
        self, y: np.ndarray, eta: np.ndarray, wt: np.ndarray, scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and second derivatives of ``loglik`` in eta, per observation.

        For an exponential family d l / d mu = wt (y - mu) / (scale V(mu)), so
        d l / d eta = wt (y - mu) mu' / (scale V) and
        d2 l / d eta2 = wt [-mu'^2 / V + (y - mu)(mu'' / V - mu'^2 V' / V^2)] / scale.
        (Its negative expectation is the IRLS weight wt mu'^2 / (scale V).)
        """
        y, eta, wt = _arr(y), _arr(eta), _arr(wt)
        mu = self.linkinv(eta)
        m1 = self.mu_eta(eta)
        m2 = self.d2mu_deta2(eta)
        v = self.variance(mu)
        dv = self.variance_deriv(mu)
        r = y - mu
        d1 = wt * r * m1 / (scale * v)
        d2 = wt * (-(m1 * m1) / v + r * (m2 / v - m1 * m1 * dv / (v * v))) / scale
        return d1, d2

    def working_weights(self, eta: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """IRLS weights wt mu'(eta)^2 / V(mu)."""
        eta = _arr(eta)
        m1 = self.mu_eta(eta)
        return _arr(wt) * m1 * m1 / self.variance(self.linkinv(eta))

    def simulate(self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator,
                 params: dict[str, Any]) -> np.ndarray:
        """Responses with conditional mean ``mu`` (shape (nsim, n)); the built-in
        families override this, a custom family may too."""
        raise NotImplementedError(
            f"family {self.name!r} has no simulator: give the family a simulate(mu, wt, rng, params) method")

    def dispersion_family(self) -> Any:
        """The general-likelihood family that estimates this family's dispersion
        jointly by maximum likelihood (glmmTMB's model), or None when the family
        has no dispersion (binomial, Poisson) and PIRLS fits it with scale 1.

        ``glmer`` fits a family on the general engine when this is not None, so a
        family with a dispersion never silently keeps it at its start value. The
        Gaussian identity model without ``dispformula`` is fitted by the LMM engine.
        """
        return None

    # ---- data checks and starting values ---------------------------------------
    def initialize(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Starting mu, as R's ``family$initialize`` computes ``mustart``."""
        if self._initialize is not None:
            return _arr(self._initialize(y, wt))
        y, wt = _arr(y), _arr(wt)
        if isinstance(self.variance_function, ConstantVariance):
            return y.copy()
        if isinstance(self.variance_function, BinomialVariance):
            return (wt * y + 0.5) / (wt + 1.0)
        return y + 0.1 * (y == 0)

    def validate_response(self, y: np.ndarray, wt: np.ndarray, column: str) -> None:
        """Raise ValueError (naming ``column``) when y cannot come from this family."""
        y = _arr(y)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        if isinstance(self.variance_function, BinomialVariance):
            _check_unit_interval(y, column, self.name)

    def valid_mu(self, mu: np.ndarray) -> bool:
        """R's ``validmu``."""
        fn = getattr(self.variance_function, "validmu", None)
        return True if fn is None else bool(fn(mu))

    def valid_eta(self, eta: np.ndarray) -> bool:
        """R's ``valideta``."""
        fn = getattr(self.link, "valideta", None)
        return True if fn is None else bool(fn(eta))

    # ---- engine dispatch ---------------------------------------------------------
    @property
    def engine(self) -> str:
        """The engine that fits this family without side models (see
        ``interlace.engines``): ``"general"`` when it has a dispersion to estimate
        by maximum likelihood (:meth:`dispersion_family`), else ``"laplace"``
        (PIRLS with Fisher weights); the Gaussian identity family says ``"lmm"``."""
        return "general" if self.dispersion_family() is not None else "laplace"

    @property
    def canonical(self) -> bool:
        """True when the link is the family's canonical link."""
        return self.canonical_link is not None and type(self.link) is self.canonical_link

    @property
    def fast_path(self) -> tuple[str, str] | None:
        """The (family, link) pair of the engine's numba kernels, or None.

        Only the exact built-in classes with the exact built-in link classes
        qualify: a subclass may change any method, so it takes the generic path.
        """
        # Declared in the built-in class's own namespace (not inherited), so a
        # user subclass that may override any method takes the generic path.
        fast = type(self).__dict__.get("_fast_links", ())
        lk = type(self.link)
        if fast and lk.name in fast and lk is _LINK_CLASSES.get(lk.name):
            return (self.name, lk.name)
        return None

    # ---- misc --------------------------------------------------------------------
    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        if type(self) is ExponentialFamily:
            return (
                f"ExponentialFamily(name={self.name!r}, link={self.link!r}, "
                f"variance={self.variance_function!r})"
            )
        return f"{type(self).__name__}(link={self.link.name!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return (
            self.name == other.name  # type: ignore[attr-defined]
            and self.link == other.link  # type: ignore[attr-defined]
            and self.params == other.params  # type: ignore[attr-defined]
            and type(self.variance_function) is type(other.variance_function)  # type: ignore[attr-defined]
        )

    __hash__ = object.__hash__


def _check_unit_interval(y: np.ndarray, column: str, family: str) -> None:
    bad = (y < 0) | (y > 1)
    if np.any(bad):
        raise ValueError(
            f"{family} response {column!r} must be a proportion: {int(bad.sum())} value(s) outside [0, 1] "
            f"(first: {float(y[bad][0])!r}); use cbind(successes, failures) or a proportion with weights= the "
            "number of trials"
        )


# --------------------------------------------------------------------------- adapter


class ProtocolFamilyAdapter(ExponentialFamily):
    """Wraps a bare :class:`GLMMFamily` object so the engine sees the full interface.

    The user's ``link``, ``linkinv``, ``mu_eta``, ``variance`` and
    ``dev_resids`` are used as given; ``loglik``, ``initialize``,
    ``validate_response``, ``params`` are taken from the object when it has
    them, otherwise defaults (quasi-likelihood, R's quasi ``mustart``).

    Example
    -------
    >>> import numpy as np
    >>> from interlace.families import BinomialFamily
    >>> class Mine:
    ...     name = "mine"
    ...     _b = BinomialFamily()
    ...     def link(self, mu): return self._b.linkfun(mu)
    ...     def linkinv(self, eta): return self._b.linkinv(eta)
    ...     def mu_eta(self, eta): return self._b.mu_eta(eta)
    ...     def variance(self, mu): return self._b.variance(mu)
    ...     def dev_resids(self, y, mu, wt): return self._b.dev_resids(y, mu, wt)
    >>> fam = ProtocolFamilyAdapter(Mine())
    >>> fam.name, fam.fast_path
    ('mine', None)
    """

    def __init__(self, family: Any) -> None:
        self.wrapped = family
        user = family

        class _UserLink(Link):
            name = getattr(getattr(user, "link", None), "name", None) or getattr(
                user, "link_name", "custom"
            )

            def link(self, mu):
                fn = getattr(user, "linkfun", None) or user.link
                return _arr(fn(mu))

            def linkinv(self, eta):
                return _arr(user.linkinv(eta))

            def mu_eta(self, eta):
                return _arr(user.mu_eta(eta))

        class _UserVariance(VarianceFunction):
            name = "custom"

            def __call__(self, mu):
                return _arr(user.variance(mu))

        super().__init__(
            link=_UserLink(),
            variance=_UserVariance(),
            name=str(getattr(family, "name", "custom")),
            loglik=getattr(family, "loglik", None),
            dev_resids=family.dev_resids,
            initialize=getattr(family, "initialize", None),
            estimates_scale=bool(getattr(family, "estimates_scale", False)),
        )
        for attr in ("params", "param_bounds", "param_start"):
            if isinstance(getattr(family, attr, None), dict):
                setattr(self, attr, dict(getattr(family, attr)))
        self._user_validate = getattr(family, "validate_response", None)

    def simulate(self, mu, wt, rng, params):
        """The wrapped family's ``simulate`` when it has one."""
        fn = getattr(self.wrapped, "simulate", None)
        if callable(fn):
            return fn(mu, wt, rng, params)
        return super().simulate(mu, wt, rng, params)

    def validate_response(self, y: np.ndarray, wt: np.ndarray, column: str) -> None:
        if self._user_validate is not None:
            self._user_validate(y, wt, column)
        else:
            super().validate_response(y, wt, column)

    def __repr__(self) -> str:
        return f"ProtocolFamilyAdapter({self.wrapped!r})"

