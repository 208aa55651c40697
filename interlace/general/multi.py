"""Laplace objective with random effects in several linear predictors (glmmTMB's model).

When ``ziformula`` or ``dispformula`` has random-effect terms (``~ x + (1 | site)``),
each linear predictor k (the conditional eta, then the family's aux blocks "disp",
"zi", ...) is

    eta_k = X_k beta_k + Z_k Lambda_k(theta_k) u_k,

and the spherical random effects of all predictors form one vector u = (u_cond, u_disp,
u_zi) with the standard normal penalty. For x = (theta, beta, aux coefficients) the mode
u* maximizes sum_i l_i(eta_i1..eta_iK) - |u|^2/2 (Newton with the exact per-row Hessian
H_i of l in the K predictors, from :mod:`interlace.general.jet`), and

    dev(x) = -2 sum_i l_i(u*) + |u*|^2 + log det A,   A = I + sum_i U_i' W_i U_i,  W_i = -H_i,

U_i the K x q matrix of row i's entries of Z_k Lambda_k. The gradient is exact: with
M_i = U_i A^-1 U_i', v_i = sum_ab M_i,ab T_i,ab., xi = A^-1 sum_i U_i' v_i and
c_i = -2 G_i - v_i - H_i U_i xi, a predictor's fixed coefficients have gradient X_k' c_k,
and the entries of Lambda_k have the gradient of
sum_i [c_ik U_i,k(u) + 2 (W_i U_i A^-1)_k - G_ik U_i,k(xi)] in Z_k's entries
(envelope theorem, the log-determinant's derivative and the implicit derivative of u*).

A is assembled dense and factored by Cholesky: the side models usually share the
conditional model's grouping factors, so q is a few times the number of groups.

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("salamanders")
>>> m = interlace.glmer("count ~ mined + (1 | site)", df, family="poisson",
...                     ziformula="~ mined + (1 | site)")           # doctest: +SKIP
>>> m.varcorr_zi                                                      # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from interlace.control import DEFAULT_CONTROL
from interlace.general.jet import family_jet
from interlace.general.objective import AuxBlock, FixedPart, InnerError, aux_blocks, central_steps, newton_modes
from interlace.model_frame import ModelFrame
from interlace.objective.predictor import ReStructure

__all__ = ["MultiObjective", "has_side_random_effects"]


def has_side_random_effects(mf: ModelFrame) -> bool:
    """True when ``ziformula`` or ``dispformula`` has random-effect terms."""
    return bool(getattr(mf, "zi_terms", None) or getattr(mf, "disp_terms", None))


class _Predictor:
    """One linear predictor's random-effect layout: its ReStructure and the compact rows
    of U_k = Z_k Lambda_k (column indices into the joint u, values)."""

    def __init__(self, name: str, terms: list, col0: int, theta0: int):
        self.name = name
        self.re = ReStructure(terms) if terms else None
        self.q = self.re.q if self.re is not None else 0
        self.col0 = col0
        self.nt = self.re.ntheta if self.re is not None else 0
        self.theta0 = theta0
        if self.re is None:
            self.cols = None
            return
        re = self.re
        cols = []
        for j in range(re.m):
            k = int(re.kdim[j])
            cols.append(col0 + re.uoff[j] + re.codes[j][:, None] * k + np.arange(k)[None, :])
        self.cols = np.ascontiguousarray(np.hstack(cols), dtype=np.int64)  # (n, r_k)

    def vals(self, theta_k: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.re.zlambda(theta_k).reshape(self.cols.shape[0], -1))


class _BlockLayout:
    """The u-Hessian's block structure: u indices that some row links (through all
    predictors' random-effect columns) form one block; A is block diagonal in that
    order. ``blk[c]``, ``slot[c]``: the block and position of u index c; ``idx[b, s]``
    the u index at slot s of block b (-1: padding, an identity entry)."""

    MAX_BLOCK = 16  # larger groups: the dense factor

    def __init__(self, q: int, cols: list[np.ndarray]):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        allc = np.hstack(cols)
        r = allc.shape[1]
        src = np.repeat(allc[:, :1], max(r - 1, 1), axis=1).ravel()
        dst = allc[:, 1:].ravel() if r > 1 else allc[:, 0]
        graph = coo_matrix((np.ones(src.shape[0]), (src, dst)), shape=(q, q))
        nb, lab = connected_components(graph, directed=False)
        sizes = np.bincount(lab, minlength=nb)
        self.s = int(sizes.max()) if q else 0
        self.nb = int(nb)
        order = np.argsort(lab, kind="stable")
        start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.blk = np.ascontiguousarray(lab, dtype=np.int64)
        self.slot = np.empty(q, dtype=np.int64)
        self.slot[order] = np.arange(q) - start[lab[order]]
        self.idx = np.full((self.nb, max(self.s, 1)), -1, dtype=np.int64)
        self.idx[self.blk, self.slot] = np.arange(q)
        self.pad = self.idx < 0

    @staticmethod
    def worth(q: int, cols: list[np.ndarray]) -> "_BlockLayout | None":
        """The layout when its blocks are small (else None: the dense factor)."""
        if q < 8 or not cols:
            return None
        lay = _BlockLayout(q, cols)
        return lay if lay.s <= _BlockLayout.MAX_BLOCK and lay.nb * lay.s ** 3 * 8 <= q ** 3 else None

    def empty(self) -> np.ndarray:
        B = np.zeros((self.nb, self.s, self.s))
        b, j = np.nonzero(self.pad)
        B[b, j, j] = 1.0
        return B


class _DenseFactor:
    """Cholesky factor of the dense A (scipy's cho_factor)."""

    def __init__(self, A: np.ndarray, check_finite: bool = True):
        self.cf = sla.cho_factor(A, lower=True, check_finite=check_finite)
        self._inv: np.ndarray | None = None

    def logdet(self) -> float:
        return 2.0 * float(np.sum(np.log(np.diag(self.cf[0]))))

    def solve(self, g: np.ndarray) -> np.ndarray:
        return sla.cho_solve(self.cf, g)

    def inverse(self) -> np.ndarray:
        """A^-1, dense and symmetric."""
        if self._inv is None:
            # the inverse from the Cholesky factor (LAPACK potri: half the work of solving with I)
            Ai, info = sla.lapack.dpotri(self.cf[0], lower=1)
            if info != 0:
                Ai = sla.cho_solve(self.cf, np.eye(self.cf[0].shape[0]))
            else:
                Ai = np.tril(Ai) + np.tril(Ai, -1).T
            self._inv = 0.5 * (Ai + Ai.T)
        return self._inv

    def entries(self, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
        """A^-1[ca, cb] (broadcast index arrays)."""
        return self.inverse()[ca, cb]

    def blocks(self):
        """A^-1 as one block: (Bi (1, q, q), blk, slot) for the compiled row passes."""
        q = self.cf[0].shape[0]
        return self.inverse()[None], np.zeros(q, dtype=np.int64), np.arange(q, dtype=np.int64)


class _BlockFactor:
    """Cholesky factor of a block-diagonal A (:class:`_BlockLayout`), block by block."""

    def __init__(self, B: np.ndarray, lay: _BlockLayout):
        from interlace.kernels.zi_jet import block_cholesky

        if not block_cholesky(B):
            raise np.linalg.LinAlgError("the u-Hessian is not positive definite")
        self.L = B
        self.lay = lay
        self._inv: np.ndarray | None = None

    def logdet(self) -> float:
        return 2.0 * float(np.sum(np.log(np.diagonal(self.L, axis1=1, axis2=2))))

    def solve(self, g: np.ndarray) -> np.ndarray:
        from interlace.kernels.zi_jet import block_solve

        out = np.empty(g.shape[0])
        block_solve(self.L, self.lay.idx, np.ascontiguousarray(g, dtype=np.float64), out)
        return out

    def block_inverse(self) -> np.ndarray:
        if self._inv is None:
            from interlace.kernels.zi_jet import block_inverse

            self._inv = np.empty_like(self.L)
            block_inverse(self.L, self._inv)
        return self._inv

    def entries(self, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
        """A^-1[ca, cb] (broadcast index arrays): zero across blocks."""
        lay = self.lay
        ca, cb = np.broadcast_arrays(ca, cb)
        ba, bb = lay.blk[ca], lay.blk[cb]
        out = self.block_inverse()[ba, lay.slot[ca], lay.slot[cb]]
        return np.where(ba == bb, out, 0.0)

    def blocks(self):
        """A^-1 in blocks: (Bi (nb, s, s), blk, slot) for the compiled row passes."""
        return self.block_inverse(), self.lay.blk, self.lay.slot

    def inverse(self) -> np.ndarray:
        """A^-1, dense (zero across blocks)."""
        q = self.lay.blk.shape[0]
        Ai = np.zeros((q, q))
        Bi = self.block_inverse()
        lay = self.lay
        for b in range(lay.nb):
            ix = lay.idx[b][lay.idx[b] >= 0]
            k = ix.shape[0]
            Ai[np.ix_(ix, ix)] = Bi[b, :k, :k]
        return Ai


class MultiObjective(FixedPart):
    """Laplace deviance and exact gradient over x = (theta_cond, theta of each side model,
    beta, aux coefficients), the random effects of all predictors in one u."""

    MAX_ITER = DEFAULT_CONTROL.newton_max_iter
    MAX_HALVINGS = DEFAULT_CONTROL.newton_max_halvings

    def __init__(self, mf: ModelFrame, fam) -> None:
        self.mf = mf
        self.family = fam
        self.X = np.ascontiguousarray(mf.X, dtype=np.float64)
        self.y = np.ascontiguousarray(mf.y, dtype=np.float64)
        self.wt = np.ascontiguousarray(mf.weights, dtype=np.float64)
        self.offset = np.ascontiguousarray(mf.offset, dtype=np.float64)
        self.blocks: list[AuxBlock] = aux_blocks(mf, fam)
        self.names = ["cond"] + [b.name for b in self.blocks]
        side = {"zi": list(mf.zi_terms or []), "disp": list(mf.disp_terms or [])}
        for b, terms in side.items():
            if terms and b not in [bl.name for bl in self.blocks]:
                what = "ziformula" if b == "zi" else "dispformula"
                raise ValueError(f"{what} has random effects but the {fam.name} family has no "
                                 f"{'zero-inflation' if b == 'zi' else 'dispersion'} parameter")
            if terms and next(bl for bl in self.blocks if bl.name == b).fixed is not None:
                raise ValueError(f"the {fam.name} family's {b} parameter is held fixed: its "
                                 f"{'ziformula' if b == 'zi' else 'dispformula'} cannot have random effects")
        self.preds: list[_Predictor] = []
        col, th = 0, 0
        for name in self.names:
            terms = list(mf.terms) if name == "cond" else side.get(name, [])
            pr = _Predictor(name, terms, col, th)
            self.preds.append(pr)
            col += pr.q
            th += pr.nt
        self.re = self.preds[0].re  # the conditional model's layout (results, predict); None without terms
        re_preds = [(k, pr) for k, pr in enumerate(self.preds) if pr.re is not None]
        self._blocks = _BlockLayout.worth(col, [pr.cols for _k, pr in re_preds])
        # every predictor's random-effect columns side by side, and each column's predictor
        self._allcols = np.ascontiguousarray(np.hstack([pr.cols for _k, pr in re_preds]), dtype=np.int64) \
            if re_preds else None
        self._kp = np.concatenate([np.full(pr.cols.shape[1], k, dtype=np.int64) for k, pr in re_preds]) \
            if re_preds else None
        self.aux_re = {pr.name for pr in self.preds[1:] if pr.re is not None}
        self.q = col
        self.nt = th
        self.p = self.X.shape[1]
        sizes = [self.nt, self.p] + [b.size for b in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.k = int(self.offsets[-1])
        lower = [pr.re.theta_lower for pr in self.preds if pr.re is not None]
        self.lower = np.concatenate(lower + [np.full(self.k - self.nt, -np.inf)])
        self.u = np.zeros(self.q)
        self.nfev = self.ngev = self.inner_iters = 0
        self.inner_converged = True
        self.nonpd = False
        self._state: dict | None = None

    # ------------------------------------------------------------ layout
    def theta_of(self, theta: np.ndarray, k: int) -> np.ndarray:
        pr = self.preds[k]
        return theta[pr.theta0: pr.theta0 + pr.nt]

    def param_names(self) -> list[str]:
        names = []
        for pr in self.preds:
            if pr.re is not None:
                pre = "theta." if pr.name == "cond" else f"theta.{pr.name}."
                names += [pre + s for s in pr.re.theta_names()]
        names += list(self.mf.fe_names)
        for b in self.blocks:
            if b.free:
                names += [f"{b.name}.{s}" for s in b.names]
        return names

    def _bases(self, x: np.ndarray):
        theta, beta, coefs = self.split(x)
        aux = self.aux_rows(coefs)
        bases = [self.X @ beta + self.offset] + [aux[b.name] for b in self.blocks]
        vals = [pr.vals(self.theta_of(theta, k)) if pr.re is not None else None for k, pr in enumerate(self.preds)]
        return theta, bases, vals

    def _etas(self, bases, vals, u):
        """Every predictor's eta_k = base_k + Z_k Lambda_k u_k (one compiled pass)."""
        from interlace.kernels.zi_jet import etas_rows

        allvals = np.ascontiguousarray(np.hstack([vals[k] for k, pr in enumerate(self.preds) if pr.re is not None]))
        out = np.empty((len(self.preds), self.mf.n))
        etas_rows(self._allcols, allvals, self._kp, np.ascontiguousarray(u, dtype=np.float64),
                  np.ascontiguousarray(np.vstack(bases)), out)
        return [row.copy() for row in out]  # separate arrays, as each predictor had

    def _jet(self, etas, order):
        aux = {b.name: etas[1 + i] for i, b in enumerate(self.blocks)}
        with np.errstate(all="ignore"):
            return family_jet(self.family, self.y, self.wt, etas[0], aux, self.names, order, aux_re=self.aux_re)

    def _loglik(self, etas) -> np.ndarray:
        aux = {b.name: etas[1 + i] for i, b in enumerate(self.blocks)}
        with np.errstate(all="ignore"):
            return self.family.derivs(self.y, self.wt, etas[0], aux, order=0).l

    def _ut(self, vals, R: np.ndarray) -> np.ndarray:
        """sum_i U_i' R_i for R (n, K)."""
        from interlace.kernels.zi_jet import ut_rows

        g = np.zeros(self.q)
        allvals = np.ascontiguousarray(np.hstack([vals[k] for k, pr in enumerate(self.preds) if pr.re is not None]))
        ut_rows(self._allcols, allvals, self._kp, np.ascontiguousarray(R, dtype=np.float64), g)
        return g

    def _u_rows(self, vals, v: np.ndarray) -> np.ndarray:
        """(n, K): row i's U_i v."""
        out = np.zeros((self.mf.n, len(self.preds)))
        for k, pr in enumerate(self.preds):
            if pr.re is not None:
                out[:, k] = np.sum(vals[k] * v[pr.cols], axis=1)
        return out

    def _hessian_u(self, vals, H: np.ndarray, sign: float = -1.0) -> np.ndarray:
        """A = I + sum_i U_i' W_i U_i with W = sign H (dense, q x q; or its blocks, nb x s x s,
        when A is block diagonal with small blocks), in one pass over the rows."""
        from interlace.kernels.zi_jet import accumulate_all

        q = self.q
        lay = self._blocks
        A = np.zeros((q, q)) if lay is None else lay.empty()
        allvals = np.ascontiguousarray(np.hstack([vals[k] for k, pr in enumerate(self.preds) if pr.re is not None]))
        accumulate_all(A, None if lay is None else lay.blk, None if lay is None else lay.slot, self._allcols,
                       allvals, self._kp, np.ascontiguousarray(H, dtype=np.float64), float(sign))
        if lay is None:
            A[np.diag_indices(q)] += 1.0
        else:
            A[lay.blk, lay.slot, lay.slot] += 1.0
        return A

    def _factor(self, A: np.ndarray, check_finite: bool = True):
        """The Cholesky factor of A from :meth:`_hessian_u` (raises LinAlgError or
        ValueError when A is not positive definite)."""
        if self._blocks is None:
            return _DenseFactor(A, check_finite)
        return _BlockFactor(A, self._blocks)

    def _theta_start(self) -> np.ndarray:
        """lme4's identity start for every predictor's terms (FixedPart.x_start)."""
        return np.concatenate([pr.re.theta_start() for pr in self.preds if pr.re is not None])

    # ------------------------------------------------------------ inner Newton on u
    def inner(self, bases, vals):
        """Newton on the joint u (:func:`newton_modes`); returns u*, the predictors there and
        (l, G, H, the exact Cholesky factor of A at u* when the last step computed it, else None):
        the deviance reuses them."""

        def evaluate(u):
            # the penalized objective with the rows' derivatives: every point the step halving
            # accepts needs them next (a Newton step, or the deviance at u*), and the jet's l
            # is the log-likelihood, so the value alone would be a second pass over the rows
            etas = self._etas(bases, vals, u)
            jet = self._jet(etas, 2)
            return -2.0 * float(np.sum(jet[0])) + float(u @ u), {"etas": etas, "jet": jet}

        def newton_step(u, cur):
            l, G, H, _ = cur["jet"]
            exact = True
            try:
                cf = cur["cf"] = self._factor(self._hessian_u(vals, H))
            except (np.linalg.LinAlgError, ValueError):
                exact = False
                # not positive definite: the rows' curvature projected onto PSD (a descent direction)
                ev, evec = np.linalg.eigh(-H)
                Wp = np.einsum("nij,nj,nkj->nik", evec, np.maximum(ev, 0.0), evec)
                cf = self._factor(self._hessian_u(vals, Wp, 1.0), check_finite=False)
            g = self._ut(vals, G) - u
            delta = cf.solve(g)
            return delta, float(g @ delta), exact

        u, cur = newton_modes(self, self.u, evaluate, newton_step)
        l, G, H, _ = cur["jet"]
        return u, cur["etas"], (l, G, H, cur.get("cf"))

    # ------------------------------------------------------------ objective
    def deviance(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=float)
        if self._state is not None and np.array_equal(self._state["x"], x):
            return self._state["dev"]
        self.nfev += 1
        theta, bases, vals = self._bases(x)
        try:
            u, etas, (l, G, H, cf) = self.inner(bases, vals)
        except (InnerError, np.linalg.LinAlgError, ValueError):
            self._state = None
            return np.inf
        # third derivatives: in gradient(), when asked
        if cf is None:
            try:
                cf = self._factor(self._hessian_u(vals, H))
            except (np.linalg.LinAlgError, ValueError):
                self._state = None
                self.nonpd = True
                return np.inf
        self.nonpd = False
        logdet = cf.logdet()
        dev = -2.0 * float(np.sum(l)) + float(u @ u) + logdet
        if not np.isfinite(dev):
            self._state = None
            return np.inf
        self.u = u
        aux = {b.name: etas[1 + i] for i, b in enumerate(self.blocks)}
        self._state = {"x": x.copy(), "dev": dev, "u": u, "eta": etas[0], "etas": etas, "aux": aux,
                       "theta": theta, "vals": vals, "G": G, "H": H, "T": None, "cf": cf, "logdet": logdet}
        return dev

    def a_inverse(self) -> np.ndarray:
        """A^-1 at the current state (dense q x q)."""
        return self._state["cf"].inverse()

    def _pa(self) -> dict:
        """PA[(a, b)][i, s, t] = A^-1[cols_a[i, s], cols_b[i, t]] for the predictors with random effects."""
        re_k = [k for k, pr in enumerate(self.preds) if pr.re is not None]
        cf = self._state["cf"]
        return {(a, b): cf.entries(self.preds[a].cols[:, :, None], self.preds[b].cols[:, None, :])
                for a in re_k for b in re_k}

    def _row_cov(self, vals, PA) -> np.ndarray:
        n, K = self.mf.n, len(self.preds)
        M = np.zeros((n, K, K))
        for (a, b), pab in PA.items():
            M[:, a, b] = np.einsum("is,ist,it->i", vals[a], pab, vals[b])
        return M

    def row_covariance(self) -> np.ndarray:
        """(n, K, K): M_i = U_i A^-1 U_i', the conditional covariance of row i's predictors
        given the fixed parameters (at the current state)."""
        st = self._state
        return self._row_cov(st["vals"], self._pa())

    def gradient(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self._state is None or not np.array_equal(self._state["x"], x):
            if not np.isfinite(self.deviance(x)):
                return np.full(self.k, np.nan)
        self.ngev += 1
        st = self._state
        if st["T"] is None:
            st["T"] = self._jet(st["etas"], 3)[3]
        vals, G, H, T, u, theta = st["vals"], st["G"], st["H"], st["T"], st["u"], st["theta"]
        from interlace.kernels.zi_jet import grad_rows_q, grad_rows_v

        n, K = G.shape
        re_k = [k for k, pr in enumerate(self.preds) if pr.re is not None]
        Bi, blk, slot = st["cf"].blocks()
        allvals = np.ascontiguousarray(np.hstack([vals[k] for k in re_k]))
        H = np.ascontiguousarray(H)
        # M_i = U_i A^-1 U_i' and v_i = sum_ab M_i,ab T_i,ab. (compiled; the order of the numpy sums)
        M = np.empty((n, K, K))
        v = np.empty((n, K))
        grad_rows_v(Bi, blk, slot, self._allcols, allvals, self._kp, np.ascontiguousarray(T), M, v)
        xi = st["cf"].solve(self._ut(vals, v))
        c = np.empty((n, K))
        Q = np.empty(self._allcols.shape)
        grad_rows_q(Bi, blk, slot, self._allcols, allvals, self._kp, np.asarray(re_k, dtype=np.int64),
                    np.ascontiguousarray(G), H, v, xi, u, np.empty(K), c, Q)
        out_theta = []
        c0 = 0
        for k in re_k:
            pr = self.preds[k]
            Qk = np.ascontiguousarray(Q[:, c0: c0 + pr.cols.shape[1]])  # the layout (and BLAS strides) of before
            c0 += pr.cols.shape[1]
            re = pr.re
            gt = np.zeros(re.nentries)
            for e in range(re.nentries):
                j, a, b = int(re.theta_term[e]), int(re.theta_a[e]), int(re.theta_b[e])
                gt[e] = float(re.z[:, re.kcol[j] + a] @ Qk[:, re.kcol[j] + b])
            out_theta.append(re.chain(self.theta_of(theta, k), gt))
        out = out_theta + [self.X.T @ c[:, 0]]
        for i, b in enumerate(self.blocks):
            if b.free:
                out.append(b.X.T @ c[:, 1 + i])
        return np.concatenate(out)

    # ------------------------------------------------------------ results
    def b_at(self, x: np.ndarray) -> np.ndarray:
        """Conditional modes b = Lambda u* of every predictor, stacked as u."""
        self.deviance(x)
        return self._b_of(x, self.u)

    def _b_of(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Lambda(theta) u of every predictor, stacked as u (theta from x)."""
        theta = x[: self.nt]
        out = []
        for k, pr in enumerate(self.preds):
            if pr.re is not None:
                uk = u[pr.col0: pr.col0 + pr.q]
                out += [bj.ravel() for bj in pr.re.u_to_b(self.theta_of(theta, k), uk)]
        return np.concatenate(out)

    def _score_u(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """r(u, x) = sum_i U_i' G_i - u, the gradient of the penalized log-likelihood in u
        (zero at the mode u*(x))."""
        _theta, bases, vals = self._bases(x)
        G = self._jet(self._etas(bases, vals, u), 2)[1]
        return self._ut(vals, G) - u

    def mode_jacobian(self, x: np.ndarray, V: np.ndarray) -> np.ndarray:
        """d b* / d x (q x len(x)) for the parameters with positive variance in ``V``, by the
        implicit function theorem at u*: r(u*(x), x) = 0 and dr/du = -A give
        du*/dx = A^-1 dr/dx, and db*/dx = Lambda du*/dx + (dLambda/dx) u*; the partial
        derivatives at fixed u by central differences (one-sided at a lower bound), the steps
        of ``objective.mode_jacobian`` (which differences the modes themselves: an inner
        Newton solve per step). Leaves the state at x."""
        self.deviance(x)
        st = self._state
        u, cf = st["u"].copy(), st["cf"]
        J = np.zeros((self.q, len(x)))
        with np.errstate(all="ignore"):
            for i in range(len(x)):
                if V[i, i] <= 0:
                    continue
                xp, xm, den = central_steps(x, i, self.lower)
                dr = (self._score_u(xp, u) - self._score_u(xm, u)) / den
                J[:, i] = self._b_of(x, cf.solve(dr)) + (self._b_of(xp, u) - self._b_of(xm, u)) / den
        return J

    def modes(self, x: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Per predictor with random effects, per term (nlevels, k) conditional modes b."""
        self.deviance(x)
        theta = x[: self.nt]
        out = {}
        for k, pr in enumerate(self.preds):
            if pr.re is not None:
                out[pr.name] = pr.re.u_to_b(self.theta_of(theta, k), self.u[pr.col0: pr.col0 + pr.q])
        return out

    def cond_sd(self, x: np.ndarray, V: np.ndarray | None) -> dict[str, list[np.ndarray]]:
        """Per predictor, per term (nlevels, k) conditional SDs of b, with TMB's term for the
        uncertainty of the fixed parameters (J V J', J = db*/dx from :meth:`mode_jacobian`)."""
        self.deviance(x)
        theta = x[: self.nt]
        cf = self._state["cf"]
        var = np.zeros(self.q)
        lam_rows = []
        for k, pr in enumerate(self.preds):
            if pr.re is None:
                continue
            re = pr.re
            for j, lam in enumerate(re.lambdas(self.theta_of(theta, k))):
                kd, nl = int(re.kdim[j]), int(re.nlev[j])
                idx = pr.col0 + int(re.uoff[j]) + np.arange(nl)[:, None] * kd + np.arange(kd)[None, :]
                blocks = cf.entries(idx[:, :, None], idx[:, None, :])
                var[idx] = np.einsum("ab,lbc,ac->la", lam, blocks, lam)
                lam_rows.append(idx)
        if V is not None and np.all(np.isfinite(V)):
            J = self.mode_jacobian(x, V)
            var = var + np.einsum("ij,jk,ik->i", J, V, J)
        out = {}
        for k, pr in enumerate(self.preds):
            if pr.re is None:
                continue
            re = pr.re
            out[pr.name] = [np.sqrt(np.maximum(var[pr.col0 + re.uoff[j]: pr.col0 + re.uoff[j + 1]], 0.0))
                            .reshape(int(re.nlev[j]), int(re.kdim[j])) for j in range(re.m)]
        return out
