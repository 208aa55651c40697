"""glmer on a Dask DataFrame: the pipeline of api.glmer with the rows on the cluster.

1. scan      one pass: missing values, the distinct levels of every grouping
             term and factor column, the first rows (layout.py)
2. layout    on the driver: the FrameSpec from a representative sample with
             the global levels, so every partition is coded alike
3. persist   each partition's arrays built once and kept on its worker; the
             statistics the driver checks (X'X, response range, the
             (level_j, level_0) pairs of the cross blocks) reduced once
4. optimize  optimize_glmm on DistributedLaplaceObjective: each row pass is
             one map/reduce round (rounds.py)
5. result    the GLMMResult; fitted values and predict are lazy Dask Series

Example
-------
>>> # from distributed import Client; client = Client()   # or Client("tcp://scheduler:8786")
>>> # m = interlace.glmer("y ~ x + (1 | g)", ddf, family="binomial")
"""

from __future__ import annotations

import copy
import operator
import warnings
from typing import Any

import numpy as np

from interlace.distributed import blocks as B
from interlace.distributed import layout as L
from interlace.distributed.frames import native_dask
from interlace.distributed.general import fit_general_dask, supports_general
from interlace.distributed.objective import DistributedLaplaceObjective, DistributedReStructure
from interlace.distributed.result import build_dask_result, meta_model_frame
from interlace.distributed.rounds import Rounds
from interlace.engines import select_engine
from interlace.errors import emit_warnings
from interlace.families import get_family
from interlace.objective.rows import row_layout
from interlace.optimize import optimize_glmm
from interlace.validation import guard_result, validate_fit_args


def _general_family(fam: Any, dispformula: Any = None, ziformula: Any = None) -> Any:
    """The family the general engine fits for ``fam`` on Dask (a likelihood family
    itself; an exponential family with a dispersion: its maximum-likelihood version;
    with a ziformula its zero-inflated version, as in memory), or None when the
    Laplace engine fits it."""
    if dispformula is not None or ziformula is not None:
        from interlace.engine_general import as_likelihood_family

        return as_likelihood_family(fam, zero_inflated=ziformula is not None)
    if supports_general(fam):
        return fam
    if select_engine(fam) == "general":
        hook = getattr(fam, "dispersion_family", None)
        lf = hook() if callable(hook) else None
        return lf if lf is not None and supports_general(lf) else None
    return None


def _unsupported(fam: Any, nAGQ: int, general: bool) -> str | None:
    if general:
        # the general-likelihood engine's row passes (distributed/general.py)
        return "nAGQ > 1" if int(nAGQ) > 1 else None
    if getattr(fam, "fit_engine", None) is not None:
        return f"family {getattr(fam, 'name', fam)!r} (it has its own engine)"
    kind = select_engine(fam)  # the family's own engine, not its name
    if kind == "lmm":
        return "the Gaussian identity model (lmer)"
    if kind == "general":
        return f"the {getattr(fam, 'name', fam)} family (no likelihood family for its dispersion)"
    if int(nAGQ) > 1:
        return "nAGQ > 1"
    return None


def glmer_dask(formula: str, data: Any, family: Any, groups: Any = None, random: Any = None, weights: Any = None,
               optimizer: str = "lbfgsb", theta0: Any = None, nAGQ: int = 1, offset: Any = None,
               dispformula: Any = None, ziformula: Any = None, missing: str = "drop", client: Any = None):
    """Fit ``formula`` on a Dask DataFrame with the default (or given) ``distributed.Client``.

    The same model as ``interlace.glmer`` on the same rows in memory (Laplace
    and nAGQ = 0 for the exponential families without a dispersion; the
    general-likelihood engine for every likelihood family and for the
    exponential families with a dispersion, family parameters intercept-only).
    The rows are read twice from the source (once to find the layout, once to
    build each partition's arrays), then never leave the workers.
    """
    fam = get_family(family)
    lf = _general_family(fam, dispformula, ziformula)
    if lf is not None:
        fam = lf  # the general engine fits the family's likelihood version (gamma: shape by ML)
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a string, got {type(optimizer).__name__}")
    optimizer = optimizer.lower()
    why = _unsupported(fam, nAGQ, lf is not None)
    if why is not None:
        raise NotImplementedError(f"fitting on a Dask frame does not support {why} yet; fit in memory")
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    if client is None:
        from distributed import get_client

        try:
            client = get_client()
        except ValueError as exc:
            raise RuntimeError("fitting on a Dask frame needs a distributed.Client: create one first "
                               "(Client() for a local cluster, Client('tcp://scheduler:8786') for an "
                               "existing one)") from exc
    ddf = native_dask(data)
    cols = L.model_columns(formula, [str(c) for c in ddf.columns], groups, random, weights, offset,
                           dispformula, ziformula)
    for block, bars in cols.side_bars.items():
        arg = "ziformula" if block == "zi" else "dispformula"
        raise NotImplementedError(f"fitting on a Dask frame does not support random effects in {arg} yet "
                                  f"({', '.join(b.text() for b in bars)}); fit in memory")
    meta = ddf._meta
    pure = set(cols.pure_groups)
    cols.factor_columns = [c for c in cols.used if c not in pure and L.is_factor_dtype(meta[c].dtype)]
    train = ddf[cols.used]
    nround = 0

    # 1. the raw used columns, once, kept on the workers until the blocks are built
    raw = client.compute(train.to_delayed(), optimize_graph=True)
    P = len(raw)
    # shared arguments go positionally: client.map turns large keyword
    # arguments into tasks keyed by the keyword's name, which collide
    scans = client.map(L.scan_partition, raw, [cols] * P, pure=False)
    merged = client.submit(L.merge_scans, scans, cols, pure=False).result()
    del scans
    nround += 1
    if missing == "raise" and merged["n_na"]:
        raise ValueError(f"{merged['n_na']} row(s) have missing values in: {', '.join(merged['na_cols'])} "
                         "(missing='raise')")
    # 2. the layout
    layout = L.build_layout(merged, cols, meta, formula, fam, groups, random, offset)
    del merged
    if layout.unify:
        # fitted values re-read the training rows: recode them by value as the fit did
        train = train.map_partitions(L.unify_levels, layout.unify, meta=L.unify_levels(train._meta, layout.unify))
    # 3. each partition's arrays, and the statistics the driver checks
    mat = client.map(B.materialize, raw, [layout] * P, [fam] * P, pure=False)
    blocks = client.map(operator.itemgetter(0), mat, pure=False)
    stats = client.map(operator.itemgetter(1), mat, pure=False)
    st = client.submit(B.merge_stats, stats, pure=False).result()
    del raw, mat, stats
    nround += 1
    messages = list(layout.messages)
    for msg in st["messages"]:
        warnings.warn(msg, UserWarning, stacklevel=3)
        messages.append(msg)
    if st["n"] > 1 and st["ymin"] == st["ymax"]:
        raise ValueError(f"response {cols.response!r} is constant ({st['ymin']!r} in every row); nothing to model")
    drop = L.aliased_from_gram(st["XtX"])
    keep = [j for j in range(len(layout.fe_names_all)) if j not in set(drop)]
    fe_names = [layout.fe_names_all[j] for j in keep]
    dropped = [layout.fe_names_all[j] for j in drop]
    if drop:
        k = len(drop)
        msg = (f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''} / "
               f"coefficient{'s' if k > 1 else ''}: {', '.join(dropped)}")
        warnings.warn(msg, UserWarning, stacklevel=3)
        messages.append(msg)
    smsg = L.scale_message_from_sums(st["n"], st["colsum"][keep], st["XtX"][np.ix_(keep, keep)],
                                     st["binary"][keep])
    if smsg:
        warnings.warn(smsg, UserWarning, stacklevel=3)
        messages.append(smsg)
    spec = copy.copy(layout.spec)
    spec.keep_columns = keep
    spec.fe_names = fe_names
    re = DistributedReStructure(layout.terms, st["pairs"], st["n"])
    rounds = Rounds(client, blocks)
    rounds.count = nround
    general = lf is not None
    sat = rounds.replace_blocks(B.finalize, row_layout(re), st["pairs"], keep if drop else None, int(re.nlev[0]),
                                not general)
    del blocks, st
    ntheta = re.ntheta
    validate_fit_args(optimizer=optimizer, theta0_len_expected=ntheta, theta0=theta0, nAGQ=nAGQ,
                      terms=layout.terms, dispformula=dispformula)
    if theta0 is not None:
        theta0 = np.asarray(theta0, dtype=float).reshape(-1)
    if general:
        # 4-5. the general-likelihood engine (NB2): x = (theta, beta, log theta_NB)
        mf = meta_model_frame(layout, spec, fe_names, dropped, messages)
        info = {"npartitions": int(train.npartitions), "nAGQ": 1}
        res = fit_general_dask(mf, fam, re, rounds, optimizer=optimizer, theta0=theta0, formula=formula,
                               messages=messages, train=train, used=cols.used, extra_info=info)
        guard_result(res)
        emit_warnings(res, stacklevel=4)
        return res
    # 4. optimize
    obj = DistributedLaplaceObjective(re, rounds, fam, len(fe_names), float(np.sum(sat)))
    opt = optimize_glmm(obj, optimizer, theta0, int(nAGQ))
    # 5. result
    mf = meta_model_frame(layout, spec, fe_names, dropped, messages)
    info = {"dask_rounds": rounds.count, "dask_rounds_by_kind": dict(rounds.by_kind),
            "npartitions": int(train.npartitions), "nAGQ": int(nAGQ)}
    res = build_dask_result(mf, fam, obj, opt, formula=formula, optimizer=optimizer, messages=messages,
                            train=train, used=cols.used, extra_info=info)
    res.optinfo["dask_rounds"] = rounds.count
    guard_result(res)
    emit_warnings(res, stacklevel=4)
    return res
