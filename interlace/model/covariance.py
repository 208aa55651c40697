"""Covariance structures of a random-effect term (lme4 >= 1.1-36's ``Covariance`` classes).

A term ``(lhs | g)`` with ``k`` columns has a k x k relative covariance factor Lambda
(Sigma = sigma^2 Lambda Lambda', sigma = 1 for GLMMs). A :class:`Covariance` maps the term's
own parameters to Lambda and says everything else the engine and the result need about them:

=====================  ==========================================================================
``k``                  dimension of the term
``nparams``            number of parameters
``lambda_(par)``       the k x k lower-triangular factor Lambda
``entries(par)``       Lambda's lower triangle, column-major (lme4's theta order for ``us``)
``jacobian(par)``      d entries / d par, shape (k(k+1)/2, nparams)
``lower``              lower bounds of the parameters (``-inf`` for none)
``start()``            start values (lme4: the identity Lambda)
``canonical(par)``     the same covariance with a non-negative diagonal (sign flips)
``even_params``        parameters the deviance is even in (a zero there is a boundary the
                       optimizer probes: the gradient vanishes on it)
``param_names(...)``   one name per parameter (``result.theta``'s index)
``correlated``         whether VarCorr lists correlations (False for ``diag``)
=====================  ==========================================================================

The engine's kernels compute the deviance's derivatives in Lambda's entries; the gradient in
a structure's parameters is ``jacobian(par).T @ d_entries`` (``ReStructure.chain``), so no
kernel assumes Lambda linear in its parameters. VarCorr rows come from ``lambda_`` (results
build Sigma = Lambda Lambda').

To add a structure (ar1, cs, toep, ...), subclass :class:`Covariance`, implement ``nparams``,
``lambda_``, ``jacobian``, ``lower`` and ``start``, and set the term's ``cov``; nothing in
the engine changes.

Example
-------
>>> import numpy as np
>>> us = Unstructured(2)
>>> us.nparams, us.lambda_(np.array([1.0, 0.5, 2.0])).tolist()
(3, [[1.0, 0.0], [0.5, 2.0]])
>>> dg = Diagonal(2)
>>> dg.nparams, dg.entries(np.array([1.5, 0.5])).tolist()
(2, [1.5, 0.0, 0.5])
"""

from __future__ import annotations

import numpy as np

__all__ = ["Covariance", "Unstructured", "Diagonal", "tri_index", "term_covariance", "STRUCTURES",
           "register_structure", "make_structure", "structure_kwargs"]


def tri_index(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of Lambda's lower-triangle entries, column-major (lme4's theta order).

    >>> [a.tolist() for a in tri_index(2)]
    [[0, 1, 1], [0, 0, 1]]
    """
    a, b = [], []
    for col in range(k):
        for row in range(col, k):
            a.append(row)
            b.append(col)
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)


def term_covariance(term) -> "Covariance":
    """A random-effect term's covariance structure: its ``cov`` attribute, ``us`` by default."""
    return getattr(term, "cov", None) or Unstructured(term.k)


class Covariance:
    """Base class of a term's covariance structure (see the module docstring)."""

    name = "covariance"
    correlated = True
    #: names of the extra arguments a positional argument fills, in order (``rr(x | g, 2)``)
    positional_args: tuple[str, ...] = ()

    @classmethod
    def from_columns(cls, column_names: list[str], **args) -> "Covariance":
        """The structure of a term whose model-matrix columns are ``column_names``.

        The default takes the dimension from the number of columns and no extra arguments;
        structures that read more from the columns (coordinates of a ``numFactor``) or take
        arguments (``rr``'s ``d``) override it. Raise ValueError for a term the structure
        cannot support (the caller names the term).
        """
        if args:
            raise ValueError(f"the {cls.name} structure takes no arguments, got {', '.join(args)}")
        return cls(len(column_names))

    def __init__(self, k: int) -> None:
        if int(k) < 1:
            raise ValueError(f"a covariance structure needs a dimension of at least 1, got {k}")
        self.k = int(k)
        self.rows, self.cols = tri_index(self.k)

    @property
    def nentries(self) -> int:
        return self.k * (self.k + 1) // 2

    # ------------------------------------------------------------ to implement
    @property
    def nparams(self) -> int:
        raise NotImplementedError

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def lower(self) -> np.ndarray:
        raise NotImplementedError

    def start(self) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------ shared
    def entries(self, par: np.ndarray) -> np.ndarray:
        """Lambda's lower triangle, column-major."""
        return self.lambda_(np.asarray(par, dtype=float))[self.rows, self.cols]

    @property
    def even_params(self) -> np.ndarray:
        """Parameters the deviance is even in (default: none)."""
        return np.zeros(self.nparams, bool)

    def canonical(self, par: np.ndarray) -> np.ndarray:
        """The same covariance with non-negative diagonal parameters (default: unchanged)."""
        return np.array(par, dtype=float, copy=True)

    def rescale_factors(self, s: np.ndarray) -> np.ndarray | None:
        """Factors f with par (original) = par' * f when the term's columns are divided by ``s``
        (Lambda's row a scaled by 1 / s_a: interlace/rescale.py), or None when the structure's
        parameters cannot absorb a column scale (the default; the columns are then left as is)."""
        return None

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        """``group.column`` per parameter (default: ``group.p1``, ``group.p2``, ...)."""
        return [f"{vc_name}.{self.name}{i + 1}" for i in range(self.nparams)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.k == other.k  # type: ignore[attr-defined]

    __hash__ = object.__hash__


class Unstructured(Covariance):
    """``us``: every entry of the lower triangle is a parameter (lme4's default; today's
    correlated terms ``(1 + x | g)``). Lambda is linear in its parameters: the Jacobian is
    the identity.

    >>> Unstructured(2).param_names("Subject", ["Intercept", "Days"])
    ['Subject.Intercept', 'Subject.Days.Intercept', 'Subject.Days']
    """

    name = "us"

    @property
    def nparams(self) -> int:
        return self.nentries

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.k, self.k))
        lam[self.rows, self.cols] = par
        return lam

    def entries(self, par: np.ndarray) -> np.ndarray:
        return np.asarray(par, dtype=float)

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        return np.eye(self.nentries)

    @property
    def lower(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 1.0, 0.0)

    @property
    def even_params(self) -> np.ndarray:
        return self.rows == self.cols

    def canonical(self, par: np.ndarray) -> np.ndarray:
        """Flip each column of Lambda whose diagonal is negative (Lambda Lambda' is unchanged)."""
        out = np.array(par, dtype=float, copy=True)
        for t in np.flatnonzero((self.rows == self.cols) & (out < 0)):
            out[self.cols == self.cols[t]] *= -1.0
        return out

    def rescale_factors(self, s: np.ndarray) -> np.ndarray:
        return 1.0 / np.asarray(s, dtype=float)[self.rows]

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.{cnames[a]}" if a == b else f"{vc_name}.{cnames[a]}.{cnames[b]}"
                for a, b in zip(self.rows, self.cols)]


class Diagonal(Covariance):
    """``diag``: independent effects, one relative SD per column (lme4's ``||``).

    >>> Diagonal(2).jacobian(np.ones(2)).tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """

    name = "diag"
    correlated = False

    @property
    def nparams(self) -> int:
        return self.k

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(par, dtype=float))

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        J = np.zeros((self.nentries, self.k))
        diag = np.flatnonzero(self.rows == self.cols)
        J[diag, np.arange(self.k)] = 1.0
        return J

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(self.k)

    def start(self) -> np.ndarray:
        return np.ones(self.k)

    @property
    def even_params(self) -> np.ndarray:
        return np.ones(self.k, bool)

    def canonical(self, par: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(par, dtype=float))

    def rescale_factors(self, s: np.ndarray) -> np.ndarray:
        return 1.0 / np.asarray(s, dtype=float)

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.{c}" for c in cnames[: self.k]]


# --------------------------------------------------------------------------- registry

#: structure name (as written in a formula, ``ar1(0 + t | s)``) -> its Covariance class
STRUCTURES: dict[str, type[Covariance]] = {}


def register_structure(name: str, cls: type[Covariance]) -> None:
    """Make ``name(lhs | group)`` in a formula build a ``cls`` structure.

    >>> register_structure("us", Unstructured)  # already there: a no-op
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a structure name must be an identifier, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Covariance)):
        raise TypeError(f"structure {name!r}: {cls!r} is not a Covariance subclass")
    have = STRUCTURES.get(name)
    if have is not None and have is not cls:
        raise ValueError(f"covariance structure {name!r} is already registered ({have.__name__})")
    STRUCTURES[name] = cls


def make_structure(name: str, column_names: list[str], **args) -> Covariance:
    """The covariance structure ``name`` for a term with model-matrix columns ``column_names``.

    ``args`` are the structure's extra arguments from the formula (``d = 2``). An unknown name
    or a term the structure cannot support is a ValueError (callers prefix the term).

    >>> make_structure("diag", ["(Intercept)", "x"])
    Diagonal(2)
    """
    cls = STRUCTURES.get(name)
    if cls is None:
        raise ValueError(f"unknown covariance structure {name!r} (known: {', '.join(sorted(STRUCTURES))})")
    return cls.from_columns(list(column_names), **args)


def structure_kwargs(name: str, args: tuple) -> dict:
    """A bar's ``(name, value)`` argument pairs as keywords, positional ones named by the
    structure's ``positional_args``.

    >>> structure_kwargs("us", ())
    {}
    """
    cls = STRUCTURES.get(name)
    if cls is None:
        raise ValueError(f"unknown covariance structure {name!r} (known: {', '.join(sorted(STRUCTURES))})")
    out: dict = {}
    pos = list(cls.positional_args)
    for key, val in args:
        if not key:
            if not pos:
                raise ValueError(f"the {name} structure takes no positional argument (got {val!r})")
            key = pos.pop(0)
        if key in out:
            raise ValueError(f"argument {key!r} of the {name} structure given twice")
        out[key] = val
    return out


register_structure("us", Unstructured)
register_structure("diag", Diagonal)
