"""Likelihood profiles of a fitted GLMM (lme4's profile.merMod).

For each parameter (random-effect SD or correlation, the residual SD of an
LMM, or a fixed effect) the parameter is held at a sequence of values and the
deviance is re-minimized over all the others, warm-started from the previous
point. The profile is reported as lme4 reports it, the signed square root of
the deviance difference

    zeta(x) = sign(x - x_hat) * sqrt(D_profile(x) - D_min),

which is a straight line of slope 1/SE for a quadratic log-likelihood. A
confidence interval at level ``1 - alpha`` is where zeta crosses the normal
quantiles +-z_{1 - alpha/2}: we interpolate x as a spline in zeta (scipy) and
then polish that crossing with a bracketed root search on the exact profile,
so the reported limits do not carry the interpolation error of a coarse grid.

The deviance profiled for a GLMM is the Laplace deviance over (theta, beta)
(lme4's devfun with nAGQ = 1), or for an nAGQ > 1 fit the adaptive
Gauss-Hermite deviance of the same (theta, beta) (``AGQObjective``, as
lme4's profile of an AGQ fit); the SDs and correlations are the covariance
of the random effects written as D R D, theta = chol(D R D). For an LMM it is
the ML deviance in (theta, sigma, beta), evaluated in closed form from the
penalized least squares solution. For a fit of the general (glmmTMB-families)
engine it is that engine's Laplace deviance over (theta, beta, aux), the aux
coefficients being the dispersion / zero-inflation models on their link
scale (reported as ``disp.<coef>``, ``zi.<coef>``), with its exact gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import interpolate, optimize, stats

from interlace.inference._params import (
    ParamInfo,
    aux_layout,
    param_table,
    resolve_parm,
    sdcor_bounds,
    sdcor_to_theta,
    theta_to_sdcor,
)
from interlace.threads import blas_single_thread

_BIG = 1e10  # deviance returned where the model cannot be evaluated (non-PSD correlations, PIRLS failure)


class ProfileWarning(UserWarning):
    """A profile that is not monotone, found a lower deviance, or stopped at a bound."""


class DevianceModel:
    """The deviance of a fitted model as a function of the reported
    parameters x = (sd/cor..., [sigma], beta...), lme4's devfun2."""

    def __init__(self, result) -> None:
        engine = result.optinfo.get("engine")
        if engine not in ("laplace", "lmm", "agq", "general") or result.objective is None:
            raise NotImplementedError(
                f"profiling is implemented for the Laplace, AGQ, general (glmmTMB-families) and linear mixed "
                f"model engines; this fit used engine {engine!r}. Use method='Wald' or method='boot'.")
        if engine == "general" and result.optinfo.get("REML"):  # the objective here is the ML Laplace deviance
            raise NotImplementedError("profile intervals are not available for glmer(REML=True) fits (the "
                                      "profiled deviance would be the ML one); use method='Wald' or method='boot'")
        if getattr(result, "side_models", None):
            raise NotImplementedError(
                "profile intervals are not available yet for a model with random effects in ziformula / "
                "dispformula; use confint(style='glmmTMB') (Wald, every model's parameters) or method='boot'")
        if engine == "laplace" and result.nAGQ != 1:
            raise NotImplementedError("profiling needs a Laplace (nAGQ = 1) or AGQ (nAGQ > 1) fit, not nAGQ = 0; "
                                      "refit with nAGQ=1 or use method='boot'")

        self.result = result
        self.engine = engine
        self.lmm = engine == "lmm"
        self.general = engine == "general"
        if engine == "agq":
            # the AGQ deviance over (theta, beta) on top of the fit's Laplace objective
            # (which supplies PIRLS and the modes); same interface as LaplaceObjective
            from interlace.objective.agq import AGQObjective

            self.obj = AGQObjective(result.objective, result.nAGQ)
            self.re = result.objective.re
        else:
            self.obj = result.objective
            self.re = self.obj.re
        # every term's structure maps its parameters to and from the sd/cor scale
        # (Covariance.sdcor / par_from_sdcor), so structured terms profile as us terms do
        self.nt = self.re.ntheta
        self.p = len(result.fe_params)
        aux = aux_layout(result) if self.general else []
        self.table: list[ParamInfo] = param_table(self.re, list(result.fe_params.index), self.lmm, aux)
        self.lower, self.upper = sdcor_bounds(self.table)
        theta = result.theta.to_numpy(dtype=float)
        sigma = float(np.sqrt(result.scale)) if self.lmm else 1.0
        parts = [theta_to_sdcor(self.re, theta, sigma)]
        if self.lmm:
            parts.append([sigma])
        parts.append(result.fe_params.to_numpy(dtype=float))
        for b, _names in aux:
            parts.append(result.aux_params[b].to_numpy(dtype=float))
        self.x_hat = np.concatenate(parts)
        if self.general:
            # the engine's own x = (theta, beta, aux) at the fit's optimum, for restore()
            self._x_fit = np.concatenate([theta, self.x_hat[self.nt:]])
            self.exact_grad = True  # the general objective's gradient is exact for every family
        else:
            self.exact_grad = (not self.lmm) and self.obj.has_exact_gradient()
        self.nfev = 0

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.table]

    def split(self, x: np.ndarray):
        """(sdcor, sigma, beta, aux coefficients) of a reported-scale vector."""
        sdcor = x[: self.nt]
        sigma = float(x[self.nt]) if self.lmm else 1.0
        b0 = self.nt + (1 if self.lmm else 0)
        beta = x[b0: b0 + self.p]
        aux = x[b0 + self.p:]
        return sdcor, sigma, beta, aux

    # ------------------------------------------------------------------ deviance
    def deviance(self, x: np.ndarray) -> float:
        self.nfev += 1
        sdcor, sigma, beta, aux = self.split(np.asarray(x, float))
        if self.lmm and sigma <= 0:
            return _BIG
        theta, ok = sdcor_to_theta(self.re, sdcor, sigma)
        if not ok:
            return _BIG
        try:
            if self.lmm:
                return self._lmm_deviance(theta, sigma, beta)
            with np.errstate(all="ignore"):
                if self.general:
                    d = float(self.obj.deviance(np.concatenate([theta, beta, aux])))
                else:
                    d = float(self.obj.deviance(theta, beta))
        except Exception:  # PIRLS failure far from the optimum: a wall, not a crash
            return _BIG
        return d if np.isfinite(d) else _BIG

    def _lmm_deviance(self, theta, sigma, beta) -> float:
        """ML deviance at (theta, sigma, beta): the PLS problem is quadratic in
        (u, beta), so min_u of the penalized RSS at fixed beta is
        pwrss(theta) + |RX'(beta - beta_hat(theta))|^2."""
        obj = self.obj
        obj.deviance(theta)
        d = beta - obj.beta
        r2 = obj.pwrss + float(np.sum((obj.RX.T @ d) ** 2))
        n = obj.n
        return float(obj.last_logdet - obj.sum_log_w + n * np.log(2 * np.pi * sigma * sigma) + r2 / (sigma * sigma))

    def value_and_grad(self, x: np.ndarray, free: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and its gradient in the free coordinates. GLMMs with a
        canonical link (Laplace or AGQ) and every general-engine fit use the
        engine's exact gradient in (theta, beta[, aux]) and the chain rule
        through the (algebraic) sd/cor -> theta map; otherwise central
        differences."""
        x = np.asarray(x, float)
        if not self.exact_grad:
            f0 = self.deviance(x)
            g = np.empty(len(free))
            for j, i in enumerate(free):
                h = 1e-6 * max(1.0, abs(x[i]))
                xp, xm = x.copy(), x.copy()
                xp[i] = min(x[i] + h, self.upper[i])
                xm[i] = max(x[i] - h, self.lower[i])
                g[j] = (self.deviance(xp) - self.deviance(xm)) / (xp[i] - xm[i])
            return f0, g
        sdcor, _sigma, beta, aux = self.split(x)
        theta, ok = sdcor_to_theta(self.re, sdcor)
        f0 = self.deviance(x)
        if not ok or f0 >= _BIG:
            return f0, np.zeros(len(free))
        # state is at (theta, beta[, aux]) after deviance()
        if self.general:
            g_tb = self.obj.gradient(np.concatenate([theta, beta, aux]))
        else:
            g_tb = self.obj.gradient(theta, beta)
        if not np.all(np.isfinite(g_tb)):
            return _BIG, np.zeros(len(free))
        g_x = np.empty(len(x))
        g_x[self.nt:] = g_tb[self.nt:]
        J = self._jacobian(sdcor)
        g_x[: self.nt] = J.T @ g_tb[: self.nt]
        return f0, g_x[free]

    def _jacobian(self, sdcor: np.ndarray) -> np.ndarray:
        """d theta / d sdcor by central differences of a cheap algebraic map
        (identity for scalar terms)."""
        nt = self.nt
        if np.all(self.re.kdim == 1):
            return np.eye(nt)
        J = np.empty((nt, nt))
        for i in range(nt):
            h = 1e-7 * max(1.0, abs(sdcor[i]))
            sp, sm = sdcor.copy(), sdcor.copy()
            sp[i] += h
            sm[i] -= h
            J[:, i] = (sdcor_to_theta(self.re, sp)[0] - sdcor_to_theta(self.re, sm)[0]) / (2 * h)
        return J

    # ------------------------------------------------------------------ optimization
    def minimize(self, x0: np.ndarray, fixed: int | None = None) -> tuple[np.ndarray, float, bool]:
        """Minimize the deviance over all coordinates except `fixed`."""
        x0 = np.clip(np.asarray(x0, float), self.lower, self.upper)
        free = np.array([i for i in range(len(x0)) if i != fixed], dtype=int)
        if len(free) == 0:
            return x0, self.deviance(x0), True

        def fg(z):
            x = x0.copy()
            x[free] = z
            return self.value_and_grad(x, free)

        bounds = [(None if not np.isfinite(self.lower[i]) else self.lower[i],
                   None if not np.isfinite(self.upper[i]) else self.upper[i]) for i in free]
        res = optimize.minimize(fg, x0[free], jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-8, "maxls": 60})
        x = x0.copy()
        x[free] = res.x
        return x, float(self.deviance(x)), bool(res.success)

    def restore(self) -> None:
        """Leave the fitted objective's state at the fit's optimum again."""
        r = self.result
        theta = r.theta.to_numpy(dtype=float)
        if self.general:
            self.obj.deviance(self._x_fit)
        elif self.lmm:
            self.obj.deviance(theta)
        else:  # the fit's Laplace objective (also under an AGQ fit) back at its optimum
            r.objective.deviance(theta, r.fe_params.to_numpy(dtype=float))


@dataclass
class ParamProfile:
    """The profile of one parameter: its values, zeta, and the optima of the others."""

    name: str
    values: np.ndarray
    zeta: np.ndarray
    points: np.ndarray  # (npoints, nparams) full parameter vectors at each profile point
    deviance: np.ndarray
    at_lower_bound: bool = False
    at_upper_bound: bool = False


@dataclass
class ProfileResult:
    """lme4's thpr object: per-parameter profiles plus the base fit."""

    profiles: dict[str, ParamProfile]
    x_hat: pd.Series
    base_deviance: float
    warnings: list[str] = field(default_factory=list)
    _model: DevianceModel | None = None

    def to_frame(self) -> pd.DataFrame:
        """Long table like as.data.frame(profile(m)): .zeta, .par, .focal value and all parameters."""
        frames = []
        for name, pp in self.profiles.items():
            df = pd.DataFrame(pp.points, columns=list(self.x_hat.index))
            df.insert(0, ".zeta", pp.zeta)
            df.insert(1, ".par", name)
            df.insert(2, ".focal", pp.values)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def confint(self, level: float = 0.95, polish: bool = True) -> pd.DataFrame:
        """Profile confidence intervals from the splined zeta (lme4's confint.thpr),
        polished on the exact profile when ``polish``."""

        z = stats.norm.ppf(0.5 + level / 2.0)
        with blas_single_thread():
            return self._confint(z, level, polish)

    def _confint(self, z, level, polish):
        from interlace.inference._params import level_labels

        rows = {}
        try:
            for name, pp in self.profiles.items():
                rows[name] = [self._limit(pp, -z, polish), self._limit(pp, z, polish)]
        finally:
            if self._model is not None:
                self._model.restore()
        return pd.DataFrame.from_dict(rows, orient="index", columns=level_labels(level))

    def _limit(self, pp: ParamProfile, target: float, polish: bool) -> float:
        zeta, vals = pp.zeta, pp.values
        side = zeta < 0 if target < 0 else zeta > 0
        if target < 0:
            reach = np.any(zeta <= target)
        else:
            reach = np.any(zeta >= target)
        if not reach:
            # the profile stopped at a parameter bound before reaching the quantile:
            # the interval extends to the bound (e.g. an SD of 0), otherwise unknown
            at_bound = pp.at_lower_bound if target < 0 else pp.at_upper_bound
            if at_bound:
                return float(vals.min() if target < 0 else vals.max())
            return float("nan")
        # spline x(zeta) through the monotone part of the profile on this side
        idx = np.flatnonzero(side | (zeta == 0))
        order = np.argsort(zeta[idx])
        zs, xs = zeta[idx][order], vals[idx][order]
        keep = np.concatenate([[True], np.diff(zs) > 0])
        zs, xs = zs[keep], xs[keep]
        if len(zs) >= 3:
            guess = float(interpolate.CubicSpline(zs, xs)(target))
        else:
            guess = float(np.interp(target, zs, xs))
        if not polish or self._model is None:
            return guess
        return self._polish(pp, target, guess)

    def _polish(self, pp: ParamProfile, target: float, guess: float) -> float:
        """Root of zeta(x) = target between the grid points that bracket it."""
        m = self._model
        i = self.profiles_index[pp.name]
        zeta, vals, pts = pp.zeta, pp.values, pp.points
        if target < 0:
            cand = np.flatnonzero(zeta <= target)
            j_out = cand[np.argmax(vals[cand])]  # the crossing nearest the estimate
        else:
            cand = np.flatnonzero(zeta >= target)
            j_out = cand[np.argmin(vals[cand])]
        inner = np.flatnonzero((zeta > target) if target < 0 else (zeta < target))
        inner = inner[(vals[inner] > vals[j_out]) if target < 0 else (vals[inner] < vals[j_out])]
        if len(inner) == 0:
            return guess
        j_in = inner[np.argmin(np.abs(vals[inner] - vals[j_out]))]
        a, b = sorted((vals[j_in], vals[j_out]))
        start = pts[j_in]
        xhat = self.x_hat.iloc[i]

        def f(v):
            x0 = start.copy()
            x0[i] = v
            _, dev, _ = m.minimize(x0, fixed=i)
            return np.sign(v - xhat) * np.sqrt(max(dev - self.base_deviance, 0.0)) - target

        try:
            fa, fb = f(a), f(b)
            if np.sign(fa) == np.sign(fb):
                return guess
            return float(optimize.brentq(f, a, b, xtol=1e-10 * max(1.0, abs(guess)), rtol=1e-12))
        except Exception:
            return guess

    @property
    def profiles_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.x_hat.index)}


def _hessian_se(m: DevianceModel, x: np.ndarray) -> np.ndarray:
    """Approximate standard errors on the profiled scale (2 H^-1 of the
    deviance), used only to size the first profile step."""
    k = len(x)
    H = np.empty((k, k))
    free = np.arange(k)
    for i in range(k):
        h = 1e-4 * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] = max(x[i] - h, m.lower[i])
        gp = m.value_and_grad(xp, free)[1]
        gm = m.value_and_grad(xm, free)[1]
        H[:, i] = (gp - gm) / (xp[i] - xm[i])
    H = 0.5 * (H + H.T)
    try:
        V = 2.0 * np.linalg.inv(H)
        se = np.sqrt(np.where(np.diag(V) > 0, np.diag(V), np.nan))
    except np.linalg.LinAlgError:
        se = np.full(k, np.nan)
    fallback = 0.1 * np.maximum(np.abs(x), 0.1)
    return np.where(np.isfinite(se) & (se > 0), se, fallback)


def profile(result, which=None, level: float | None = None, alphamax: float = 0.01, maxpts: int = 100,
            delta_cutoff: float = 1 / 8, n_jobs: int = 1, progress: bool | None = None) -> ProfileResult:
    """Profile the deviance of a fitted model (lme4's ``profile.merMod``).

    ``which`` selects parameters as ``confint``'s ``parm`` does (None: all;
    "theta_": SDs/correlations; "beta_": fixed effects; lme4 or interlace
    names). Each profile runs in both directions until |zeta| exceeds the
    cutoff, ``sqrt(qchisq(1 - alphamax, nparams))`` as in lme4 (or the
    normal quantile of ``level`` plus a margin when ``level`` is given), or
    a bound of the parameter (SD 0, correlation +-1) is hit. Steps aim at
    increments of ``delta_cutoff * cutoff`` in zeta. ``n_jobs`` profiles the
    parameters in that many processes (``-1``: one per CPU; each works on its
    own copy of the objective, the results are identical to ``n_jobs=1``);
    ``progress`` shows a bar over the parameters (tqdm.auto; default when
    stderr is a terminal or in Jupyter).

    Example
    -------
    >>> import interlace
    >>> from interlace.inference.profile import profile
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> pr = profile(m, which=[".sig01"])
    >>> bool(pr.confint().iloc[0, 0] > 0)
    True
    """

    # lme4's profile of a REML fit profiles the ML deviance of the ML refit (devfun2 calls refitML)
    result = result.refit_ml()
    m = DevianceModel(result)
    with blas_single_thread():
        try:
            return _profile(m, which, level, alphamax, maxpts, delta_cutoff, n_jobs, progress)
        finally:
            m.restore()


def _profile(m: DevianceModel, which, level, alphamax, maxpts, delta_cutoff, n_jobs=1, progress=None) -> ProfileResult:
    msgs: list[str] = []
    sel = resolve_parm(which, m.table, list(m.result.theta.index))
    # the fit's optimum polished with the optimizer used along the profiles, so
    # that zeta is measured from a minimum the profiles cannot undercut
    x_hat, base, _ = m.minimize(m.x_hat.copy())
    if base > m.deviance(m.x_hat) + 1e-12:
        x_hat, base = m.x_hat.copy(), m.deviance(m.x_hat)
    if level is not None:
        cutoff = 1.1 * stats.norm.ppf(0.5 + level / 2.0) + 0.1
    else:
        cutoff = float(np.sqrt(stats.chi2.ppf(1 - alphamax, len(m.table))))
    dz = delta_cutoff * cutoff
    se = _hessian_se(m, x_hat)
    from interlace.inference.progress import progress_bar

    args = (x_hat, base, se, cutoff, dz, maxpts)
    profiles: dict[str, ParamProfile] = {}
    n_jobs = _n_jobs(n_jobs, len(sel))
    with progress_bar(len(sel), "profile", progress, unit="param") as bar:
        if n_jobs == 1:
            done = []
            for i in sel:
                done.append(_profile_one(m, i, *args))
                bar.update(1)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # fork: each worker gets its own copy of the objective (its state moves along a profile)
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            done = []
            with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_profile_worker,
                                     initargs=(m, args)) as ex:
                for res in ex.map(_profile_worker, sel):
                    done.append(res)
                    bar.update(1)
    for name, pp, pmsgs in done:
        profiles[name] = pp
        msgs += pmsgs
    for msg in msgs:
        warnings.warn(msg, ProfileWarning, stacklevel=3)
    return ProfileResult(profiles, pd.Series(x_hat, index=m.names), base, msgs, m)


def _n_jobs(n_jobs, n: int) -> int:
    import os

    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    return int(max(1, min(n_jobs, n)))


_PROFILE_WORKER: tuple | None = None


def _init_profile_worker(m: DevianceModel, args: tuple) -> None:
    global _PROFILE_WORKER
    _PROFILE_WORKER = (m, args)


def _profile_worker(i: int):

    m, args = _PROFILE_WORKER
    with blas_single_thread():
        return _profile_one(m, i, *args)


def _profile_one(m: DevianceModel, i: int, x_hat, base, se, cutoff, dz, maxpts):
    """The profile of parameter ``i`` in both directions: (name, ParamProfile, messages)."""
    msgs: list[str] = []
    name = m.table[i].name
    vals, zetas, pts, devs = [x_hat[i]], [0.0], [x_hat.copy()], [base]
    bounds_hit = {-1: False, 1: False}
    for s in (-1, 1):
        prev_x, prev_z = x_hat[i], 0.0
        start = x_hat.copy()
        step = 0.5 * dz * se[i]  # a half-size first step on the Wald slope
        for _ in range(maxpts):
            v = prev_x + s * step
            bound = m.lower[i] if s < 0 else m.upper[i]
            if (s < 0 and v <= bound) or (s > 0 and v >= bound):
                v = bound
            x0 = start.copy()
            x0[i] = v
            x, dev, _ok = m.minimize(x0, fixed=i)
            dd = dev - base
            if dd < -1e-6:
                msgs.append(f"profiling detected a lower deviance ({dev:.6f} < {base:.6f}) for {name}")
            z = s * np.sqrt(max(dd, 0.0))
            vals.append(v)
            zetas.append(z)
            pts.append(x)
            devs.append(dev)
            if v == bound:
                bounds_hit[s] = abs(z) < cutoff
                break
            if abs(z) >= cutoff:
                break
            # next step: aim at a zeta increment of dz on the local slope
            slope = abs(z - prev_z) / abs(v - prev_x) if v != prev_x else 0.0
            nstep = dz / slope if slope > 0 else 2 * step
            step = float(np.clip(nstep, 0.25 * step, 4.0 * step))
            prev_x, prev_z, start = v, z, x
    order = np.argsort(vals)
    vals_a, zeta_a = np.asarray(vals)[order], np.asarray(zetas)[order]
    if np.any(np.diff(zeta_a) < -1e-8):
        msgs.append(f"non-monotonic profile for {name}")
    return name, ParamProfile(name, vals_a, zeta_a, np.asarray(pts)[order], np.asarray(devs)[order],
                              bounds_hit[-1], bounds_hit[1]), msgs

