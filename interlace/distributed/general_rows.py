"""Worker side of the general-likelihood engine (glmmTMB's NB2) on Dask.

The row passes of :class:`interlace.general.objective.GeneralObjective`, one
function per kind of round, each run on a persisted ``PartBlock`` with a
small payload from the driver and returning sums that ``sum_parts`` adds:

- ``start_round``  X'X and X'z of the least-squares start (z = start_eta(y) - offset)
- ``fixed_round``  the model without random effects: sum l, X'e, sum dl/da
- ``newton_round`` at (Lambda, beta, u, aux): sum l, U'e and U'DU (D = -d2l/deta2),
                   i.e. everything one Newton step on u needs, fused with the
                   trial-point evaluation so an accepted step costs one round
- ``lev_round``    leverages lev_i = U_i H^{-1} U_i' (selected inverse of H) and
                   U'v with v_i = -d3l/deta3 lev_i
- ``grad_round``   given xi = H^{-1} U'v: the exact gradient pieces in theta,
                   beta (kernels.gradient.gradient_pass with w = h = D) and the
                   family parameters

The family parameters are intercept-only on Dask (no dispformula /
ziformula), so the payload carries one value per aux block.

Example
-------
>>> from interlace.distributed.general_rows import aux_rows
>>> aux_rows(3, {"disp": 0.5})["disp"].tolist()
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

import numpy as np

from interlace.distributed import blocks as B
from interlace.kernels import general as kgen
from interlace.kernels import glm as kg
from interlace.kernels import gradient as kgr


class _NoResponse:
    """The general engine keeps no GLM working arrays; the saturated constant is 0."""

    sat_const = 0.0


def finalize_general(block: B.PartBlock, lay: B.RowLayout, pair_keys: list[np.ndarray], keep: list[int] | None,
                     n0: int) -> B.PartBlock:
    """``blocks.finalize`` without the GLM response module: index each row's
    (level_j, level_0) pair in the global pattern and drop aliased X columns."""
    m = block.codes.shape[0]
    pairidx = np.zeros((m, block.n), dtype=np.int64)
    for j in range(1, m):
        pairidx[j] = np.searchsorted(pair_keys[j], block.codes[j] * n0 + block.codes[0])
    X = block.X if keep is None else np.ascontiguousarray(block.X[:, keep])
    out = B.PartBlock(y=block.y, wt=block.wt, offset=block.offset, X=X, codes=block.codes, z=block.z,
                      family=block.family, pairidx=pairidx, lay=lay)
    out.resp = _NoResponse()
    return out


def aux_rows(n: int, aux: dict[str, float]) -> dict[str, np.ndarray]:
    """Per-row aux linear predictors of intercept-only family parameters."""
    return {k: np.full(n, float(v)) for k, v in aux.items()}


def _derivs(b: B.PartBlock, eta: np.ndarray, pl: dict, order: int):
    with np.errstate(all="ignore"):
        return b.family.derivs(b.y, b.wt, eta, aux_rows(b.n, pl["aux"]), order=order)


def _ut(b: B.PartBlock, v: np.ndarray, zl: np.ndarray) -> np.ndarray:
    L = b.lay
    out = np.zeros(L.q)
    kgen.ut_times(v, b.codes, zl, L.kcol, L.kdim, L.uoff, out)
    return out


# ----------------------------------------------------------------------------- start values


def start_round(b: B.PartBlock, pl: dict) -> dict:
    """X'X and X'z, z = the family's rough eta minus the offset (the least-squares
    start), and the response's count, sum and sum of squares (its moments seed the
    family parameters' starts)."""
    if b.n == 0:
        return {}
    z = np.asarray(b.family.start_eta(b.y), dtype=float) - b.offset
    return {"XtX": b.X.T @ b.X, "Xtz": b.X.T @ z, "n": float(b.n), "zsum": float(np.sum(z)),
            "ysum": float(np.sum(b.y)), "y2sum": float(np.sum(b.y * b.y))}


def fixed_round(b: B.PartBlock, pl: dict) -> dict:
    """The model without random effects at (beta, aux): sum l, X'e and sum dl/da per free block."""
    if b.n == 0:
        return {}
    eta = b.X @ pl["beta"] + b.offset
    d = _derivs(b, eta, pl, 2)
    out = {"l": float(np.sum(d.l)), "ge": b.X.T @ d.e}
    for name in pl["free"]:
        out["ga_" + name] = float(np.sum(d.aux[name][0]))
    return out


# ----------------------------------------------------------------------------- Newton on u


def newton_round(b: B.PartBlock, pl: dict) -> dict:
    """At (Lambda, beta, u, aux): sum l, U'e and the sums of U'DU with D =
    -d2l/deta2 (``curv``: max(D, 0), the fallback curvature); ``nneg`` counts D < 0."""
    if b.n == 0:
        return {}
    zl, _base, eta = B._eta(b, pl)
    d = _derivs(b, eta, pl, 1)
    D = -d.ee
    out = {"l": float(np.sum(d.l)), "Ute": _ut(b, d.e, zl), "nneg": float(np.sum(D < 0))}
    if pl.get("curv"):
        D = np.maximum(D, 0.0)
    out.update(B._re_sums(b, D, np.zeros(b.n), zl))
    return out


# ----------------------------------------------------------------------------- exact gradient


def _grad_terms(b: B.PartBlock, pl: dict):
    """(zl, d, lev, v) at the payload's point, cached between the two gradient rounds."""
    tok = pl["token"]
    c = b.cache.get("ggrad")
    if c is not None and c[0] == tok:
        return c[1]
    zl, _base, eta = B._eta(b, pl)
    d = _derivs(b, eta, pl, 2)
    L = b.lay
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    lev = np.empty(b.n)
    scratch = np.zeros(L.q)
    kgr.leverage_pass(np.ones(b.n), b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff, Ainv11, Ainv21,
                      Ainv22, lev, scratch)
    v = -d.eee * lev
    val = (zl, d, lev, v)
    b.cache["ggrad"] = (tok, val)
    return val


def lev_round(b: B.PartBlock, pl: dict) -> dict:
    """U'v with v_i = -d3l/deta3 * U_i H^{-1} U_i'."""
    if b.n == 0:
        return {}
    zl, _d, _lev, v = _grad_terms(b, pl)
    return {"Utv": _ut(b, v, zl)}


def grad_round(b: B.PartBlock, pl: dict) -> dict:
    """The rows' parts of d dev / d(theta, beta, aux) given xi = H^{-1} U'v
    (GeneralObjective.gradient: g_i = -2 e_i + v_i - D_i (U xi)_i)."""
    if b.n == 0:
        return {}
    zl, d, lev, v = _grad_terms(b, pl)
    L = b.lay
    D = -d.ee
    gb = np.zeros(b.X.shape[1])
    gt = np.zeros(L.theta_term.shape[0])
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    xi = pl["xi"]
    kgr.gradient_pass(d.e, D, D, v, b.X, b.z, b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff,
                      pl["u"], xi, np.zeros(b.n), Ainv11, Ainv21, Ainv22, L.theta_term, L.theta_a, L.theta_b,
                      gb, gt, True)
    out = {"gb": gb, "gt": gt}
    if pl["free"]:
        uxi = np.empty(b.n)
        kg.linear_predictor(np.zeros(b.n), b.codes, zl, L.kcol, L.kdim, L.uoff, xi, uxi)
        for name in pl["free"]:
            a, ea, eea = d.aux[name]
            out["ga_" + name] = float(np.sum(-2.0 * a - lev * eea + uxi * ea))
    b.cache.pop("ggrad", None)
    return out
