"""The predictor module (lme4's merPredD): X, the typed random-effect blocks,
theta -> Lambda, and the blocked Cholesky factor L of Lambda'Z'WZLambda + I.

Layout of the spherical random effects u: term j occupies u[uoff[j]:uoff[j+1]],
level l of term j the k_j entries starting at uoff[j] + l * k_j (lme4's order).
b = Lambda u, blockwise b_j[l] = Lambda_j u_j[l].

The factor is blocked as in MixedModels.jl: term 0 (most levels) gives a
block-diagonal L11 (one k0 x k0 block per level); its cross block L21 with the
other terms is sparse (pattern fixed once from the data, only values change);
the rest L22 is dense and small. Nothing here grows like n x q.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from interlace.kernels import crossprod as kx
from interlace.kernels import glm as kg
from interlace.kernels import parallel as kpar
from interlace.kernels import pirls as kp
from interlace.kernels.wide_term import WIDE_K
from interlace.model.covariance import Unstructured, term_covariance
from interlace.model_frame import ReTerm


class ReStructure:
    """Numeric layout of the random-effect terms, independent of theta."""

    def __init__(self, terms: list[ReTerm]):
        if not terms:
            raise ValueError("at least one random-effect term is required")
        self.terms = terms
        self.m = len(terms)
        self.n = int(terms[0].codes.shape[0])
        self.kdim = np.array([t.k for t in terms], dtype=np.int64)
        self.nlev = np.array([t.nlevels for t in terms], dtype=np.int64)
        qj = self.kdim * self.nlev
        self.uoff = np.concatenate([[0], np.cumsum(qj)]).astype(np.int64)
        self.q = int(self.uoff[-1])
        self.q0 = int(qj[0])
        self.q2 = self.q - self.q0
        self.kcol = np.concatenate([[0], np.cumsum(self.kdim)]).astype(np.int64)
        self.codes = np.ascontiguousarray(np.stack([np.asarray(t.codes, dtype=np.int64) for t in terms]))
        self.z = np.ascontiguousarray(np.hstack([np.asarray(t.z, dtype=np.float64) for t in terms]))
        # Each term's covariance structure maps its parameters (the slice of theta it owns)
        # to Lambda_j; the "entries" are Lambda_j's lower triangles, column-major (lme4's
        # theta for ``us``), the layout the kernels differentiate in.
        self.covs = [term_covariance(t) for t in terms]
        for t, cov in zip(terms, self.covs):
            if cov.k != t.k:
                raise ValueError(f"the covariance structure of the term on {t.group!r} has dimension {cov.k}, "
                                 f"the term {t.k} columns")
        self.linear = all(isinstance(c, Unstructured) for c in self.covs)
        # per term of k >= 2 columns with at most one nonzero per row (a term over a
        # factor's levels, ``0 + t``): that column and its value, so the rows of
        # Z_j Lambda_j are gathered rows of Lambda_j, not an (n x k) (k x k) product
        self._onehot: list[tuple[np.ndarray, np.ndarray] | None] = []
        for j in range(self.m):
            zj = self.z[:, self.kcol[j]:self.kcol[j + 1]]
            hot = None
            if zj.shape[1] >= 2 and np.all(np.count_nonzero(zj, axis=1) <= 1):
                col = np.argmax(zj != 0.0, axis=1)
                val = zj[np.arange(self.n), col]
                hot = (col.astype(np.int64), np.zeros(0) if np.all(val == 1.0) else np.ascontiguousarray(val))
            self._onehot.append(hot)
        th_term, th_a, th_b = [], [], []
        for j, cov in enumerate(self.covs):
            th_term += [j] * cov.nentries
            th_a += cov.rows.tolist()
            th_b += cov.cols.tolist()
        self.theta_term = np.array(th_term, dtype=np.int64)
        self.theta_a = np.array(th_a, dtype=np.int64)
        self.theta_b = np.array(th_b, dtype=np.int64)
        self.nentries = len(th_term)
        sizes = [c.nparams for c in self.covs]
        self.par_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.ntheta = int(self.par_off[-1])
        self.theta_lower = np.concatenate([c.lower for c in self.covs]).astype(float)
        #: the parameters the deviance is even in (a zero there is a boundary to probe)
        self.even_params = np.concatenate([c.even_params for c in self.covs]).astype(bool)
        self._build_pattern()

    def _par(self, theta: np.ndarray, j: int) -> np.ndarray:
        return np.asarray(theta, dtype=float)[self.par_off[j]:self.par_off[j + 1]]

    def theta_start(self) -> np.ndarray:
        """lme4's default start: identity Lambda (ones on diagonals, zeros off)."""
        return np.concatenate([c.start() for c in self.covs]).astype(float)

    def entries(self, theta: np.ndarray) -> np.ndarray:
        """Lambda's lower-triangle entries of every term (the kernels' layout)."""
        if self.linear:
            return np.asarray(theta, dtype=float)
        return np.concatenate([c.entries(self._par(theta, j)) for j, c in enumerate(self.covs)])

    def chain(self, theta: np.ndarray, g_entries: np.ndarray) -> np.ndarray:
        """The gradient in theta from the gradient in Lambda's entries: J' g, J the
        block-diagonal Jacobian of the terms' covariance structures."""
        if self.linear:
            return g_entries
        out = []
        e0 = 0
        for j, c in enumerate(self.covs):
            out.append(c.jacobian(self._par(theta, j)).T @ g_entries[e0:e0 + c.nentries])
            e0 += c.nentries
        return np.concatenate(out)

    def theta_names(self) -> list[str]:
        """One name per parameter (``Subject.Intercept``, ``Subject.Days.Intercept``)."""
        out: list[str] = []
        for t, c in zip(self.terms, self.covs):
            out += c.param_names(t.vc_name, list(t.cnames))
        return out

    def _build_pattern(self) -> None:
        """Find the nonzero (level_j, level_0) pairs of the cross blocks once."""
        n0 = int(self.nlev[0])
        self.pairidx = np.zeros((self.m, self.n), dtype=np.int64)
        keys: list[np.ndarray] = [np.zeros(0, np.int64)]
        for j in range(1, self.m):
            uniq, inv = np.unique(self.codes[j] * n0 + self.codes[0], return_inverse=True)
            self.pairidx[j] = inv
            keys.append(uniq)
        self._layout_pairs(keys)

    def _layout_pairs(self, pair_keys: list[np.ndarray]) -> None:
        """Lay out the cross blocks from the sorted unique pair keys per term
        (key = level_j * nlevels_0 + level_0): offsets into the flat value
        array V21 and the CSR/CSC templates whose data are positions in it,
        so every iteration only refills values. Shared with the Dask path,
        which finds the keys on the workers."""
        m = self.m
        k0 = int(self.kdim[0])
        n0 = int(self.nlev[0])
        self.poff = np.zeros(m + 1, dtype=np.int64)
        self.npairs = np.zeros(m, dtype=np.int64)
        self.pair_rows: list[np.ndarray] = [np.zeros(0, np.int64)]
        self.pair_cols: list[np.ndarray] = [np.zeros(0, np.int64)]
        rows, cols, idx = [], [], []
        for j in range(1, m):
            uniq = np.asarray(pair_keys[j], dtype=np.int64)
            pr, pc = uniq // n0, uniq % n0
            self.pair_rows.append(pr)
            self.pair_cols.append(pc)
            kj = int(self.kdim[j])
            self.npairs[j] = len(uniq)
            self.poff[j + 1] = self.poff[j] + len(uniq) * kj * k0
            a = np.arange(kj)
            b = np.arange(k0)
            r = (self.uoff[j] - self.q0) + pr[:, None, None] * kj + a[None, :, None] + 0 * b[None, None, :]
            c = pc[:, None, None] * k0 + b[None, None, :] + 0 * a[None, :, None]
            rows.append(r.ravel())
            cols.append(c.ravel())
            idx.append(self.poff[j] + np.arange(len(uniq) * kj * k0))
        self.pcoff = np.zeros(m + 1, dtype=np.int64)
        for j in range(1, m):
            self.pcoff[j + 1] = self.pcoff[j] + len(self.pair_cols[j])
        self.pcols = (np.concatenate(self.pair_cols[1:]) if m > 1 else np.zeros(0)).astype(np.int64)
        if m > 1:
            rows = np.concatenate(rows)
            cols = np.concatenate(cols)
            idx = np.concatenate(idx).astype(np.float64)
            # CSR with data = position in V21: permutation reused every iteration
            csr = sp.csr_matrix((idx + 1.0, (rows, cols)), shape=(self.q2, self.q0))
            csr.sort_indices()
            self.l21_perm = (csr.data - 1.0).astype(np.int64)
            self.l21_template = csr
            self.nv21 = int(self.poff[m])
            csc = csr.tocsc()
            csc.sort_indices()
            self.csc_indptr = csc.indptr.astype(np.int64)
            self.csc_indices = csc.indices.astype(np.int64)
            self.csc_pos = (csc.data - 1.0).astype(np.int64)
        else:
            self.l21_perm = np.zeros(0, np.int64)
            self.l21_template = None
            self.nv21 = 0
            self.csc_indptr = np.zeros(1, np.int64)
            self.csc_indices = np.zeros(0, np.int64)
            self.csc_pos = np.zeros(0, np.int64)

    def canonical_theta(self, theta: np.ndarray) -> np.ndarray:
        """The same covariance with non-negative diagonals: Lambda Lambda' is
        unchanged by flipping the sign of a column of Lambda (and so is the
        deviance), so each column with a negative diagonal is negated."""
        return np.concatenate([c.canonical(self._par(theta, j)) for j, c in enumerate(self.covs)])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [c.lambda_(self._par(theta, j)) for j, c in enumerate(self.covs)]

    def zlambda(self, theta: np.ndarray) -> np.ndarray:
        """Rows of U = Z Lambda in block form: (n, sum k_j)."""
        lams = self.lambdas(theta)
        if self.m == 1 and self.kdim[0] == 1:
            return self.z * lams[0][0, 0]
        out = np.empty((self.n, int(self.kcol[-1])))
        for j, lam in enumerate(lams):
            hot = self._onehot[j]
            if hot is None:
                out[:, self.kcol[j]:self.kcol[j + 1]] = self.z[:, self.kcol[j]:self.kcol[j + 1]] @ lam
            else:
                # row i is z_i,c * Lambda[c, :] (the other products are exact zeros)
                kx.gather_rows(np.ascontiguousarray(lam, dtype=np.float64), hot[0], hot[1], out, int(self.kcol[j]))
        return out

    def u_to_b(self, theta: np.ndarray, u: np.ndarray) -> list[np.ndarray]:
        """Per term an (nlevels, k) array of b = Lambda u."""
        out = []
        for j, lam in enumerate(self.lambdas(theta)):
            k = int(self.kdim[j])
            uj = u[self.uoff[j]:self.uoff[j + 1]].reshape(-1, k)
            out.append(uj @ lam.T)
        return out

    def eta_re(self, zl: np.ndarray, u: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        base = np.zeros(self.n) if base is None else base
        out = np.empty(self.n)
        kg.linear_predictor(base, self.codes, zl, self.kcol, self.kdim, self.uoff, u, out)
        return out


class BlockedCholesky:
    """Cholesky factor L of A = U'WU + I in blocks, and solves with it.

    The factorization and the solves are compiled (interlace/kernels/pirls.py),
    so the whole PIRLS loop can also run there on the same buffers."""

    def __init__(self, re: ReStructure):
        self.re = re
        k0 = int(re.kdim[0])
        self.A11 = np.zeros((int(re.nlev[0]), k0, k0))
        self.V21 = np.zeros(re.nv21)
        self.A22 = np.zeros((re.q2, re.q2))
        self.rhs = np.zeros(re.q)
        self.L21vals = np.zeros(re.nv21)
        self.L22 = np.zeros((re.q2, re.q2))
        self.logdet = 0.0
        # A large dense block (q2 >= DENSE_MAX) is factored by LAPACK in place and the
        # buffers A22 and L22 trade places: two q2 x q2 arrays in all (3,000 crossed
        # levels: 72 MB each), and the factor of the last point survives the next row
        # pass (which refills A11, V21, A22), so it can precondition the next solve.
        self.big = re.q2 >= kp.DENSE_MAX
        self._L11 = np.zeros_like(self.A11) if self.big else None
        self.factored = False
        self.nfactor = 0  # counts factorizations (a preconditioner remembers which one it goes with)

    def accumulate(self, w: np.ndarray, zw: np.ndarray, zl: np.ndarray) -> None:
        """Sum U'WU and U'W zw over the rows (zeroes the buffers first)."""
        re = self.re
        self.A11.fill(0.0)
        self.V21.fill(0.0)
        self.A22.fill(0.0)
        self.rhs.fill(0.0)
        kpar.accumulate_re(w, zw, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff,
                         self.A11, self.V21, self.A22, self.rhs)

    def factor_args(self) -> tuple:
        """The buffers and pattern arrays of kernels.pirls.factor_blocked, in order."""
        re = self.re
        return (self.A11, self.A22, self.L22, self.V21, self.L21vals, re.kdim, re.poff, re.npairs,
                re.pcols, re.pcoff, re.csc_indptr, re.csc_indices, re.csc_pos)

    def factor(self) -> float:
        """Factor A (adds the identity); returns log|L|^2. Raises on failure."""
        self.factored = False
        if self.re.m == 1 and int(self.re.kdim[0]) >= WIDE_K:
            # one wide term (spatial): LAPACK's Cholesky per level, not the scalar compiled one
            ld = 0.0
            for lv in range(self.A11.shape[0]):
                A = self.A11[lv]
                A[np.diag_indices_from(A)] += 1.0
                try:
                    L = np.linalg.cholesky(A)
                except np.linalg.LinAlgError:
                    ld = np.nan
                    break
                A[...] = L
                ld += 2.0 * float(np.log(np.diag(L)).sum())
        else:
            ld = kp.factor_blocked(*self.factor_args())
        if not np.isfinite(ld):
            raise np.linalg.LinAlgError("random-effects system is not positive definite")
        if self.big:
            # factor_blocked left A22 + I: the Schur complement on both cores (row
            # ranges, in place), then LAPACK's potrf in place (the C-ordered lower
            # triangle is the upper one of the Fortran-ordered transpose)
            re = self.re
            np.copyto(self._L11, self.A11)
            kpar.schur_lower(re.csc_indptr, re.csc_indices, re.csc_pos, self.L21vals, self.A22)
            _, info = sla.lapack.dpotrf(self.A22.T, lower=0, clean=1, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError("random-effects system is not positive definite")
            self.A22, self.L22 = self.L22, self.A22
            ld += 2.0 * float(np.sum(np.log(np.diagonal(self.L22))))
        self.logdet = float(ld)
        self.factored = True
        self.nfactor += 1
        return self.logdet

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """(I + U'WU) x from the unfactored system of the last row pass (valid
        between a pass and the next factor())."""
        re = self.re
        y = np.empty(re.q)
        kp.matvec_blocked(self.A11, self.V21, re.csc_indptr, re.csc_indices, re.csc_pos, self.A22,
                          np.ascontiguousarray(x, dtype=np.float64), y)
        return y

    def pcg_solve(self, b: np.ndarray, x0: np.ndarray, atol: float, rtol: float = 0.0, maxiter: int = 30,
                  matvec=None, precond=None) -> np.ndarray | None:
        """Solve (I + U'WU) x = b by conjugate gradients preconditioned with the
        factor of an earlier point (A at a nearby u or theta: a few iterations,
        each O(nnz + q2^2), against O(q2^3) for a new dense factor). Stops when
        the residual's 2-norm is at most max(``atol``, ``rtol`` times the first
        residual's) (A >= I, so that bounds the error in x too); None when it does not get there in ``maxiter``
        iterations (the caller factors instead). ``matvec``/``precond`` replace
        the system and the preconditioner (the joint (u, beta) system)."""
        if not self.factored:
            return None
        mv = self.matvec if matvec is None else matvec
        pc = self.solve if precond is None else precond
        x = np.array(x0, dtype=np.float64, copy=True)
        r = b - mv(x)
        rn = float(np.sqrt(r @ r))
        atol = max(atol, rtol * rn)
        if rn <= atol:
            return x
        z = pc(r)
        pvec = z.copy()
        rz = float(r @ z)
        for _ in range(maxiter):
            ap = mv(pvec)
            pap = float(pvec @ ap)
            if not (pap > 0.0 and np.isfinite(pap)):
                return None
            alpha = rz / pap
            x += alpha * pvec
            r -= alpha * ap
            rn = float(np.sqrt(r @ r))
            if rn <= atol:
                return x
            z = pc(r)
            rz_new = float(r @ z)
            pvec *= rz_new / rz
            pvec += z
            rz = rz_new
        return None

    @property
    def L11(self) -> np.ndarray:
        """The factored diagonal blocks of term 0 (A11 factored in place; a copy
        when the dense block is large, since the next pass refills A11)."""
        return self._L11 if self.big else self.A11

    @property
    def L21(self) -> sp.csr_matrix | None:
        """The cross block of L as a sparse matrix (q2 x q0)."""
        re = self.re
        if re.m == 1:
            return None
        L21 = re.l21_template.copy()
        L21.data = self.L21vals[re.l21_perm]
        return L21

    def _solve(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        re = self.re
        x = np.array(b, dtype=np.float64, copy=True, order="C")
        vec = x.ndim == 1
        if vec:
            x = x[:, None]
        if self.big:
            # the dense block by BLAS (the compiled loops read L22 by columns in the
            # transposed solve: slow once L22 outgrows the cache); C-ordered lower
            # L22 is the upper triangle of its Fortran-ordered transpose
            args = (self.L11, self.L21vals, re.csc_indptr, re.csc_indices, re.csc_pos, x)
            U = self.L22.T
            if not transpose:
                kp.solve_L_sparse_part(*args)
                x[re.q0:] = sla.solve_triangular(U, x[re.q0:], lower=False, trans="T", check_finite=False)
            else:
                x[re.q0:] = sla.solve_triangular(U, x[re.q0:], lower=False, trans="N", check_finite=False)
                kp.solve_Lt_sparse_part(*args)
        else:
            f = kp.solve_Lt_inplace if transpose else kp.solve_L_inplace
            f(self.L11, self.L21vals, re.csc_indptr, re.csc_indices, re.csc_pos, self.L22, x)
        return x[:, 0] if vec else x

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """x = L^{-1} b for b of shape (q,) or (q, c)."""
        return self._solve(b, False)

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """x = L^{-T} b."""
        return self._solve(b, True)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.solve_Lt(self.solve_L(b))

    def _inverse11(self) -> np.ndarray:
        """(L11 L11')^{-1} per block of term 0: compiled for small blocks, LAPACK's potri
        (blocked, BLAS 3) for a wide term (a spatial term of hundreds of columns)."""
        L11 = self.L11
        nl, k0, _ = L11.shape
        Ainv11 = np.empty_like(L11)
        if k0 < WIDE_K:
            kx.block_chol_inverse(L11, Ainv11)
            return Ainv11
        for lv in range(nl):
            inv, info = sla.lapack.dpotri(L11[lv], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("random-effects system is not positive definite")
            Ainv11[lv] = np.tril(inv) + np.tril(inv, -1).T
        return Ainv11

    def _inverse22(self, scratch: bool = False) -> np.ndarray:
        """(L22 L22')^{-1}, the Schur block of A^{-1}, from the factor (LAPACK potri,
        in place on a copy of L22). ``scratch``: the copy is the A22 buffer, which
        the next row pass refills (no new q2 x q2 array; for use before that pass)."""
        if scratch and self.big:
            out = self.A22
            np.copyto(out, self.L22)
        else:
            out = self.L22.copy()
        _, info = sla.lapack.dpotri(out.T, lower=0, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError("random-effects system is not positive definite")
        kx.symmetrize_lower(out)
        return out

    def selected_inverse_pairs(self, scratch: bool = False):
        """Like selected_inverse, but the cross block only on the fixed pattern
        of nonzero (level_j, level_0) pairs, in the flat pair layout of V21.
        Cost grows with the pattern, not with q0 x q2. ``scratch``: a large
        Ainv22 lives in the A22 buffer (valid until the next row pass)."""
        re = self.re
        L11 = self.L11
        nl, k0, _ = L11.shape
        Ainv11 = self._inverse11()
        if re.m == 1:
            return Ainv11, np.zeros(0), np.zeros((0, 0))
        Ainv22 = self._inverse22(scratch)
        Mflat = np.zeros(re.nv21)
        for j in range(1, re.m):
            kx.pairs_times_linv(self.L21vals, re.poff[j], re.npairs[j], re.kdim[j], k0,
                                re.pair_cols[j], L11, Mflat)
        out = np.zeros(re.nv21)
        kpar.selected_cross_inverse(re.csc_indptr, re.csc_indices, re.csc_pos, Mflat, Ainv22, k0, out, Ainv11)
        return Ainv11, out, Ainv22

    def selected_inverse_diag(self):
        """The diagonal blocks of A^{-1}: term 0's k0 x k0 blocks and the dense
        block among the other terms (q2 x q2), through the pair pattern (no
        q2 x q0 array). Enough for the conditional variances. A large Ainv22 lives
        in the A22 buffer (no third q2 x q2 array; valid until the next row pass):
        read it, do not keep it."""
        Ainv11, _, Ainv22 = self.selected_inverse_pairs(scratch=True)
        return Ainv11, Ainv22

    def selected_inverse(self):
        """Blocks of A^{-1} touched by any row: the k0 x k0 diagonal blocks for
        term 0, the dense cross block (q2 x q0) and the dense block among the
        other terms (q2 x q2). Used for prediction standard errors (rows may
        pair levels never seen together)."""
        re = self.re
        nl, k0, _ = self.A11.shape
        # (L11 L11')^{-1} per block
        Ainv11 = self._inverse11()
        if re.m == 1:
            return Ainv11, np.zeros((0, re.q0)), np.zeros((0, 0))
        Ainv22 = self._inverse22()
        # M = L21 L11^{-1} (same sparsity): each block row times L11[l]^{-1}
        M = self.L21.tocsc(copy=True)
        Md = M.toarray() if re.q0 * re.q2 <= 4e7 else None
        if Md is None:
            raise MemoryError("cross block too large for the dense selected inverse")
        # right-multiply by block-diagonal L11^{-1}: solve X L11 = Md  <=> L11' X' = Md'
        Xt = np.ascontiguousarray(Md.T)
        kx.block_solve_lower(self.L11, Xt, True)
        M = Xt.T
        Ainv21 = -Ainv22 @ M
        # diagonal blocks: Ainv11 += M_l' Ainv22 M_l = -M_l' Ainv21_l
        if k0 == 1:
            Ainv11[:, 0, 0] -= np.einsum("rl,rl->l", M, Ainv21)
        else:
            M3 = M.reshape(re.q2, nl, k0)
            A3 = Ainv21.reshape(re.q2, nl, k0)
            Ainv11 -= np.einsum("rla,rlb->lab", M3, A3)
        return Ainv11, np.ascontiguousarray(Ainv21), Ainv22
