"""Link functions as small public classes.

A link maps the mean ``mu`` to the linear predictor ``eta = g(mu)``. Each class
gives ``link(mu)``, ``linkinv(eta)``, ``mu_eta(eta) = dmu/deta`` and, for exact
Hessians, ``d2mu_deta2(eta)``. Links are stateless; instances are callable
(``link(mu)`` is ``link.link(mu)``), so a family's ``family.link(mu)`` (the API
document's protocol) and ``family.link.name`` both work.

Clamping follows R's ``make.link`` (``stats/R/family.R`` and ``family.c``): the
inverse links of binomial links stay inside ``[eps, 1 - eps]`` and ``mu_eta``
never drops below ``eps`` (``eps = DBL_EPSILON``), the log link's inverse is at
least ``eps``. That keeps ``log(mu)`` finite and the working weights positive,
which is what PIRLS needs at extreme ``eta``.

Example
-------
>>> import numpy as np
>>> from interlace.families.links import get_link
>>> logit = get_link("logit")
>>> float(logit.linkinv(np.array([0.0]))[0])
0.5
>>> logit.name
'logit'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from scipy import special

__all__ = [
    "EPS",
    "Link",
    "LogitLink",
    "ProbitLink",
    "CauchitLink",
    "CloglogLink",
    "LogLink",
    "IdentityLink",
    "InverseLink",
    "InverseSquaredLink",
    "SqrtLink",
    "get_link",
    "available_links",
]

EPS: float = float(np.finfo(np.float64).eps)  # R's .Machine$double.eps

# R's probit/cauchit thresholds: -qnorm(eps), -qcauchy(eps).
_PROBIT_THRESH: float = float(-special.ndtri(EPS))
# -qcauchy(eps) = 1 / tan(pi eps), R's clamp of the cauchit eta (tan(pi (eps - 1/2)) loses
# the last digits: 1.375e15 instead of 1.434e15).
_CAUCHIT_THRESH: float = float(1.0 / math.tan(math.pi * EPS))


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


class Link(ABC):
    """Base class of link functions.

    Subclasses set ``name`` and implement ``link``, ``linkinv`` and ``mu_eta``;
    ``d2mu_deta2`` defaults to a central finite difference of ``mu_eta`` so a
    custom link works without it (override it for exact Hessians).

    Example
    -------
    >>> import numpy as np
    >>> class Square(Link):
    ...     name = "square"
    ...     def link(self, mu): return np.sqrt(mu)
    ...     def linkinv(self, eta): return np.asarray(eta) ** 2
    ...     def mu_eta(self, eta): return 2 * np.asarray(eta)
    >>> float(Square()(np.array([4.0]))[0])
    2.0
    """

    name: ClassVar[str] = "link"

    @abstractmethod
    def link(self, mu: np.ndarray) -> np.ndarray:
        """eta = g(mu)."""

    @abstractmethod
    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """mu = g^{-1}(eta)."""

    @abstractmethod
    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """dmu/deta at eta."""

    def d2mu_deta2(self, eta: np.ndarray) -> np.ndarray:
        """d^2 mu / d eta^2 (default: central difference of ``mu_eta``)."""
        eta = _arr(eta)
        h = 1e-5 * np.maximum(1.0, np.abs(eta))
        return (self.mu_eta(eta + h) - self.mu_eta(eta - h)) / (2.0 * h)

    def d3mu_deta3(self, eta: np.ndarray) -> np.ndarray:
        """d^3 mu / d eta^3 (default: central difference of ``d2mu_deta2``)."""
        eta = _arr(eta)
        h = 1e-4 * np.maximum(1.0, np.abs(eta))
        return (self.d2mu_deta2(eta + h) - self.d2mu_deta2(eta - h)) / (2.0 * h)

    def valideta(self, eta: np.ndarray) -> bool:
        """R's ``valideta``: True when every eta is in the link's domain."""
        return bool(np.all(np.isfinite(_arr(eta))))

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        return self.link(mu)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        # Links are stateless: two instances of one class are the same link.
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class LogitLink(Link):
    """logit: eta = log(mu / (1 - mu)); R's ``binomial()`` default.

    >>> import numpy as np
    >>> round(float(LogitLink().link(np.array([0.75]))[0]), 6)
    1.098612
    """

    name = "logit"

    def link(self, mu):
        return special.logit(_arr(mu))

    def linkinv(self, eta):
        # Clamped to [eps, 1 - eps] like R's family.c / lme4's logitinv, but
        # continuous in eta (R switches to eps abruptly beyond |eta| > 30).
        return np.clip(special.expit(_arr(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        # e / (1 + e)^2 with e = exp(-|eta|), as R's exp(x) / (1 + exp(x))^2: mu (1 - mu)
        # cancels in 1 - mu for large eta (eta = 30: 9.348e-14, R 9.3576e-14). Floored at
        # eps like R, but continuous (R returns eps abruptly beyond |eta| > 30).
        e = np.exp(-np.minimum(np.abs(_arr(eta)), 700.0))  # capped: no underflow (the floor is eps)
        return np.maximum(e / (1.0 + e) ** 2, EPS)

    def d2mu_deta2(self, eta):
        eta = _arr(eta)
        e = np.exp(-np.minimum(np.abs(eta), 700.0))
        return -e / (1.0 + e) ** 2 * np.tanh(0.5 * eta)  # mu (1 - mu) (1 - 2 mu)


class ProbitLink(Link):
    """probit: eta = qnorm(mu).

    >>> import numpy as np
    >>> float(ProbitLink().linkinv(np.array([0.0]))[0])
    0.5
    """

    name = "probit"

    def link(self, mu):
        return special.ndtri(_arr(mu))

    def linkinv(self, eta):
        # R clamps eta at -qnorm(eps); lme4 also caps mu at 1 - eps.
        eta = np.clip(_arr(eta), -_PROBIT_THRESH, _PROBIT_THRESH)
        return np.clip(special.ndtr(eta), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        eta = _arr(eta)
        return np.maximum(np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi), EPS)

    def d2mu_deta2(self, eta):
        eta = _arr(eta)
        return -eta * np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)


class CauchitLink(Link):
    """cauchit: eta = qcauchy(mu) = tan(pi (mu - 1/2)).

    >>> import numpy as np
    >>> float(CauchitLink().linkinv(np.array([1.0]))[0])
    0.75
    """

    name = "cauchit"

    def link(self, mu):
        # R's qcauchy: -1 / tan(pi p) on the nearer tail. tan(pi (mu - 1/2)) rounds
        # mu - 1/2 and loses every digit of a small mu (-1.375e15 at mu = eps, R -1.434e15).
        mu = _arr(mu)
        lower = mu <= 0.5
        p = np.where(lower, mu, 1.0 - mu)
        with np.errstate(divide="ignore"):
            q = 1.0 / np.tan(np.pi * p)
        return np.where(mu == 0.5, 0.0, np.where(lower, -q, q))

    def linkinv(self, eta):
        # R clamps eta at -qcauchy(eps); lme4 also caps mu at 1 - eps. R's pcauchy
        # uses atan(1/x) / pi in the tails, where 0.5 + atan(x) / pi cancels.
        eta = np.clip(_arr(eta), -_CAUCHIT_THRESH, _CAUCHIT_THRESH)
        big = np.abs(eta) > 1.0
        with np.errstate(divide="ignore"):
            tail = np.arctan(1.0 / np.where(big, eta, 1.0)) / np.pi
        mu = np.where(big, np.where(eta > 0, 1.0 - tail, -tail), 0.5 + np.arctan(eta) / np.pi)
        return np.clip(mu, EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        eta = _arr(eta)
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), EPS)

    def d2mu_deta2(self, eta):
        eta = _arr(eta)
        return -2.0 * eta / (np.pi * (1.0 + eta * eta) ** 2)


class CloglogLink(Link):
    """complementary log-log: eta = log(-log(1 - mu)).

    >>> import numpy as np
    >>> round(float(CloglogLink().linkinv(np.array([0.0]))[0]), 6)
    0.632121
    """

    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-_arr(mu)))

    def linkinv(self, eta):
        eta = _arr(eta)
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        # R caps eta at 700 so exp(eta) does not overflow.
        eta = np.minimum(_arr(eta), 700.0)
        return np.maximum(np.exp(eta) * np.exp(-np.exp(eta)), EPS)

    def d2mu_deta2(self, eta):
        eta = np.minimum(_arr(eta), 700.0)
        e = np.exp(eta)
        return e * np.exp(-e) * (1.0 - e)


class LogLink(Link):
    """log: eta = log(mu); R's ``poisson()`` default.

    >>> import numpy as np
    >>> float(LogLink().linkinv(np.array([0.0]))[0])
    1.0
    """

    name = "log"

    def link(self, mu):
        return np.log(_arr(mu))

    def linkinv(self, eta):
        return np.maximum(np.exp(_arr(eta)), EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(_arr(eta)), EPS)

    def d2mu_deta2(self, eta):
        return np.maximum(np.exp(_arr(eta)), EPS)

    def d3mu_deta3(self, eta):
        return np.maximum(np.exp(_arr(eta)), EPS)


class IdentityLink(Link):
    """identity: eta = mu; R's ``gaussian()`` default.

    >>> import numpy as np
    >>> float(IdentityLink().mu_eta(np.array([3.0]))[0])
    1.0
    """

    name = "identity"

    def link(self, mu):
        return _arr(mu).copy()

    def linkinv(self, eta):
        return _arr(eta).copy()

    def mu_eta(self, eta):
        return np.ones_like(_arr(eta))

    def d2mu_deta2(self, eta):
        return np.zeros_like(_arr(eta))

    def d3mu_deta3(self, eta):
        return np.zeros_like(_arr(eta))


class InverseLink(Link):
    """inverse: eta = 1 / mu; R's ``Gamma()`` default.

    >>> import numpy as np
    >>> float(InverseLink().linkinv(np.array([4.0]))[0])
    0.25
    """

    name = "inverse"

    def link(self, mu):
        return 1.0 / _arr(mu)

    def linkinv(self, eta):
        return 1.0 / _arr(eta)

    def mu_eta(self, eta):
        eta = _arr(eta)
        return -1.0 / (eta * eta)

    def d2mu_deta2(self, eta):
        eta = _arr(eta)
        return 2.0 / (eta * eta * eta)

    def valideta(self, eta):
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))

    def d3mu_deta3(self, eta):
        eta = _arr(eta)
        return -6.0 / eta**4


class InverseSquaredLink(Link):
    """1/mu^2: eta = mu^-2; R's ``inverse.gaussian()`` default.

    >>> import numpy as np
    >>> float(InverseSquaredLink().linkinv(np.array([4.0]))[0])
    0.5
    """

    name = "1/mu^2"

    def link(self, mu):
        return 1.0 / _arr(mu) ** 2

    def linkinv(self, eta):
        return 1.0 / np.sqrt(_arr(eta))

    def mu_eta(self, eta):
        return -1.0 / (2.0 * _arr(eta) ** 1.5)

    def d2mu_deta2(self, eta):
        return 0.75 / _arr(eta) ** 2.5

    def valideta(self, eta):
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))

    def d3mu_deta3(self, eta):
        return -1.875 / _arr(eta) ** 3.5


class SqrtLink(Link):
    """sqrt: eta = sqrt(mu) (R's ``poisson(link = "sqrt")``).

    >>> import numpy as np
    >>> float(SqrtLink().linkinv(np.array([3.0]))[0])
    9.0
    """

    name = "sqrt"

    def link(self, mu):
        return np.sqrt(_arr(mu))

    def linkinv(self, eta):
        eta = _arr(eta)
        return eta * eta

    def mu_eta(self, eta):
        return 2.0 * _arr(eta)

    def d2mu_deta2(self, eta):
        return np.full_like(_arr(eta), 2.0)

    def valideta(self, eta):
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))

    def d3mu_deta3(self, eta):
        return np.zeros_like(_arr(eta))


_LINKS: dict[str, type[Link]] = {
    cls.name: cls
    for cls in (
        LogitLink,
        ProbitLink,
        CauchitLink,
        CloglogLink,
        LogLink,
        IdentityLink,
        InverseLink,
        InverseSquaredLink,
        SqrtLink,
    )
}


def available_links() -> list[str]:
    """Names accepted by :func:`get_link`.

    >>> "logit" in available_links()
    True
    """
    return sorted(_LINKS)


def get_link(spec: str | Link) -> Link:
    """Return a link instance for a name (``"logit"``) or pass a Link through.

    >>> get_link("probit").name
    'probit'
    >>> get_link(LogLink()).name
    'log'
    """
    if isinstance(spec, Link):
        return spec
    if isinstance(spec, type) and issubclass(spec, Link):
        return spec()
    if isinstance(spec, str):
        try:
            return _LINKS[spec]()
        except KeyError:
            raise ValueError(
                f"unknown link {spec!r}; available links: {', '.join(available_links())}"
            ) from None
    # Duck-typed user link (not a Link subclass): accept if it has the methods.
    if all(callable(getattr(spec, m, None)) for m in ("link", "linkinv", "mu_eta")):
        return spec  # type: ignore[return-value]
    raise TypeError(f"link must be a link name or a Link instance, got {type(spec).__name__}")
