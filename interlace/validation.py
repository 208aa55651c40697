"""Checks before fitting, each a ValueError (TypeError for a wrong type) naming what is wrong.

The data checks follow lme4's ``checkNlevels`` / ``checkZdims`` / ``checkScaleX``
and R's family ``initialize`` expressions; the fit-argument checks
(``validate_fit_args``) are called by ``interlace.glmer`` before optimizing.

Example
-------
>>> validate_fit_args(optimizer="lbfgsb", theta0_len_expected=1, theta0=None, nAGQ=1,
...                   terms=[], dispformula=None)
>>> family_name("binomial")
'binomial'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "KNOWN_OPTIMIZERS",
    "known_families",
    "family_name",
    "check_response",
    "check_vector",
    "check_terms",
    "scale_message",
    "validate_fit_args",
]

KNOWN_OPTIMIZERS = ("lbfgsb", "bobyqa", "nelder-mead")

_BUILTIN_FAMILIES = (
    "binomial",
    "poisson",
    "gaussian",
    "negativebinomial",
    "nbinom2",
    "nbinom1",
    "gamma",
    "beta",
    "zip",
    "zinb",
    "hurdle_poisson",
    "zoib",
    "genpois",
    "betabinomial",
)
_COUNT = {"poisson", "negativebinomial", "nbinom2", "nbinom1", "zip", "zinb", "hurdle_poisson", "genpois"}


def known_families() -> list[str]:
    """Known family names: ``interlace.families.available()`` (when importable) and the built-ins."""
    try:
        from interlace.families import available  # type: ignore[attr-defined]

        names = set(available())
    except Exception:
        names = set()
    # The registry may not have every built-in registered yet; list both.
    return sorted(names | set(_BUILTIN_FAMILIES))


def family_name(family: Any) -> str:
    """The family's name (lower case) from a string or a family object; ValueError if unknown."""
    if isinstance(family, str):
        name = family.strip().lower()
        known = known_families()
        if name not in known:
            raise ValueError(f"unknown family {family!r}; known families: {', '.join(known)}")
        return name
    name = getattr(family, "name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"family must be a family name or a family object with a 'name' attribute, got {type(family).__name__}"
        )
    return name.strip().lower()


def check_response(
    family: Any,
    y: np.ndarray,
    weights: np.ndarray,
    column: str,
    *,
    failures: np.ndarray | None = None,
) -> list[str]:
    """Family-specific response checks; returns warning messages (also warned).

    The family object's own ``validate_response(y, weights, column_name)`` runs
    when it has one; the built-in rules below run by family name as well.
    """
    messages: list[str] = []
    if not np.all(np.isfinite(y)):
        raise ValueError(f"response {column!r} has non-finite values")
    name = family_name(family)
    if failures is not None and np.any(failures < 0):
        raise ValueError(f"{name} response {column!r}: cbind() has negative numbers of failures")
    validate = getattr(family, "validate_response", None)
    if callable(validate) and not isinstance(family, str):
        validate(y, weights, column)
    if name in ("binomial", "betabinomial"):
        if failures is not None and np.any(failures < 0):
            raise ValueError(f"binomial response {column!r}: cbind() has negative numbers of failures")
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(
                f"binomial response {column!r} must be a proportion in [0, 1] (with trial counts as weights) "
                "or cbind(successes, failures)"
            )
        # R's binomial initialize: "non-integer #successes in a binomial glm!"
        succ = y * weights
        if np.any(np.abs(succ - np.round(succ)) > 0.001):
            messages.append(f"non-integer #successes in binomial response {column!r}")
    elif name in _COUNT:
        if np.any(y < 0):
            raise ValueError(f"{name} response {column!r} has negative counts")
        if np.any(np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))):
            messages.append(f"non-integer counts in the {name} response {column!r}")
    elif name == "gamma":
        if np.any(y <= 0):
            raise ValueError(f"gamma response {column!r} must be positive (non-positive values found)")
    elif name == "beta":
        if np.any(y <= 0) or np.any(y >= 1):
            raise ValueError(f"beta response {column!r} must lie strictly inside (0, 1)")
    elif name == "zoib":
        if np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"zoib response {column!r} must lie in [0, 1]")
    if y.size > 1 and np.ptp(y) == 0:
        raise ValueError(f"response {column!r} is constant ({y[0]!r} in every row); nothing to model")
    for m in messages:
        warnings.warn(m, UserWarning, stacklevel=3)
    return messages


def check_vector(v: Any, n: int, arg: str, *, nonnegative: bool = False) -> np.ndarray:
    """A float64 vector of length ``n`` (TypeError if not numeric; ValueError for length)."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{arg} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.size == n else arr
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{arg} has length {arr.shape[0] if arr.ndim else 1}, but the data have {n} rows")
    return arr


def check_finite(v: np.ndarray, arg: str, *, nonnegative: bool = False) -> None:
    """ValueError naming ``arg`` for non-finite (or negative) values."""
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{arg} has non-finite values (inf or NaN)")
    if nonnegative and np.any(v < 0):
        raise ValueError(f"{arg} has negative values; prior weights must be >= 0")


def check_terms(terms: Sequence[Any], n: int, family: str) -> None:
    """lme4's checkNlevels / checkZdims for the random-effect terms.

    - no random term at all: an error (use a GLM);
    - a grouping factor with fewer than 2 levels (lme4: ``grouping factors must
      have > 1 sampled level``);
    - more random effects than observations for a term (check.nobs.vs.nRE).
      lmer (gaussian) forbids ``n <= q``; glmer allows an observation-level
      random effect (``q == n``), so only ``n < q`` is an error there.
    """
    if not terms:
        raise ValueError("no random-effect terms: add (1 | g) to the formula, or use groups= or random=")
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(
                f"grouping factor {t.group!r} has {t.nlevels} level; grouping factors must have > 1 sampled level"
            )
    for t in terms:
        bad = n <= t.q if family == "gaussian" else n < t.q
        if bad:
            raise ValueError(
                f"number of observations (={n}) {'<=' if family == 'gaussian' else '<'} number of random effects "
                f"(={t.q}) for term ({t.lhs} | {t.group}); the random-effects parameters"
                f"{' and the residual variance' if family == 'gaussian' else ''} are probably unidentifiable"
            )


def scale_message(X: np.ndarray, names: Sequence[str], tol: float = 1e3) -> str | None:
    """lme4's checkScaleX: warn when SDs of non-binary columns differ by more than ``tol``."""
    if X.shape[0] < 2 or X.shape[1] < 2:
        return None
    cont = [j for j in range(X.shape[1]) if not np.all(np.isin(X[:, j], (0.0, 1.0)))]
    if len(cont) < 2:
        return None
    sd = X[:, cont].std(axis=0, ddof=1)
    sd = sd[sd > 0]
    if sd.size < 2:
        return None
    ratio = float(np.log(sd.max()) - np.log(sd.min()))
    if ratio > math.log(tol):
        return "Some predictor variables are on very different scales: consider rescaling"
    return None


def validate_fit_args(
    *,
    optimizer: str,
    theta0_len_expected: int | None,
    theta0: Any,
    nAGQ: Any,
    terms: Sequence[Any],
    dispformula: str | None,
) -> None:
    """Check the fitting arguments of ``glmer`` before any work is done.

    >>> validate_fit_args(optimizer="simplex", theta0_len_expected=None, theta0=None, nAGQ=1,
    ...                   terms=[], dispformula=None)
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'simplex'; known optimizers: lbfgsb, bobyqa, nelder-mead
    """
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a string, got {type(optimizer).__name__}")
    if optimizer.lower() not in KNOWN_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known optimizers: {', '.join(KNOWN_OPTIMIZERS)}")
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer, float, np.floating)):
        raise TypeError(f"nAGQ must be an integer, got {type(nAGQ).__name__}")
    if float(nAGQ) != int(nAGQ):
        raise ValueError(f"nAGQ must be an integer, got {nAGQ!r}")
    q = int(nAGQ)
    if q < 0:
        raise ValueError(f"nAGQ must be >= 0, got {q}")
    if q > 1:
        groups = {t.group for t in terms}
        if len(groups) != 1:
            raise ValueError(
                f"nAGQ > 1 needs exactly one grouping factor; this model has {len(groups)} "
                f"({', '.join(sorted(groups))}): crossed or nested random effects use the Laplace "
                "approximation (nAGQ = 1)"
            )
        if dispformula is not None:
            raise ValueError("dispformula cannot be combined with nAGQ > 1")
    if theta0 is not None:
        try:
            arr = np.asarray(theta0, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"theta0 must be numeric: {exc}") from exc
        if theta0_len_expected is not None and arr.size != theta0_len_expected:
            raise ValueError(f"theta0 has length {arr.size}, but the model has {theta0_len_expected} theta parameters")
        if not np.all(np.isfinite(arr)):
            raise ValueError("theta0 has non-finite values")
