"""Worker side: one partition's numeric arrays and the row passes over them.

A partition is materialized once (``materialize``) into a ``PartBlock`` -- y,
prior weights, offset, X, the level codes and covariates of every term -- and
stays in the worker's memory. Each round of the fit then calls one of the
``*_round`` functions on every block with a small payload from the driver
(Lambda, beta, u, blocks of A^{-1}); they run the engine's numba kernels on
the block's rows and return sums, which ``sum_parts`` adds. The functions are
stateless in the payload (eta is recomputed from it), so a retried task gives
the same answer.

Example
-------
>>> sum_parts([{"dev": 1.0, "rhs": np.ones(2)}, {"dev": 2.0, "rhs": np.ones(2)}])["dev"]
3.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from interlace.distributed.layout import normalize_strings, unify_levels
from interlace.kernels import gradient as kgr
from interlace.objective.rows import PartBlock, RowLayout, _eta, _re_sums, _x_sums, sum_parts

__all__ = ["PartBlock", "RowLayout", "sum_parts", "materialize", "finalize", "merge_stats"]


# ----------------------------------------------------------------------------- materialize


def kept_rows(pdf: pd.DataFrame, used: list[str]) -> pd.DataFrame:
    """The partition's used columns without rows that have a missing value (lme4's na.omit)."""
    from interlace.data import missing_mask

    sub = normalize_strings(pdf[used])
    mask, _ = missing_mask(sub)
    return sub.loc[~mask]


def materialize(pdf: pd.DataFrame, layout: Any, family: Any) -> tuple[PartBlock, dict]:
    """Build the partition's arrays with the global FrameSpec; return the block
    and the statistics the driver checks (X'X for aliasing, column sums for
    the scale check, response range, pair keys of the cross blocks)."""
    from interlace.formula.fixed import evaluate_expression
    from interlace.formula.response import cbind_args, evaluate_response
    from interlace.model_frame import _CONTEXT
    from interlace.validation import check_finite, check_response

    cols = layout.cols
    sub = unify_levels(kept_rows(pdf, cols.used).reset_index(drop=True), getattr(layout, "unify", {}))
    for c, dt in layout.response_dtypes.items():
        sub[c] = sub[c].astype(str).astype(dt) if dt is not None else sub[c]
    n = len(sub)
    p_all = len(layout.fe_names_all)
    m = len(layout.terms)
    K = sum(t.k for t in layout.terms)
    if n == 0:
        block = PartBlock(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, p_all)), np.zeros((m, 0), np.int64),
                          np.zeros((0, K)), family)
        stats = {"n": 0, "XtX": np.zeros((p_all, p_all)), "colsum": np.zeros(p_all),
                 "binary": np.ones(p_all, bool), "ymin": np.inf, "ymax": -np.inf,
                 "messages": [], "pairs": [np.zeros(0, np.int64) for _ in range(m)]}
        return block, stats
    resp = evaluate_response(cols.response, sub, _CONTEXT, family=family)
    prior = np.ones(n)
    if cols.weights_expr is not None:
        prior = evaluate_expression(cols.weights_expr, sub, _CONTEXT, "weights")
    check_finite(prior, "weights", nonnegative=True)
    wts = prior * resp.trials if resp.trials is not None else prior.copy()
    X, blocks, off = layout.spec.transform(sub)
    check_finite(off, "offset")
    bad = [nm for j, nm in enumerate(layout.fe_names_all) if not np.all(np.isfinite(X[:, j]))]
    if bad:
        raise ValueError(f"fixed-effects column(s) with non-finite values: {', '.join(bad)}")
    y = np.ascontiguousarray(resp.y, dtype=np.float64)
    # the family's range checks on this partition; "constant response" is a
    # property of the whole frame, checked on the driver from ymin/ymax
    const = y.size > 1 and np.ptp(y) == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        messages = check_response(family, y[:1] if const else y, wts, cols.response,
                                  failures=resp.failures if cbind_args(cols.response) is not None else None)
    codes = np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.int64) for c, _ in blocks]))
    z = np.ascontiguousarray(np.hstack([np.asarray(zz, dtype=np.float64) for _, zz in blocks]))
    if not np.all(np.isfinite(z)):
        raise ValueError("a random-effect term has non-finite covariates")
    n0 = len(layout.terms[0].levels)
    pairs = [np.zeros(0, np.int64)] + [np.unique(codes[j] * n0 + codes[0]) for j in range(1, m)]
    X = np.ascontiguousarray(X, dtype=np.float64)
    aux_X = {b: _side_design(getattr(layout.spec, f"{b}_spec"), sub) for b in getattr(layout, "side_names", {})}
    stats = {
        "n": n,
        "XtX": X.T @ X,
        "colsum": X.sum(axis=0),
        "binary": np.array([bool(np.all((X[:, j] == 0.0) | (X[:, j] == 1.0))) for j in range(X.shape[1])]),
        "ymin": float(y.min()),
        "ymax": float(y.max()),
        "messages": list(messages),
        "pairs": pairs,
    }
    block = PartBlock(y=y, wt=np.ascontiguousarray(wts, dtype=np.float64), offset=np.ascontiguousarray(off),
                      X=X, codes=codes, z=z, family=family, aux_X=aux_X)
    return block, stats


def _side_design(spec: Any, frame: pd.DataFrame) -> np.ndarray:
    """A dispformula / ziformula design on a partition's rows (the sample's spec)."""
    X = np.asarray(spec.get_model_matrix(frame), dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):  # an intercept-only spec gives one row
        X = np.broadcast_to(X, (len(frame), X.shape[1]))
    if not np.all(np.isfinite(X)):
        raise ValueError("a dispformula / ziformula column has non-finite values")
    return np.ascontiguousarray(X)


class _NoResponse:
    """The general engine keeps no GLM working arrays; the saturated constant is 0."""

    sat_const = 0.0


def finalize(block: PartBlock, lay: RowLayout, pair_keys: list[np.ndarray], keep: list[int] | None,
             n0: int, glm: bool = True) -> PartBlock:
    """Index each row's (level_j, level_0) pair in the global pattern, drop
    aliased X columns and attach the response module (its working arrays;
    ``glm=False``: none, the general engine's passes need none)."""
    from interlace.objective.response import GLMResponse

    m = block.codes.shape[0]
    pairidx = np.zeros((m, block.n), dtype=np.int64)
    for j in range(1, m):
        key = block.codes[j] * n0 + block.codes[0]
        pairidx[j] = np.searchsorted(pair_keys[j], key)
    X = block.X if keep is None else np.ascontiguousarray(block.X[:, keep])
    out = PartBlock(y=block.y, wt=block.wt, offset=block.offset, X=X, codes=block.codes, z=block.z,
                    family=block.family, pairidx=pairidx, lay=lay, aux_X=block.aux_X)
    out.resp = GLMResponse(out.y, out.wt, out.offset, out.family) if glm else _NoResponse()
    return out


def block_stat(block: PartBlock, what: str) -> Any:
    """Small per-block facts for the driver (row count, the saturated constant)."""
    if what == "n":
        return block.n
    if what == "sat":
        return float(block.resp.sat_const) if block.n else 0.0
    raise ValueError(what)


# ----------------------------------------------------------------------------- row passes


def _m2ll(b: PartBlock) -> float:
    return float(-2.0 * np.sum(b.family.loglik(b.y, b.resp.mu, b.wt)))


def pirls_round(b: PartBlock, pl: dict) -> dict:
    """The fused PIRLS pass at (Lambda, beta, u): working quantities, the
    deviance and the weighted cross-products of the next system.
    mode "u": zw = U u + r (u given beta); mode "joint": zw = eta - offset + r
    and the fixed-effects parts too (nAGQ = 0's joint PIRLS)."""
    if b.n == 0:
        return {}
    zl, base, eta = _eta(b, pl)
    resp = b.resp
    out = {"dev": resp.update(eta)}
    if pl.get("ll"):
        out["m2ll"] = _m2ll(b)
    if pl["mode"] == "joint":
        zw = (eta - b.offset) + resp.r
        out.update(_re_sums(b, resp.w, zw, zl))
        out.update(_x_sums(b, resp.w, zw, zl))
    else:
        out.update(_re_sums(b, resp.w, (eta - base) + resp.r, zl))
    return out


def deviance_round(b: PartBlock, pl: dict) -> dict:
    """Sum of deviance residuals at a trial point (step-halving)."""
    if b.n == 0:
        return {}
    _zl_, _base, eta = _eta(b, pl)
    return {"dev": b.resp.deviance(eta)}


def init_round(b: PartBlock, pl: dict) -> dict:
    """The family's starting mu: X'WX and X'W (link(mu0) - offset) for a first beta."""
    if b.n == 0:
        return {}
    fam = b.family
    mu0 = fam.initialize(b.y, b.wt)
    eta0 = np.asarray(fam.link(mu0), dtype=float)
    b.resp.update(eta0)
    w = b.resp.w
    Xw = b.X * w[:, None]
    return {"XtWX": Xw.T @ b.X, "xrhs": Xw.T @ (eta0 - b.offset)}


def _score_terms(b: PartBlock, pl: dict):
    """(zl, s, w, hh, v, Utv-part) at the payload's point, cached per gradient call."""
    tok = pl["token"]
    c = b.cache.get("grad")
    if c is not None and c[0] == tok:
        return c[1]
    zl, base, eta = _eta(b, pl)
    resp = b.resp
    resp.update(eta)
    s, h, wd = resp.loglik_terms()
    L = b.lay
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    v = np.empty(b.n)
    Utv = np.zeros(L.q)
    kgr.leverage_pass(wd, b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff, Ainv11, Ainv21, Ainv22, v, Utv)
    hh = resp.w.copy() if resp.canonical else h
    val = (zl, s, resp.w.copy(), hh, v, Utv)
    b.cache["grad"] = (tok, val)
    return val


def leverage_round(b: PartBlock, pl: dict) -> dict:
    """U'v with v_i = (dw_i/deta) U_i A^{-1} U_i'; with the observed
    information's cross-products where the gradient needs them (non-canonical
    links, and the joint system of nAGQ = 0)."""
    if b.n == 0:
        return {}
    zl, s, w, hh, v, Utv = _score_terms(b, pl)
    out = {"Utv": Utv}
    zero = np.zeros(b.n)
    if not pl["canonical"] or pl["joint"]:
        out.update(_re_sums(b, hh, zero, zl))
    if pl["joint"]:
        xs = _x_sums(b, hh, zero, zl)
        out["UtHX"], out["XtHX"] = xs["UtWX"], xs["XtWX"]
        out["Xtv"] = b.X.T @ v
    return out


def gradient_round(b: PartBlock, pl: dict) -> dict:
    """dD/dbeta and dD/dtheta pieces of the rows (kernels.gradient.gradient_pass)."""
    if b.n == 0:
        return {}
    zl, s, w, hh, v, _ = _score_terms(b, pl)
    L = b.lay
    p = b.X.shape[1]
    gb = np.zeros(p)
    gt = np.zeros(L.theta_term.shape[0])
    xb = pl.get("xb")
    xxi = b.X @ xb if xb is not None else np.zeros(b.n)
    Ainv11, Ainv21, Ainv22 = pl["ainv"]
    kgr.gradient_pass(s, w, hh, v, b.X, b.z, b.codes, zl, L.kcol, L.kdim, L.uoff, b.pairidx, L.poff,
                      pl["u"], pl["xi"], xxi, Ainv11, Ainv21, Ainv22, L.theta_term, L.theta_a, L.theta_b,
                      gb, gt, pl["with_beta"])
    b.cache.pop("grad", None)
    return {"gb": gb, "gt": gt}


# ----------------------------------------------------------------------------- post-fit


def fitted_partition(pdf: pd.DataFrame, result: Any, used: list[str], type: str) -> pd.Series:
    """Fitted values of one training partition (the rows the fit used)."""
    from interlace.results.predict import predict

    sub = kept_rows(pdf, used)
    if len(sub) == 0:
        return pd.Series(np.zeros(0), index=sub.index, name="fitted")
    vals = predict(result, sub, type=type)
    return pd.Series(np.asarray(vals, dtype=float), index=sub.index, name="fitted" if type == "response" else "eta")


def predict_partition(pdf: pd.DataFrame, result: Any, kwargs: dict) -> pd.Series:
    """``GLMMResult.predict`` on one partition of new data."""
    from interlace.results.predict import predict

    if len(pdf) == 0:
        return pd.Series(np.zeros(0), index=pdf.index, name="predicted")
    vals = predict(result, normalize_strings(pdf), **kwargs)
    return pd.Series(np.asarray(vals, dtype=float), index=pdf.index, name="predicted")


def merge_stats(stats: list[dict]) -> dict:
    """Combine the partitions' materialization statistics (runs on a worker)."""
    live = [s for s in stats if s["n"]]
    out = {
        "n": sum(s["n"] for s in stats),
        "XtX": sum(s["XtX"] for s in live),
        "colsum": sum(s["colsum"] for s in live),
        "binary": np.logical_and.reduce([s["binary"] for s in live]),
        "ymin": min(s["ymin"] for s in live),
        "ymax": max(s["ymax"] for s in live),
        "messages": list(dict.fromkeys(m for s in live for m in s["messages"])),
    }
    m = len(live[0]["pairs"])
    pairs = [np.zeros(0, np.int64)]
    for j in range(1, m):
        keys = np.unique(np.concatenate([s["pairs"][j] for s in live]))
        pairs.append(keys)
    out["pairs"] = pairs
    return out
