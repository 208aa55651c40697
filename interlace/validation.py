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
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from interlace.families import available, get_family

__all__ = [
    "KNOWN_OPTIMIZERS",
    "known_families",
    "family_name",
    "resolve_family",
    "check_response",
    "check_vector",
    "check_weights",
    "numeric_values",
    "NAGQ_MAX",
    "guard_result",
    "check_terms",
    "scale_message",
    "validate_fit_args",
]

KNOWN_OPTIMIZERS = ("lbfgsb", "bobyqa", "nelder-mead")
NAGQ_MAX = 100  # lme4's GHrule: "ord < 101L"

_EXACT_INT = 2.0**53  # integers beyond this are not all representable as float64


def _dtype_text(values: Any) -> str:
    dt = getattr(values, "dtype", None)
    if dt is None:
        return type(values).__name__
    if isinstance(dt, pd.CategoricalDtype):
        return f"category (categories of dtype {dt.categories.dtype})"
    return str(dt)


def _object_number(v: Any) -> float | None:
    """float(v) for a number held in an object column (None: not a number)."""
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, np.integer)):
        if abs(int(v)) > _EXACT_INT:
            raise OverflowError
        return float(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Decimal):
        f = float(v)
        if v.is_finite() and v == v.to_integral_value() and abs(v) > Decimal(_EXACT_INT):
            raise OverflowError
        return f
    if isinstance(v, Fraction):
        return float(v)
    return None


def numeric_values(values: Any, what: str) -> np.ndarray:
    """The float64 values of a numeric column or array; ValueError naming ``what``
    and the dtype for anything that is not numeric or convertible without loss.

    Accepted: numpy numbers and booleans; pandas nullable (``Int64``,
    ``Float64``, ``boolean``) and pyarrow numeric/decimal columns (missing
    values become NaN, dropped as missing later); object columns holding only
    numbers (``int``, ``float``, ``Decimal``, ``Fraction``) and missing values.
    Refused, as lme4 refuses them: strings (also numeric-looking ones such as
    ``"3"``), categoricals (R factors), dates, complex numbers.

    >>> numeric_values(pd.Series([1, 2], dtype="Int64"), "response 'y'").tolist()
    [1.0, 2.0]
    >>> numeric_values(pd.Series(["0", "3"]), "response 'y'")
    Traceback (most recent call last):
    ...
    ValueError: response 'y' must be numeric, got dtype str (strings): convert it with .astype(float) if the strings are numbers
    """
    dt = getattr(values, "dtype", None)
    if isinstance(values, pd.Series) or isinstance(values, pd.Index):
        if isinstance(dt, pd.CategoricalDtype):
            raise ValueError(
                f"{what} must be numeric, got dtype {_dtype_text(values)}: a categorical is a factor, not numbers; "
                "convert it with .astype(float) if its categories are the numbers")
        if isinstance(dt, np.dtype) and dt.kind in "iufb":
            arr = values.to_numpy().astype(np.float64)
            if dt.kind in "iu" and arr.size and np.abs(arr).max() > _EXACT_INT:
                raise ValueError(f"{what} has integers beyond 2**53 ({dt}): they cannot be held as float64 exactly")
            return arr
        if pd.api.types.is_bool_dtype(dt) or (pd.api.types.is_numeric_dtype(dt) and not _is_complex(dt)):
            try:
                return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{what} cannot be converted to float64 (dtype {dt}): {exc}") from exc
        if pd.api.types.is_string_dtype(dt) and not (isinstance(dt, np.dtype) and dt == object):
            raise ValueError(f"{what} must be numeric, got dtype {dt} (strings): convert it with .astype(float) "
                             "if the strings are numbers")
        if isinstance(dt, np.dtype) and dt == object:
            return _object_values(values.to_numpy(), what, str(dt))
        raise ValueError(f"{what} must be numeric, got dtype {_dtype_text(values)}")
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iufb":
            return values.astype(np.float64)
        if values.dtype == object:
            return _object_values(values, what, "object")
        kind = {"U": "strings", "S": "bytes", "M": "dates", "m": "time spans", "c": "complex numbers"}
        raise ValueError(f"{what} must be numeric, got a numpy array of dtype {values.dtype} "
                         f"({kind.get(values.dtype.kind, 'not numbers')})")
    if dt is not None and hasattr(values, "to_numpy"):  # polars / pyarrow / narwhals series
        try:
            return numeric_values(pd.Series(values.to_numpy()), what)
        except ValueError:
            raise
    return numeric_values(np.asarray(values, dtype=object) if not np.isscalar(values) else np.asarray([values]),
                          what)


def _looks_numeric(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _is_complex(dt: Any) -> bool:
    return isinstance(dt, np.dtype) and dt.kind == "c"


def _object_values(arr: np.ndarray, what: str, dtype: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=np.float64)
    flat, res = arr.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat):
        if v is None or v is pd.NA or v is pd.NaT:
            res[i] = np.nan
            continue
        try:
            f = _object_number(v)
        except OverflowError:
            raise ValueError(f"{what} holds the integer {v!r}, beyond what float64 holds exactly") from None
        if f is None:
            kind = "strings" if isinstance(v, str) else f"values of type {type(v).__name__}"
            hint = " (numeric strings are refused, as lme4 refuses them: convert with .astype(float))" \
                if isinstance(v, str) and _looks_numeric(v) else ""
            raise ValueError(f"{what} must be numeric, got dtype {dtype} holding {kind}, e.g. {v!r}{hint}")
        res[i] = f
    return out


def known_families() -> list[str]:
    """The registered family names (built-ins and installed plugins)."""
    return sorted(available())


def resolve_family(family: Any) -> Any:
    """A family object from a registered name (ValueError listing the known
    names for an unknown one); an object is returned as it is (a duck-typed
    family may define only the members it needs)."""
    if not isinstance(family, str):
        if not isinstance(getattr(family, "name", None), str):
            raise TypeError("family must be a family name or a family object with a 'name' attribute, "
                            f"got {type(family).__name__}")
        return family
    try:
        return get_family(family.strip())
    except ValueError as exc:
        if not str(exc).startswith("unknown family"):
            raise
        raise ValueError(f"unknown family {family!r}; known families: {', '.join(known_families())}") from exc


def family_name(family: Any) -> str:
    """The family's name (lower case) from a string or a family object, for messages;
    ValueError for an unknown name."""
    return str(resolve_family(family).name).strip().lower()


def check_response(
    family: Any,
    y: np.ndarray,
    weights: np.ndarray,
    column: str,
    *,
    failures: np.ndarray | None = None,
) -> list[str]:
    """Response checks before fitting; returns warning messages (also warned).

    What a family's response may be is the family's own rule: its
    ``validate_response(y, weights, column_name)`` raises a ValueError naming the
    column, or warns (R's "non-integer #successes"); those warnings are returned
    as messages too, so the result lists them. The rules that hold for every
    family (finite values, cbind() failures >= 0, not constant) are checked here.
    """
    if not np.all(np.isfinite(y)):
        raise ValueError(f"response {column!r} has non-finite values")
    fam = resolve_family(family)
    if failures is not None and np.any(failures < 0):
        raise ValueError(f"{fam.name} response {column!r}: cbind() has negative numbers of failures")
    messages: list[str] = []
    validate = getattr(fam, "validate_response", None)
    if callable(validate):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            validate(y, weights, column)
        for w in caught:
            if issubclass(w.category, UserWarning) and str(w.message) not in messages:
                messages.append(str(w.message))
            elif not issubclass(w.category, UserWarning):
                warnings.warn(w.message, w.category, stacklevel=3)
    if y.size > 1 and np.ptp(y) == 0:
        raise ValueError(f"response {column!r} is constant ({y[0]!r} in every row); nothing to model")
    for m in messages:
        warnings.warn(m, UserWarning, stacklevel=3)
    return messages


def check_vector(v: Any, n: int, arg: str, *, nonnegative: bool = False) -> np.ndarray:
    """A float64 vector of length ``n`` from an array, list or Series given as ``arg``.

    Numbers only (see :func:`numeric_values`: strings, categoricals and the
    like are a ValueError naming ``arg`` and the dtype); a one-column 2-D array
    or frame is read as its column, any other 2-D shape is refused.

    >>> check_vector(np.ones((3, 2)), 3, "weights")
    Traceback (most recent call last):
    ...
    ValueError: weights must be one-dimensional (one value per row), got an array of shape (3, 2)
    """
    if isinstance(v, pd.DataFrame):
        if v.shape[1] != 1:
            raise ValueError(f"{arg} must be one-dimensional (one value per row), got a data frame with "
                             f"{v.shape[1]} columns")
        v = v.iloc[:, 0]
    if isinstance(v, (str, bytes)) or np.isscalar(v):
        raise TypeError(f"{arg} must be an array of one value per row or a column name, got {type(v).__name__}")
    if not isinstance(v, (np.ndarray, pd.Series, pd.Index)) and not hasattr(v, "to_numpy"):
        try:
            v = np.asarray(v)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{arg} must be numeric: {exc}") from exc
        if v.dtype.kind in "US" or v.dtype == object:
            v = np.asarray(v, dtype=object)
    shape = getattr(v, "shape", None)
    if shape is not None and len(shape) > 1:
        if len(shape) == 2 and 1 in shape and max(shape) == n:
            v = np.asarray(v).reshape(-1)
        else:
            raise ValueError(f"{arg} must be one-dimensional (one value per row), got an array of shape "
                             f"{tuple(shape)}")
    arr = numeric_values(v, arg)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{arg} has length {arr.shape[0] if arr.ndim else 1}, but the data have {n} rows")
    return arr


def check_finite(v: np.ndarray, arg: str, *, nonnegative: bool = False) -> None:
    """ValueError naming ``arg`` for non-finite (or negative) values."""
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{arg} has non-finite values (inf or NaN)")
    if nonnegative and np.any(v < 0):
        raise ValueError(f"{arg} has negative values; prior weights must be >= 0")


def check_weights(prior: np.ndarray, total: np.ndarray | None = None) -> None:
    """ValueError when no observation has a positive weight (prior weights, or
    prior weights times the binomial trials): nothing would be fitted, and the
    numerical failure that follows (lme4: "Downdated VtV is not positive
    definite") names nothing the user wrote.

    >>> check_weights(np.zeros(3))
    Traceback (most recent call last):
    ...
    ValueError: weights are zero for every row (3 rows): no observation contributes to the fit
    """
    if prior.size and not np.any(prior > 0):
        raise ValueError(f"weights are zero for every row ({prior.size} rows): no observation contributes to the fit")
    if total is not None and total.size and not np.any(total > 0):
        raise ValueError(f"every row has zero weight times zero trials ({total.size} rows): no observation "
                         "contributes to the fit")


def _parsimonious(term: Any) -> bool:
    """Whether the term's covariance structure has a fixed, small number of parameters."""
    return bool(getattr(getattr(term, "cov", None), "parsimonious", False))


def check_terms(terms: Sequence[Any], n: int, family: Any) -> None:
    """lme4's checkNlevels / checkZdims for the random-effect terms.

    - no random term at all: an error (use a GLM);
    - a grouping factor with fewer than 2 levels (lme4: ``grouping factors must
      have > 1 sampled level``);
    - more random effects than observations for a term (check.nobs.vs.nRE).
      lmer (gaussian) forbids ``n <= q``; glmer allows an observation-level
      random effect (``q == n``), so only ``n < q`` is an error there (the family's
      ``normal_errors`` says which rule holds). A structured covariance (ar1, cs, ...:
      fewer parameters than unstructured) is not checked, as in glmmTMB.
    """
    lmm = bool(getattr(resolve_family(family), "normal_errors", False))
    if not terms:
        return  # a model without random effects is a GLM (engines.select_engine sends it to "glm")
    for t in terms:
        # a structure with a few parameters whatever its number of columns (a spatial field
        # over many positions, glmmTMB's exp(pos + 0 | group) with one group) says so: lme4's
        # checks, made for the unstructured covariance, do not apply to it (nor in glmmTMB)
        if t.nlevels < 2 and not _parsimonious(t):
            raise ValueError(
                f"grouping factor {t.group!r} has {t.nlevels} level; grouping factors must have > 1 sampled level"
            )
    for t in terms:
        cov = getattr(t, "cov", None)
        if cov is not None and cov.nparams < cov.nentries:
            continue  # a structure with fewer parameters than us (ar1, cs): glmmTMB fits n = q
        bad = n <= t.q if lmm else n < t.q
        if bad:
            raise ValueError(
                f"number of observations (={n}) {'<=' if lmm else '<'} number of random effects "
                f"(={t.q}) for term ({t.lhs} | {t.group}); the random-effects parameters"
                f"{' and the residual variance' if lmm else ''} are probably unidentifiable"
            )


def scale_message(X: np.ndarray, names: Sequence[str], tol: float = 1e3) -> str | None:
    """lme4's checkScaleX: warn when the SDs of the non-binary columns differ by
    more than ``tol``, or when one of them is above ``tol`` or below ``1/tol``.

    >>> scale_message(np.c_[np.ones(3), [1000.0, 3000.0, 5000.0]], ["Intercept", "x"])
    'Some predictor variables are on very different scales: consider rescaling'
    """
    if X.shape[0] < 2 or X.shape[1] < 1:
        return None
    binary = ((X == 0.0) | (X == 1.0)).all(axis=0)  # np.isin(column, (0, 1)) per column, in one pass
    cont = [j for j in range(X.shape[1]) if not binary[j]]
    if not cont:
        return None
    sd = X[:, cont].std(axis=0, ddof=1)
    sd = sd[sd > 0]
    if sd.size == 0:
        return None
    logsd = np.log(sd)
    ratio = float(logsd.max() - logsd.min())
    if ratio > math.log(tol) or float(np.max(np.abs(logsd))) > math.log(tol):
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
    if not math.isfinite(float(nAGQ)) or float(nAGQ) != int(nAGQ):
        raise ValueError(f"nAGQ must be a whole number between 0 and {NAGQ_MAX}, got {nAGQ!r}")
    q = int(nAGQ)
    if q < 0:
        raise ValueError(f"nAGQ must be >= 0, got {q}")
    if q > NAGQ_MAX:
        # lme4's GHrule stops at "ord < 101L"; more nodes only add rounding error
        raise ValueError(f"nAGQ must be at most {NAGQ_MAX} (as in lme4), got {q}")
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
        if isinstance(theta0, (str, bytes)):
            raise TypeError(f"theta0 must be a sequence of numbers (one per theta parameter), got the string "
                            f"{theta0!r}")
        try:
            raw = np.asarray(theta0)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"theta0 must be numeric: {exc}") from exc
        if raw.dtype.kind not in "iufb":
            try:
                raw = numeric_values(np.asarray(theta0, dtype=object).reshape(-1), "theta0")
            except ValueError as exc:
                raise TypeError(str(exc)) from exc
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
        if theta0_len_expected is not None and arr.size != theta0_len_expected:
            raise ValueError(f"theta0 has length {arr.size}, but the model has {theta0_len_expected} theta parameters")
        if not np.all(np.isfinite(arr)):
            raise ValueError("theta0 has non-finite values")


UNRELIABLE = ("the fit did not converge to a usable optimum: {what} not finite (the Hessian at the "
              "optimizer's final point is not usable); rescale the covariates or the response, or try "
              "another optimizer or theta0")


def guard_result(res: Any) -> list[str]:
    """Never report ``converged=True`` with non-finite estimates or standard
    errors: flag such a fit as not converged, with a message (returned, and
    added to ``res.optinfo["messages"]`` and ``res.warnings``). A non-finite
    log-likelihood is a ValueError (nothing usable was fitted).

    >>> from types import SimpleNamespace
    >>> import pandas as pd
    >>> r = SimpleNamespace(llf=-1.0, converged=True, fe_params=pd.Series([1.0]), fe_bse=pd.Series([np.nan]),
    ...                     theta=pd.Series([0.5]), optinfo={"messages": []}, warnings=[])
    >>> guard_result(r)[0][:48], r.converged
    ('the fit did not converge to a usable optimum: st', False)
    """
    if not np.isfinite(getattr(res, "llf", np.nan)):
        raise ValueError("the fit ended without a finite log-likelihood: the model cannot be fitted to these data "
                         "as given (check the link against the response's range, rescale, or try another "
                         "optimizer or theta0)")
    from interlace.results.lazy import peek

    bad = []
    for attr, what in (("fe_params", "fixed-effect estimates"), ("fe_bse", "standard errors"),
                       ("theta", "variance parameters")):
        v = peek(res, attr)  # the numbers, without building a deferred pandas object
        if v is not None and len(v) and not np.all(np.isfinite(np.asarray(v, dtype=float))):
            bad.append(what)
    if not bad:
        return []
    msg = UNRELIABLE.format(what=" and ".join(bad) + " are")
    res.converged = False
    msgs = res.optinfo.setdefault("messages", [])
    if msg not in msgs:
        msgs.append(msg)
    warns = getattr(res, "warnings", None)
    if isinstance(warns, list) and warns is not msgs and msg not in warns:
        warns.append(msg)
    return [msg]
