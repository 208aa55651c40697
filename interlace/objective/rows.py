"""The row passes of the engines, on one chunk of rows, and the in-memory :class:`RowBackend`.

A *chunk* (:class:`PartBlock`) holds some rows of the model -- y, prior weights,
offset, X, the family parameters' designs, the random-effect codes and
covariates -- and the random-effects layout a pass needs (:class:`RowLayout`).
A *pass* is a function ``pass_(chunk, payload) -> dict of sums`` whose result
over all rows is the key-by-key sum of its results over any split of the rows
(``sum_parts``). The engines never call a pass directly: they call
``rows.run(pass_, payload)`` on their :class:`~interlace.objective.protocol.RowBackend`,
which is :class:`LocalRows` here (the model frame's rows, one chunk, the
chunked-parallel kernels) or ``distributed.rounds.Rounds`` on Dask (one
chunk per partition, a map/reduce round). So a pass is written once and
nothing but the backend knows where the rows are.

This module holds the general-likelihood engine's passes (``start_pass``,
``fixed_pass``, ``newton_pass``, ``lev_pass``, ``grad_pass``: the sums
``general.objective.GeneralObjective`` needs) and the helpers the Laplace
passes (``distributed.blocks``) share.

Example
-------
>>> sum_parts([{"l": 1.0, "Ute": np.ones(2)}, {}, {"l": 2.0, "Ute": np.ones(2)}])["l"]
3.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from interlace.kernels import crossprod as kx
from interlace.kernels import general as kgen
from interlace.kernels import glm as kg
from interlace.kernels import gradient as kgr
from interlace.kernels import parallel as kpar

__all__ = ["RowLayout", "PartBlock", "LocalRows", "row_layout", "sum_parts", "start_pass", "fixed_pass",
           "newton_pass", "lev_pass", "grad_pass"]


@dataclass
class RowLayout:
    """The random-effects layout a row pass needs (a ReStructure's arrays, without rows)."""

    kcol: np.ndarray
    kdim: np.ndarray
    uoff: np.ndarray
    poff: np.ndarray
    nlev0: int
    q: int
    q2: int
    nv21: int
    theta_term: np.ndarray
    theta_a: np.ndarray
    theta_b: np.ndarray


def row_layout(re: Any) -> RowLayout:
    """The :class:`RowLayout` of a ReStructure."""
    return RowLayout(kcol=re.kcol, kdim=re.kdim, uoff=re.uoff, poff=re.poff, nlev0=int(re.nlev[0]), q=re.q,
                     q2=re.q2, nv21=re.nv21, theta_term=re.theta_term, theta_a=re.theta_a, theta_b=re.theta_b)


@dataclass
class PartBlock:
    """One chunk of rows (rows with missing values removed). ``aux_X``: the design of
    each family parameter with a dispformula / ziformula (absent: intercept-only);
    ``par``: run the chunked-parallel kernels (the in-memory chunk; a Dask worker
    runs the serial ones, its threads are the cluster's)."""

    y: np.ndarray
    wt: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    codes: np.ndarray  # (m, n_i) int64
    z: np.ndarray  # (n_i, sum k) float64
    family: Any
    pairidx: np.ndarray | None = None
    lay: RowLayout | None = None
    resp: Any = None  # GLMResponse: the per-row working arrays (Laplace passes)
    cache: dict = field(default_factory=dict)
    aux_X: dict = field(default_factory=dict)
    par: bool = False

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


class LocalRows:
    """The in-memory :class:`~interlace.objective.protocol.RowBackend`: the model's
    rows as one chunk; ``run`` is the pass itself.

    >>> LocalRows.__name__
    'LocalRows'
    """

    def __init__(self, block: PartBlock) -> None:
        self.block = block
        self.count = 0
        self.by_kind: dict[str, int] = {}

    @classmethod
    def from_model(cls, mf: Any, re: Any, fam: Any, aux_X: dict | None = None) -> "LocalRows":
        """The rows of a model frame with the layout of its ReStructure ``re``."""
        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        return cls(PartBlock(y=f64(mf.y), wt=f64(mf.weights), offset=f64(mf.offset), X=f64(mf.X), codes=re.codes,
                             z=re.z, family=fam, pairidx=re.pairidx, lay=row_layout(re), aux_X=dict(aux_X or {}),
                             par=True))

    def run(self, fn: Callable[[PartBlock, dict], dict], payload: dict) -> dict:
        """``fn(rows, payload)``: the sums of the pass over all rows."""
        self.count += 1
        self.by_kind[fn.__name__] = self.by_kind.get(fn.__name__, 0) + 1
        return fn(self.block, payload)


def sum_parts(parts: list[dict]) -> dict:
    """Add chunks' sums key by key, in chunk order (deterministic)."""
    out: dict = {}
    for d in parts:
        for k, v in d.items():
            if k not in out:
                out[k] = np.array(v, dtype=np.float64, copy=True) if isinstance(v, np.ndarray) else v
            else:
                out[k] = out[k] + v
    return out


# ----------------------------------------------------------------------------- shared helpers


def _k(b: PartBlock):
    """The kernels of this chunk: chunked-parallel in memory, serial on a worker."""
    return kpar if b.par else _SERIAL


class _SERIAL:
    accumulate_re = staticmethod(kx.accumulate_re)
    accumulate_x = staticmethod(kx.accumulate_x)
    leverage_pass = staticmethod(kgr.leverage_pass)
    gradient_pass = staticmethod(kgr.gradient_pass)


def _zl(b: PartBlock, lams: list[np.ndarray]) -> np.ndarray:
    """Rows of U = Z Lambda (as ReStructure.zlambda), cached for the last Lambda."""
    key = b"".join(np.ascontiguousarray(l).tobytes() for l in lams)
    c = b.cache.get("zl")
    if c is not None and c[0] == key:
        return c[1]
    L = b.lay
    if len(lams) == 1 and lams[0].shape == (1, 1):
        zl = b.z * lams[0][0, 0]
    else:
        zl = np.ascontiguousarray(np.hstack([b.z[:, L.kcol[j]:L.kcol[j + 1]] @ lam for j, lam in enumerate(lams)]))
    b.cache["zl"] = (key, zl)
    return zl


def _eta(b: PartBlock, pl: dict):
    """(U rows, X beta + offset, eta) at the payload's (Lambda, beta, u)."""
    zl = _zl(b, pl["lams"])
    base = b.X @ pl["beta"] + b.offset
    eta = np.empty(b.n)
    L = b.lay
    kg.linear_predictor(base, b.codes, zl, L.kcol, L.kdim, L.uoff, pl["u"], eta)
    return zl, base, eta


def _re_sums(b: PartBlock, w: np.ndarray, zw: np.ndarray, zl: np.ndarray) -> dict:
    """The random-effects blocks of U'WU and U'W zw (what BlockedCholesky.accumulate fills)."""
    L = b.lay
    k0 = int(L.kdim[0])
    A11 = np.zeros((L.nlev0, k0, k0))
    V21 = np.zeros(L.nv21)
    A22 = np.zeros((L.q2, L.q2))
    rhs = np.zeros(L.q)
    _k(b).accumulate_re(w, zw, b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff, A11, V21, A22, rhs)
    return {"A11": A11, "V21": V21, "A22": A22, "rhs": rhs}


def _x_sums(b: PartBlock, w: np.ndarray, zw: np.ndarray, zl: np.ndarray) -> dict:
    """U'WX, X'WX and X'W zw."""
    L = b.lay
    p = b.X.shape[1]
    UtWX = np.zeros((L.q, p))
    XtWX = np.zeros((p, p))
    xrhs = np.zeros(p)
    _k(b).accumulate_x(w, zw, b.X, b.codes, zl, L.kcol, L.kdim, L.uoff, UtWX, XtWX, xrhs)
    return {"UtWX": UtWX, "XtWX": XtWX, "xrhs": xrhs}


def _ut(b: PartBlock, v: np.ndarray, zl: np.ndarray) -> np.ndarray:
    L = b.lay
    out = np.zeros(L.q)
    kgen.ut_times(v, b.codes, zl, L.kcol, L.kdim, L.uoff, out)
    return out


# ----------------------------------------------------------------------------- general likelihood


def _aux(b: PartBlock, coefs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-row linear predictors of the family parameters: design @ coefficients."""
    out = {}
    for name, c in coefs.items():
        X = b.aux_X.get(name)
        out[name] = X @ c if X is not None else np.full(b.n, float(c[0]))
    return out


def _aux_t(b: PartBlock, name: str, v: np.ndarray) -> np.ndarray:
    """design' v of one family parameter."""
    X = b.aux_X.get(name)
    return X.T @ v if X is not None else np.array([float(np.sum(v))])


def _derivs(b: PartBlock, eta: np.ndarray, pl: dict, order: int):
    with np.errstate(all="ignore"):
        return b.family.derivs(b.y, b.wt, eta, _aux(b, pl["aux"]), order=order)


def start_pass(b: PartBlock, pl: dict) -> dict:
    """X'X and X'z, z = the family's rough eta minus the offset (the least-squares
    start), and the response's count, sum and sum of squares (its moments seed the
    family parameters' starts)."""
    if b.n == 0:
        return {}
    z = np.asarray(b.family.start_eta(b.y), dtype=float) - b.offset
    return {"XtX": b.X.T @ b.X, "Xtz": b.X.T @ z, "n": float(b.n), "zsum": float(np.sum(z)),
            "ysum": float(np.sum(b.y)), "y2sum": float(np.sum(b.y * b.y))}


def fixed_pass(b: PartBlock, pl: dict) -> dict:
    """The model without random effects at (beta, aux): sum l, X'e and, per free
    family parameter, its design' dl/da (``ga_<name>``)."""
    if b.n == 0:
        return {}
    eta = b.X @ pl["beta"] + b.offset
    d = _derivs(b, eta, pl, 2)
    out = {"l": float(np.sum(d.l)), "ge": b.X.T @ d.e}
    for name in pl["free"]:
        out["ga_" + name] = _aux_t(b, name, d.aux[name][0])
    return out


def newton_pass(b: PartBlock, pl: dict) -> dict:
    """At (Lambda, beta, u, aux): sum l, U'e (e = dl/deta) and the blocks of U'DU with
    D = -d2l/deta2 (``curv``: max(D, 0), the fallback curvature): everything one
    Newton step on u needs, fused with the evaluation at the trial point."""
    if b.n == 0:
        return {}
    zl, _base, eta = _eta(b, pl)
    d = _derivs(b, eta, pl, 1)
    D = -d.ee
    out = {"l": float(np.sum(d.l)), "Ute": _ut(b, d.e, zl)}
    if pl.get("curv"):
        D = np.maximum(D, 0.0)
    out.update(_re_sums(b, D, np.zeros(b.n), zl))
    return out


def _grad_terms(b: PartBlock, pl: dict):
    """(zl, d, lev, v) at the payload's point, kept between the two gradient passes."""
    tok = pl["token"]
    c = b.cache.get("ggrad")
    if c is not None and c[0] == tok:
        return c[1]
    zl, _base, eta = _eta(b, pl)
    d = _derivs(b, eta, pl, 2)
    L = b.lay
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    lev = np.empty(b.n)
    scratch = np.zeros(L.q)
    _k(b).leverage_pass(np.ones(b.n), b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff, Ainv11, Ainv21,
                        Ainv22, lev, scratch)
    v = -d.eee * lev
    val = (zl, d, lev, v)
    b.cache["ggrad"] = (tok, val)
    return val


def lev_pass(b: PartBlock, pl: dict) -> dict:
    """U'v with v_i = -d3l/deta3 * lev_i, lev_i = U_i H^{-1} U_i' (H^{-1}'s selected inverse)."""
    if b.n == 0:
        return {}
    zl, _d, _lev, v = _grad_terms(b, pl)
    return {"Utv": _ut(b, v, zl)}


def grad_pass(b: PartBlock, pl: dict) -> dict:
    """The rows' parts of d dev / d(theta's Lambda entries, beta, aux) given xi = H^{-1} U'v:
    g_i = -2 e_i + v_i - D_i (U xi)_i (envelope theorem, log-determinant, implicit u*)."""
    if b.n == 0:
        return {}
    zl, d, lev, v = _grad_terms(b, pl)
    L = b.lay
    D = -d.ee
    gb = np.zeros(b.X.shape[1])
    gt = np.zeros(L.theta_term.shape[0])
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    xi = pl["xi"]
    _k(b).gradient_pass(d.e, D, D, v, b.X, b.z, b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff,
                        pl["u"], xi, np.zeros(b.n), Ainv11, Ainv21, Ainv22, L.theta_term, L.theta_a, L.theta_b,
                        gb, gt, True)
    out = {"gb": gb, "gt": gt}
    if pl["free"]:
        uxi = np.empty(b.n)
        kg.linear_predictor(np.zeros(b.n), b.codes, zl, L.kcol, L.kdim, L.uoff, xi, uxi)
        for name in pl["free"]:
            a, ea, eea = d.aux[name]
            out["ga_" + name] = _aux_t(b, name, -2.0 * a - lev * eea + uxi * ea)
    b.cache.pop("ggrad", None)
    return out
