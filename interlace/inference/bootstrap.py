"""Parametric bootstrap of a fitted model (lme4's bootMer), which never drops
a failed refit silently.

Each replicate simulates a response from the fitted model with new random
effects (bootMer's default ``use.u = FALSE``) with the family's simulate,
refits the model on it through the one ``refit`` path (lme4's refit.merMod:
the parsed model frame with the new response, warm-started at the fitted
parameters, nothing parsed twice), and records ``fn(refit)``.

Seeds: one ``numpy.random.SeedSequence(seed)`` is spawned into one child per
replicate, so replicate ``i`` sees the same random numbers whatever
``n_jobs`` is, and results are identical across process counts.

Failures (lme4 issue #231): a refit that raises is a *failed* replicate
(its row is NaN); a refit whose optimizer or PIRLS did not converge, or that
fails lme4's gradient check, is *non-converged* (its values are kept and
flagged). Both are counted on the returned :class:`BootResult`, their
messages kept, and a warning is issued.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from interlace.inference._params import level_labels
from interlace.threads import blas_single_thread


class BootstrapWarning(UserWarning):
    """Some bootstrap refits failed or did not converge."""


# ---------------------------------------------------------------------------- results
@dataclass
class BootResult:
    """Replicates of a parametric bootstrap (lme4's ``boot`` object from bootMer).

    Attributes
    ----------
    replicates: one row per replicate (NaN rows for failed refits).
    status: per replicate "ok", "nonconverged" or "failed".
    t0: the statistic on the original fit.
    n_failed, n_nonconverged: counts of the two kinds of trouble.
    failures: (replicate, message) for every failed or non-converged refit.
    seed, nsim, n_jobs, elapsed: how the bootstrap was run (elapsed in seconds).
    """

    replicates: pd.DataFrame
    status: pd.Series
    t0: pd.Series
    n_failed: int
    n_nonconverged: int
    failures: list[tuple[int, str]] = field(default_factory=list)
    seed: Any = None
    nsim: int = 0
    n_jobs: int = 1
    elapsed: float = 0.0

    @property
    def n_ok(self) -> int:
        return int((self.status == "ok").sum())

    def confint(self, level: float = 0.95, include_nonconverged: bool = True) -> pd.DataFrame:
        """Percentile intervals (boot.ci(type = "perc"), as lme4's confint(method = "boot")
        uses), from the finite replicates; failed refits never enter.
        ``include_nonconverged=False`` also leaves out the non-converged ones."""
        keep = self.status == "ok"
        if include_nonconverged:
            keep |= self.status == "nonconverged"
        reps = self.replicates[keep.to_numpy()]
        alpha = np.array([(1 - level) / 2, (1 + level) / 2])
        out = {c: percentile_interval(reps[c].to_numpy(dtype=float), alpha) for c in reps.columns}
        return pd.DataFrame.from_dict(out, orient="index", columns=level_labels(level))

    def __repr__(self) -> str:
        return (f"<BootResult nsim={self.nsim} ok={self.n_ok} nonconverged={self.n_nonconverged} "
                f"failed={self.n_failed} elapsed={self.elapsed:.2f}s>")


def percentile_interval(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The percentile interval of R's boot package (``norm.inter``): order
    statistics at (R + 1) * alpha, interpolated on the normal quantile scale
    between neighbours; non-finite replicates are dropped first."""
    t = np.sort(t[np.isfinite(t)])
    R = len(t)
    if R == 0:
        return np.full(len(alpha), np.nan)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(len(alpha))
    for i in range(len(alpha)):
        if k[i] == rk[i] and 0 < k[i] <= R:
            out[i] = t[k[i] - 1]
        elif k[i] <= 0:
            out[i] = t[0]
        elif k[i] >= R:
            out[i] = t[R - 1]
        else:
            q1 = stats.norm.ppf(alpha[i])
            q2 = stats.norm.ppf(k[i] / (R + 1))
            q3 = stats.norm.ppf((k[i] + 1) / (R + 1))
            tk, tk1 = t[k[i] - 1], t[k[i]]
            out[i] = tk + (q1 - q2) / (q3 - q2) * (tk1 - tk)
    return out


# ---------------------------------------------------------------------------- the refit
class _Refitter:
    """What a worker needs: the fitted result (data only: it pickles) and the statistic."""

    def __init__(self, result, fn, optimizer: str | None):
        self.result = result
        self.fn = fn
        self.optimizer = optimizer
        # the model frame, objective buffers and warm start, built once per process
        # (a forked worker inherits it unused and builds its own objective)
        try:
            self.refitter = result._fitter("refit").refitter(result, optimizer)
        except NotImplementedError:  # no rows in memory (Dask): each refit fails and is counted
            self.refitter = None
        self._draw = None

    def simulate(self, rng) -> np.ndarray:
        """One response with new random effects (bootMer's ``use.u = FALSE``), by the family's simulate."""
        base = next((c for c in type(self.result).__mro__ if c.__name__ == "GLMMResult"), None)
        if base is None or type(self.result).simulate is not base.simulate:  # a result class with its own simulate
            return np.asarray(self.result.simulate(nsim=1, seed=rng, re="unconditional"), dtype=float).reshape(-1)
        if self._draw is None:  # the fixed part, Lambda and family parameters, prepared once
            from interlace.results.simulate import simulator

            self._draw = simulator(self.result, "unconditional")
        return np.asarray(self._draw(1, rng), dtype=float).reshape(-1)

    def run(self, i: int, seed_seq) -> tuple[int, np.ndarray | None, str, str]:
        """Replicate i: (i, values or None, status, message)."""
        rng = np.random.default_rng(seed_seq)
        try:
            y = self.simulate(rng)
            values, converged, msg = self.refit(y)
        except Exception as exc:  # counted and reported, never dropped silently
            return i, None, "failed", f"{type(exc).__name__}: {exc}"
        return i, values, "ok" if converged else "nonconverged", msg

    def refit(self, y: np.ndarray):
        """(statistic, converged, messages) of the model refitted to ``y`` (lme4's refit)."""
        if self.refitter is None:
            res = self.result._fitter("refit").refit(self.result, y, optimizer=self.optimizer)
            values, converged, messages = (self.fn(res) if self.fn is not None else _default_stat(res),
                                           bool(res.converged), res.optinfo.get("messages", []))
        elif self.fn is None:
            # the default statistic (beta, theta) needs no GLMMResult: only the numbers
            beta, theta, converged, messages = self.refitter.estimates(y)
            values = np.concatenate([beta, theta])
        else:
            res = self.refitter.fit(y)
            values, converged, messages = self.fn(res), bool(res.converged), res.optinfo.get("messages", [])
        msgs = [m for m in messages if "singular" not in m]
        return _as_values(values), bool(converged), "; ".join(msgs)


def _default_stat(res) -> np.ndarray:
    return np.concatenate([res.fe_params.to_numpy(dtype=float), res.theta.to_numpy(dtype=float)])


def _as_values(v) -> np.ndarray:
    if isinstance(v, pd.Series):
        return v.to_numpy(dtype=float)
    return np.atleast_1d(np.asarray(v, dtype=float)).ravel()


# ---------------------------------------------------------------------------- workers
_WORKER: _Refitter | None = None


def _init_worker(refitter: _Refitter) -> None:
    global _WORKER
    _WORKER = refitter


def _run_chunk(items: list[tuple[int, Any]]) -> list[tuple[int, np.ndarray | None, str, str]]:

    with blas_single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [_WORKER.run(i, ss) for i, ss in items]


class _Progress:
    """The bootstrap's progress bar (tqdm.auto: terminal or Jupyter; see inference/progress.py)."""

    def __init__(self, total: int, enabled: bool | None):
        from interlace.inference.progress import progress_bar

        self.bar = progress_bar(total, "bootstrap", enabled, unit="refit")

    def update(self, k: int) -> None:
        self.bar.update(k)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- entry point
def bootstrap(result, nsim: int, fn: Callable | None = None, seed=None, n_jobs: int = 1,
              progress: bool | None = None, optimizer: str | None = None) -> BootResult:
    """Parametric bootstrap of a fitted model (lme4's ``bootMer``).

    Parameters
    ----------
    nsim: number of replicates.
    fn: statistic of a refitted GLMMResult returning a number, array or
        labelled Series; default: the fixed effects and theta.
    seed: anything ``numpy.random.SeedSequence`` accepts; the same seed gives
        the same replicates whatever ``n_jobs`` is.
    n_jobs: worker processes (``-1``: one per CPU); replicates are split in
        contiguous chunks.
    progress: progress bar (tqdm.auto); default when stderr is a terminal or in Jupyter.
    optimizer: optimizer of the refits (default: the fit's).

    Returns a :class:`BootResult`; failed and non-converged refits are
    counted there and warned about.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> b = m.bootstrap(20, seed=1)
    >>> b.replicates.shape
    (20, 5)
    """
    nsim = int(nsim)
    if nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim}")
    if n_jobs is None or n_jobs == 0:
        n_jobs = 1
    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    n_jobs = int(min(n_jobs, nsim))
    t_start = time.perf_counter()
    refitter = _Refitter(result, fn, optimizer)
    # the statistic on the original fit names the columns
    t0_raw = fn(result) if fn is not None else None
    if fn is None:
        t0 = pd.Series(_default_stat(result), index=list(result.fe_params.index) + list(result.theta.index))
    elif isinstance(t0_raw, pd.Series):
        t0 = t0_raw.astype(float)
    else:
        vals = _as_values(t0_raw)
        t0 = pd.Series(vals, index=[f"t{j + 1}" for j in range(len(vals))])
    children = np.random.SeedSequence(seed).spawn(nsim)
    items = list(enumerate(children))
    bar = _Progress(nsim, progress)
    out: list[tuple[int, np.ndarray | None, str, str]] = []
    try:
        if n_jobs == 1:
            _init_worker(refitter)
            step = max(1, nsim // 100)
            for s in range(0, nsim, step):
                out += _run_chunk(items[s:s + step])
                bar.update(len(items[s:s + step]))
        else:
            import multiprocessing as mp

            # fork shares the parsed model and the statistic (even a lambda) without pickling
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            nchunks = min(nsim, n_jobs * 8)
            bounds = np.linspace(0, nsim, nchunks + 1).astype(int)
            chunks = [items[bounds[c]:bounds[c + 1]] for c in range(nchunks) if bounds[c + 1] > bounds[c]]
            with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker,
                                     initargs=(refitter,)) as ex:
                for res in ex.map(_run_chunk, chunks):
                    out += res
                    bar.update(len(res))
    finally:
        bar.close()
    out.sort(key=lambda r: r[0])
    ncol = len(t0)
    mat = np.full((nsim, ncol), np.nan)
    status = []
    failures: list[tuple[int, str]] = []
    for i, vals, st, msg in out:
        if vals is not None:
            if len(vals) != ncol:
                st, msg = "failed", f"statistic returned {len(vals)} values, expected {ncol}"
            else:
                mat[i] = vals
        status.append(st)
        if st != "ok":
            failures.append((i, msg or st))
    status_s = pd.Series(status, name="status")
    n_failed = int((status_s == "failed").sum())
    n_nonconv = int((status_s == "nonconverged").sum())
    if n_failed or n_nonconv:
        first = failures[0][1] if failures else ""
        warnings.warn(f"bootstrap: {n_failed} of {nsim} refits failed and {n_nonconv} did not converge "
                      f"(see .failures; first: {first})", BootstrapWarning, stacklevel=3)
    return BootResult(replicates=pd.DataFrame(mat, columns=list(t0.index)), status=status_s, t0=t0,
                      n_failed=n_failed, n_nonconverged=n_nonconv, failures=failures, seed=seed, nsim=nsim,
                      n_jobs=n_jobs, elapsed=time.perf_counter() - t_start)
