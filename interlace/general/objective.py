"""The Laplace objective for general-likelihood families (glmmTMB's model).

Parameters x = (theta, beta, aux coefficients). For each x the conditional
mode u* of the spherical random effects maximizes

    sum_i l_i(eta_i, aux_i) - |u|^2 / 2,   eta = X beta + offset + Z Lambda(theta) u,

found by Newton's method (the curvature max(D, 0) with D = -d2l/deta2 keeps
the Newton matrix positive definite for non-log-concave rows; steps are
halved on the penalized objective). The Laplace deviance is

    dev(x) = -2 sum_i l_i(u*) + |u*|^2 + log det(U' D U + I),

with D the exact observed information (glmmTMB uses the exact Hessian). Its
gradient is exact: the envelope theorem for the first two terms, and for the
log-determinant the leverages lev_i = U_i H^{-1} U_i' with the implicit
derivative of u* (see ``gradient``).

Example
-------
>>> import interlace
>>> from interlace.model_frame import build_model_frame
>>> from interlace.families.negbin2 import NegativeBinomial2Family
>>> df = interlace.datasets.load("grouseticks")
>>> fam = NegativeBinomial2Family()
>>> mf = build_model_frame("TICKS ~ YEAR + (1 | LOCATION)", df, family=fam)
>>> obj = GeneralObjective(mf, fam)
>>> x = obj.x_start()
>>> bool(abs(obj.deviance(x)) < 1e5)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interlace.control import DEFAULT_CONTROL
from interlace.general.optimize import lbfgs_guarded
from interlace.model_frame import ModelFrame
from interlace.objective import rows as R
from interlace.objective.protocol import ParamLayout, RowBackend
from interlace.objective.predictor import BlockedCholesky, ReStructure

__all__ = ["GeneralObjective", "FixedPart", "AuxBlock", "InnerError", "mode_jacobian", "newton_modes"]


def central_steps(x: np.ndarray, i: int, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(x + h e_i, x - h e_i, 2h) with h = 1e-5 max(1, |x_i|); one-sided (x, h) when the
    lower point would cross ``lower[i]``. The difference quotient is (f(xp) - f(xm)) / den."""
    h = 1e-5 * max(1.0, abs(x[i]))
    xp, xm = x.copy(), x.copy()
    xp[i] += h
    xm[i] -= h
    if xm[i] < lower[i]:
        xm[i] = x[i]
        return xp, xm, h
    return xp, xm, 2.0 * h


def mode_jacobian(b_at, x: np.ndarray, lower: np.ndarray, V: np.ndarray, q: int) -> np.ndarray:
    """d b / d x (q x len(x)) by central differences of the conditional modes ``b_at``
    (one-sided at a lower bound), for the parameters with positive variance in ``V``: the
    term TMB's sdreport adds to the random effects' conditional variance (J V J')."""
    J = np.zeros((q, len(x)))
    for i in range(len(x)):
        if V[i, i] <= 0:
            continue
        xp, xm, den = central_steps(x, i, lower)
        J[:, i] = (b_at(xp) - b_at(xm)) / den
    return J


class InnerError(RuntimeError):
    """Newton on the random effects could not reduce the penalized objective."""


def newton_modes(obj, u0: np.ndarray, evaluate, newton_step) -> tuple[np.ndarray, Any]:
    """The one inner loop of the general engine: Newton on the spherical random effects u
    with the observed information, steps halved until the penalized objective
    pen = -2 l + |u|^2 does not increase, and Control's caps (``obj.MAX_ITER``,
    ``obj.MAX_HALVINGS``). ``evaluate(u) -> (pen, cur)``: pen and what the step needs at u;
    ``newton_step(u, cur) -> (delta, decrement g'delta, exact)``, exact when the observed
    information was positive definite (else a descent direction). Starts at ``u0`` (at zero
    when pen is not finite there); counts ``obj.inner_iters``, sets ``obj.inner_converged``;
    returns (u*, cur at u*). Used by :class:`GeneralObjective` (blocked factor, Dask passes)
    and :class:`~interlace.general.multi.MultiObjective` (several linear predictors)."""
    u = u0.copy() if np.all(np.isfinite(u0)) else np.zeros(u0.shape[0])
    with np.errstate(all="ignore"):
        pen, cur = evaluate(u)
        if not np.isfinite(pen):
            u = np.zeros(u.shape[0])
            pen, cur = evaluate(u)
        if not np.isfinite(pen):
            raise InnerError("the log-likelihood is not finite at the starting random effects")
        converged = False
        for _ in range(obj.MAX_ITER):
            obj.inner_iters += 1
            delta, dec, exact = newton_step(u, cur)
            if not np.isfinite(dec):
                raise InnerError("non-finite Newton step on the random effects")
            if dec < 1e-20 * (1.0 + abs(pen)):
                converged = True
                break
            step = 1.0
            for _h in range(obj.MAX_HALVINGS):
                ut = u + step * delta
                pen_t, tr = evaluate(ut)
                if np.isfinite(pen_t) and pen_t <= pen + 1e-13 * abs(pen):
                    break
                step *= 0.5
            else:
                # no decrease possible: at the mode up to rounding, or stuck
                converged = dec < 1e-8 * (1.0 + abs(pen))
                break
            u, cur, pen = ut, tr, pen_t
            if dec < DEFAULT_CONTROL.newton_tol * (1.0 + abs(pen)) and step == 1.0 and exact:
                converged = True  # quadratic convergence: this step took dec to ~1e-22
                break
    obj.inner_converged = converged
    return u, cur


class AuxBlock:
    """One family-parameter linear predictor: design, names, fixed value."""

    def __init__(self, name: str, X: np.ndarray, names: list[str], fixed: float | None):
        self.name = name
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.names = list(names)
        self.fixed = fixed

    @property
    def free(self) -> bool:
        return self.fixed is None

    @property
    def size(self) -> int:
        return 0 if self.fixed is not None else self.X.shape[1]


def aux_blocks(mf: ModelFrame, fam) -> list[AuxBlock]:
    """The family's aux blocks with designs from dispformula / ziformula."""
    n = mf.n
    ones = np.ones((n, 1))
    blocks = []
    given = {"disp": (mf.disp_X, mf.disp_names), "zi": (mf.zi_X, mf.zi_names)}
    for b in fam.aux_blocks:
        X, names = given.get(b, (None, None))
        fixed = fam.fixed_aux.get(b)
        if X is not None and fixed is not None and not (X.shape[1] == 1 and np.all(X == 1)):
            raise ValueError(f"the {fam.name} family's {b} parameter is held fixed; drop the "
                             f"{'dispformula' if b == 'disp' else 'ziformula'}")
        if X is None or fixed is not None:
            X, names = ones, ["Intercept"]
        if X.shape[1] == 0:
            raise ValueError(f"the {b} model of the {fam.name} family needs at least one column")
        blocks.append(AuxBlock(b, X, names, fixed))
    for b, (X, _names) in given.items():
        if X is not None and b not in fam.aux_blocks:
            what = "dispformula" if b == "disp" else "ziformula"
            is_trivial = X.shape[1] == 1 and np.all(X == 1) and b == "disp"
            if not is_trivial:
                raise ValueError(f"{what} is not available for the {fam.name} family "
                                 f"(it has no {'dispersion' if b == 'disp' else 'zero-inflation'} parameter)")
    return blocks


class FixedPart:
    """What the general engine's objectives share over x = (theta, beta, aux coefficients):
    the split of x, the family-parameter rows, and the start values."""

    def split(self, x: np.ndarray):
        theta = x[: self.nt]
        beta = x[self.nt: self.nt + self.p]
        coefs = {}
        for i, b in enumerate(self.blocks):
            coefs[b.name] = x[self.offsets[2 + i]: self.offsets[3 + i]]
        return theta, beta, coefs

    def aux_rows(self, coefs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for b in self.blocks:
            out[b.name] = np.full(self.mf.n, b.fixed) if b.fixed is not None else b.X @ coefs[b.name]
        return out

    def _theta_start(self) -> np.ndarray:
        return self.re.theta_start()

    # ------------------------------------------------------------ fixed-only model (start values)
    # The row passes of x_start below (the Dask objective overrides them).
    def _start_pieces(self) -> tuple[np.ndarray, float, np.ndarray]:
        """(least-squares beta of the family's rough eta, the mean of that eta minus
        the offset, the response -- or a sample with its mean and variance -- for the
        family parameters' moment starts)."""
        z = np.asarray(self.family.start_eta(self.y), dtype=float) - self.offset
        return np.linalg.lstsq(self.X, z, rcond=None)[0], float(np.mean(z)), self.y

    def _fixed_pass(self, beta: np.ndarray, coefs: dict) -> tuple[float, np.ndarray, dict]:
        """The model without random effects: (sum l, X'e, per free block its design' dl/da)."""
        eta = self.X @ beta + self.offset
        d = self.family.derivs(self.y, self.wt, eta, self.aux_rows(coefs), order=2)
        ga = {b.name: b.X.T @ d.aux[b.name][0] for b in self.blocks if b.free}
        return float(np.sum(d.l)), self.X.T @ d.e, ga

    def x_start(self) -> np.ndarray:
        """glmmTMB-like start: theta at lme4's identity, beta and aux from the
        model without random effects (fitted by L-BFGS on its exact gradient)."""
        fam = self.family
        beta0, zmean, ysample = self._start_pieces()
        x = np.zeros(self.k)
        x[: self.nt] = self._theta_start()
        x[self.nt: self.nt + self.p] = beta0
        for i, b in enumerate(self.blocks):
            if b.free:
                a0 = float(fam.aux_default(b.name, ysample))
                col = [j for j, s in enumerate(b.names) if s == "Intercept"]
                if col:
                    x[self.offsets[2 + i] + col[0]] = a0
        sl = slice(self.nt, self.k)

        def f0(xf):
            xx = x.copy()
            xx[sl] = xf
            _t, beta, coefs = self.split(xx)
            l, ge, ga = self._fixed_pass(beta, coefs)
            val = -2.0 * l
            if not np.isfinite(val):
                return 1e300, np.zeros(len(xf))
            g = [-2.0 * ge] + [-2.0 * np.atleast_1d(ga[b.name]) for b in self.blocks if b.free]
            return val, np.concatenate(g)

        with np.errstate(all="ignore"):
            if f0(x[sl])[0] >= 1e299 and "Intercept" in self.mf.fe_names:
                # the least-squares start leaves the family's support (e.g. eta <= 0
                # for the inverse link): start from the intercept-only fit instead
                j = list(self.mf.fe_names).index("Intercept")
                x[self.nt: self.nt + self.p] = 0.0
                x[self.nt + j] = zmean
            r = lbfgs_guarded(f0, x[sl], np.full(self.k - self.nt, -np.inf), maxiter=500, ftol=1e-12,
                              gtol=1e-6)
        if np.all(np.isfinite(r.x)) and np.isfinite(r.fun) and r.fun < 1e299:
            x[sl] = r.x
        return x


def _intercept_only(X: np.ndarray) -> bool:
    return X.shape[1] == 1 and bool(np.all(X == 1.0))


class GeneralObjective(FixedPart):
    """Laplace deviance and its exact gradient over x = (theta, beta, aux).

    Every pass over the rows goes through ``rows`` (a :class:`RowBackend`): the
    model frame's rows by default, a Dask fit's partitions when
    ``distributed.general`` passes its rounds (then ``mf`` carries no rows and
    ``re`` is the layout found over the partitions)."""

    MAX_ITER = DEFAULT_CONTROL.newton_max_iter
    MAX_HALVINGS = DEFAULT_CONTROL.newton_max_halvings

    def __init__(self, mf: ModelFrame, fam, rows: RowBackend | None = None, re: ReStructure | None = None) -> None:
        self.mf = mf
        self.family = fam
        self.re = re if re is not None else ReStructure(mf.terms)
        self.chol = BlockedCholesky(self.re)
        self.X = np.ascontiguousarray(mf.X, dtype=np.float64)
        self.y = np.ascontiguousarray(mf.y, dtype=np.float64)
        self.wt = np.ascontiguousarray(mf.weights, dtype=np.float64)
        self.offset = np.ascontiguousarray(mf.offset, dtype=np.float64)
        self.blocks = aux_blocks(mf, fam)
        self.nt, self.p = self.re.ntheta, self.X.shape[1]
        self._free = [b.name for b in self.blocks if b.free]
        self.rows = rows if rows is not None else R.LocalRows.from_model(
            mf, self.re, fam, {b.name: b.X for b in self.blocks if b.free and not _intercept_only(b.X)})
        self._token = 0
        self._set_layout()
        self.u = np.zeros(self.re.q)
        self.nfev = self.ngev = self.inner_iters = 0
        self.inner_converged = True
        self.nonpd = False
        self._state: dict | None = None
        self._zl_theta: np.ndarray | None = None
        self._zl: np.ndarray | None = None

    # ------------------------------------------------------------ layout
    def _set_layout(self) -> None:
        """x = (theta, beta, one block per family sub-model): the shared ParamLayout."""
        names = list(self.mf.fe_names) if len(self.mf.fe_names) == self.p else [f"beta.{j}" for j in range(self.p)]
        self._layout = ParamLayout.build(ntheta=self.nt, fe_names=names, theta_lower=self.re.theta_lower,
                                        theta_names=self.re.theta_names(),
                                        aux=[(b.name, list(b.names) if b.free else []) for b in self.blocks])
        self.offsets = self._layout.offsets
        self.k = self._layout.size
        self.lower = self._layout.lower

    @property
    def layout(self) -> ParamLayout:
        """x = (theta, beta, one block per free family sub-model)."""
        return self._layout

    def deviance_at(self, x: np.ndarray) -> float:
        """The Objective protocol: the deviance at x (laid out as ``layout``)."""
        return self.deviance(x)

    def gradient_at(self, x: np.ndarray) -> np.ndarray:
        """The Objective protocol: the exact gradient at x."""
        self.deviance(x)
        return self.gradient(x)

    def mode(self) -> np.ndarray:
        """The spherical conditional modes u at the last evaluation."""
        return np.asarray(self.u, dtype=float).copy()

    def param_names(self) -> list[str]:
        names = [f"theta.{s}" for s in self.re.theta_names()] + list(self.mf.fe_names)
        for b in self.blocks:
            if b.free:
                names += [f"{b.name}.{s}" for s in b.names]
        return names

    def zl(self, theta: np.ndarray) -> np.ndarray:
        if self._zl_theta is None or not np.array_equal(self._zl_theta, theta):
            self._zl = self.re.zlambda(theta)
            self._zl_theta = np.array(theta, copy=True)
        return self._zl

    def aux_coefs(self, coefs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The family parameters' coefficients a pass needs (a held parameter: its value)."""
        return {b.name: np.array([float(b.fixed)]) if b.fixed is not None else np.asarray(coefs[b.name], dtype=float)
                for b in self.blocks}

    # ------------------------------------------------------------ fixed-only model (start values)
    def _start_pieces(self) -> tuple[np.ndarray, float, np.ndarray]:
        """(least-squares beta of the family's rough eta, the mean of that eta minus
        the offset, the response -- or two values with its mean and variance when
        the rows are elsewhere -- for the family parameters' moment starts)."""
        local = getattr(self.rows, "block", None)
        if local is not None:  # the rows are here: QR least squares and the response itself
            z = np.asarray(self.family.start_eta(local.y), dtype=float) - local.offset
            return np.linalg.lstsq(local.X, z, rcond=None)[0], float(np.mean(z)), local.y
        st = self.rows.run(R.start_pass, {})
        n = max(st["n"], 1.0)
        m = st["ysum"] / n
        sd = float(np.sqrt(max(st["y2sum"] / n - m * m, 0.0)))
        return np.linalg.lstsq(st["XtX"], st["Xtz"], rcond=None)[0], st["zsum"] / n, np.array([m - sd, m + sd])

    def _fixed_pass(self, beta: np.ndarray, coefs: dict) -> tuple[float, np.ndarray, dict]:
        """The model without random effects: (sum l, X'e, per free block its design' dl/da)."""
        out = self.rows.run(R.fixed_pass, {"beta": beta, "aux": self.aux_coefs(coefs), "free": self._free})
        return float(out["l"]), out["ge"], {nm: out["ga_" + nm] for nm in self._free}

    # ------------------------------------------------------------ inner Newton on u
    def _payload(self, theta, beta, u, aux, **kw) -> dict:
        pl = {"lams": self.re.lambdas(theta), "beta": np.asarray(beta, dtype=float), "u": np.asarray(u, dtype=float),
              "aux": aux, "free": self._free}
        pl.update(kw)
        return pl

    def _pass_at(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, aux: dict, curv: bool = False) -> dict:
        """At u: sum l, U'e and the blocks of U'DU (``objective.rows.newton_pass``)."""
        return self.rows.run(R.newton_pass, self._payload(theta, beta, u, aux, curv=curv))

    def _load(self, out: dict) -> None:
        """Summed blocks of U'DU into the factor's buffers."""
        ch = self.chol
        ch.A11[...] = out["A11"]
        ch.V21[...] = out["V21"]
        ch.A22[...] = out["A22"]
        ch.rhs[...] = 0.0

    def _load_curvature(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, aux: dict, cur: dict,
                        exact: bool) -> None:
        """U'DU + I into the factor: D = -d2l/deta2 (exact: the pass at u holds it) or
        max(D, 0) (a descent direction; one more pass)."""
        self._load(cur if exact else self._pass_at(theta, beta, u, aux, curv=True))

    def inner(self, theta: np.ndarray, lin: Any, aux: dict) -> tuple[np.ndarray, dict]:
        """Newton on the spherical random effects u (:func:`newton_modes`); returns u* and the
        pass at u*."""
        chol = self.chol

        def evaluate(u):
            cur = self._pass_at(theta, lin, u, aux)
            return -2.0 * cur["l"] + float(u @ u), cur

        def newton_step(u, cur):
            # exact information first (quadratic convergence); where that is not
            # positive definite, the curvature max(D, 0) (a descent direction)
            exact = True
            self._load_curvature(theta, lin, u, aux, cur, exact=True)
            try:
                chol.factor()
            except np.linalg.LinAlgError:
                exact = False
                self._load_curvature(theta, lin, u, aux, cur, exact=False)
                chol.factor()
            g = cur["Ute"] - u
            delta = chol.solve(g)
            return delta, float(g @ delta), exact

        return newton_modes(self, self.u, evaluate, newton_step)

    # ------------------------------------------------------------ objective
    def deviance(self, x: np.ndarray) -> float:
        """Laplace deviance (-2 log marginal likelihood) at x; leaves the state at u*."""
        x = np.asarray(x, dtype=float)
        if self._state is not None and np.array_equal(self._state["x"], x):
            return self._state["dev"]
        self.nfev += 1
        theta, beta, coefs = self.split(x)
        aux = self.aux_coefs(coefs)
        try:
            u, cur = self.inner(theta, beta, aux)
        except (InnerError, np.linalg.LinAlgError):
            self._state = None
            return np.inf
        # the pass at u* holds U'DU with the exact D (D >= 0 was not imposed there)
        self._load(cur)
        try:
            logdet = self.chol.factor()
            self.nonpd = False
        except np.linalg.LinAlgError:
            # exact Hessian not positive definite (Laplace undefined): report +inf
            self._state = None
            self.nonpd = True
            return np.inf
        dev = -2.0 * float(cur["l"]) + float(u @ u) + logdet
        if not np.isfinite(dev):
            self._state = None
            return np.inf
        self.u = u
        self._state = {"x": x.copy(), "dev": dev, "u": u, "auxc": aux, "theta": theta, "beta": beta,
                       "logdet": logdet}
        if self.mf.n:  # the per-row predictors the in-memory result reads
            self._state["eta"] = self.re.eta_re(self.zl(theta), u, self.X @ beta + self.offset)
            self._state["aux"] = self.aux_rows(coefs)
        return dev

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Exact d dev / dx at x: two passes (the leverages and U'v; then the
        gradient's row parts given xi = H^{-1} U'v)."""
        x = np.asarray(x, dtype=float)
        if self._state is None or not np.array_equal(self._state["x"], x):
            if not np.isfinite(self.deviance(x)):
                return np.full(self.k, np.nan)
        self.ngev += 1
        st = self._state
        self._token += 1
        pl = self._payload(st["theta"], st["beta"], st["u"], st["auxc"], ainv=self.chol.selected_inverse_pairs(),
                           token=self._token)
        pl["xi"] = self.chol.solve(self.rows.run(R.lev_pass, pl)["Utv"])
        g = self.rows.run(R.grad_pass, pl)
        return np.concatenate([self.re.chain(st["theta"], g["gt"]), g["gb"]]
                              + [np.atleast_1d(g["ga_" + nm]) for nm in self._free])

    def h_inverse(self):
        """The entries of H^{-1} that rows touch, at the current factor: per-level
        blocks (one term), or the dense inverse (several terms; q is small there)."""
        re, chol = self.re, self.chol
        if re.m == 1:
            L = chol.L11  # factored in place, lower triangular per level
            Li = np.linalg.inv(L)
            return np.ascontiguousarray(np.einsum("lba,lbc->lac", Li, Li)), np.zeros((1, 1)), False
        if re.q > 6000:
            raise MemoryError(f"{re.q} random effects over several terms: the dense H^-1 is too large")
        A = chol.solve(np.eye(re.q))
        return np.zeros((1, 1, 1)), np.ascontiguousarray(0.5 * (A + A.T)), True

    def b_at(self, x: np.ndarray) -> np.ndarray:
        """Conditional modes b = Lambda u* stacked in u's layout (for Jacobians)."""
        self.deviance(x)
        theta = x[: self.nt]
        return np.concatenate([bj.ravel() for bj in self.re.u_to_b(theta, self.u)])

